//! `sextant action-plan start | cancel | resume`, `sextant action
//! skip`, `sextant history`: applying plans.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::apply::{Applier, ApplyError, ApplyOptions, PlanOutcome};
use crate::policy::Policy;
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

fn input(msg: impl std::fmt::Display) -> CliError {
    CliError::input(anyhow::anyhow!("{msg}"))
}

fn store_input(e: StoreError) -> CliError {
    match e {
        e @ (StoreError::NotFound { .. } | StoreError::Transition { .. }) => CliError::input(e),
        e => e.into(),
    }
}

/// The policy a run uses: `--policy`, else the one recorded with the plan,
/// else `default`.
fn policy_for(store: &Store, plan: &str, explicit: Option<&str>) -> Result<Policy, CliError> {
    if let Some(p) = explicit {
        return crate::policy::load(p).map_err(CliError::input);
    }
    let recorded: Option<String> = store
        .conn()
        .query_row(
            "SELECT policy FROM action_plans WHERE uuid = ?1",
            [plan],
            |r| r.get(0),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(p) = recorded
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| serde_json::from_value::<Policy>(v["policy"].clone()).ok())
    {
        return Ok(p);
    }
    crate::policy::load("default").map_err(CliError::input)
}

/// Options shared by `start` and `resume`.
pub struct RunFlags<'a> {
    /// `--policy`.
    pub policy: Option<&'a str>,
    /// `--execution-rule`.
    pub execution_rule: Option<&'a str>,
    /// `--max-workers`.
    pub max_workers: usize,
    /// No progress bar (for appliers run by `serve`).
    pub quiet: bool,
}

/// Runs the applier on one plan in this process.
pub fn apply_now(env: &Env, plan: &str, flags: &RunFlags<'_>) -> Result<PlanOutcome, CliError> {
    apply_now_with(env, plan, flags, env.action_types())
}

