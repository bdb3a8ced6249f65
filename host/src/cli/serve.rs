//! `sextant serve`: the long-running service. It runs CONTINUOUS audits at
//! their interval, applies the plans that are queued (PENDING, by
//! `action-plan start` without `--wait`, or by an audit's auto_trigger),
//! resumes the ones interrupted, and feeds the notification sinks.

use super::{CliResult, Env};
use crate::decide::{AuditContext, tick_continuous};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs until killed, or for `exit_after` seconds.
pub fn serve(env: &Env, exit_after: Option<f64>) -> CliResult {
    let types = env.action_types();
    let (mut store, plugins, report) = env.open_store_synced_with(&types)?;
    if !report.is_empty() {
        tracing::info!("synchronised goals and strategies at start: {report:?}");
    }
    let ctx = AuditContext {
        plugins: &plugins,
        types: &types,
        model: env.model_source(),
    };
    let _notifier = crate::notify::Notifier::start(
        env.db.clone(),
        &env.config.notifications,
        crate::notify::last_event_id(&store),
    );
    let mut appliers: std::collections::HashMap<String, std::thread::JoinHandle<()>> =
        std::collections::HashMap::new();
    let started = Instant::now();
    let deadline = exit_after.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    tracing::info!("serving: database {}", store.path().display());
    loop {
        let now = chrono::Utc::now();
        let next = tick_continuous(&mut store, &ctx, now).map_err(|e| anyhow::anyhow!(e))?;
        // Queued and interrupted plans: one applier thread each.
        appliers.retain(|_, h| !h.is_finished());
        for p in store.plans(None)? {
            let runnable = p.state == "PENDING"
                || ((p.state == "ONGOING" || p.state == "CANCELLING")
                    && store
                        .lease(&p.uuid)?
                        .is_none_or(|l| l.expires_at < crate::store::now()));
            if runnable && !appliers.contains_key(&p.uuid) {
                let env2 = env.clone();
                let uuid = p.uuid.clone();
                appliers.insert(
                    p.uuid.clone(),
                    std::thread::spawn(move || {
                        let flags = super::apply::RunFlags {
                            policy: None,
                            execution_rule: None,
                            max_workers: 32,
                            quiet: true,
                        };
                        match super::apply::apply_now(&env2, &uuid, &flags) {
                            Ok(o) => tracing::info!("action plan {uuid}: {}", o.state),
                            Err(e) => tracing::warn!("action plan {uuid}: {:#}", e.error),
                        }
                    }),
                );
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
                for (_, h) in appliers.drain() {
                    let _ = h.join();
                }
                return Ok(ExitCode::SUCCESS);
            }
            wait = wait.min(left);
        }
        std::thread::sleep(wait.max(Duration::from_millis(10)));
    }
}
