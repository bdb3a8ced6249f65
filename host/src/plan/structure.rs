//! Flows and alternatives a planner returned (`planners.v2`), checked and
//! turned into what an imported plan stores (docs/flows.md): each
//! alternative an action of the plan created right after its primary, with
//! the primary's parents, and the [`PlanStructure`] naming each action's
//! flow and group of alternatives.
//!
//! Invariants: every alternative names an action given to the planner and
//! an id used nowhere else in the plan; every flow has a unique name, an
//! enclosing flow that exists and is not itself or inside itself, and
//! actions that were given and are in no other flow. Anything else is the
//! planner's invalid output, refused before anything is stored.

use super::{PlanError, PlannedSolution};
use crate::policy::OnFailure;
use crate::store::flows::{NewFlow, NewScope, PlanStructure};
use sextant_plugin_api::abi::ActionSpec;
use sextant_plugin_api::sdk::{FlowOnFailure, PlannedAlternative, PlannedFlow};
use std::collections::{HashMap, HashSet};

/// A planner's flows and alternatives, checked against the actions it was
/// given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlannerStructure {
    /// Alternatives; a primary's in the order they are tried.
    pub alternatives: Vec<PlannedAlternative>,
    /// Flows.
    pub flows: Vec<PlannedFlow>,
}

impl PlannerStructure {
    /// Whether the plan is flat.
    pub fn is_empty(&self) -> bool {
        self.alternatives.is_empty() && self.flows.is_empty()
    }

    /// Checks a planner's structure against the `actions` it was given.
    pub fn check(
        planner: &str,
        actions: &[ActionSpec],
        alternatives: Vec<PlannedAlternative>,
        flows: Vec<PlannedFlow>,
    ) -> Result<Self, PlanError> {
        let bad = |message: String| PlanError::InvalidOutput {
            planner: planner.into(),
            message,
        };
        let n = actions.len();
        let mut ids: HashSet<&str> = actions.iter().map(|a| a.id.as_str()).collect();
        for a in &alternatives {
            if a.primary >= n {
                return Err(bad(format!(
                    "alternative {} stands in for action #{}, but it was given {n} actions",
                    a.action.id, a.primary
                )));
            }
            if a.action.id.is_empty() || a.action.action_type.is_empty() {
                return Err(bad(format!(
                    "an alternative of {} has no id or no action type",
                    actions[a.primary].id
                )));
            }
            if !ids.insert(&a.action.id) {
                return Err(bad(format!(
                    "alternative {} of {} has an id already used in the plan",
                    a.action.id, actions[a.primary].id
                )));
            }
        }
        let names: HashMap<&str, usize> = flows
            .iter()
            .enumerate()
            .map(|(k, f)| (f.name.as_str(), k))
            .collect();
        if names.len() != flows.len() {
            let mut seen = HashSet::new();
            let twice = flows
                .iter()
                .find(|f| !seen.insert(f.name.as_str()))
                .map_or("", |f| f.name.as_str());
            return Err(bad(format!("two flows are named {twice}")));
        }
        let mut flow_of: HashMap<usize, &str> = HashMap::new();
        for f in &flows {
            if f.name.is_empty() {
                return Err(bad("a flow has no name".into()));
            }
            if let Some(p) = &f.parent
                && !names.contains_key(p.as_str())
            {
                return Err(bad(format!(
                    "flow {} is nested in unknown flow {p}",
                    f.name
                )));
            }
            for &i in &f.actions {
                if i >= n {
                    return Err(bad(format!(
                        "flow {} holds action #{i}, but it was given {n} actions",
                        f.name
                    )));
                }
                if let Some(other) = flow_of.insert(i, &f.name) {
                    return Err(bad(format!(
                        "action {} is in flows {other} and {}: an action is in one flow",
                        actions[i].id, f.name
                    )));
                }
            }
        }
        for f in &flows {
            let mut cur = f.parent.as_deref();
            let mut steps = 0;
            while let Some(p) = cur {
                steps += 1;
                if p == f.name || steps > flows.len() {
                    return Err(bad(format!("flow {} is nested in itself", f.name)));
                }
                cur = flows[names[p]].parent.as_deref();
            }
        }
        Ok(Self {
            alternatives,
            flows,
        })
    }

