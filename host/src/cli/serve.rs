//! `sextant serve`: the long-running service. It runs CONTINUOUS audits at
//! their interval (the applier and notification sinks join it later).

use super::{CliResult, Env};
use crate::decide::{AuditContext, tick_continuous};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs until killed, or for `exit_after` seconds.
pub fn serve(env: &Env, exit_after: Option<f64>) -> CliResult {
    let (mut store, plugins, report) = env.open_store_synced()?;
    if !report.is_empty() {
        tracing::info!("synchronised goals and strategies at start: {report:?}");
    }
    let types = env.action_types();
    let ctx = AuditContext {
        plugins: &plugins,
        types: &types,
        model: env.model_source(),
    };
    let started = Instant::now();
    let deadline = exit_after.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    tracing::info!("serving: database {}", store.path().display());
    loop {
        let now = chrono::Utc::now();
        let next = tick_continuous(&mut store, &ctx, now).map_err(|e| anyhow::anyhow!(e))?;
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
                return Ok(ExitCode::SUCCESS);
            }
            wait = wait.min(left);
        }
        std::thread::sleep(wait.max(Duration::from_millis(10)));
    }
}
