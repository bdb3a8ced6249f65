//! The input of `sextant plan --input FILE`: the format of Watcher's
//! planner vectors (`planner`, `config`, `solution`, `instance_hosts`).
//!
//! A JSON file is read without building a `Value` of its actions: each
//! action's parameters stay the JSON text they were in the file
//! (`RawValue`), which is what the planner receives and the store keeps.
//! YAML is parsed as a document. Either way, the actions come out as
//! [`ActionSpec`]s, `resource_id` moved into the parameters.

use abi_stable::std_types::RString;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sextant_plugin_api::abi::ActionSpec;
use std::collections::BTreeMap;

/// A plan request, with its actions ready for the planner.
#[derive(Debug)]
pub struct PlanRequest {
    /// The planner entry.
    pub planner: String,
    /// Its config (`weights`, `parallelization`, or `policy`).
    pub config: Value,
    /// Instance uuid → host, for planners that need it.
    pub instance_hosts: BTreeMap<String, String>,
    /// The solution, in the order the strategy produced it.
    pub actions: Vec<ActionSpec>,
}

/// The file's shape; `P` is how an action's parameters are held.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
struct PlanInput<P> {
    planner: String,
    #[serde(default)]
    config: Value,
    solution: Vec<InputAction<P>>,
    #[serde(default, alias = "nova_instance_host")]
    instance_hosts: BTreeMap<String, String>,
    // Test metadata in vector files; ignored.
    #[serde(default, rename = "id")]
    _id: serde::de::IgnoredAny,
    #[serde(default, rename = "source")]
    _source: serde::de::IgnoredAny,
    #[serde(default, rename = "expected")]
    _expected: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
struct InputAction<P> {
    id: String,
    action_type: String,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    input_parameters: Option<P>,
}

/// Parameters as the planner receives them: JSON text, with `resource_id`
/// added (last) when the action names one and its parameters do not.
trait Parameters {
    fn to_text(&self, resource_id: Option<&str>) -> Result<String, String>;
}

impl Parameters for Value {
    fn to_text(&self, resource_id: Option<&str>) -> Result<String, String> {
        let mut v = self.clone();
        if v.is_null() {
            v = Value::Object(Default::default());
        }
        if let (Some(r), Value::Object(m)) = (resource_id, &mut v) {
            m.entry("resource_id")
                .or_insert_with(|| Value::String(r.to_string()));
        }
        Ok(v.to_string())
    }
}

impl Parameters for Box<RawValue> {
    fn to_text(&self, resource_id: Option<&str>) -> Result<String, String> {
        let text = self.get().trim();
        let Some(r) = resource_id else {
            return Ok(if text == "null" {
                "{}".into()
            } else {
                text.into()
            });
        };
        if text == "null" {
            let r = serde_json::to_string(r).map_err(|e| e.to_string())?;
            return Ok(format!("{{\"resource_id\":{r}}}"));
        }
        // Only an object's own keys matter: a borrowed map of raw values
        // reads them without building the values.
        let keys: BTreeMap<std::borrow::Cow<'_, str>, &RawValue> = match serde_json::from_str(text)
        {
            Ok(k) => k,
            // Not an object: left as it is (the action factory refuses it).
            Err(_) => return Ok(text.into()),
        };
        if keys.contains_key("resource_id") {
            return Ok(text.into());
        }
        let r = serde_json::to_string(r).map_err(|e| e.to_string())?;
        let body = text[..text.len() - 1].trim_end();
        Ok(if keys.is_empty() {
            format!("{{\"resource_id\":{r}}}")
        } else {
            format!("{body},\"resource_id\":{r}}}")
        })
    }
}

impl<P: Parameters> PlanInput<P> {
    fn into_request(self) -> Result<PlanRequest, String> {
        let mut ids = std::collections::HashSet::with_capacity(self.solution.len());
        let mut actions = Vec::with_capacity(self.solution.len());
        for a in self.solution {
            if !ids.insert(a.id.clone()) {
                return Err(format!("solution: action id {:?} appears twice", a.id));
            }
            let params = match &a.input_parameters {
                Some(p) => p.to_text(a.resource_id.as_deref())?,
                None => Value::Null.to_text(a.resource_id.as_deref())?,
            };
            actions.push(ActionSpec {
                id: a.id.into(),
                action_type: a.action_type.into(),
                resource_id: a.resource_id.map(RString::from).into(),
                input_parameters_json: params.into(),
            });
        }
        Ok(PlanRequest {
            planner: self.planner,
            config: self.config,
            instance_hosts: self.instance_hosts,
            actions,
        })
    }
}

/// Why a plan request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not valid YAML or JSON, or not of the format (with line and column).
    #[error("{0}")]
    Syntax(String),
    /// Valid, but the solution repeats an id.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a plan request: JSON (the text starts with `{`) without building
/// its actions' values, else YAML.
pub fn read(text: &str) -> Result<PlanRequest, InputError> {
    // A YAML tag serde_yaml_ng would drop silently (`!include`) is refused;
    // JSON has none outside its strings, which the scan skips.
    if let Some(t) = crate::input::find_unknown_tag(text) {
        return Err(InputError::Syntax(format!(
            "line {} column {}: {t}",
            t.line, t.column
        )));
    }
    if text.trim_start().starts_with('{') {
        let input: PlanInput<Box<RawValue>> = serde_json::from_str(text).map_err(|e| {
            // serde_json says column 0 for the start of a line and appends
            // " at line L column C" to its message: one 1-based place.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            InputError::Syntax(format!(
                "line {} column {}: {msg}",
                e.line().max(1),
                e.column().max(1)
            ))
        })?;
        return input.into_request().map_err(InputError::Invalid);
    }
    let input: PlanInput<Value> = serde_yaml_ng::from_str(text)
        .map_err(|e| InputError::Syntax(crate::config::yaml_error_message(&e)))?;
    input.into_request().map_err(InputError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(r: &PlanRequest) -> Vec<&str> {
        r.actions
            .iter()
            .map(|a| a.input_parameters_json.as_str())
            .collect()
    }

    #[test]
    fn json_and_yaml_give_the_same_actions() {
        let json = r#"{"planner": "weight", "solution": [
            {"id": "a", "action_type": "migrate", "resource_id": "r1", "input_parameters": {"source_node": "n1"}},
            {"id": "b", "action_type": "migrate", "resource_id": "r2", "input_parameters": {"resource_id": "own", "x": [1, 2]}},
            {"id": "c", "action_type": "nop", "input_parameters": {}},
            {"id": "d", "action_type": "nop", "resource_id": "r4"},
            {"id": "e", "action_type": "nop", "resource_id": "r5", "input_parameters": {}}
        ]}"#;
        let yaml = "planner: weight\nsolution:\n- {id: a, action_type: migrate, resource_id: r1, input_parameters: {source_node: n1}}\n- {id: b, action_type: migrate, resource_id: r2, input_parameters: {resource_id: own, x: [1, 2]}}\n- {id: c, action_type: nop, input_parameters: {}}\n- {id: d, action_type: nop, resource_id: r4}\n- {id: e, action_type: nop, resource_id: r5, input_parameters: {}}\n";
        let (j, y) = (read(json).expect("json"), read(yaml).expect("yaml"));
        let parsed = |r: &PlanRequest| -> Vec<Value> {
            params(r)
                .iter()
                .map(|t| serde_json::from_str(t).expect("valid JSON"))
                .collect()
        };
        assert_eq!(parsed(&j), parsed(&y));
        assert_eq!(
            parsed(&j),
            vec![
                serde_json::json!({"source_node": "n1", "resource_id": "r1"}),
                serde_json::json!({"resource_id": "own", "x": [1, 2]}),
                serde_json::json!({}),
                serde_json::json!({"resource_id": "r4"}),
                serde_json::json!({"resource_id": "r5"}),
            ]
        );
        // Key order too: resource_id is added last.
        assert_eq!(params(&j)[0], r#"{"source_node": "n1","resource_id":"r1"}"#);
        assert_eq!(params(&y)[0], r#"{"source_node":"n1","resource_id":"r1"}"#);
    }

    #[test]
    fn errors_name_the_place_and_duplicates_are_refused() {
        let e = read("{\"planner\": \"weight\",\n \"solution\": [{\"id\": 1}]}").expect_err("bad");
        assert!(e.to_string().contains("line 2"), "{e}");
        // A control character at the start of a line: serde_json's column 0
        // is reported as column 1, and the place is said once.
        let e = read("{\"planner\": \"\nweight\", \"solution\": []}").expect_err("bad");
        assert!(e.to_string().starts_with("line 2 column 1: "), "{e}");
        assert_eq!(e.to_string().matches("line ").count(), 1, "{e}");
        let e = read("{\"planner\": \"w\", \"solution\": [], \"bogus\": 1}").expect_err("unknown");
        assert!(e.to_string().contains("bogus"), "{e}");
        let dup = r#"{"planner": "w", "solution": [{"id": "a", "action_type": "nop"}, {"id": "a", "action_type": "nop"}]}"#;
        assert!(
            matches!(read(dup), Err(InputError::Invalid(m)) if m.contains("\"a\" appears twice"))
        );
    }
}
