//! Authentication, then the policy (`policy.rs`), for every `/v1` route.
//!
//! `auth: none` treats every caller as admin (and is refused unless the
//! API listens on loopback); `auth: tokens` takes `X-Auth-Token` (or
//! `Authorization: Bearer`) and looks
//! its SHA-256 up among the configured tokens (the token itself is never
//! stored nor logged); `auth: keystone` has Keystone validate it
//! (`keystone.rs`) and takes the roles from the token. A refusal is 401 (no
//! token, or one not accepted), 403 (the policy does not allow it) or 503
//! (Keystone cannot be asked), with Watcher's error body, and is logged
//! with the caller (user and project, or the token's name; never the
//! token) and the rule.

use super::error::ApiError;
use super::keystone::{Refusal, Validator};
use super::policy::{Credentials, Policy, rule_of};
use super::{ApiConfig, ApiStartError};
use axum::extract::{Request, State};
use axum::http::StatusCode;
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
    /// Tokens validated by Keystone v3.
    Keystone,
}

impl AuthMode {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Tokens => "tokens",
            AuthMode::Keystone => "keystone",
        }
    }
}

/// One accepted token.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (what the logs name).
    pub name: String,
    /// The token's SHA-256, in hex (`printf %s TOKEN | sha256sum`): a
    /// secret (a short token can be found from it), shown as `***`.
    pub sha256: crate::config::Secret,
    /// Its roles: `admin` (everything), `reader` (every GET), `service`
    /// (webhooks), or any a policy file names.
    pub roles: Vec<String>,
}

impl TokenEntry {
    /// A hash that is 64 hex digits.
    pub fn check(&self) -> Result<(), String> {
        let hash = self.sha256.expose();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
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
    /// The token's name, the Keystone user's name, or `anonymous` under
    /// `auth: none`.
    pub name: String,
    /// The Keystone user's id.
    pub user_id: Option<String>,
    /// The Keystone project's id.
    pub project_id: Option<String>,
    /// The Keystone project's name.
    pub project_name: Option<String>,
    /// Its roles.
    pub roles: Vec<String>,
}

impl Credentials for Caller {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }
}

impl std::fmt::Display for Caller {
    /// `name (user ID, project NAME/ID, roles a,b)`, for the logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (", self.name)?;
        if let Some(u) = &self.user_id {
            write!(f, "user {u}, ")?;
            match (&self.project_name, &self.project_id) {
                (Some(n), Some(p)) => write!(f, "project {n}/{p}, ")?,
                (None, Some(p)) => write!(f, "project {p}, ")?,
                _ => write!(f, "no project, ")?,
            }
        }
        write!(f, "roles {})", self.roles.join(","))
    }
}

/// How this server authenticates, and its policy.
pub struct Guard {
    mode: AuthMode,
    tokens: Vec<super::TokenEntry>,
    keystone: Option<Validator>,
    policy: Policy,
    /// Validations asked of Keystone at once: the runtime's blocking
    /// threads are the store calls' `concurrency` plus these two, so a
    /// slow Keystone never holds the threads the store needs.
    asking: tokio::sync::Semaphore,
}

/// Validations asked of Keystone at once, at most.
pub const KEYSTONE_CALLS: usize = 2;

impl Guard {
    /// The guard `cfg` describes: its policy file read and checked, its
    /// Keystone validator made (nothing asked of Keystone yet).
    pub fn new(cfg: &ApiConfig) -> Result<Self, ApiStartError> {
        let policy = match &cfg.policy_file {
            Some(f) => Policy::load(f).map_err(|e| ApiStartError::Config(e.to_string()))?,
            None => Policy::defaults(),
        };
        let keystone = match (cfg.auth, &cfg.keystone) {
            (AuthMode::Keystone, Some(k)) => {
                Some(Validator::new(k).map_err(ApiStartError::Config)?)
            }
            (AuthMode::Keystone, None) => {
                return Err(ApiStartError::Config(
                    "auth: keystone needs a keystone: section (auth_url, username, project_name)"
                        .into(),
                ));
            }
            _ => None,
        };
        Ok(Self {
            mode: cfg.auth,
            tokens: cfg.tokens.clone(),
            keystone,
            policy,
            asking: tokio::sync::Semaphore::new(KEYSTONE_CALLS),
        })
    }
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unauthorized() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
    )
    .into_response()
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

/// The middleware of every `/v1` route.
pub async fn layer(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let token = presented_token(req.headers()).map(str::to_string);
    let caller = match guard.mode {
        AuthMode::None => Caller {
            name: "anonymous".into(),
            user_id: None,
            project_id: None,
            project_name: None,
            roles: vec!["admin".into()],
        },
        AuthMode::Tokens | AuthMode::Keystone if token.is_none() => {
            tracing::warn!("api: refused {method} {path}: no X-Auth-Token (401)");
            return unauthorized();
        }
        AuthMode::Tokens => {
            let digest = hex_sha256(token.as_deref().unwrap_or_default());
            match guard
                .tokens
                .iter()
                .find(|t| t.sha256.expose().eq_ignore_ascii_case(&digest))
            {
                Some(t) => Caller {
                    name: t.name.clone(),
                    user_id: None,
                    project_id: None,
                    project_name: None,
                    roles: t.roles.clone(),
                },
                None => {
                    tracing::warn!("api: refused {method} {path}: an unknown token (401)");
                    return unauthorized();
                }
            }
        }
        AuthMode::Keystone => {
            let t = token.unwrap_or_default();
            let cached = guard.keystone.as_ref().and_then(|k| k.cached_identity(&t));
            let checked = match cached {
                Some(id) => Ok(Ok(id)),
                None => {
                    let Ok(_permit) = guard.asking.acquire().await else {
                        return ApiError::internal("token validation: closed").into_response();
                    };
                    let g = Arc::clone(&guard);
                    tokio::task::spawn_blocking(move || match &g.keystone {
                        Some(k) => k.validate(&t),
                        None => Err(Refusal::Invalid("no Keystone configured".into())),
                    })
                    .await
                }
            };
            match checked {
                Ok(Ok(id)) => Caller {
                    name: id.user_name,
                    user_id: Some(id.user_id),
                    project_id: id.project_id,
                    project_name: id.project_name,
                    roles: id.roles,
                },
                Ok(Err(Refusal::Invalid(why))) => {
                    tracing::warn!(
                        "api: refused {method} {path}: a token Keystone does not accept ({why}) (401)"
                    );
                    return unauthorized();
                }
                Ok(Err(e @ Refusal::Unavailable { .. })) => {
                    tracing::error!("api: refused {method} {path}: {e} (503)");
                    return ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The identity service (Keystone) cannot validate the token now; try again later.",
                    )
                    .into_response();
                }
                Err(e) => {
                    return ApiError::internal(format!("token validation: {e}")).into_response();
                }
            }
        }
    };
    let rule = rule_of(&method, &path);
    if !guard.policy.allows(&rule, &caller) {
        tracing::warn!("api: refused {method} {path} for {caller}: policy {rule} (403)");
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

    #[test]
    fn callers_are_logged_by_user_and_project_never_token() {
        let c = Caller {
            name: "alice".into(),
            user_id: Some("u1".into()),
            project_id: Some("p1".into()),
            project_name: Some("ops".into()),
            roles: vec!["member".into(), "reader".into()],
        };
        assert_eq!(
            c.to_string(),
            "alice (user u1, project ops/p1, roles member,reader)"
        );
    }
}
