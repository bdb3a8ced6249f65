//! `/v1/audits`: list (`?goal=&strategy=`), detail, show, create (201
//! with `Location`; a ONESHOT audit then runs in the background, as
//! Watcher casts `trigger_audit` to its decision engine), PATCH (`/state`,
//! `/interval`), delete (204). The rules are `ops::audits`, shared with
//! `sextant audit`.

use super::audit_templates::patch_text;
use super::error::{ApiError, ApiResult, missing};
use super::links::{Ctx, drop_field, json_object, known_fields, text_field, time};
use super::pages::{ListQuery, Listing, uuid_or_name};
use super::schemas;
use super::state::AppState;
use super::version::{FORCE, SKIPPED_ACTION, START_END_TIMING};
use crate::decide::AuditRequest;
use crate::ops::OpError;
use crate::states::AuditType;
use crate::store::audits::AuditRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const LIST_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "audit_type",
    "state",
    "goal_uuid",
    "goal_name",
    "strategy_uuid",
    "strategy_name",
    "interval",
    "scope",
    "auto_trigger",
    "next_run_time",
];
const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "audit_type",
    "state",
    "goal_uuid",
    "goal_name",
    "strategy_uuid",
    "strategy_name",
    "interval",
    "next_run_time",
    "created_at",
    "updated_at",
];
const FILTERS: &[&str] = &["goal", "strategy"];

fn to_json(a: &AuditRow, ctx: &Ctx) -> Value {
    let mut v = json!({
        "uuid": a.uuid,
        "name": a.name,
        "audit_type": a.audit_type,
        "state": a.state,
        "goal_uuid": a.goal_uuid,
        "goal_name": a.goal_name,
        "strategy_uuid": a.strategy_uuid,
        "strategy_name": a.strategy_name,
        "interval": a.interval,
        "scope": a.scope,
        "auto_trigger": a.auto_trigger,
        "next_run_time": time(a.next_run_time.as_deref()),
        "parameters": a.parameters,
        "hostname": a.hostname,
        "start_time": time(a.start_time.as_deref()),
        "end_time": time(a.end_time.as_deref()),
        "force": a.force,
        "status_message": a.status_message,
        "created_at": time(Some(&a.created_at)),
        "updated_at": time(a.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("audits", &a.uuid),
    });
    if !ctx.at_least(START_END_TIMING) {
        drop_field(&mut v, "start_time");
        drop_field(&mut v, "end_time");
    }
    if !ctx.at_least(FORCE) {
        drop_field(&mut v, "force");
    }
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
    let (goal, strategy) = (
        q.filter("goal").map(str::to_string),
        q.filter("strategy").map(str::to_string),
    );
    let items = st
        .store(move |s, _| {
            Ok(s.audits()?
                .iter()
                .filter(|a| uuid_or_name(goal.as_deref(), Some(&a.goal_uuid), Some(&a.goal_name)))
                .filter(|a| {
                    uuid_or_name(
                        strategy.as_deref(),
                        a.strategy_uuid.as_deref(),
                        a.strategy_name.as_deref(),
                    )
                })
                .map(|a| to_json(a, &c))
                .collect::<Vec<_>>())
        })
        .await?;
    Listing {
        name: "audits",
        sort_keys: SORT_KEYS,
        filters: FILTERS,
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/audits`.
#[utoipa::path(
    operation_id = "audits_list",
    get,
    path = "/v1/audits",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "A goal uuid or name"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::Audits), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/audits/detail`.
#[utoipa::path(
    operation_id = "audits_detail",
    get,
    path = "/v1/audits/detail",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "A goal uuid or name"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::Audits), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

fn find(s: &crate::store::Store, id: &str) -> ApiResult<AuditRow> {
    s.audit(id)
        .map_err(|e| missing(e, || format!("Audit {id} could not be found")))
}

/// `GET /v1/audits/{audit}`.
#[utoipa::path(
    operation_id = "audits_show",
    get,
    path = "/v1/audits/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit uuid or name")),
    responses((status = 200, description = "OK", body = schemas::Audit), super::openapi::Refusals)
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

/// An interval as Watcher takes it: seconds (a number) or a cron string.
fn interval(v: Option<&Value>) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid interval {other}: seconds or a cron expression"
        ))),
    }
}

