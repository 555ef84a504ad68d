//! Scheduled jobs of one component (`schedules` in the manifest): a name, a
//! cron expression evaluated in UTC, and the payload each tick enqueues.
//! Parsing and evaluating cron is [`croner`]'s; this module fixes the
//! dialect (5 fields, or 6 with seconds first; no year field) and speaks
//! Unix milliseconds, the unit of the queue's tables.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// Longest schedule name.
pub const MAX_SCHEDULE_NAME: usize = 64;
/// Largest payload, in bytes (the queue's own cap).
pub const MAX_SCHEDULE_PAYLOAD: usize = 1 << 20;

/// One entry of a component's `schedules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Unique within the component; also the queue its jobs are enqueued on.
    pub name: String,
    /// When it comes due.
    pub cron: Cron,
    /// What each tick's job carries.
    pub payload: String,
}

/// A checked cron expression, evaluated in UTC.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    parsed: croner::Cron,
}

impl Cron {
    /// Parses `text`: `MIN HOUR DOM MON DOW`, or `SEC MIN HOUR DOM MON DOW`,
    /// with ranges, steps, lists, names (`MON`, `JAN`) and nicknames
    /// (`@hourly`). Refuses an expression that never comes due.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let parsed = parser
            .parse(text)
            .map_err(|e| format!("`{text}` is not a cron expression (5 fields, or 6 with seconds first; UTC): {e}"))?;
        let cron = Self { text: text.to_owned(), parsed };
        if cron.next_after(now_ms()).is_none() {
            return Err(format!("`{text}` never comes due"));
        }
        Ok(cron)
    }

    /// The expression as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `ms` (Unix milliseconds), if any.
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let time = DateTime::<Utc>::from_timestamp_millis(ms)?;
        self.parsed.find_next_occurrence(&time, false).ok().map(|t| t.timestamp_millis())
    }

    /// The latest tick at or before `ms` (Unix milliseconds), if any.
    pub fn latest_at_or_before(&self, ms: i64) -> Option<i64> {
        let time = DateTime::<Utc>::from_timestamp_millis(ms)?;
        // Ticks fall on whole seconds; a time within a second that is a tick
        // has that tick as its latest.
        let whole = DateTime::<Utc>::from_timestamp(time.timestamp(), 0)?;
        self.parsed.find_previous_occurrence(&whole, true).ok().map(|t| t.timestamp_millis())
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cron").field(&self.text).finish()
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks a schedule name: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SCHEDULE_NAME
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    match valid {
        true => Ok(()),
        false => Err(format!("`{name}` is not a schedule name: 1 to {MAX_SCHEDULE_NAME} of a-z, 0-9, `-`, `_`")),
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T10:00:00Z.
    const TEN: i64 = 1_767_261_600_000;

    #[test]
    fn five_fields_tick_on_minutes_and_six_on_seconds() {
        let hourly = Cron::parse("0 * * * *").unwrap();
        assert_eq!(hourly.next_after(TEN), Some(TEN + 3_600_000));
        assert_eq!(hourly.next_after(TEN - 1), Some(TEN));
        assert_eq!(hourly.latest_at_or_before(TEN), Some(TEN));
        assert_eq!(hourly.latest_at_or_before(TEN + 999), Some(TEN));
        assert_eq!(hourly.latest_at_or_before(TEN + 3_599_999), Some(TEN));

        let every_two_seconds = Cron::parse("*/2 * * * * *").unwrap();
        assert_eq!(every_two_seconds.next_after(TEN), Some(TEN + 2000));
        assert_eq!(every_two_seconds.next_after(TEN + 500), Some(TEN + 2000));
        assert_eq!(every_two_seconds.latest_at_or_before(TEN + 3_500), Some(TEN + 2000));
        assert_eq!(Cron::parse("@hourly").unwrap().next_after(TEN), Some(TEN + 3_600_000));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in ["", "* * * *", "61 * * * *", "0 0 * * * * 2030", "every hour", "* * * * * * *"] {
            let err = Cron::parse(bad).unwrap_err();
            assert!(err.contains("is not a cron expression"), "{bad}: {err}");
        }
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap_err(), "`0 0 31 2 *` never comes due");
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(check_name("digest-hourly_2").is_ok());
        for bad in ["", "Digest", "a b", "x".repeat(65).as_str()] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
