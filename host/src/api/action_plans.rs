//! `/v1/action_plans`: list (`?audit_uuid=&strategy=`), detail, show,
//! `POST /{uuid}/start`, PATCH of `/state` (RECOMMENDED → PENDING starts
//! it, RECOMMENDED or PENDING → CANCELLED, ONGOING → CANCELLING), delete.
//! Starting queues the plan (PENDING) for `serve`'s applier, as Watcher
//! casts `launch_action_plan`. The rules are `ops::plans`, shared with
//! `sextant action-plan`.

use super::audit_templates::patch_text;
use super::error::{ApiError, ApiResult, missing};
use super::links::{Ctx, drop_field, time};
use super::pages::{ListQuery, Listing, uuid_or_name};
use super::schemas;
use super::state::AppState;
use super::version::SKIPPED_ACTION;
use crate::ops::OpError;
use crate::ops::plan_graph::{GraphFormat, PlanGraph};
use crate::states::PlanState;
use crate::store::plans::PlanRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const LIST_FIELDS: &[&str] = &[
    "uuid",
    "state",
    "efficacy_indicators",
    "global_efficacy",
    "updated_at",
    "audit_uuid",
    "strategy_uuid",
    "strategy_name",
];
const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "state",
    "audit_uuid",
    "strategy_uuid",
    "strategy_name",
    "created_at",
    "updated_at",
];
const FILTERS: &[&str] = &["audit_uuid", "strategy"];

fn to_json(p: &PlanRow, ctx: &Ctx) -> Value {
    let global = match &p.global_efficacy {
        Value::Array(_) => p.global_efficacy.clone(),
        Value::Null => json!([]),
        other => json!([other]),
    };
    let mut v = json!({
        "uuid": p.uuid,
        "state": p.state,
        "efficacy_indicators": p.efficacy_indicators,
        "global_efficacy": global,
        "audit_uuid": p.audit_uuid,
        "strategy_uuid": p.strategy_uuid,
        "strategy_name": p.strategy_name,
        "hostname": null,
        "status_message": p.status_message,
        "created_at": time(Some(&p.created_at)),
        "updated_at": time(p.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("action_plans", &p.uuid),
    });
    if !ctx.at_least(SKIPPED_ACTION) {
        drop_field(&mut v, "status_message");
    }
    v
}

async fn list_of(
    st: Arc<AppState>,
    ctx: Ctx,
    q: ListQuery,
    detail: bool,
) -> ApiResult<Json<Value>> {
    q.check(FILTERS)?;
    let c = ctx.clone();
    let (audit, strategy) = (
        q.filter("audit_uuid").map(str::to_string),
        q.filter("strategy").map(str::to_string),
    );
    let items = st
        .store(move |s, _| {
            let plans = match &audit {
                Some(a) => {
                    let a = s
                        .audit(a)
                        .map_err(|e| missing(e, || format!("Audit {a} could not be found")))?;
                    s.plans(Some(&a.uuid))?
                }
                None => s.plans(None)?,
            };
            Ok(plans
                .iter()
                .filter(|p| {
                    uuid_or_name(
                        strategy.as_deref(),
                        p.strategy_uuid.as_deref(),
                        p.strategy_name.as_deref(),
                    )
                })
                .map(|p| to_json(p, &c))
                .collect::<Vec<_>>())
        })
        .await?;
    Listing {
        name: "action_plans",
        sort_keys: SORT_KEYS,
        filters: FILTERS,
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/action_plans`.
#[utoipa::path(
    operation_id = "action_plans_list",
    get,
    path = "/v1/action_plans",
    tag = "watcher",
    params(schemas::Paging, ("audit_uuid" = Option<String>, Query, description = "Only the plans of this audit"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::ActionPlans), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/action_plans/detail`.
#[utoipa::path(
    operation_id = "action_plans_detail",
    get,
    path = "/v1/action_plans/detail",
    tag = "watcher",
    params(schemas::Paging, ("audit_uuid" = Option<String>, Query, description = "Only the plans of this audit"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::ActionPlans), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

fn find(s: &crate::store::Store, id: &str) -> ApiResult<PlanRow> {
    s.plan(id)
        .map_err(|e| missing(e, || format!("ActionPlan {id} could not be found")))
}

/// `GET /v1/action_plans/{uuid}`.
#[utoipa::path(
    operation_id = "action_plans_show",
    get,
    path = "/v1/action_plans/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An action plan uuid")),
    responses((status = 200, description = "OK", body = schemas::ActionPlan), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| Ok(Json(to_json(&find(s, &id)?, &c))))
        .await
}

/// A refusal Watcher answers 400 (StartError, PatchError, DeleteError).
fn as_400(e: OpError) -> ApiError {
    match e {
        OpError::Conflict(m) => ApiError::bad_request(m),
        e => e.into(),
    }
}

/// `POST /v1/action_plans/{uuid}/start`: RECOMMENDED only.
#[utoipa::path(
    operation_id = "action_plans_start",
    post,
    path = "/v1/action_plans/{id}/start",
    tag = "watcher",
    params(("id" = String, Path, description = "An action plan uuid")),
    responses((status = 200, description = "Queued for the applier (PENDING)", body = schemas::ActionPlan), super::openapi::Refusals)
)]
pub async fn start(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| {
        let p = find(s, &id)?;
        let p = crate::ops::plans::queue(s, &p.uuid).map_err(as_400)?;
        tracing::info!("api: action plan {} queued (PENDING)", p.uuid);
        Ok(Json(to_json(&p, &c)))
    })
    .await
}

