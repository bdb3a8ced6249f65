//! `GET /` and `GET /v1`: the discovery documents, as Watcher's
//! `RootController` and `V1.convert` write them (watcher-service-facts.md
//! 1.1): the version range, and at `/v1` the media types and two links per
//! resource; `data_model` only from 1.3 and `webhooks` from 1.4; no
//! `goals` or `strategies`, as in Watcher.

use super::links::Ctx;
use super::schemas;
use super::version::{DATA_MODEL, MAX, MIN, WEBHOOK};
use axum::Json;
use serde_json::{Value, json};

fn version_doc(ctx: &Ctx) -> Value {
    json!({
        "id": "v1",
        "status": "CURRENT",
        "max_version": MAX.to_string(),
        "min_version": MIN.to_string(),
        "links": [{"href": format!("{}/v1/", ctx.base), "rel": "self"}],
    })
}

/// `GET /`.
#[utoipa::path(
    operation_id = "root_root",
    get,
    path = "/",
    tag = "watcher",
    responses((status = 200, description = "OK", body = schemas::Versions), super::openapi::Refusals)
)]
pub async fn root(ctx: Ctx) -> Json<Value> {
    let v = version_doc(&ctx);
    Json(json!({
        "name": "OpenStack Watcher API",
        "description": "Watcher is an OpenStack project which aims to improve physical resources usage through better VM placement.",
        "versions": [v.clone()],
        "default_version": v,
    }))
}

fn pair(ctx: &Ctx, res: &str) -> Value {
    json!([
        {"href": format!("{}/v1/{res}/", ctx.base), "rel": "self"},
        {"href": format!("{}/{res}/", ctx.base), "rel": "bookmark"},
    ])
}

/// `GET /v1`.
#[utoipa::path(
    operation_id = "root_v1",
    get,
    path = "/v1",
    tag = "watcher",
    responses((status = 200, description = "OK", body = schemas::V1), super::openapi::Refusals)
)]
pub async fn v1(ctx: Ctx) -> Json<Value> {
    let mut doc = json!({
        "id": "v1",
        "links": [
            {"href": format!("{}/v1/", ctx.base), "rel": "self"},
            {"href": "http://docs.openstack.org/developer/watcher/dev/api-spec-v1.html",
             "rel": "describedby", "type": "text/html"},
        ],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.watcher.v1+json"}],
        "audit_templates": pair(&ctx, "audit_templates"),
        "audits": pair(&ctx, "audits"),
        "actions": pair(&ctx, "actions"),
        "action_plans": pair(&ctx, "action_plans"),
        "scoring_engines": pair(&ctx, "scoring_engines"),
        "services": pair(&ctx, "services"),
    });
    if ctx.at_least(DATA_MODEL) {
        doc["data_model"] = pair(&ctx, "data_model");
    }
    if ctx.at_least(WEBHOOK) {
        doc["webhooks"] = pair(&ctx, "webhooks");
    }
    Json(doc)
}
