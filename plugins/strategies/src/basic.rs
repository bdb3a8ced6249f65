//! `basic`: server consolidation (goal `server_consolidation`).
//!
//! Empties hosts onto others and disables the hosts it empties, as Watcher's
//! basic offline consolidation does, but keeping the biggest, busiest hosts
//! and releasing the small ones (see [`consolidate`]), and:
//! every dimension counts (vcpus, memory and disk, with allocation ratios and
//! reservations); a host is emptied whole or not at all (no migration that
//! releases nothing); instances only move onto hosts that are never emptied,
//! so every state the plan can pass through is within capacity, whatever
//! order the migrations run in; and instances migrated less than
//! `min_migration_interval` seconds ago (metadata `last_migrated_at`, unix
//! seconds) stay put, so audits do not move them back and forth.

use crate::common;
use crate::fit::FitIndex;
use serde::Deserialize;
use sextant_plugin_api::model::{ClusterModel, Instance, Node};
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(default)]
struct Params {
    migration_attempts: f64,
    min_migration_interval: f64,
    fallback_room: f64,
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
            fallback_room: 0.0,
            now: None,
            period: 7200.0,
            granularity: 300.0,
            aggregation_method: Value::Null,
        }
    }
}

#[derive(Default)]
pub struct Basic;

type Res = [f64; 3];

fn add(a: Res, b: Res) -> Res {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn fits(used: Res, cap: Res) -> bool {
    (0..3).all(|d| used[d] <= cap[d] + 1e-9)
}

/// The tightest dimension's share of capacity.
fn load(used: Res, cap: Res) -> f64 {
    (0..3)
        .map(|d| if cap[d] > 0.0 { used[d] / cap[d] } else { 1.0 })
        .fold(0.0, f64::max)
}

fn demand(i: &Instance) -> Res {
    [i.vcpus as f64, i.memory as f64, i.disk as f64]
}

fn capacity(n: &Node) -> Res {
    let (v, m, d) = n.capacity();
    [v, m, d]
}

fn usable(n: &Node) -> bool {
    n.status == "enabled" && n.state == "up" && n.power_state == "on"
}

/// One migration: the instance, from, to.
pub type Move<'a> = (&'a Instance, &'a Node, &'a Node);

/// The consolidation: (migrations, released hosts).
///
/// Hosts are ranked by how much they are worth keeping: hosts holding an
/// instance that must stay first (they are kept anyway), then the largest
/// (capacity summed over the dimensions, each weighed by how full the
/// cluster is in it, so the binding dimension counts most), then the most
/// loaded. Sources are tried from the bottom of that ranking, each emptied
/// whole or not at all, its instances (biggest first) going to the first
/// host in the ranking with room in every dimension (an index finds it in
/// O(log n)). So the hosts kept are the big, busy ones, as the lower bound
/// on hosts in use assumes, and the small ones are released.
pub fn consolidate(
    model: &ClusterModel,
    max_migrations: usize,
    min_interval: f64,
    now: f64,
) -> (Vec<Move<'_>>, Vec<&Node>) {
    consolidate_leaving_room(model, max_migrations, min_interval, now, 0.0)
}

