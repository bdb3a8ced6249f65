//! `basic`: server consolidation (goal `server_consolidation`).
//!
//! Empties the least loaded hosts onto the most loaded ones and disables the
//! hosts it empties, as Watcher's basic offline consolidation does, but:
//! every dimension counts (vcpus, memory and disk, with allocation ratios and
//! reservations); a host is emptied whole or not at all (no migration that
//! releases nothing); instances only move onto hosts that are never emptied,
//! so every state the plan can pass through is within capacity, whatever
//! order the migrations run in; and instances migrated less than
//! `min_migration_interval` seconds ago (metadata `last_migrated_at`, unix
//! seconds) stay put, so audits do not move them back and forth.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{ClusterModel, Instance, Node};
use sextant_plugin_api::prelude::*;
use std::collections::BTreeSet;

#[derive(Deserialize)]
#[serde(default)]
struct Params {
    migration_attempts: f64,
    min_migration_interval: f64,
    now: Option<f64>,
    #[allow(dead_code)]
    period: f64,
    #[allow(dead_code)]
    granularity: f64,
    #[allow(dead_code)]
    aggregation_method: Value,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            migration_attempts: 0.0,
            min_migration_interval: 0.0,
            now: None,
            period: 7200.0,
            granularity: 300.0,
            aggregation_method: Value::Null,
        }
    }
}

#[derive(Default)]
pub struct Basic;

#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Res(f64, f64, f64);

impl Res {
    fn add(self, o: Res) -> Res {
        Res(self.0 + o.0, self.1 + o.1, self.2 + o.2)
    }
    fn fits(self, cap: Res) -> bool {
        self.0 <= cap.0 + 1e-9 && self.1 <= cap.1 + 1e-9 && self.2 <= cap.2 + 1e-9
    }
    /// The tightest dimension's share of capacity.
    fn load(self, cap: Res) -> f64 {
        let f = |u: f64, c: f64| if c > 0.0 { u / c } else { 1.0 };
        f(self.0, cap.0).max(f(self.1, cap.1)).max(f(self.2, cap.2))
    }
}

fn demand(i: &Instance) -> Res {
    Res(i.vcpus as f64, i.memory as f64, i.disk as f64)
}

fn capacity(n: &Node) -> Res {
    let (v, m, d) = n.capacity();
    Res(v, m, d)
}

fn usable(n: &Node) -> bool {
    n.status == "enabled" && n.state == "up" && n.power_state == "on"
}

/// One migration: instance, from, to, live.
pub type Move = (String, String, String, bool);

