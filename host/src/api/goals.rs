//! `/v1/goals`: list, detail, show (uuid or name).

use super::error::{ApiResult, missing};
use super::links::{Ctx, time};
use super::pages::{ListQuery, Listing};
use super::schemas;
use super::state::AppState;
use crate::store::GoalRow;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const LIST_FIELDS: &[&str] = &["uuid", "name", "display_name", "efficacy_specification"];
const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "display_name",
    "created_at",
    "updated_at",
];

fn to_json(g: &GoalRow, ctx: &Ctx) -> Value {
    json!({
        "uuid": g.uuid,
        "name": g.name,
        "display_name": crate::ops::display_name(&g.display_names, &g.display_name, &ctx.lang),
        "efficacy_specification": g.efficacy_specification,
        "created_at": time(Some(&g.created_at)),
        "updated_at": time(g.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("goals", &g.uuid),
    })
}

async fn list_of(
    st: Arc<AppState>,
    ctx: Ctx,
    q: ListQuery,
    detail: bool,
) -> ApiResult<Json<Value>> {
    q.check(&[])?;
    let c = ctx.clone();
    let items = st
        .store(move |s, _| {
            Ok(s.goals()?
                .iter()
                .map(|g| to_json(g, &c))
                .collect::<Vec<_>>())
        })
        .await?;
    Listing {
        name: "goals",
        sort_keys: SORT_KEYS,
        filters: &[],
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/goals`.
#[utoipa::path(
    operation_id = "goals_list",
    get,
    path = "/v1/goals",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::Goals), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/goals/detail`.
#[utoipa::path(
    operation_id = "goals_detail",
    get,
    path = "/v1/goals/detail",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::Goals), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

/// `GET /v1/goals/{goal}`.
#[utoipa::path(
    operation_id = "goals_show",
    get,
    path = "/v1/goals/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "A goal uuid or name")),
    responses((status = 200, description = "OK", body = schemas::Goal), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = ctx.clone();
    st.store(move |s, _| {
        let g = s
            .goal(&id)
            .map_err(|e| missing(e, || format!("Goal {id} could not be found")))?;
        Ok(Json(to_json(&g, &c)))
    })
    .await
}
