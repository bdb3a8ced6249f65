//! `sextant serve`: the long-running service. It runs CONTINUOUS audits at
//! their interval, applies the plans that are queued (PENDING, by
//! `action-plan start` without `--wait`, or by an audit's auto_trigger),
//! resumes the ones interrupted, and feeds the notification sinks.
//!
//! SIGTERM and SIGINT stop it cleanly: it launches nothing more, its
//! appliers abort the running abortable actions (back to PENDING) and give
//! the others the grace period (`grace_period`, 30 s by default), every
//! plan stays resumable, and it exits 0. It tells systemd when it is ready
//! and when it stops (`sd_notify`, when run under `Type=notify`). With
//! `--metrics ADDR` (or `metrics.listen`) it exposes its own metrics
//! (`crate::telemetry`); with `--api ADDR` (or `api:`) it serves Watcher's
//! REST API (`crate::api`).
//!
//! Several `serve` hosts may share one database (docs/fleet.md): each has a
//! host id (`--host-id`, `SEXTANT_HOST_ID`, config `host_id`, else the
//! hostname) and roles (`--roles decision,applier`); each heartbeats its
//! services' rows; an applier claims plans atomically (queued ones, and
//! interrupted ones whose holder's lease expired: resumed, not cancelled)
//! within its `max_concurrent_actions`; a decision engine claims each tick
//! of a CONTINUOUS audit before running it. A host that cannot reach its
//! database stops claiming work, says why (its log, and its services'
//! status message once it is back), and retries with backoff, a bounded
//! number of times.

