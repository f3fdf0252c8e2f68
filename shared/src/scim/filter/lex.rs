//! The filter tokenizer: words, strings with their escapes, brackets and operators.

use super::*;

// ---------------------------------------------------------------------------------------------

pub(super) type PResult<T> = Result<T, String>;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A decoded JSON string literal.
    Str(String),
    /// Any other run of characters: attribute path, keyword, operator, number or bare value.
    Word(&'a str),
}

#[derive(Debug)]
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    /// Byte offset in the input.
    pub(super) pos: usize,
}

/// 1-based character position of byte offset `byte`, for messages.
pub(super) fn position(input: &str, byte: usize) -> usize {
    input.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

/// `s`, shortened for an error message.
pub(super) fn snippet(s: &str) -> Cow<'_, str> {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

pub(super) fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Str(s) => format!("string \"{}\"", snippet(s)),
        Tok::Word(w) => format!("'{}'", snippet(w)),
    }
}

pub(super) fn is_word_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

pub(super) fn lex(input: &str) -> PResult<Vec<Token<'_>>> {
    let bytes = input.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let single = match b {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = single {
            toks.push(Token { tok, pos: i });
            i += 1;
        } else if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'"' {
            let (s, end) = lex_string(input, i)?;
            toks.push(Token { tok: Tok::Str(s), pos: i });
            i = end;
        } else {
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            // Stop bytes are ASCII, so `start..i` lies on char boundaries.
            toks.push(Token { tok: Tok::Word(&input[start..i]), pos: start });
        }
    }
    Ok(toks)
}

/// Decodes the JSON string literal whose opening quote is at byte `start`; returns the string and
/// the byte offset just past the closing quote.
pub(super) fn lex_string(input: &str, start: usize) -> PResult<(String, usize)> {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut i = start + 1;
    let mut seg = i;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(format!("unterminated string starting at position {}", position(input, start)));
        };
        match b {
            b'"' => {
                out.push_str(&input[seg..i]);
                return Ok((out, i + 1));
            }
            b'\\' => {
                out.push_str(&input[seg..i]);
                let esc_pos = i;
                let bad_escape =
                    || format!("invalid escape sequence in string at position {}", position(input, esc_pos));
                i += 1;
                match bytes.get(i) {
                    Some(b'"') => out.push('"'),
                    Some(b'\\') => out.push('\\'),
                    Some(b'/') => out.push('/'),
                    Some(b'b') => out.push('\u{8}'),
                    Some(b'f') => out.push('\u{c}'),
                    Some(b'n') => out.push('\n'),
                    Some(b'r') => out.push('\r'),
                    Some(b't') => out.push('\t'),
                    Some(b'u') => {
                        let hi = hex4(input, i + 1).ok_or_else(bad_escape)?;
                        i += 4;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            // High surrogate: a `\uDC00`–`\uDFFF` must follow.
                            let lo = (bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 2) == Some(&b'u'))
                                .then(|| hex4(input, i + 3))
                                .flatten()
                                .filter(|lo| (0xDC00..0xE000).contains(lo))
                                .ok_or_else(bad_escape)?;
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            hi
                        };
                        out.push(char::from_u32(code).ok_or_else(bad_escape)?);
                    }
                    _ => return Err(bad_escape()),
                }
                i += 1;
                seg = i;
            }
            _ => i += 1,
        }
    }
}

/// Four hex digits at byte `at`.
pub(super) fn hex4(input: &str, at: usize) -> Option<u32> {
    let digits = input.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}