/// `POST /v1/audits`.
#[utoipa::path(
    operation_id = "audits_create",
    post,
    path = "/v1/audits",
    tag = "watcher",
    request_body = schemas::AuditCreate,
    responses((status = 201, description = "Created (a ONESHOT audit then runs in the background); Location names it", body = schemas::Audit), super::openapi::Refusals)
)]
pub async fn create(State(st): State<Arc<AppState>>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let m = json_object(&body)?;
    known_fields(
        &m,
        "audit",
        &[
            "audit_type",
            "audit_template_uuid",
            "goal",
            "strategy",
            "parameters",
            "interval",
            "auto_trigger",
            "name",
            "start_time",
            "end_time",
            "force",
        ],
    )?;
    for (field, since) in [
        ("start_time", START_END_TIMING),
        ("end_time", START_END_TIMING),
        ("force", FORCE),
    ] {
        if m.contains_key(field) && !ctx.at_least(since) {
            return Err(ApiError::bad_request(format!(
                "{field} needs microversion {since} or later"
            )));
        }
    }
    let audit_type = text_field(&m, "audit_type")?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: audit_type"))?;
    let flag = |k: &str| match m.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {k}. Value: {other}. Wrong type: a boolean is expected"
        ))),
    };
    let parameters = match m.get("parameters") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid parameters {other}: an object is expected"
            )));
        }
    };
    let req = AuditRequest {
        audit_type,
        goal: text_field(&m, "goal")?,
        strategy: text_field(&m, "strategy")?,
        template: text_field(&m, "audit_template_uuid")?,
        parameters,
        interval: interval(m.get("interval"))?,
        name: text_field(&m, "name")?,
        start_time: text_field(&m, "start_time")?,
        end_time: text_field(&m, "end_time")?,
        force: flag("force")?,
        auto_trigger: flag("auto_trigger")?,
        policy: None,
    };
    let c = ctx.clone();
    let a = st
        .store(move |s, app| {
            let vocab = || app.vocabulary();
            Ok(crate::ops::audits::create(s, &req, &vocab)?)
        })
        .await?;
    if a.audit_type == AuditType::Oneshot {
        st.run_audit_later(a.uuid.clone(), false);
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, ctx.location("audits", &a.uuid))],
        Json(to_json(&a, &c)),
    )
        .into_response())
}

/// `PATCH /v1/audits/{audit}`: `/state` (SUSPENDED, ONGOING, CANCELLED)
/// and `/interval`.
#[utoipa::path(
    operation_id = "audits_update",
    patch,
    path = "/v1/audits/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit uuid or name")),
    request_body = Vec<schemas::PatchOp>,
    responses((status = 200, description = "OK", body = schemas::Audit), super::openapi::Refusals)
)]
pub async fn update(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| {
        let a = find(s, &id)?;
        let doc = to_json(&a, &c);
        let (patched, changed) = super::patch::apply(
            &doc,
            &body,
            &["status_message", "audit_template_uuid", "audit_type", "type"],
        )?;
        let mut state = None;
        let mut new_interval = None;
        for field in &changed {
            match field.as_str() {
                "state" => {
                    // Watcher's 400 on a state that is not one an audit is
                    // updated to.
                    let text = patch_text(&patched, "state")?;
                    state = Some(crate::ops::audits::update_state(&text)?);
                }
                "interval" => {
                    new_interval = interval(patched.get("interval"))?;
                    if new_interval.is_none() {
                        return Err(ApiError::bad_request(
                            "/interval of a CONTINUOUS audit cannot be removed",
                        ));
                    }
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "/{other} of an audit is not changed through the API in Sextant; /state and /interval are"
                    )));
                }
            }
        }
        if changed.is_empty() {
            return Ok(Json(doc));
        }
        let a = crate::ops::audits::update(s, &a.uuid, state, new_interval.as_deref())
            .map_err(|e| match e {
                // Watcher answers a forbidden transition 400.
                OpError::Conflict(m) => ApiError::bad_request(m),
                e => e.into(),
            })?;
        Ok(Json(to_json(&a, &c)))
    })
    .await
}

/// `DELETE /v1/audits/{audit}`: from FAILED, SUCCEEDED, CANCELLED or
/// SUSPENDED only (else 400, as Watcher's DeleteError).
#[utoipa::path(
    operation_id = "audits_delete",
    delete,
    path = "/v1/audits/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit uuid or name")),
    responses((status = 204, description = "Deleted"), super::openapi::Refusals)
)]
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.store(move |s, _| {
        find(s, &id)?;
        crate::ops::audits::delete(s, &[id]).map_err(|e| match e {
            OpError::Conflict(m) => ApiError::bad_request(m),
            e => e.into(),
        })?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
