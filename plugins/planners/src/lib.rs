//! `sextant_planners`: Watcher 17.0.0's three planners, reproduced exactly
//! (reference section 2; vectors W*, S*, N*), with three deliberate
//! differences: `workload_stabilization` reads an instance's host from the
//! context's `instance_hosts` instead of calling a cloud API; weights are
//! numbers, never strings; a planner error is an error (the host stores no
//! plan), naming the action type at fault.
//!
//! A planner receives the solution's actions in solution order and returns
//! the order in which the plan creates them and the DAG's edges, in the
//! order Watcher appends parents.

mod alternatives;
mod node_resource_consolidation;
mod rules;
mod weight;
mod workload_stabilization;

use sextant_plugin_api::prelude::*;
use std::borrow::Cow;

/// One parameter of an action as a planner reads it: a string borrowed
/// from the parameters' JSON text where it has no escapes, anything else
/// parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// Any other JSON value, `null` included.
    Other(Box<Value>),
}

impl<'a> Param<'a> {
    /// The parameter as a key to relate actions by: a string as itself,
    /// `null` as none, any other value as its JSON text.
    pub(crate) fn key(&self) -> Option<Cow<'a, str>> {
        match self {
            Param::Str(s) => Some(s.clone()),
            Param::Other(v) if v.is_null() => None,
            Param::Other(v) => Some(Cow::Owned(v.to_string())),
        }
    }

    /// Whether the parameter equals `v`.
    pub(crate) fn equals(&self, v: &Value) -> bool {
        match self {
            Param::Str(s) => v.as_str() == Some(s),
            Param::Other(x) => **x == *v,
        }
    }

    /// The parameter as a value (for a parsed action).
    fn of_value(v: &Value) -> Param<'static> {
        match v {
            Value::String(s) => Param::Str(Cow::Owned(s.clone())),
            v => Param::Other(Box::new(v.clone())),
        }
    }
}

/// [`pick`] for an action already parsed: the values of `keys` in its
/// parameters (None when absent).
pub(crate) fn pick_parsed<K: AsRef<str>>(
    params: &Value,
    keys: impl IntoIterator<Item = K>,
) -> Vec<Option<Param<'static>>> {
    keys.into_iter()
        .map(|k| params.get(k.as_ref()).map(Param::of_value))
        .collect()
}

/// A JSON string borrowed from the text it was read from unless it has
/// escapes (serde's own `Cow` copies inside maps).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl std::borrow::Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// The values of some keys of an action's parameters, read from their JSON
/// text with every other key skipped unbuilt: `values[i]` is the value of
/// `keys[i]` (None when absent; the last one when a key repeats, as a parsed
/// object keeps). Strings are borrowed from `json` where they can be.
/// Planners that read a few parameters of many actions use it instead of
/// parsing every parameter.
pub(crate) fn pick<'a>(
    json: &'a str,
    keys: &[&str],
) -> Result<Vec<Option<Param<'a>>>, PluginError> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use serde_json::value::RawValue;
    struct Pick<'k>(&'k [&'k str]);
    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = Vec<Option<Param<'de>>>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Vec<Option<Param<'de>>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the parameters: an object, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(vec![None; self.0.len()])
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let mut out = vec![None; self.0.len()];
            while let Some(Text(k)) = m.next_key::<Text<'de>>()? {
                match self.0.iter().position(|x| *x == k) {
                    Some(i) => {
                        let raw: &'de RawValue = m.next_value()?;
                        let text = raw.get();
                        out[i] = Some(if text.starts_with('"') {
                            match serde_json::from_str::<&'de str>(text) {
                                Ok(s) => Param::Str(Cow::Borrowed(s)),
                                // Escapes: the string must be built.
                                Err(_) => Param::Str(Cow::Owned(
                                    serde_json::from_str::<String>(text)
                                        .map_err(A::Error::custom)?,
                                )),
                            }
                        } else {
                            Param::Other(Box::new(
                                serde_json::from_str(text).map_err(A::Error::custom)?,
                            ))
                        });
                    }
                    None => {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    if json.trim().is_empty() {
        return Ok(vec![None; keys.len()]);
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let v = Pick(keys)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            PluginError::invalid_input(format!("input_parameters is not valid JSON: {e}"))
        })?;
    Ok(v)
}

/// Reads an ordered `{name: number}` mapping from the planner config.
pub(crate) fn ordered_numbers(v: &Value, what: &str) -> Result<Vec<(String, f64)>, PluginError> {
    let Some(m) = v.as_object() else {
        return Err(PluginError::invalid_input(format!(
            "{what} must be a mapping of action type to number"
        )));
    };
    m.iter()
        .map(|(k, x)| {
            x.as_f64().map(|n| (k.clone(), n)).ok_or_else(|| {
                PluginError::invalid_input(format!("{what}.{k} must be a number, not {x}"))
            })
        })
        .collect()
}

