//! An authenticated session with one cloud: its token (renewed before it
//! expires, and once on a 401), its endpoints (overrides, else the service
//! catalog for the region and interface), and Nova's negotiated
//! microversion. One session per cloud per process.

use crate::cloud::{AuthType, Cloud, Secret};
use crate::http::{ApiError, CaBundle, Http, Method, Reply, Request, Retry};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sextant_plugin_api::prelude::AbortSignal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The oldest Nova microversion the driver works with: cold migration to a
/// named host (2.56), services and hypervisors by UUID (2.53).
pub const NOVA_MIN: (u32, u32) = (2, 56);
/// The newest it asks for.
pub const NOVA_MAX: (u32, u32) = (2, 96);
/// Placement's: inventories with allocation ratios and reservations.
pub const PLACEMENT_VERSION: &str = "1.14";
/// The oldest Cinder microversion the driver works with: v3 endpoints
/// without the project id in their path (3.67); `os-migrate_volume` and
/// `os-retype` are older.
pub const CINDER_MIN: (u32, u32) = (3, 67);
/// The newest it asks for (Cinder 29, 2026.2, offers 3.71).
pub const CINDER_MAX: (u32, u32) = (3, 71);

/// Renew a token at most this long before it expires (seconds); a token
/// living less than twice that is renewed at half its life.
const RENEW_BEFORE: i64 = 300;

/// A service of the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Nova.
    Compute,
    /// Placement.
    Placement,
    /// Cinder (v3).
    BlockStorage,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Compute => "nova",
            Service::Placement => "placement",
            Service::BlockStorage => "cinder",
        }
    }
    /// Its type in the service catalog.
    fn catalog_type(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Placement => "placement",
            Service::BlockStorage => "block-storage",
        }
    }
    /// Older catalog types of the same API, tried after [`Self::catalog_type`].
    fn catalog_aliases(self) -> &'static [&'static str] {
        match self {
            Service::BlockStorage => &["volumev3"],
            _ => &[],
        }
    }
}

struct Token {
    value: Secret,
    /// When to get a new one (none for a fixed admin_token).
    renew_at: Option<DateTime<Utc>>,
    catalog: Value,
}

/// A session with one cloud.
pub struct Session {
    cloud: Cloud,
    http: Http,
    token: Mutex<Option<Token>>,
    nova_version: OnceLock<String>,
    cinder_version: OnceLock<String>,
    /// Held while Nova's version document is read, so that callers
    /// arriving together (the collector's concurrent listings) wait for
    /// one negotiation instead of each asking Nova.
    negotiating: Mutex<()>,
}

/// The sessions opened, by clouds.yaml file and cloud name.
type Sessions = Mutex<HashMap<(std::path::PathBuf, String), Arc<Session>>>;

fn sessions() -> &'static Sessions {
    static S: OnceLock<Sessions> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// The session with the cloud clouds.yaml and OS_CLOUD name, authenticated
/// (opened once per process; a failed one is not kept).
pub fn current() -> Result<Arc<Session>, ApiError> {
    let cloud = crate::cloud::load().map_err(|e| ApiError::Config(e.to_string()))?;
    let key = (cloud.file.clone(), cloud.name.clone());
    if let Some(s) = sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(s.clone());
    }
    let named = describe(&cloud);
    let s = Arc::new(
        Session::open(cloud, Duration::from_secs(60), Retry::default()).map_err(|e| match e {
            ApiError::Config(m) => ApiError::Config(m),
            e => ApiError::Config(format!("{named}: {e}")),
        })?,
    );
    sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, s.clone());
    Ok(s)
}

impl Session {
    /// Authenticates with `cloud` (so that bad credentials fail here).
    pub fn open(cloud: Cloud, timeout: Duration, retry: Retry) -> Result<Self, ApiError> {
        let roots = match &cloud.config.cacert {
            Some(ca) => Some(
                CaBundle::read(ca)
                    .map_err(|e| ApiError::Config(format!("{}: {e}", describe(&cloud))))?,
            ),
            None => None,
        };
        let s = Self {
            http: Http::new(timeout, retry, roots.as_ref()),
            cloud,
            token: Mutex::new(None),
            nova_version: OnceLock::new(),
            cinder_version: OnceLock::new(),
            negotiating: Mutex::new(()),
        };
        s.renew()?;
        Ok(s)
    }

    /// The cloud's name, region and file, for messages.
    pub fn describe(&self) -> String {
        describe(&self.cloud)
    }

