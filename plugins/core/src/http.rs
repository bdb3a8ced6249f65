//! `http`: sends one HTTP request (plain HTTP; no TLS in this build). A
//! status outside `expected_status` fails the action; a JSON object body
//! becomes the outputs (other bodies are returned as `{"status", "body"}`).

use crate::params;
use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

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
}

fn get() -> String {
    "GET".into()
}

impl ActionHandler for HttpHandler {
    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        self.method
            .parse::<ureq::http::Method>()
            .map_err(|e| PluginError::invalid_input(format!("method {:?}: {e}", self.method)))?;
        self.url
            .parse::<ureq::http::Uri>()
            .map_err(|e| PluginError::invalid_input(format!("url {:?}: {e}", self.url)))?;
        params::duration(self.timeout.as_ref(), Duration::from_secs(30), "timeout")?;
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        self.pre_condition(ctx)?;
        let timeout = params::duration(self.timeout.as_ref(), Duration::from_secs(30), "timeout")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(self.url.as_str());
        let body: Vec<u8> = match &self.body {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(v) => {
                if !self
                    .headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    req = req.header("content-type", "application/json");
                }
                serde_json::to_vec(v).map_err(|e| PluginError::invalid_input(e.to_string()))?
            }
        };
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(body)
            .map_err(|e| PluginError::invalid_input(format!("bad request: {e}")))?;
        let mut resp = agent.run(req).map_err(|e| match e {
            ureq::Error::Timeout(_) => PluginError::execution_failed(format!(
                "{} {} timed out after {}s",
                self.method,
                self.url,
                timeout.as_secs_f64()
            )),
            e => PluginError::execution_failed(format!("{} {}: {e}", self.method, self.url)),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| PluginError::execution_failed(format!("reading the response: {e}")))?;
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
    "timeout": {"type": ["number", "string"]}
  }
}"#;
