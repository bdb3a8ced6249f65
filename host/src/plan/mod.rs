//! Planning: a solution's actions, a planner plugin, and the DAG it returns,
//! checked before anyone relies on it.
//!
//! Invariants: a planner's output is accepted only if it places every action
//! it was given exactly once, names no other, and is acyclic (petgraph); a
//! planner error leaves nothing behind.

use crate::plugins::{PluginCallError, PluginRegistry};
use crate::store::plans::NewPlanRow;
use serde::Serialize;
use serde_json::{Value, json};
use sextant_plugin_api::abi::ActionSpec;
use sextant_plugin_api::sdk::Action;
use std::collections::BTreeMap;

pub mod ancestry;
pub mod input;
pub mod makespan;
pub mod structure;

pub use input::{PlanRequest, read as read_input};

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

/// A planned solution: the creation order and each action's parents.
///
/// Actions are named by index: `order[k]` is the solution index of the
/// action created `k`-th, and [`PlannedSolution::parents`]`(k)` the
/// positions in `order` of the actions it waits for, in the order the
/// planner gave them. Nothing is copied out of the solution: ids, types and
/// parameters stay where they are.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedSolution {
    /// `RECOMMENDED`, or `SUCCEEDED` for an empty solution (as Watcher).
    pub action_plan_state: crate::states::PlanState,
    /// Solution indexes, in the order the plan creates the actions.
    pub order: Vec<usize>,
    /// `parents[parent_start[k]..parent_start[k + 1]]`: the parents of the
    /// action at position `k` (positions in `order`).
    parent_start: Vec<usize>,
    parents: Vec<usize>,
    /// What else the planner said (pools, priorities).
    pub extra: Value,
    /// The flows and alternatives it made (`planners.v2`; empty for a flat
    /// plan), to be added with [`structure::PlannerStructure::apply`].
    pub structure: structure::PlannerStructure,
}

impl PlannedSolution {
    /// The positions in [`Self::order`] of the parents of the action at
    /// position `k` (empty for a position out of range).
    pub fn parents(&self, k: usize) -> &[usize] {
        match (self.parent_start.get(k), self.parent_start.get(k + 1)) {
            (Some(&a), Some(&b)) => &self.parents[a..b],
            _ => &[],
        }
    }

    /// The number of edges.
    pub fn edges(&self) -> usize {
        self.parents.len()
    }

    /// The plan's actions as store rows, in creation order, borrowing ids,
    /// types and parameters (JSON text) from `actions`: `version` gives the
    /// action-type version of a solution index.
    pub fn rows<'a>(
        &'a self,
        actions: &'a [ActionSpec],
        version: impl Fn(usize) -> &'a str,
        state: crate::states::ActionState,
    ) -> Vec<NewPlanRow<'a>> {
        self.order
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| {
                let a = actions.get(i)?;
                Some(NewPlanRow {
                    name: a.id.as_str(),
                    action_type: a.action_type.as_str(),
                    action_type_version: version(i),
                    input_parameters_json: a.input_parameters_json.as_str(),
                    parents: self.parents(k),
                    state,
                })
            })
            .collect()
    }

    /// The plan as `sextant plan` prints it: `{action_plan_state, actions:
    /// [{id, action_type, parents: [ids]}], extra}` (`extra` when not null).
    pub fn to_json(&self, actions: &[ActionSpec]) -> Value {
        serde_json::to_value(self.view(actions, None)).unwrap_or(Value::Null)
    }

    /// The plan as `sextant plan` prints it, serialized as it is written:
    /// no `Value` of the whole plan is built. `action_plan` is the uuid it
    /// was saved as, if it was.
    pub fn view<'a>(
        &'a self,
        actions: &'a [ActionSpec],
        action_plan: Option<&'a str>,
    ) -> PlannedView<'a> {
        PlannedView {
            planned: self,
            actions,
            action_plan,
        }
    }
}

/// See [`PlannedSolution::view`].
pub struct PlannedView<'a> {
    planned: &'a PlannedSolution,
    actions: &'a [ActionSpec],
    action_plan: Option<&'a str>,
}

impl PlannedView<'_> {
    fn id(&self, k: usize) -> &str {
        self.actions
            .get(self.planned.order[k])
            .map_or("", |a| a.id.as_str())
    }
}

