//! Planning: a solution's actions, a planner plugin, and the DAG it returns,
//! checked before anyone relies on it.
//!
//! Invariants: a planner's output is accepted only if it places every action
//! it was given exactly once, names no other, and is acyclic (petgraph); a
//! planner error leaves nothing behind.

use crate::plugins::{PluginCallError, PluginRegistry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sextant_plugin_api::sdk::Action;
use std::collections::BTreeMap;

pub mod makespan;

/// Why a solution could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The planner refused the solution (an action type it cannot place,
    /// bad config): bad input.
    #[error("planner {planner}: {message}")]
    Refused {
        /// The planner.
        planner: String,
        /// Its message, naming the action type at fault.
        message: String,
    },
    /// The planner's output is not a valid plan.
    #[error("planner {planner} returned an invalid plan: {message}")]
    InvalidOutput {
        /// The planner.
        planner: String,
        /// What is wrong.
        message: String,
    },
    /// The planner could not be called.
    #[error("planner {planner}: {error}")]
    Call {
        /// The planner.
        planner: String,
        /// The call's error.
        error: Box<PluginCallError>,
    },
}

/// One planned action: its solution id, its type, and its parents' ids in
/// the order the planner gave them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedAction {
    /// The solution's id for it.
    pub id: String,
    /// Its action type.
    pub action_type: String,
    /// Ids of the actions it waits for.
    pub parents: Vec<String>,
    /// Index in the solution.
    #[serde(skip)]
    pub index: usize,
}

/// A planned solution, actions in creation order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedSolution {
    /// `RECOMMENDED`, or `SUCCEEDED` for an empty solution (as Watcher).
    pub action_plan_state: String,
    /// The actions in the order the plan creates them.
    pub actions: Vec<PlannedAction>,
    /// What else the planner said (pools, priorities).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extra: Value,
}

/// Estimated durations (seconds) of the registered action types, for
/// planners that weigh the critical path.
pub fn durations(types: &crate::action_types::ActionTypeRegistry) -> BTreeMap<String, f64> {
    let mut d = BTreeMap::new();
    for t in types.all() {
        // The latest version wins: all() yields versions in ascending order.
        d.insert(t.name.clone(), t.estimated_duration.as_secs_f64());
    }
    d
}

/// Moves `resource_id` into `input_parameters`, as Watcher's solution does
/// before planning.
pub fn with_resource_id_in_parameters(mut a: Action) -> Action {
    if let Some(r) = &a.resource_id {
        if a.input_parameters.is_null() {
            a.input_parameters = json!({});
        }
        if let Value::Object(m) = &mut a.input_parameters {
            m.entry("resource_id")
                .or_insert_with(|| Value::String(r.clone()));
        }
    }
    a
}

/// Plans `actions` with `planner`: calls the plugin, then checks its output.
pub fn plan(
    plugins: &PluginRegistry,
    planner: &str,
    config: &Value,
    instance_hosts: &BTreeMap<String, String>,
    durations: &BTreeMap<String, f64>,
    actions: &[Action],
) -> Result<PlannedSolution, PlanError> {
    let context = json!({
        "config": if config.is_null() { json!({}) } else { config.clone() },
        "instance_hosts": instance_hosts,
        "durations": durations,
    });
    let schedule = plugins
        .schedule(planner, actions, &context)
        .map_err(|error| match error.kind() {
            Some(
                sextant_plugin_api::ErrorKind::INVALID_INPUT
                | sextant_plugin_api::ErrorKind::UNSUPPORTED,
            ) => PlanError::Refused {
                planner: planner.into(),
                message: match &error {
                    PluginCallError::Plugin { message, .. } => message.clone(),
                    e => e.to_string(),
                },
            },
            _ => PlanError::Call {
                planner: planner.into(),
                error: Box::new(error),
            },
        })?;
    check(planner, actions, &schedule.order, &schedule.edges)?;
    let mut parents: Vec<Vec<String>> = vec![Vec::new(); actions.len()];
    for &(p, c) in &schedule.edges {
        parents[c].push(actions[p].id.clone());
    }
    let planned = schedule
        .order
        .iter()
        .map(|&i| PlannedAction {
            id: actions[i].id.clone(),
            action_type: actions[i].action_type.clone(),
            parents: std::mem::take(&mut parents[i]),
            index: i,
        })
        .collect::<Vec<_>>();
    // Priorities come by solution index; keyed by action id they survive
    // the creation order.
    let mut extra = schedule.extra;
    if let Some(p) = extra.get("priorities").and_then(Value::as_array).cloned()
        && p.len() == actions.len()
    {
        let by_id: serde_json::Map<String, Value> = actions
            .iter()
            .zip(p)
            .map(|(a, v)| (a.id.clone(), v))
            .collect();
        extra["priorities"] = Value::Object(by_id);
    }
    Ok(PlannedSolution {
        action_plan_state: if planned.is_empty() {
            "SUCCEEDED".into()
        } else {
            "RECOMMENDED".into()
        },
        actions: planned,
        extra,
    })
}

