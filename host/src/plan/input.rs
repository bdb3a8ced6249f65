//! The input of `sextant plan --input FILE`: the format of Watcher's
//! planner vectors (`planner`, `config`, `solution`, `instance_hosts`).
//!
//! A JSON file is read without building a `Value` of its actions: each
//! action's parameters stay the JSON text they were in the file
//! (`RawValue`), which is what the planner receives and the store keeps.
//! YAML is parsed as a document. Either way, the actions come out as
//! [`ActionSpec`]s, `resource_id` moved into the parameters.

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

/// What the top level of a JSON object holds, as `to_text` needs it.
struct TopLevelKeys {
    /// A `resource_id` key.
    resource_id: bool,
    /// No key at all.
    none: bool,
}

/// The top-level keys of `text` (valid JSON, as a `RawValue` holds it) if
/// it is an object, read without building a key or a value (a map of raw
/// values cost an allocation per key, a third of reading a plan input of
/// 100,000 actions).
fn top_level_keys(text: &str) -> Option<TopLevelKeys> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    // A key that reads `resource_id` has those bytes, or an escape: without
    // either, nothing needs parsing.
    if !inner.contains("resource_id") && !inner.contains('\\') {
        return Some(TopLevelKeys {
            resource_id: false,
            none: inner.trim().is_empty(),
        });
    }
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// A key: whether it is `resource_id`.
    struct IsResourceId;
    impl<'de> DeserializeSeed<'de> for IsResourceId {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl Visitor<'_> for IsResourceId {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
            Ok(key == "resource_id")
        }
    }
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = TopLevelKeys;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevelKeys, A::Error> {
            let mut keys = TopLevelKeys {
                resource_id: false,
                none: true,
            };
            while let Some(is_resource_id) = map.next_key_seed(IsResourceId)? {
                keys.none = false;
                keys.resource_id |= is_resource_id;
                map.next_value::<IgnoredAny>()?;
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let keys = de.deserialize_map(Keys).ok()?;
    de.end().ok()?;
    Some(keys)
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
        let Some(keys) = top_level_keys(text) else {
            // Not an object: left as it is (the action factory refuses it).
            return Ok(text.into());
        };
        if keys.resource_id {
            return Ok(text.into());
        }
        // The object with `"resource_id":R` added last, written into one
        // buffer.
        let body = if keys.none {
            "{"
        } else {
            text[..text.len() - 1].trim_end()
        };
        let mut out = Vec::with_capacity(body.len() + r.len() + 20);
        out.extend_from_slice(body.as_bytes());
        if !keys.none {
            out.push(b',');
        }
        out.extend_from_slice(b"\"resource_id\":");
        serde_json::to_writer(&mut out, r).map_err(|e| e.to_string())?;
        out.push(b'}');
        String::from_utf8(out).map_err(|e| e.to_string())
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
            actions.push(ActionSpec::new(a.id, a.action_type, a.resource_id, params));
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
    fn only_a_top_level_resource_id_key_counts_however_it_is_spelt() {
        let text = |params: &str| {
            let json = format!(
                r#"{{"planner": "weight", "solution": [{{"id": "a", "action_type": "nop", "resource_id": "r", "input_parameters": {params}}}]}}"#
            );
            let r = read(&json).expect("json");
            params_of(&r)
        };
        fn params_of(r: &PlanRequest) -> String {
            r.actions[0].input_parameters_json.to_string()
        }
        // Nested: not the action's own; the resource id is added.
        assert_eq!(
            text(r#"{"x": {"resource_id": 1}}"#),
            r#"{"x": {"resource_id": 1},"resource_id":"r"}"#
        );
        // Escaped: the same key; left as it is.
        assert_eq!(
            text(r#"{"resource_id": "own"}"#),
            r#"{"resource_id": "own"}"#
        );
        // Named in a value only: added.
        assert_eq!(
            text(r#"{"note": "resource_id"}"#),
            r#"{"note": "resource_id","resource_id":"r"}"#
        );
        assert_eq!(text(r#"{"a": 1 }"#), r#"{"a": 1,"resource_id":"r"}"#);
        // Not an object: left for the action factory to refuse.
        assert_eq!(text("[1, 2]"), "[1, 2]");
        assert_eq!(text(" {} "), r#"{"resource_id":"r"}"#);
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
