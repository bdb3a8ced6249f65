//! Watcher's `WeightPlanner` (reference section 2.2).

use crate::{check_keys, ordered_numbers};
use sextant_plugin_api::prelude::*;
use std::collections::BTreeMap;

pub const DEFAULT_WEIGHTS: &[(&str, f64)] = &[
    ("nop", 70.0),
    ("volume_migrate", 60.0),
    ("change_nova_service_state", 50.0),
    ("sleep", 40.0),
    ("shelve", 37.0),
    ("stop", 35.0),
    ("delete", 33.0),
    ("migrate", 30.0),
    ("resize", 20.0),
    ("turn_host_to_acpi_s3_state", 10.0),
    ("change_node_power_state", 9.0),
];

pub const DEFAULT_PARALLELIZATION: &[(&str, f64)] = &[
    ("turn_host_to_acpi_s3_state", 2.0),
    ("resize", 2.0),
    ("stop", 2.0),
    ("delete", 2.0),
    ("shelve", 2.0),
    ("migrate", 2.0),
    ("sleep", 1.0),
    ("change_nova_service_state", 1.0),
    ("nop", 1.0),
    ("change_node_power_state", 2.0),
    ("volume_migrate", 2.0),
];

fn owned(d: &[(&str, f64)]) -> Vec<(String, f64)> {
    d.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Weights as a total order key (weights are numbers here, so 9 < 70).
fn key(w: f64) -> i64 {
    (w * 1_000_000.0).round() as i64
}

#[derive(Default)]
pub struct Weight;

impl Planner for Weight {
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        let types: Vec<&str> = actions.iter().map(|a| a.action_type.as_str()).collect();
        schedule_types(&types, &context["config"])
    }

    /// Only action types and the config are read: parameters are checked,
    /// not built, and the context's other keys are not built either.
    fn schedule_refs(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<Schedule, PluginError> {
        for a in actions {
            a.check_input_parameters()?;
        }
        let context = sextant_plugin_api::sdk::planner_config_only(context_json)?;
        let types: Vec<&str> = actions.iter().map(|a| a.action_type).collect();
        schedule_types(&types, &context["config"])
    }
}

/// Watcher's weight planner over the solution's action types.
fn schedule_types(types: &[&str], config: &Value) -> Result<Schedule, PluginError> {
    check_keys(config, &["weights", "parallelization"], "weight")?;
    let weights = match config.get("weights") {
        Some(v) => ordered_numbers(v, "weights")?,
        None => owned(DEFAULT_WEIGHTS),
    };
    let parallelization = match config.get("parallelization") {
        Some(v) => ordered_numbers(v, "parallelization")?,
        None => owned(DEFAULT_PARALLELIZATION),
    };
    // Groups by weight, in solution order within a group.
    let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &a) in types.iter().enumerate() {
        let w = weights
            .iter()
            .find(|(t, _)| t == a)
            .map(|(_, w)| *w)
            .ok_or_else(|| {
                PluginError::invalid_input(format!(
                    "action type {a} has no weight in the weight planner's config"
                ))
            })?;
        groups.entry(key(w)).or_default().push(i);
    }
    // A weight maps back to the last action type that has it.
    let reverse = |k: i64| {
        weights
            .iter()
            .rev()
            .find(|(_, w)| key(*w) == k)
            .map(|(t, _)| t.clone())
    };
    let mut order = Vec::with_capacity(types.len());
    let mut edges = Vec::new();
    let mut leaf: Vec<usize> = Vec::new();
    for (idx, (k, members)) in groups.iter().rev().enumerate() {
        let t = reverse(*k).unwrap_or_default();
        let n = parallelization
            .iter()
            .find(|(p, _)| *p == t)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                PluginError::invalid_input(format!(
                    "action type {t} has no parallelization in the weight planner's config"
                ))
            })?;
        let n = (n.trunc() as i64).max(1) as usize;
        for (cidx, chunk) in members.chunks(n).enumerate() {
            for &a in chunk {
                order.push(a);
                if !(idx == 0 && cidx == 0) {
                    for &p in &leaf {
                        edges.push((p, a));
                    }
                }
            }
            leaf = chunk.to_vec();
        }
    }
    Ok(Schedule {
        order,
        edges,
        extra: Value::Null,
    })
}
