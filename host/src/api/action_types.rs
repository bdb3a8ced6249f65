//! `/v1/action_types` (Sextant's, not Watcher's): the registered action
//! types with their versions, and one by `NAME[@VERSION]`, as `sextant
//! action-type list | show` print them (`ops::action_types`). Read-only
//! for now; no Watcher response changes (`GET /v1` does not list it).

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::action_types::HandlerMapper;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;

fn mapper(st: &AppState) -> HandlerMapper<'_> {
    HandlerMapper::new(&st.ctx.plugins, &st.ctx.mapper, &st.ctx.drivers)
}

/// `GET /v1/action_types`.
pub async fn list(State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let m = mapper(&st);
    let items: Vec<Value> = st
        .ctx
        .types
        .all()
        .map(|t| crate::ops::action_types::describe(t, "en", &m))
        .collect();
    Ok(Json(json!({"action_types": items})))
}

/// `GET /v1/action_types/{name[@version]}`.
pub async fn show(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = st
        .ctx
        .types
        .resolve(&reference)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(Json(crate::ops::action_types::describe(
        t,
        "en",
        &mapper(&st),
    )))
}
