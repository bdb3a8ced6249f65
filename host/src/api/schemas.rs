//! The shapes of the API's bodies, for the OpenAPI document only
//! (`openapi.rs`): the handlers build their JSON as Watcher's field order
//! and microversion rules want it, and these types describe it. A field
//! that a list's short form or an older microversion leaves out is not
//! `required`; a field that may be null is an `Option`. Values whose shape
//! is the plugins' or the operator's (parameters, specs, indicators) are
//! any JSON.
#![allow(dead_code)]

use crate::states::{EventType, ObjectState, ObjectType};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

/// A link (`self`, `bookmark`, `describedby`).
#[derive(ToSchema)]
pub struct Link {
    href: String,
    rel: String,
    #[schema(nullable = false)]
    r#type: Option<String>,
}

/// Watcher's error body: `error_message` is itself JSON text holding
/// `faultcode`, `faultstring` (the message) and `debuginfo`.
#[derive(ToSchema)]
pub struct ErrorBody {
    error_message: String,
}

/// A goal.
#[derive(ToSchema)]
pub struct Goal {
    uuid: String,
    name: Option<String>,
    display_name: Option<String>,
    efficacy_specification: Option<Value>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of goals.
#[derive(ToSchema)]
pub struct Goals {
    goals: Vec<Goal>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// A strategy.
#[derive(ToSchema)]
pub struct Strategy {
    uuid: String,
    name: Option<String>,
    display_name: Option<String>,
    goal_uuid: Option<String>,
    goal_name: Option<String>,
    parameters_spec: Option<Value>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of strategies.
#[derive(ToSchema)]
pub struct Strategies {
    strategies: Vec<Strategy>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// One row of a strategy's state (`/state`).
#[derive(ToSchema)]
pub struct StrategyStateRow {
    r#type: String,
    state: Value,
    mandatory: Value,
    comment: String,
}

/// An audit template.
#[derive(ToSchema)]
pub struct AuditTemplate {
    uuid: String,
    name: Option<String>,
    description: Option<String>,
    goal_uuid: Option<String>,
    goal_name: Option<String>,
    strategy_uuid: Option<String>,
    strategy_name: Option<String>,
    scope: Option<Value>,
    default_parameters: Option<Value>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of audit templates.
#[derive(ToSchema)]
pub struct AuditTemplates {
    audit_templates: Vec<AuditTemplate>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// What `POST /v1/audit_templates` takes.
#[derive(ToSchema)]
pub struct AuditTemplateCreate {
    name: String,
    goal: String,
    strategy: Option<String>,
    description: Option<String>,
    scope: Option<Value>,
    audit_type: Option<String>,
    default_parameters: Option<Value>,
}

/// An audit.
#[derive(ToSchema)]
pub struct Audit {
    uuid: String,
    name: Option<String>,
    audit_type: Option<String>,
    state: Option<String>,
    goal_uuid: Option<String>,
    goal_name: Option<String>,
    strategy_uuid: Option<String>,
    strategy_name: Option<String>,
    interval: Option<Value>,
    scope: Option<Value>,
    auto_trigger: Option<bool>,
    next_run_time: Option<String>,
    parameters: Option<Value>,
    hostname: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    force: Option<bool>,
    status_message: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of audits.
#[derive(ToSchema)]
pub struct Audits {
    audits: Vec<Audit>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// What `POST /v1/audits` takes.
#[derive(ToSchema)]
pub struct AuditCreate {
    audit_type: String,
    goal: Option<String>,
    strategy: Option<String>,
    audit_template_uuid: Option<String>,
    name: Option<String>,
    parameters: Option<Value>,
    interval: Option<Value>,
    scope: Option<Value>,
    auto_trigger: Option<bool>,
    force: Option<bool>,
    start_time: Option<String>,
    end_time: Option<String>,
    hostname: Option<String>,
}

/// An RFC 6902 operation (Watcher's subset: add, replace, remove).
#[derive(ToSchema)]
pub struct PatchOp {
    #[schema(pattern = "^(add|replace|remove)$")]
    op: String,
    #[schema(pattern = "^/")]
    path: String,
    #[schema(nullable = false)]
    value: Option<Value>,
}

/// An action plan.
#[derive(ToSchema)]
pub struct ActionPlan {
    uuid: String,
    state: Option<String>,
    efficacy_indicators: Option<Value>,
    global_efficacy: Option<Value>,
    audit_uuid: Option<String>,
    strategy_uuid: Option<String>,
    strategy_name: Option<String>,
    hostname: Option<String>,
    status_message: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of action plans.
#[derive(ToSchema)]
pub struct ActionPlans {
    action_plans: Vec<ActionPlan>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// A plan's DAG (`format=json`; `dot` and `mermaid` are text).
#[derive(ToSchema)]
pub struct Graph {
    nodes: Vec<Value>,
    edges: Vec<Vec<String>>,
}

/// An action. `action_type_version` and `outputs` are Sextant's, given
/// only with `Sextant-Extras: true`.
#[derive(ToSchema)]
pub struct Action {
    uuid: String,
    state: Option<String>,
    action_plan_uuid: Option<String>,
    action_type: Option<String>,
    parents: Option<Vec<String>>,
    description: Option<String>,
    input_parameters: Option<Value>,
    status_message: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
    #[schema(nullable = false)]
    action_type_version: Option<String>,
    outputs: Option<Value>,
}

/// A page of actions.
#[derive(ToSchema)]
pub struct Actions {
    actions: Vec<Action>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// A page of scoring engines (always empty).
#[derive(ToSchema)]
pub struct ScoringEngines {
    scoring_engines: Vec<Value>,
}

/// A service.
#[derive(ToSchema)]
pub struct Service {
    id: i64,
    name: Option<String>,
    host: Option<String>,
    status: Option<String>,
    last_seen_up: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    deleted_at: Option<String>,
    links: Vec<Link>,
}

/// A page of services.
#[derive(ToSchema)]
pub struct Services {
    services: Vec<Service>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// The collector's model as Watcher's flat rows.
#[derive(ToSchema)]
pub struct DataModel {
    context: Vec<Value>,
}

/// An action type as `sextant action-type show --format json` prints it.
#[derive(ToSchema)]
#[schema(as = ActionType)]
pub struct ActionTypeDoc {
    name: String,
    version: String,
}

/// The action types.
#[derive(ToSchema)]
pub struct ActionTypes {
    action_types: Vec<ActionTypeDoc>,
}

/// One event of the log. Its type, its object's kind and the states are
/// the closed sets of `states.rs`, listed from their enums.
#[derive(ToSchema)]
pub struct Event {
    id: i64,
    at: String,
    #[schema(schema_with = event_types)]
    event_type: String,
    #[schema(schema_with = object_types)]
    object_type: String,
    object_uuid: String,
    action_plan_uuid: Option<String>,
    #[schema(schema_with = object_states)]
    old_state: Option<String>,
    #[schema(schema_with = object_states)]
    new_state: Option<String>,
    payload: Value,
}

/// A string that is one of `names` (each once, in their first order), or
/// null too if `nullable`.
fn one_of(names: impl IntoIterator<Item = &'static str>, nullable: bool) -> Object {
    let mut values: Vec<Value> = Vec::new();
    for n in names {
        if !values.iter().any(|v| v == n) {
            values.push(Value::from(n));
        }
    }
    let ty = if nullable {
        values.push(Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .enum_values(Some(values))
        .build()
}

/// `event_type`: an [`EventType`].
fn event_types() -> Object {
    one_of(EventType::ALL.iter().map(|t| t.as_str()), false)
}

/// `object_type`: an [`ObjectType`].
fn object_types() -> Object {
    one_of(ObjectType::ALL.iter().map(|t| t.as_str()), false)
}

/// `old_state`, `new_state`: an [`ObjectState`] of any kind, or null.
fn object_states() -> Object {
    let all = ObjectType::ALL.iter().flat_map(|t| ObjectState::all_of(*t));
    one_of(all.map(ObjectState::as_str), true)
}

/// A page of events.
#[derive(ToSchema)]
pub struct Events {
    events: Vec<Event>,
    #[schema(nullable = false)]
    next: Option<String>,
}

/// A named policy, checked.
#[derive(ToSchema)]
pub struct PolicySummary {
    name: String,
    planner: Option<String>,
    description: Option<String>,
    valid: bool,
    error: Option<String>,
}

/// The named policies.
#[derive(ToSchema)]
pub struct Policies {
    policies: Vec<PolicySummary>,
}

/// A policy with every default filled in (docs/policies.md).
#[derive(ToSchema)]
pub struct Policy {
    name: String,
    planner: String,
}

/// A policy that passed validation.
#[derive(ToSchema)]
pub struct PolicyValid {
    valid: bool,
    policy: String,
    planner: String,
}

/// What `serve` discovered, loaded and rejected.
#[derive(ToSchema)]
pub struct Plugins {
    search_path: Vec<Value>,
    plugins: Vec<Value>,
    rejected: Vec<Value>,
    duplicates: Vec<Value>,
}

/// `GET /`: the versions.
#[derive(ToSchema)]
pub struct Versions {
    name: String,
    description: String,
    versions: Vec<Value>,
    default_version: Value,
}

/// `GET /v1`: the resources of v1.
#[derive(ToSchema)]
pub struct V1 {
    id: String,
    links: Vec<Link>,
    media_types: Vec<Value>,
}

/// Paging: `limit` (at most `max_limit`), `marker` (the uuid the page
/// starts after), `sort_key`, `sort_dir`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// The most items returned (at most the server's `max_limit`).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The uuid of the item the page starts after.
    marker: Option<String>,
    /// The field to sort on.
    sort_key: Option<String>,
    /// `asc` or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    sort_dir: Option<String>,
}