/// The consolidation: (migrations, released hosts).
pub fn consolidate(
    model: &ClusterModel,
    max_migrations: usize,
    min_interval: f64,
    now: f64,
) -> (Vec<Move>, Vec<String>) {
    let nodes: Vec<&Node> = model.nodes.iter().filter(|n| usable(n)).collect();
    let mut used: Vec<Res> = vec![Res::default(); nodes.len()];
    let mut on: Vec<Vec<&Instance>> = vec![Vec::new(); nodes.len()];
    let index: std::collections::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| (n.hostname.as_str(), k))
        .collect();
    for i in &model.instances {
        if let Some(&k) = index.get(i.host.as_str()) {
            used[k] = used[k].add(demand(i));
            on[k].push(i);
        }
    }
    let movable = |i: &Instance| {
        let recent = i
            .metadata
            .get("last_migrated_at")
            .and_then(Value::as_f64)
            .is_some_and(|t| now - t < min_interval);
        !i.watcher_exclude
            && !i.locked
            && !recent
            && matches!(i.state.as_str(), "active" | "stopped")
    };
    // Sources: the least loaded hosts first; empty ones are already free.
    let mut order: Vec<usize> = (0..nodes.len()).filter(|&k| !on[k].is_empty()).collect();
    order.sort_by(|&a, &b| {
        used[a]
            .load(capacity(nodes[a]))
            .total_cmp(&used[b].load(capacity(nodes[b])))
            .then(a.cmp(&b))
    });
    let mut received = vec![false; nodes.len()];
    let mut moves = Vec::new();
    let mut released = Vec::new();
    // Targets by load, most loaded first (ties: lowest index): hosts with
    // instances, never a source; an empty host is never woken up.
    let key = |k: usize, r: Res| (u64::MAX - r.load(capacity(nodes[k])).max(0.0).to_bits(), k);
    let mut targets: BTreeSet<(u64, usize)> = (0..nodes.len())
        .filter(|&k| !on[k].is_empty())
        .map(|k| key(k, used[k]))
        .collect();
    for &src in &order {
        if received[src] || !on[src].iter().all(|i| movable(i)) {
            continue;
        }
        if max_migrations > 0 && moves.len() + on[src].len() > max_migrations {
            continue;
        }
        // Place its instances, biggest first, on the most loaded targets that
        // still fit them (best fit), never on a source. Changes are kept in
        // `changed` to be undone when the host cannot be emptied whole.
        let mut changed: Vec<(usize, Res)> = Vec::new();
        let mut plan = Vec::new();
        let mut instances = on[src].clone();
        instances.sort_by(|a, b| {
            demand(b)
                .load(capacity(nodes[src]))
                .total_cmp(&demand(a).load(capacity(nodes[src])))
        });
        let mut ok = true;
        for i in instances {
            let best = targets
                .iter()
                .map(|&(_, t)| t)
                .find(|&t| t != src && used[t].add(demand(i)).fits(capacity(nodes[t])));
            match best {
                Some(t) => {
                    changed.push((t, used[t]));
                    targets.remove(&key(t, used[t]));
                    used[t] = used[t].add(demand(i));
                    targets.insert(key(t, used[t]));
                    plan.push((i, t));
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            for (t, before) in changed.into_iter().rev() {
                targets.remove(&key(t, used[t]));
                used[t] = before;
                targets.insert(key(t, used[t]));
            }
            continue;
        }
        for (i, t) in plan {
            received[t] = true;
            moves.push((
                i.uuid.clone(),
                nodes[src].hostname.clone(),
                nodes[t].hostname.clone(),
                i.state == "active",
            ));
        }
        targets.remove(&key(src, used[src]));
        used[src] = Res::default();
        released.push(nodes[src].hostname.clone());
    }
    (moves, released)
}

impl Strategy for Basic {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = if parameters.is_null() {
            Params::default()
        } else {
            serde_json::from_value(parameters)
                .map_err(|e| PluginError::invalid_input(format!("basic parameters: {e}")))?
        };
        let model = common::model(model)?;
        let now = common::now(p.now);
        let max = if p.migration_attempts > 0.0 {
            p.migration_attempts as usize
        } else {
            0
        };
        let (moves, released) = consolidate(&model, max, p.min_migration_interval, now);
        let mut actions = Vec::new();
        let names = common::instance_names(&model);
        for (n, (vm, from, to, live)) in moves.iter().enumerate() {
            let name = names.get(vm.as_str()).map(|s| s.to_string());
            actions.push(Action {
                id: format!("migrate-{}", name.clone().unwrap_or_else(|| format!("{n}"))),
                action_type: "migrate".into(),
                resource_id: Some(vm.clone()),
                input_parameters: json!({
                    "migration_type": if *live { "live" } else { "cold" },
                    "source_node": from,
                    "destination_node": to,
                    "resource_name": name,
                }),
            });
        }
        for host in &released {
            let node = model.node(host);
            actions.push(Action {
                id: format!("disable-{host}"),
                action_type: "change_nova_service_state".into(),
                resource_id: node.map(|n| n.uuid.clone()),
                input_parameters: json!({
                    "state": "disabled",
                    "disabled_reason": "watcher_disabled",
                    "resource_name": host,
                }),
            });
        }
        let enabled = model.nodes.iter().filter(|n| n.status == "enabled").count();
        Ok(common::server_consolidation(
            actions,
            enabled,
            released.len(),
            moves.len(),
        ))
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "migration_attempts": {"type": "number", "minimum": 0, "default": 0,
      "description": "Maximum number of migrations in one audit; 0 for no limit."},
    "min_migration_interval": {"type": "number", "minimum": 0, "default": 0,
      "description": "Seconds an instance stays put after a migration (metadata last_migrated_at)."},
    "period": {"type": "number", "default": 7200, "description": "Metrics period (seconds)."},
    "granularity": {"type": "number", "default": 300, "description": "Metrics granularity (seconds)."},
    "aggregation_method": {"type": "object", "default": {"instance": "mean", "compute_node": "mean", "node": ""}},
    "now": {"type": "number", "description": "The current time (unix seconds), for tests."}
  },
  "additionalProperties": false
}"#;

