//! What the `http` handler needs to follow a redirect itself: where a
//! `Location` points (resolved against the URL that answered) and whether
//! that is the same origin (scheme, host and port) as the configured URL.
//!
//! ureq follows redirects with every header but `Authorization`, whatever
//! the origin; the handler turns that off and uses this instead, so that a
//! configured header (`x-token`) never reaches another origin.

use ureq::http::Uri;
use ureq::http::uri::{Parts, PathAndQuery};

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 10;

/// A URL's origin: scheme, host and port (the scheme's default when absent),
/// lower-cased.
#[derive(Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub fn of(uri: &Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let port = uri.port_u16().or(match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        Self {
            host: uri.host().unwrap_or("").to_ascii_lowercase(),
            scheme,
            port,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Resolves a `Location` header against the URL that sent it (RFC 3986
/// section 5.2: absolute, scheme-relative, absolute-path or relative-path
/// references; dot segments are left to the server).
pub fn resolve(base: &Uri, location: &str) -> Result<Uri, String> {
    let location = location.trim();
    let bad = |e: &dyn std::fmt::Display| format!("redirect to {location:?}: {e}");
    if let Ok(uri) = location.parse::<Uri>()
        && uri.scheme().is_some()
    {
        return Ok(uri);
    }
    let scheme = base.scheme_str().unwrap_or("http");
    if location.starts_with("//") {
        return format!("{scheme}:{location}").parse().map_err(|e| bad(&e));
    }
    let path_and_query = if location.starts_with('/') {
        location.to_string()
    } else {
        let base_path = base.path();
        let (path, query) = location.split_once('?').unwrap_or((location, ""));
        let joined = if path.is_empty() {
            base_path.to_string()
        } else {
            match base_path.rfind('/') {
                Some(i) => format!("{}{path}", &base_path[..=i]),
                None => format!("/{path}"),
            }
        };
        if location.contains('?') {
            format!("{joined}?{query}")
        } else {
            joined
        }
    };
    let mut parts = Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query.as_str()).map_err(|e| bad(&e))?);
    Uri::from_parts(parts).map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    fn resolved(base: &str, loc: &str) -> String {
        resolve(&uri(base), loc).expect("resolves").to_string()
    }

    #[test]
    fn locations_resolve_against_the_url_that_answered() {
        let base = "http://a.example:8080/x/y?q=1";
        assert_eq!(resolved(base, "http://b.example/z"), "http://b.example/z");
        assert_eq!(resolved(base, "//b.example:81/z"), "http://b.example:81/z");
        assert_eq!(resolved(base, "/z?k=v"), "http://a.example:8080/z?k=v");
        assert_eq!(resolved(base, "z"), "http://a.example:8080/x/z");
        assert_eq!(resolved(base, "?k=v"), "http://a.example:8080/x/y?k=v");
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port_only() {
        let o = |s: &str| Origin::of(&uri(s));
        assert_eq!(o("http://A.example/x"), o("http://a.example:80/y?z"));
        assert_ne!(o("http://a.example/"), o("http://a.example:81/"));
        assert_ne!(o("http://a.example/"), o("https://a.example/"));
        assert_ne!(o("http://a.example/"), o("http://b.example/"));
        assert_ne!(o("http://127.0.0.1:1/"), o("http://localhost:1/"));
    }
}
