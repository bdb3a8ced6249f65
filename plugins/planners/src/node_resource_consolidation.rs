//! Watcher's `NodeResourceConsolidationPlanner` (reference section 2.4).

use crate::{Param, check_keys};
use sextant_plugin_api::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Default)]
pub struct NodeResourceConsolidation;

impl Planner for NodeResourceConsolidation {
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        check_keys(&context["config"], &[], "node_resource_consolidation")?;
        let items: Vec<Item<'_>> = actions
            .iter()
            .map(|a| Item {
                action_type: &a.action_type,
                params: crate::pick_parsed(&a.input_parameters, KEYS),
            })
            .collect();
        plan(&items)
    }

    /// Reads only `state` and `source_node` of each action, and of the
    /// context only its config.
    fn schedule_refs(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<Schedule, PluginError> {
        let context = sextant_plugin_api::sdk::planner_config_only(context_json)?;
        check_keys(&context["config"], &[], "node_resource_consolidation")?;
        let items = actions
            .iter()
            .map(|a| {
                Ok(Item {
                    action_type: a.action_type,
                    params: crate::pick(a.input_parameters_json, &KEYS)?,
                })
            })
            .collect::<Result<Vec<_>, PluginError>>()?;
        plan(&items)
    }
}

/// What the planner reads of an action: its type and two parameters.
struct Item<'a> {
    action_type: &'a str,
    /// `state`, then `source_node`.
    params: Vec<Option<Param<'a>>>,
}

const KEYS: [&str; 2] = ["state", "source_node"];

/// Watcher's algorithm.
fn plan(actions: &[Item<'_>]) -> Result<Schedule, PluginError> {
    let mut disabled = Vec::new();
    let mut enabled = Vec::new();
    // source node -> its migrations; nodes in first-seen order.
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: HashMap<Cow<'_, str>, usize> = HashMap::new();
    for (i, a) in actions.iter().enumerate() {
        match a.action_type {
            "change_nova_service_state" => {
                let disabling = a.params[0]
                    .as_ref()
                    .is_some_and(|p| p.equals(&Value::from("disabled")));
                if disabling {
                    disabled.push(i);
                } else {
                    enabled.push(i);
                }
            }
            "migrate" => {
                // An absent or null source node is one node, "" (as
                // Watcher's `input.get('source_node')` is None for all).
                let src = a.params[1]
                    .as_ref()
                    .and_then(Param::key)
                    .unwrap_or_default();
                let next = chains.len();
                let c = *chain_of.entry(src).or_insert(next);
                if c == next {
                    chains.push(Vec::new());
                }
                chains[c].push(i);
            }
            other => {
                return Err(PluginError::unsupported(format!(
                    "action type {other} is not supported by the node_resource_consolidation planner"
                )));
            }
        }
    }
    drop(chain_of);
    let migrations: usize = chains.iter().map(Vec::len).sum();
    let mut order = Vec::with_capacity(actions.len());
    let mut edges =
        Vec::with_capacity(migrations * (disabled.len() + 1) + enabled.len() * chains.len());
    order.extend(&disabled);
    let mut enabled_parents = Vec::new();
    for acts in &chains {
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
