//! What the handlers share: the store, reached through a small pool of
//! connections on tokio's blocking threads, at most `concurrency` calls at
//! once (the others wait for a permit), so that API traffic never runs on
//! the runtime's own threads nor crowds out the applier's commits; the
//! plugins and action types `serve` loaded; the decision engine's runs.

use super::ApiConfig;
use super::error::{ApiError, ApiResult};
use crate::action_types::{ActionTypeRegistry, LiveTypes};
use crate::decide::{AuditContext, ModelSource};
use crate::plugins::PluginRegistry;
use crate::store::{AuditRequestKind, PlanEventsMark, PlanMarks, Store};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// How many plans this `serve` is applying now: counted by its applier
/// threads, read by the API, whose store calls are bounded by
/// `concurrency_while_applying` while it is not zero.
#[derive(Clone, Debug, Default)]
pub struct Applying(Arc<std::sync::atomic::AtomicUsize>);

impl Applying {
    /// Counts one more plan being applied until the guard is dropped.
    pub fn enter(&self) -> ApplyingGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        ApplyingGuard(Arc::clone(&self.0))
    }

    /// Whether any plan is being applied.
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// One plan being applied (see [`Applying::enter`]).
#[derive(Debug)]
pub struct ApplyingGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ApplyingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// When `serve`'s loop (the decision engine and the applier's dispatcher)
/// last went round: what `GET /v1/services` reports as `last_seen_up`.
#[derive(Clone, Debug, Default)]
pub struct ServiceClock(Arc<AtomicI64>);

impl ServiceClock {
    /// The loop is alive now.
    pub fn beat(&self) {
        self.0
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
    /// When it last was, if ever.
    pub fn last(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => chrono::DateTime::from_timestamp_millis(ms),
        }
    }
}

/// What `serve` hands the API.
pub struct ApiContext {
    /// The database.
    pub db: crate::store::Location,
    /// The loaded plugins.
    pub plugins: Arc<PluginRegistry>,
    /// The action types, read again when their directories change (shared
    /// with `serve`'s decision engine).
    pub types: Arc<LiveTypes>,
    /// Where audits' cluster models come from.
    pub model: ModelSource,
    /// The liveness of `serve`'s loop.
    pub clock: ServiceClock,
    /// This host's id (`serve --host-id`; an EVENT trigger's claim).
    pub host: String,
    /// Whether this host runs the decision engine (`serve --roles`): when
    /// not, the audits the API is asked to run are requested of the hosts
    /// that do (`decide::requests`).
    pub decision: bool,
    /// How old a service's heartbeat may be before it is FAILED.
    pub down_time: std::time::Duration,
    /// The action-mapper entry (config `mapper`).
    pub mapper: String,
    /// The drivers the mapper tries (config `drivers`).
    pub drivers: Vec<String>,
    /// Where request latencies are observed, when `serve` exposes its
    /// metrics.
    pub latency: Option<crate::telemetry::ApiLatency>,
    /// The plans `serve` is applying now.
    pub applying: Applying,
}

/// The shared state of the handlers.
pub struct AppState {
    /// What serve handed in.
    pub ctx: ApiContext,
    /// The `api:` config.
    pub cfg: ApiConfig,
    pool: Mutex<Vec<Store>>,
    permits: super::store_permits::StorePermits,
    /// Set when `serve` stops: no audit is launched any more (one created
    /// meanwhile stays PENDING for the next `serve`).
    pub(super) stopping: Arc<AtomicBool>,
    /// Audits run by the API at once, at most (more wait).
    decisions: Semaphore,
    /// Connections that read plans' event marks (`store/plan_marks.rs`).
    marks: Mutex<Vec<PlanMarks>>,
    /// The plain lists of plans' actions last answered.
    pub pages: super::page_cache::ActionPages,
    /// The runs of those lists under way (`single_flight.rs`).
    pub flights: super::single_flight::Flights<super::page_cache::PageKey>,
}

/// Audits the API runs at once, at most.
const DECISIONS: usize = 2;

impl AppState {
    /// The state of one server.
    pub fn new(ctx: ApiContext, cfg: ApiConfig) -> Self {
        let permits = super::store_permits::StorePermits::new(
            cfg.concurrency,
            cfg.concurrency_while_applying,
            ctx.applying.clone(),
        );
        Self {
            stopping: Arc::new(AtomicBool::new(false)),
            ctx,
            cfg,
            pool: Mutex::new(Vec::new()),
            permits,
            decisions: Semaphore::new(DECISIONS),
            marks: Mutex::new(Vec::new()),
            pages: super::page_cache::ActionPages::default(),
            flights: super::single_flight::Flights::default(),
        }
    }

