//! `sextant action-plan start | cancel | resume`, `sextant action
//! skip`, `sextant history`: applying plans.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::apply::{Applier, ApplyError, ApplyOptions, PlanOutcome, StopSignal};
use crate::policy::Policy;
use crate::states::{ActionState, ExecutionRule, PlanState};
use crate::store::plans::ActionRow;
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

fn input(msg: impl std::fmt::Display) -> CliError {
    CliError::input(anyhow::anyhow!("{msg}"))
}

fn store_input(e: StoreError) -> CliError {
    super::lifecycle::store_input(e)
}

/// The policy a run uses: `--policy`, else the one the plan was started
/// with, else the plan's own (both in its `extra`), else `default`.
fn policy_for(
    extra: &Value,
    explicit: Option<&str>,
    vocab: &dyn Fn() -> crate::policy::Vocabulary,
) -> Result<Policy, CliError> {
    if let Some(p) = explicit {
        // Checked as audits check theirs: every name it uses must exist.
        return crate::policy::load_checked(p, &vocab()).map_err(CliError::input);
    }
    for recorded in [&extra["applied_with"]["policy"], &extra["policy"]] {
        if let Ok(p) = serde_json::from_value::<Policy>(recorded.clone()) {
            return Ok(p);
        }
    }
    crate::policy::load("default").map_err(CliError::input)
}

/// How a plan is applied: the explicit flags, else what the plan was
/// started with (recorded in its extras), else the defaults.
struct Resolved {
    policy: Policy,
    execution_rule: Option<ExecutionRule>,
    max_workers: usize,
    /// What the plan was started with before (`extra.applied_with`).
    applied_with: Value,
}

/// The workers of a plan nobody said anything about.
const DEFAULT_WORKERS: usize = 32;

fn resolve(
    store: &Store,
    plan: &str,
    flags: &RunFlags<'_>,
    vocab: &dyn Fn() -> crate::policy::Vocabulary,
) -> Result<Resolved, CliError> {
    let flag_rule =
        match flags.execution_rule {
            Some(r) => Some(r.to_uppercase().parse::<ExecutionRule>().map_err(|_| {
                input(format!("--execution-rule {r} is not STRICT, ALWAYS or ANY"))
            })?),
            None => None,
        };
    if flags.max_workers == Some(0) {
        return Err(input("--max-workers must be at least 1".to_string()));
    }
    let mut extra = store.plan_extra(plan)?;
    let policy = policy_for(&extra, flags.policy, vocab)?;
    let recorded = &extra["applied_with"];
    Ok(Resolved {
        policy,
        // The flag, else what it was started with, else its own (an
        // imported file's `execution_rule:`), else the policy's.
        execution_rule: match (
            flag_rule,
            recorded["execution_rule"].as_str(),
            extra["execution_rule"].as_str(),
        ) {
            (Some(r), _, _) => Some(r),
            (None, Some(r), _) => Some(r.parse::<ExecutionRule>().map_err(|e| {
                anyhow::anyhow!("action plan {plan}: the execution rule it was started with: {e}")
            })?),
            (None, None, Some(r)) => {
                Some(r.parse::<ExecutionRule>().map_err(|e| {
                    anyhow::anyhow!("action plan {plan}: its own execution rule: {e}")
                })?)
            }
            (None, None, None) => None,
        },
        max_workers: flags
            .max_workers
            .or_else(|| {
                recorded["max_workers"]
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
            })
            .unwrap_or(DEFAULT_WORKERS),
        applied_with: extra["applied_with"].take(),
    })
}

impl Resolved {
    /// The applier's options: these, and the config's.
    fn options(self, env: &Env, stop: StopSignal) -> ApplyOptions {
        ApplyOptions {
            policy: self.policy,
            execution_rule: self.execution_rule,
            max_workers: self.max_workers,
            owner: crate::apply::owner_id(),
            mapper: env.config.mapper.clone(),
            drivers: env.config.drivers.clone(),
            driver_config: crate::config::Secret::new(env.driver_config()),
            stop,
            grace: env
                .config
                .grace_period
                .unwrap_or(crate::apply::DEFAULT_GRACE),
            model_source: Some(env.model_source()),
        }
    }
}

/// How many actions a plan can run at once when nothing overrides it: the
/// workers it was started with (else the default), and never more than it
/// has actions.
pub fn plan_workers(store: &Store, plan: &str) -> Result<usize, CliError> {
    let extra = store.plan_extra(plan)?;
    let workers = extra["applied_with"]["max_workers"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_WORKERS);
    let actions = usize::try_from(store.plan(plan)?.actions).unwrap_or(0);
    Ok(workers.min(actions).max(1))
}