    fn config_err(&self, what: &str) -> ApiError {
        ApiError::Config(format!("{}: {what}", self.describe()))
    }

    /// Gets a new token.
    fn renew(&self) -> Result<(), ApiError> {
        let c = &self.cloud.config;
        let token = match c.auth_type {
            AuthType::AdminToken => Token {
                value: c
                    .auth
                    .token
                    .clone()
                    .ok_or_else(|| self.config_err("auth_type admin_token needs auth.token"))?,
                renew_at: None,
                catalog: Value::Null,
            },
            AuthType::Password | AuthType::ApplicationCredential => {
                let t = self.keystone()?;
                sextant_plugin_api::prelude::log_info(&format!(
                    "{}: authenticated to Keystone; the token is renewed from {}",
                    self.describe(),
                    t.renew_at
                        .map_or_else(|| "(never: no expiry)".to_string(), |r| r.to_rfc3339())
                ));
                t
            }
        };
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        Ok(())
    }

    /// `POST /v3/auth/tokens`.
    fn keystone(&self) -> Result<Token, ApiError> {
        let a = &self.cloud.config.auth;
        let url = a
            .auth_url
            .as_deref()
            .ok_or_else(|| self.config_err("auth.auth_url is not set"))?
            .trim_end_matches('/');
        let endpoint = if url.ends_with("/v3") {
            url.to_string()
        } else {
            format!("{url}/v3")
        };
        let domain = |name: &Option<String>, id: &Option<String>| match (id, name) {
            (Some(id), _) => json!({"id": id}),
            (None, Some(n)) => json!({"name": n}),
            (None, None) => json!({"id": "default"}),
        };
        let body = match self.cloud.config.auth_type {
            AuthType::ApplicationCredential => {
                let id = a
                    .application_credential_id
                    .as_ref()
                    .ok_or_else(|| self.config_err("auth.application_credential_id is not set"))?;
                let secret = a.application_credential_secret.as_ref().ok_or_else(|| {
                    self.config_err("auth.application_credential_secret is not set")
                })?;
                json!({"auth": {"identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret.expose()}}}})
            }
            _ => {
                let password = a
                    .password
                    .as_ref()
                    .ok_or_else(|| self.config_err("auth.password is not set"))?;
                let user = match (&a.user_id, &a.username) {
                    (Some(id), _) => json!({"id": id, "password": password.expose()}),
                    (None, Some(n)) => json!({"name": n, "password": password.expose(),
                        "domain": domain(&a.user_domain_name, &a.user_domain_id)}),
                    (None, None) => return Err(self.config_err("auth.username is not set")),
                };
                let scope = match (&a.project_id, &a.project_name) {
                    (Some(id), _) => json!({"project": {"id": id}}),
                    (None, Some(n)) => json!({"project": {"name": n,
                        "domain": domain(&a.project_domain_name, &a.project_domain_id)}}),
                    (None, None) => return Err(self.config_err("auth.project_name is not set")),
                };
                json!({"auth": {"identity": {"methods": ["password"],
                    "password": {"user": user}}, "scope": scope}})
            }
        };
        let reply = self.http.send(
            &Request {
                service: "keystone",
                method: Method::Post,
                endpoint: &endpoint,
                path: "/auth/tokens",
                headers: Vec::new(),
                body: Some(&body),
            },
            None,
        )?;
        let value = reply.subject_token.ok_or_else(|| ApiError::Invalid {
            service: "keystone",
            path: "/auth/tokens".into(),
            message: "no X-Subject-Token header".into(),
        })?;
        let time = |k: &str| {
            reply.body["token"][k]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
        };
        let issued = time("issued_at").unwrap_or_else(Utc::now);
        let renew_at = time("expires_at").map(|e| e - renewal_margin(e - issued));
        Ok(Token {
            value,
            renew_at,
            catalog: reply.body["token"]["catalog"].clone(),
        })
    }

    /// The token, renewed when it is about to expire.
    fn token(&self) -> Result<(Secret, Value), ApiError> {
        let due = match &*self.token.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(t) => t.renew_at.is_some_and(|r| Utc::now() >= r),
            None => true,
        };
        if due {
            self.renew()?;
        }
        match &*self.token.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(t) => Ok((t.value.clone(), t.catalog.clone())),
            None => Err(self.config_err("no token")),
        }
    }

    /// Whether the cloud has a Cinder: a `block_storage_endpoint_override`,
    /// or a `block-storage` (or `volumev3`) entry in Keystone's catalog.
    /// admin_token's one `auth.endpoint` is Nova's and does not count.
    pub fn has_block_storage(&self) -> Result<bool, ApiError> {
        let c = &self.cloud.config;
        if c.block_storage_endpoint_override.is_some() {
            return Ok(true);
        }
        if c.auth_type == AuthType::AdminToken {
            return Ok(false);
        }
        let (_, catalog) = self.token()?;
        let s = Service::BlockStorage;
        Ok(std::iter::once(s.catalog_type())
            .chain(s.catalog_aliases().iter().copied())
            .any(|t| {
                catalog
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e["type"] == t))
            }))
    }

    /// The endpoint of `service`: its override, admin_token's endpoint
    /// (not for Cinder), or the catalog's for the region and interface.
    pub fn endpoint(&self, service: Service) -> Result<String, ApiError> {
        let c = &self.cloud.config;
        let over = match service {
            Service::Compute => &c.compute_endpoint_override,
            Service::Placement => &c.placement_endpoint_override,
            Service::BlockStorage => &c.block_storage_endpoint_override,
        };
        // admin_token's one endpoint is Nova's (and Placement's), never Cinder's.
        let shared = match service {
            Service::BlockStorage => None,
            _ => c.auth.endpoint.as_ref(),
        };
        if let Some(e) = over.as_ref().or(shared) {
            return Ok(e.trim_end_matches('/').to_string());
        }
        let (_, catalog) = self.token()?;
        let interface = c.interface.as_deref().unwrap_or("public");
        let interface = interface.trim_end_matches("URL");
        let entries = catalog.as_array().cloned().unwrap_or_default();
        let svc = std::iter::once(service.catalog_type())
            .chain(service.catalog_aliases().iter().copied())
            .find_map(|t| entries.iter().find(|e| e["type"] == t))
            .ok_or_else(|| {
                self.config_err(&format!(
                    "the service catalog has no {} service",
                    service.catalog_type()
                ))
            })?;
        svc["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| {
                e["interface"] == interface
                    && c.region_name.as_deref().is_none_or(|r| {
                        e["region_id"].as_str() == Some(r) || e["region"].as_str() == Some(r)
                    })
            })
            .and_then(|e| e["url"].as_str())
            .map(|u| u.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                self.config_err(&format!(
                    "the service catalog has no {interface} {} endpoint in region {}",
                    service.catalog_type(),
                    c.region_name.as_deref().unwrap_or("(any)")
                ))
            })
    }

    /// Nova's microversion for this session: the newest both sides know,
    /// at least [`NOVA_MIN`]. Negotiated once: concurrent first callers
    /// wait for the one request.
    pub fn nova_version(&self) -> Result<String, ApiError> {
        if let Some(v) = self.nova_version.get() {
            return Ok(v.clone());
        }
        let _one = self.negotiating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.nova_version.get() {
            return Ok(v.clone());
        }
        let root = self.call(Service::Compute, Method::Get, "/", None, None)?;
        let max = root["version"]["version"]
            .as_str()
            .and_then(parse_version)
            .ok_or_else(|| ApiError::Invalid {
                service: "nova",
                path: "/".into(),
                message: "no microversion in the version document".into(),
            })?;
        if max < NOVA_MIN {
            return Err(ApiError::Config(format!(
                "Nova supports microversions up to {}.{}; the OpenStack driver needs {}.{}",
                max.0, max.1, NOVA_MIN.0, NOVA_MIN.1
            )));
        }
        let chosen = max.min(NOVA_MAX);
        let v = format!("{}.{}", chosen.0, chosen.1);
        Ok(self.nova_version.get_or_init(|| v).clone())
    }

    /// Cinder's microversion for this session: the newest both sides know,
    /// at least [`CINDER_MIN`]. Cinder's v3 root (`GET /v3/`, the endpoint
    /// itself) lists `{"versions": [{"version": max, …}]}`.
    pub fn cinder_version(&self) -> Result<String, ApiError> {
        if let Some(v) = self.cinder_version.get() {
            return Ok(v.clone());
        }
        let root = self.call(Service::BlockStorage, Method::Get, "/", None, None)?;
        let max = root["versions"]
            .as_array()
            .and_then(|a| a.iter().find_map(|v| v["version"].as_str()))
            .or_else(|| root["version"]["version"].as_str())
            .and_then(parse_version)
            .ok_or_else(|| ApiError::Invalid {
                service: "cinder",
                path: "/".into(),
                message: "no microversion in the version document".into(),
            })?;
        if max < CINDER_MIN {
            return Err(ApiError::Config(format!(
                "Cinder supports microversions up to {}.{}; the OpenStack driver needs {}.{}",
                max.0, max.1, CINDER_MIN.0, CINDER_MIN.1
            )));
        }
        let chosen = max.min(CINDER_MAX);
        let v = format!("{}.{}", chosen.0, chosen.1);
        Ok(self.cinder_version.get_or_init(|| v).clone())
    }

    /// A request to `service` at its microversion, retried per policy;
    /// the body of the reply.
    pub fn call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Value>,
        abort: Option<&AbortSignal>,
    ) -> Result<Value, ApiError> {
        self.call_reply(service, method, path, body, abort)
            .map(|r| r.body)
    }

    /// [`Session::call`], with the whole reply (its request id).
    pub fn call_reply(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Value>,
        abort: Option<&AbortSignal>,
    ) -> Result<Reply, ApiError> {
        let endpoint = self.endpoint(service)?;
        let version = match (service, path) {
            (Service::Compute | Service::BlockStorage, "/") => None,
            (Service::Compute, _) => Some(format!("compute {}", self.nova_version()?)),
            (Service::BlockStorage, _) => Some(format!("volume {}", self.cinder_version()?)),
            (Service::Placement, _) => Some(format!("placement {PLACEMENT_VERSION}")),
        };
        let mut renewed = false;
        loop {
            let (token, _) = self.token()?;
            let mut headers = vec![("X-Auth-Token", token.expose().to_string())];
            if let Some(v) = &version {
                headers.push(("OpenStack-API-Version", v.clone()));
            }
            let r = self.http.send(
                &Request {
                    service: service.name(),
                    method,
                    endpoint: &endpoint,
                    path,
                    headers,
                    body,
                },
                abort,
            );
            match r {
                // A token revoked or expired early: once more with a new one.
                Err(e)
                    if e.status() == Some(401)
                        && !renewed
                        && self.cloud.config.auth_type != AuthType::AdminToken =>
                {
                    sextant_plugin_api::prelude::log_info(&format!(
                        "{}: {} refused the token ({e}); authenticating again",
                        self.describe(),
                        service.name()
                    ));
                    renewed = true;
                    self.renew()?;
                }
                other => return other,
            }
        }
    }
}

