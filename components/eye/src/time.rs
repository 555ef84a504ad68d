//! Timestamps: input as RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC), stored as
//! microseconds since the epoch, output as RFC 3339 with `Z`.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Parses a client timestamp.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// RFC 3339 UTC with `Z` (fractions only when present).
pub(crate) fn format(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// Now, in microseconds since the epoch.
pub(crate) fn now() -> i64 {
    Utc::now().timestamp_micros()
}

/// Now, as RFC 3339.
pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}
