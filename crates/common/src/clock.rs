//! Timestamps as the databases and APIs keep them: milliseconds since the
//! Unix epoch, shown as ISO 8601 UTC with milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the one timestamp format stored on every
/// backend (SQLite and MySQL agree on integers, not on date types).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored millisecond timestamp as `2026-11-28T10:00:00.000Z` (what the
/// RealWorld API and the admin API show).
pub fn iso_millis(millis: i64) -> String {
    let since_epoch = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch).to_string()
}

/// The current UTC time as `20261128t100000`: sortable, and safe in file,
/// Kubernetes object and run names.
pub fn compact_utc_stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_render_as_iso_utc() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_764_324_000_123), "2025-11-28T10:00:00.123Z");
        assert_eq!(iso_millis(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn stamps_are_compact_and_lower_case() {
        let stamp = compact_utc_stamp();
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert!(
            stamp.chars().all(|c| c.is_ascii_digit() || c == 't'),
            "{stamp}"
        );
    }
}
