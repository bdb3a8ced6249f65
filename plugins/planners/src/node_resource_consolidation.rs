//! Watcher's `NodeResourceConsolidationPlanner` (reference section 2.4).

use crate::check_keys;
use sextant_plugin_api::prelude::*;

#[derive(Default)]
pub struct NodeResourceConsolidation;

impl Planner for NodeResourceConsolidation {
    const READS_ONLY_CONFIG: bool = true;

    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        check_keys(&context["config"], &[], "node_resource_consolidation")?;
        let mut disabled = Vec::new();
        let mut enabled = Vec::new();
        // source node -> its migrations, in first-seen order of the nodes.
        let mut mig: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, a) in actions.iter().enumerate() {
            match a.action_type.as_str() {
                "change_nova_service_state" => {
                    if a.input_parameters["state"] == "disabled" {
                        disabled.push(i);
                    } else {
                        enabled.push(i);
                    }
                }
                "migrate" => {
                    let src = match &a.input_parameters["source_node"] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    match mig.iter_mut().find(|(s, _)| *s == src) {
                        Some((_, v)) => v.push(i),
                        None => mig.push((src, vec![i])),
                    }
                }
                other => {
                    return Err(PluginError::unsupported(format!(
                        "action type {other} is not supported by the node_resource_consolidation planner"
                    )));
                }
            }
        }
        let mut order = Vec::with_capacity(actions.len());
        let mut edges = Vec::new();
        order.extend(&disabled);
        let mut enabled_parents = Vec::new();
        for (_, acts) in &mig {
            if let Some(last) = acts.last() {
                enabled_parents.push(*last);
            }
            let mut prev: Option<usize> = None;
            for &a in acts {
                for &d in &disabled {
                    edges.push((d, a));
                }
                if let Some(p) = prev {
                    edges.push((p, a));
                }
                prev = Some(a);
                order.push(a);
            }
        }
        for &e in &enabled {
            for &p in &enabled_parents {
                edges.push((p, e));
            }
            order.push(e);
        }
        Ok(Schedule {
            order,
            edges,
            extra: Value::Null,
        })
    }
}
