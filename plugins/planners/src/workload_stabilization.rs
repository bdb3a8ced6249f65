//! Watcher's `WorkloadStabilizationPlanner` (reference section 2.3); the
//! host of a resized instance comes from `instance_hosts` in the context.

use crate::{Param, Text, check_keys, ordered_numbers};
use sextant_plugin_api::prelude::*;
use std::borrow::Cow;
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

/// What the planner reads of an action: its type and two parameters.
struct Item<'a> {
    id: &'a str,
    action_type: &'a str,
    /// `resource_id`, then `source_node`.
    params: Vec<Option<Param<'a>>>,
}

const KEYS: [&str; 2] = ["resource_id", "source_node"];

fn param<'a>(a: &Item<'a>, key: usize) -> Result<Cow<'a, str>, PluginError> {
    a.params
        .get(key)
        .and_then(Option::as_ref)
        .and_then(Param::key)
        .ok_or_else(|| {
            PluginError::invalid_input(format!(
                "action {} ({}) has no {}",
                a.id, a.action_type, KEYS[key]
            ))
        })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Migrate,
    Resize,
    Other,
}

impl Planner for WorkloadStabilization {
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        let hosts: HashMap<String, String> = context
            .get("instance_hosts")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| PluginError::invalid_input(format!("instance_hosts: {e}")))?
            .unwrap_or_default();
        let items: Vec<Item<'_>> = actions
            .iter()
            .map(|a| Item {
                id: &a.id,
                action_type: &a.action_type,
                params: crate::pick_parsed(&a.input_parameters, KEYS),
            })
            .collect();
        plan(&items, &context["config"], |i| {
            hosts.get(i).map(String::as_str)
        })
    }

    /// Reads only the two parameters it uses of each action, and of the
    /// context only its config and `instance_hosts`.
    fn schedule_refs(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<Schedule, PluginError> {
        #[derive(serde::Deserialize)]
        struct Context<'c> {
            #[serde(default)]
            config: Value,
            #[serde(default, borrow)]
            instance_hosts: Option<HashMap<Text<'c>, Text<'c>>>,
        }
        let context: Context = serde_json::from_str(context_json)
            .map_err(|e| PluginError::invalid_input(format!("the planner context: {e}")))?;
        let items = actions
            .iter()
            .map(|a| {
                Ok(Item {
                    id: a.id,
                    action_type: a.action_type,
                    params: crate::pick(a.input_parameters_json, &KEYS)?,
                })
            })
            .collect::<Result<Vec<_>, PluginError>>()?;
        let hosts = context.instance_hosts.unwrap_or_default();
        plan(&items, &context.config, |i| hosts.get(i).map(|h| &*h.0))
    }
}

/// Watcher's algorithm; `host_of` gives an instance's host.
fn plan<'a>(
    actions: &[Item<'a>],
    config: &Value,
    host_of: impl Fn(&str) -> Option<&'a str>,
) -> Result<Schedule, PluginError> {
    check_keys(config, &["weights"], "workload_stabilization")?;
    let weights = match config.get("weights") {
        Some(v) => ordered_numbers(v, "weights")?,
        None => DEFAULT_WEIGHTS
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    };
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
    let mut parents_of: Vec<Vec<usize>> = vec![Vec::new(); actions.len()];
    // resource key -> [(action index, its kind)]
    let mut ram: HashMap<Cow<'a, str>, Vec<(usize, Kind)>> = HashMap::new();
    for &(_, i) in &weighted {
        let a = &actions[i];
        let parents: Vec<usize> = match a.action_type {
            "migrate" => {
                let r = param(a, 0)?;
                let src = param(a, 1)?;
                ram.entry(r).or_default().push((i, Kind::Migrate));
                ram.entry(src).or_default().push((i, Kind::Migrate));
                vec![]
            }
            "resize" => {
                let r = param(a, 0)?;
                let prev: Vec<usize> = ram
                    .get(&r)
                    .map(|v| v.iter().map(|x| x.0).collect())
                    .unwrap_or_default();
                let host = host_of(&r).ok_or_else(|| {
                    PluginError::invalid_input(format!(
                        "resize {}: the host of instance {r} is unknown (give it in instance_hosts)",
                        a.id
                    ))
                })?;
                ram.entry(Cow::Borrowed(host))
                    .or_default()
                    .push((i, Kind::Resize));
                prev
            }
            "change_nova_service_state" => {
                let r = param(a, 0)?;
                ram.entry(r).or_default().push((i, Kind::Other));
                vec![]
            }
            "sleep" | "nop" => vec![],
            ACPI => {
                let host = param(a, 0)?;
                let ha = ram.get(&host).map(Vec::as_slice).unwrap_or(&[]);
                let resizes: Vec<usize> = ha
                    .iter()
                    .filter(|x| x.1 == Kind::Resize)
                    .map(|x| x.0)
                    .collect();
                let rmp: Vec<usize> = resizes
                    .iter()
                    .flat_map(|&r| parents_of[r].iter().copied())
                    .collect();
                let mut p = resizes.clone();
                p.extend(
                    ha.iter()
                        .filter(|x| x.1 == Kind::Migrate)
                        .map(|x| x.0)
                        .filter(|m| !rmp.contains(m)),
                );
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
        parents_of[i] = parents;
    }
    Ok(Schedule {
        order,
        edges,
        extra: Value::Null,
    })
}
