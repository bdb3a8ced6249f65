//! The decision engine: audits. Checks an audit request as Watcher's API
//! does (reference sections 7.2 and 5.4), then runs it: selects the
//! strategy, builds the cluster model, runs the strategy plugin, and puts
//! every action of its solution through the action factory. CONTINUOUS
//! audits are scheduled by `continuous.rs`.
//!
//! Invariants: a refused request writes nothing; an audit's state only
//! moves along Watcher's transitions, each with its event.

pub mod continuous;
pub mod requests;
pub mod schedule;
pub mod scope;

pub use continuous::{run_continuous, tick_continuous};
pub use requests::run_requested_audits;

use crate::action_types::{ActionFactory, ActionTypeRegistry, NewAction};
use crate::plugins::PluginRegistry;
use crate::states::AuditType;
use crate::states::{ActionState, AuditState, EventType, PlanState};
use crate::store::audits::{AuditChanges, AuditRow, AuditSolution, NewAudit};
use crate::store::{GoalRow, Store, StoreError, StrategyRow};
use serde_json::{Value, json};

/// Why an audit request was refused, or an audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The request is invalid (exit status 2).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(msg: impl Into<String>) -> DecideError {
    DecideError::Invalid(msg.into())
}

/// What `audit create` asks for.
#[derive(Clone, Debug, Default)]
pub struct AuditRequest {
    /// ONESHOT (default), CONTINUOUS or EVENT.
    pub audit_type: String,
    /// Goal uuid or name (or from the template).
    pub goal: Option<String>,
    /// Strategy uuid or name.
    pub strategy: Option<String>,
    /// Template uuid or name.
    pub template: Option<String>,
    /// Parameters (a JSON object).
    pub parameters: Value,
    /// CONTINUOUS: seconds or a cron expression.
    pub interval: Option<String>,
    /// Name (default: `<strategy|template|goal>-<time>`).
    pub name: Option<String>,
    /// CONTINUOUS: not before (RFC 3339).
    pub start_time: Option<String>,
    /// CONTINUOUS: not after (RFC 3339).
    pub end_time: Option<String>,
    /// Run even when a plan is ONGOING.
    pub force: bool,
    /// Start the plan automatically.
    pub auto_trigger: bool,
    /// Scheduling policy for its plans.
    pub policy: Option<String>,
}

/// Validates strategy parameters against the strategy's schema as Watcher
/// does: unknown parameters are refused, defaults are filled in.
pub fn validate_parameters(strategy: &StrategyRow, params: &Value) -> Result<Value, DecideError> {
    let mut p = match params {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => params.clone(),
        _ => return Err(invalid("parameters must be a mapping")),
    };
    let spec = &strategy.parameters_spec;
    let known: Vec<&String> = spec["properties"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let unknown: Vec<&String> = p
        .as_object()
        .map(|m| m.keys().filter(|k| !known.contains(k)).collect())
        .unwrap_or_default();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "Audit parameter {} are not allowed (strategy {} accepts: {})",
            unknown
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            strategy.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    crate::action_types::factory::fill_defaults(spec, &mut p);
    let validator = crate::action_types::dsl::compile_schema(spec).map_err(|e| {
        invalid(format!(
            "strategy {} has an invalid parameter schema: {e}",
            strategy.name
        ))
    })?;
    let errors: Vec<String> = validator
        .iter_errors(&p)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{}: {e}", at.trim_start_matches('/'))
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(invalid(format!(
            "Invalid parameters for strategy {}: {}",
            strategy.name,
            errors.join("; ")
        )));
    }
    Ok(p)
}