/// [`consolidate`], filling each host only up to `1 - room` of its
/// capacity in every dimension: the room left is where planner-made
/// alternatives (a migration's next-best destinations) can go when a
/// destination fails. `room` 0 is [`consolidate`].
pub fn consolidate_leaving_room(
    model: &ClusterModel,
    max_migrations: usize,
    min_interval: f64,
    now: f64,
    room: f64,
) -> (Vec<Move<'_>>, Vec<&Node>) {
    let nodes: Vec<&Node> = model.nodes.iter().filter(|n| usable(n)).collect();
    let keep = 1.0 - room.clamp(0.0, 1.0);
    let caps: Vec<Res> = nodes
        .iter()
        .map(|n| capacity(n).map(|c| c * keep))
        .collect();
    let mut used: Vec<Res> = vec![Res::default(); nodes.len()];
    let mut on: Vec<Vec<&Instance>> = vec![Vec::new(); nodes.len()];
    let index: std::collections::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| (n.hostname.as_str(), k))
        .collect();
    for i in &model.instances {
        if let Some(&k) = index.get(i.host.as_str()) {
            used[k] = add(used[k], demand(i));
            on[k].push(i);
        }
    }
    let movable = |i: &Instance| {
        !i.watcher_exclude
            && !i.locked
            && !common::recently_migrated(i, now, min_interval)
            && matches!(i.state.as_str(), "active" | "stopped")
    };
    // Weights: a dimension counts by how full the cluster is in it.
    let total_cap = caps.iter().fold(Res::default(), |t, &c| add(t, c));
    let total_used = used.iter().fold(Res::default(), |t, &u| add(t, u));
    let weight: Res = std::array::from_fn(|d| {
        if total_cap[d] > 0.0 {
            (total_used[d] / total_cap[d]).max(0.0) / total_cap[d] + 1e-3 / total_cap[d]
        } else {
            0.0
        }
    });
    let size = |r: Res| (0..3).map(|d| weight[d] * r[d]).sum::<f64>();
    let pinned: Vec<bool> = on.iter().map(|l| !l.iter().all(|i| movable(i))).collect();
    // The ranking: slots of the fit index. Empty hosts have none: they are
    // never woken up.
    let mut rank: Vec<usize> = (0..nodes.len()).filter(|&k| !on[k].is_empty()).collect();
    rank.sort_by(|&a, &b| {
        pinned[b]
            .cmp(&pinned[a])
            .then(size(caps[b]).total_cmp(&size(caps[a])))
            .then(load(used[b], caps[b]).total_cmp(&load(used[a], caps[a])))
            .then(a.cmp(&b))
    });
    let room = |k: usize, u: Res| -> Res { std::array::from_fn(|d| caps[k][d] - u[d]) };
    let mut fit = FitIndex::<3>::new(rank.len());
    // What all hosts that may receive have free, to skip at once a source
    // that cannot be emptied.
    let mut free = Res::default();
    for (slot, &k) in rank.iter().enumerate() {
        fit.set(slot, room(k, used[k]));
        free = add(free, room(k, used[k]).map(|x| x.max(0.0)));
    }
    let mut received = vec![false; nodes.len()];
    let mut moves = Vec::new();
    let mut released = Vec::new();
    for (slot, &src) in rank.iter().enumerate().rev() {
        if pinned[src] || received[src] {
            continue;
        }
        if max_migrations > 0 && moves.len() + on[src].len() > max_migrations {
            continue;
        }
        let own = room(src, used[src]).map(|x| x.max(0.0));
        let others: Res = std::array::from_fn(|d| free[d] - own[d]);
        if (0..3).any(|d| used[src][d] > others[d] * (1.0 + 1e-9) + 1e-6) {
            continue;
        }
        fit.clear(slot);
        // Changes are kept to be undone when the host cannot be emptied whole.
        let mut changed: Vec<(usize, usize, Res)> = Vec::new();
        let mut plan = Vec::new();
        let mut instances = on[src].clone();
        instances.sort_by(|a, b| size(demand(b)).total_cmp(&size(demand(a))));
        let mut ok = true;
        for i in instances {
            let d = demand(i);
            let t = fit
                .first_fit(d, |s| fits(add(used[rank[s]], d), caps[rank[s]]))
                .map(|s| (s, rank[s]));
            match t {
                Some((s, t)) => {
                    changed.push((s, t, used[t]));
                    free = std::array::from_fn(|k| free[k] - room(t, used[t])[k].max(0.0));
                    used[t] = add(used[t], d);
                    free = add(free, room(t, used[t]).map(|x| x.max(0.0)));
                    fit.set(s, room(t, used[t]));
                    plan.push((i, t));
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            for (s, t, before) in changed.into_iter().rev() {
                free = std::array::from_fn(|k| free[k] - room(t, used[t])[k].max(0.0));
                used[t] = before;
                free = add(free, room(t, used[t]).map(|x| x.max(0.0)));
                fit.set(s, room(t, used[t]));
            }
            fit.set(slot, room(src, used[src]));
            continue;
        }
        for (i, t) in plan {
            received[t] = true;
            moves.push((i, nodes[src], nodes[t]));
        }
        free = std::array::from_fn(|d| free[d] - own[d]);
        used[src] = Res::default();
        released.push(nodes[src]);
    }
    (moves, released)
}

common::strategy_on_model_input!(Basic);

impl Basic {
    fn run(
        &self,
        model: common::ModelInput<'_>,
        parameters: Value,
    ) -> Result<Solution, PluginError> {
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
        let (moves, released) =
            consolidate_leaving_room(&model, max, p.min_migration_interval, now, p.fallback_room);
        let mut actions = Vec::with_capacity(moves.len() + released.len());
        for (i, from, to) in &moves {
            actions.push(common::migrate(
                i,
                i.state == "active",
                &from.hostname,
                Some(&to.hostname),
            ));
        }
        for node in &released {
            actions.push(common::disable(node));
        }
        let solution = common::with_destination_candidates(
            common::server_consolidation(actions, &model, released.len(), moves.len()),
            &model,
        );
        Ok(if solution.actions.is_empty() {
            let in_use = model
                .nodes
                .iter()
                .filter(|n| model.instances.iter().any(|i| i.host == n.hostname))
                .count();
            solution.with_reason(if model.nodes.is_empty() {
                "the cluster model has no node".to_string()
            } else if in_use < 2 {
                format!("{in_use} node(s) hold instances: there is nothing to consolidate")
            } else {
                "no node in use can be emptied: its instances do not all fit on the other \
                 nodes (or may not move)"
                    .to_string()
            })
        } else {
            solution
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "migration_attempts": {"type": "number", "minimum": 0, "default": 0,
      "description": "Maximum number of migrations in one audit; 0 for no limit."},
    "min_migration_interval": {"type": "number", "minimum": 0, "default": 0,
      "description": "Seconds an instance stays put after a migration (metadata last_migrated_at)."},
    "fallback_room": {"type": "number", "minimum": 0, "maximum": 0.5, "default": 0,
      "description": "Share of each host's capacity (every dimension) the consolidation leaves free, so that a migration's next-best destinations have room when its first one fails (planner-made alternatives, docs/flows.md)."},
    "period": {"type": "number", "minimum": 0, "default": 7200, "description": "Metrics period (seconds)."},
    "granularity": {"type": "number", "minimum": 0, "default": 300, "description": "Metrics granularity (seconds)."},
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
    use crate::common::testgen;

    fn model(v: Value) -> ClusterModel {
        serde_json::from_value(v).expect("model")
    }

    fn node(h: &str, vcpus: u64, mem: u64) -> Value {
        json!({"uuid": format!("u-{h}"), "hostname": h, "vcpus": vcpus, "memory": mem, "disk": 1000})
    }

    fn vm(id: &str, host: &str, vcpus: u64, mem: u64) -> Value {
        json!({"uuid": id, "name": id, "host": host, "vcpus": vcpus, "memory": mem, "disk": 10})
    }

    type Named = (Vec<(String, String, String)>, Vec<String>);

    /// The consolidation by names: (instance, from, to) and released hosts.
    fn run(m: &ClusterModel, max: usize, interval: f64, now: f64) -> Named {
        let (moves, released) = consolidate(m, max, interval, now);
        (
            moves
                .iter()
                .map(|(i, f, t)| (i.uuid.clone(), f.hostname.clone(), t.hostname.clone()))
                .collect(),
            released.iter().map(|n| n.hostname.clone()).collect(),
        )
    }

    #[test]
    fn each_migration_lists_next_best_destinations_that_stay_and_have_room() {
        // h4 and h5 are small and lightly used: emptied onto the big ones.
        let m = json!({
            "nodes": [node("h1", 16, 32768), node("h2", 16, 32768), node("h3", 16, 32768),
                      node("h4", 4, 8192), node("h5", 4, 8192)],
            "instances": [vm("a", "h1", 8, 8192), vm("b", "h2", 8, 8192), vm("c", "h3", 14, 8192),
                          vm("d", "h4", 2, 2048), vm("e", "h5", 2, 2048)]
        });
        let s = Basic
            .execute(m.clone(), json!({"now": 0.0}))
            .expect("solution");
        let moves: Vec<&Action> = s
            .actions
            .iter()
            .filter(|a| a.action_type == "migrate")
            .collect();
        assert!(!moves.is_empty());
        let model = model(m);
        let sources: Vec<&str> = moves
            .iter()
            .filter_map(|a| a.input_parameters["source_node"].as_str())
            .collect();
        for a in &moves {
            let list = s.candidates(&a.id, "destination_node");
            let dest = a.input_parameters["destination_node"].as_str();
            assert!(!list.is_empty(), "{} has candidates", a.id);
            for c in list {
                let c = c.as_str().expect("a hostname");
                assert!(!sources.contains(&c), "{c} is emptied");
                assert_ne!(Some(c), dest);
                assert!(model.node(c).is_some());
            }
            // The emptiest first.
            assert_eq!(
                list.first().and_then(Value::as_str).map(|h| h != "h3"),
                Some(true)
            );
        }
        // Leaving room: a host is filled only up to its share.
        let tight = Basic
            .execute(model_json_with_room(), json!({"now": 0.0}))
            .expect("solution");
        assert!(tight.actions.iter().any(|a| a.action_type == "migrate"));
        let roomy = Basic
            .execute(
                model_json_with_room(),
                json!({"now": 0.0, "fallback_room": 0.5}),
            )
            .expect("solution");
        assert!(
            roomy.actions.iter().all(|a| a.action_type != "migrate"),
            "{:?}",
            roomy.actions
        );
    }

    /// Two hosts, each half full: consolidation would empty one, unless it
    /// must leave half of each host free.
    fn model_json_with_room() -> Value {
        json!({
            "nodes": [node("h1", 8, 8192), node("h2", 8, 8192)],
            "instances": [vm("a", "h1", 3, 2048), vm("b", "h2", 3, 2048)]
        })
    }

    #[test]
    fn the_model_as_text_gives_the_same_solution_as_the_model_as_a_value() {
        let m = json!({
            "nodes": [node("h1", 16, 32768), node("h2", 16, 32768), node("h3", 16, 32768)],
            "instances": [vm("a", "h1", 8, 8192), vm("b", "h2", 4, 4096), vm("c", "h3", 2, 2048)]
        });
        let p = json!({"now": 0.0});
        let from_value = Basic.execute(m.clone(), p.clone()).expect("value");
        let from_text = Basic.execute_json(&m.to_string(), p).expect("text");
        assert!(!from_value.actions.is_empty());
        assert_eq!(
            serde_json::to_value(&from_value.actions).ok(),
            serde_json::to_value(&from_text.actions).ok()
        );
        let bad = Basic
            .execute_json("{\"nodes\": 3}", json!({}))
            .map(|_| ())
            .unwrap_err();
        assert!(bad.message().contains("cluster model"), "{}", bad.message());
    }

    #[test]
    fn empties_the_least_loaded_hosts_within_every_dimension() {
        let m = model(json!({
            "nodes": [node("h1", 16, 32768), node("h2", 16, 32768), node("h3", 16, 32768)],
            "instances": [vm("a", "h1", 8, 8192), vm("b", "h2", 4, 4096), vm("c", "h3", 2, 2048)]
        }));
        let (moves, released) = run(&m, 0, 0.0, 0.0);
        assert_eq!(released, ["h3", "h2"]);
        assert!(moves.iter().all(|m| m.2 == "h1"), "{moves:?}");
    }

    #[test]
    fn memory_binds_even_when_cpu_would_fit() {
        let m = model(json!({
            "nodes": [node("h1", 64, 8192), node("h2", 64, 8192)],
            "instances": [vm("a", "h1", 1, 6144), vm("b", "h2", 1, 4096)]
        }));
        let (moves, released) = run(&m, 0, 0.0, 0.0);
        assert!(
            moves.is_empty() && released.is_empty(),
            "nothing fits: {moves:?}"
        );
    }

    #[test]
    fn nothing_to_do_on_a_packed_or_single_host_cluster() {
        let m =
            model(json!({"nodes": [node("h1", 16, 32768)], "instances": [vm("a", "h1", 4, 4096)]}));
        assert_eq!(run(&m, 0, 0.0, 0.0), (vec![], vec![]));
        let m = model(json!({
            "nodes": [node("h1", 4, 4096), node("h2", 4, 4096)],
            "instances": [vm("a", "h1", 4, 4096), vm("b", "h2", 4, 4096)]
        }));
        assert_eq!(run(&m, 0, 0.0, 0.0), (vec![], vec![]));
        // The empty solutions say why.
        let why = |m: Value| {
            Basic
                .execute(m, json!({}))
                .expect("solution")
                .reason()
                .map(str::to_string)
        };
        assert_eq!(
            why(json!({"nodes": [node("h1", 16, 32768)], "instances": [vm("a", "h1", 4, 4096)]})),
            Some("1 node(s) hold instances: there is nothing to consolidate".into())
        );
        let packed = json!({
            "nodes": [node("h1", 4, 4096), node("h2", 4, 4096)],
            "instances": [vm("a", "h1", 4, 4096), vm("b", "h2", 4, 4096)]
        });
        assert!(why(packed).is_some_and(|w| w.starts_with("no node in use can be emptied")));
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
        let (moves, released) = run(&m, 0, 3600.0, 2000.0);
        assert!(moves.iter().all(|m| m.0 != "b"), "{moves:?}");
        assert_eq!(released, ["h1"]);
        // Later, b is movable again and its host, the least loaded, goes.
        assert_eq!(run(&m, 0, 3600.0, 5000.0).1, ["h2"]);
    }

    #[test]
    fn keeps_the_big_host_and_releases_the_small_ones() {
        // h1 (64 vcpus) holds 16, h2 and h3 (32 vcpus) 16 each: 48 in all,
        // which h1 alone can hold. Taking the least loaded host first (h1,
        // 25 %) fills h2 with its instances and leaves h3 nowhere to go:
        // two hosts in use. Keeping the biggest host releases both others.
        let m = model(json!({
            "nodes": [node("h1", 64, 262144), node("h2", 32, 131072), node("h3", 32, 131072)],
            "instances": [vm("a", "h1", 4, 4096), vm("b", "h1", 4, 4096), vm("c", "h1", 4, 4096),
                          vm("d", "h1", 4, 4096), vm("e", "h2", 8, 8192), vm("f", "h2", 8, 8192),
                          vm("g", "h3", 8, 8192), vm("h", "h3", 8, 8192)]
        }));
        let (moves, released) = run(&m, 0, 0.0, 0.0);
        assert_eq!(released, ["h3", "h2"]);
        assert_eq!(moves.len(), 4);
        assert!(moves.iter().all(|m| m.2 == "h1"), "{moves:?}");
        // Within a migration budget, only what fits in it.
        let (moves, released) = run(&m, 3, 0.0, 0.0);
        assert_eq!((moves.len(), released), (2, vec!["h3".to_string()]));
    }

    #[test]
    fn every_state_of_the_plan_is_within_capacity_on_random_clusters() {
        for seed in 0..400 {
            let c = testgen::cluster(seed);
            let max = if seed % 5 == 0 {
                (seed % 13) as usize
            } else {
                0
            };
            let (moves, released) = consolidate(&c.model, max, c.interval, c.now);
            if max > 0 {
                assert!(moves.len() <= max, "seed {seed}");
            }
            let moves: Vec<(&Instance, &str, &str)> = moves
                .iter()
                .map(|(i, f, t)| (*i, f.hostname.as_str(), t.hostname.as_str()))
                .collect();
            let released: Vec<&str> = released.iter().map(|n| n.hostname.as_str()).collect();
            testgen::check_plan(
                &c,
                &moves,
                &released,
                &testgen::Rules {
                    cap: &|n| {
                        let (v, m, d) = n.capacity();
                        vec![v, m, d]
                    },
                    need: &|i| vec![i.vcpus as f64, i.memory as f64, i.disk as f64],
                    may_receive: &usable,
                    whole: true,
                    wake: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// Where the time of a large run goes, on a model file (`sextant sim
    /// generate --format json`): `SEXTANT_BENCH_MODEL=large.json cargo test
    /// --release -p sextant-strategies -- --ignored --nocapture timing`.
    #[test]
    #[ignore]
    fn timing_of_a_large_model() {
        let Ok(path) = std::env::var("SEXTANT_BENCH_MODEL") else {
            return;
        };
        let text = std::fs::read_to_string(path).expect("model file");
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let v: Value = serde_json::from_str(&text).expect("json");
            let t_text = t.elapsed();
            let v2 = v.clone();
            let t = std::time::Instant::now();
            let m = common::model(v2).expect("model");
            let t_model = t.elapsed();
            let mut n = 0;
            let mut t_cons = std::time::Duration::MAX;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                n = consolidate(&m, 0, 0.0, 0.0).0.len();
                t_cons = t_cons.min(t.elapsed());
            }
            let t = std::time::Instant::now();
            drop(m);
            let t_drop = t.elapsed();
            let v2 = v.clone();
            let t = std::time::Instant::now();
            let s = Basic.execute(v2, json!({})).expect("plan");
            let t_basic = t.elapsed();
            let t = std::time::Instant::now();
            drop(s);
            let t_sol = t.elapsed();
            let t = std::time::Instant::now();
            crate::vm_workload_consolidation::VmWorkloadConsolidation
                .execute(v, json!({}))
                .expect("plan");
            let t_vwc = t.elapsed();
            eprintln!(
                "text->Value {t_text:?} | in execute: Value->model {t_model:?}, consolidate {t_cons:?} (best of 5; {n} moves), model drop {t_drop:?} | basic execute {t_basic:?} (then solution drop {t_sol:?}), vm_workload_consolidation execute {t_vwc:?}"
            );
        }
    }
}
