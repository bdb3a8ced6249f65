//! One HTTP exchange with an OpenStack service, with the retry policy
//! operators expect: a 409 (a task-state conflict) and a 503 are tried again
//! with exponential backoff, a connection that cannot be made a few times
//! more, any other 4xx never (it will not change). Errors carry the
//! service's own message (Nova's `{"badRequest": {"message": …}}`,
//! Placement's `{"errors": [{"detail": …}]}`, Keystone's
//! `{"error": {"message": …}}`), and never a header: the token stays out of
//! every message.

use serde_json::Value;
use sextant_plugin_api::prelude::AbortSignal;
use std::time::Duration;

/// A request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error status.
    #[error("{service} {method} {path}: HTTP {status}: {message}")]
    Status {
        /// `nova`, `placement`, `keystone`.
        service: &'static str,
        /// The method.
        method: &'static str,
        /// The path (no query secrets: OpenStack puts none there).
        path: String,
        /// The status.
        status: u16,
        /// The service's message.
        message: String,
    },
    /// No answer.
    #[error("{service} at {url} is unreachable: {message}")]
    Unreachable {
        /// The service.
        service: &'static str,
        /// Its endpoint.
        url: String,
        /// Why.
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("{service} {path}: unexpected reply: {message}")]
    Invalid {
        /// The service.
        service: &'static str,
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The cloud is misconfigured (no endpoint, no credentials, …).
    #[error("{0}")]
    Config(String),
    /// Aborted while waiting.
    #[error("aborted")]
    Aborted,
}

impl ApiError {
    /// The HTTP status, for an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// HTTP methods used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One request.
pub struct Request<'a> {
    /// Which service, for messages.
    pub service: &'static str,
    /// The method.
    pub method: Method,
    /// The service's endpoint (no trailing slash).
    pub endpoint: &'a str,
    /// The path under it, with its query.
    pub path: &'a str,
    /// Headers (token, microversion).
    pub headers: Vec<(&'static str, String)>,
    /// A JSON body.
    pub body: Option<&'a Value>,
}

/// A successful reply.
#[derive(Debug)]
pub struct Reply {
    /// Keystone's `X-Subject-Token`.
    pub subject_token: Option<crate::cloud::Secret>,
    /// The request id the service gave this request.
    pub request_id: Option<String>,
    /// The body, parsed (null when empty).
    pub body: Value,
}

/// The backoff policy.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Tries of a 409 or 503, in all.
    pub conflict_attempts: u32,
    /// Tries of a connection that fails, in all.
    pub connect_attempts: u32,
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            conflict_attempts: 6,
            connect_attempts: 3,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

/// The certificates of a CA bundle (clouds.yaml's `cacert`).
pub struct CaBundle(Vec<ureq::tls::Certificate<'static>>);

impl CaBundle {
    /// Reads the PEM certificates of `path`; one at least.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cacert {}: {e}", path.display()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => return Err(format!("cacert {}: {e}", path.display())),
            }
        }
        if certs.is_empty() {
            return Err(format!(
                "cacert {}: no PEM certificate in it",
                path.display()
            ));
        }
        Ok(Self(certs))
    }
}

/// The largest body read: 64 MiB (a servers page of 1,000 is ~5 MiB).
const MAX_BODY: u64 = 64 << 20;

/// An HTTP agent with the policy.
pub struct Http {
    agent: ureq::Agent,
    retry: Retry,
}

