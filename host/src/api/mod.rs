//! Watcher's REST API v1 (microversions 1.0 to 1.7), served by `sextant
//! serve` (`api:` in the config, or `serve --api ADDR`), so that an
//! operator's existing tools (python-watcherclient, `openstack optimize`)
//! work unchanged against Sextant (watcher-service-facts.md section 1).
//!
//! Layout: `router.rs` builds the routes and the layers (request id,
//! Watcher's error body for every refusal, timeouts, body size, auth,
//! microversions); `version.rs` negotiates the microversion; `error.rs`
//! is Watcher's double-encoded error body; `auth.rs` authenticates and
//! applies the policy (`policy.rs`: Watcher's default rules, a policy
//! file over them), `keystone.rs` validates tokens with Keystone; `pages.rs` reads the paging query and
//! writes `next`; `action_json.rs` writes actions' JSON straight into the
//! response and `page_cache.rs` keeps the plain lists of plans' actions
//! while their plan is unchanged, `single_flight.rs` has concurrent
//! requests for one such list share one check (and build); `patch.rs` checks RFC 6902 bodies; `state.rs` holds what
//! handlers share (the store pool, run on tokio's blocking threads with
//! bounded concurrency: `store_permits.rs`, fewer at once while this
//! `serve` applies a plan). One file per resource: `root.rs` (discovery),
//! `goals.rs`, `strategies.rs`, `audit_templates.rs`, `audits.rs`,
//! `action_plans.rs`, `actions.rs`, `scoring_engines.rs`, `services.rs`,
//! `data_model.rs`, `webhooks.rs` (and `alertmanager.rs`, Alertmanager's
//! receiver), and Sextant's own `action_types.rs`, `events.rs` (paged, or
//! followed as server-sent events), `policies.rs`, `plugins.rs` and the
//! plan graph (in `action_plans.rs`). Sextant's extra fields on Watcher's
//! resources (an action's `action_type_version` and `outputs`) come only
//! with `Sextant-Extras: true` (`links.rs`).
//! Domain rules live in `ops/`, shared with the CLI.

mod action_json;
mod action_plans;
mod action_types;
mod actions;
mod alertmanager;
mod audit_templates;
mod audits;
mod auth;
mod data_model;
mod error;
mod events;
mod goals;
mod keystone;
mod links;
mod openapi;
mod page_cache;
mod pages;
mod patch;
mod plugins;
mod policies;
mod policy;
mod root;
mod router;
mod schemas;
mod scoring_engines;
mod services;
mod single_flight;
mod state;
mod store_permits;
mod strategies;
mod tls;
mod version;
mod webhooks;

pub use alertmanager::AlertmanagerConfig;
pub use auth::{AuthMode, TokenEntry};
pub use keystone::KeystoneConfig;
pub use state::{ApiContext, Applying, ServiceClock};
pub use tls::TlsConfig;

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The `api:` section of the config file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The address to listen on (default `127.0.0.1:9322`, Watcher's).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `none` (loopback only; every caller is admin), `tokens` or
    /// `keystone`.
    #[serde(default)]
    pub auth: AuthMode,
    /// With `auth: tokens`: the accepted tokens, by SHA-256.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// With `auth: keystone`: Keystone and the service user.
    #[serde(default)]
    pub keystone: Option<KeystoneConfig>,
    /// A YAML file of policy rules over Watcher's defaults.
    #[serde(default)]
    pub policy_file: Option<std::path::PathBuf>,
    /// The most items a list returns (Watcher's `[api] max_limit`, 1000).
    #[serde(default = "default_max_limit")]
    pub max_limit: u32,
    /// The largest request body in bytes (default 114688, oslo's
    /// `max_request_body_size`); a bigger one is refused with 413.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// How long a request may take before it is answered 408 (default
    /// 30 s): seconds or a duration.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Store calls running at once, at most (default 8); more wait.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Store calls running at once while this `serve` applies a plan
    /// (default 1; at most `concurrency`): the applier's own database work
    /// goes first. On PostgreSQL each store call is a backend process at
    /// the server's priority, so eight of them busy with audits left the
    /// applier's one a ninth of the server's CPU (docs/api.md).
    #[serde(default = "default_concurrency_while_applying")]
    pub concurrency_while_applying: usize,
    /// The threads that read requests and write answers (the API
    /// runtime's workers; default 2). Fewer than the machine's cores
    /// leaves the applier and the decision engine of the same `serve` a
    /// core however busy the API is; on the 2-core benchmark machine 1
    /// did not lower the applier's ratio measurably and raised the list's
    /// p99 (docs/api.md).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Serve HTTPS with this certificate and key (PEM).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The Alertmanager receiver (`POST /v1/webhooks/alertmanager`): the
    /// alert label naming the audit, how long a triggering alert is
    /// remembered.
    #[serde(default)]
    pub alertmanager: AlertmanagerConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9322))
}
fn default_max_limit() -> u32 {
    1000
}
fn default_max_body() -> usize {
    114_688
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    8
}
fn default_concurrency_while_applying() -> usize {
    1
}
fn default_workers() -> usize {
    2
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(f64),
        Text(String),
    }
    let text = match Text::deserialize(d)? {
        Text::Seconds(s) => s.to_string(),
        Text::Text(t) => t,
    };
    crate::duration::parse_text(&text).map_err(serde::de::Error::custom)
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            auth: AuthMode::default(),
            tokens: Vec::new(),
            keystone: None,
            policy_file: None,
            max_limit: default_max_limit(),
            max_body: default_max_body(),
            timeout: default_timeout(),
            concurrency: default_concurrency(),
            concurrency_while_applying: default_concurrency_while_applying(),
            workers: default_workers(),
            tls: None,
            alertmanager: AlertmanagerConfig::default(),
        }
    }
}

