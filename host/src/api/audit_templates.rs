//! `/v1/audit_templates`: list (`?goal=&strategy=`), detail, show, create
//! (201 with `Location`), PATCH (`/name`, `/description`), delete (204).
//! The rules are `ops::templates`, shared with `sextant audit-template`.

use super::error::{ApiError, ApiResult, missing};
use super::links::{Ctx, drop_field, json_object, known_fields, text_field, time};
use super::pages::{ListQuery, Listing, uuid_or_name};
use super::schemas;
use super::state::AppState;
use super::version::TEMPLATE_DEFAULT_PARAMS;
use crate::ops::templates::{TemplateRequest, TemplateUpdate};
use crate::store::audits::TemplateRow;
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
    "goal_uuid",
    "goal_name",
    "scope",
    "strategy_uuid",
    "strategy_name",
];
const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "goal_uuid",
    "goal_name",
    "strategy_uuid",
    "strategy_name",
    "created_at",
    "updated_at",
];
const FILTERS: &[&str] = &["goal", "strategy"];

fn to_json(t: &TemplateRow, ctx: &Ctx) -> Value {
    let mut v = json!({
        "uuid": t.uuid,
        "name": t.name,
        "description": t.description,
        "goal_uuid": t.goal_uuid,
        "goal_name": t.goal_name,
        "strategy_uuid": t.strategy_uuid,
        "strategy_name": t.strategy_name,
        "scope": t.scope,
        "default_parameters": t.default_parameters,
        "created_at": time(Some(&t.created_at)),
        "updated_at": time(t.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("audit_templates", &t.uuid),
    });
    if !ctx.at_least(TEMPLATE_DEFAULT_PARAMS) {
        drop_field(&mut v, "default_parameters");
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
            Ok(s.templates()?
                .iter()
                .filter(|t| uuid_or_name(goal.as_deref(), Some(&t.goal_uuid), Some(&t.goal_name)))
                .filter(|t| {
                    uuid_or_name(
                        strategy.as_deref(),
                        t.strategy_uuid.as_deref(),
                        t.strategy_name.as_deref(),
                    )
                })
                .map(|t| to_json(t, &c))
                .collect::<Vec<_>>())
        })
        .await?;
    Listing {
        name: "audit_templates",
        sort_keys: SORT_KEYS,
        filters: FILTERS,
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/audit_templates`.
#[utoipa::path(
    operation_id = "audit_templates_list",
    get,
    path = "/v1/audit_templates",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "A goal uuid or name"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::AuditTemplates), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/audit_templates/detail`.
#[utoipa::path(
    operation_id = "audit_templates_detail",
    get,
    path = "/v1/audit_templates/detail",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "A goal uuid or name"), ("strategy" = Option<String>, Query, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::AuditTemplates), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

fn find(s: &crate::store::Store, id: &str) -> ApiResult<TemplateRow> {
    s.template(id)
        .map_err(|e| missing(e, || format!("AuditTemplate {id} could not be found")))
}

/// `GET /v1/audit_templates/{template}`.
#[utoipa::path(
    operation_id = "audit_templates_show",
    get,
    path = "/v1/audit_templates/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit template uuid or name")),
    responses((status = 200, description = "OK", body = schemas::AuditTemplate), super::openapi::Refusals)
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

/// `POST /v1/audit_templates`.
#[utoipa::path(
    operation_id = "audit_templates_create",
    post,
    path = "/v1/audit_templates",
    tag = "watcher",
    request_body = schemas::AuditTemplateCreate,
    responses((status = 201, description = "Created; Location names it", body = schemas::AuditTemplate), super::openapi::Refusals)
)]
pub async fn create(State(st): State<Arc<AppState>>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let m = json_object(&body)?;
    known_fields(
        &m,
        "audit_template",
        &[
            "name",
            "goal",
            "strategy",
            "description",
            "scope",
            "default_parameters",
        ],
    )?;
    if m.contains_key("default_parameters") && !ctx.at_least(TEMPLATE_DEFAULT_PARAMS) {
        return Err(ApiError::bad_request(
            "default_parameters needs microversion 1.7 or later",
        ));
    }
    let name = text_field(&m, "name")?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: name"))?;
    let goal = text_field(&m, "goal")?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: goal"))?;
    let strategy = text_field(&m, "strategy")?;
    let description = text_field(&m, "description")?.unwrap_or_default();
    if description.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "description is longer than 255 characters",
        ));
    }
    let scope = m.get("scope").cloned().unwrap_or(Value::Null);
    let default_parameters = m.get("default_parameters").cloned().unwrap_or(Value::Null);
    let c = ctx.clone();
    let t = st
        .store(move |s, app| {
            let vocab = || app.vocabulary();
            let t = crate::ops::templates::create(
                s,
                &TemplateRequest {
                    name: &name,
                    goal: &goal,
                    strategy: strategy.as_deref(),
                    description: &description,
                    scope,
                    default_parameters,
                    policy: None,
                },
                &vocab,
            )?;
            Ok(to_json(&t, &c))
        })
        .await?;
    let uuid = t["uuid"].as_str().unwrap_or_default().to_string();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, ctx.location("audit_templates", &uuid))],
        Json(t),
    )
        .into_response())
}

/// `PATCH /v1/audit_templates/{template}`: `/name` and `/description`.
#[utoipa::path(
    operation_id = "audit_templates_update",
    patch,
    path = "/v1/audit_templates/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit template uuid or name")),
    request_body = Vec<schemas::PatchOp>,
    responses((status = 200, description = "OK", body = schemas::AuditTemplate), super::openapi::Refusals)
)]
pub async fn update(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, app| {
        let t = find(s, &id)?;
        let doc = to_json(&t, &c);
        let (patched, changed) = super::patch::apply(&doc, &body, &[])?;
        let mut name = None;
        let mut description = None;
        for field in &changed {
            match field.as_str() {
                "name" => name = Some(patch_text(&patched, "name")?),
                "description" => description = Some(patch_text(&patched, "description")?),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "/{other} of an audit template is not changed through the API in Sextant: create another template"
                    )));
                }
            }
        }
        if changed.is_empty() {
            return Ok(Json(doc));
        }
        let vocab = || app.vocabulary();
        let t = crate::ops::templates::update(
            s,
            &t.uuid,
            &TemplateUpdate {
                name: name.as_deref(),
                description: description.as_deref(),
                policy: None,
            },
            &vocab,
        )?;
        Ok(Json(to_json(&t, &c)))
    })
    .await
}

/// A patched field that must be a string.
pub fn patch_text(patched: &Value, key: &str) -> ApiResult<String> {
    match &patched[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(ApiError::bad_request(format!(
            "Invalid value for /{key}: {other} (a string is expected)"
        ))),
    }
}

/// `DELETE /v1/audit_templates/{template}`.
#[utoipa::path(
    operation_id = "audit_templates_delete",
    delete,
    path = "/v1/audit_templates/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An audit template uuid or name")),
    responses((status = 204, description = "Deleted"), super::openapi::Refusals)
)]
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.store(move |s, _| {
        find(s, &id)?;
        crate::ops::templates::delete(s, &[id])?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
