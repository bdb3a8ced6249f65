//! `GET /v1/plugins` (Sextant's, not Watcher's): what `serve` discovered,
//! loaded and rejected, with the reasons, as `sextant plugins list
//! --format json` prints it; `?kind=` keeps one kind of entry
//! (`ops::plugins`).

use super::error::{ApiError, ApiResult};
use super::links::Ctx;
use super::schemas;
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /v1/plugins`.
#[utoipa::path(
    operation_id = "plugins_list",
    get,
    path = "/v1/plugins",
    tag = "sextant",
    params(("kind" = Option<String>, Query, pattern = "^(action_handler|strategy|planner|action_mapper|collector)$", description = "action_handler, strategy, planner, action_mapper or collector")),
    responses((status = 200, description = "OK", body = schemas::Plugins), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if let Some(k) = params.keys().find(|k| *k != "kind") {
        return Err(ApiError::bad_request(format!("Unknown argument: \"{k}\"")));
    }
    let kind = params
        .get("kind")
        .map(|k| {
            k.parse::<sextant_plugin_api::Kind>()
                .map_err(|e| ApiError::bad_request(format!("Invalid kind: {e}")))
        })
        .transpose()?;
    Ok(Json(crate::ops::plugins::list(
        &st.ctx.plugins,
        kind,
        &ctx.lang,
    )))
}
