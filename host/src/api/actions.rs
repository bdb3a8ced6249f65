//! `/v1/actions`: list (`?action_plan_uuid=` or `?audit_uuid=`), detail,
//! show, and (from 1.5) PATCH of `/state` to SKIPPED with an optional
//! `/status_message` (the reason): only a PENDING action of a plan not yet
//! run, else 409 (`ops::plans::skip_action`, shared with `sextant action
//! skip`).

use super::action_json::{JsonBytes, Shape, collection_bytes};
use super::audit_templates::patch_text;
use super::error::{ApiError, ApiResult, missing};
use super::links::{Ctx, drop_field, time};
use super::page_cache::PageKey;
use super::pages::{ListQuery, limit_of, next_link, paginate, sort_dir_of};
use super::schemas;
use super::state::AppState;
use super::version::SKIPPED_ACTION;
use crate::ops::pages::SortDir;
use crate::states::ActionState;
use crate::store::plans::ActionRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "state",
    "action_plan_uuid",
    "action_type",
    "created_at",
    "updated_at",
];
const FILTERS: &[&str] = &["action_plan_uuid", "audit_uuid"];

pub(super) fn to_json(a: &ActionRow, description: Option<String>, ctx: &Ctx) -> Value {
    let mut v = json!({
        "uuid": a.uuid,
        "state": a.state,
        "action_plan_uuid": a.action_plan_uuid,
        "action_type": a.action_type,
        "parents": a.parents,
        "description": description.unwrap_or_default(),
        "input_parameters": a.input_parameters,
        "status_message": a.status_message,
        "created_at": time(Some(&a.created_at)),
        "updated_at": time(a.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("actions", &a.uuid),
    });
    if !ctx.at_least(SKIPPED_ACTION) {
        drop_field(&mut v, "status_message");
    }
    if ctx.extras
        && let Value::Object(m) = &mut v
    {
        m.insert("action_type_version".into(), json!(a.action_type_version));
        m.insert("outputs".into(), a.outputs.clone().unwrap_or(Value::Null));
    }
    v
}

/// The JSON bytes of a list of `rows`, with their types' descriptions
/// for `/detail`.
fn body_of(
    s: &crate::store::Store,
    rows: &[ActionRow],
    shape: Shape,
    base: &str,
    next: Option<&str>,
) -> ApiResult<Bytes> {
    let mut descriptions: HashMap<String, Option<String>> = HashMap::new();
    if shape.detail {
        for a in rows {
            if !descriptions.contains_key(&a.action_type) {
                descriptions.insert(a.action_type.clone(), s.action_description(&a.action_type)?);
            }
        }
    }
    collection_bytes(rows, &descriptions, shape, base, next).map_err(ApiError::internal)
}

async fn list_of(st: Arc<AppState>, ctx: Ctx, q: ListQuery, detail: bool) -> ApiResult<JsonBytes> {
    q.check(FILTERS)?;
    let (plan, audit) = (
        q.filter("action_plan_uuid").map(str::to_string),
        q.filter("audit_uuid").map(str::to_string),
    );
    if plan.is_some() && audit.is_some() {
        return Err(ApiError::bad_request(
            "Filtering actions on both audit and action-plan is prohibited",
        ));
    }
    let c = ctx.clone();
    let max_limit = st.cfg.max_limit;
    let res = if detail { "actions/detail" } else { "actions" };
    let shape = Shape::of(&ctx, detail);
    let by_id = q.filter("sort_key").is_none_or(|k| k == "id");
    // The plain list of one plan in creation order may be an answer kept
    // (`page_cache.rs`): its plan's mark, read before anything else.
    let key = plan.clone().filter(|_| by_id && !detail).map(|plan| {
        let mut query: Vec<(String, String)> = q
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        PageKey {
            plan,
            query,
            base: ctx.base.clone(),
            shape,
        }
    });
    let flight = key.clone();
    let build = move |s: &mut crate::store::Store, app: &AppState| -> ApiResult<JsonBytes> {
        let kept = match key {
            Some(key) => {
                let mark = app.plan_mark(&key.plan)?;
                if let Some(body) = app.pages.get(&key, mark) {
                    return Ok(JsonBytes(body));
                }
                Some((key, mark))
            }
            None => None,
        };
        let plans: Vec<String> = match (&plan, &audit) {
            (Some(p), _) => vec![
                s.plan(p)
                    .map_err(|_| ApiError::not_found(format!("ActionPlan {p} could not be found")))?
                    .uuid,
            ],
            (None, Some(a)) => {
                let a = s
                    .audit(a)
                    .map_err(|_| ApiError::not_found(format!("Audit {a} could not be found")))?;
                s.plans(Some(&a.uuid))?
                    .into_iter()
                    .map(|p| p.uuid)
                    .collect()
            }
            (None, None) => s.plans(None)?.into_iter().map(|p| p.uuid).collect(),
        };
        // In creation order (the default), the page is read in SQL.
        if audit.is_none() && by_id {
            let limit = limit_of(&q, max_limit)?;
            let desc = sort_dir_of(&q)? == SortDir::Desc;
            let marker = q.filter("marker");
            let rows = s
                .actions_page(
                    plan.as_ref().and(plans.first()).map(String::as_str),
                    marker,
                    limit as usize,
                    desc,
                )?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "marker {}: no item of this list has that uuid",
                        marker.unwrap_or_default()
                    ))
                })?;
            let next = (rows.len() as i64 == limit)
                .then(|| {
                    rows.last()
                        .map(|r| next_link(&q, &c, res, FILTERS, limit, &r.uuid))
                })
                .flatten();
            let body = body_of(s, &rows, shape, &c.base, next.as_deref())?;
            // Kept only when the filter is the plan's own uuid, and the
            // plan has events for its mark to move with.
            if let Some((key, mark)) = kept
                && plans.first() == Some(&key.plan)
                && mark.last > 0
            {
                app.pages.put(key, mark, body.clone());
            }
            return Ok(JsonBytes(body));
        }
        let mut rows = Vec::new();
        for p in plans {
            rows.extend(s.actions(&p)?);
        }
        let (rows, next) = paginate(rows, SORT_KEYS, &q, max_limit, &c, res, FILTERS)?;
        Ok(JsonBytes(body_of(
            s,
            &rows,
            shape,
            &c.base,
            next.as_deref(),
        )?))
    };
    // Concurrent requests for the same kept page share one mark check
    // (and build): `single_flight.rs`.
    match flight {
        Some(flight) => {
            let on = Arc::clone(&st);
            let body = st
                .flights
                .run(
                    &flight,
                    || async move { on.store(build).await.map(|j| j.0) },
                )
                .await?;
            Ok(JsonBytes(body))
        }
        None => st.store(build).await,
    }
}

