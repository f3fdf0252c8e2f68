//! Timestamps as idlcm stores them: RFC 3339, UTC, milliseconds. They sort as text, which the
//! sweeper's indexes rely on.

use std::time::Duration;

/// Now.
pub fn now() -> String {
    format(chrono::Utc::now())
}

fn format(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `at` plus `d`, in the same format (`at` unparsable: now plus `d`).
pub fn later(at: &str, d: Duration) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(at).map(|t| t.to_utc()).unwrap_or_else(|_| chrono::Utc::now());
    let delta = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    format(base.checked_add_signed(delta).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC))
}

/// `at` minus `d`, in the same format (`at` unparsable: now minus `d`).
pub fn earlier(at: &str, d: Duration) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(at).map(|t| t.to_utc()).unwrap_or_else(|_| chrono::Utc::now());
    let delta = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    format(base.checked_sub_signed(delta).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_moves_forward_and_sorts_as_text() {
        let t = "2026-12-03T10:00:00.000Z";
        assert_eq!(later(t, Duration::from_secs(3600)), "2026-12-03T11:00:00.000Z");
        assert_eq!(later(t, Duration::from_millis(1)), "2026-12-03T10:00:00.001Z");
        assert!(later(t, Duration::from_secs(1)).as_str() > t);
        assert!(now().ends_with('Z') && now().len() == t.len());
        assert_eq!(earlier(t, Duration::from_secs(3600 * 24)), "2026-12-02T10:00:00.000Z");
    }
}