impl Serialize for PlannedView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Actions<'v, 'a>(&'v PlannedView<'a>);
        struct Parents<'v, 'a>(&'v PlannedView<'a>, usize);
        impl Serialize for Parents<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let parents = self.0.planned.parents(self.1);
                let mut seq = s.serialize_seq(Some(parents.len()))?;
                for &p in parents {
                    seq.serialize_element(self.0.id(p))?;
                }
                seq.end()
            }
        }
        impl Serialize for Actions<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let v = self.0;
                let mut seq = s.serialize_seq(Some(v.planned.order.len()))?;
                for (k, &i) in v.planned.order.iter().enumerate() {
                    #[derive(Serialize)]
                    struct Row<'r, 'v, 'a> {
                        id: &'r str,
                        action_type: &'r str,
                        parents: Parents<'v, 'a>,
                    }
                    seq.serialize_element(&Row {
                        id: v.id(k),
                        action_type: v.actions.get(i).map_or("", |a| a.action_type.as_str()),
                        parents: Parents(v, k),
                    })?;
                }
                seq.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("action_plan_state", &self.planned.action_plan_state)?;
        m.serialize_entry("actions", &Actions(self))?;
        if !self.planned.extra.is_null() {
            m.serialize_entry("extra", &self.planned.extra)?;
        }
        if let Some(u) = self.action_plan {
            m.serialize_entry("action_plan", u)?;
        }
        m.end()
    }
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

/// One action as the planner receives it: its parameters serialized once,
/// here, so that the same JSON text crosses the plugin boundary and is then
/// stored with the plan ([`crate::store::plans::NewPlanRow`]).
pub fn spec(
    id: &str,
    action_type: &str,
    resource_id: Option<&str>,
    input_parameters: &Value,
) -> ActionSpec {
    // Display of a Value is serde_json::to_string, which cannot fail.
    ActionSpec::new(
        id,
        action_type,
        resource_id.map(str::to_string),
        input_parameters.to_string(),
    )
}

/// The solution's actions as the planner receives them.
pub fn specs(actions: &[Action]) -> Vec<ActionSpec> {
    actions
        .iter()
        .map(|a| {
            spec(
                &a.id,
                &a.action_type,
                a.resource_id.as_deref(),
                &a.input_parameters,
            )
        })
        .collect()
}

/// What a planner is told besides the actions, serialized without building
/// a Value first (the keys in this order, as before).
#[derive(Serialize)]
struct PlanContext<'a> {
    config: &'a Value,
    instance_hosts: &'a BTreeMap<String, String>,
    durations: &'a BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<&'a Value>,
}

/// What a planner may be told beyond its config, the instance hosts and the
/// durations, when the policy asks for alternatives: the cluster model
/// (context key `model`) and the strategy's ranked candidates (`candidates`,
/// see `sextant_plugin_api::sdk::CANDIDATES_KEY`). Absent keys are left out
/// of the context, which is then byte for byte what it was before.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanExtras<'a> {
    /// The cluster model the plan starts from.
    pub model: Option<&'a Value>,
    /// The strategy's ranked candidates, by action id and parameter.
    pub candidates: Option<&'a Value>,
}

/// Plans `actions` with `planner`: calls the plugin, then checks its output.
pub fn plan(
    plugins: &PluginRegistry,
    planner: &str,
    config: &Value,
    instance_hosts: &BTreeMap<String, String>,
    durations: &BTreeMap<String, f64>,
    actions: &[ActionSpec],
) -> Result<PlannedSolution, PlanError> {
    plan_with(
        plugins,
        planner,
        config,
        instance_hosts,
        durations,
        actions,
        PlanExtras::default(),
    )
}

/// [`plan`], telling the planner `extras` too. The planner is called through
/// `planners.v2` when its plugin offers it (its flows and alternatives are
/// checked and kept in [`PlannedSolution::structure`]), else `planners.v1`.
pub fn plan_with(
    plugins: &PluginRegistry,
    planner: &str,
    config: &Value,
    instance_hosts: &BTreeMap<String, String>,
    durations: &BTreeMap<String, f64>,
    actions: &[ActionSpec],
    extras: PlanExtras<'_>,
) -> Result<PlannedSolution, PlanError> {
    let empty = json!({});
    let context = serde_json::to_string(&PlanContext {
        config: if config.is_null() { &empty } else { config },
        instance_hosts,
        durations,
        model: extras.model,
        candidates: extras.candidates,
    })
    .map_err(|e| PlanError::Call {
        planner: planner.into(),
        error: Box::new(PluginCallError::host(format!(
            "cannot serialize the planner context: {e}"
        ))),
    })?;
    let structured = plugins
        .schedule_structured(planner, actions, &context)
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
    drop(context);
    let schedule = structured.schedule;
    let (parent_start, parents) = check(planner, actions, &schedule.order, &schedule.edges)?;
    let structure = structure::PlannerStructure::check(
        planner,
        actions,
        structured.alternatives,
        structured.flows,
    )?;
    // Priorities come by solution index; keyed by action id they survive
    // the creation order.
    let mut extra = schedule.extra;
    if let Some(Value::Array(p)) = extra.get_mut("priorities")
        && p.len() == actions.len()
    {
        let by_id: serde_json::Map<String, Value> = actions
            .iter()
            .zip(std::mem::take(p))
            .map(|(a, v)| (a.id.to_string(), v))
            .collect();
        extra["priorities"] = Value::Object(by_id);
    }
    Ok(PlannedSolution {
        action_plan_state: if schedule.order.is_empty() {
            crate::states::PlanState::Succeeded
        } else {
            crate::states::PlanState::Recommended
        },
        order: schedule.order,
        parent_start,
        parents,
        extra,
        structure,
    })
}

