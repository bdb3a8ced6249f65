//! A URL that may hold a password: shown, logged and serialized with the
//! password as `***`, and only [`SecretUrl::expose`] gives it whole (to the
//! client that connects).

use std::fmt;

/// A URL whose password never reaches logs, events or output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    full: String,
    shown: String,
    password: Option<String>,
}

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: &str) -> Self {
        let (shown, password) = redacted(url);
        Self {
            full: url.to_string(),
            shown,
            password,
        }
    }

    /// The whole URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// `text` with this URL's password, if any, replaced by `***` (for an
    /// error message a client library may have built from the URL).
    pub fn redact(&self, text: &str) -> String {
        let text = text.replace(&self.full, &self.shown);
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text,
        }
    }
}

/// The URL with the password of its user info replaced, and the password.
fn redacted(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_string(), None);
    };
    let user_info = &authority[..at];
    let Some(colon) = user_info.find(':') else {
        return (url.to_string(), None);
    };
    let password = user_info[colon + 1..].to_string();
    let shown = format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &user_info[..colon],
        &rest[at..]
    );
    (shown, Some(password))
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown)
    }
}

impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let u = SecretUrl::new("amqp://watcher:s3cr%3Et@127.0.0.1:5672/vh?heartbeat=5");
        assert_eq!(
            u.to_string(),
            "amqp://watcher:***@127.0.0.1:5672/vh?heartbeat=5"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        assert!(!serde_json::to_string(&u).expect("json").contains("s3cr"));
        assert_eq!(
            u.expose(),
            "amqp://watcher:s3cr%3Et@127.0.0.1:5672/vh?heartbeat=5"
        );
        assert_eq!(u.redact("failed: s3cr%3Et here"), "failed: *** here");
        assert_eq!(SecretUrl::new("amqp://h/").to_string(), "amqp://h/");
        assert_eq!(SecretUrl::new("http://u@h/x").to_string(), "http://u@h/x");
    }
}
