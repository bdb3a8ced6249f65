//! The decision engine: audits. Checks an audit request as Watcher's API
//! does (reference sections 7.2 and 5.4), then runs it: selects the
//! strategy, builds the cluster model, runs the strategy plugin, and puts
//! every action of its solution through the action factory.
//!
//! Invariants: a refused request writes nothing; an audit's state only
//! moves along Watcher's transitions, each with its event.

pub mod scope;

use crate::action_types::{ActionFactory, ActionTypeRegistry, NewAction};
use crate::plugins::PluginRegistry;
use crate::store::audits::{AuditRow, NewAudit};
use crate::store::{Store, StoreError, StrategyRow};
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

fn check_interval(interval: &str) -> Result<(), DecideError> {
    if let Ok(n) = interval.trim().parse::<u64>() {
        if n == 0 {
            return Err(invalid("interval must be at least 1 second"));
        }
        return Ok(());
    }
    let fields: Vec<&str> = interval.split_whitespace().collect();
    let cron_ok = fields.len() == 5
        && fields
            .iter()
            .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)));
    if cron_ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "interval {interval:?} is neither a number of seconds nor a 5-field cron expression"
        )))
    }
}

fn check_time(what: &str, t: &Option<String>) -> Result<(), DecideError> {
    if let Some(t) = t {
        humantime::parse_rfc3339_weak(t)
            .map_err(|e| invalid(format!("{what} {t:?} is not an RFC 3339 time: {e}")))?;
    }
    Ok(())
}

/// Checks an audit request against the store, as Watcher's API does, and
/// returns the audit to create. Writes nothing.
pub fn prepare_audit(store: &Store, req: &AuditRequest) -> Result<NewAudit, DecideError> {
    let audit_type = if req.audit_type.is_empty() {
        "ONESHOT".to_string()
    } else {
        req.audit_type.to_uppercase()
    };
    if !crate::store::audits::AUDIT_TYPES.contains(&audit_type.as_str()) {
        return Err(invalid(format!(
            "audit type {} is not one of ONESHOT, CONTINUOUS, EVENT",
            req.audit_type
        )));
    }
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
        None => store.goal(req.goal.as_deref().unwrap_or_default())?,
    };
    let strategy = match (
        &req.strategy,
        template.as_ref().and_then(|t| t.strategy_uuid.clone()),
    ) {
        (Some(s), _) => Some(store.strategy(s)?),
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
    let parameters = match &strategy {
        Some(s) => validate_parameters(s, &params)?,
        None if has_params => {
            return Err(invalid(
                "Specify parameters but no predefined strategy for audit, or no parameter spec in predefined strategy",
            ));
        }
        None => json!({}),
    };
    match (audit_type.as_str(), &req.interval) {
        ("CONTINUOUS", None) => return Err(invalid("a CONTINUOUS audit needs an interval")),
        ("CONTINUOUS", Some(i)) => check_interval(i)?,
        (t, Some(_)) => {
            return Err(invalid(format!(
                "an interval is only for CONTINUOUS audits, not {t}"
            )));
        }
        _ => {}
    }
    if audit_type == "ONESHOT" && (req.start_time.is_some() || req.end_time.is_some()) {
        return Err(invalid("start and end times are not for ONESHOT audits"));
    }
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
        policy: req.policy.clone(),
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
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// The collector entry (`sim`).
    pub collector: String,
    /// Its configuration (for `sim`: `{"sim_db": …}`).
    pub config: Value,
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

fn collect_model(ctx: &AuditContext<'_>, audit: &AuditRow) -> Result<Value, String> {
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
    let scoped = scope::apply(&model, &audit.scope).map_err(|e| format!("audit scope: {e}"))?;
    serde_json::to_value(scoped).map_err(|e| e.to_string())
}

/// Runs one audit that is PENDING (or SUSPENDED): ONGOING, then SUCCEEDED
/// with its solution stored, FAILED with the reason, or CANCELLED when a plan
/// is ONGOING and the audit is not forced.
pub fn run_audit(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    uuid: &str,
) -> Result<AuditRow, DecideError> {
    let (plugins, types) = (ctx.plugins, ctx.types);
    let audit = store.audit(uuid)?;
    if !audit.force {
        let ongoing: Option<String> = store
            .conn()
            .query_row(
                "SELECT uuid FROM action_plans WHERE deleted = 0 AND state = 'ONGOING' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(plan) = ongoing {
            let msg = format!("action plan {plan} is ONGOING (use --force to audit anyway)");
            if audit.audit_type == "ONESHOT" {
                return Ok(store.transition_audit(uuid, "CANCELLED", Some(&msg), &[])?);
            }
            tracing::info!("audit {uuid} skipped this run: {msg}");
            return Ok(audit);
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    store.transition_audit(
        uuid,
        "ONGOING",
        None,
        &[("hostname", rusqlite::types::Value::Text(host))],
    )?;
    let fail = |store: &mut Store, msg: String| -> Result<AuditRow, DecideError> {
        tracing::warn!("audit {uuid} failed: {msg}");
        Ok(store.transition_audit(uuid, "FAILED", Some(&msg), &[])?)
    };
    let strategy = match select_strategy(store, &audit) {
        Ok(s) => s,
        Err(msg) => return fail(store, msg),
    };
    let model = match collect_model(ctx, &audit) {
        Ok(m) => m,
        Err(msg) => return fail(store, msg),
    };
    let solution = match plugins.run_strategy(&strategy.name, &model, &audit.parameters) {
        Ok(s) => s,
        Err(e) => return fail(store, format!("strategy {} failed: {e}", strategy.name)),
    };
    let factory = ActionFactory::new(types);
    let mut actions = Vec::new();
    for a in &solution.actions {
        let mut req = NewAction::new(a.action_type.clone(), a.input_parameters.clone());
        req.resource_id = a.resource_id.clone();
        match factory.instantiate(&req) {
            Ok(i) => actions.push(json!({
                "id": a.id,
                "action_type": i.action_type,
                "action_type_version": i.action_type_version,
                "resource_id": i.resource_id,
                "input_parameters": i.input_parameters,
            })),
            Err(e) => {
                return fail(
                    store,
                    format!(
                        "strategy {} proposed an invalid action {}: {e}",
                        strategy.name, a.id
                    ),
                );
            }
        }
    }
    let indicators = match &solution.efficacy_indicators {
        Value::Null => json!([]),
        v => v.clone(),
    };
    Ok(store.transition_audit(
        uuid,
        "SUCCEEDED",
        Some(&format!(
            "{} actions recommended by {}",
            actions.len(),
            strategy.name
        )),
        &[
            (
                "solution",
                rusqlite::types::Value::Text(json!(actions).to_string()),
            ),
            (
                "efficacy_indicators",
                rusqlite::types::Value::Text(indicators.to_string()),
            ),
            ("strategy_id", rusqlite::types::Value::Integer(strategy.id)),
        ],
    )?)
}
