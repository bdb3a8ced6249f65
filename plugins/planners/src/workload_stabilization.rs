//! Watcher's `WorkloadStabilizationPlanner` (reference section 2.3); the
//! host of a resized instance comes from `instance_hosts` in the context.

use crate::{check_keys, ordered_numbers};
use sextant_plugin_api::prelude::*;
use std::collections::HashMap;

pub const DEFAULT_WEIGHTS: &[(&str, f64)] = &[
    ("turn_host_to_acpi_s3_state", 0.0),
    ("resize", 1.0),
    ("migrate", 2.0),
    ("sleep", 3.0),
    ("change_nova_service_state", 4.0),
    ("nop", 5.0),
];

const ACPI: &str = "turn_host_to_acpi_s3_state";

#[derive(Default)]
pub struct WorkloadStabilization;

fn param(a: &Action, key: &str) -> Result<String, PluginError> {
    match &a.input_parameters[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(PluginError::invalid_input(format!(
            "action {} ({}) has no {key}",
            a.id, a.action_type
        ))),
        v => Ok(v.to_string()),
    }
}

impl Planner for WorkloadStabilization {
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        let config = &context["config"];
        check_keys(config, &["weights"], "workload_stabilization")?;
        let weights = match config.get("weights") {
            Some(v) => ordered_numbers(v, "weights")?,
            None => DEFAULT_WEIGHTS
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        };
        let hosts: HashMap<String, String> = context
            .get("instance_hosts")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| PluginError::invalid_input(format!("instance_hosts: {e}")))?
            .unwrap_or_default();
        let mut weighted = Vec::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            let w = weights
                .iter()
                .find(|(t, _)| *t == a.action_type)
                .map(|(_, w)| *w)
                .ok_or_else(|| {
                    PluginError::invalid_input(format!(
                        "action type {} has no weight in the workload_stabilization planner's config",
                        a.action_type
                    ))
                })?;
            weighted.push((w, i));
        }
        // Descending weight, stable (Watcher's sort(reverse=True)).
        weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut order = Vec::with_capacity(actions.len());
        let mut edges = Vec::new();
        let mut parents_of: HashMap<usize, Vec<usize>> = HashMap::new();
        // resource key -> [(action index, action type)]
        let mut ram: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        for &(_, i) in &weighted {
            let a = &actions[i];
            let parents: Vec<usize> = match a.action_type.as_str() {
                "migrate" => {
                    let r = param(a, "resource_id")?;
                    let src = param(a, "source_node")?;
                    ram.entry(r).or_default().push((i, "migrate".into()));
                    ram.entry(src).or_default().push((i, "migrate".into()));
                    vec![]
                }
                "resize" => {
                    let r = param(a, "resource_id")?;
                    let prev: Vec<usize> = ram
                        .get(&r)
                        .map(|v| v.iter().map(|x| x.0).collect())
                        .unwrap_or_default();
                    let host = hosts.get(&r).cloned().ok_or_else(|| {
                        PluginError::invalid_input(format!(
                            "resize {}: the host of instance {r} is unknown (give it in instance_hosts)",
                            a.id
                        ))
                    })?;
                    ram.entry(host).or_default().push((i, "resize".into()));
                    prev
                }
                "change_nova_service_state" => {
                    let r = param(a, "resource_id")?;
                    ram.entry(r).or_default().push((i, a.action_type.clone()));
                    vec![]
                }
                "sleep" | "nop" => vec![],
                ACPI => {
                    let host = param(a, "resource_id")?;
                    let ha = ram.get(&host).cloned().unwrap_or_default();
                    let resizes: Vec<usize> =
                        ha.iter().filter(|x| x.1 == "resize").map(|x| x.0).collect();
                    let migrates: Vec<usize> = ha
                        .iter()
                        .filter(|x| x.1 == "migrate")
                        .map(|x| x.0)
                        .collect();
                    let rmp: Vec<usize> = resizes
                        .iter()
                        .flat_map(|r| parents_of.get(r).cloned().unwrap_or_default())
                        .collect();
                    let mut p = resizes.clone();
                    p.extend(migrates.into_iter().filter(|m| !rmp.contains(m)));
                    p
                }
                other => {
                    return Err(PluginError::unsupported(format!(
                        "action type {other} is not supported by the workload_stabilization planner"
                    )));
                }
            };
            order.push(i);
            for &p in &parents {
                edges.push((p, i));
            }
            parents_of.insert(i, parents);
        }
        Ok(Schedule {
            order,
            edges,
            extra: Value::Null,
        })
    }
}
