//! Secrets from the config file, in the two shapes they come in: a
//! [`Secret`] (a password, shown as `***`) and a [`SecretUrl`] (a URL or
//! database location that may hold a password: shown, logged and
//! serialized with the password as `***`). Only their `expose` gives them
//! whole, to the client that sends or connects; `Debug`, `Display` and
//! `Serialize` never do, so a config printed whole (`{:?}`, a tracing
//! field, an error) shows none of its secrets.

use std::fmt;

/// What a [`Secret`] shows instead of itself.
const HIDDEN: &str = "***";

/// A secret (a password, or a plugin's configuration that holds one):
/// shown as `***` by `Debug`, `Display` and `Serialize`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// A secret read from elsewhere (the environment, the config's parts).
    pub fn new(s: impl Into<T>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(HIDDEN)
    }
}

/// A URL whose password never reaches logs, events or output: the one in
/// its user info and any `password=` query parameter's. Text that is no
/// URL (a file path) shows as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    full: String,
    shown: String,
    passwords: Vec<String>,
}

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: &str) -> Self {
        let (shown, passwords) = redacted(url);
        Self {
            full: url.to_string(),
            shown,
            passwords,
        }
    }

    /// The whole URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// `text` with this URL's password, if any, replaced by `***` (for an
    /// error message a client library may have built from the URL).
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.replace(&self.full, &self.shown);
        for p in self.passwords.iter().filter(|p| !p.is_empty()) {
            text = text.replace(p.as_str(), HIDDEN);
        }
        text
    }
}

/// The URL with the password of its user info and those of its
/// `password=` query parameters replaced, and the passwords.
fn redacted(url: &str) -> (String, Vec<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), Vec::new());
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut passwords = Vec::new();
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, password)) => {
                passwords.push(password.to_string());
                format!("{user}:{HIDDEN}{}", &authority[at..])
            }
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("password") => {
                        passwords.push(v.to_string());
                        format!("{k}={HIDDEN}")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", kept.join("&"))
        }
        None => tail.to_string(),
    };
    (
        format!("{}{authority}{tail}", &url[..scheme_end + 3]),
        passwords,
    )
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

impl<'de> serde::Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Self::new(&text))
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
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
        assert_eq!(
            SecretUrl::new("/var/lib/sextant/sextant.db").to_string(),
            "/var/lib/sextant/sextant.db"
        );
    }

    #[test]
    fn a_password_parameter_is_never_shown_either() {
        let u = SecretUrl::new("postgres://u:hunter2@h:5432/db?sslmode=disable&password=swordfish");
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            serde_json::to_string(&u).expect("json"),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("swordfish"),
                "{shown}"
            );
            assert!(
                shown.contains("postgres://u:***@h:5432/db?sslmode=disable&password=***"),
                "{shown}"
            );
        }
        assert_eq!(u.redact("bad swordfish"), "bad ***");
        let from_yaml: SecretUrl = serde_yaml_ng::from_str("'http://u:p4ss@h/'").expect("yaml");
        assert_eq!(from_yaml.expose(), "http://u:p4ss@h/");
    }

    #[test]
    fn a_secret_shows_as_stars_every_way() {
        let s: Secret = serde_yaml_ng::from_str("hunter2").expect("yaml");
        assert_eq!(s.expose(), "hunter2");
        for shown in [
            s.to_string(),
            format!("{s:?}"),
            serde_json::to_string(&s).expect("json"),
        ] {
            assert!(
                !shown.contains("hunter2") && shown.contains("***"),
                "{shown}"
            );
        }
    }
}
