//! `auth: keystone`: a caller's `X-Auth-Token` validated by Keystone v3
//! (`GET /v3/auth/tokens` with `X-Subject-Token`), as keystonemiddleware
//! does for Watcher.
//!
//! Sextant authenticates to Keystone as its service user (`api.keystone`:
//! a user with the `service` role, or any role Keystone's
//! `identity:validate_token` accepts), and renews that token before it
//! expires (when less than half its life or five minutes are left,
//! whichever is shorter), and once more if Keystone refuses it. Validations
//! are cached by the token's SHA-256 (the token itself is not kept), at
//! most `cache_size` of them, each for `cache_time` but never past the
//! token's own expiry. The password is the config's `password`, else the
//! environment's `SEXTANT_KEYSTONE_PASSWORD`; it is never logged.

use crate::config::Secret;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable holding the service user's password when the
/// config does not.
pub const PASSWORD_ENV: &str = "SEXTANT_KEYSTONE_PASSWORD";

/// The `api.keystone:` section.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeystoneConfig {
    /// Keystone's URL (`…/v3`, or its root).
    pub auth_url: String,
    /// The service user.
    pub username: String,
    /// Its password (else `SEXTANT_KEYSTONE_PASSWORD`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// The user's domain (default `Default`).
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    /// The project its token is scoped to.
    pub project_name: String,
    /// The project's domain (default `Default`).
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// Validations kept at most (default 1000).
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// How long a validation is kept at most (default 300 s, as
    /// keystonemiddleware's `token_cache_time`); never past the token's
    /// expiry. `0` validates every request.
    #[serde(default = "default_cache_time", deserialize_with = "super::duration")]
    pub cache_time: Duration,
    /// A CA bundle (PEM) for an https Keystone.
    #[serde(default)]
    pub cafile: Option<std::path::PathBuf>,
}

fn default_domain() -> String {
    "Default".into()
}
fn default_cache_size() -> usize {
    1000
}
fn default_cache_time() -> Duration {
    Duration::from_secs(300)
}

/// Who a valid token belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
    /// The project's id (none for an unscoped or domain token).
    pub project_id: Option<String>,
    /// The project's name.
    pub project_name: Option<String>,
    /// The token's roles (with the roles they imply, as Keystone lists).
    pub roles: Vec<String>,
    /// When the token expires.
    pub expires: DateTime<Utc>,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Keystone does not know the token, or it has expired or been
    /// revoked (401 to the caller).
    #[error("Keystone does not accept the token: {0}")]
    Invalid(String),
    /// Keystone could not be asked (503 to the caller).
    #[error("Keystone at {url}: {message}")]
    Unavailable {
        /// Keystone's URL.
        url: String,
        /// Why.
        message: String,
    },
}

struct ServiceToken {
    value: String,
    renew_at: DateTime<Utc>,
}

struct Cached {
    identity: Identity,
    until: Instant,
}