/// Refuses config keys a planner does not know.
pub(crate) fn check_keys(config: &Value, known: &[&str], planner: &str) -> Result<(), PluginError> {
    if let Some(m) = config.as_object() {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                return Err(PluginError::invalid_input(format!(
                    "planner {planner} has no setting {k:?} (known: {})",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_reads_the_keys_asked_for_and_skips_the_rest() {
        let got = pick(
            r#"{"a": {"deep": [1, {"x": "y"}]}, "resource_id": "vm\"1", "n": 3, "n": 4, "z": null}"#,
            &["resource_id", "n", "missing", "z"],
        )
        .expect("valid");
        assert_eq!(
            got,
            [
                Some(Param::Str(Cow::Owned("vm\"1".into()))),
                Some(Param::Other(Box::new(json!(4)))),
                None,
                Some(Param::Other(Box::new(Value::Null)))
            ]
        );
        // Strings without escapes are borrowed from the text.
        let got = pick(r#"{"resource_id": "vm-1"}"#, &["resource_id"]).expect("valid");
        assert!(matches!(&got[0], Some(Param::Str(Cow::Borrowed("vm-1")))));
        assert_eq!(
            got[0].as_ref().and_then(Param::key).as_deref(),
            Some("vm-1")
        );
        let got = pick(r#"{"a": null, "b": [1, 2], "c": "x"}"#, &["a", "b", "c"]).expect("valid");
        assert_eq!(got[0].as_ref().and_then(Param::key), None);
        assert_eq!(
            got[1].as_ref().and_then(Param::key).as_deref(),
            Some("[1,2]")
        );
        assert!(got[1].as_ref().is_some_and(|p| p.equals(&json!([1, 2]))));
        assert!(got[2].as_ref().is_some_and(|p| p.equals(&json!("x"))));
        assert!(!got[2].as_ref().is_some_and(|p| p.equals(&json!(["x"]))));
        assert_eq!(pick("", &["a"]).expect("none"), [None]);
        assert_eq!(pick("null", &["a"]).expect("null"), [None]);
        assert!(pick(r#"{"a": 1"#, &["a"]).is_err());
        assert!(pick(r#"{"a": 1} x"#, &["a"]).is_err());
        assert!(pick("[1]", &["a"]).is_err());
    }

    /// A mix of every action type the planners know, on a few instances and
    /// hosts, with parameters they do not read.
    fn mix() -> (Vec<Action>, Value) {
        let mut actions = Vec::new();
        let mut hosts = serde_json::Map::new();
        for i in 0..60 {
            let vm = format!("vm{}", i % 7);
            let h = format!("h{}", i % 4);
            hosts.insert(vm.clone(), json!(h));
            let (t, p) = match i % 6 {
                0 => (
                    "migrate",
                    json!({"resource_id": vm, "source_node": h, "destination_node": "h9", "migration_type": "live", "extra": {"deep": [1, 2]}}),
                ),
                1 => ("resize", json!({"resource_id": vm, "flavor": "m1.large"})),
                2 => (
                    "change_nova_service_state",
                    json!({"resource_id": format!("n{}", i % 4), "resource_name": h, "state": if i % 12 == 2 { "disabled" } else { "enabled" }}),
                ),
                3 => ("turn_host_to_acpi_s3_state", json!({"resource_id": h})),
                4 => ("nop", json!({"message": "x"})),
                _ => ("sleep", json!({"duration": 1})),
            };
            actions.push(Action {
                id: format!("a{i}"),
                action_type: t.into(),
                resource_id: None,
                input_parameters: p,
            });
        }
        let policy: Value = serde_yaml_ng::from_str(include_str!("../../../policies/default.yaml"))
            .expect("the default policy parses");
        let context = json!({
            "config": {"rules": policy["rules"], "limits": [{"action_type": "migrate", "max": 2}]},
            "instance_hosts": hosts,
            "durations": {"migrate": 60.0, "resize": 30.0, "change_nova_service_state": 1.0},
        });
        (actions, context)
    }

    fn refs(actions: &[Action], texts: &[String]) -> Vec<ActionRef<'static>> {
        actions
            .iter()
            .zip(texts)
            .map(|(a, t)| ActionRef {
                id: Box::leak(a.id.clone().into_boxed_str()),
                action_type: Box::leak(a.action_type.clone().into_boxed_str()),
                resource_id: None,
                input_parameters_json: Box::leak(t.clone().into_boxed_str()),
            })
            .collect()
    }

    #[test]
    fn planners_that_read_parameters_from_text_plan_as_from_parsed_actions() {
        let (actions, context) = mix();
        let texts: Vec<String> = actions
            .iter()
            .map(|a| a.input_parameters.to_string())
            .collect();
        let r = refs(&actions, &texts);
        let ws_context = json!({"instance_hosts": context["instance_hosts"]});
        let ws = workload_stabilization::WorkloadStabilization;
        let from_text = ws.schedule_refs(&r, &ws_context.to_string()).expect("ws");
        assert_eq!(
            from_text,
            ws.schedule(actions.clone(), ws_context).expect("ws")
        );
        assert!(!from_text.edges.is_empty());
        // node_resource_consolidation, on what it accepts of the mix (and
        // a migration whose source node is not a string).
        let mut nrc_actions: Vec<Action> = actions
            .iter()
            .filter(|a| {
                matches!(
                    a.action_type.as_str(),
                    "migrate" | "change_nova_service_state"
                )
            })
            .cloned()
            .collect();
        nrc_actions[0].input_parameters["source_node"] = json!({"odd": ["h1"]});
        let nrc_texts: Vec<String> = nrc_actions
            .iter()
            .map(|a| a.input_parameters.to_string())
            .collect();
        let nrc = node_resource_consolidation::NodeResourceConsolidation;
        let from_text = nrc
            .schedule_refs(&refs(&nrc_actions, &nrc_texts), "{}")
            .expect("nrc");
        assert_eq!(
            from_text,
            nrc.schedule(nrc_actions.clone(), json!({})).expect("nrc")
        );
        assert!(!from_text.edges.is_empty());
        let rules = rules::Rules;
        let from_text = rules
            .schedule_refs(&r, &context.to_string())
            .expect("rules");
        assert_eq!(
            from_text,
            rules.schedule(actions.clone(), context).expect("rules")
        );
        assert!(!from_text.edges.is_empty());
        // The estimated durations reach the priorities through the text
        // path (they once did not: only the config was read).
        let first = from_text.order[0];
        assert!(
            from_text.extra["priorities"][first].as_f64().unwrap_or(0.0) >= 60.0,
            "{}",
            from_text.extra["priorities"]
        );
    }
}

export_plugin! {
    planner weight::Weight = Entry::new("weight", "17.0.0")
        .display_name("en", "Weight planner")
        .description("Watcher's default planner: actions grouped by action type in descending weight, each group cut into chunks of `parallelization` actions; every chunk waits for the whole chunk before it.")
        .parameters(r#"{"type":"object","properties":{
            "weights":{"type":"object","additionalProperties":{"type":"number"}},
            "parallelization":{"type":"object","additionalProperties":{"type":"number","minimum":0}}},
            "additionalProperties":false}"#),
    planner workload_stabilization::WorkloadStabilization = Entry::new("workload_stabilization", "17.0.0")
        .display_name("en", "Workload stabilization planner")
        .description("Watcher's workload_stabilization planner: almost no dependencies; a resize waits for earlier actions on its instance, a host's power-down for the resizes and migrations on it.")
        .parameters(r#"{"type":"object","properties":{
            "weights":{"type":"object","additionalProperties":{"type":"number"}}},
            "additionalProperties":false}"#),
    structured_planner rules::Rules = Entry::new("rules", "1.0.0")
        .display_name("en", "Rules planner")
        .description("Sextant's planner: an edge only where a rule of the policy or a resource relation justifies it; concurrency limits become the applier's pools; the critical path first. Through planners.v2, alternatives made from the strategy's candidates that are safe where they could run, and evacuation flows.")
        .parameters(r#"{"type":"object","properties":{
            "weights":{"type":"object","additionalProperties":{"type":"number"}},
            "parallelization":{"type":"object"},
            "rules":{"type":"array"},
            "limits":{"type":"array"},
            "alternatives":{"type":"object","properties":{
                "per_action":{"type":"integer","minimum":0,"maximum":5},
                "evacuation_flows":{"enum":["continue","stop","rollback"]}},
                "additionalProperties":false}},
            "additionalProperties":false}"#),
    planner node_resource_consolidation::NodeResourceConsolidation = Entry::new("node_resource_consolidation", "17.0.0")
        .display_name("en", "Node resource consolidation planner")
        .description("Watcher's node_resource_consolidation planner: service disables first, one migration chain per source host, enables last.")
        .parameters(r#"{"type":"object","additionalProperties":false}"#),
}