/// `GET /v1/actions`.
#[utoipa::path(
    operation_id = "actions_list",
    get,
    path = "/v1/actions",
    tag = "watcher",
    params(schemas::Paging, ("action_plan_uuid" = Option<String>, Query, description = "Only the actions of this plan"), ("audit_uuid" = Option<String>, Query, description = "Only the actions of this audit's plans"), ("Sextant-Extras" = Option<String>, Header, pattern = "^(true|false)$", description = "`true` adds Sextant's extra fields (action_type_version, outputs)")),
    responses((status = 200, description = "OK", body = schemas::Actions), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<JsonBytes> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/actions/detail`.
#[utoipa::path(
    operation_id = "actions_detail",
    get,
    path = "/v1/actions/detail",
    tag = "watcher",
    params(schemas::Paging, ("action_plan_uuid" = Option<String>, Query, description = "Only the actions of this plan"), ("audit_uuid" = Option<String>, Query, description = "Only the actions of this audit's plans"), ("Sextant-Extras" = Option<String>, Header, pattern = "^(true|false)$", description = "`true` adds Sextant's extra fields (action_type_version, outputs)")),
    responses((status = 200, description = "OK", body = schemas::Actions), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<JsonBytes> {
    list_of(st, ctx, ListQuery { params }, true).await
}

fn find(s: &crate::store::Store, id: &str, ctx: &Ctx) -> ApiResult<(ActionRow, Value)> {
    let a = s
        .resolve_action(id, None)
        .and_then(|u| s.action(&u))
        .map_err(|e| missing(e, || format!("Action {id} could not be found")))?;
    let d = s.action_description(&a.action_type)?;
    let v = to_json(&a, d, ctx);
    Ok((a, v))
}

/// `GET /v1/actions/{uuid}`.
#[utoipa::path(
    operation_id = "actions_show",
    get,
    path = "/v1/actions/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An action uuid"), ("Sextant-Extras" = Option<String>, Header, pattern = "^(true|false)$", description = "`true` adds Sextant's extra fields (action_type_version, outputs)")),
    responses((status = 200, description = "OK", body = schemas::Action), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| Ok(Json(find(s, &id, &c)?.1))).await
}

/// `PATCH /v1/actions/{uuid}` (1.5): `/state` SKIPPED, `/status_message`.
#[utoipa::path(
    operation_id = "actions_update",
    patch,
    path = "/v1/actions/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An action uuid"), ("Sextant-Extras" = Option<String>, Header, pattern = "^(true|false)$", description = "`true` adds Sextant's extra fields (action_type_version, outputs)")),
    request_body = Vec<schemas::PatchOp>,
    responses((status = 200, description = "OK", body = schemas::Action), super::openapi::Refusals)
)]
pub async fn update(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if !ctx.at_least(SKIPPED_ACTION) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Skipping an action needs microversion {SKIPPED_ACTION} or later; {} was requested",
                ctx.version
            ),
        ));
    }
    let c = ctx.clone();
    st.store(move |s, _| {
        let (a, doc) = find(s, &id, &c)?;
        let (patched, changed) = super::patch::apply(&doc, &body, &[])?;
        if let Some(other) = changed
            .iter()
            .find(|f| *f != "state" && *f != "status_message")
        {
            return Err(ApiError::bad_request(format!(
                "/{other} of an action cannot be changed: only /state (to SKIPPED) and /status_message can"
            )));
        }
        if !changed.iter().any(|f| f == "state") {
            return Err(ApiError::bad_request(
                "An action's /status_message changes only with /state SKIPPED",
            ));
        }
        let to = patch_text(&patched, "state")?;
        // An unknown state is refused as any other but SKIPPED: Watcher's 400.
        if to.parse::<ActionState>() != Ok(ActionState::Skipped) {
            return Err(ApiError::bad_request(format!(
                "State transition not allowed: ({} -> {to}); an action is only skipped",
                a.state
            )));
        }
        let reason = changed
            .iter()
            .any(|f| f == "status_message")
            .then(|| patch_text(&patched, "status_message"))
            .transpose()?;
        crate::ops::plans::skip_action(s, &a.uuid, None, reason.as_deref().filter(|r| !r.is_empty()))?;
        Ok(Json(find(s, &a.uuid, &c)?.1))
    })
    .await
}
