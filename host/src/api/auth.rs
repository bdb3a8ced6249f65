//! Authentication and Watcher's default policy (watcher-service-facts.md
//! 1.2, 1.7): every rule is `role:admin or role:administrator`, except
//! `webhook:trigger`, which also takes `service`; Sextant adds `reader`,
//! which may make every GET. `auth: none` treats every caller as admin
//! (and is refused unless the API listens on loopback); `auth: tokens`
//! takes `X-Auth-Token` (or `Authorization: Bearer`) and looks its SHA-256 up among the configured
//! tokens (the token itself is never stored nor logged). A refusal is 401
//! (no or unknown token) or 403 (the roles do not allow it) with Watcher's
//! error body, and is logged with the caller and what it asked.

use super::error::ApiError;
use super::state::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How callers are authenticated.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: every caller is admin (loopback only).
    #[default]
    None,
    /// Static tokens from the config, by SHA-256, each with roles.
    Tokens,
}

impl AuthMode {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Tokens => "tokens",
        }
    }
}

/// One accepted token.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (what the logs name).
    pub name: String,
    /// The token's SHA-256, in hex (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// Its roles: `admin` (everything), `reader` (every GET), `service`
    /// (webhooks).
    pub roles: Vec<String>,
}

impl TokenEntry {
    /// A hash that is 64 hex digits.
    pub fn check(&self) -> Result<(), String> {
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "token {}: sha256 must be 64 hex digits (printf %s TOKEN | sha256sum)",
                self.name
            ));
        }
        Ok(())
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name, or `anonymous` under `auth: none`.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
}

impl Caller {
    fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
    fn is_admin(&self) -> bool {
        self.has("admin") || self.has("administrator")
    }
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token a request presents: `X-Auth-Token`, else `Authorization:
/// Bearer` (what Alertmanager's webhook sends, `http_config.authorization`).
fn presented_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::trim)
    };
    header("x-auth-token")
        .or_else(|| {
            header("authorization").and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
        })
        .filter(|t| !t.is_empty())
}

/// The rule Watcher names for a request (`audit:create`, …).
fn rule(method: &Method, path: &str) -> String {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let mut parts = path.trim_start_matches('/').split('/');
    let resource = parts.next().unwrap_or("");
    let singular = resource.trim_end_matches('s');
    let action = match *method {
        Method::GET if parts.next().is_some_and(|p| !p.is_empty() && p != "detail") => "get",
        Method::GET => "get_all",
        Method::POST if resource == "webhooks" => "trigger",
        Method::POST if path.ends_with("/start") => "start",
        Method::POST => "create",
        Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "other",
    };
    format!("{singular}:{action}")
}

/// Whether the default policy lets `caller` make this request.
fn allowed(caller: &Caller, method: &Method, path: &str) -> bool {
    if caller.is_admin() {
        return true;
    }
    let path = path.strip_prefix("/v1").unwrap_or(path);
    if path.starts_with("/webhooks/") && *method == Method::POST {
        return caller.has("service");
    }
    matches!(*method, Method::GET | Method::HEAD) && caller.has("reader")
}

/// The middleware of every `/v1` route.
pub async fn layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let caller = match state.cfg.auth {
        AuthMode::None => Caller {
            name: "anonymous".into(),
            roles: vec!["admin".into()],
        },
        AuthMode::Tokens => {
            let token = presented_token(req.headers());
            let Some(token) = token else {
                tracing::warn!("api: refused {method} {path}: no X-Auth-Token (401)");
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "The request you have made requires authentication.",
                )
                .into_response();
            };
            let digest = hex_sha256(token);
            match state
                .cfg
                .tokens
                .iter()
                .find(|t| t.sha256.eq_ignore_ascii_case(&digest))
            {
                Some(t) => Caller {
                    name: t.name.clone(),
                    roles: t.roles.clone(),
                },
                None => {
                    tracing::warn!("api: refused {method} {path}: an unknown token (401)");
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "The request you have made requires authentication.",
                    )
                    .into_response();
                }
            }
        }
    };
    if !allowed(&caller, &method, &path) {
        let rule = rule(&method, &path);
        tracing::warn!(
            "api: refused {method} {path} for {} (roles {}): policy {rule} (403)",
            caller.name,
            caller.roles.join(",")
        );
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Policy doesn't allow {rule} to be performed."),
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str]) -> Caller {
        Caller {
            name: "t".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn watcher_s_default_policy_with_a_reader_role() {
        let admin = caller(&["admin"]);
        let reader = caller(&["reader"]);
        let service = caller(&["service"]);
        assert!(allowed(&admin, &Method::DELETE, "/v1/audits/x"));
        assert!(allowed(
            &caller(&["Administrator"]),
            &Method::POST,
            "/v1/audits"
        ));
        assert!(allowed(&reader, &Method::GET, "/v1/audits"));
        assert!(!allowed(&reader, &Method::POST, "/v1/audits"));
        assert!(!allowed(&reader, &Method::POST, "/v1/webhooks/a"));
        assert!(allowed(&service, &Method::POST, "/v1/webhooks/a"));
        assert!(allowed(&service, &Method::POST, "/webhooks/a"));
        assert_eq!(rule(&Method::POST, "/audits"), "audit:create");
        assert!(!allowed(&service, &Method::GET, "/v1/goals"));
        assert_eq!(rule(&Method::POST, "/v1/audits"), "audit:create");
        assert_eq!(rule(&Method::GET, "/v1/goals/dummy"), "goal:get");
        assert_eq!(rule(&Method::GET, "/v1/goals/detail"), "goal:get_all");
        assert_eq!(
            rule(&Method::POST, "/v1/action_plans/u/start"),
            "action_plan:start"
        );
    }

    #[test]
    fn a_token_comes_from_x_auth_token_or_a_bearer_authorization() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert("authorization", "Bearer  tok ".parse().unwrap());
        assert_eq!(presented_token(&h), Some("tok"));
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(presented_token(&h), None);
        h.insert("x-auth-token", "xt".parse().unwrap());
        assert_eq!(presented_token(&h), Some("xt"));
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hex_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