pub const SERVER_CONSOLIDATION: &str = r#"[
  {"name": "compute_nodes_count", "description": "The total number of enabled compute nodes.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "released_compute_nodes_count", "description": "The number of compute nodes to be released.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"}
]"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn model(v: Value) -> ClusterModel {
        serde_json::from_value(v).expect("model")
    }

    fn node(h: &str, vcpus: u64, mem: u64) -> Value {
        json!({"uuid": format!("u-{h}"), "hostname": h, "vcpus": vcpus, "memory": mem, "disk": 1000})
    }

    fn vm(id: &str, host: &str, vcpus: u64, mem: u64) -> Value {
        json!({"uuid": id, "name": id, "host": host, "vcpus": vcpus, "memory": mem, "disk": 10})
    }

    #[test]
    fn empties_the_least_loaded_hosts_within_every_dimension() {
        let m = model(json!({
            "nodes": [node("h1", 16, 32768), node("h2", 16, 32768), node("h3", 16, 32768)],
            "instances": [vm("a", "h1", 8, 8192), vm("b", "h2", 4, 4096), vm("c", "h3", 2, 2048)]
        }));
        let (moves, released) = consolidate(&m, 0, 0.0, 0.0);
        assert_eq!(released, ["h3", "h2"]);
        assert!(moves.iter().all(|m| m.2 == "h1"), "{moves:?}");
    }

    #[test]
    fn memory_binds_even_when_cpu_would_fit() {
        let m = model(json!({
            "nodes": [node("h1", 64, 8192), node("h2", 64, 8192)],
            "instances": [vm("a", "h1", 1, 6144), vm("b", "h2", 1, 4096)]
        }));
        let (moves, released) = consolidate(&m, 0, 0.0, 0.0);
        assert!(
            moves.is_empty() && released.is_empty(),
            "nothing fits: {moves:?}"
        );
    }

    #[test]
    fn nothing_to_do_on_a_packed_or_single_host_cluster() {
        let m =
            model(json!({"nodes": [node("h1", 16, 32768)], "instances": [vm("a", "h1", 4, 4096)]}));
        assert_eq!(consolidate(&m, 0, 0.0, 0.0), (vec![], vec![]));
        let m = model(json!({
            "nodes": [node("h1", 4, 4096), node("h2", 4, 4096)],
            "instances": [vm("a", "h1", 4, 4096), vm("b", "h2", 4, 4096)]
        }));
        assert_eq!(consolidate(&m, 0, 0.0, 0.0), (vec![], vec![]));
    }

    #[test]
    fn recently_migrated_instances_stay_put() {
        let mut m = model(json!({
            "nodes": [node("h1", 16, 32768), node("h2", 16, 32768)],
            "instances": [vm("a", "h1", 8, 8192), vm("b", "h2", 2, 2048)]
        }));
        m.instances[1]
            .metadata
            .insert("last_migrated_at".into(), json!(1000.0));
        // b moved recently: it stays; h1 is emptied onto h2 instead.
        let (moves, released) = consolidate(&m, 0, 3600.0, 2000.0);
        assert!(moves.iter().all(|m| m.0 != "b"), "{moves:?}");
        assert_eq!(released, ["h1"]);
        // Later, b is movable again and its host, the least loaded, goes.
        assert_eq!(consolidate(&m, 0, 3600.0, 5000.0).1, ["h2"]);
    }
}
