//! The action factory: the one place where actions are instantiated.
//! Strategies' solutions, imported plans and the command line all go
//! through [`ActionFactory::instantiate`].
//!
//! ```
//! # use sextant::action_types::{ActionFactory, ActionType, ActionTypeRegistry, NewAction};
//! # use std::path::Path;
//! let mut types = ActionTypeRegistry::default();
//! types.insert(ActionType::parse(
//!     "name: sleep\nversion: 1.0.0\nhandler: sleep\nparameters:\n  type: object\n  required: [duration]\n  properties:\n    duration: {type: number, minimum: 0}\n    note: {type: string, default: none}\n",
//!     Path::new("sleep.yaml"),
//! ).unwrap());
//! let factory = ActionFactory::new(&types);
//! let a = factory.instantiate(&NewAction::new("sleep", serde_json::json!({"duration": 1.5}))).unwrap();
//! assert_eq!(a.input_parameters["note"], "none");          // default filled in
//! let err = factory.instantiate(&NewAction::new("sleep", serde_json::json!({"duration": -1}))).unwrap_err();
//! assert!(err.to_string().contains("duration"));
//! ```

use super::dsl::ActionType;
use super::registry::{ActionTypeRegistry, LookupError, parse_reference};
use serde::Serialize;
use serde_json::Value;

/// An action to instantiate, as a strategy or an import describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAction {
    /// `name` (latest version) or `name@version` (pinned).
    pub action_type: String,
    /// The input parameters.
    pub input_parameters: Value,
    /// The resource acted on; copied into `input_parameters.resource_id`
    /// when the type declares that parameter and it is absent.
    pub resource_id: Option<String>,
}

impl NewAction {
    /// An action of a type with parameters.
    pub fn new(action_type: impl Into<String>, input_parameters: Value) -> Self {
        Self {
            action_type: action_type.into(),
            input_parameters,
            resource_id: None,
        }
    }
}

/// A validated action, pinned to the action-type version it was made with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstantiatedAction {
    /// The action type's name.
    pub action_type: String,
    /// The version used.
    pub action_type_version: String,
    /// Parameters, valid, with defaults filled in.
    pub input_parameters: Value,
    /// The resource acted on.
    pub resource_id: Option<String>,
}

/// One rule a parameter set broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParameterProblem {
    /// The parameter (a JSON pointer below the parameters: `/resource_id`),
    /// empty for the parameter set as a whole.
    pub parameter: String,
    /// The schema keyword broken (`pattern`, `required`, …).
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

/// Why an action could not be instantiated.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FactoryError {
    /// The type is unknown.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The parameters break the schema.
    #[error("action type {action_type}: invalid parameters: {}", describe(.problems))]
    InvalidParameters {
        /// `name@version`.
        action_type: String,
        /// Every rule broken.
        problems: Vec<ParameterProblem>,
    },
}

