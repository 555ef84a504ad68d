//! Clock readings: timestamps for records (RFC 3339 UTC with `Z`) and unix
//! seconds for token bookkeeping.

use chrono::{SecondsFormat, Utc};

/// Now, as RFC 3339 UTC with microseconds and `Z`.
pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    Utc::now().timestamp()
}
