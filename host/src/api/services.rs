//! `/v1/services`: the services of this `serve` process, as Watcher lists
//! its `watcher-decision-engine` and `watcher-applier`: integer ids, this
//! host, and a status worked out on each read from when `serve`'s loop
//! (which runs both) last went round, against Watcher's
//! `service_down_time` (90 s): ACTIVE, else FAILED.

use super::error::{ApiError, ApiResult};
use super::links::{Ctx, time};
use super::pages::{ListQuery, Listing};
use super::schemas;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const NAMES: [&str; 2] = ["watcher-decision-engine", "watcher-applier"];
const DOWN_AFTER_SECS: i64 = 90;
const LIST_FIELDS: &[&str] = &["id", "name", "host", "status"];
const SORT_KEYS: &[&str] = &["id", "name", "host", "status"];

fn all(st: &AppState, ctx: &Ctx) -> Vec<Value> {
    let last = st.ctx.clock.last();
    let up = last.is_some_and(|t| (chrono::Utc::now() - t).num_seconds() < DOWN_AFTER_SECS);
    let seen = last.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
    NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = i + 1;
            json!({
                "id": id,
                "name": name,
                "host": st.ctx.host,
                "status": if up { "ACTIVE" } else { "FAILED" },
                "last_seen_up": seen,
                "created_at": time(None),
                "updated_at": time(None),
                "deleted_at": null,
                "links": ctx.links("services", &id.to_string()),
            })
        })
        .collect()
}

async fn list_of(
    st: Arc<AppState>,
    ctx: Ctx,
    q: ListQuery,
    detail: bool,
) -> ApiResult<Json<Value>> {
    q.check(&[])?;
    // The marker of services is their integer id.
    let mut items = all(&st, &ctx);
    if let Some(m) = q.filter("marker") {
        let after: usize = m
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Invalid marker {m}: a service id")))?;
        items.retain(|v| v["id"].as_u64().is_some_and(|i| i as usize > after));
    }
    let mut q = q;
    q.params.remove("marker");
    Listing {
        name: "services",
        sort_keys: SORT_KEYS,
        filters: &[],
        list_fields: LIST_FIELDS,
    }
    .page(items, &q, st.cfg.max_limit, &ctx, detail)
}

/// `GET /v1/services`.
#[utoipa::path(
    operation_id = "services_list",
    get,
    path = "/v1/services",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::Services), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, false).await
}

/// `GET /v1/services/detail`.
#[utoipa::path(
    operation_id = "services_detail",
    get,
    path = "/v1/services/detail",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::Services), super::openapi::Refusals)
)]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_of(st, ctx, ListQuery { params }, true).await
}

/// `GET /v1/services/{id|name}`.
#[utoipa::path(
    operation_id = "services_show",
    get,
    path = "/v1/services/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "A service id or name")),
    responses((status = 200, description = "OK", body = schemas::Service), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    all(&st, &ctx)
        .into_iter()
        .find(|v| v["name"] == id.as_str() || v["id"].as_u64().is_some_and(|i| i.to_string() == id))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Service {id} could not be found")))
}
