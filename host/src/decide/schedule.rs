//! When CONTINUOUS audits run: an interval in seconds, or a cron expression
//! (5 fields, UTC), between an optional start and end time.

use chrono::{DateTime, Utc};
use std::str::FromStr;

/// An audit's interval.
#[derive(Clone, Debug)]
pub enum Interval {
    /// Every N seconds.
    Seconds(u64),
    /// At the times a cron expression names (UTC).
    Cron(Box<croner::Cron>),
}

/// Parses `"3600"` or `"*/5 * * * *"`. A number of seconds is at most
/// [`MAX_DURATION`](crate::duration::MAX_DURATION) (366 days), as every
/// duration a user writes: a larger one would overflow the time of the
/// next run.
pub fn parse_interval(text: &str) -> Result<Interval, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        if n == 0 {
            return Err("interval must be at least 1 second".into());
        }
        let max = crate::duration::MAX_DURATION.as_secs();
        if n > max {
            return Err(format!(
                "interval {n} is longer than the longest accepted, 366 days ({max} seconds)"
            ));
        }
        return Ok(Interval::Seconds(n));
    }
    if t.split_whitespace().count() != 5 {
        return Err(format!(
            "interval {text:?} is neither a number of seconds nor a 5-field cron expression"
        ));
    }
    croner::Cron::from_str(t)
        .map(|c| Interval::Cron(Box::new(c)))
        .map_err(|e| format!("interval {text:?} is not a valid cron expression: {e}"))
}

impl Interval {
    /// The first run time strictly after `after`; `None` when there is
    /// none (past chrono's last representable time).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Interval::Seconds(n) => i64::try_from(*n)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .and_then(|d| after.checked_add_signed(d)),
            Interval::Cron(c) => c.find_next_occurrence(&after, false).ok(),
        }
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time (like 2026-11-22T08:00:00Z): {e}"))
}

/// The time in the store's format.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_cron() {
        let t0 = parse_time("2026-11-22T08:00:30Z").expect("time");
        let i = parse_interval("60").expect("seconds");
        assert_eq!(i.next_after(t0), parse_time("2026-11-22T08:01:30Z").ok());
        let c = parse_interval("*/5 * * * *").expect("cron");
        assert_eq!(c.next_after(t0), parse_time("2026-11-22T08:05:00Z").ok());
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("every day").is_err());
        assert!(parse_interval("61 * * * *").is_err());
    }

    #[test]
    fn an_interval_beyond_a_year_is_refused_and_none_overflows() {
        // 99999999999999999 s once panicked `serve` at every start
        // (`TimeDelta::seconds out of bounds`) once such an audit existed.
        assert!(parse_interval("31622400").is_ok());
        for text in ["31622401", "99999999999999999", "18446744073709551615"] {
            let e = parse_interval(text).err().unwrap_or_default();
            assert!(e.contains(text) && e.contains("366 days"), "{text}: {e}");
        }
        let t0 = parse_time("2026-11-22T08:00:30Z").expect("time");
        assert_eq!(Interval::Seconds(u64::MAX).next_after(t0), None);
        assert_eq!(Interval::Seconds(1 << 62).next_after(t0), None);
        assert_eq!(
            Interval::Seconds(1).next_after(DateTime::<Utc>::MAX_UTC),
            None
        );
    }
}
