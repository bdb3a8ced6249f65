//! The real Keystone that scripts/services/keystone.sh starts: its URL, the
//! users it made (admin, sextant-reader, sextant-member, sextant-service,
//! each with a random password), and the calls tests make of it (tokens,
//! revocation, an `infra-optim` endpoint in a region of the test's own).

use serde_json::{Value, json};
use std::time::Duration;

/// A user of the test Keystone: name, password, project.
#[derive(Clone, Debug)]
pub struct User {
    /// Its name.
    pub name: &'static str,
    /// Its password.
    pub password: String,
    /// The project its tokens are scoped to.
    pub project: &'static str,
}

/// The test Keystone.
pub struct Keystone {
    /// `http://127.0.0.1:PORT/v3`.
    pub url: String,
    agent: ureq::Agent,
}

impl Default for Keystone {
    fn default() -> Self {
        Self::new()
    }
}

impl Keystone {
    /// The Keystone of this run (fails when it is not running).
    pub fn new() -> Self {
        Self {
            url: super::service_url("SEXTANT_TEST_KEYSTONE_URL"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        }
    }

    /// Its admin (role admin on project admin).
    pub fn admin() -> User {
        User {
            name: "admin",
            password: super::service_url("SEXTANT_TEST_KEYSTONE_ADMIN_PASSWORD"),
            project: "admin",
        }
    }
    /// sextant-reader (role reader on project sextant).
    pub fn reader() -> User {
        User {
            name: "sextant-reader",
            password: super::service_url("SEXTANT_TEST_KEYSTONE_READER_PASSWORD"),
            project: "sextant",
        }
    }
    /// sextant-member (role member, which implies reader, on project sextant).
    pub fn member() -> User {
        User {
            name: "sextant-member",
            password: super::service_url("SEXTANT_TEST_KEYSTONE_MEMBER_PASSWORD"),
            project: "sextant",
        }
    }
    /// sextant-service (role service on project service).
    pub fn service() -> User {
        User {
            name: "sextant-service",
            password: super::service_url("SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD"),
            project: "service",
        }
    }
    /// How long its tokens live.
    pub fn token_ttl() -> Duration {
        let s = super::service_url("SEXTANT_TEST_KEYSTONE_TOKEN_TTL");
        Duration::from_secs(s.parse().expect("a number of seconds"))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Option<String>, Value) {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .expect("request");
        let resp = self.agent.run(req).expect("Keystone answers");
        let status = resp.status().as_u16();
        let subject = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (
            status,
            subject,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// A project-scoped token of `user`, and the token's body.
    pub fn token(&self, user: &User) -> (String, Value) {
        let (status, subject, body) = self.send(
            "POST",
            "/auth/tokens",
            &[],
            Some(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user.name, "domain": {"id": "default"}, "password": user.password}}},
                "scope": {"project": {"name": user.project, "domain": {"id": "default"}}}}})),
        );
        assert_eq!(status, 201, "token of {}: {body}", user.name);
        (subject.expect("X-Subject-Token"), body)
    }

    /// Revokes `token` (as the admin).
    pub fn revoke(&self, token: &str) {
        let (admin, _) = self.token(&Self::admin());
        let (status, _, body) = self.send(
            "DELETE",
            "/auth/tokens",
            &[("X-Auth-Token", &admin), ("X-Subject-Token", token)],
            None,
        );
        assert_eq!(status, 204, "revoke: {body}");
    }

    /// An admin's call; panics unless it succeeds. The body.
    pub fn admin_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (admin, _) = self.token(&Self::admin());
        let (status, _, v) = self.send(method, path, &[("X-Auth-Token", &admin)], body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Registers an `infra-optim` service with a public endpoint at `url`
    /// in a new region of its own; the region's name. Dropping the guard
    /// removes them.
    pub fn infra_optim(&self, url: &str, region: &str) -> Registered<'_> {
        self.admin_call("POST", "/regions", Some(&json!({"region": {"id": region}})));
        let service = self.admin_call(
            "POST",
            "/services",
            Some(&json!({"service": {"type": "infra-optim", "name": "watcher", "enabled": true}})),
        )["service"]["id"]
            .as_str()
            .expect("service id")
            .to_string();
        self.admin_call(
            "POST",
            "/endpoints",
            Some(
                &json!({"endpoint": {"service_id": service, "interface": "public",
                "url": url, "region_id": region, "enabled": true}}),
            ),
        );
        Registered {
            keystone: self,
            service,
            region: region.to_string(),
        }
    }
}

/// An `infra-optim` service registered by a test, removed when dropped.
pub struct Registered<'a> {
    keystone: &'a Keystone,
    service: String,
    /// Its region.
    pub region: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        // Deleting a service deletes its endpoints.
        let (admin, _) = self.keystone.token(&Keystone::admin());
        let h = [("X-Auth-Token", admin.as_str())];
        let _ = self
            .keystone
            .send("DELETE", &format!("/services/{}", self.service), &h, None);
        let _ = self
            .keystone
            .send("DELETE", &format!("/regions/{}", self.region), &h, None);
    }
}