    /// Adds the alternatives to the plan: each one's spec appended to
    /// `specs` (solution indexes from `specs.len()` on), created right
    /// after its primary (its alternatives in order) with the primary's
    /// parents. Returns the structure to store with the plan.
    pub fn apply(
        self,
        planned: &mut PlannedSolution,
        specs: &mut Vec<ActionSpec>,
    ) -> PlanStructure {
        let n = specs.len();
        // The alternatives of each primary (solution index), in order.
        let mut of: HashMap<usize, Vec<usize>> = HashMap::new();
        for (j, a) in self.alternatives.iter().enumerate() {
            of.entry(a.primary).or_default().push(n + j);
        }
        let primary_of: Vec<usize> = self.alternatives.iter().map(|a| a.primary).collect();
        for a in &self.alternatives {
            specs.push(crate::plan::spec(
                &a.action.id,
                &a.action.action_type,
                a.action.resource_id.as_deref(),
                &a.action.input_parameters,
            ));
        }
        if !of.is_empty() {
            // New positions: each old position, then its alternatives.
            let mut order = Vec::with_capacity(planned.order.len() + primary_of.len());
            let mut new_pos = Vec::with_capacity(planned.order.len());
            let mut parent_rows: Vec<Vec<usize>> = Vec::with_capacity(order.capacity());
            for (k, &i) in planned.order.iter().enumerate() {
                new_pos.push(order.len());
                order.push(i);
                parent_rows.push(planned.parents(k).to_vec());
                for &alt in of.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                    order.push(alt);
                    parent_rows.push(planned.parents(k).to_vec());
                }
            }
            let mut start = Vec::with_capacity(order.len() + 1);
            let mut parents = Vec::new();
            start.push(0);
            for row in parent_rows {
                parents.extend(row.into_iter().map(|p| new_pos[p]));
                start.push(parents.len());
            }
            planned.order = order;
            planned.parent_start = start;
            planned.parents = parents;
        }
        // The structure, as an import of the same plan writes it.
        let on_failure = |f: FlowOnFailure| match f {
            FlowOnFailure::Continue => OnFailure::Continue,
            FlowOnFailure::Stop => OnFailure::Stop,
            FlowOnFailure::Rollback => OnFailure::Rollback,
        };
        let mut flow_of: HashMap<usize, &str> = HashMap::new();
        for f in &self.flows {
            for &i in &f.actions {
                flow_of.insert(i, &f.name);
            }
        }
        let mut structure = PlanStructure {
            flows: self
                .flows
                .iter()
                .map(|f| NewFlow {
                    name: f.name.clone(),
                    parent: f.parent.clone(),
                    on_failure: on_failure(f.on_failure),
                    alternative_of: None,
                })
                .collect(),
            scopes: Vec::new(),
        };
        for &i in &planned.order {
            let primary = if i >= n { primary_of[i - n] } else { i };
            let flow = flow_of.get(&primary).map(|f| f.to_string());
            let group = match of.get(&primary) {
                Some(_) if i == primary => Some((specs[primary].id.to_string(), 0)),
                Some(alts) => alts
                    .iter()
                    .position(|&a| a == i)
                    .map(|r| (specs[primary].id.to_string(), r as u32 + 1)),
                None => None,
            };
            if flow.is_some() || group.is_some() {
                structure.scopes.push(NewScope {
                    action: specs[i].id.to_string(),
                    flow,
                    primary: group,
                });
            }
        }
        structure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{check, spec};
    use serde_json::json;
    use sextant_plugin_api::sdk::Action;

    fn specs() -> Vec<ActionSpec> {
        vec![
            spec(
                "dis",
                "change_nova_service_state",
                None,
                &json!({"resource_name": "h1"}),
            ),
            spec("m1", "migrate", None, &json!({"destination_node": "h2"})),
            spec(
                "off",
                "change_node_power_state",
                None,
                &json!({"resource_name": "h1"}),
            ),
        ]
    }

