//! `/v1/services`: Watcher's services table (docs/fleet.md): one row per
//! `serve` host and role (`watcher-decision-engine`, `watcher-applier`),
//! integer ids, and a status worked out on each read from the row's
//! heartbeat against `service_down_time` (90 s by default, as Watcher's) on
//! the database's clock: ACTIVE, else FAILED.

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

const LIST_FIELDS: &[&str] = &["id", "name", "host", "status"];
const SORT_KEYS: &[&str] = &["id", "name", "host", "status"];

/// `last_seen_up` as Watcher shows it: a naive datetime with microseconds.
fn naive(t: &str) -> Value {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => Value::String(
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
        ),
        Err(_) => Value::String(t.to_string()),
    }
}

async fn all(st: &Arc<AppState>, ctx: &Ctx) -> ApiResult<Vec<Value>> {
    let rows = st
        .store(|s, st| {
            s.services(st.ctx.down_time)
                .map_err(|e| ApiError::internal(format!("services: {e}")))
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "host": r.host,
                "status": r.status.as_str(),
                "last_seen_up": naive(&r.last_seen_up),
                "created_at": time(Some(&r.created_at)),
                "updated_at": time(r.updated_at.as_deref()),
                "deleted_at": null,
                "links": ctx.links("services", &r.id.to_string()),
            })
        })
        .collect())
}

async fn list_of(
    st: Arc<AppState>,
    ctx: Ctx,
    q: ListQuery,
    detail: bool,
) -> ApiResult<Json<Value>> {
    q.check(&[])?;
    // The marker of services is their integer id.
    let mut items = all(&st, &ctx).await?;
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
        .await?
        .into_iter()
        .find(|v| v["name"] == id.as_str() || v["id"].as_u64().is_some_and(|i| i.to_string() == id))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Service {id} could not be found")))
}
