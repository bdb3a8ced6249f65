//! RFC 6902 PATCH bodies, with Watcher's rules (watcher-service-facts.md
//! 1.5): an array of `{op, path, value}`, `op` one of add, replace,
//! remove; `path` matching `^(/[\w-]+)+$`; no internal attribute
//! (`/created_at /id /links /updated_at /deleted_at /uuid`, plus what a
//! resource adds); no new attribute at the root. The patch is applied (by
//! the `json-patch` crate) to the object as the API shows it, and the
//! top-level fields that changed are what the resource then acts on.

use super::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Op {
    op: String,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

/// Attributes no PATCH may touch.
const INTERNAL: &[&str] = &[
    "created_at",
    "id",
    "links",
    "updated_at",
    "deleted_at",
    "uuid",
];

fn valid_path(p: &str) -> bool {
    p.starts_with('/')
        && p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// Applies `body` to `doc`; `internal` adds the resource's own internal
/// attributes. Returns the patched object and the top-level fields whose
/// value changed, in patch order.
pub fn apply(doc: &Value, body: &[u8], internal: &[&str]) -> ApiResult<(Value, Vec<String>)> {
    let ops: Vec<Op> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Invalid JSON patch: {e} (expected an array of {{\"op\", \"path\", \"value\"}})"
        ))
    })?;
    if ops.is_empty() {
        return Err(ApiError::bad_request("The patch is empty"));
    }
    let mut roots = Vec::new();
    for op in &ops {
        if !["add", "replace", "remove"].contains(&op.op.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid patch operation {:?}: one of add, replace, remove",
                op.op
            )));
        }
        if !valid_path(&op.path) {
            return Err(ApiError::bad_request(format!(
                "Invalid patch path {:?}: it must match ^(/[\\w-]+)+$",
                op.path
            )));
        }
        let root = op.path[1..].split('/').next().unwrap_or("");
        if INTERNAL.contains(&root) || internal.contains(&root) {
            return Err(ApiError::bad_request(format!(
                "'{}' is an internal attribute and can not be updated",
                op.path
            )));
        }
        if op.op != "remove" && op.value.is_none() {
            return Err(ApiError::bad_request(format!(
                "Patch {} of {} needs a value",
                op.op, op.path
            )));
        }
        if op.op == "add" && !op.path[1..].contains('/') && doc.get(root).is_none() {
            return Err(ApiError::bad_request(format!(
                "Adding a new attribute ({}) to the root of the resource is not allowed",
                op.path
            )));
        }
        if !roots.iter().any(|r: &String| r == root) {
            roots.push(root.to_string());
        }
    }
    let patch: json_patch::Patch = serde_json::to_value(&ops)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON patch: {e}")))?;
    let mut patched = doc.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| ApiError::bad_request(format!("Couldn't apply patch: {e}")))?;
    let changed = roots
        .into_iter()
        .filter(|r| patched.get(r) != doc.get(r))
        .collect();
    Ok((patched, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn watcher_s_rules() {
        let doc = json!({"uuid": "u", "name": "a", "state": "PENDING", "parameters": {"x": 1}});
        let (p, changed) = apply(
            &doc,
            br#"[{"op":"replace","path":"/state","value":"CANCELLED"}]"#,
            &[],
        )
        .unwrap();
        assert_eq!(p["state"], "CANCELLED");
        assert_eq!(changed, ["state"]);
        let (_, changed) = apply(
            &doc,
            br#"[{"op":"add","path":"/parameters/y","value":2}]"#,
            &[],
        )
        .unwrap();
        assert_eq!(changed, ["parameters"]);
        for bad in [
            &br#"[{"op":"replace","path":"/uuid","value":"x"}]"#[..],
            br#"[{"op":"move","path":"/name","from":"/state"}]"#,
            br#"[{"op":"add","path":"/colour","value":"red"}]"#,
            br#"[{"op":"replace","path":"/na me","value":"x"}]"#,
            br#"{"op":"replace"}"#,
            br#"[]"#,
        ] {
            let e = apply(&doc, bad, &[]).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{e:?}");
        }
        assert!(
            apply(
                &doc,
                br#"[{"op":"replace","path":"/status_message","value":"x"}]"#,
                &["status_message"]
            )
            .is_err()
        );
    }
}