/// The nice value of the API's threads (its workers and its blocking
/// store calls): when the CPUs are short, the applier and the decision
/// engine of the same `serve` (nice 0) run first, and API requests wait
/// instead (Linux applies nice to each thread).
pub const API_NICE: i32 = 5;

fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), API_NICE) {
        tracing::debug!("api: cannot lower the priority of thread {tid:?}: {e}");
    }
}

/// Why the API did not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// The configuration is not acceptable (exit status 2).
    #[error("api: {0}")]
    Config(String),
    /// The address could not be bound, or the runtime not built.
    #[error("api: {0}")]
    Io(String),
}

impl ApiConfig {
    /// Checks what cannot be checked by parsing: `auth: none` only on
    /// loopback, tokens only with `auth: tokens`, `keystone:` with `auth:
    /// keystone`, a policy file that parses, limits at least 1.
    pub fn check(&self) -> Result<(), ApiStartError> {
        if self.auth == AuthMode::None && !self.listen.ip().is_loopback() {
            return Err(ApiStartError::Config(format!(
                "auth: none lets every caller act as admin, so the API listens only on loopback; {} is not (set auth: tokens or keystone, or listen on 127.0.0.1)",
                self.listen
            )));
        }
        if self.auth == AuthMode::Tokens && self.tokens.is_empty() {
            return Err(ApiStartError::Config(
                "auth: tokens needs at least one entry in tokens".into(),
            ));
        }
        if self.max_limit == 0
            || self.concurrency == 0
            || self.concurrency_while_applying == 0
            || self.max_body == 0
            || self.workers == 0
        {
            return Err(ApiStartError::Config(
                "max_limit, max_body, concurrency, concurrency_while_applying and workers must be at least 1".into(),
            ));
        }
        if self.auth == AuthMode::Keystone && self.keystone.is_none() {
            return Err(ApiStartError::Config(
                "auth: keystone needs a keystone: section (auth_url, username, project_name)"
                    .into(),
            ));
        }
        for t in &self.tokens {
            t.check().map_err(ApiStartError::Config)?;
        }
        // The policy file and the Keystone settings: read and checked.
        auth::Guard::new(self)?;
        Ok(())
    }
}

/// A running API: its own thread with a tokio runtime. Dropping it, or
/// [`ApiServer::shutdown`], stops accepting, lets the requests under way
/// finish (up to the request timeout) and joins the thread.
pub struct ApiServer {
    addr: SocketAddr,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `cfg.listen` and serves on a thread of its own.
    pub fn start(cfg: ApiConfig, ctx: ApiContext) -> Result<Self, ApiStartError> {
        cfg.check()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.workers)
            .max_blocking_threads(cfg.concurrency.max(1) + auth::KEYSTONE_CALLS)
            .thread_name("sextant-api")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|e| ApiStartError::Io(format!("runtime: {e}")))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(cfg.listen))
            .map_err(|e| ApiStartError::Io(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ApiStartError::Io(e.to_string()))?;
        let acceptor = cfg.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        let guard = std::sync::Arc::new(auth::Guard::new(&cfg)?);
        let st = std::sync::Arc::new(state::AppState::new(ctx, cfg.clone()));
        let stopping = std::sync::Arc::clone(&st.stopping);
        let app = router::build(st, guard);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace = cfg.timeout;
        let thread = std::thread::Builder::new()
            .name("sextant-api".into())
            .spawn(move || {
                lower_priority();
                rt.block_on(async move {
                    let stopped = async move {
                        let _ = rx.await;
                    };
                    let served = match acceptor {
                        Some(acceptor) => {
                            let tls = tls::TlsListener {
                                tcp: listener,
                                acceptor,
                            };
                            axum::serve(tls, app).with_graceful_shutdown(stopped).await
                        }
                        None => {
                            axum::serve(listener, app)
                                .with_graceful_shutdown(stopped)
                                .await
                        }
                    };
                    if let Err(e) = served {
                        tracing::error!("api: {e}");
                    }
                });
                // Requests still under way past the graceful stop: give
                // them the request timeout, then leave.
                rt.shutdown_timeout(grace);
            })
            .map_err(|e| ApiStartError::Io(e.to_string()))?;
        tracing::info!(
            "api listening on {}://{addr} (auth: {})",
            if cfg.tls.is_some() { "https" } else { "http" },
            cfg.auth.as_str()
        );
        Ok(Self {
            addr,
            stopping,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            tracing::info!("api stopped");
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