/// `cloud NAME (region R, FILE)`: what messages name.
fn describe(cloud: &Cloud) -> String {
    match &cloud.config.region_name {
        Some(r) => format!(
            "cloud {} (region {r}, {})",
            cloud.name,
            cloud.file.display()
        ),
        None => format!("cloud {} ({})", cloud.name, cloud.file.display()),
    }
}

/// How long before its expiry a token of `lifetime` is renewed: half its
/// life, at most [`RENEW_BEFORE`].
fn renewal_margin(lifetime: chrono::TimeDelta) -> chrono::TimeDelta {
    (lifetime / 2)
        .min(chrono::TimeDelta::seconds(RENEW_BEFORE))
        .max(chrono::TimeDelta::zero())
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cloud::load_from;

    /// A session with `cloud` (clouds.yaml text) holding `catalog`, as
    /// Keystone would have handed it out.
    fn with_catalog(cloud: &str, catalog: Value) -> Session {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("clouds.yaml");
        std::fs::write(&p, format!("clouds:\n  c:\n{cloud}")).unwrap();
        let cloud = load_from(&p, Some("c")).unwrap();
        Session {
            cloud,
            http: Http::new(Duration::from_secs(1), Retry::default(), None),
            token: Mutex::new(Some(Token {
                value: Secret::new("t"),
                renew_at: Some(Utc::now() + chrono::Duration::hours(1)),
                catalog,
            })),
            nova_version: OnceLock::new(),
            cinder_version: OnceLock::new(),
            negotiating: Mutex::new(()),
        }
    }

    fn catalog() -> Value {
        json!([
            {"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://nova.one/v2.1/"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://nova.one.int/v2.1"},
                {"interface": "public", "region_id": "RegionTwo", "url": "https://nova.two/v2.1"}]},
            {"type": "placement", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "https://placement.one"}]},
        ])
    }

    #[test]
    fn endpoints_come_from_the_catalog_by_region_and_interface() {
        let auth =
            "    auth: {auth_url: 'http://k/v3', username: u, password: p, project_name: x}\n";
        let s = with_catalog(&format!("    region_name: RegionTwo\n{auth}"), catalog());
        assert_eq!(
            s.endpoint(Service::Compute).unwrap(),
            "https://nova.two/v2.1"
        );
        let s = with_catalog(
            &format!("    region_name: RegionOne\n    interface: internal\n{auth}"),
            catalog(),
        );
        assert_eq!(
            s.endpoint(Service::Compute).unwrap(),
            "http://nova.one.int/v2.1"
        );
        let s = with_catalog(&format!("    region_name: RegionOne\n{auth}"), catalog());
        assert_eq!(
            s.endpoint(Service::Compute).unwrap(),
            "https://nova.one/v2.1"
        );
        assert_eq!(
            s.endpoint(Service::Placement).unwrap(),
            "https://placement.one"
        );
        let s = with_catalog(
            &format!(
                "    region_name: RegionOne\n    compute_endpoint_override: http://o/v2.1/\n{auth}"
            ),
            catalog(),
        );
        assert_eq!(s.endpoint(Service::Compute).unwrap(), "http://o/v2.1");
    }

    #[test]
    fn cinder_is_found_by_its_override_or_its_catalog_types_never_by_the_shared_endpoint() {
        let lab =
            "    auth_type: admin_token\n    auth: {token: t, endpoint: 'http://nova/v2.1'}\n";
        let s = with_catalog(lab, Value::Null);
        assert!(!s.has_block_storage().unwrap());
        assert_eq!(s.endpoint(Service::Compute).unwrap(), "http://nova/v2.1");
        let e = s.endpoint(Service::BlockStorage).unwrap_err().to_string();
        assert!(e.contains("no block-storage service"), "{e}");
        let s = with_catalog(
            &format!("{lab}    volumev3_endpoint_override: http://cinder/v3/\n"),
            Value::Null,
        );
        assert!(s.has_block_storage().unwrap());
        assert_eq!(
            s.endpoint(Service::BlockStorage).unwrap(),
            "http://cinder/v3"
        );
        let auth =
            "    auth: {auth_url: 'http://k/v3', username: u, password: p, project_name: x}\n";
        let old = json!([{"type": "volumev3", "endpoints": [
            {"interface": "public", "region_id": "RegionOne", "url": "http://c3/v3"}]}]);
        let s = with_catalog(auth, old);
        assert!(s.has_block_storage().unwrap());
        assert_eq!(s.endpoint(Service::BlockStorage).unwrap(), "http://c3/v3");
        let s = with_catalog(auth, catalog());
        assert!(!s.has_block_storage().unwrap());
    }

    #[test]
    fn a_wrong_region_is_named() {
        let s = with_catalog(
            "    region_name: RegionNine\n    auth: {auth_url: 'http://k', username: u, password: p, project_name: x}\n",
            catalog(),
        );
        let e = s.endpoint(Service::Compute).unwrap_err().to_string();
        assert!(
            e.contains("clouds.yaml")
                && e.contains("cloud c")
                && e.contains("no public compute endpoint in region RegionNine"),
            "{e}"
        );
    }

    #[test]
    fn short_tokens_are_renewed_at_half_life_long_ones_five_minutes_before() {
        assert_eq!(
            renewal_margin(chrono::TimeDelta::seconds(20)),
            chrono::TimeDelta::seconds(10)
        );
        assert_eq!(
            renewal_margin(chrono::TimeDelta::hours(1)),
            chrono::TimeDelta::minutes(5)
        );
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(parse_version("2.104").unwrap() > parse_version("2.96").unwrap());
        assert_eq!(parse_version("2.104").unwrap().min(NOVA_MAX), (2, 96));
        assert_eq!(parse_version("x"), None);
    }

    /// Concurrent first calls (the collector's four listings start
    /// together) read Nova's version document once, not once each.
    #[test]
    fn concurrent_callers_negotiate_novas_microversion_once() {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v2.1", l.local_addr().unwrap());
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { return };
                let a = a.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    a.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that every caller arrives meanwhile.
                    std::thread::sleep(Duration::from_millis(300));
                    let body =
                        r#"{"version": {"id": "v2.1", "version": "2.100", "min_version": "2.1"}}"#;
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        let s = with_catalog(
            &format!(
                "    auth_type: admin_token\n    auth: {{token: t}}\n    compute_endpoint_override: {url}\n"
            ),
            json!([]),
        );
        let versions: Vec<String> = std::thread::scope(|t| {
            let calls: Vec<_> = (0..8).map(|_| t.spawn(|| s.nova_version())).collect();
            calls
                .into_iter()
                .map(|c| c.join().unwrap().unwrap())
                .collect()
        });
        assert!(versions.iter().all(|v| v == "2.96"), "{versions:?}");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "Nova's version document asked more than once"
        );
    }
}
