//! Bounded parsing of the handlers' duration and size parameters.
//!
//! Every duration and size a handler reads comes from an operator's YAML or
//! from an action's parameters, so each is checked against a range here and
//! refused with an error naming the parameter: a huge, negative or NaN
//! value must never reach `Duration::from_secs_f64` (which panics) or an
//! allocation.

use sextant_plugin_api::prelude::*;
use std::time::Duration;

/// The longest duration any built-in handler accepts: 7 days. A `sleep`, a
/// command's or a request's `timeout` beyond it is refused.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest `max_output` accepted, and its default: 1 MiB, what the
/// applier stores of an action's outputs (beyond it, the store keeps only a
/// `truncated` marker), far below SQLite's limits.
pub const MAX_MAX_OUTPUT: usize = 1 << 20;

/// The default `max_output`.
pub const DEFAULT_MAX_OUTPUT: usize = MAX_MAX_OUTPUT;

/// Seconds (a number) as a duration within `0..=MAX_DURATION`.
pub fn seconds(secs: f64, what: &str) -> Result<Duration, PluginError> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(PluginError::invalid_input(format!(
            "{what} must be a finite number of seconds >= 0, got {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| too_long(what, &secs.to_string()))
}

fn too_long(what: &str, got: &str) -> PluginError {
    PluginError::invalid_input(format!(
        "{what} must be at most {}s (7 days), got {got}",
        MAX_DURATION.as_secs()
    ))
}

/// A duration parameter: seconds as a number, or text such as `30s`, `2m`;
/// `default` when absent. At most [`MAX_DURATION`].
pub fn duration(v: Option<&Value>, default: Duration, what: &str) -> Result<Duration, PluginError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => seconds(n.as_f64().unwrap_or(f64::NAN), what),
        Some(Value::String(s)) => {
            let text = s.trim();
            if let Ok(secs) = text.parse::<f64>() {
                return seconds(secs, what);
            }
            let d = humantime::parse_duration(text).map_err(|e| {
                PluginError::invalid_input(format!("{what} {s:?} is not a duration: {e}"))
            })?;
            if d > MAX_DURATION {
                return Err(too_long(what, &format!("{s:?}")));
            }
            Ok(d)
        }
        Some(other) => Err(PluginError::invalid_input(format!(
            "{what} must be seconds or a duration like \"30s\", not {other}"
        ))),
    }
}

/// `max_output`: a number of bytes (a number, or its digits as text) within
/// `1..=MAX_MAX_OUTPUT`; [`DEFAULT_MAX_OUTPUT`] when absent.
pub fn max_output(v: Option<&Value>) -> Result<usize, PluginError> {
    let bytes = match v {
        None | Some(Value::Null) => return Ok(DEFAULT_MAX_OUTPUT),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    bytes
        .and_then(|b| usize::try_from(b).ok())
        .filter(|b| (1..=MAX_MAX_OUTPUT).contains(b))
        .ok_or_else(|| {
            PluginError::invalid_input(format!(
                "max_output must be a whole number of bytes from 1 to {MAX_MAX_OUTPUT} (1 MiB), got {}",
                v.map(Value::to_string).unwrap_or_default()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Duration, PluginError>) -> String {
        r.expect_err("refused").message().to_string()
    }

    #[test]
    fn huge_negative_and_nan_durations_are_refused_naming_the_parameter_not_panicking() {
        let d = Duration::from_secs(1);
        for v in [
            json!(1e300),
            json!(-1),
            json!("1e300"),
            json!("-5"),
            json!("NaN"),
        ] {
            let m = err(duration(Some(&v), d, "timeout"));
            assert!(m.contains("timeout"), "{m}");
        }
        assert!(err(seconds(f64::NAN, "duration")).contains("duration"));
        assert!(err(seconds(f64::INFINITY, "duration")).contains("duration"));
        let m = err(duration(Some(&json!("300years")), d, "timeout"));
        assert!(m.contains("at most 604800s"), "{m}");
        let m = err(duration(Some(&json!(604_801)), d, "timeout"));
        assert!(m.contains("at most 604800s"), "{m}");
    }

    #[test]
    fn durations_within_bounds_parse() {
        let d = Duration::from_secs(9);
        assert_eq!(duration(None, d, "t").ok(), Some(d));
        assert_eq!(
            duration(Some(&json!(1.5)), d, "t").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            duration(Some(&json!("2m")), d, "t").ok(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            duration(Some(&json!("7days")), d, "t").ok(),
            Some(MAX_DURATION)
        );
    }

    #[test]
    fn max_output_is_bounded() {
        assert_eq!(max_output(None).ok(), Some(DEFAULT_MAX_OUTPUT));
        assert_eq!(max_output(Some(&json!(100))).ok(), Some(100));
        assert_eq!(max_output(Some(&json!("100"))).ok(), Some(100));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!((1 << 20) + 1),
            json!("lots"),
        ] {
            let m = max_output(Some(&bad))
                .expect_err("refused")
                .message()
                .to_string();
            assert!(m.contains("max_output"), "{m}");
        }
    }
}