    fn alt(primary: usize, id: &str, dest: &str) -> PlannedAlternative {
        PlannedAlternative {
            primary,
            action: Action {
                id: id.into(),
                action_type: "migrate".into(),
                resource_id: None,
                input_parameters: json!({"destination_node": dest}),
            },
        }
    }

    fn planned(a: &[ActionSpec]) -> PlannedSolution {
        let order = vec![0, 1, 2];
        let (parent_start, parents) = check("p", a, &order, &[(0, 1), (1, 2)]).expect("dag");
        PlannedSolution {
            action_plan_state: crate::states::PlanState::Recommended,
            order,
            parent_start,
            parents,
            extra: serde_json::Value::Null,
            structure: Default::default(),
        }
    }

    #[test]
    fn alternatives_follow_their_primary_with_its_parents_and_are_stored_as_imported() {
        let mut a = specs();
        let mut p = planned(&a);
        let flow = PlannedFlow {
            name: "evacuate-h1".into(),
            parent: None,
            on_failure: FlowOnFailure::Rollback,
            actions: vec![0, 1, 2],
        };
        let s = PlannerStructure::check(
            "rules",
            &a,
            vec![alt(1, "m1-alt1", "h3"), alt(1, "m1-alt2", "h4")],
            vec![flow],
        )
        .expect("valid");
        let st = s.apply(&mut p, &mut a);
        let names: Vec<&str> = p.order.iter().map(|&i| a[i].id.as_str()).collect();
        assert_eq!(names, ["dis", "m1", "m1-alt1", "m1-alt2", "off"]);
        assert_eq!(p.parents(1), &[0]);
        assert_eq!(p.parents(2), &[0]);
        assert_eq!(p.parents(3), &[0]);
        // The power-off waits for the primary (the group), never an alternative.
        assert_eq!(p.parents(4), &[1]);
        assert_eq!(st.flows.len(), 1);
        assert_eq!(st.flows[0].on_failure, OnFailure::Rollback);
        let scope = |n: &str| st.scopes.iter().find(|s| s.action == n).cloned();
        assert_eq!(
            scope("m1-alt2").map(|s| (s.flow, s.primary)),
            Some((Some("evacuate-h1".into()), Some(("m1".into(), 2))))
        );
        assert_eq!(scope("m1").and_then(|s| s.primary), Some(("m1".into(), 0)));
        assert_eq!(scope("off").and_then(|s| s.primary), None);
        assert_eq!(st.scopes.len(), 5);
    }

    #[test]
    fn a_flat_structure_changes_nothing() {
        let mut a = specs();
        let mut p = planned(&a);
        let before = p.clone();
        let st = PlannerStructure::check("rules", &a, vec![], vec![])
            .expect("valid")
            .apply(&mut p, &mut a);
        assert!(st.is_empty());
        assert_eq!(p, before);
        assert_eq!(a, specs());
    }

    #[test]
    fn invalid_structures_are_refused_naming_what_is_wrong() {
        let a = specs();
        let flow = |name: &str, parent: Option<&str>, actions: Vec<usize>| PlannedFlow {
            name: name.into(),
            parent: parent.map(str::to_string),
            on_failure: FlowOnFailure::Continue,
            actions,
        };
        let err = |alts: Vec<PlannedAlternative>, flows: Vec<PlannedFlow>| {
            PlannerStructure::check("rules", &a, alts, flows)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(vec![alt(7, "x", "h")], vec![]).contains("#7"));
        assert!(err(vec![alt(1, "off", "h")], vec![]).contains("alternative off of m1"));
        assert!(err(vec![alt(1, "x", "h"), alt(0, "x", "h")], vec![]).contains("already used"));
        assert!(err(vec![], vec![flow("f", None, vec![9])]).contains("#9"));
        assert!(
            err(
                vec![],
                vec![flow("f", None, vec![1]), flow("g", None, vec![1])]
            )
            .contains("action m1 is in flows f and g")
        );
        assert!(err(vec![], vec![flow("f", Some("nope"), vec![])]).contains("unknown flow nope"));
        assert!(
            err(
                vec![],
                vec![flow("f", Some("g"), vec![]), flow("g", Some("f"), vec![])]
            )
            .contains("nested in itself")
        );
        assert!(
            err(
                vec![],
                vec![flow("f", None, vec![]), flow("f", None, vec![])]
            )
            .contains("two flows")
        );
    }

