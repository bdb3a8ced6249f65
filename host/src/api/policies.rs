//! `/v1/policies` (Sextant's, not Watcher's): the named policies, each
//! checked against the installed action types and planners (as `sextant
//! policy list`); one by name, every default filled in (`policy show`);
//! and `POST /v1/policies/validate`, a policy's YAML in the body checked
//! as `policy validate` checks a file: 200 with the policy's name and
//! planner, or 400 naming the line and column in "request body". The
//! server's file paths are never given out. Rules: `ops::policies`.

use super::error::{ApiError, ApiResult};
use super::schemas;
use super::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /v1/policies`.
#[utoipa::path(
    operation_id = "policies_list",
    get,
    path = "/v1/policies",
    tag = "sextant",
    responses((status = 200, description = "OK", body = schemas::Policies), super::openapi::Refusals)
)]
pub async fn list(State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    st.store(|_, app| {
        Ok(Json(json!({
            "policies": crate::ops::policies::list(&app.vocabulary(), false)
        })))
    })
    .await
}

/// `GET /v1/policies/{name}`.
#[utoipa::path(
    operation_id = "policies_show",
    get,
    path = "/v1/policies/{id}",
    tag = "sextant",
    params(("id" = String, Path, description = "A policy name")),
    responses((status = 200, description = "OK", body = schemas::Policy), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    st.store(move |_, app| {
        let p = crate::ops::policies::show(&name, &app.vocabulary())?;
        let mut v = serde_json::to_value(&p).map_err(ApiError::internal)?;
        if let Value::Object(m) = &mut v {
            m.remove("source");
        }
        Ok(Json(v))
    })
    .await
}

/// `POST /v1/policies/validate`: the policy (YAML or JSON) is the body.
#[utoipa::path(
    operation_id = "policies_validate",
    post,
    path = "/v1/policies/validate",
    tag = "sextant",
    request_body(content = String, content_type = "application/yaml", description = "The YAML or JSON text"),
    responses((status = 200, description = "OK", body = schemas::PolicyValid), super::openapi::Refusals)
)]
pub async fn validate(State(st): State<Arc<AppState>>, body: Bytes) -> ApiResult<Json<Value>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("The policy is not UTF-8 text"))?
        .to_string();
    st.store(move |_, app| {
        let p = crate::ops::policies::check_text(
            &text,
            std::path::Path::new("request body"),
            &app.vocabulary(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Json(
            json!({"valid": true, "policy": p.name, "planner": p.planner}),
        ))
    })
    .await
}
