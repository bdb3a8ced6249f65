//! `/v1/scoring_engines`: Sextant has no scoring engines (no plugin kind
//! provides them), so the list is empty and every show is 404.

use super::error::{ApiError, ApiResult};
use super::links::collection;
use super::pages::ListQuery;
use axum::Json;
use axum::extract::{Path, Query};
use serde_json::Value;
use std::collections::HashMap;

/// `GET /v1/scoring_engines` and `/detail`.
pub async fn list(Query(params): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    ListQuery { params }.check(&[])?;
    Ok(Json(collection("scoring_engines", Vec::new(), None)))
}

/// `GET /v1/scoring_engines/{name}`.
pub async fn show(Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Err(ApiError::not_found(format!(
        "ScoringEngine {id} could not be found"
    )))
}