    proptest::proptest! {
        /// Any DAG with any alternatives: once applied, the plan is still
        /// acyclic (the host's own check accepts it), each alternative is
        /// created right after its primary (or its primary's earlier
        /// alternatives) with the primary's parents, no action waits for an
        /// alternative, and every action of a group or flow has its scope.
        #[test]
        fn applied_alternatives_keep_the_plan_acyclic(
            n in 1usize..25,
            raw_edges in proptest::collection::vec((0usize..25, 0usize..25), 0..60),
            raw_alts in proptest::collection::vec(0usize..25, 0..20),
            in_flow in proptest::collection::vec(proptest::bool::ANY, 25),
        ) {
            let mut a: Vec<ActionSpec> =
                (0..n).map(|i| spec(&format!("a{i}"), "nop", None, &json!({}))).collect();
            let mut edges: Vec<(usize, usize)> = raw_edges
                .into_iter()
                .map(|(x, y)| (x % n, y % n))
                .filter(|(x, y)| x < y)
                .collect();
            edges.sort_unstable();
            edges.dedup();
            let order: Vec<usize> = (0..n).collect();
            let (parent_start, parents) = check("p", &a, &order, &edges).expect("a dag");
            let mut p = PlannedSolution {
                action_plan_state: crate::states::PlanState::Recommended,
                order,
                parent_start,
                parents,
                extra: serde_json::Value::Null,
                structure: Default::default(),
            };
            let alts: Vec<PlannedAlternative> = raw_alts
                .iter()
                .enumerate()
                .map(|(j, &x)| alt(x % n, &format!("alt{j}"), "h"))
                .collect();
            let flow = PlannedFlow {
                name: "f".into(),
                parent: None,
                on_failure: FlowOnFailure::Stop,
                actions: (0..n).filter(|&i| in_flow[i]).collect(),
            };
            let s = PlannerStructure::check("p", &a, alts.clone(), vec![flow]).expect("valid");
            let st = s.apply(&mut p, &mut a);
            proptest::prop_assert_eq!(a.len(), n + alts.len());
            // The host's own check of the expanded plan: acyclic, every action once.
            let mut expanded = Vec::new();
            for k in 0..p.order.len() {
                for &q in p.parents(k) {
                    expanded.push((p.order[q], p.order[k]));
                }
            }
            proptest::prop_assert!(check("p", &a, &p.order, &expanded).is_ok());
            let pos: std::collections::HashMap<usize, usize> =
                p.order.iter().enumerate().map(|(k, &i)| (i, k)).collect();
            for (j, x) in alts.iter().enumerate() {
                let (ka, kp) = (pos[&(n + j)], pos[&x.primary]);
                proptest::prop_assert!(ka > kp);
                proptest::prop_assert!(p.order[kp + 1..ka].iter().all(|&i| i >= n), "only alternatives between");
                let mut pa: Vec<usize> = p.parents(ka).iter().map(|&q| p.order[q]).collect();
                let mut pp: Vec<usize> = p.parents(kp).iter().map(|&q| p.order[q]).collect();
                pa.sort_unstable();
                pp.sort_unstable();
                proptest::prop_assert_eq!(pa, pp);
            }
            proptest::prop_assert!(expanded.iter().all(|&(parent, _)| parent < n));
            for x in &alts {
                let scoped = |name: &str| st.scopes.iter().any(|s| s.action == name);
                let primary = format!("a{}", x.primary);
                proptest::prop_assert!(scoped(&x.action.id) && scoped(&primary));
            }
        }
    }
}
