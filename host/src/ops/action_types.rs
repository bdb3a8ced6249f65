//! Action types as the operator sees them (`action-type list | show`,
//! `GET /v1/action_types`): the definition, and the handler entry the
//! configured mapper resolves it to, or why none.

use super::OpError;
use crate::action_types::dsl::{DefinitionError, DefinitionErrors, locate};
use crate::action_types::registry::{self, RegisterError, Registered};
use crate::action_types::{ActionType, ActionTypeDirs, ActionTypeRegistry, HandlerMapper};
use crate::plugins::PluginRegistry;
use serde_json::Value;
use sextant_plugin_api::Kind;

/// An action type with `handler_entry` and `mapping_error`.
pub fn describe(t: &ActionType, lang: &str, m: &HandlerMapper<'_>) -> Value {
    let mut v = t.to_json(lang);
    let (entry, error) = match m.handler_for(t) {
        Ok(h) => (Value::String(h), Value::Null),
        Err(e) => (Value::Null, Value::String(e.reason)),
    };
    v["handler_entry"] = entry;
    v["mapping_error"] = error;
    v
}

/// The checks that need the loaded plugins: the type maps to a loaded
/// handler, its `with` block fits that handler's parameters, and the flags
/// it claims are ones the handler supports.
pub fn check_handler(
    t: &ActionType,
    plugins: &PluginRegistry,
    m: &HandlerMapper<'_>,
) -> Result<String, DefinitionErrors> {
    let at = |path: &[&str], message: String| {
        let (line, column) = locate(&t.text, path);
        DefinitionError {
            file: t.source.clone(),
            line,
            column,
            message,
        }
    };
    let entry = m.handler_for(t).map_err(|e| {
        DefinitionErrors(vec![at(
            &["handler"],
            format!("unknown handler: {}", e.reason),
        )])
    })?;
    let Some(h) = plugins.find(Kind::ActionHandler, &entry) else {
        return Err(DefinitionErrors(vec![at(
            &["handler"],
            format!("handler {entry:?} is not loaded"),
        )]));
    };
    let hm = h.manifest();
    let mut errors = Vec::new();
    if t.revertible && !hm.revertible {
        errors.push(at(
            &["revertible"],
            format!("revertible: true, but handler {entry:?} cannot revert"),
        ));
    }
    if t.abortable && !hm.abortable {
        errors.push(at(
            &["abortable"],
            format!("abortable: true, but handler {entry:?} cannot abort"),
        ));
    }
    if let Some(with) = &t.with {
        match crate::action_types::dsl::compile_schema(&hm.parameters) {
            Ok(v) => {
                for e in v.iter_errors(with) {
                    let mut path: Vec<String> = vec!["with".into()];
                    path.extend(
                        e.instance_path()
                            .to_string()
                            .split('/')
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    );
                    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                    errors.push(at(
                        &refs,
                        format!("with does not fit handler {entry:?}: {e}"),
                    ));
                }
            }
            Err(e) => tracing::warn!("handler {entry} has an invalid parameter schema: {e}"),
        }
    }
    if errors.is_empty() {
        Ok(entry)
    } else {
        Err(DefinitionErrors(errors))
    }
}

/// Registers an action type given as text (YAML or JSON), checked as
/// `action-type validate` checks a file, the errors located by line and
/// column in `label`; returns `NAME@VERSION` and whether it is new (the
/// same text registered again changes nothing).
pub fn create(
    dirs: &ActionTypeDirs,
    types: &ActionTypeRegistry,
    text: &str,
    label: &std::path::Path,
    plugins: &PluginRegistry,
    m: &HandlerMapper<'_>,
) -> Result<(String, bool), OpError> {
    let mut id = String::new();
    let r = registry::register_text(dirs, types, text, label, |t| {
        id = t.id();
        check_handler(t, plugins, m).map(|_| ())
    });
    match r {
        Ok(Registered::New(_)) => Ok((id, true)),
        Ok(Registered::Unchanged(_)) => Ok((id, false)),
        Err(RegisterError::Invalid(errs)) => Err(OpError::Invalid(
            errs.0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        Err(e @ RegisterError::Conflict { .. }) => Err(OpError::Conflict(e.to_string())),
        Err(e @ (RegisterError::Io { .. } | RegisterError::Untrusted(_))) => {
            Err(OpError::Internal(e.to_string()))
        }
        Err(e) => Err(OpError::Invalid(e.to_string())),
    }
}

/// Unregisters `NAME@VERSION` (a type `register` wrote), refused while a
/// plan that has not ended has actions of that version.
pub fn delete(
    dirs: &ActionTypeDirs,
    types: &ActionTypeRegistry,
    store: &crate::store::Store,
    reference: &str,
) -> Result<std::path::PathBuf, OpError> {
    let t = types
        .resolve(reference)
        .map_err(|e| OpError::NotFound(e.to_string()))?;
    let users = store.live_plans_using(&t.name, &t.version.to_string())?;
    if let Some((plan, state)) = users.first() {
        return Err(OpError::Conflict(format!(
            "action type {} is used by action plan {plan} ({state}){}: unregister it once those plans have ended",
            t.id(),
            match users.len() {
                1 => String::new(),
                n => format!(" and {} other plans", n - 1),
            }
        )));
    }
    match registry::unregister(dirs, types, reference) {
        Ok(p) => Ok(p),
        Err(e @ RegisterError::Io { .. }) => Err(OpError::Internal(e.to_string())),
        Err(e) => Err(OpError::Invalid(e.to_string())),
    }
}