fn describe(problems: &[ParameterProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.parameter.is_empty() {
                format!("{} ({})", p.message, p.rule)
            } else {
                format!(
                    "parameter {:?}: {} ({})",
                    p.parameter.trim_start_matches('/'),
                    p.message,
                    p.rule
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Instantiates actions against an [`ActionTypeRegistry`].
pub struct ActionFactory<'r> {
    types: &'r ActionTypeRegistry,
}

impl<'r> ActionFactory<'r> {
    /// A factory over these types.
    pub fn new(types: &'r ActionTypeRegistry) -> Self {
        Self { types }
    }

    /// Resolves the type (latest unless pinned), fills in defaults, and
    /// validates the parameters.
    pub fn instantiate(&self, action: &NewAction) -> Result<InstantiatedAction, FactoryError> {
        let (name, version) = parse_reference(&action.action_type)?;
        let t = self.types.get(name, version.as_ref())?;
        let params = prepare(t, &action.input_parameters, action.resource_id.as_deref());
        check(t, &params)?;
        Ok(InstantiatedAction {
            action_type: t.name.clone(),
            action_type_version: t.version.to_string(),
            input_parameters: params,
            resource_id: action.resource_id.clone().or_else(|| {
                action.input_parameters["resource_id"]
                    .as_str()
                    .map(String::from)
            }),
        })
    }
}

/// Whether `schema` declares a `default` for some property, at any depth:
/// instantiating fills it in (see [`fill_defaults`]).
pub fn declares_defaults(schema: &Value) -> bool {
    schema["properties"].as_object().is_some_and(|props| {
        props
            .values()
            .any(|sub| sub.get("default").is_some() || declares_defaults(sub))
    })
}

/// Checks `params` against the resolved type `t` as
/// [`ActionFactory::instantiate`] does (defaults filled in first, on a
/// copy, when `t`'s schema declares some: [`declares_defaults`]), without
/// building the action: for checking many actions of one type.
pub fn check_parameters(
    t: &ActionType,
    params: &Value,
    schema_declares_defaults: bool,
) -> Result<(), FactoryError> {
    if !params.is_object() || (schema_declares_defaults && lacks_defaults(&t.parameters, params)) {
        check(t, &prepare(t, params, None))
    } else {
        // Defaults already in (as an import stores them): nothing to copy.
        check(t, params)
    }
}

/// Whether [`fill_defaults`] would add something to `value`.
fn lacks_defaults(schema: &Value, value: &Value) -> bool {
    // The value first: most parameters are not objects.
    let Value::Object(obj) = value else {
        return false;
    };
    let Some(props) = schema["properties"].as_object() else {
        return false;
    };
    props.iter().any(|(key, sub)| match obj.get(key) {
        None => sub.get("default").is_some(),
        Some(v) => lacks_defaults(sub, v),
    })
}

/// Fills in `resource_id` and the schema's defaults.
fn prepare(t: &ActionType, params: &Value, resource_id: Option<&str>) -> Value {
    let mut p = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params.clone()
    };
    if let (Some(r), Value::Object(m)) = (resource_id, &mut p)
        && !m.contains_key("resource_id")
        && t.parameter_names().iter().any(|n| n == "resource_id")
    {
        m.insert("resource_id".into(), Value::String(r.into()));
    }
    fill_defaults(&t.parameters, &mut p);
    p
}

/// Inserts `default` values of absent properties, recursively into nested
/// objects that are present.
pub fn fill_defaults(schema: &Value, value: &mut Value) {
    let (Some(props), Value::Object(obj)) = (schema["properties"].as_object(), value) else {
        return;
    };
    for (key, sub) in props {
        match obj.get_mut(key) {
            None => {
                if let Some(d) = sub.get("default") {
                    obj.insert(key.clone(), d.clone());
                }
            }
            Some(v) => fill_defaults(sub, v),
        }
    }
}

fn check(t: &ActionType, params: &Value) -> Result<(), FactoryError> {
    let problems: Vec<ParameterProblem> = t
        .parameters_validator()
        .iter_errors(params)
        .map(|e| {
            let rule = e
                .schema_path()
                .to_string()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            ParameterProblem {
                parameter: e.instance_path().to_string(),
                rule,
                message: e.to_string(),
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(FactoryError::InvalidParameters {
            action_type: t.id(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn types() -> ActionTypeRegistry {
        let mut types = ActionTypeRegistry::default();
        for text in [
            "name: plain\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n  required: [n]\n  properties:\n    n: {type: number, minimum: 0}\n",
            "name: defaults\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n  required: [n]\n  properties:\n    n: {type: number, default: -1, minimum: 0}\n    inner:\n      type: object\n      properties:\n        m: {type: string, default: x}\n",
        ] {
            types.insert(ActionType::parse(text, Path::new("t.yaml")).expect("parses"));
        }
        types
    }

    #[test]
    fn checking_parameters_of_a_resolved_type_agrees_with_instantiating() {
        let types = types();
        let factory = ActionFactory::new(&types);
        let plain = types.get("plain", None).expect("plain");
        let defaults = types.get("defaults", None).expect("defaults");
        assert!(!declares_defaults(&plain.parameters));
        assert!(declares_defaults(&defaults.parameters));
        for (t, params) in [
            (plain, json!({"n": 1})),
            (plain, json!({"n": -1})),
            (plain, json!({})),
            (plain, Value::Null),
            (plain, json!([1])),
            // The default (-1) is out of range: instantiating refuses it.
            (defaults, json!({})),
            (defaults, json!({"n": 2})),
            (defaults, json!({"n": 2, "inner": {"m": 3}})),
            (defaults, json!({"n": 2, "inner": {}})),
            (defaults, json!({"n": -2, "inner": {"m": "y"}})),
        ] {
            let by_instantiate = factory
                .instantiate(&NewAction::new(t.id(), params.clone()))
                .map(drop)
                .map_err(|e| e.to_string());
            let by_check = check_parameters(t, &params, declares_defaults(&t.parameters))
                .map_err(|e| e.to_string());
            assert_eq!(by_check, by_instantiate, "{} {params}", t.name);
        }
    }
}
