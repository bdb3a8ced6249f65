//! `GET /v1/data_model` (1.3; also with a trailing slash, as the client
//! calls it): the compute model from the configured collector, flattened
//! as Watcher's `ModelRoot.to_list` does: one row per instance with its
//! node's fields (`node_*`) and its own (`server_*`), one row per empty
//! node; nodes and instances sorted by uuid. `audit_uuid` applies that
//! audit's scope. `server_flavor_extra_specs` and `server_pinned_az` only
//! from 1.6.

use super::error::{ApiError, ApiResult, missing};
use super::links::Ctx;
use super::schemas;
use super::state::AppState;
use super::version::DATA_MODEL;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const EXT_COMPUTE_MODEL: super::version::Version = super::version::Version { major: 1, minor: 6 };

fn prefixed(prefix: &str, obj: &Value, skip: &[&str], into: &mut Map<String, Value>) {
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if !skip.contains(&k.as_str()) {
                into.insert(format!("{prefix}{k}"), v.clone());
            }
        }
    }
}

/// The rows of a cluster model (the snapshot format).
pub fn rows(model: &Value, ext: bool) -> Vec<Value> {
    let by_uuid = |v: &Value| v["uuid"].as_str().unwrap_or("").to_string();
    let mut nodes: Vec<&Value> = model["nodes"].as_array().into_iter().flatten().collect();
    nodes.sort_by_key(|n| by_uuid(n));
    let mut instances: Vec<&Value> = model["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    instances.sort_by_key(|i| by_uuid(i));
    let mut out = Vec::new();
    for n in nodes {
        let mut node = Map::new();
        prefixed("node_", n, &["metrics", "power_state"], &mut node);
        let host = n["hostname"].as_str().unwrap_or("");
        let on: Vec<&&Value> = instances
            .iter()
            .filter(|i| i["host"].as_str() == Some(host))
            .collect();
        if on.is_empty() {
            out.push(Value::Object(node));
            continue;
        }
        for i in on {
            let mut row = node.clone();
            let mut skip = vec!["metrics", "host"];
            if !ext {
                skip.extend(["flavor_extra_specs", "pinned_az"]);
            }
            prefixed("server_", i, &skip, &mut row);
            out.push(Value::Object(row));
        }
    }
    out
}

/// `GET /v1/data_model`.
#[utoipa::path(
    operation_id = "data_model_list",
    get,
    path = "/v1/data_model",
    tag = "watcher",
    params(("data_model_type" = Option<String>, Query, pattern = "^compute$", description = "compute (the default)"), ("audit_uuid" = Option<String>, Query, description = "Scope the model as this audit does")),
    responses((status = 200, description = "OK", body = schemas::DataModel), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if !ctx.at_least(DATA_MODEL) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "The data model needs microversion {DATA_MODEL} or later; {} was requested",
                ctx.version
            ),
        ));
    }
    for k in q.keys() {
        if k != "data_model_type" && k != "audit_uuid" {
            return Err(ApiError::bad_request(format!("Unknown argument: \"{k}\"")));
        }
    }
    let kind = q.get("data_model_type").map_or("compute", String::as_str);
    if kind != "compute" {
        return Err(ApiError::bad_request(format!(
            "Unsupported data model type {kind}: only compute"
        )));
    }
    let audit = q.get("audit_uuid").filter(|a| !a.is_empty()).cloned();
    let ext = ctx.at_least(EXT_COMPUTE_MODEL);
    st.store(move |s, app| {
        let scope = match &audit {
            Some(a) => Some(
                s.audit(a)
                    .map_err(|e| missing(e, || format!("Audit {a} could not be found")))?
                    .scope,
            ),
            None => None,
        };
        let collector = &app.ctx.model.collector;
        let raw = app
            .ctx
            .plugins
            .collect(collector, &app.ctx.model.config)
            .map_err(|e| ApiError::internal(format!("collector {collector}: {e}")))?;
        let model = match scope {
            Some(scope) if scope.as_array().is_some_and(|a| !a.is_empty()) => {
                let m: sextant_plugin_api::model::ClusterModel = serde_json::from_value(raw)
                    .map_err(|e| ApiError::internal(format!("collector {collector}: {e}")))?;
                let scoped = crate::decide::scope::apply(&m, &scope)
                    .map_err(|e| ApiError::bad_request(format!("audit scope: {e}")))?;
                serde_json::to_value(scoped).map_err(ApiError::internal)?
            }
            _ => raw,
        };
        Ok(Json(json!({"context": rows(&model, ext)})))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_watcher_s_flat_rows() {
        let model = json!({
            "nodes": [
                {"uuid": "n2", "hostname": "h2", "vcpus": 4, "metrics": {}},
                {"uuid": "n1", "hostname": "h1", "vcpus": 8},
            ],
            "instances": [
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 1, "pinned_az": "z"},
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 2},
            ],
        });
        let r = rows(&model, false);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0]["node_uuid"], "n1");
        assert_eq!(r[0]["server_uuid"], "i1");
        assert_eq!(r[1]["server_uuid"], "i2");
        assert!(r[1].get("server_pinned_az").is_none());
        assert!(r[1].get("server_host").is_none());
        assert_eq!(r[2]["node_uuid"], "n2");
        assert!(r[2].get("server_uuid").is_none());
        assert!(r[2].get("node_metrics").is_none());
        assert_eq!(rows(&model, true)[1]["server_pinned_az"], "z");
    }
}
