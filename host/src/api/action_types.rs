//! `/v1/action_types` (Sextant's, not Watcher's): the action types with
//! their versions, one by `NAME[@VERSION]` (as `sextant action-type list |
//! show` print them), create from a YAML or JSON definition in the body
//! (checked as `action-type validate` checks a file; errors located by
//! line and column in "request body"), and delete `NAME@VERSION`
//! (unregister; refused while a plan that has not ended uses that
//! version). The rules are `ops::action_types`, shared with the CLI. No
//! Watcher response changes (`GET /v1` does not list it). A type created
//! here is used by the plans `serve` applies next, with no restart.

use super::error::{ApiError, ApiResult};
use super::links::Ctx;
use super::schemas;
use super::state::AppState;
use crate::action_types::HandlerMapper;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

fn mapper(st: &AppState) -> HandlerMapper<'_> {
    HandlerMapper::new(&st.ctx.plugins, &st.ctx.mapper, &st.ctx.drivers)
}

/// `GET /v1/action_types`.
#[utoipa::path(
    operation_id = "action_types_list",
    get,
    path = "/v1/action_types",
    tag = "sextant",
    responses((status = 200, description = "OK", body = schemas::ActionTypes), super::openapi::Refusals)
)]
pub async fn list(State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let m = mapper(&st);
    let types = st.types();
    let items: Vec<Value> = types
        .all()
        .map(|t| crate::ops::action_types::describe(t, "en", &m))
        .collect();
    Ok(Json(json!({"action_types": items})))
}

/// `GET /v1/action_types/{name[@version]}`.
#[utoipa::path(
    operation_id = "action_types_show",
    get,
    path = "/v1/action_types/{id}",
    tag = "sextant",
    params(("id" = String, Path, description = "NAME or NAME@VERSION")),
    responses((status = 200, description = "OK", body = schemas::ActionTypeDoc), super::openapi::Refusals)
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let types = st.types();
    let t = types
        .resolve(&reference)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(Json(crate::ops::action_types::describe(
        t,
        "en",
        &mapper(&st),
    )))
}

/// `POST /v1/action_types`: the definition (YAML or JSON) is the body;
/// 201 with `Location` (200 when the same text was registered already).
#[utoipa::path(
    operation_id = "action_types_create",
    post,
    path = "/v1/action_types",
    tag = "sextant",
    request_body(content = String, content_type = "application/yaml", description = "The YAML or JSON text"),
    responses((status = 201, description = "Registered; Location names it", body = schemas::ActionTypeDoc), (status = 200, description = "Already registered with this text", body = schemas::ActionTypeDoc), super::openapi::Refusals)
)]
pub async fn create(State(st): State<Arc<AppState>>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("The action type definition is not UTF-8 text"))?
        .to_string();
    let (id, new, doc) = st
        .store(move |_, app| {
            let types = app.types();
            let (id, new) = crate::ops::action_types::create(
                app.type_dirs(),
                &types,
                &text,
                std::path::Path::new("request body"),
                &app.ctx.plugins,
                &mapper(app),
            )?;
            let types = app.types();
            let t = types.resolve(&id).map_err(|e| {
                ApiError::internal(format!("{id} registered but not read back: {e}"))
            })?;
            Ok((
                id.clone(),
                new,
                crate::ops::action_types::describe(t, "en", &mapper(app)),
            ))
        })
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::LOCATION, ctx.location("action_types", &id))],
        Json(doc),
    )
        .into_response())
}

/// `DELETE /v1/action_types/{name@version}`.
#[utoipa::path(
    operation_id = "action_types_delete",
    delete,
    path = "/v1/action_types/{id}",
    tag = "sextant",
    params(("id" = String, Path, description = "NAME@VERSION")),
    responses((status = 204, description = "Unregistered"), super::openapi::Refusals)
)]
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> ApiResult<StatusCode> {
    st.store(move |s, app| {
        let types = app.types();
        crate::ops::action_types::delete(app.type_dirs(), &types, s, &reference)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