/// Checks a planner's output: every action placed exactly once, edges
/// between given actions, no self-loop, no duplicate edge, no cycle.
pub fn check(
    planner: &str,
    actions: &[Action],
    order: &[usize],
    edges: &[(usize, usize)],
) -> Result<(), PlanError> {
    let bad = |message: String| PlanError::InvalidOutput {
        planner: planner.into(),
        message,
    };
    let n = actions.len();
    let mut seen = vec![false; n];
    for &i in order {
        if i >= n {
            return Err(bad(format!(
                "it placed action #{i}, but it was given {n} actions"
            )));
        }
        if std::mem::replace(&mut seen[i], true) {
            return Err(bad(format!("it placed action {} twice", actions[i].id)));
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(bad(format!("it dropped action {}", actions[i].id)));
    }
    let mut graph = petgraph::graph::DiGraph::<(), ()>::with_capacity(n, edges.len());
    let nodes: Vec<_> = (0..n).map(|_| graph.add_node(())).collect();
    let mut edge_set = std::collections::HashSet::with_capacity(edges.len());
    for &(p, c) in edges {
        if p >= n || c >= n {
            return Err(bad(format!(
                "an edge names action #{}, but it was given {n} actions",
                p.max(c)
            )));
        }
        if p == c {
            return Err(bad(format!("action {} depends on itself", actions[p].id)));
        }
        if !edge_set.insert((p, c)) {
            return Err(bad(format!(
                "the edge {} -> {} appears twice",
                actions[p].id, actions[c].id
            )));
        }
        graph.add_edge(nodes[p], nodes[c], ());
    }
    if let Err(cycle) = petgraph::algo::toposort(&graph, None) {
        let i = cycle.node_id().index();
        return Err(bad(format!(
            "its graph has a cycle through action {}",
            actions[i].id
        )));
    }
    Ok(())
}

/// The input of `sextant plan`: the format of Watcher's planner vectors.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The planner entry.
    pub planner: String,
    /// Its config (`weights`, `parallelization`).
    #[serde(default)]
    pub config: Value,
    /// The solution, in the order the strategy produced it.
    pub solution: Vec<InputAction>,
    /// Instance uuid → host, for planners that need it.
    #[serde(default, alias = "nova_instance_host")]
    pub instance_hosts: BTreeMap<String, String>,
    /// Test metadata in vector files; ignored.
    #[serde(default)]
    pub id: Option<Value>,
    /// Test metadata in vector files; ignored.
    #[serde(default)]
    pub source: Option<Value>,
    /// Test metadata in vector files; ignored.
    #[serde(default)]
    pub expected: Option<Value>,
}

/// One action of a [`PlanInput`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputAction {
    /// Its id within the solution.
    pub id: String,
    /// Its action type.
    pub action_type: String,
    /// The resource acted on.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub input_parameters: Value,
}

impl PlanInput {
    /// The solution as SDK actions, `resource_id` moved into the parameters;
    /// refuses duplicate ids.
    pub fn actions(&self) -> Result<Vec<Action>, String> {
        let mut ids = std::collections::HashSet::new();
        self.solution
            .iter()
            .map(|a| {
                if !ids.insert(a.id.as_str()) {
                    return Err(format!("solution: action id {:?} appears twice", a.id));
                }
                Ok(with_resource_id_in_parameters(Action {
                    id: a.id.clone(),
                    action_type: a.action_type.clone(),
                    resource_id: a.resource_id.clone(),
                    input_parameters: if a.input_parameters.is_null() {
                        json!({})
                    } else {
                        a.input_parameters.clone()
                    },
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(n: usize) -> Vec<Action> {
        (0..n)
            .map(|i| Action {
                id: format!("a{i}"),
                action_type: "nop".into(),
                resource_id: None,
                input_parameters: json!({}),
            })
            .collect()
    }

    #[test]
    fn planner_output_is_checked() {
        let a = actions(3);
        assert!(check("p", &a, &[0, 1, 2], &[(0, 1), (1, 2)]).is_ok());
        let e = check("p", &a, &[0, 1, 2], &[(0, 1), (1, 2), (2, 0)]).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = check("p", &a, &[0, 1], &[]).unwrap_err();
        assert!(e.to_string().contains("dropped action a2"), "{e}");
        let e = check("p", &a, &[0, 1, 2, 3], &[]).unwrap_err();
        assert!(e.to_string().contains("#3"), "{e}");
        let e = check("p", &a, &[0, 1, 1], &[]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = check("p", &a, &[0, 1, 2], &[(0, 5)]).unwrap_err();
        assert!(e.to_string().contains("#5"), "{e}");
        let e = check("p", &a, &[0, 1, 2], &[(1, 1)]).unwrap_err();
        assert!(e.to_string().contains("itself"), "{e}");
    }

    #[test]
    fn resource_id_moves_into_the_parameters() {
        let a = with_resource_id_in_parameters(Action {
            id: "m1".into(),
            action_type: "migrate".into(),
            resource_id: Some("vm".into()),
            input_parameters: json!({"source_node": "h1"}),
        });
        assert_eq!(
            a.input_parameters,
            json!({"source_node": "h1", "resource_id": "vm"})
        );
    }
}
