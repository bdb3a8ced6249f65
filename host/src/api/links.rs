//! What every handler reads from the request (the base URL links are made
//! of, the negotiated microversion) and the shapes Watcher gives links,
//! timestamps and collections.

use super::error::ApiError;
use super::version::{MIN, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::{Map, Value, json};

/// The request's base URL (`http://HOST`) and microversion.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The scheme and the Host header (Watcher's `application_url`).
    pub base: String,
    /// The negotiated microversion.
    pub version: Version,
    /// The language display names are given in: the first of
    /// `Accept-Language`, else English.
    pub lang: String,
    /// The caller asked for Sextant's extra fields (`Sextant-Extras: true`):
    /// stock clients never do, so their responses stay Watcher's.
    pub extras: bool,
}

/// The request header that asks for Sextant's extra fields.
pub const EXTRAS_HEADER: &str = "sextant-extras";

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
            })
            .unwrap_or("localhost");
        let lang = parts
            .headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split([',', ';']).next())
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "*")
            .unwrap_or("en")
            .to_string();
        let extras = match parts.headers.get(EXTRAS_HEADER).map(|v| v.to_str()) {
            None => false,
            Some(Ok(v)) if v.eq_ignore_ascii_case("true") => true,
            Some(Ok(v)) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid value {:?} for the {EXTRAS_HEADER} header: true or false",
                    v.unwrap_or("(not text)")
                )));
            }
        };
        Ok(Self {
            lang,
            extras,
            base: format!(
                "{}://{host}",
                parts
                    .extensions
                    .get::<super::router::Scheme>()
                    .map_or("http", |s| s.0)
            ),
            version: parts.extensions.get::<Version>().copied().unwrap_or(MIN),
        })
    }
}

impl Ctx {
    /// At least this microversion?
    pub fn at_least(&self, v: Version) -> bool {
        self.version >= v
    }

    /// An object's `self` and `bookmark` links.
    pub fn links(&self, resource: &str, id: &str) -> Value {
        json!([
            {"href": format!("{}/v1/{resource}/{id}", self.base), "rel": "self"},
            {"href": format!("{}/{resource}/{id}", self.base), "rel": "bookmark"},
        ])
    }

    /// A created object's `Location`.
    pub fn location(&self, resource: &str, id: &str) -> String {
        format!("{}/v1/{resource}/{id}", self.base)
    }
}

/// A stored time (RFC 3339) as Watcher writes it:
/// `2018-04-06T07:27:27.820460+00:00`; null stays null.
pub fn time(t: Option<&str>) -> Value {
    if let Some(fast) = t.and_then(millis_utc) {
        return Value::String(fast);
    }
    match t.map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => Value::String(
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                .to_string(),
        ),
        Some(Err(_)) => t.map_or(Value::Null, |s| Value::String(s.to_string())),
        None => Value::Null,
    }
}

/// The store's own form of a time (`store::now`:
/// `2018-04-06T07:27:27.820Z`, UTC to the millisecond) as Watcher writes
/// it, without parsing it as a date: `None` for any other form.
fn millis_utc(t: &str) -> Option<String> {
    let b = t.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    let shaped = b.len() == 24
        && digits.iter().all(|&i| b[i].is_ascii_digit())
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| b[i] == c);
    if !shaped {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().ok();
    // Out-of-range fields (a month 13, a 25th hour) take the parsing
    // path, as before.
    let valid = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
        .is_some()
        && num(11..13)? < 24
        && num(14..16)? < 60
        && num(17..19)? < 60;
    valid.then(|| format!("{}000+00:00", &t[..23]))
}

/// Keeps only `fields` (and `links`) of an object: a list's short form.
pub fn only(v: &mut Value, fields: &[&str]) {
    if let Value::Object(m) = v {
        m.retain(|k, _| k == "links" || fields.contains(&k.as_str()));
    }
}

/// Removes a field.
pub fn drop_field(v: &mut Value, field: &str) {
    if let Value::Object(m) = v {
        m.remove(field);
    }
}

/// `{"<resource>": [...], "next": url}` (next only when there is one).
pub fn collection(resource: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(resource.to_string(), Value::Array(items));
    if let Some(n) = next {
        m.insert("next".into(), Value::String(n));
    }
    Value::Object(m)
}

/// A request body that must be one JSON object (a POST's).
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!("Malformed JSON body: {e}"))),
    }
}

/// Refuses attributes a POST body may not hold, as WSME does.
pub fn known_fields(
    m: &Map<String, Value>,
    resource: &str,
    known: &[&str],
) -> Result<(), ApiError> {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument {resource}: {k}"
            )));
        }
    }
    Ok(())
}

/// A string field of a body (absent or null: `None`).
pub fn text_field(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. Wrong type: a string is expected"
        ))),
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn the_store_s_times_are_written_as_the_parsing_path_writes_them() {
        for t in [
            "2026-12-06T10:35:15.123Z",
            "2024-02-29T23:59:59.999Z",
            "2000-01-01T00:00:00.000Z",
            "2026-02-30T10:35:15.123Z",
            "2026-13-06T10:35:15.123Z",
            "2026-12-06T24:35:15.123Z",
            "2026-12-06T10:35:60.123Z",
            "2026-12-06T10:35:15.123+01:00",
            "2026-12-06T10:35:15Z",
            "not a time at all, 24 c.",
        ] {
            let slow = match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(p) => Value::String(
                    p.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                        .to_string(),
                ),
                Err(_) => Value::String(t.to_string()),
            };
            assert_eq!(time(Some(t)), slow, "{t}");
        }
        assert_eq!(time(None), Value::Null);
    }
}
