//! Microversion negotiation, as Watcher's `Version.parse_headers` and
//! `Controller._check_version` do it (watcher-service-facts.md 1.1): the
//! `OpenStack-API-Version: infra-optim X.Y` header; none (or one for
//! another service) means 1.0, `latest` the maximum, a non-integer value
//! 1.0, a bare `1` 1.0; another part count, another major version or a
//! version outside [1.0, 1.7] is 406. Every `/v1` response carries the
//! minimum, the maximum, the version served and `Vary`.

use super::error::ApiError;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A microversion (major is always 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// 1.0 (Rocky).
pub const MIN: Version = Version { major: 1, minor: 0 };
/// 1.7 (audit templates' default parameters).
pub const MAX: Version = Version { major: 1, minor: 7 };
/// 1.1: audits' start_time and end_time.
pub const START_END_TIMING: Version = Version { major: 1, minor: 1 };
/// 1.2: audits' force.
pub const FORCE: Version = Version { major: 1, minor: 2 };
/// 1.3: `GET /v1/data_model`.
pub const DATA_MODEL: Version = Version { major: 1, minor: 3 };
/// 1.4: `POST /v1/webhooks/{audit}`.
pub const WEBHOOK: Version = Version { major: 1, minor: 4 };
/// 1.5: skipping actions; status_message.
pub const SKIPPED_ACTION: Version = Version { major: 1, minor: 5 };
/// 1.7: audit templates' default_parameters.
pub const TEMPLATE_DEFAULT_PARAMS: Version = Version { major: 1, minor: 7 };

const SERVICE: &str = "infra-optim";
const HEADER: &str = "openstack-api-version";

/// The version the headers ask for, or the 406 message.
pub fn negotiate(headers: &HeaderMap) -> Result<Version, String> {
    // microversion_parse: comma-separated "service version" pairs, in one
    // header or several.
    let mut asked: Option<String> = None;
    for v in headers.get_all(HEADER) {
        let Ok(text) = v.to_str() else { continue };
        for part in text.split(',') {
            let mut words = part.split_whitespace();
            if let (Some(service), Some(version)) = (words.next(), words.next())
                && service.eq_ignore_ascii_case(SERVICE)
            {
                asked = Some(version.to_string());
            }
        }
    }
    let Some(text) = asked else { return Ok(MIN) };
    let text = if text.eq_ignore_ascii_case("latest") {
        MAX.to_string()
    } else {
        text
    };
    let parts: Result<Vec<u32>, _> = text.split('.').map(str::parse::<u32>).collect();
    let parts = match parts {
        Ok(p) => p,
        Err(_) => vec![MIN.major, MIN.minor],
    };
    let parts = if parts == [1] { vec![1, 0] } else { parts };
    let [major, minor] = parts[..] else {
        return Err("Invalid value for OpenStack-API-Version header".into());
    };
    let v = Version { major, minor };
    if major != MIN.major {
        return Err(format!(
            "Mutually exclusive versions requested. Version {v} requested but not supported by this service. The supported version range is: [{MIN}, {MAX}]."
        ));
    }
    if v < MIN || v > MAX {
        return Err(format!(
            "Version {v} was requested but the minor version is not supported by this service. The supported version range is: [{MIN}, {MAX}]."
        ));
    }
    Ok(v)
}

/// The middleware of every `/v1` route: negotiates, stores the version in
/// the request's extensions, sets the four response headers.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let negotiated = negotiate(req.headers());
    let mut resp = match &negotiated {
        Ok(v) => {
            req.extensions_mut().insert(*v);
            next.run(req).await
        }
        Err(m) => ApiError::new(StatusCode::NOT_ACCEPTABLE, m.clone()).into_response(),
    };
    let h = resp.headers_mut();
    h.insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    h.insert(
        "openstack-api-minimum-version",
        HeaderValue::from_static("1.0"),
    );
    h.insert(
        "openstack-api-maximum-version",
        HeaderValue::from_static("1.7"),
    );
    if let Ok(v) = negotiated
        && let Ok(value) = HeaderValue::from_str(&format!("{SERVICE} {v}"))
    {
        h.insert("openstack-api-version", value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(v: Option<&str>) -> Result<Version, String> {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(HEADER, HeaderValue::from_str(v).unwrap());
        }
        negotiate(&h)
    }

    #[test]
    fn watcher_s_rules() {
        assert_eq!(ask(None), Ok(MIN));
        assert_eq!(ask(Some("compute 2.1")), Ok(MIN));
        assert_eq!(ask(Some("infra-optim latest")), Ok(MAX));
        assert_eq!(ask(Some("infra-optim 1.5")), Ok(SKIPPED_ACTION));
        assert_eq!(ask(Some("compute 2.1, infra-optim 1.3")), Ok(DATA_MODEL));
        assert_eq!(ask(Some("infra-optim 1")), Ok(MIN));
        assert_eq!(ask(Some("infra-optim x.y")), Ok(MIN));
        assert!(
            ask(Some("infra-optim 1.8"))
                .unwrap_err()
                .contains("[1.0, 1.7]")
        );
        assert!(ask(Some("infra-optim 2.0")).is_err());
        assert!(
            ask(Some("infra-optim 1.2.3"))
                .unwrap_err()
                .contains("Invalid value")
        );
    }
}