fn check_time(what: &str, t: &Option<String>) -> Result<(), DecideError> {
    if let Some(t) = t {
        schedule::parse_time(t).map_err(|e| invalid(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// The goal `id` (uuid or name); an unknown one is refused with the goals
/// there are and the closest.
pub fn find_goal(store: &Store, id: &str) -> Result<GoalRow, DecideError> {
    match store.goal(id) {
        Err(StoreError::NotFound { .. }) => {
            let goals = store.goals()?;
            let names: Vec<&str> = goals.iter().map(|g| g.name.as_str()).collect();
            Err(invalid(format!(
                "no goal named {id:?} ({})",
                crate::suggest::candidates_message(id, &names)
            )))
        }
        r => Ok(r?),
    }
}

/// The strategy `id` (uuid or name); an unknown one is refused with the
/// strategies of `goal` (all of them without a goal) and the closest.
pub fn find_strategy(
    store: &Store,
    id: &str,
    goal: Option<&GoalRow>,
) -> Result<StrategyRow, DecideError> {
    match store.strategy(id) {
        Err(StoreError::NotFound { .. }) => {
            let list = store.strategies(goal.map(|g| g.uuid.as_str()))?;
            let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
            let of = goal.map_or(String::new(), |g| format!(" for goal {}", g.name));
            Err(invalid(format!(
                "no strategy named {id:?}{of} ({})",
                crate::suggest::candidates_message(id, &names)
            )))
        }
        r => Ok(r?),
    }
}

/// Checks an audit request against the store, as Watcher's API does, and
/// returns the audit to create. Writes nothing. Its policy is resolved and
/// checked against `vocab`, and its content goes with the audit.
pub fn prepare_audit(
    store: &Store,
    req: &AuditRequest,
    vocab: &crate::policy::Vocabulary,
) -> Result<NewAudit, DecideError> {
    let audit_type = if req.audit_type.is_empty() {
        AuditType::Oneshot
    } else {
        req.audit_type.to_uppercase().parse().map_err(|_| {
            invalid(format!(
                "audit type {} is not one of ONESHOT, CONTINUOUS, EVENT",
                req.audit_type
            ))
        })?
    };
    let template = match (&req.template, &req.goal) {
        (Some(_), Some(_)) => {
            return Err(invalid("give either an audit template or a goal, not both"));
        }
        (None, None) => {
            return Err(invalid(
                "give a goal (--goal) or an audit template (--audit-template)",
            ));
        }
        (Some(t), None) => Some(store.template(t)?),
        (None, Some(_)) => None,
    };
    let goal = match &template {
        Some(t) => {
            if t.goal_vanished {
                return Err(invalid(format!(
                    "audit template {}: its goal {} is no longer provided by any plugin",
                    t.name, t.goal_name
                )));
            }
            store.goal(&t.goal_uuid)?
        }
        None => find_goal(store, req.goal.as_deref().unwrap_or_default())?,
    };
    let strategy = match (
        &req.strategy,
        template.as_ref().and_then(|t| t.strategy_uuid.clone()),
    ) {
        (Some(s), _) => Some(find_strategy(store, s, Some(&goal))?),
        (None, Some(s)) => Some(store.strategy(&s)?),
        (None, None) => None,
    };
    if let Some(s) = &strategy
        && s.goal_uuid != goal.uuid
    {
        return Err(invalid(format!(
            "strategy {} achieves goal {}, not {}",
            s.name, s.goal_name, goal.name
        )));
    }
    let mut params = template
        .as_ref()
        .map(|t| t.default_parameters.clone())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let (Value::Object(base), Value::Object(given)) = (&mut params, &req.parameters) {
        for (k, v) in given {
            base.insert(k.clone(), v.clone());
        }
    }
    let has_params = params.as_object().is_some_and(|m| !m.is_empty());
    // Without a strategy, the goal's default strategy (the one the audit
    // would run) checks the parameters, so that a required one missing or a
    // value out of range is refused now, not when the audit runs. Given
    // parameters pin that strategy: they stay its parameters.
    let (strategy, parameters) = match strategy {
        Some(s) => {
            let p = validate_parameters(&s, &params)?;
            (Some(s), p)
        }
        None => match store.strategies(Some(&goal.uuid))?.into_iter().next() {
            Some(d) => {
                let p = validate_parameters(&d, &params)?;
                if has_params {
                    (Some(d), p)
                } else {
                    (None, json!({}))
                }
            }
            None if has_params => {
                return Err(invalid(format!(
                    "parameters are given, but no strategy is available for goal {}",
                    goal.name
                )));
            }
            None => (None, json!({})),
        },
    };
    match (audit_type, &req.interval) {
        (AuditType::Continuous, None) => {
            return Err(invalid("a CONTINUOUS audit needs an interval"));
        }
        (AuditType::Continuous, Some(i)) => {
            schedule::parse_interval(i).map_err(invalid)?;
        }
        (t, Some(_)) => {
            return Err(invalid(format!(
                "an interval is only for CONTINUOUS audits, not {t}"
            )));
        }
        _ => {}
    }
    if audit_type == AuditType::Oneshot && (req.start_time.is_some() || req.end_time.is_some()) {
        return Err(invalid("start and end times are not for ONESHOT audits"));
    }
    // Its own policy, else its template's (as default parameters are).
    let policy = match (&req.policy, &template) {
        (Some(reference), _) => Some(stored_policy(reference, vocab)?),
        (None, Some(t)) => t
            .policy
            .clone()
            .zip(t.policy_content.as_ref().map(Value::to_string)),
        (None, None) => None,
    };
    check_time("start time", &req.start_time)?;
    check_time("end time", &req.end_time)?;
    let name = match &req.name {
        Some(n) if n.trim().is_empty() => return Err(invalid("an audit name must not be empty")),
        Some(n) => n.clone(),
        None => {
            let base = strategy
                .as_ref()
                .map(|s| s.name.clone())
                .or_else(|| template.as_ref().map(|t| t.name.clone()))
                .unwrap_or_else(|| goal.name.clone());
            format!("{base}-{}", crate::store::now())
        }
    };
    let name: String = name.chars().take(63).collect();
    Ok(NewAudit {
        name,
        audit_type,
        goal: goal.uuid,
        strategy: strategy.map(|s| s.uuid),
        template: template.as_ref().map(|t| t.uuid.clone()),
        parameters,
        interval: req.interval.clone(),
        scope: template.map(|t| t.scope).unwrap_or_else(|| json!([])),
        auto_trigger: req.auto_trigger,
        start_time: req.start_time.clone(),
        end_time: req.end_time.clone(),
        force: req.force,
        policy_content: policy.as_ref().map(|(_, c)| c.clone()),
        policy: policy.map(|(r, _)| r),
    })
}

/// The strategy an audit runs: its own, else the first available for its
/// goal, else an error naming the goal.
pub fn select_strategy(store: &Store, audit: &AuditRow) -> Result<StrategyRow, String> {
    if let Some(s) = &audit.strategy_uuid {
        return store.strategy(s).map_err(|e| e.to_string());
    }
    store
        .strategies(Some(&audit.goal_uuid))
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("no strategy is available for goal {}", audit.goal_name))
}

/// Where an audit's cluster model comes from: a collector entry and its
/// configuration.
#[derive(Clone)]
pub struct ModelSource {
    /// The collector entry (`sim`).
    pub collector: String,
    /// Its configuration (for `sim`: `{"sim_db": …}`, which may hold a
    /// password: `Debug` does not show it).
    pub config: Value,
    /// Where the model's usage metrics come from when not from the
    /// collector (`metrics:` in the config file).
    pub metrics: crate::config::MetricsConfig,
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSource")
            .field("collector", &self.collector)
            .field("config", &crate::config::Secret::<()>::new(()))
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// What running an audit needs besides the store.
pub struct AuditContext<'a> {
    /// The loaded plugins.
    pub plugins: &'a PluginRegistry,
    /// The action types.
    pub types: &'a ActionTypeRegistry,
    /// The cluster model's source.
    pub model: ModelSource,
}

/// The audit's cluster model, scoped, and whether the collector found no
/// node at all (a cloud never seeded, an empty snapshot).
fn collect_model(ctx: &AuditContext<'_>, audit: &AuditRow) -> Result<(Value, bool), String> {
    let raw = ctx
        .plugins
        .collect(&ctx.model.collector, &ctx.model.config)
        .map_err(|e| format!("collector {}: {e}", ctx.model.collector))?;
    let model: sextant_plugin_api::model::ClusterModel =
        serde_json::from_value(raw).map_err(|e| {
            format!(
                "collector {} returned an invalid model: {e}",
                ctx.model.collector
            )
        })?;
    let empty = model.nodes.is_empty();
    let scoped = scope::apply(&model, &audit.scope).map_err(|e| format!("audit scope: {e}"))?;
    let scoped = serde_json::to_value(scoped).map_err(|e| e.to_string())?;
    Ok((scoped, empty))
}

/// The model with the metrics the strategy declares read from the
/// configured metrics source (unchanged without one).
fn fill_metrics(
    ctx: &AuditContext<'_>,
    strategy: &StrategyRow,
    model: Value,
    parameters: &Value,
) -> Result<Value, String> {
    if ctx.model.metrics.source.is_none() {
        return Ok(model);
    }
    let needed = ctx
        .plugins
        .find(sextant_plugin_api::manifest::Kind::Strategy, &strategy.name)
        .map(|e| e.manifest().metrics.clone())
        .unwrap_or_default();
    if needed.is_empty() {
        return Ok(model);
    }
    let mut m: sextant_plugin_api::model::ClusterModel =
        serde_json::from_value(model).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    crate::datasource::fill_model(&ctx.model.metrics, &mut m, &needed, parameters)
        .map_err(|e| format!("strategy {}: {e}", strategy.name))?;
    tracing::info!(
        "metrics {} of {} nodes and {} instances read in {:?}",
        needed.join(", "),
        m.nodes.len(),
        m.instances.len(),
        started.elapsed()
    );
    serde_json::to_value(m).map_err(|e| e.to_string())
}

/// Why an audit of an empty cluster model that recommends nothing fails:
/// it would otherwise look like a healthy cloud ("SUCCEEDED, 0 actions").
fn empty_model_message(collector: &str) -> String {
    if collector == "sim" {
        "the cluster model is empty: the simulated cloud has no node (seed it with \
         `sextant sim init --from FILE`, e.g. examples/clusters/small.yaml)"
            .into()
    } else {
        format!("the cluster model is empty: collector {collector} found no node")
    }
}

/// What a strategy run produced: the actions as instantiated, the
/// efficacy indicators, the global efficacy, and the strategy used.
struct StrategyRun {
    actions: Vec<Value>,
    indicators: Value,
    /// Watcher's `global_efficacy` list (`[{name, unit, value}]`), from
    /// the solution's `extra.global_efficacy`; `[]` when the goal has none.
    global_efficacy: Value,
    strategy: StrategyRow,
    /// Why the strategy recommends what it does (`extra.reason`).
    reason: Option<String>,
    /// The strategy's ranked candidates (`extra.candidates`), null when none.
    candidates: Value,
    /// The cluster model the strategy decided from (scoped, with its
    /// metrics): the planner's too, so the collector runs once per audit.
    model: Value,
}

/// Selects the strategy, collects the model, runs the strategy and puts
/// every action through the action factory; with the strategy events.
fn execute_strategy(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    audit: &AuditRow,
) -> Result<Result<StrategyRun, String>, DecideError> {
    let strategy = match select_strategy(store, audit) {
        Ok(s) => s,
        Err(msg) => return Ok(Err(msg)),
    };
    let event = |store: &mut Store, event: EventType, payload: Value| {
        store.note(event, &audit.uuid, None, payload)
    };
    event(
        store,
        EventType::AuditStrategyStart,
        json!({"strategy": strategy.name}),
    )?;
    let result = (|| {
        let (model, empty) = collect_model(ctx, audit)?;
        let model = fill_metrics(ctx, &strategy, model, &audit.parameters)?;
        if empty {
            tracing::warn!(
                "audit {}: {}",
                audit.uuid,
                empty_model_message(&ctx.model.collector)
            );
        }
        let solution = ctx
            .plugins
            .run_strategy(&strategy.name, &model, &audit.parameters)
            .map_err(|e| format!("strategy {} failed: {e}", strategy.name))?;
        if empty && solution.actions.is_empty() {
            return Err(empty_model_message(&ctx.model.collector));
        }
        let factory = ActionFactory::new(ctx.types);
        let mut actions = Vec::new();
        for a in &solution.actions {
            let mut req = NewAction::new(a.action_type.clone(), a.input_parameters.clone());
            req.resource_id = a.resource_id.clone();
            let i = factory.instantiate(&req).map_err(|e| {
                format!(
                    "strategy {} proposed an invalid action {}: {e}",
                    strategy.name, a.id
                )
            })?;
            actions.push(json!({
                "id": a.id,
                "action_type": i.action_type,
                "action_type_version": i.action_type_version,
                "resource_id": i.resource_id,
                "input_parameters": i.input_parameters,
            }));
        }
        let indicators = match &solution.efficacy_indicators {
            Value::Null => json!([]),
            v => v.clone(),
        };
        let global = match solution.extra.get("global_efficacy") {
            Some(Value::Array(list)) => Value::Array(list.clone()),
            _ => json!([]),
        };
        let candidates = solution
            .extra
            .get(sextant_plugin_api::CANDIDATES_KEY)
            .cloned()
            .unwrap_or(Value::Null);
        Ok((
            actions,
            indicators,
            global,
            solution.reason().map(str::to_string),
            candidates,
            model,
        ))
    })();
    match result {
        Ok((actions, indicators, global_efficacy, reason, candidates, model)) => {
            event(
                store,
                EventType::AuditStrategyEnd,
                json!({"strategy": strategy.name, "actions": actions.len()}),
            )?;
            Ok(Ok(StrategyRun {
                actions,
                indicators,
                global_efficacy,
                strategy,
                reason,
                candidates,
                model,
            }))
        }
        Err(msg) => {
            event(
                store,
                EventType::AuditStrategyError,
                json!({"strategy": strategy.name, "error": msg}),
            )?;
            Ok(Err(msg))
        }
    }
}

/// A run's solution, stored with its audit.
fn solution_changes(run: &StrategyRun) -> AuditChanges {
    AuditChanges {
        solution: Some(AuditSolution::new(
            json!(run.actions),
            run.indicators.clone(),
            &run.strategy,
        )),
        ..Default::default()
    }
}

/// The decision engine's own moves: Watcher's, plus re-running a finished
/// EVENT audit and keeping a CONTINUOUS one ONGOING.
fn engine_move(from: AuditState, to: AuditState) -> bool {
    crate::store::audits::audit_transition_allowed(from, to)
        || matches!(
            (from, to),
            (AuditState::Succeeded, AuditState::Ongoing)
                | (AuditState::Ongoing, AuditState::Ongoing)
        )
}

/// auto_trigger, one rule for every audit type: the plan a run made is
/// queued for an applier (`sextant serve`), RECOMMENDED → PENDING, as
/// Watcher's `post_execute` casts `launch_action_plan` (reference section
/// 5.4). A plan that is already terminal (an empty solution is SUCCEEDED
/// at once) stays as it is.
fn queue_if_auto_triggered(
    store: &mut Store,
    audit: &AuditRow,
    plan: Option<&str>,
) -> Result<(), DecideError> {
    if let (true, Some(p)) = (audit.auto_trigger, plan) {
        store.plan_transition(
            p,
            &[PlanState::Recommended],
            PlanState::Pending,
            None,
            EventType::PlanUpdate,
        )?;
    }
    Ok(())
}

/// Runs a ONESHOT or EVENT audit: ONGOING, then SUCCEEDED with its solution
/// stored, FAILED with the reason, or CANCELLED (ONESHOT) when a plan is
/// ONGOING and the audit is not forced.
pub fn run_audit(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    uuid: &str,
) -> Result<AuditRow, DecideError> {
    run_audit_claimed(store, ctx, uuid, None)
}

/// As [`run_audit`]; with `claim` (the trigger, this host's id), the run is
/// claimed once the audit may run, and refused when another host claimed
/// it first (see [`trigger_audit`]).
fn run_audit_claimed(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    uuid: &str,
    claim: Option<(&str, &str)>,
) -> Result<AuditRow, DecideError> {
    let audit = store.audit(uuid)?;
    // An auto-triggered audit never queues a second plan beside one of its
    // own that is still queued or running (an EVENT audit is re-triggered;
    // CONTINUOUS audits follow the same rule in `continuous.rs`).
    if audit.auto_trigger
        && let Some((plan, state)) = store.running_plan_of_audit(&audit.uuid)?
    {
        return Err(invalid(format!(
            "audit {} is auto-triggered and its action plan {plan} is still {state}: \
             trigger it again once that plan has ended",
            audit.uuid
        )));
    }
    if !audit.force
        && let Some(plan) = store.ongoing_plan()?
    {
        let msg = format!("action plan {plan} is ONGOING (use --force to audit anyway)");
        if audit.audit_type == AuditType::Oneshot {
            return Ok(store.transition_audit(
                uuid,
                AuditState::Cancelled,
                Some(&msg),
                &AuditChanges::default(),
            )?);
        }
        return Err(invalid(msg));
    }
    if let Some((trigger, host)) = claim
        && !store.claim_audit_tick(uuid, trigger, host)?
    {
        return Err(invalid(format!(
            "audit {uuid} is already being run by another trigger"
        )));
    }
    let host = match claim {
        Some((_, host)) => host.to_string(),
        None => std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
    };
    let audit = store.move_audit(
        uuid,
        AuditState::Ongoing,
        None,
        &AuditChanges {
            hostname: Some(host),
            ..Default::default()
        },
        engine_move,
    )?;
    let run = match execute_strategy(store, ctx, &audit)?.and_then(|run| {
        let plan = plan_solution(ctx, &audit, &run)?;
        Ok((run, plan))
    }) {
        Ok(r) => r,
        Err(msg) => {
            tracing::warn!("audit {uuid} failed: {msg}");
            return Ok(store.transition_audit(
                uuid,
                AuditState::Failed,
                Some(&msg),
                &AuditChanges::default(),
            )?);
        }
    };
    let (run, mut planned) = run;
    let plan = new_plan(&run, &mut planned);
    let message = match (run.actions.len(), &run.reason) {
        (0, reason) => {
            let why = reason.as_deref().unwrap_or("the strategy gave no reason");
            tracing::info!(
                "audit {uuid}: {} recommends nothing: {why}",
                run.strategy.name
            );
            format!("no action recommended by {}: {why}", run.strategy.name)
        }
        (n, _) => format!(
            "{n} actions recommended by {}, planned by {}",
            run.strategy.name,
            plan.planner.as_deref().unwrap_or("-")
        ),
    };
    let done = store.move_audit_with_plan(
        uuid,
        AuditState::Succeeded,
        Some(&message),
        &solution_changes(&run),
        engine_move,
        Some(&plan),
    )?;
    queue_if_auto_triggered(store, &done, done.action_plan.as_deref())?;
    Ok(done)
}

/// A strategy run's actions as the planner received them, its plan, and the
/// rest of the new plan (everything but its actions).
struct PlannedRun {
    specs: Vec<sextant_plugin_api::abi::ActionSpec>,
    planned: crate::plan::PlannedSolution,
    head: crate::store::plans::NewPlan<'static>,
    /// The action-type versions of the planner's alternatives (solution
    /// indexes from the run's action count on).
    alternative_versions: Vec<String>,
}

/// The new plan of a planned run: its actions borrow the run's ids, types,
/// versions and parameters (serialized once, for the planner).
fn new_plan<'a>(run: &'a StrategyRun, p: &'a mut PlannedRun) -> crate::store::plans::NewPlan<'a> {
    let head = std::mem::take(&mut p.head);
    let p: &'a PlannedRun = p;
    let n = run.actions.len();
    let version = move |i: usize| match run.actions.get(i) {
        Some(a) => a["action_type_version"].as_str().unwrap_or_default(),
        None => p.alternative_versions.get(i - n).map_or("", String::as_str),
    };
    crate::store::plans::NewPlan {
        rows: p.planned.rows(&p.specs, version, ActionState::Pending),
        ..head
    }
}

/// Schedules a strategy run's actions with the strategy's planner.
fn plan_solution(
    ctx: &AuditContext<'_>,
    audit: &AuditRow,
    run: &StrategyRun,
) -> Result<PlannedRun, String> {
    use crate::store::plans::NewPlan;
    // Each action's parameters are serialized once: for the planner here,
    // and the same text is stored with the plan.
    let specs: Vec<sextant_plugin_api::abi::ActionSpec> = run
        .actions
        .iter()
        .map(|a| {
            crate::plan::spec(
                a["id"].as_str().unwrap_or_default(),
                a["action_type"].as_str().unwrap_or_default(),
                a["resource_id"].as_str(),
                &a["input_parameters"],
            )
        })
        .collect();
    // The audit's policy chooses the planner and its config; without one, the
    // strategy's planner runs with Watcher's defaults.
    let policy = audit_policy(audit)?;
    let (planner, config) = match &policy {
        Some(p) => (p.planner.clone(), p.planner_config()),
        None => (run.strategy.planner.clone(), json!({})),
    };
    // The model the strategy decided from: collecting again would double
    // the calls to a real cloud and could see another cloud.
    let model = Some(&run.model);
    let instance_hosts = instance_hosts_of(model);
    // The model and the candidates go to the planner only when the policy
    // asks for alternatives or flows: otherwise its context is what it was.
    let wants_structure = policy.as_ref().is_some_and(|p| p.alternatives.is_some());
    let extras = if wants_structure {
        crate::plan::PlanExtras {
            model,
            candidates: (!run.candidates.is_null()).then_some(&run.candidates),
        }
    } else {
        crate::plan::PlanExtras::default()
    };
    let mut planned = crate::plan::plan_with(
        ctx.plugins,
        &planner,
        &config,
        &instance_hosts,
        &crate::plan::durations(ctx.types),
        &specs,
        extras,
    )
    .map_err(|e| e.to_string())?;
    drop((instance_hosts, model));
    let mut specs = specs;
    let (structure, alternative_versions) =
        planner_structure(ctx, &planner, &mut planned, &mut specs)?;
    let indicators = match &run.indicators {
        Value::Array(list) => Value::Array(list.clone()),
        Value::Object(m) => Value::Array(
            m.iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect(),
        ),
        _ => json!([]),
    };
    let extra = json!({"policy": policy, "planner": std::mem::take(&mut planned.extra)});
    Ok(PlannedRun {
        head: NewPlan {
            audit_uuid: Some(audit.uuid.clone()),
            strategy_uuid: Some(run.strategy.uuid.clone()),
            planner: Some(planner),
            state: planned.action_plan_state,
            global_efficacy: run.global_efficacy.clone(),
            efficacy_indicators: indicators,
            extra,
            structure,
            ..Default::default()
        },
        specs,
        planned,
        alternative_versions,
    })
}

/// Adds a planner's alternatives to the plan, each put through the action
/// factory as a strategy's actions are (defaults filled in, parameters
/// checked against its type's schema), and returns the structure to store
/// with the plan and the alternatives' action-type versions.
fn planner_structure(
    ctx: &AuditContext<'_>,
    planner: &str,
    planned: &mut crate::plan::PlannedSolution,
    specs: &mut Vec<sextant_plugin_api::abi::ActionSpec>,
) -> Result<(crate::store::flows::PlanStructure, Vec<String>), String> {
    let mut structure = std::mem::take(&mut planned.structure);
    if structure.is_empty() {
        return Ok(Default::default());
    }
    let factory = ActionFactory::new(ctx.types);
    let mut versions = Vec::with_capacity(structure.alternatives.len());
    for alt in &mut structure.alternatives {
        let a = &mut alt.action;
        let mut req = NewAction::new(a.action_type.clone(), a.input_parameters.clone());
        req.resource_id = a.resource_id.clone();
        let i = factory.instantiate(&req).map_err(|e| {
            format!(
                "planner {planner} proposed an invalid alternative {}: {e}",
                a.id
            )
        })?;
        a.action_type = i.action_type;
        a.input_parameters = i.input_parameters;
        a.resource_id = None;
        versions.push(i.action_type_version);
    }
    Ok((structure.apply(planned, specs), versions))
}

/// The policy an audit's plans are made with: the content stored when the
/// audit was created, never the file as it is now. An audit stored before
/// contents were kept (schema 6 and older) reads its policy by reference.
fn audit_policy(audit: &AuditRow) -> Result<Option<crate::policy::Policy>, String> {
    match (&audit.policy_content, &audit.policy) {
        (Some(content), _) => serde_json::from_value(content.clone())
            .map(Some)
            .map_err(|e| {
                format!(
                    "the stored policy of audit {} is unreadable: {e}",
                    audit.uuid
                )
            }),
        (None, Some(reference)) => crate::policy::load(reference)
            .map(Some)
            .map_err(|e| e.to_string()),
        (None, None) => Ok(None),
    }
}

/// Instance uuid → host from the cluster model, for planners that need it.
fn instance_hosts_of(model: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for i in model
        .and_then(|m| m.get("instances"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(u), Some(h)) = (i["uuid"].as_str(), i["host"].as_str()) {
            out.insert(u.to_string(), h.to_string());
        }
    }
    out
}

/// Triggers an EVENT audit (PENDING or SUCCEEDED): runs it now.
///
/// A trigger runs once across the hosts sharing the database: it is claimed
/// first ([`crate::store::FleetStore::claim_audit_tick`], keyed by the
/// audit's state and last change), so of triggers that arrive at once on
/// several hosts (`host` is this one's id) only the first runs the audit;
/// the others are refused, naming the audit.
pub fn trigger_audit(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    id: &str,
    host: &str,
) -> Result<AuditRow, DecideError> {
    let audit = store.audit(id)?;
    if audit.audit_type != AuditType::Event {
        return Err(invalid(format!(
            "audit {} is {}: only EVENT audits are triggered",
            audit.uuid, audit.audit_type
        )));
    }
    if audit.state != AuditState::Pending && audit.state != AuditState::Succeeded {
        return Err(invalid(format!(
            "audit {} is {}: an EVENT audit is triggered from PENDING or SUCCEEDED",
            audit.uuid, audit.state
        )));
    }
    let trigger = format!(
        "trigger {} {}",
        audit.state,
        audit.updated_at.as_deref().unwrap_or(&audit.created_at)
    );
    run_audit_claimed(store, ctx, &audit.uuid, Some((&trigger, host)))
}

/// A policy as audits and audit templates keep it: the reference (a name
/// as given, a file by its absolute path) and the checked content
/// ([`crate::policy::Policy::to_stored`]).
pub fn stored_policy(
    reference: &str,
    vocab: &crate::policy::Vocabulary,
) -> Result<(String, String), DecideError> {
    let p = crate::policy::load_checked(reference, vocab).map_err(|e| invalid(e.to_string()))?;
    // A file is kept by its absolute path, a name as given.
    let is_file = crate::policy::resolve(reference)
        .is_ok_and(|f| f.as_os_str() == std::ffi::OsStr::new(reference));
    let shown = match (&p.source, is_file) {
        (Some(f), true) => f.display().to_string(),
        _ => reference.to_string(),
    };
    Ok((shown, p.to_stored()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audits::NewAudit;

    #[test]
    fn a_trigger_another_host_claimed_first_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sqlite = crate::store::SqliteStore::open(&dir.path().join("s.db")).expect("open");
        sqlite.insert_test_goal("g").expect("goal");
        let mut store = Store::from_backend(Box::new(sqlite));
        let audit = store
            .create_audit(&NewAudit {
                name: "on-event".into(),
                audit_type: AuditType::Event,
                goal: "g".into(),
                strategy: None,
                template: None,
                parameters: json!({}),
                interval: None,
                scope: json!([]),
                auto_trigger: false,
                start_time: None,
                end_time: None,
                force: true,
                policy: None,
                policy_content: None,
            })
            .expect("audit");
        let plugins = crate::plugins::PluginRegistry::default();
        let types = crate::action_types::ActionTypeRegistry::default();
        let ctx = AuditContext {
            plugins: &plugins,
            types: &types,
            model: ModelSource {
                collector: "none".into(),
                config: json!({}),
                metrics: Default::default(),
            },
        };
        // The same trigger, seen by another host first.
        let key = format!(
            "trigger {} {}",
            audit.state,
            audit.updated_at.as_deref().unwrap_or(&audit.created_at)
        );
        assert!(
            store
                .claim_audit_tick(&audit.uuid, &key, "other-host")
                .expect("claim")
        );
        let events = store.events(None, 0).expect("events").len();
        let e = trigger_audit(&mut store, &ctx, &audit.uuid, "this-host")
            .expect_err("claimed by the other host");
        assert!(
            e.to_string().contains(&audit.uuid) && e.to_string().contains("another trigger"),
            "{e}"
        );
        assert_eq!(store.audit(&audit.uuid).expect("audit"), audit);
        assert_eq!(store.events(None, 0).expect("events").len(), events);
    }
}