/// Records the flags given explicitly with the plan, so that every later
/// applier of it (resume, serve, another host) applies it the same way;
/// with `queue`, also moves it RECOMMENDED → PENDING in the same
/// transaction. False when the plan is in none of `from`.
fn record_flags(
    store: &mut Store,
    plan: &str,
    flags: &RunFlags<'_>,
    resolved: &Resolved,
    from: &[PlanState],
    queue: bool,
) -> Result<bool, CliError> {
    let explicit =
        flags.policy.is_some() || flags.execution_rule.is_some() || flags.max_workers.is_some();
    if !explicit && !queue {
        return Ok(true);
    }
    let mut applied_with = resolved.applied_with.clone();
    if !applied_with.is_object() {
        applied_with = Value::Object(Default::default());
    }
    if flags.policy.is_some() {
        applied_with["policy"] =
            serde_json::to_value(&resolved.policy).map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(r) = resolved.execution_rule
        && flags.execution_rule.is_some()
    {
        applied_with["execution_rule"] = Value::from(r.as_str());
    }
    if let Some(n) = flags.max_workers {
        applied_with["max_workers"] = Value::from(n);
    }
    // A `serve` applier's (it runs as the owner its host claimed the plan
    // for): fenced by that lease, as all its writes.
    let owner = flags.owner.as_deref();
    Ok(store.record_applied_with(plan, owner, from, &applied_with, queue)?)
}

/// Options shared by `start` and `resume`.
pub struct RunFlags<'a> {
    /// `--policy`.
    pub policy: Option<&'a str>,
    /// `--execution-rule`.
    pub execution_rule: Option<&'a str>,
    /// `--max-workers`.
    pub max_workers: Option<usize>,
    /// No progress bar (for appliers run by `serve`).
    pub quiet: bool,
    /// Asks the applier to stop cleanly; `None`: SIGTERM and SIGINT do,
    /// for as long as it runs.
    pub stop: Option<StopSignal>,
    /// Feed the notification sinks while the plan runs (false under
    /// `serve`, whose own notifier feeds them: one publisher per sink and
    /// process).
    pub notify: bool,
    /// The lease owner the applier runs as: the owner a `serve` host claimed
    /// the plan for (`None`: a new owner id, taking the lease itself).
    pub owner: Option<String>,
    /// At most this many actions at once, whatever the plan's workers (the
    /// share of a `serve` host's `max_concurrent_actions`); not recorded
    /// with the plan.
    pub worker_cap: Option<usize>,
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
    apply_loaded(env, store, plan, flags, types, Arc::new(plugins))
}

