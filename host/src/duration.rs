//! Durations and sizes read from files and flags, parsed with bounds.
//!
//! Every duration a user writes (an action type's `estimated_duration`, a
//! policy's timeouts and backoffs, a webhook's timeout, `serve
//! --exit-after`) goes through [`parse_text`] or [`from_seconds`]: humantime
//! text (`90s`, `1m 30s`, `500ms`) or a number of seconds. Negative, NaN and
//! infinite numbers are refused, and so is anything longer than
//! [`MAX_DURATION`] (a year): `std::time::Duration::from_secs_f64` panics from
//! about 2e19 seconds, and no timeout or estimate needs more than a year.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The longest duration accepted anywhere: 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a duration was refused (the caller adds the file, line and field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number, not humantime text.
    #[error("{text:?} is not a duration (like 30s, 2m, 500ms or a number of seconds): {reason}")]
    NotADuration {
        /// What was given.
        text: String,
        /// Why humantime refused it.
        reason: String,
    },
    /// A negative, NaN or infinite number of seconds.
    #[error("{0} is not a duration: seconds must be a finite number >= 0")]
    NotFinite(String),
    /// Longer than [`MAX_DURATION`].
    #[error("{0} is longer than the longest duration accepted, 366 days (31622400s)")]
    TooLong(String),
}

/// A number of seconds: finite, >= 0 and at most [`MAX_DURATION`].
pub fn from_seconds(secs: f64) -> Result<Duration, DurationError> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(DurationError::NotFinite(format!("{secs}")));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        // 1e300, not three hundred digits.
        let shown = if secs >= 1e15 {
            format!("{secs:e}s")
        } else {
            format!("{secs}s")
        };
        return Err(DurationError::TooLong(shown));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Humantime text (`1m 30s`) or a number of seconds (`2.5`), bounded.
pub fn parse_text(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return from_seconds(secs);
    }
    let d = humantime::parse_duration(t).map_err(|e| DurationError::NotADuration {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    if d > MAX_DURATION {
        return Err(DurationError::TooLong(format!("{text:?}")));
    }
    Ok(d)
}

/// A duration as written in a file: a number of seconds or humantime text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Seconds.
    Seconds(f64),
    /// Humantime text.
    Text(String),
}

impl DurationValue {
    /// The bounded duration.
    pub fn resolve(&self) -> Result<Duration, DurationError> {
        match self {
            Self::Seconds(s) => from_seconds(*s),
            Self::Text(t) => parse_text(t),
        }
    }
}

/// A bounded duration field for serde: refuses at deserialisation, so
/// serde_yaml_ng reports the line and column of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedDuration(pub Duration);

impl<'de> Deserialize<'de> for BoundedDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DurationValue::deserialize(d)?
            .resolve()
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for BoundedDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_seconds() {
        assert_eq!(parse_text("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_text(" 2.5 "), Ok(Duration::from_millis(2500)));
        assert_eq!(from_seconds(0.0), Ok(Duration::ZERO));
        assert_eq!(parse_text("366d"), Ok(MAX_DURATION));
    }

    #[test]
    fn huge_negative_and_non_finite_durations_are_refused() {
        for bad in [
            "1e300",
            "2e19",
            "-1",
            "NaN",
            "inf",
            "-inf",
            ".inf",
            "367d",
            "9999999999y",
        ] {
            assert!(parse_text(bad).is_err(), "{bad} accepted");
        }
        for bad in [1e300, f64::INFINITY, f64::NAN, -0.5, 31_622_400.5] {
            assert!(from_seconds(bad).is_err(), "{bad} accepted");
        }
        let e = parse_text("1e300").unwrap_err().to_string();
        assert!(e.contains("366 days"), "{e}");
    }

    #[test]
    fn bounded_duration_refuses_with_the_yaml_location() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            t: BoundedDuration,
        }
        let e = serde_yaml_ng::from_str::<T>("t: .inf\n").unwrap_err();
        assert!(e.location().is_some(), "{e}");
        assert!(e.to_string().contains("finite"), "{e}");
        let ok: T = serde_yaml_ng::from_str("t: 5s\n").expect("valid");
        assert_eq!(ok.t.0, Duration::from_secs(5));
    }
}
