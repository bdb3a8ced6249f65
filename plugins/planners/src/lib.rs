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

mod node_resource_consolidation;
mod rules;
mod weight;
mod workload_stabilization;

use sextant_plugin_api::prelude::*;

/// The values of some keys of an action's parameters, read from their JSON
/// text with every other key skipped unbuilt: `values[i]` is the value of
/// `keys[i]` (None when absent; the last one when a key repeats, as a parsed
/// object keeps). Planners that read a few parameters of many actions use
/// it instead of parsing every parameter.
pub(crate) fn pick(json: &str, keys: &[&str]) -> Result<Vec<Option<Value>>, PluginError> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    struct Pick<'k>(&'k [&'k str]);
    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = Vec<Option<Value>>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Vec<Option<Value>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the parameters: an object, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(vec![None; self.0.len()])
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = vec![None; self.0.len()];
            while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                match self.0.iter().position(|x| *x == k) {
                    Some(i) => out[i] = Some(m.next_value::<Value>()?),
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
                Some(json!("vm\"1")),
                Some(json!(4)),
                None,
                Some(Value::Null)
            ]
        );
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
    planner rules::Rules = Entry::new("rules", "1.0.0")
        .display_name("en", "Rules planner")
        .description("Sextant's planner: an edge only where a rule of the policy or a resource relation justifies it; concurrency limits become the applier's pools; the critical path first.")
        .parameters(r#"{"type":"object","properties":{
            "weights":{"type":"object","additionalProperties":{"type":"number"}},
            "parallelization":{"type":"object"},
            "rules":{"type":"array"},
            "limits":{"type":"array"}},
            "additionalProperties":false}"#),
    planner node_resource_consolidation::NodeResourceConsolidation = Entry::new("node_resource_consolidation", "17.0.0")
        .display_name("en", "Node resource consolidation planner")
        .description("Watcher's node_resource_consolidation planner: service disables first, one migration chain per source host, enables last.")
        .parameters(r#"{"type":"object","additionalProperties":false}"#),
}