/// The transitions Watcher's action-plan PATCH allows.
const TRANSITIONS: &[(PlanState, PlanState)] = &[
    (PlanState::Recommended, PlanState::Pending),
    (PlanState::Recommended, PlanState::Cancelled),
    (PlanState::Ongoing, PlanState::Cancelling),
    (PlanState::Pending, PlanState::Cancelled),
];

/// `PATCH /v1/action_plans/{uuid}`: `/state` only.
#[utoipa::path(
    operation_id = "action_plans_update",
    patch,
    path = "/v1/action_plans/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An action plan uuid")),
    request_body = Vec<schemas::PatchOp>,
    responses((status = 200, description = "OK", body = schemas::ActionPlan), super::openapi::Refusals)
)]
pub async fn update(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| {
        let p = find(s, &id)?;
        let doc = to_json(&p, &c);
        let (patched, changed) = super::patch::apply(&doc, &body, &["status_message"])?;
        if let Some(other) = changed.iter().find(|f| *f != "state") {
            return Err(ApiError::bad_request(format!(
                "/{other} of an action plan cannot be changed: only /state can"
            )));
        }
        if changed.is_empty() {
            return Ok(Json(doc));
        }
        let text = patch_text(&patched, "state")?;
        // A state no plan has is refused as a transition, Watcher's 400.
        let to = match text.parse::<PlanState>() {
            Ok(to) if TRANSITIONS.contains(&(p.state, to)) => to,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "State transition not allowed: ({} -> {text})",
                    p.state
                )));
            }
        };
        let p = if to == PlanState::Pending {
            crate::ops::plans::queue(s, &p.uuid).map_err(as_400)?
        } else {
            crate::ops::plans::cancel(s, &p.uuid).map_err(as_400)?;
            find(s, &p.uuid)?
        };
        Ok(Json(to_json(&p, &c)))
    })
    .await
}

/// `DELETE /v1/action_plans/{uuid}`.
#[utoipa::path(
    operation_id = "action_plans_delete",
    delete,
    path = "/v1/action_plans/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An action plan uuid")),
    responses((status = 204, description = "Deleted"), super::openapi::Refusals)
)]
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.store(move |s, _| {
        find(s, &id)?;
        crate::ops::plans::delete(s, &[id]).map_err(as_400)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `GET /v1/action_plans/{uuid}/graph?format=dot|mermaid|json` (Sextant's):
/// the plan's DAG, as `sextant action-plan graph` draws it (dot, mermaid,
/// as text), or `{"nodes": [...], "edges": [[parent, child], ...]}`.
#[utoipa::path(
    operation_id = "action_plans_graph",
    get,
    path = "/v1/action_plans/{id}/graph",
    tag = "sextant",
    params(("id" = String, Path, description = "An action plan uuid"), ("format" = Option<String>, Query, pattern = "^(json|dot|mermaid)$", description = "json (default), dot or mermaid")),
    responses((status = 200, description = "The DAG: JSON, or dot or mermaid text", content((schemas::Graph = "application/json"), (String = "text/plain"))), super::openapi::Refusals)
)]
pub async fn graph(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let format = q.get("format").map_or("json", String::as_str).to_string();
    if !["dot", "mermaid", "json"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Invalid format {format}: dot, mermaid or json"
        )));
    }
    let graph = st
        .store(move |s, _| {
            let p = find(s, &id)?;
            Ok(PlanGraph::load(s, &p.uuid)?)
        })
        .await?;
    let text = |f| {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            graph.text(f),
        )
            .into_response()
    };
    Ok(match format.as_str() {
        "dot" => text(GraphFormat::Dot),
        "mermaid" => text(GraphFormat::Mermaid),
        _ => Json(graph.json()).into_response(),
    })
}
