//! The one text rule of SCIM names and values: how strings are compared, indexed and cut.
//!
//! Two strings that a person reads as the same are the same: NFC first (an IdP may send
//! `José` composed or decomposed), then, where the attribute is not `caseExact`, Unicode
//! lowercase (`str::to_lowercase`, the full mapping: titlecase `ǅ` folds like `Ǆ`). Uniqueness
//! keys (`store::keys`), `eq` and substring filters and `sortBy` all use [`fold`], so what a
//! filter finds and what uniqueness refuses agree (docs/contract.md "Unicode and case").

use std::borrow::Cow;

use unicode_normalization::{UnicodeNormalization, is_nfc_quick};

/// `s` in Unicode Normalization Form C (borrowed when it already is).
pub fn nfc(s: &str) -> Cow<'_, str> {
    match is_nfc_quick(s.chars()) {
        unicode_normalization::IsNormalized::Yes => Cow::Borrowed(s),
        _ => Cow::Owned(s.nfc().collect()),
    }
}

/// The comparison form of `s`: NFC, then lowercase unless `case_exact`.
pub fn fold(s: &str, case_exact: bool) -> Cow<'_, str> {
    let n = nfc(s);
    if case_exact || !n.chars().any(|c| c.is_uppercase() || c.to_lowercase().ne(std::iter::once(c))) {
        return n;
    }
    Cow::Owned(n.to_lowercase())
}

/// Whether a key starts with `urn:` (any case). Never slices inside a character.
pub fn has_urn_prefix(key: &str) -> bool {
    key.len() > 4 && key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// At most `max_chars` characters of `text`, with `…` when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_and_decomposed_fold_alike() {
        let composed = "Jos\u{e9}";
        let decomposed = "Jose\u{301}";
        assert_ne!(composed, decomposed);
        assert_eq!(fold(composed, false), fold(decomposed, false));
        assert_eq!(fold(composed, false), "jos\u{e9}");
        // caseExact keeps the case but still normalises.
        assert_eq!(fold(decomposed, true), composed);
    }

    #[test]
    fn titlecase_letters_fold_like_their_uppercase() {
        // U+01C5 (Dž, titlecase) is not `is_uppercase`, yet lowercases to U+01C6.
        assert_eq!(fold("\u{1c5}", false), "\u{1c6}");
        assert_eq!(fold("\u{1c4}", false), "\u{1c6}");
        assert_eq!(fold("already lower", false), "already lower");
    }

    #[test]
    fn urn_prefix_is_character_safe() {
        assert!(has_urn_prefix("URN:x"));
        assert!(!has_urn_prefix("urn:"));
        assert!(!has_urn_prefix("ab€"));
        assert!(!has_urn_prefix("€€"));
        assert!(!has_urn_prefix("ur€x"));
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