/// As [`apply_now`], with the action types the caller already read.
pub fn apply_now_with(
    env: &Env,
    plan: &str,
    flags: &RunFlags<'_>,
    types: crate::action_types::ActionTypeRegistry,
) -> Result<PlanOutcome, CliError> {
    let (store, plugins, _) = env.open_store_synced_with(&types)?;
    let p = store.plan(plan).map_err(store_input)?;
    let policy = policy_for(&store, &p.uuid, flags.policy)?;
    if let Some(r) = flags.execution_rule
        && !["STRICT", "ALWAYS", "ANY"].contains(&r.to_uppercase().as_str())
    {
        return Err(input(format!(
            "--execution-rule {r} is not STRICT, ALWAYS or ANY"
        )));
    }
    let applier = Applier::new(
        store,
        Arc::new(plugins),
        Arc::new(types),
        &p.uuid,
        ApplyOptions {
            policy,
            execution_rule: flags.execution_rule.map(str::to_uppercase),
            max_workers: flags.max_workers,
            owner: crate::apply::owner_id(),
            mapper: env.config.mapper.clone(),
            drivers: env.config.drivers.clone(),
            driver_config: env.driver_config(),
        },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress =
        (!flags.quiet && std::io::stdout().is_terminal()).then(|| progress_bar(env, &p.uuid));
    let notifier = {
        let store = Store::open(&env.db)?;
        crate::notify::Notifier::start(
            env.db.clone(),
            &env.config.notifications,
            crate::notify::last_event_id(&store),
        )
    };
    let result = rt.block_on(applier.run());
    if let Some(n) = notifier {
        n.stop();
    }
    if let Some((stop, handle)) = progress {
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = handle.join();
    }
    result.map_err(|e| match e {
        e @ ApplyError::NotRunnable { .. } => CliError::input(e),
        e => CliError::from(e),
    })
}

/// A progress bar (done, running, failed, ETA) fed by polling the store
/// from a second connection, while the applier runs.
fn progress_bar(
    env: &Env,
    plan: &str,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (db, plan, flag) = (env.db.clone(), plan.to_string(), stop.clone());
    let handle = std::thread::spawn(move || {
        let Ok(store) = Store::open(&db) else { return };
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} done  {msg}  ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        loop {
            if let Ok(actions) = store.actions(&plan) {
                let count = |s: &[&str]| {
                    actions
                        .iter()
                        .filter(|a| s.contains(&a.state.as_str()))
                        .count()
                };
                let done = count(&["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]);
                bar.set_length(actions.len() as u64);
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "running {}  failed {}",
                    count(&["ONGOING"]),
                    count(&["FAILED"])
                ));
            }
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                bar.finish_and_clear();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    (stop, handle)
}

fn print_outcome(o: &PlanOutcome, format: Format) -> CliResult {
    if !print_structured(format, o)? {
        outln!("action plan {}: {}", o.uuid, o.state);
        if let Some(m) = &o.status_message {
            outln!("  {m}");
        }
    }
    Ok(if o.state == "SUCCEEDED" || o.state == "CANCELLED" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `action-plan start ID [--wait]`.
pub fn start(env: &Env, plan: &str, wait: bool, flags: &RunFlags<'_>, format: Format) -> CliResult {
    if wait {
        let o = apply_now(env, plan, flags)?;
        return print_outcome(&o, format);
    }
    let (mut store, _, _) = env.open_store_synced()?;
    let p = store.plan(plan).map_err(store_input)?;
    if !store.plan_transition(
        &p.uuid,
        &["RECOMMENDED"],
        "PENDING",
        None,
        "action_plan.update",
    )? {
        return Err(input(format!(
            "action plan {} is {}: only a RECOMMENDED plan can be started",
            p.uuid, p.state
        )));
    }
    if !print_structured(
        format,
        &serde_json::json!({"action_plan": p.uuid, "state": "PENDING"}),
    )? {
        outln!("action plan {}: PENDING (sextant serve runs it)", p.uuid);
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan cancel ID`.
pub fn cancel(env: &Env, plan: &str, format: Format) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    let p = store.plan(plan).map_err(store_input)?;
    let state = store.cancel_plan(&p.uuid).map_err(store_input)?;
    if !print_structured(
        format,
        &serde_json::json!({"action_plan": p.uuid, "state": state}),
    )? {
        outln!("action plan {}: {state}", p.uuid);
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan resume [ID] --wait`: interrupted plans (ONGOING or
/// CANCELLING with no live applier), or queued ones (PENDING).
pub fn resume(env: &Env, plan: Option<&str>, flags: &RunFlags<'_>, format: Format) -> CliResult {
    let ids: Vec<String> = match plan {
        Some(p) => vec![p.to_string()],
        None => {
            let (store, _, _) = env.open_store_synced()?;
            store
                .plans(None)?
                .into_iter()
                .filter(|p| ["ONGOING", "CANCELLING", "PENDING"].contains(&p.state.as_str()))
                .map(|p| p.uuid)
                .collect()
        }
    };
    if ids.is_empty() {
        outln!("no interrupted or queued action plan");
        return Ok(ExitCode::SUCCESS);
    }
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        let o = apply_now(env, &id, flags)?;
        if print_outcome(&o, format)? != ExitCode::SUCCESS {
            code = ExitCode::from(1);
        }
    }
    Ok(code)
}

/// `action skip ID [--reason]`.
pub fn skip(env: &Env, action: &str, reason: Option<&str>, format: Format) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    store.skip_action(action, reason).map_err(store_input)?;
    if !print_structured(
        format,
        &serde_json::json!({"action": action, "state": "SKIPPED"}),
    )? {
        outln!("action {action}: SKIPPED");
    }
    Ok(ExitCode::SUCCESS)
}

/// `history [--plan ID] [--follow]`.
pub fn history(env: &Env, plan: Option<&str>, follow: bool, format: Format) -> CliResult {
    let (store, _, _) = env.open_store_synced()?;
    let plan_uuid = match plan {
        Some(p) => Some(store.plan(p).map_err(store_input)?.uuid),
        None => None,
    };
    let mut after = 0i64;
    let mut header = true;
    loop {
        let events = store.events(plan_uuid.as_deref(), after)?;
        if let Some(last) = events.last() {
            after = last.id;
        }
        match format {
            Format::Json => {
                if follow {
                    for e in &events {
                        outln!("{}", serde_json::to_string(e)?);
                    }
                } else {
                    outln!("{}", serde_json::to_string_pretty(&events)?);
                }
            }
            Format::Yaml => out!("{}", serde_yaml_ng::to_string(&events)?),
            Format::Table => {
                let mut t = Table::new(&["ID", "AT", "EVENT", "OBJECT", "STATE"]);
                for e in &events {
                    t.row(vec![
                        e.id.to_string(),
                        e.at.clone(),
                        e.event_type.clone(),
                        format!("{} {}", e.object_type, e.object_uuid),
                        match (&e.old_state, &e.new_state) {
                            (Some(o), Some(n)) => format!("{o} -> {n}"),
                            (None, Some(n)) => n.clone(),
                            _ => String::new(),
                        },
                    ]);
                }
                let text = t.render();
                let mut lines = text.lines();
                if !header {
                    lines.next();
                }
                for l in lines {
                    if !events.is_empty() || header {
                        outln!("{l}");
                    }
                }
                header = false;
            }
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
