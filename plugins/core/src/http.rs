//! `http`: sends one HTTP request (plain HTTP; no TLS in this build). A
//! status outside `expected_status` fails the action; a JSON object body
//! becomes the outputs (other bodies are returned as `{"status", "body"}`).
//!
//! Redirects are followed here, not by ureq: one to another origin is
//! refused unless `allow_cross_origin_redirects` is set, and then carries
//! none of the configured headers. The response body is read up to
//! `max_output` bytes; a longer one fails the action.

use crate::params;
use crate::redirect::{self, MAX_REDIRECTS, Origin};
use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use ureq::http::{Method, StatusCode, Uri};

/// The default `timeout`, for the request and its redirects together.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHandler {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    expected_status: Option<Vec<u16>>,
    #[serde(default)]
    timeout: Option<Value>,
    /// The most bytes of response body read; a longer body fails the action.
    #[serde(default)]
    max_output: Option<Value>,
    /// Follow a redirect to another origin (without the configured headers)
    /// instead of failing.
    #[serde(default)]
    allow_cross_origin_redirects: bool,
}

fn get() -> String {
    "GET".into()
}

/// The request as it is sent to one URL of a redirect chain.
struct Hop {
    method: Method,
    url: Uri,
    body: Vec<u8>,
    /// The body is JSON this handler serialised (so it names the type).
    json_body: bool,
    /// The configured headers go along (false once another origin is hit).
    configured_headers: bool,
}

impl HttpHandler {
    fn timeout(&self) -> Result<Duration, PluginError> {
        params::duration(self.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout")
    }

    fn failed(&self, what: impl std::fmt::Display) -> PluginError {
        PluginError::execution_failed(format!("{} {}: {what}", self.method, self.url))
    }

    fn timed_out(&self, timeout: Duration) -> PluginError {
        PluginError::execution_failed(format!(
            "{} {} timed out after {}s",
            self.method,
            self.url,
            timeout.as_secs_f64()
        ))
    }

    fn request(&self, hop: &Hop) -> Result<ureq::http::Request<Vec<u8>>, PluginError> {
        let mut req = ureq::http::Request::builder()
            .method(hop.method.clone())
            .uri(hop.url.clone());
        let mut named_type = false;
        if hop.configured_headers {
            for (k, v) in &self.headers {
                named_type |= k.eq_ignore_ascii_case("content-type");
                req = req.header(k.as_str(), v.as_str());
            }
        }
        if hop.json_body && !hop.body.is_empty() && !named_type {
            req = req.header("content-type", "application/json");
        }
        req.body(hop.body.clone())
            .map_err(|e| PluginError::invalid_input(format!("bad request: {e}")))
    }

    /// Where a redirect answer sends the request next; `None` when `resp`
    /// is no redirect to follow.
    fn next_hop(
        &self,
        hop: &Hop,
        resp: &ureq::http::Response<ureq::Body>,
        origin: &Origin,
    ) -> Result<Option<Hop>, PluginError> {
        let status = resp.status();
        let followed = [
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::FOUND,
            StatusCode::SEE_OTHER,
            StatusCode::TEMPORARY_REDIRECT,
            StatusCode::PERMANENT_REDIRECT,
        ];
        if !followed.contains(&status) {
            return Ok(None);
        }
        let Some(location) = resp.headers().get("location").and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let url = redirect::resolve(&hop.url, location).map_err(|e| self.failed(e))?;
        let to = Origin::of(&url);
        let mut configured_headers = hop.configured_headers;
        if &to != origin {
            if !self.allow_cross_origin_redirects {
                return Err(self.failed(format!(
                    "answered {} with a redirect to another origin ({to}); refused \
                     (allow_cross_origin_redirects: true follows it, without the configured headers)",
                    status.as_u16()
                )));
            }
            configured_headers = false;
        }
        // 303, and 301/302 after a POST, turn the request into a GET without
        // a body (RFC 9110 section 15.4); 307 and 308 repeat it as it was.
        let to_get = status == StatusCode::SEE_OTHER && hop.method != Method::HEAD
            || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                && hop.method == Method::POST;
        Ok(Some(Hop {
            method: if to_get {
                Method::GET
            } else {
                hop.method.clone()
            },
            url,
            body: if to_get { Vec::new() } else { hop.body.clone() },
            json_body: hop.json_body && !to_get,
            configured_headers,
        }))
    }
}

impl ActionHandler for HttpHandler {
    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        self.method
            .parse::<Method>()
            .map_err(|e| PluginError::invalid_input(format!("method {:?}: {e}", self.method)))?;
        self.url
            .parse::<Uri>()
            .map_err(|e| PluginError::invalid_input(format!("url {:?}: {e}", self.url)))?;
        self.timeout()?;
        params::max_output(self.max_output.as_ref())?;
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        self.pre_condition(ctx)?;
        let timeout = self.timeout()?;
        let max_output = params::max_output(self.max_output.as_ref())?;
        let deadline = Instant::now().checked_add(timeout);
        let url: Uri = self
            .url
            .parse()
            .map_err(|e| PluginError::invalid_input(format!("url {:?}: {e}", self.url)))?;
        let origin = Origin::of(&url);
        let (body, json_body) = match &self.body {
            None | Some(Value::Null) => (Vec::new(), false),
            Some(Value::String(s)) => (s.clone().into_bytes(), false),
            Some(v) => (
                serde_json::to_vec(v).map_err(|e| PluginError::invalid_input(e.to_string()))?,
                true,
            ),
        };
        let mut hop = Hop {
            method: self.method.parse().map_err(|e| {
                PluginError::invalid_input(format!("method {:?}: {e}", self.method))
            })?,
            url,
            body,
            json_body,
            configured_headers: true,
        };
        let mut redirects = 0;
        let mut resp = loop {
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Err(self.timed_out(timeout));
            }
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(left))
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into();
            let resp = agent.run(self.request(&hop)?).map_err(|e| match e {
                ureq::Error::Timeout(_) => self.timed_out(timeout),
                e => self.failed(e),
            })?;
            match self.next_hop(&hop, &resp, &origin)? {
                None => break resp,
                Some(_) if redirects == MAX_REDIRECTS => {
                    return Err(self.failed(format!("more than {MAX_REDIRECTS} redirects")));
                }
                Some(next) => {
                    redirects += 1;
                    hop = next;
                }
            }
        };
        let status = resp.status().as_u16();
        let too_large = || {
            self.failed(format!(
                "answered {status} with a body larger than max_output ({max_output} bytes)"
            ))
        };
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(max_output as u64 + 1)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => too_large(),
                ureq::Error::Timeout(_) => self.timed_out(timeout),
                e => self.failed(format!("reading the response: {e}")),
            })?;
        if bytes.len() > max_output {
            return Err(too_large());
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let ok = match &self.expected_status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        };
        if !ok {
            let snippet: String = text.chars().take(500).collect();
            return Err(PluginError::execution_failed(format!(
                "{} {} answered {status} (expected {}): {snippet}",
                self.method,
                self.url,
                self.expected_status
                    .as_ref()
                    .map(|l| format!("{l:?}"))
                    .unwrap_or_else(|| "2xx".into())
            )));
        }
        Ok(match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "status": status, "body": text }),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "method": {"type": "string", "default": "GET"},
    "url": {"type": "string", "minLength": 1},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "body": {},
    "expected_status": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}},
    "timeout": {"type": ["number", "string"]},
    "max_output": {"type": ["integer", "string"]},
    "allow_cross_origin_redirects": {"type": "boolean", "default": false}
  }
}"#;