/// Validates tokens with Keystone.
pub struct Validator {
    url: String,
    cfg: KeystoneConfig,
    password: Secret,
    agent: ureq::Agent,
    service: Mutex<Option<ServiceToken>>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

/// What a call to Keystone answered.
struct Answer {
    status: u16,
    subject: Option<String>,
    body: Value,
}

impl Validator {
    /// A validator for `cfg`; the password from the config or the
    /// environment. Nothing is asked of Keystone yet.
    pub fn new(cfg: &KeystoneConfig) -> Result<Self, String> {
        let password = match &cfg.password {
            Some(p) => p.clone(),
            None => match std::env::var(PASSWORD_ENV) {
                Ok(p) if !p.is_empty() => Secret::new(p),
                _ => {
                    return Err(format!(
                        "auth: keystone needs keystone.password or {PASSWORD_ENV}"
                    ));
                }
            },
        };
        let root = cfg.auth_url.trim_end_matches('/');
        let url = if root.ends_with("/v3") {
            root.to_string()
        } else {
            format!("{root}/v3")
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "keystone.auth_url {:?} is not an http(s) URL",
                cfg.auth_url
            ));
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &cfg.cafile {
            let pem =
                std::fs::read(ca).map_err(|e| format!("keystone.cafile {}: {e}", ca.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "keystone.cafile {}: no PEM certificate in it",
                    ca.display()
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .user_agent("sextant-api")
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self {
            url,
            cfg: cfg.clone(),
            password,
            agent,
            service: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Who `token` belongs to, if a validation still in the cache says so
    /// (never blocks on Keystone).
    pub fn cached_identity(&self, token: &str) -> Option<Identity> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.lock_cache()
            .get(&key)
            .filter(|c| c.until > Instant::now() && c.identity.expires > Utc::now())
            .map(|c| c.identity.clone())
    }

    /// Who `token` belongs to: from the cache, else from Keystone (a
    /// blocking call).
    pub fn validate(&self, token: &str) -> Result<Identity, Refusal> {
        if let Some(id) = self.cached_identity(token) {
            return Ok(id);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let identity = self.ask(token)?;
        let left = (identity.expires - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let keep = left.min(self.cfg.cache_time);
        if !keep.is_zero() && self.cfg.cache_size > 0 {
            let mut cache = self.lock_cache();
            if cache.len() >= self.cfg.cache_size {
                cache.retain(|_, c| c.until > now);
            }
            if cache.len() >= self.cfg.cache_size
                && let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.until).map(|(k, _)| *k)
            {
                cache.remove(&oldest);
            }
            cache.insert(
                key,
                Cached {
                    identity: identity.clone(),
                    until: now + keep,
                },
            );
        }
        Ok(identity)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validations in the cache now (tests).
    #[cfg(test)]
    fn cached(&self) -> usize {
        self.lock_cache().len()
    }

    fn unavailable(&self, message: impl Into<String>) -> Refusal {
        Refusal::Unavailable {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// `GET /v3/auth/tokens`, with the service token renewed when due or
    /// refused.
    fn ask(&self, token: &str) -> Result<Identity, Refusal> {
        let mut renewed = false;
        loop {
            let service = self.service_token(renewed)?;
            let a = self.call("GET", &service, Some(token), None)?;
            match a.status {
                200 => return self.identity(&a.body),
                401 | 403 if !renewed => {
                    tracing::info!(
                        "api: Keystone refused the service user's token (HTTP {}); renewing it",
                        a.status
                    );
                    renewed = true;
                }
                404 => return Err(Refusal::Invalid(keystone_message(&a.body))),
                401 | 403 => {
                    return Err(self.unavailable(format!(
                        "the service user {} may not validate tokens (HTTP {}: {}); it needs the service role",
                        self.cfg.username,
                        a.status,
                        keystone_message(&a.body)
                    )));
                }
                s => {
                    return Err(self.unavailable(format!(
                        "HTTP {s} validating a token: {}",
                        keystone_message(&a.body)
                    )));
                }
            }
        }
    }

    fn identity(&self, body: &Value) -> Result<Identity, Refusal> {
        let t = &body["token"];
        let expires = t["expires_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| self.unavailable("a validated token without expires_at"))?;
        let user_id = t["user"]["id"]
            .as_str()
            .ok_or_else(|| self.unavailable("a validated token without a user"))?;
        Ok(Identity {
            user_id: user_id.to_string(),
            user_name: t["user"]["name"].as_str().unwrap_or(user_id).to_string(),
            project_id: t["project"]["id"].as_str().map(str::to_string),
            project_name: t["project"]["name"].as_str().map(str::to_string),
            roles: t["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect(),
            expires,
        })
    }

    /// The service user's token: the one held, unless it is due for
    /// renewal or `force`.
    fn service_token(&self, force: bool) -> Result<String, Refusal> {
        let mut held = self.service.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = held.as_ref()
            && !force
            && Utc::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.cfg.username, "password": self.password.expose(),
                "domain": {"name": self.cfg.user_domain_name}}}},
            "scope": {"project": {"name": self.cfg.project_name,
                "domain": {"name": self.cfg.project_domain_name}}}}});
        let a = self.call("POST", "", None, Some(&body))?;
        if a.status != 201 && a.status != 200 {
            return Err(self.unavailable(format!(
                "the service user {} could not authenticate (HTTP {}: {})",
                self.cfg.username,
                a.status,
                keystone_message(&a.body)
            )));
        }
        let value = a
            .subject
            .ok_or_else(|| self.unavailable("no X-Subject-Token in Keystone's answer"))?;
        let time = |k: &str| {
            a.body["token"][k]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
        };
        let now = Utc::now();
        let expires = time("expires_at").unwrap_or(now);
        let issued = time("issued_at").unwrap_or(now);
        let renew_at = expires - renewal_margin(expires - issued);
        tracing::info!(
            "api: authenticated to Keystone as {} (token expires {expires}, renewed from {renew_at})",
            self.cfg.username
        );
        *held = Some(ServiceToken {
            value: value.clone(),
            renew_at,
        });
        Ok(value)
    }

    fn call(
        &self,
        method: &str,
        auth: &str,
        subject: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Refusal> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/auth/tokens", self.url))
            .header("Accept", "application/json");
        if !auth.is_empty() {
            req = req.header("X-Auth-Token", auth);
        }
        if let Some(s) = subject {
            req = req.header("X-Subject-Token", s);
        }
        let payload = match body {
            Some(b) => {
                req = req.header("Content-Type", "application/json");
                b.to_string()
            }
            None => String::new(),
        };
        let req = req
            .body(payload)
            .map_err(|e| self.unavailable(format!("a bad request: {e}")))?;
        let resp = self
            .agent
            .run(req)
            .map_err(|e| self.unavailable(format!("unreachable: {e}")))?;
        let status = resp.status().as_u16();
        let subject = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .into_body()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| self.unavailable(format!("unreadable answer: {e}")))?;
        Ok(Answer {
            status,
            subject,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }
}

/// How long before its expiry a token of `lifetime` is renewed: half its
/// life, at most five minutes.
pub fn renewal_margin(lifetime: chrono::TimeDelta) -> chrono::TimeDelta {
    (lifetime / 2)
        .min(chrono::TimeDelta::minutes(5))
        .max(chrono::TimeDelta::zero())
}

/// Keystone's `{"error": {"message": …}}`.
fn keystone_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or("(no message)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config(url: &str, cache_size: usize, cache_time: Duration) -> KeystoneConfig {
        KeystoneConfig {
            auth_url: url.into(),
            username: "svc".into(),
            password: Some(Secret::new("pw")),
            user_domain_name: default_domain(),
            project_name: "service".into(),
            project_domain_name: default_domain(),
            cache_size,
            cache_time,
            cafile: None,
        }
    }

    /// A loopback stand-in for Keystone's two calls, counting validations:
    /// every token `tN` is valid for `life` seconds more, as user `uN`.
    fn keystone(life: i64) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v3", l.local_addr().unwrap());
        let validations = Arc::new(AtomicUsize::new(0));
        let v = validations.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { return };
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let now = Utc::now();
                let exp = (now + chrono::TimeDelta::seconds(life)).to_rfc3339();
                let (status, extra, body) = if req.starts_with("POST") {
                    (
                        201,
                        "X-Subject-Token: svc-token\r\n".to_string(),
                        json!({"token": {"expires_at": exp, "issued_at": now.to_rfc3339()}}),
                    )
                } else {
                    v.fetch_add(1, Ordering::SeqCst);
                    let subject = req
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("x-subject-token: ")
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    if let Some(n) = subject.strip_prefix('t') {
                        (
                            200,
                            String::new(),
                            json!({"token": {"expires_at": exp,
                            "user": {"id": format!("u{n}"), "name": "n"},
                            "project": {"id": "p", "name": "pn"},
                            "roles": [{"name": "reader"}]}}),
                        )
                    } else {
                        (
                            404,
                            String::new(),
                            json!({"error": {"code": 404, "message": "Could not find token"}}),
                        )
                    }
                };
                let body = body.to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, validations)
    }

    #[test]
    fn validations_are_cached_bounded_and_never_past_expiry() {
        let (url, asked) = keystone(3600);
        let v = Validator::new(&config(&url, 2, Duration::from_secs(60))).unwrap();
        let id = v.validate("t1").unwrap();
        assert_eq!(
            (id.user_id.as_str(), id.roles.as_slice()),
            ("u1", &["reader".to_string()][..])
        );
        v.validate("t1").unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 1, "the second was cached");
        v.validate("t2").unwrap();
        v.validate("t3").unwrap();
        assert_eq!(v.cached(), 2, "bounded");
        let e = v.validate("bogus").unwrap_err();
        assert!(
            matches!(e, Refusal::Invalid(ref m) if m.contains("Could not find token")),
            "{e}"
        );

        // A token expiring in 1 s is kept 1 s, not the 60 s of cache_time.
        let (url, asked) = keystone(1);
        let v = Validator::new(&config(&url, 10, Duration::from_secs(60))).unwrap();
        v.validate("t1").unwrap();
        v.validate("t1").unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        std::thread::sleep(Duration::from_millis(1100));
        v.validate("t1").unwrap();
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "asked again after the expiry"
        );
    }

    #[test]
    fn an_unreachable_keystone_is_named_and_a_password_is_needed() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let v = Validator::new(&config(&url, 1, Duration::ZERO)).unwrap();
        let e = v.validate("t1").unwrap_err().to_string();
        assert!(
            e.contains(&format!("{url}/v3")) && e.contains("unreachable"),
            "{e}"
        );
        assert!(!e.contains("pw"), "{e}");
        let mut c = config(&url, 1, Duration::ZERO);
        c.password = None;
        // SAFETY-free: the variable is this test's own name space.
        if std::env::var_os(PASSWORD_ENV).is_none() {
            let e = Validator::new(&c).err().unwrap_or_default();
            assert!(e.contains(PASSWORD_ENV), "{e}");
        }
    }

    #[test]
    fn renewal_comes_at_half_life_or_five_minutes_before() {
        assert_eq!(
            renewal_margin(chrono::TimeDelta::seconds(20)),
            chrono::TimeDelta::seconds(10)
        );
        assert_eq!(
            renewal_margin(chrono::TimeDelta::hours(1)),
            chrono::TimeDelta::minutes(5)
        );
    }
}
