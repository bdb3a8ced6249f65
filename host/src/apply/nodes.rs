//! The plan in memory: its actions as DAG nodes, with pools and priorities.

use super::*;

impl Applier {
    pub(super) fn build_nodes(
        &self,
        rows: Vec<ActionRow>,
        plan: &crate::store::plans::PlanRow,
    ) -> Vec<Node> {
        let index: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.uuid.clone(), i))
            .collect();
        let extra = plan_extra(&self.shared, &plan.uuid);
        let limits = &self.shared.opts.policy.limits;
        let mut nodes: Vec<Node> = rows
            .into_iter()
            .map(|row| {
                let parents = row
                    .parents
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect();
                let pools = pools_of(&row.action_type, &row.input_parameters, limits);
                let priority = extra["planner"]["priorities"][&row.name]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let refs = declared_pointers(&extra, &row.name);
                let state = St::from_db(row.state);
                // A stored fact (schema 9), never read out of the message.
                let execute_failed = state == St::Failed && row.execute_failed;
                Node {
                    row,
                    parents,
                    children: Vec::new(),
                    state,
                    execute_failed,
                    pools,
                    priority,
                    refs,
                }
            })
            .collect();
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        self.critical_path_first(&mut nodes);
        nodes
    }

    /// Priorities for the actions the planner gave none (imported plans,
    /// Watcher's planners): the longest path from the action to the end of
    /// the plan, in estimated durations, so the critical path starts first.
    pub(super) fn critical_path_first(&self, nodes: &mut [Node]) {
        if !nodes.iter().any(|n| n.priority.is_nan()) {
            return;
        }
        let duration = |row: &ActionRow| {
            let version = semver::Version::parse(&row.action_type_version).ok();
            self.shared
                .types
                .get(&row.action_type, version.as_ref())
                .map(|t| t.estimated_duration.as_secs_f64())
                .unwrap_or(0.0)
                .max(1e-3)
        };
        // Children before parents: a reverse topological order (Kahn).
        let mut waiting: Vec<usize> = nodes.iter().map(|n| n.children.len()).collect();
        let mut stack: Vec<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
        let mut level = vec![0.0f64; nodes.len()];
        while let Some(i) = stack.pop() {
            let below = nodes[i]
                .children
                .iter()
                .map(|&c| level[c])
                .fold(0.0, f64::max);
            level[i] = duration(&nodes[i].row) + below;
            for p in nodes[i].parents.clone() {
                waiting[p] -= 1;
                if waiting[p] == 0 {
                    stack.push(p);
                }
            }
        }
        for (n, l) in nodes.iter_mut().zip(level) {
            if n.priority.is_nan() {
                n.priority = l;
            }
        }
    }
}

pub(super) fn plan_extra(shared: &Shared, plan_uuid: &str) -> Value {
    shared
        .db(|s| s.plan_extra(plan_uuid))
        .unwrap_or(Value::Null)
}

/// The parameters (JSON pointers) of an action that hold the context
/// references its plan declared: `extra.references.<name>`.
fn declared_pointers(extra: &Value, name: &str) -> Vec<String> {
    extra["references"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
