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

use super::apply::{RunFlags, SignalGuard, apply_now, stop_on_signals};
use super::{CliError, CliResult, Env};
use crate::api::{ApiConfig, ApiContext, ApiServer, ApiStartError, ServiceClock};
use crate::apply::{ApplyError, StopSignal};
use crate::decide::{AuditContext, tick_continuous};
use crate::states::PlanState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a sleeping service looks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Runs until SIGTERM or SIGINT, or for `exit_after` (bounded by its
/// parser; then it waits for the plans it runs to end). With `api` (or
/// the config's `api:`), also serves Watcher's REST API; with `metrics`
/// (or the config's `metrics.listen`), exposes Sextant's own metrics.
pub fn serve(
    env: &Env,
    exit_after: Option<Duration>,
    api: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
) -> CliResult {
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
    let types = Arc::new(env.action_types());
    let (mut store, plugins, report) = env.open_store_synced_with(&types)?;
    let plugins = Arc::new(plugins);
    if !report.is_empty() {
        tracing::info!("synchronised goals and strategies at start: {report:?}");
    }
    let ctx = AuditContext {
        plugins: &plugins,
        types: &types,
        model: env.model_source(),
    };
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
    let api = match api_config {
        Some(cfg) => Some(
            ApiServer::start(
                cfg,
                ApiContext {
                    db: env.db.clone(),
                    plugins: Arc::clone(&plugins),
                    types: Arc::clone(&types),
                    type_dirs: env.action_type_dirs(),
                    model: env.model_source(),
                    clock: clock.clone(),
                    host: host_name(),
                    mapper: env.config.mapper.clone(),
                    drivers: env.config.drivers.clone(),
                    latency,
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
    let mut appliers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let started = Instant::now();
    let deadline = exit_after.map(|d| started + d);
    tracing::info!(
        "sextant serve started (pid {}): database {}",
        std::process::id(),
        store.location()
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let identity = store.file().map(db_identity);
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
        let now = chrono::Utc::now();
        let next = tick_continuous(&mut store, &ctx, now).map_err(|e| anyhow::anyhow!(e))?;
        // Queued and interrupted plans: one applier thread each.
        appliers.retain(|_, h| !h.is_finished());
        for p in store.plans(None)? {
            let runnable = p.state == PlanState::Pending
                || ((p.state == PlanState::Ongoing || p.state == PlanState::Cancelling)
                    && store.plan_lease_is_free(&p.uuid)?);
            if runnable && !appliers.contains_key(&p.uuid) && !stop.is_stopping() {
                tracing::info!(
                    "applying action plan {} ({})",
                    p.uuid,
                    if p.state == PlanState::Pending {
                        "queued"
                    } else {
                        "resuming"
                    }
                );
                appliers.insert(p.uuid.clone(), spawn_applier(env, &p.uuid, &stop));
            }
        }
        // Wake at the next due time, and at least every second to see new
        // audits created by other processes.
        let mut wait = Duration::from_secs(1);
        if let Some(n) = next {
            let until = (n - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
            wait = wait.min(until);
        }
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some(a) = api {
                    a.shutdown();
                }
                for (_, h) in appliers.drain() {
                    let _ = h.join();
                }
                tracing::info!("sextant serve stopped (--exit-after)");
                return Ok(ExitCode::SUCCESS);
            }
            wait = wait.min(left);
        }
        let until = Instant::now() + wait.max(Duration::from_millis(10));
        while !stop.is_stopping() && Instant::now() < until {
            std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

/// Applies one plan on a thread of its own, until it ends or `stop`.
fn spawn_applier(env: &Env, uuid: &str, stop: &StopSignal) -> JoinHandle<()> {
    let (env, uuid, stop) = (env.clone(), uuid.to_string(), stop.clone());
    std::thread::spawn(move || {
        let flags = RunFlags {
            policy: None,
            execution_rule: None,
            max_workers: None,
            quiet: true,
            stop: Some(stop),
            notify: false,
        };
        match apply_now(&env, &uuid, &flags) {
            Ok(o) => match o.status_message {
                Some(m) => tracing::info!("action plan {uuid} ended {}: {m}", o.state),
                None => tracing::info!("action plan {uuid} ended {}", o.state),
            },
            Err(e) => match e.error.downcast_ref::<ApplyError>() {
                Some(ApplyError::Interrupted { why, .. }) => {
                    tracing::info!(
                        "action plan {uuid} stopped ({why}); it resumes with the next serve or `action-plan resume`"
                    )
                }
                _ => tracing::warn!("action plan {uuid}: {:#}", e.error),
            },
        }
    })
}

/// The end of a service asked to stop: the appliers stop on the same
/// signal (abort, grace period); wait for them, and exit 0.
fn stop_cleanly(env: &Env, appliers: HashMap<String, JoinHandle<()>>) -> CliResult {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let running = appliers.values().filter(|h| !h.is_finished()).count();
    tracing::info!(
        "stopping: launching nothing more; {running} plan(s) running: aborting their abortable actions, waiting up to {}s for the others",
        env.config
            .grace_period
            .unwrap_or(crate::apply::DEFAULT_GRACE)
            .as_secs_f64()
    );
    for (_, h) in appliers {
        let _ = h.join();
    }
    tracing::info!("sextant serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// This host's name, as services report it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The database file's identity (device, inode); `None` once it is gone.
fn db_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