    /// Where the event log of `plan` (its uuid) stands now, read on a
    /// pooled connection of its own (call it from a store call: it
    /// blocks).
    pub fn plan_mark(&self, plan: &str) -> ApiResult<PlanEventsMark> {
        let pooled = self.marks.lock().ok().and_then(|mut p| p.pop());
        let marks = match pooled {
            Some(m) => m,
            None => PlanMarks::open(&self.ctx.db).map_err(ApiError::internal)?,
        };
        let mark = marks.mark(plan).map_err(ApiError::internal)?;
        if let Ok(mut p) = self.marks.lock()
            && p.len() < self.cfg.concurrency
        {
            p.push(marks);
        }
        Ok(mark)
    }

    fn take_store(&self) -> ApiResult<Store> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(s) => Ok(s),
            None => Store::open(&self.ctx.db).map_err(ApiError::internal),
        }
    }

    fn give_back(&self, s: Store) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < self.cfg.concurrency
        {
            p.push(s);
        }
    }

    /// Runs `f` on a store connection, on a blocking thread, once a permit
    /// is free.
    pub async fn store<T, F>(self: &Arc<Self>, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &AppState) -> ApiResult<T> + Send + 'static,
    {
        // Fewer at once while this serve applies a plan.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal(format!("store permits: {e}")))?;
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut s = me.take_store()?;
            let out = f(&mut s, &me);
            me.give_back(s);
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("store call: {e}")))?
    }

    /// The action types as their directories hold them now.
    pub fn types(&self) -> Arc<ActionTypeRegistry> {
        self.ctx.types.current()
    }

    /// Where action types are read from and registered to.
    pub fn type_dirs(&self) -> &crate::action_types::ActionTypeDirs {
        self.ctx.types.dirs()
    }

    /// The context the decision engine runs audits in, with `types`.
    pub fn audit_context<'a>(&'a self, types: &'a ActionTypeRegistry) -> AuditContext<'a> {
        AuditContext {
            plugins: &self.ctx.plugins,
            types,
            model: self.ctx.model.clone(),
        }
    }

    /// The vocabulary policies are checked against.
    pub fn vocabulary(&self) -> crate::policy::Vocabulary {
        crate::policy::Vocabulary::of(&self.types(), &self.ctx.plugins)
    }

    /// Runs an audit in the background, as Watcher's API casts
    /// `trigger_audit` to the decision engine: the request is answered
    /// first. `trigger` runs an EVENT audit (`decide::trigger_audit`).
    /// On a host without the decision role, the run is requested of the
    /// hosts that have it instead (durably: it survives every restart).
    pub fn run_audit_later(self: &Arc<Self>, uuid: String, trigger: bool) {
        // Said here, not only in the task: a runtime shutting down may drop
        // a task before it runs.
        if self.stopping.load(Ordering::SeqCst) {
            tracing::info!(
                "audit {uuid} not run: serve is stopping (a PENDING ONESHOT audit is run by the next serve)"
            );
            return;
        }
        let me = Arc::clone(self);
        if !self.ctx.decision {
            tokio::task::spawn_blocking(move || {
                let kind = if trigger {
                    AuditRequestKind::Trigger
                } else {
                    AuditRequestKind::Run
                };
                let asked = me.take_store().map_err(|e| e.message).and_then(|mut s| {
                    let r = s.request_audit(&uuid, kind, &me.ctx.host);
                    me.give_back(s);
                    r.map_err(|e| e.to_string())
                });
                match asked {
                    Ok(()) => tracing::info!(
                        "audit {uuid}: {} asked of the decision hosts (host {} does not run the decision engine)",
                        kind,
                        me.ctx.host
                    ),
                    Err(e) => tracing::warn!("audit {uuid}: cannot ask the decision hosts: {e}"),
                }
            });
            return;
        }
        tokio::spawn(async move {
            let Ok(_permit) = me.decisions.acquire().await else {
                return;
            };
            if me.stopping.load(Ordering::SeqCst) {
                tracing::info!(
                    "audit {uuid} not run: serve is stopping (a PENDING ONESHOT audit is run by the next serve)"
                );
                return;
            }
            let me2 = Arc::clone(&me);
            let done = tokio::task::spawn_blocking(move || {
                let mut store = me2.take_store()?;
                let types = me2.types();
                let ctx = me2.audit_context(&types);
                let r = if trigger {
                    crate::decide::trigger_audit(&mut store, &ctx, &uuid, &me2.ctx.host)
                } else {
                    crate::decide::run_audit(&mut store, &ctx, &uuid)
                };
                me2.give_back(store);
                match r {
                    Ok(a) => tracing::info!("audit {} ({}) ran: {}", a.name, a.uuid, a.state),
                    Err(e) => tracing::warn!("audit {uuid}: {e}"),
                }
                Ok::<(), ApiError>(())
            })
            .await;
            if let Err(e) = done {
                tracing::error!("api: an audit run panicked: {e}");
            }
        });
    }
}
