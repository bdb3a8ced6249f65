//! `/v1/scoring_engines`: Sextant has no scoring engines (no plugin kind
//! provides them), so the list is empty and every show is 404.

use super::error::{ApiError, ApiResult};
use super::links::collection;
use super::pages::ListQuery;
use super::schemas;
use axum::Json;
use axum::extract::{Path, Query};
use serde_json::Value;
use std::collections::HashMap;

/// `GET /v1/scoring_engines`.
#[utoipa::path(
    operation_id = "scoring_engines_list",
    get,
    path = "/v1/scoring_engines",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::ScoringEngines), super::openapi::Refusals)
)]
pub async fn list(Query(params): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    ListQuery { params }.check(&[])?;
    Ok(Json(collection("scoring_engines", Vec::new(), None)))
}

/// `GET /v1/scoring_engines/detail`.
#[utoipa::path(
    operation_id = "scoring_engines_detail",
    get,
    path = "/v1/scoring_engines/detail",
    tag = "watcher",
    params(schemas::Paging),
    responses((status = 200, description = "OK", body = schemas::ScoringEngines), super::openapi::Refusals)
)]
pub async fn detail(q: Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    list(q).await
}

/// `GET /v1/scoring_engines/{name}`.
#[utoipa::path(
    operation_id = "scoring_engines_show",
    get,
    path = "/v1/scoring_engines/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "A scoring engine uuid or name")),
    responses((status = 200, description = "Never: Sextant has no scoring engines", body = Object), super::openapi::Refusals)
)]
pub async fn show(Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Err(ApiError::not_found(format!(
        "ScoringEngine {id} could not be found"
    )))
}