use super::apply::{RunFlags, SignalGuard, apply_loaded, plan_workers, stop_on_signals};
use super::heartbeat::{Beat, Heartbeat};
use super::{CliError, CliResult, Env};
use crate::action_types::LiveTypes;
use crate::api::{ApiConfig, ApiContext, ApiServer, ApiStartError, ServiceClock};
use crate::apply::{ApplyError, RECONNECT_ATTEMPTS, StopSignal, backoff};
use crate::decide::{AuditContext, DecideError, tick_continuous};
use crate::states::AuditState;
use crate::states::AuditType;
use crate::store::fleet::Role;
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a sleeping service looks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How often a host heartbeats, at most (more often with a short
/// `service_down_time`: three beats per down time).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Whether a store error says the database cannot be reached (or written)
/// now, rather than something about what it holds.
fn unreachable(e: &StoreError) -> bool {
    e.is_unreachable()
}

/// `serve`'s flags.
pub struct ServeFlags {
    /// `--exit-after`.
    pub exit_after: Option<Duration>,
    /// `--api`.
    pub api: Option<SocketAddr>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--host-id`.
    pub host_id: Option<String>,
    /// `--roles`.
    pub roles: Option<Vec<Role>>,
}

/// A plan this host applies: its thread, the lease owner it runs as, and
/// the workers it may use.
struct Running {
    thread: JoinHandle<()>,
    owner: String,
    workers: usize,
}

/// This host among the hosts of one database.
struct Host {
    id: String,
    roles: Vec<Role>,
    /// `max_concurrent_actions`: the workers of the plans it applies, at
    /// most, summed.
    max_actions: usize,
    /// Whether the database wakes it (PostgreSQL's LISTEN).
    listening: bool,
    /// Since when, and why, it cannot reach its database.
    unreachable: Option<(chrono::DateTime<chrono::Utc>, String)>,
    attempts: u32,
    /// The plans it applies now, as the API sees them.
    applying: crate::api::Applying,
}

impl Host {
    fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Claims and starts plans while it has room.
    fn claim_plans(
        &mut self,
        env: &Env,
        store: &mut Store,
        appliers: &mut HashMap<String, Running>,
        stop: &StopSignal,
        plugins: &Arc<crate::plugins::PluginRegistry>,
    ) -> Result<(), crate::store::StoreError> {
        // The plans it runs stay its own while their appliers start (an
        // applier renews its lease only once it runs) or apply them again
        // after a failure: renewed here, and again while a long run of
        // claims goes on.
        let mut renewed = None;
        while !stop.is_stopping() {
            if renewed.is_none_or(|t: Instant| t.elapsed() >= crate::apply::LEASE_TTL / 5) {
                let owners: Vec<String> = appliers.values().map(|r| r.owner.clone()).collect();
                store.renew_leases(&owners, crate::apply::LEASE_TTL)?;
                renewed = Some(Instant::now());
            }
            let in_use: usize = appliers.values().map(|r| r.workers).sum();
            let room = self.max_actions.saturating_sub(in_use);
            if room == 0 {
                return Ok(());
            }
            let owner = crate::apply::owner_id_for(&self.id);
            let Some(claim) = store.claim_plan(&self.id, &owner, crate::apply::LEASE_TTL)? else {
                return Ok(());
            };
            if appliers.contains_key(&claim.plan_uuid) {
                // Its lease here lapsed while it still ran: the old applier
                // finds it lost and stops; the plan is claimed again later.
                tracing::warn!(
                    "action plan {} was claimed again while this host still ran it",
                    claim.plan_uuid
                );
                continue;
            }
            let workers = plan_workers(store, &claim.plan_uuid)
                .unwrap_or(room)
                .min(room)
                .max(1);
            tracing::info!(
                "applying action plan {} ({}{})",
                claim.plan_uuid,
                if claim.resumed() {
                    "resuming"
                } else {
                    "queued"
                },
                match &claim.previous_owner {
                    Some(o) if claim.resumed() => format!(", after {o}"),
                    _ => String::new(),
                }
            );
            let thread = spawn_applier(
                env,
                &claim.plan_uuid,
                stop,
                owner.clone(),
                Some(workers),
                plugins,
                &self.applying,
            );
            appliers.insert(
                claim.plan_uuid,
                Running {
                    thread,
                    owner,
                    workers,
                },
            );
        }
        Ok(())
    }

    /// The database failed: say so (once), and how long until the retry.
    fn lost(&mut self, why: &str) -> Option<Duration> {
        self.attempts += 1;
        if self.unreachable.is_none() {
            self.unreachable = Some((chrono::Utc::now(), why.to_string()));
        }
        if self.attempts > RECONNECT_ATTEMPTS {
            return None;
        }
        let wait = backoff(self.attempts);
        tracing::warn!(
            "host {}: cannot reach the database: {why}; claiming no work; retry {} of {RECONNECT_ATTEMPTS} in {:.1}s",
            self.id,
            self.attempts,
            wait.as_secs_f64()
        );
        Some(wait)
    }

    /// A round went through: if the database was unreachable, say it is
    /// back (its log, and its services' status message).
    fn reached(&mut self, heartbeat: &Heartbeat) {
        self.attempts = 0;
        if let Some((since, why)) = self.unreachable.take() {
            let secs = (chrono::Utc::now() - since).num_milliseconds() as f64 / 1000.0;
            let msg = format!(
                "could not reach the database for {secs:.1}s from {} ({why}); reconnected",
                since.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            tracing::info!("host {}: {msg}", self.id);
            heartbeat.say(msg);
        }
    }
}

/// Runs until SIGTERM or SIGINT, or for `exit_after` (bounded by its
/// parser; then it waits for the plans it runs to end). With `api` (or
/// the config's `api:`), also serves Watcher's REST API; with `metrics`
/// (or the config's `metrics.listen`), exposes Sextant's own metrics.
pub fn serve(env: &Env, flags: ServeFlags) -> CliResult {
    let ServeFlags {
        exit_after,
        api,
        metrics,
        host_id,
        roles,
    } = flags;
    let host_id = super::services::host_id(env, host_id.as_deref())?;
    let roles = super::services::roles(env, roles.as_deref())?;
    let api_config = match (api, &env.config.api) {
        (Some(listen), Some(c)) => Some(ApiConfig {
            listen,
            ..c.clone()
        }),
        (Some(listen), None) => Some(ApiConfig {
            listen,
            ..ApiConfig::default()
        }),
        (None, c) => c.clone(),
    };
    if let Some(c) = &api_config {
        c.check().map_err(CliError::input)?;
    }
    let stop = StopSignal::default();
    let _signals = SignalGuard(stop_on_signals(&stop)?);
    // The action types, read again whenever their directories change: a
    // type registered while serve runs (API or CLI) is used at once.
    let types = Arc::new(LiveTypes::load(env.action_type_dirs()));
    let (mut store, plugins, report) = env.open_store_synced_with(&types.current())?;
    let plugins = Arc::new(plugins);
    if !report.is_empty() {
        tracing::info!("synchronised goals and strategies at start: {report:?}");
    }
    let clock = ServiceClock::default();
    clock.beat();
    // Sextant's own metrics (docs/metrics.md): made before the API, which
    // observes its request latency into them.
    let metrics_addr = metrics.or(env.config.metrics.listen);
    let registry =
        metrics_addr.map(|_| Arc::new(std::sync::Mutex::new(crate::telemetry::Metrics::default())));
    let latency = registry
        .as_ref()
        .and_then(|m| m.lock().ok().map(|m| m.api_latency()));
    // The plans this host applies, counted by their threads: the API
    // gives way to them (`concurrency_while_applying`).
    let applying = crate::api::Applying::default();
    let api = match api_config {
        Some(cfg) => Some(
            ApiServer::start(
                cfg,
                ApiContext {
                    db: env.db.clone(),
                    plugins: Arc::clone(&plugins),
                    types: Arc::clone(&types),
                    model: env.model_source(),
                    clock: clock.clone(),
                    host: host_id.clone(),
                    decision: roles.contains(&Role::Decision),
                    down_time: env.service_down_time(),
                    mapper: env.config.mapper.clone(),
                    drivers: env.config.drivers.clone(),
                    latency,
                    applying: applying.clone(),
                },
            )
            .map_err(|e| match e {
                e @ ApiStartError::Config(_) => CliError::input(e),
                e => CliError::from(e),
            })?,
        ),
        None => None,
    };
    let _notifier = crate::notify::Notifier::start(
        env.db.clone(),
        &env.config.notifications,
        crate::notify::last_event_id(&store),
    );
    // Sextant's own metrics, on their own listener (docs/metrics.md).
    let _metrics = match metrics_addr.zip(registry) {
        Some((addr, m)) => {
            let listener = crate::telemetry::listener::start(addr, m.clone())
                .map_err(|e| anyhow::anyhow!(e))?;
            let collector = crate::telemetry::Collector::start(
                env.db.clone(),
                m,
                crate::notify::last_event_id(&store),
            );
            Some((listener, collector))
        }
        None => None,
    };
    let mut appliers: HashMap<String, Running> = HashMap::new();
    let started = Instant::now();
    let deadline = exit_after.map(|d| started + d);
    let down_time = env.service_down_time();
    let mut host = Host {
        id: host_id,
        roles,
        max_actions: env
            .config
            .max_concurrent_actions
            .map_or(crate::config::DEFAULT_MAX_CONCURRENT_ACTIONS, |n| n.get()),
        listening: false,
        unreachable: None,
        attempts: 0,
        applying: applying.clone(),
    };
    host.listening = store.listen_for_work()?;
    let identity = store.file().map(db_identity);
    let heartbeat = Heartbeat::start(
        &mut store,
        Beat {
            db: env.db.clone(),
            identity,
            host: host.id.clone(),
            roles: host.roles.clone(),
            every: HEARTBEAT.min(down_time / 3).max(Duration::from_millis(100)),
        },
    )?;
    // The leases of the plans this host claimed, renewed on a thread of
    // their own: a round of the loop below that stalls (a long audit) does
    // not let them lapse to another host.
    let leases = host.runs(Role::Applier).then(|| {
        let db = env.db.clone();
        crate::apply::LeaseKeeper::start(
            move || reopen(&db, identity),
            crate::apply::LEASE_TTL,
            crate::apply::LEASE_TTL / 5,
        )
    });
    tracing::info!(
        "sextant serve started (pid {}): host {}, roles {}, database {}",
        std::process::id(),
        host.id,
        host.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
        store.location()
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if host.runs(Role::Decision) {
        run_left_pending(&mut store, &plugins, &types, env, &stop);
    }
    loop {
        clock.beat();
        if stop.is_stopping() {
            // The API stops first: no new request while the appliers end.
            if let Some(a) = api {
                a.shutdown();
            }
            return stop_cleanly(env, appliers);
        }
        // A database deleted or replaced under a running service would take
        // every later write to an unlinked file: stop, and say so.
        if store.file().map(db_identity) != identity {
            stop.stop();
            let _ = stop_cleanly(env, appliers);
            return Err(anyhow::anyhow!(
                "the database {} was deleted or replaced while serve ran; stopped (restart serve to use the new one)",
                store.location()
            )
            .into());
        }
        appliers.retain(|_, r| !r.thread.is_finished());
        // One round: this tick's audits, claims. A store error is a
        // database this host cannot reach (now): no more claims until a
        // round goes through.
        // Any other error (an audit another process deleted meanwhile, a
        // value the store does not know) is said and the round goes on.
        let round = (|| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
            let mut next = None;
            if host.runs(Role::Decision) {
                let current = types.current();
                let ctx = AuditContext {
                    plugins: &plugins,
                    types: &current,
                    model: env.model_source(),
                };
                match tick_continuous(&mut store, &ctx, chrono::Utc::now(), &host.id) {
                    Ok(n) => next = n,
                    Err(DecideError::Store(e)) if unreachable(&e) => return Err(e),
                    Err(e) => tracing::warn!("host {}: continuous audits: {e}", host.id),
                }
                // Audits the hosts without the decision role were asked
                // to run (docs/fleet.md).
                match crate::decide::run_requested_audits(&mut store, &ctx, &host.id) {
                    // A full pass: there may be more, at once.
                    Ok(n) if n >= crate::decide::requests::PER_PASS => {
                        next = Some(chrono::Utc::now());
                    }
                    Ok(_) => {}
                    Err(DecideError::Store(e)) if unreachable(&e) => return Err(e),
                    Err(e) => tracing::warn!("host {}: requested audits: {e}", host.id),
                }
            }
            if host.runs(Role::Applier) {
                match host.claim_plans(env, &mut store, &mut appliers, &stop, &plugins) {
                    Ok(()) => {}
                    Err(e) if unreachable(&e) => return Err(e),
                    Err(e) => tracing::warn!("host {}: claiming plans: {e}", host.id),
                }
            }
            Ok(next)
        })();
        if let Some(k) = &leases {
            k.keep(appliers.values().map(|r| r.owner.clone()).collect());
        }
        let mut wait = Duration::from_secs(1);
        match round {
            Ok(next) => {
                host.reached(&heartbeat);
                // Wake at the next due time, and at least every second to
                // see new audits and plans of other processes.
                if let Some(n) = next {
                    let until = (n - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.min(until);
                }
            }
            Err(e) => match host.lost(&format!("{e:#}")) {
                Some(w) => {
                    wait = w;
                    // A fresh connection for the next round (to the same
                    // database: one deleted meanwhile is not made anew;
                    // the next round's check stops serve).
                    match reopen(&env.db, identity) {
                        Ok(mut s) => {
                            host.listening = s.listen_for_work().unwrap_or(false);
                            store = s;
                        }
                        Err(e) => tracing::debug!("reopening the database: {e}"),
                    }
                }
                None => {
                    tracing::error!(
                        "host {}: the database stayed unreachable after {RECONNECT_ATTEMPTS} retries; stopping",
                        host.id
                    );
                    stop.stop();
                    let _ = stop_cleanly(env, appliers);
                    return Err(anyhow::anyhow!(
                        "host {}: cannot reach the database {}: {e:#}; gave up after {RECONNECT_ATTEMPTS} retries",
                        host.id,
                        store.location()
                    )
                    .into());
                }
            },
        }
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some(a) = api {
                    a.shutdown();
                }
                for (_, r) in appliers.drain() {
                    let _ = r.thread.join();
                }
                tracing::info!("sextant serve stopped (--exit-after)");
                return Ok(ExitCode::SUCCESS);
            }
            wait = wait.min(left);
        }
        let until = Instant::now() + wait.max(Duration::from_millis(10));
        while !stop.is_stopping() && Instant::now() < until {
            // A plan of this host ended: room for the next claim now.
            if appliers.values().any(|r| r.thread.is_finished()) {
                break;
            }
            let chunk = STOP_POLL.min(until.saturating_duration_since(Instant::now()));
            if host.listening && host.unreachable.is_none() {
                // PostgreSQL: a NOTIFY (a plan queued, an audit created)
                // ends the wait at once.
                match store.wait_for_work(chunk) {
                    Ok(w) if !w.is_empty() => {
                        tracing::debug!("woken: {w:?}");
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            } else {
                std::thread::sleep(chunk);
            }
        }
    }
}

/// Runs the ONESHOT audits left PENDING: created (through the API) while
/// a previous serve was stopping, or just before it died, and never run.
/// Each is claimed by its move to ONGOING (compare-and-set), so an audit
/// another process runs meanwhile is not run twice.
fn run_left_pending(
    store: &mut Store,
    plugins: &crate::plugins::PluginRegistry,
    types: &LiveTypes,
    env: &Env,
    stop: &StopSignal,
) {
    let pending = match store.audits() {
        Ok(all) => all
            .into_iter()
            .filter(|a| a.audit_type == AuditType::Oneshot && a.state == AuditState::Pending),
        Err(e) => {
            tracing::warn!("cannot list the audits left PENDING: {e}");
            return;
        }
    };
    for a in pending {
        if stop.is_stopping() {
            return;
        }
        tracing::info!("running audit {} ({}), left PENDING", a.name, a.uuid);
        let current = types.current();
        let ctx = AuditContext {
            plugins,
            types: &current,
            model: env.model_source(),
        };
        match crate::decide::run_audit(store, &ctx, &a.uuid) {
            Ok(done) => tracing::info!("audit {} ({}) ran: {}", done.name, done.uuid, done.state),
            Err(e) => tracing::warn!("audit {}: {e}", a.uuid),
        }
    }
}

/// Applies one plan on a thread of its own, until it ends or `stop`, as
/// lease owner `owner` (the owner it was claimed for), with at most
/// `worker_cap` actions at once.
fn spawn_applier(
    env: &Env,
    uuid: &str,
    stop: &StopSignal,
    owner: String,
    worker_cap: Option<usize>,
    plugins: &Arc<crate::plugins::PluginRegistry>,
    applying: &crate::api::Applying,
) -> JoinHandle<()> {
    let (env, uuid, stop) = (env.clone(), uuid.to_string(), stop.clone());
    let plugins = Arc::clone(plugins);
    let applying = applying.enter();
    std::thread::spawn(move || {
        let _applying = applying;
        let flags = RunFlags {
            policy: None,
            execution_rule: None,
            max_workers: None,
            quiet: true,
            stop: Some(stop.clone()),
            notify: false,
            owner: Some(owner.clone()),
            worker_cap,
        };
        // serve's plugins, loaded and synchronised at its start; the action
        // types read now (one registered since is used). A failure of the
        // store (it could not be opened, a write failed) is this host's to
        // recover from: the plan is applied again here, under the same lease
        // (which the host goes on renewing while this thread runs), instead
        // of being left to lapse and be claimed a second time.
        apply_with_retries(
            &env.db,
            &uuid,
            &owner,
            &stop,
            RECONNECT_ATTEMPTS,
            backoff,
            || {
                Store::open(&env.db)
                    .map_err(super::CliError::from)
                    .and_then(|store| {
                        apply_loaded(
                            &env,
                            store,
                            &uuid,
                            &flags,
                            env.action_types(),
                            plugins.clone(),
                        )
                    })
            },
        );
    })
}

/// Applies plan `uuid` as lease owner `owner` with `apply_once`, and again
/// after `wait(n)` while it fails with what another attempt may cure
/// ([`applied_again`]), at most `attempts` times. Given up on after those,
/// the plan's lease is given back at once (best effort), so that another
/// host resumes it now rather than once the lease lapsed; ended otherwise
/// (bad input, a lease another applier holds) the lease is left to lapse,
/// so that a plan every host would fail on is not claimed again at once,
/// round after round.
fn apply_with_retries(
    db: &crate::store::Location,
    uuid: &str,
    owner: &str,
    stop: &StopSignal,
    attempts: u32,
    wait: impl Fn(u32) -> Duration,
    mut apply_once: impl FnMut() -> Result<crate::apply::PlanOutcome, super::CliError>,
) {
    let mut failures = 0;
    loop {
        let e = match apply_once() {
            Ok(o) => {
                match o.status_message {
                    Some(m) => tracing::info!("action plan {uuid} ended {}: {m}", o.state),
                    None => tracing::info!("action plan {uuid} ended {}", o.state),
                }
                return;
            }
            Err(e) => e,
        };
        if let Some(ApplyError::Interrupted { why, .. }) = e.error.downcast_ref::<ApplyError>()
            && stop.is_stopping()
        {
            tracing::info!(
                "action plan {uuid} stopped ({why}); it resumes with the next serve or `action-plan resume`"
            );
            return;
        }
        if !applied_again(&e, stop) {
            tracing::warn!("action plan {uuid}: {:#}", e.error);
            return;
        }
        failures += 1;
        if failures > attempts {
            let given_back = Store::open(db).and_then(|mut s| s.release_lease(uuid, owner));
            match given_back {
                Ok(()) => tracing::warn!(
                    "action plan {uuid}: {:#}; gave up after {attempts} retries: its lease is given back, for another host to resume it",
                    e.error
                ),
                Err(r) => tracing::warn!(
                    "action plan {uuid}: {:#}; gave up after {attempts} retries; its lease could not be given back ({r}): another host resumes it once it lapses",
                    e.error
                ),
            }
            return;
        }
        let pause = wait(failures);
        tracing::warn!(
            "action plan {uuid}: {:#}; this host applies it again, under the same lease: retry {failures} of {attempts} in {:.1}s",
            e.error,
            pause.as_secs_f64()
        );
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if stop.is_stopping() {
                tracing::info!(
                    "action plan {uuid}: stopping before its retry; it resumes with the next serve or `action-plan resume`"
                );
                return;
            }
            std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

/// Whether a `serve` applier that failed with `e` applies its plan again:
/// the store failed (it could not be opened, a read or a write failed) or
/// the run was interrupted by such a failure, and serve is not stopping.
/// Not what another attempt would meet again: bad input (a policy, a plan
/// that ended meanwhile), a lease another applier holds, a task that
/// panicked.
fn applied_again(e: &super::CliError, stop: &crate::apply::StopSignal) -> bool {
    if stop.is_stopping() || e.status != 1 {
        return false;
    }
    match e.error.downcast_ref::<ApplyError>() {
        Some(ApplyError::Interrupted { .. }) => true,
        Some(ApplyError::Store(s)) => s.is_unreachable(),
        Some(_) => false,
        None => e
            .error
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_unreachable),
    }
}

/// The end of a service asked to stop: the appliers stop on the same
/// signal (abort, grace period); wait for them, and exit 0.
fn stop_cleanly(env: &Env, appliers: HashMap<String, Running>) -> CliResult {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let running = appliers
        .values()
        .filter(|r| !r.thread.is_finished())
        .count();
    tracing::info!(
        "stopping: launching nothing more; {running} plan(s) running: aborting their abortable actions, waiting up to {}s for the others",
        env.config
            .grace_period
            .unwrap_or(crate::apply::DEFAULT_GRACE)
            .as_secs_f64()
    );
    for (_, r) in appliers {
        let _ = r.thread.join();
    }
    tracing::info!("sextant serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// Opens the database again, only if it is still the one `serve` started
/// with (`identity`, for a file: `None` for a server, `Some(None)` for a
/// file that was already gone): one deleted meanwhile is not made anew.
pub(super) fn reopen(
    db: &crate::store::Location,
    identity: Option<Option<(u64, u64)>>,
) -> Result<Store, crate::store::StoreError> {
    if let Some(path) = db.file()
        && Some(db_identity(path)) != identity
    {
        return Err(crate::store::StoreError::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not the database serve started with",
            ),
        });
    }
    Store::open(db)
}

/// The database file's identity (device, inode); `None` once it is gone.
fn db_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::StopSignal;
    use crate::cli::CliError;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        a_serve_applier_that_gives_up_after_its_retries_gives_its_lease_back,
        a_serve_applier_ended_by_bad_input_leaves_its_lease_to_lapse,
    );

    /// The store keeps failing: after its retries the applier gives the
    /// lease back at once, and another host can take the plan now. Before,
    /// the lease stayed held until it lapsed (15 s), renewed by the host
    /// meanwhile.
    fn a_serve_applier_that_gives_up_after_its_retries_gives_its_lease_back(mut s: TestStore) {
        let (plan, _) = s.plan_of_nops(1);
        let owner = "host-a:1:x";
        let ttl = crate::apply::LEASE_TTL;
        assert!(s.acquire_lease(&plan, owner, ttl).expect("acquire").is_ok());
        let mut tries = 0;
        apply_with_retries(
            &s.location.clone(),
            &plan,
            owner,
            &StopSignal::default(),
            2,
            |_| Duration::from_millis(1),
            || {
                tries += 1;
                // Its lease is still held while it retries.
                assert!(!s.plan_lease_is_free(&plan).expect("lease"));
                Err(CliError::from(StoreError::Commit(
                    "connection closed".into(),
                )))
            },
        );
        assert_eq!(tries, 3, "the first attempt and 2 retries");
        assert_eq!(s.lease(&plan).expect("lease"), None);
        assert!(
            s.acquire_lease(&plan, "host-b:2:y", ttl)
                .expect("acquire")
                .is_ok()
        );
    }

    /// Bad input, which every host would meet again: the applier ends at
    /// once and leaves the lease to lapse (the plan is not handed from host
    /// to host round after round).
    fn a_serve_applier_ended_by_bad_input_leaves_its_lease_to_lapse(mut s: TestStore) {
        let (plan, _) = s.plan_of_nops(1);
        let owner = "host-a:1:x";
        let ttl = crate::apply::LEASE_TTL;
        assert!(s.acquire_lease(&plan, owner, ttl).expect("acquire").is_ok());
        let mut tries = 0;
        apply_with_retries(
            &s.location.clone(),
            &plan,
            owner,
            &StopSignal::default(),
            2,
            |_| Duration::from_millis(1),
            || {
                tries += 1;
                Err(CliError::input(anyhow::anyhow!("policy p: no such policy")))
            },
        );
        assert_eq!(tries, 1);
        assert_eq!(
            s.lease(&plan).expect("lease").map(|l| l.owner).as_deref(),
            Some(owner)
        );
    }

    fn interrupted() -> CliError {
        CliError::from(ApplyError::Interrupted {
            plan: "p".into(),
            why: "committing the final state of action a failed: database is locked".into(),
        })
    }

    #[test]
    fn a_serve_applier_applies_its_plan_again_after_a_store_failure_only() {
        let going = StopSignal::default();
        let store_failed = || StoreError::Commit("connection closed".into());
        // The store could not be opened, a store call failed, a run was
        // interrupted by a failure: applied again.
        assert!(applied_again(&CliError::from(store_failed()), &going));
        assert!(applied_again(
            &CliError::from(ApplyError::Store(store_failed())),
            &going
        ));
        assert!(applied_again(&interrupted(), &going));
        // What another attempt would meet again, or a plan that is not
        // this applier's any more: not.
        assert!(!applied_again(&CliError::input(store_failed()), &going));
        assert!(!applied_again(
            &CliError::from(ApplyError::NotRunnable {
                plan: "p".into(),
                state: "SUCCEEDED".into(),
                why: "ended".into(),
            }),
            &going
        ));
        assert!(!applied_again(
            &CliError::from(ApplyError::LeaseHeld {
                plan: "p".into(),
                lease: crate::store::apply::Lease {
                    owner: "other:1:x".into(),
                    expires_at: String::new(),
                },
            }),
            &going
        ));
        assert!(!applied_again(
            &CliError::from(ApplyError::Task("panicked".into())),
            &going
        ));
        assert!(!applied_again(
            &CliError::from(StoreError::NotFound {
                kind: "action plan",
                id: "p".into(),
            }),
            &going
        ));
        // Stopping: left to the resume.
        let stopping = StopSignal::default();
        stopping.stop();
        assert!(!applied_again(&interrupted(), &stopping));
        assert!(!applied_again(&CliError::from(store_failed()), &stopping));
    }
}