impl Http {
    /// An agent whose every request ends within `timeout`; https
    /// endpoints are verified against `roots` (a CA bundle), else against
    /// the web's root certificates.
    pub fn new(timeout: Duration, retry: Retry, roots: Option<&CaBundle>) -> Self {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(r) = roots {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&r.0));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(10)))
            .user_agent("sextant-openstack")
            .tls_config(tls.build())
            .build()
            .into();
        Self { agent, retry }
    }

    /// Sends `req`, retrying as the policy says; `abort` ends the waits.
    pub fn send(&self, req: &Request<'_>, abort: Option<&AbortSignal>) -> Result<Reply, ApiError> {
        let mut wait = self.retry.initial;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let retry = match self.once(req) {
                Ok(r) => return Ok(r),
                Err(
                    e @ ApiError::Status {
                        status: 409 | 503, ..
                    },
                ) if attempt < self.retry.conflict_attempts => e,
                Err(e @ ApiError::Unreachable { .. }) if attempt < self.retry.connect_attempts => e,
                Err(e) => return Err(e),
            };
            sextant_plugin_api::prelude::log_info(&format!("{retry}; trying again in {wait:?}"));
            let slept = match abort {
                Some(a) => a.sleep(wait),
                None => {
                    std::thread::sleep(wait);
                    true
                }
            };
            if !slept {
                return Err(ApiError::Aborted);
            }
            wait = (wait * 2).min(self.retry.max);
        }
    }

    fn once(&self, req: &Request<'_>) -> Result<Reply, ApiError> {
        let url = format!("{}{}", req.endpoint, req.path);
        let method = req.method.name();
        let unreachable = |e: ureq::Error| ApiError::Unreachable {
            service: req.service,
            url: req.endpoint.to_string(),
            message: e.to_string(),
        };
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        for (k, v) in &req.headers {
            builder = builder.header(*k, v.as_str());
        }
        let body = match req.body {
            Some(b) => {
                builder = builder.header("Content-Type", "application/json");
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let http_req = builder.body(body).map_err(|e| ApiError::Invalid {
            service: req.service,
            path: req.path.to_string(),
            message: format!("bad request URL {url}: {e}"),
        })?;
        let resp = self.agent.run(http_req).map_err(unreachable)?;
        let status = resp.status().as_u16();
        let subject_token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(crate::cloud::Secret::new);
        let request_id = resp
            .headers()
            .get("x-openstack-request-id")
            .or_else(|| resp.headers().get("x-compute-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .into_body()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(unreachable)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                service: req.service,
                method,
                path: req.path.to_string(),
                status,
                message: fault_message(&text),
            });
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| ApiError::Invalid {
                service: req.service,
                path: req.path.to_string(),
                message: format!("not JSON: {e}"),
            })?
        };
        Ok(Reply {
            subject_token,
            request_id,
            body,
        })
    }
}

/// The message of an OpenStack error body, or its text.
pub fn fault_message(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        let t = text.trim();
        return if t.is_empty() {
            "(no message)".into()
        } else {
            t.chars().take(500).collect()
        };
    };
    // Placement: {"errors": [{"detail": …}]}
    if let Some(d) = v["errors"][0]["detail"].as_str() {
        return d.to_string();
    }
    // Nova {"badRequest": {"message": …}}, Keystone {"error": {"message": …}}
    if let Some(obj) = v.as_object() {
        for inner in obj.values() {
            if let Some(m) = inner["message"].as_str() {
                return m.to_string();
            }
        }
        if let Some(m) = v["message"].as_str() {
            return m.to_string();
        }
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn fault_messages_of_each_service() {
        assert_eq!(
            fault_message(
                r#"{"badRequest": {"code": 400, "message": "No valid host was found."}}"#
            ),
            "No valid host was found."
        );
        assert_eq!(
            fault_message(
                r#"{"errors": [{"status": 404, "title": "Not Found", "detail": "No resource provider"}]}"#
            ),
            "No resource provider"
        );
        assert_eq!(
            fault_message(
                r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(fault_message("Bad Gateway"), "Bad Gateway");
    }

    /// A loopback server answering each connection with the next status
    /// of `statuses` (then 200), counting requests.
    fn server(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let n = c.fetch_add(1, Ordering::SeqCst);
                let status = statuses.get(n).copied().unwrap_or(200);
                let body = if status == 200 {
                    "{}".to_string()
                } else {
                    format!(
                        r#"{{"conflictingRequest": {{"code": {status}, "message": "task state {n}"}}}}"#
                    )
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, count)
    }

    fn quick() -> Http {
        Http::new(
            Duration::from_secs(5),
            Retry {
                conflict_attempts: 4,
                connect_attempts: 2,
                initial: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
            None,
        )
    }

    fn get<'a>(endpoint: &'a str) -> Request<'a> {
        Request {
            service: "nova",
            method: Method::Get,
            endpoint,
            path: "/servers",
            headers: vec![("X-Auth-Token", "secret-token".into())],
            body: None,
        }
    }

    #[test]
    fn conflicts_and_unavailable_are_retried_until_they_pass() {
        let (url, count) = server(vec![409, 503, 409]);
        let r = quick().send(&get(&url), None).unwrap();
        assert_eq!(r.body, serde_json::json!({}));
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn conflicts_give_up_after_the_attempts_with_the_services_message() {
        let (url, count) = server(vec![409; 10]);
        let e = quick().send(&get(&url), None).unwrap_err();
        assert_eq!(count.load(Ordering::SeqCst), 4);
        let m = e.to_string();
        assert!(m.contains("HTTP 409") && m.contains("task state 3"), "{m}");
        assert!(!m.contains("secret-token"), "{m}");
    }

    #[test]
    fn other_client_errors_are_not_retried() {
        let (url, count) = server(vec![400, 400]);
        let e = quick().send(&get(&url), None).unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unreachable_endpoint_is_named() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = quick().send(&get(&url), None).unwrap_err().to_string();
        assert!(e.contains("unreachable") && e.contains(&url), "{e}");
    }
}