/// Checks a planner's output: every action placed exactly once, edges
/// between given actions, no self-loop, no duplicate edge, no cycle.
/// Returns each action's parents as positions in `order`, by position
/// (`parents[start[k]..start[k + 1]]`), in the order of `edges`.
pub fn check(
    planner: &str,
    actions: &[ActionSpec],
    order: &[usize],
    edges: &[(usize, usize)],
) -> Result<(Vec<usize>, Vec<usize>), PlanError> {
    let bad = |message: String| PlanError::InvalidOutput {
        planner: planner.into(),
        message,
    };
    let n = actions.len();
    // position[i]: where action i is created; usize::MAX until placed.
    let mut position = vec![usize::MAX; n];
    for (k, &i) in order.iter().enumerate() {
        if i >= n {
            return Err(bad(format!(
                "it placed action #{i}, but it was given {n} actions"
            )));
        }
        if std::mem::replace(&mut position[i], k) != usize::MAX {
            return Err(bad(format!("it placed action {} twice", actions[i].id)));
        }
    }
    if let Some(i) = position.iter().position(|&k| k == usize::MAX) {
        return Err(bad(format!("it dropped action {}", actions[i].id)));
    }
    // Parents grouped by child position (a stable counting sort: each
    // child's parents stay in edge order).
    let mut start = vec![0usize; n + 1];
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
        start[position[c] + 1] += 1;
    }
    for k in 0..n {
        start[k + 1] += start[k];
    }
    let mut parents = vec![0usize; edges.len()];
    let mut next = start.clone();
    for &(p, c) in edges {
        let slot = &mut next[position[c]];
        parents[*slot] = position[p];
        *slot += 1;
    }
    drop(next);
    // Duplicate edges: a parent seen twice for one child (marks stamped
    // with the child's position, so nothing is sorted or copied).
    let mut seen_for = vec![usize::MAX; n];
    for k in 0..n {
        for &p in &parents[start[k]..start[k + 1]] {
            if std::mem::replace(&mut seen_for[p], k) == k {
                return Err(bad(format!(
                    "the edge {} -> {} appears twice",
                    actions[order[p]].id, actions[order[k]].id
                )));
            }
        }
    }
    // Acyclic: Kahn's algorithm on the parent rows, from the actions no
    // action waits for back to the roots. An action it cannot reach is on a
    // cycle or waits behind one; petgraph then names one on the cycle.
    let mut children = seen_for;
    children.fill(0);
    for &p in &parents {
        children[p] += 1;
    }
    let mut free: Vec<usize> = (0..n).filter(|&k| children[k] == 0).collect();
    let mut removed = 0;
    while let Some(k) = free.pop() {
        removed += 1;
        for &p in &parents[start[k]..start[k + 1]] {
            children[p] -= 1;
            if children[p] == 0 {
                free.push(p);
            }
        }
    }
    if removed < n {
        let mut graph = petgraph::graph::DiGraph::<(), ()>::with_capacity(n, edges.len());
        for _ in 0..n {
            graph.add_node(());
        }
        for &(p, c) in edges {
            graph.add_edge(
                petgraph::graph::NodeIndex::new(p),
                petgraph::graph::NodeIndex::new(c),
                (),
            );
        }
        let i = match petgraph::algo::toposort(&graph, None) {
            Err(cycle) => cycle.node_id().index(),
            // Unreachable when Kahn's count is right; still a refusal.
            Ok(_) => order[children.iter().position(|&c| c > 0).unwrap_or(0)],
        };
        return Err(bad(format!(
            "its graph has a cycle through action {}",
            actions[i].id
        )));
    }
    Ok((start, parents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(n: usize) -> Vec<ActionSpec> {
        (0..n)
            .map(|i| spec(&format!("a{i}"), "nop", None, &json!({})))
            .collect()
    }

    #[test]
    fn parents_come_by_creation_position_in_edge_order() {
        let a = actions(4);
        // Created 3, 1, 0, 2; 2 waits for 3 then 0, 0 for 1.
        let (start, parents) =
            check("p", &a, &[3, 1, 0, 2], &[(3, 2), (1, 0), (0, 2)]).expect("valid");
        let planned = PlannedSolution {
            action_plan_state: crate::states::PlanState::Recommended,
            order: vec![3, 1, 0, 2],
            parent_start: start,
            parents,
            extra: Value::Null,
            structure: Default::default(),
        };
        assert_eq!(planned.parents(0), &[] as &[usize]);
        assert_eq!(planned.parents(2), &[1]);
        assert_eq!(planned.parents(3), &[0, 2]);
        assert_eq!(planned.parents(9), &[] as &[usize]);
        assert_eq!(planned.edges(), 3);
        assert_eq!(
            planned.to_json(&a),
            json!({"action_plan_state": "RECOMMENDED", "actions": [
                {"id": "a3", "action_type": "nop", "parents": []},
                {"id": "a1", "action_type": "nop", "parents": []},
                {"id": "a0", "action_type": "nop", "parents": ["a1"]},
                {"id": "a2", "action_type": "nop", "parents": ["a3", "a0"]},
            ]})
        );
        let rows = planned.rows(
            &a,
            |i| if i == 2 { "2.0.0" } else { "1.0.0" },
            crate::states::ActionState::Pending,
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3].name, "a2");
        assert_eq!(rows[3].action_type_version, "2.0.0");
        assert_eq!(rows[3].input_parameters_json, "{}");
        assert_eq!(rows[3].parents, &[0, 2]);
    }

    #[test]
    fn a_spec_carries_the_parameters_as_json_text_in_order() {
        let s = spec(
            "m1",
            "migrate",
            Some("vm"),
            &json!({"z": 1, "a": "x\"y", "m": [1.5, null]}),
        );
        assert_eq!(
            s.input_parameters_json.as_str(),
            r#"{"z":1,"a":"x\"y","m":[1.5,null]}"#
        );
        assert_eq!(
            s.resource_id.as_ref().map(|r| r.as_str()).into_option(),
            Some("vm")
        );
        let back: Value = serde_json::from_str(s.input_parameters_json.as_str()).expect("json");
        assert_eq!(back, json!({"z": 1, "a": "x\"y", "m": [1.5, null]}));
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
        let e = check("p", &a, &[0, 1, 2], &[(0, 2), (1, 2), (0, 2)]).unwrap_err();
        assert!(e.to_string().contains("a0 -> a2 appears twice"), "{e}");
    }

    #[test]
    fn the_cycle_check_agrees_with_petgraph_on_random_graphs() {
        // xorshift64*: deterministic graphs, some with cycles.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut below = |n: usize| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        };
        let (mut cyclic, mut acyclic) = (0, 0);
        for round in 0..400 {
            let n = 2 + below(12);
            let a = actions(n);
            let mut edges = Vec::new();
            for _ in 0..below(2 * n) {
                let (p, c) = (below(n), below(n));
                // Mostly forward edges, so that about half are acyclic.
                let back = round % 2 == 0 && below(2) == 0;
                if p != c && (back || p < c) && !edges.contains(&(p, c)) {
                    edges.push((p, c));
                }
            }
            // Created in reverse, so positions differ from indexes.
            let order: Vec<usize> = (0..n).rev().collect();
            let mut g = petgraph::graph::DiGraph::<(), ()>::new();
            for _ in 0..n {
                g.add_node(());
            }
            for &(p, c) in &edges {
                g.add_edge(
                    petgraph::graph::NodeIndex::new(p),
                    petgraph::graph::NodeIndex::new(c),
                    (),
                );
            }
            let want_cycle = petgraph::algo::is_cyclic_directed(&g);
            match check("p", &a, &order, &edges) {
                Ok(_) => {
                    assert!(!want_cycle, "missed a cycle in {edges:?}");
                    acyclic += 1;
                }
                Err(e) => {
                    assert!(want_cycle, "{e} for {edges:?}");
                    assert!(e.to_string().contains("cycle through action a"), "{e}");
                    cyclic += 1;
                }
            }
        }
        assert!(
            cyclic > 40 && acyclic > 40,
            "{cyclic} cyclic, {acyclic} acyclic"
        );
    }

    #[test]
    fn a_chain_of_200000_actions_is_checked_without_recursion() {
        let n = 200_000;
        let a = actions(n);
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        let order: Vec<usize> = (0..n).collect();
        let (start, parents) = check("p", &a, &order, &edges).expect("a chain");
        assert_eq!(parents.len(), n - 1);
        assert_eq!(&parents[start[n - 1]..start[n]], &[n - 2]);
        let mut closed = edges;
        closed.push((n - 1, 0));
        assert!(check("p", &a, &order, &closed).is_err());
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
