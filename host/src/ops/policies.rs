//! Policies as `sextant policy list | show | validate` and `/v1/policies`
//! give them: the named policies of the policy directories, each checked
//! against the installed action types and planners; one by name; and a
//! policy's text checked as a file is, its errors located by line and
//! column in whatever the caller names it (a file, or "request body").

use crate::policy::{Policy, PolicyError, Vocabulary};
use serde_json::{Value, json};
use std::path::Path;

/// The named policies, in lookup order, each with whether it is valid and
/// why not. `with_files` adds the file each was read from (the CLI shows
/// it; the API does not give out the server's paths).
pub fn list(vocab: &Vocabulary, with_files: bool) -> Vec<Value> {
    crate::policy::named_policies()
        .into_iter()
        .map(|(name, file)| {
            let mut v = match crate::policy::check_file(&file, vocab) {
                Ok(p) => json!({
                    "name": name, "planner": p.planner,
                    "description": p.description, "valid": true, "error": null,
                }),
                Err(e) => json!({
                    "name": name, "planner": null, "description": null,
                    "valid": false, "error": located(&e, with_files),
                }),
            };
            if with_files && let Value::Object(m) = &mut v {
                m.insert("file".into(), json!(file));
            }
            v
        })
        .collect()
}

/// One named policy (never a path), checked, with every default filled in.
pub fn show(name: &str, vocab: &Vocabulary) -> Result<Policy, super::OpError> {
    let Some((_, file)) = crate::policy::named_policies()
        .into_iter()
        .find(|(n, _)| n == name)
    else {
        return Err(super::OpError::NotFound(format!(
            "Policy {name} could not be found"
        )));
    };
    crate::policy::check_file(&file, vocab).map_err(|e| super::OpError::Invalid(e.to_string()))
}

/// Checks policy text as `policy validate` checks a file; `name` stands
/// for the file in error locations.
pub fn check_text(text: &str, name: &Path, vocab: &Vocabulary) -> Result<Policy, PolicyError> {
    let policy = Policy::parse(text, name)?;
    policy.check_names(text, name, vocab)?;
    Ok(policy)
}

/// An error as text: `FILE:LINE:COLUMN: message`, or without the file.
fn located(e: &PolicyError, with_file: bool) -> String {
    if with_file {
        e.to_string()
    } else {
        format!("{}:{}: {}", e.line, e.column, e.message)
    }
}

/// An error as a JSON object (`policy validate --format json`).
pub fn error_json(e: &PolicyError) -> Value {
    json!({"file": e.file, "line": e.line, "column": e.column, "message": e.message})
}