/// As [`apply_now_with`], over a store the caller opened and the plugins
/// it already loaded (`serve`, whose appliers share the plugins it loaded
/// and synchronised at start instead of each loading them again).
pub fn apply_loaded(
    env: &Env,
    mut store: Store,
    plan: &str,
    flags: &RunFlags<'_>,
    types: crate::action_types::ActionTypeRegistry,
    plugins: Arc<crate::plugins::PluginRegistry>,
) -> Result<PlanOutcome, CliError> {
    let p = store.plan(plan).map_err(store_input)?;
    let resolved = resolve(&store, &p.uuid, flags, &|| {
        crate::policy::Vocabulary::of(&types, &plugins)
    })?;
    // What the operator said is recorded before anything runs: a resume
    // after a crash applies the plan the same way.
    if !record_flags(
        &mut store,
        &p.uuid,
        flags,
        &resolved,
        &[
            PlanState::Recommended,
            PlanState::Pending,
            PlanState::Ongoing,
            PlanState::Cancelling,
        ],
        false,
    )? {
        return Err(input(format!(
            "action plan {} is {}: only RECOMMENDED, PENDING or interrupted (ONGOING, CANCELLING) plans run",
            p.uuid, p.state
        )));
    }
    // In the foreground, SIGTERM and SIGINT (Ctrl-C) stop the applier
    // cleanly, as they stop `serve`; the handlers go when the run ends.
    let (stop, _signals) = match &flags.stop {
        Some(s) => (s.clone(), None),
        None => {
            let s = StopSignal::default();
            let ids = stop_on_signals(&s)?;
            (s, Some(SignalGuard(ids)))
        }
    };
    let mut options = resolved.options(env, stop);
    if let Some(o) = &flags.owner {
        options.owner = o.clone();
    }
    if let Some(cap) = flags.worker_cap {
        options.max_workers = options.max_workers.min(cap.max(1));
    }
    let mut applier = Applier::new(store, plugins, Arc::new(types), &p.uuid, options)
        .reconnecting(env.db.clone());
    if flags.owner.is_some() {
        // A serve host's claim: the host keeps the lease after a failure.
        applier = applier.for_host();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress =
        (!flags.quiet && std::io::stdout().is_terminal()).then(|| progress_bar(env, &p.uuid));
    let notifier = if flags.notify {
        let store = env.open_store()?;
        crate::notify::Notifier::start(
            env.db.clone(),
            &env.config.notifications,
            crate::notify::last_event_id(&store),
        )
    } else {
        None
    };
    let result = rt.block_on(applier.run());
    // A stopped applier may leave a thread in a handler that ignores its
    // abort: do not wait for it (the plan is left to resume).
    rt.shutdown_background();
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

/// Simulates one plan as `start` would (its recorded or default policy and
/// options), without recording anything, taking its lease or running an
/// action: the problems `start` would find and the predicted end state.
pub fn predict_now(env: &Env, plan: &str) -> Result<crate::apply::Prediction, CliError> {
    let types = env.action_types();
    let (store, plugins, _) = env.open_store_synced_with(&types)?;
    let p = store.plan(plan).map_err(store_input)?;
    let flags = RunFlags {
        policy: None,
        execution_rule: None,
        max_workers: None,
        quiet: true,
        stop: None,
        notify: false,
        owner: None,
        worker_cap: None,
    };
    let resolved = resolve(&store, &p.uuid, &flags, &|| {
        crate::policy::Vocabulary::of(&types, &plugins)
    })?;
    let applier = Applier::new(
        store,
        Arc::new(plugins),
        Arc::new(types),
        &p.uuid,
        resolved.options(env, StopSignal::default()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(applier.predict()).map_err(CliError::from)
}

/// Makes SIGTERM and SIGINT ask `stop` to stop; returns the registrations.
pub(super) fn stop_on_signals(stop: &StopSignal) -> std::io::Result<Vec<signal_hook::SigId>> {
    [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT]
        .into_iter()
        .map(|sig| signal_hook::flag::register(sig, stop.flag()))
        .collect()
}

/// Unregisters signal handlers when dropped.
pub(super) struct SignalGuard(pub(super) Vec<signal_hook::SigId>);

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
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
                let count =
                    |s: &[ActionState]| actions.iter().filter(|a| s.contains(&a.state)).count();
                let done = actions.iter().filter(|a| a.state.is_terminal()).count();
                bar.set_length(actions.len() as u64);
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "running {}  failed {}",
                    count(&[ActionState::Ongoing]),
                    count(&[ActionState::Failed])
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

/// Prints how a run ended, with the actions that failed, were skipped or
/// were cancelled and their messages (the `actions` of the JSON form);
/// exit status 0 only when the plan SUCCEEDED, else 1.
fn print_outcome(env: &Env, o: &PlanOutcome, format: Format) -> CliResult {
    let OutcomeDoc {
        doc,
        unfinished,
        replaced,
        replacements,
    } = outcome_doc(env, o)?;
    if !print_structured(format, &doc)? {
        outln!("action plan {}: {}", o.uuid, o.state);
        if let Some(m) = &o.status_message {
            outln!("  {m}");
        }
        if !unfinished.is_empty() {
            let mut t = Table::new(&["UUID", "NAME", "ACTION TYPE", "STATE", "MESSAGE"]);
            for a in &unfinished {
                t.row(vec![
                    a.uuid.clone(),
                    a.name.clone(),
                    a.action_type.clone(),
                    a.state.to_string(),
                    a.status_message.clone().unwrap_or_default(),
                ]);
            }
            out!("{}", t.render());
        }
        for a in &replaced {
            let by = replacements.get(&a.name).map_or("", String::as_str);
            if a.state == ActionState::Failed {
                outln!(
                    "  {} FAILED; its alternative {by} succeeded in its place",
                    a.name
                );
            } else {
                outln!("  {} {}: not needed, {by} succeeded", a.name, a.state);
            }
        }
    }
    Ok(outcome_status(o))
}

/// 0 when the plan SUCCEEDED, else 1.
fn outcome_status(o: &PlanOutcome) -> ExitCode {
    if o.state == PlanState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `--format json|yaml` prints of an applied plan, and the actions its
/// table lists.
struct OutcomeDoc {
    doc: serde_json::Value,
    unfinished: Vec<ActionRow>,
    replaced: Vec<ActionRow>,
    replacements: std::collections::HashMap<String, String>,
}

fn outcome_doc(env: &Env, o: &PlanOutcome) -> anyhow::Result<OutcomeDoc> {
    let store = Store::open(&env.db)?;
    let replacements = replaced_by_alternatives(&store, &o.uuid)?;
    let (replaced, unfinished): (Vec<_>, Vec<_>) = store
        .unfinished_actions(&o.uuid)?
        .into_iter()
        .partition(|a| replacements.contains_key(&a.name));
    drop(store);
    let mut doc = serde_json::to_value(o)?;
    doc["actions"] = serde_json::json!(
        unfinished
            .iter()
            .map(|a| serde_json::json!({
                "uuid": a.uuid,
                "name": a.name,
                "action_type": a.action_type,
                "state": a.state,
                "status_message": a.status_message,
            }))
            .collect::<Vec<_>>()
    );
    doc["replaced"] = serde_json::json!(
        replaced
            .iter()
            .map(|a| serde_json::json!({
                "uuid": a.uuid,
                "name": a.name,
                "state": a.state,
                "status_message": a.status_message,
                "replaced_by": replacements.get(&a.name),
            }))
            .collect::<Vec<_>>()
    );
    Ok(OutcomeDoc {
        doc,
        unfinished,
        replaced,
        replacements,
    })
}

/// The actions of a plan that an alternative took over from, by name, each
/// with the alternative that succeeded in its place: a primary or an earlier
/// alternative that failed (or was never needed) while another member of its
/// group of alternatives SUCCEEDED. They are not unfinished work: the plan
/// went on through the alternative.
fn replaced_by_alternatives(
    store: &Store,
    plan: &str,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    use std::collections::HashMap;
    let scopes = store.action_scopes(plan)?;
    if scopes.iter().all(|s| s.primary.is_none()) {
        return Ok(HashMap::new());
    }
    let states: HashMap<String, ActionState> = store
        .actions(plan)?
        .into_iter()
        .map(|a| (a.name, a.state))
        .collect();
    // Each group of alternatives is named by its primary.
    let group = |s: &crate::store::flows::ScopeRow| {
        s.primary
            .as_ref()
            .map_or_else(|| s.name.clone(), |(p, _)| p.clone())
    };
    let mut winner: HashMap<String, String> = HashMap::new();
    for s in &scopes {
        if states.get(&s.name) == Some(&ActionState::Succeeded) {
            winner.insert(group(s), s.name.clone());
        }
    }
    Ok(scopes
        .iter()
        .filter_map(|s| {
            let by = winner.get(&group(s))?;
            (by != &s.name).then(|| (s.name.clone(), by.clone()))
        })
        .collect())
}

/// Why a plan in `state` is not started (`ops::plans::not_startable`).
fn not_startable(uuid: &str, state: PlanState) -> CliError {
    super::op_error(crate::ops::plans::not_startable(uuid, state))
}

/// `action-plan start ID [--wait]`.
pub fn start(env: &Env, plan: &str, wait: bool, flags: &RunFlags<'_>, format: Format) -> CliResult {
    if wait {
        let p = env.open_store()?.plan(plan).map_err(store_input)?;
        if p.state != PlanState::Recommended {
            return Err(not_startable(&p.uuid, p.state));
        }
        let o = apply_now(env, &p.uuid, flags)?;
        return print_outcome(env, &o, format);
    }
    let types = env.action_types();
    let (mut store, plugins, _) = env.open_store_synced_with(&types)?;
    let p = store.plan(plan).map_err(store_input)?;
    let resolved = resolve(&store, &p.uuid, flags, &|| {
        crate::policy::Vocabulary::of(&types, &plugins)
    })?;
    if !record_flags(
        &mut store,
        &p.uuid,
        flags,
        &resolved,
        &[PlanState::Recommended],
        true,
    )? {
        let state = store.plan(&p.uuid).map_err(store_input)?.state;
        return Err(not_startable(&p.uuid, state));
    }
    if !print_structured(
        format,
        &serde_json::json!({"action_plan": p.uuid, "state": PlanState::Pending}),
    )? {
        outln!("action plan {}: PENDING (sextant serve runs it)", p.uuid);
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan cancel ID`.
pub fn cancel(env: &Env, plan: &str, format: Format) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    let (p, state) = crate::ops::plans::cancel(&mut store, plan).map_err(super::op_error)?;
    if !print_structured(
        format,
        &serde_json::json!({"action_plan": p.uuid, "state": state}),
    )? {
        outln!("action plan {}: {state}", p.uuid);
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan resume [ID] --wait`: interrupted plans (ONGOING or
/// CANCELLING with no live applier), or queued ones (PENDING). Without an
/// id, `--format json|yaml` prints the list of the plans resumed.
pub fn resume(env: &Env, plan: Option<&str>, flags: &RunFlags<'_>, format: Format) -> CliResult {
    let ids: Vec<String> = match plan {
        Some(p) => vec![p.to_string()],
        None => {
            let (store, _, _) = env.open_store_synced()?;
            store
                .plans(None)?
                .into_iter()
                .filter(|p| p.state.is_running())
                .map(|p| p.uuid)
                .collect()
        }
    };
    // Without an id, `--format json|yaml` prints one document, the list of
    // the plans resumed (empty when there was none); with one, that plan's.
    let listing = plan.is_none() && format != Format::Table;
    if ids.is_empty() && !listing {
        outln!("no interrupted or queued action plan");
        return Ok(ExitCode::SUCCESS);
    }
    let mut code = ExitCode::SUCCESS;
    let mut docs = Vec::new();
    for id in ids {
        let o = apply_now(env, &id, flags)?;
        let status = if listing {
            docs.push(outcome_doc(env, &o)?.doc);
            outcome_status(&o)
        } else {
            print_outcome(env, &o, format)?
        };
        if status != ExitCode::SUCCESS {
            code = ExitCode::from(1);
        }
    }
    if listing {
        print_structured(format, &docs)?;
    }
    Ok(code)
}

/// `action skip ID [--reason]`.
pub fn skip(
    env: &Env,
    action: &str,
    plan: Option<&str>,
    reason: Option<&str>,
    format: Format,
) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    let uuid = crate::ops::plans::skip_action(&mut store, action, plan, reason)
        .map_err(super::op_error)?;
    if !print_structured(
        format,
        &serde_json::json!({"action": uuid, "state": ActionState::Skipped}),
    )? {
        outln!("action {uuid}: SKIPPED");
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
                        e.event_type.to_string(),
                        format!("{} {}", e.object_type, e.object_uuid),
                        match (&e.old_state, &e.new_state) {
                            (Some(o), Some(n)) => format!("{o} -> {n}"),
                            (None, Some(n)) => n.to_string(),
                            _ => super::flow_view::event_detail(e.event_type, &e.payload),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The applier's options hold the simulated cloud's URL, password
    /// included, for its handlers (the store's when no `sim_db` is
    /// configured): printed whole, they show no password.
    #[test]
    fn the_applier_options_hold_the_clouds_password_and_never_show_it() {
        let policy = crate::policy::Policy::parse(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.yaml"),
            )
            .expect("the default policy"),
            std::path::Path::new("default.yaml"),
        )
        .expect("valid");
        for (config, secrets) in [
            ("", &["dbpw1x"][..]),
            (
                "sim:\n  sim_db: 'postgres://u:simpw1x@127.0.0.1:5/sim?password=simpw2x'\n",
                &["simpw1x", "simpw2x"][..],
            ),
        ] {
            let env = Env {
                config: crate::config::Config::parse(config, std::path::Path::new("c.yaml"))
                    .expect("valid"),
                plugin_dirs: Vec::new(),
                db: crate::store::Location::parse("postgres://u:dbpw1x@127.0.0.1:5/db", "--db")
                    .expect("url"),
                db_directory: crate::store::location::StoreDirectory::Named,
            };
            let options = Resolved {
                policy: policy.clone(),
                execution_rule: None,
                max_workers: 1,
                applied_with: Value::Null,
            }
            .options(&env, StopSignal::default());
            let handed = options.driver_config.expose().to_string()
                + &options
                    .model_source
                    .as_ref()
                    .map(|m| m.config.to_string())
                    .unwrap_or_default();
            let shown = format!("{options:?}");
            for s in secrets {
                assert!(handed.contains(s), "{s} handed to the plugins: {handed}");
                assert!(!shown.contains(s), "{s} shows in {shown}");
            }
        }
    }
}
