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
