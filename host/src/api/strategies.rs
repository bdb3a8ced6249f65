//! `/v1/strategies`: list (`?goal=`), detail, show (uuid or name), and
//! `/state`: what the strategy needs and whether it is there (Watcher's
//! `get_strategy_info`: Datasource, Metrics, CDM, Name), worked out by
//! asking the configured collector for the cluster model.

use super::error::{ApiError, ApiResult, missing};
use super::links::{Ctx, time};
use super::pages::{ListQuery, Listing};
use super::schemas;
use super::state::AppState;
use crate::store::StrategyRow;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const LIST_FIELDS: &[&str] = &["uuid", "name", "display_name", "goal_uuid", "goal_name"];
const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "display_name",
    "goal_uuid",
    "goal_name",
    "created_at",
    "updated_at",
];

fn to_json(s: &StrategyRow, ctx: &Ctx) -> Value {
    json!({
        "uuid": s.uuid,
        "name": s.name,
        "display_name": crate::ops::display_name(&s.display_names, &s.display_name, &ctx.lang),
        "goal_uuid": s.goal_uuid,
        "goal_name": s.goal_name,
        "parameters_spec": s.parameters_spec,
        "created_at": time(Some(&s.created_at)),
        "updated_at": time(s.updated_at.as_deref()),
        "deleted_at": null,
        "links": ctx.links("strategies", &s.uuid),
    })
}

async fn list_of(
    st: Arc<AppState>,
    ctx: Ctx,
    q: ListQuery,
    detail: bool,
) -> ApiResult<Json<Value>> {
    q.check(&["goal"])?;
    let c = ctx.clone();
    let goal = q.filter("goal").map(str::to_string);
    let items = st
        .store(move |s, _| {
            let list = s.strategies(goal.as_deref()).map_err(|_| {
                ApiError::not_found(format!(
                    "Goal {} could not be found",
                    goal.as_deref().unwrap_or("")
                ))
            })?;
            Ok(list.iter().map(|x| to_json(x, &c)).collect::<Vec<_>>())
        })
        .await?;
    Listing {
        name: "strategies",
        sort_keys: SORT_KEYS,
        filters: &["goal"],
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/strategies`.
#[utoipa::path(
    operation_id = "strategies_list",
    get,
    path = "/v1/strategies",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "Only the strategies of this goal (uuid or name)")),
    responses((status = 200, description = "OK", body = schemas::Strategies), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/strategies/detail`.
#[utoipa::path(
    operation_id = "strategies_detail",
    get,
    path = "/v1/strategies/detail",
    tag = "watcher",
    params(schemas::Paging, ("goal" = Option<String>, Query, description = "Only the strategies of this goal (uuid or name)")),
    responses((status = 200, description = "OK", body = schemas::Strategies), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

fn find(s: &crate::store::Store, id: &str) -> ApiResult<StrategyRow> {
    s.strategy(id)
        .map_err(|e| missing(e, || format!("Strategy {id} could not be found")))
}

/// `GET /v1/strategies/{strategy}`.
#[utoipa::path(
    operation_id = "strategies_show",
    get,
    path = "/v1/strategies/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = schemas::Strategy), super::openapi::Refusals)
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

/// `GET /v1/strategies/{strategy}/state`.
#[utoipa::path(
    operation_id = "strategies_state",
    get,
    path = "/v1/strategies/{id}/state",
    tag = "watcher",
    params(("id" = String, Path, description = "A strategy uuid or name")),
    responses((status = 200, description = "OK", body = Vec<schemas::StrategyStateRow>), super::openapi::Refusals)
)]
pub async fn state(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    st.store(move |s, app| {
        let strategy = find(s, &id)?;
        let collector = &app.ctx.model.collector;
        let (datasource, cdm) = match app.ctx.plugins.collect(collector, &app.ctx.model.config) {
            Ok(model) => {
                let has = |k: &str| model[k].as_array().is_some_and(|a| !a.is_empty());
                let state = |b: bool| if b { "available" } else { "not available" };
                (
                    format!("{collector}: available"),
                    json!([
                        {"compute_model": state(has("nodes"))},
                        {"storage_model": state(has("storage_pools"))},
                        {"baremetal_model": "not available"},
                    ]),
                )
            }
            Err(e) => (
                format!("{collector}: not available ({e})"),
                json!([
                    {"compute_model": "not available"},
                    {"storage_model": "not available"},
                    {"baremetal_model": "not available"},
                ]),
            ),
        };
        Ok(Json(json!([
            {"type": "Datasource", "state": datasource, "mandatory": true, "comment": ""},
            {"type": "Metrics", "state": [], "mandatory": false, "comment": ""},
            {"type": "CDM", "state": cdm, "mandatory": true, "comment": ""},
            {"type": "Name", "state": strategy.name, "mandatory": "", "comment": ""},
        ])))
    })
    .await
}
