//! Audit templates: create (`POST /v1/audit_templates`, `audit-template
//! create`), update (PATCH, `audit-template update`) and delete.

use super::{OpError, invalid};
use crate::decide::{find_goal, find_strategy, validate_parameters};
use crate::policy::Vocabulary;
use crate::store::Store;
use crate::store::audits::{NewTemplate, TemplateRow};
use crate::store::lifecycle::TemplateChange;
use serde_json::{Value, json};

/// What creating a template asks for.
pub struct TemplateRequest<'a> {
    /// Its name (unique).
    pub name: &'a str,
    /// The goal: a name or uuid.
    pub goal: &'a str,
    /// The strategy: a name or uuid.
    pub strategy: Option<&'a str>,
    /// What it is for.
    pub description: &'a str,
    /// The audit scope (a JSON array).
    pub scope: Value,
    /// Default parameters (an object; needs a strategy when not empty).
    pub default_parameters: Value,
    /// The scheduling policy (name or file) of the audits made from it.
    pub policy: Option<&'a str>,
}

/// The longest template name, as Watcher's API takes it.
pub const MAX_NAME: usize = 63;

/// Creates a template, checked as Watcher's API does: a unique name, a
/// goal that exists, a strategy of that goal, parameters the strategy
/// takes, a valid scope and policy. Writes nothing when refused.
pub fn create(
    store: &mut Store,
    req: &TemplateRequest<'_>,
    vocab: &dyn Fn() -> Vocabulary,
) -> Result<TemplateRow, OpError> {
    if req.name.trim().is_empty() {
        return Err(invalid("an audit template needs a name"));
    }
    if req.name.chars().count() > MAX_NAME {
        return Err(invalid(format!(
            "audit template name {:?} is longer than {MAX_NAME} characters",
            req.name
        )));
    }
    if !store.templates_named(req.name)?.is_empty() {
        return Err(invalid(format!(
            "an audit template named {:?} exists",
            req.name
        )));
    }
    let g = find_goal(store, req.goal)?;
    let s = match req.strategy {
        Some(s) => Some(find_strategy(store, s, Some(&g))?),
        None => None,
    };
    if let Some(s) = &s
        && s.goal_uuid != g.uuid
    {
        return Err(invalid(format!(
            "strategy {} achieves goal {}, not {}",
            s.name, s.goal_name, g.name
        )));
    }
    let given = match &req.default_parameters {
        Value::Null => json!({}),
        v @ Value::Object(_) => v.clone(),
        _ => return Err(invalid("default_parameters must be an object")),
    };
    let has_params = given.as_object().is_some_and(|m| !m.is_empty());
    match &s {
        // Validated as given, stored as given: defaults are filled in when
        // an audit is created from it.
        Some(s) if has_params => {
            validate_parameters(s, &given)?;
        }
        None if has_params => return Err(invalid("default parameters need a strategy")),
        _ => {}
    }
    let scope = match &req.scope {
        Value::Null => json!([]),
        v => v.clone(),
    };
    crate::decide::scope::check(&scope).map_err(|e| invalid(format!("scope: {e}")))?;
    let policy = match req.policy {
        Some(p) => Some(crate::decide::stored_policy(p, &vocab())?),
        None => None,
    };
    Ok(store.create_template(&NewTemplate {
        name: req.name,
        description: req.description,
        goal: &g.uuid,
        strategy: s.as_ref().map(|s| s.uuid.as_str()),
        scope,
        default_parameters: given,
        policy: policy.as_ref().map(|(r, _)| r.clone()),
        policy_content: policy.as_ref().map(|(_, c)| c.clone()),
    })?)
}

/// What updating a template changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct TemplateUpdate<'a> {
    /// A new name.
    pub name: Option<&'a str>,
    /// A new description.
    pub description: Option<&'a str>,
    /// `Some(Some(p))` sets the policy, `Some(None)` removes it.
    pub policy: Option<Option<&'a str>>,
}

/// Changes a template's name, description or policy; the policy is
/// checked as an audit's is.
pub fn update(
    store: &mut Store,
    id: &str,
    change: &TemplateUpdate<'_>,
    vocab: &dyn Fn() -> Vocabulary,
) -> Result<TemplateRow, OpError> {
    if change.name.is_none() && change.description.is_none() && change.policy.is_none() {
        return Err(invalid(
            "nothing to change: give a name, a description or a policy",
        ));
    }
    if let Some(n) = change.name {
        if n.trim().is_empty() {
            return Err(invalid("an audit template name must not be empty"));
        }
        if n.chars().count() > MAX_NAME {
            return Err(invalid(format!(
                "audit template name {n:?} is longer than {MAX_NAME} characters"
            )));
        }
    }
    let t = store.template(id)?;
    let policy = match change.policy {
        Some(Some(p)) => Some(Some(crate::decide::stored_policy(p, &vocab()).map_err(
            |e| match e {
                crate::decide::DecideError::Invalid(m) => super::field("policy", p, m),
                e => e.into(),
            },
        )?)),
        Some(None) => Some(None),
        None => None,
    };
    Ok(store.update_template(
        &t.uuid,
        &TemplateChange {
            name: change.name,
            description: change.description,
            policy,
        },
    )?)
}

/// Deletes templates (soft delete); every id is resolved before any is
/// deleted.
pub fn delete(store: &mut Store, ids: &[String]) -> Result<Vec<TemplateRow>, OpError> {
    let mut uuids = Vec::with_capacity(ids.len());
    for id in ids {
        uuids.push(store.template(id)?.uuid);
    }
    let mut deleted = Vec::with_capacity(uuids.len());
    for u in uuids {
        deleted.push(store.delete_template(&u)?);
    }
    Ok(deleted)
}
