//! `vm_workload_consolidation` (goal `server_consolidation`): Watcher's "VM
//! Workload Consolidation Strategy", which packs by what instances use
//! rather than what they are allocated: cpu `instance_cpu_usage` × vcpus /
//! 100 cores, ram `instance_ram_usage` MB, disk `instance_root_disk_size` GB
//! (each falling back to the allocation when the metric is absent).
//!
//! Two phases, as Watcher's: offload, which moves instances (busiest first)
//! off hosts whose usage exceeds their capacity onto the least used hosts
//! with room; then consolidation, which empties hosts whole and disables
//! them (reason `watcher_disabled`), keeping the biggest, most used ones as
//! `basic` does (on hosts of one size: the least used onto the most used).
//! Disabled hosts that receive instances are enabled first.
//!
//! Unlike Watcher's, a destination must have room for the instance both by
//! usage and by allocation (vcpus, memory, disk with ratios and
//! reservations), so the plan never overcommits what Nova will check; a
//! host is emptied whole or not at all, and a host that gives (offload or
//! consolidation) never receives, so capacity holds at every point the plan
//! can reach, whatever order the migrations run in; and
//! excluded, locked and recently migrated instances stay put.

use crate::common;
use crate::fit::FitIndex;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Node};
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    #[allow(dead_code)]
    period: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    granularity: Option<f64>,
    #[serde(default)]
    min_migration_interval: f64,
    #[serde(default)]
    now: Option<f64>,
}

#[derive(Default)]
pub struct VmWorkloadConsolidation;

type R3 = [f64; 3];
/// Use against the physical size (vcpus, memory, disk), then allocation
/// against what is allocatable (with ratios and reservations).
type R6 = [f64; 6];

fn add(a: R6, b: R6) -> R6 {
    std::array::from_fn(|d| a[d] + b[d])
}
fn sub(a: R6, b: R6) -> R6 {
    std::array::from_fn(|d| a[d] - b[d])
}
fn within(a: &[f64], cap: &[f64]) -> bool {
    a.iter().zip(cap).all(|(a, c)| *a <= c + 1e-9)
}
/// The tightest dimension's share.
fn share(a: &[f64], cap: &[f64]) -> f64 {
    a.iter()
        .zip(cap)
        .map(|(a, c)| if *c > 0.0 { a / c } else { 0.0 })
        .fold(0.0, f64::max)
}

fn usage(i: &Instance) -> R3 {
    let m = |k: &str| i.metrics.get(k).and_then(|x| x.mean());
    [
        m("instance_cpu_usage").map_or(i.vcpus as f64, |u| u / 100.0 * i.vcpus as f64),
        m("instance_ram_usage").unwrap_or(i.memory as f64),
        m("instance_root_disk_size").unwrap_or(i.disk as f64),
    ]
}
/// What an instance takes of a host (see [`R6`]).
fn need(i: &Instance) -> R6 {
    let u = usage(i);
    [
        u[0],
        u[1],
        u[2],
        i.vcpus as f64,
        i.memory as f64,
        i.disk as f64,
    ]
}
/// What a host has (see [`R6`]).
fn size6(n: &Node) -> R6 {
    let (v, m, d) = n.capacity();
    [n.vcpus as f64, n.memory as f64, n.disk as f64, v, m, d]
}

/// An instance and what it takes.
type Vm<'a> = (&'a Instance, R6);

struct Host<'a> {
    node: &'a Node,
    cap: R6,
    used: R6,
    on: Vec<Vm<'a>>,
    received: bool,
    /// Gave instances in the offload: never receives.
    gave: bool,
}

impl Host<'_> {
    fn fits(&self, need: &R6) -> bool {
        within(&add(self.used, *need), &self.cap)
    }
    /// Use against the physical size, the tightest dimension.
    fn load(&self) -> f64 {
        share(&self.used[..3], &self.cap[..3])
    }
    fn overused(&self) -> bool {
        !within(&self.used[..3], &self.cap[..3])
    }
    fn room(&self) -> R6 {
        sub(self.cap, self.used)
    }
}

/// Moves `vm` from `src` to `dst` in the loads and records the move.
fn place<'a>(
    hosts: &mut [Host<'a>],
    moves: &mut Vec<(&'a Instance, usize, usize)>,
    vm: Vm<'a>,
    src: usize,
    dst: usize,
) {
    hosts[src].used = sub(hosts[src].used, vm.1);
    hosts[dst].used = add(hosts[dst].used, vm.1);
    hosts[dst].received = true;
    moves.push((vm.0, src, dst));
}

/// The hosts' order in the least-used-first offload index.
fn by_load(h: &Host, k: usize) -> (u64, usize) {
    (h.load().max(0.0).to_bits(), k)
}

common::strategy_on_model_input!(VmWorkloadConsolidation);

impl VmWorkloadConsolidation {
    fn run(
        &self,
        model: common::ModelInput<'_>,
        parameters: Value,
    ) -> Result<Solution, PluginError> {
        let p: Params = common::params("vm_workload_consolidation", parameters)?;
        let m = common::model(model)?;
        let now = common::now(p.now);
        let movable = |i: &Instance| {
            let recent = common::recently_migrated(i, now, p.min_migration_interval);
            matches!(i.state.as_str(), "active" | "stopped")
                && !i.watcher_exclude
                && !i.locked
                && !recent
        };
        // Up and powered-on hosts; disabled ones (by anyone) can receive in
        // the offload phase only after being enabled, so only enabled ones
        // and those Watcher disabled are considered.
        let mut by_host: std::collections::HashMap<&str, Vec<Vm>> = Default::default();
        for i in &m.instances {
            by_host
                .entry(i.host.as_str())
                .or_default()
                .push((i, need(i)));
        }
        let mut hosts: Vec<Host> = m
            .nodes
            .iter()
            .filter(|n| n.state == "up" && n.power_state == "on")
            .filter(|n| {
                n.status == "enabled" || n.disabled_reason.as_deref() == Some("watcher_disabled")
            })
            .map(|n| {
                let on = by_host.remove(n.hostname.as_str()).unwrap_or_default();
                Host {
                    node: n,
                    cap: size6(n),
                    used: on.iter().fold([0.0; 6], |u, vm| add(u, vm.1)),
                    on,
                    received: false,
                    gave: false,
                }
            })
            .collect();
        hosts.sort_by(|a, b| a.node.hostname.cmp(&b.node.hostname));
        let mut moves: Vec<(&Instance, usize, usize)> = Vec::new();
        // 1. Offload: hosts using more than they have, onto the least used
        // hosts with room (an ordered index of the hosts by use; the least
        // used ones nearly always have room, so the walk is short). A host
        // that gives never receives, in this phase or the next.
        let overused: Vec<usize> = (0..hosts.len()).filter(|&k| hosts[k].overused()).collect();
        if !overused.is_empty() {
            for &k in &overused {
                hosts[k].gave = true;
            }
            let mut least: std::collections::BTreeSet<(u64, usize)> = (0..hosts.len())
                .filter(|&k| !hosts[k].gave)
                .map(|k| by_load(&hosts[k], k))
                .collect();
            for &src in &overused {
                let mut list: Vec<Vm> = hosts[src]
                    .on
                    .iter()
                    .copied()
                    .filter(|vm| movable(vm.0))
                    .collect();
                list.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]).then(a.0.uuid.cmp(&b.0.uuid)));
                for vm in list {
                    if !hosts[src].overused() {
                        break;
                    }
                    let dst = least
                        .iter()
                        .map(|&(_, d)| d)
                        .find(|&d| hosts[d].fits(&vm.1));
                    if let Some(d) = dst {
                        least.remove(&by_load(&hosts[d], d));
                        place(&mut hosts, &mut moves, vm, src, d);
                        least.insert(by_load(&hosts[d], d));
                        hosts[src].on.retain(|x| x.0.uuid != vm.0.uuid);
                    }
                }
            }
        }
        // 2. Consolidation: empty hosts whole, as `basic` does. Hosts are
        // ranked by how much they are worth keeping: those with an instance
        // that must stay first, then the largest (all six dimensions, each
        // weighed by how full the cluster is in it), then the fullest.
        // Sources are tried from the bottom of the ranking; each instance
        // (biggest first) goes to the first host in the ranking with room,
        // which an index finds in O(log n).
        let total_cap = hosts.iter().fold([0.0; 6], |t, h| add(t, h.cap));
        let total_used = hosts.iter().fold([0.0; 6], |t, h| add(t, h.used));
        let weight: R6 = std::array::from_fn(|d| {
            if total_cap[d] > 0.0 {
                ((total_used[d] / total_cap[d]).max(0.0) + 1e-3) / total_cap[d]
            } else {
                0.0
            }
        });
        let size = |x: &R6| (0..6).map(|d| weight[d] * x[d]).sum::<f64>();
        let pinned: Vec<bool> = hosts
            .iter()
            .map(|h| !h.on.iter().all(|vm| movable(vm.0)))
            .collect();
        let mut rank: Vec<usize> = (0..hosts.len())
            .filter(|&k| !hosts[k].on.is_empty() || hosts[k].received)
            .collect();
        rank.sort_by(|&a, &b| {
            let (ha, hb) = (&hosts[a], &hosts[b]);
            pinned[b]
                .cmp(&pinned[a])
                .then(size(&hb.cap).total_cmp(&size(&ha.cap)))
                .then(share(&hb.used, &hb.cap).total_cmp(&share(&ha.used, &ha.cap)))
                .then(a.cmp(&b))
        });
        let mut fit = FitIndex::<6>::new(rank.len());
        for (slot, &k) in rank.iter().enumerate() {
            if !hosts[k].gave {
                fit.set(slot, hosts[k].room());
            }
        }
        let mut released = Vec::new();
        for (slot, &src) in rank.iter().enumerate().rev() {
            if pinned[src] || hosts[src].received || hosts[src].on.is_empty() {
                continue;
            }
            let mut list = hosts[src].on.clone();
            list.sort_by(|a, b| size(&b.1).total_cmp(&size(&a.1)));
            fit.clear(slot);
            // Changes are logged to be undone when the host cannot be
            // emptied whole.
            let before = hosts[src].used;
            let mut changed: Vec<(usize, R6, bool)> = Vec::new();
            let mut trial = Vec::new();
            let mut ok = true;
            for vm in list {
                match fit.first_fit(vm.1, |s| hosts[rank[s]].fits(&vm.1)) {
                    Some(s) => {
                        let d = rank[s];
                        changed.push((s, hosts[d].used, hosts[d].received));
                        place(&mut hosts, &mut trial, vm, src, d);
                        fit.set(s, hosts[d].room());
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                hosts[src].on.clear();
                released.push(src);
                moves.extend(trial);
            } else {
                for (s, u, r) in changed.into_iter().rev() {
                    let d = rank[s];
                    (hosts[d].used, hosts[d].received) = (u, r);
                    fit.set(s, hosts[d].room());
                }
                hosts[src].used = before;
                if !hosts[src].gave {
                    fit.set(slot, hosts[src].room());
                }
            }
        }
        // Actions: enable receivers Watcher disabled, migrations, disables.
        let mut actions = Vec::new();
        for h in hosts
            .iter()
            .filter(|h| h.received && h.node.status != "enabled")
        {
            actions.push(Action {
                id: format!("enable-{}", h.node.hostname),
                action_type: "change_nova_service_state".into(),
                resource_id: Some(h.node.uuid.clone()),
                input_parameters: json!({"state": "enabled", "resource_name": h.node.hostname}),
            });
        }
        for (i, src, dst) in &moves {
            actions.push(common::migrate(
                i,
                i.state == "active",
                &hosts[*src].node.hostname,
                Some(&hosts[*dst].node.hostname),
            ));
        }
        for &k in &released {
            if hosts[k].node.status == "enabled" {
                actions.push(common::disable(hosts[k].node));
            }
        }
        Ok(common::with_destination_candidates(
            common::server_consolidation(actions, &m, released.len(), moves.len()),
            &m,
        ))
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "period": {"type": "number", "minimum": 0, "default": 3600, "description": "The time interval in seconds for getting statistic aggregation (metrics come from the model)."},
    "granularity": {"type": "number", "minimum": 0, "default": 300, "description": "The time between two measures in an aggregated timeseries of a metric."},
    "min_migration_interval": {"type": "number", "minimum": 0, "default": 0,
      "description": "Seconds an instance stays put after a migration (metadata last_migrated_at)."},
    "now": {"type": "number", "description": "The clock in unix seconds, for tests; now when absent."}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn node(h: &str, extra: Value) -> Value {
        let mut n = json!({"uuid": format!("n-{h}"), "hostname": h, "vcpus": 8, "memory": 8192, "disk": 100});
        if let (Some(o), Some(e)) = (n.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        n
    }

    fn vm(name: &str, host: &str, vcpus: u64, cpu: f64) -> Value {
        json!({"uuid": format!("u-{name}"), "name": name, "host": host, "vcpus": vcpus, "memory": 1024, "disk": 10,
               "metrics": {"instance_cpu_usage": cpu, "instance_ram_usage": 512}})
    }

    fn ids(s: &Solution) -> Vec<&str> {
        s.actions.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn packs_by_usage_but_never_overcommits_allocations() {
        // h1 holds 2 × 2 vcpus, h2 3 × 2 vcpus, all at 10 %: by usage
        // (0.2 cores each) everything fits on one host, but by allocation
        // (8 vcpus, ratio 1) neither host can take the other's instances.
        let cluster = |ratio: f64| {
            json!({"nodes": [node("h1", json!({"vcpu_ratio": ratio})), node("h2", json!({"vcpu_ratio": ratio}))],
                   "instances": [vm("a", "h1", 2, 10.0), vm("b", "h1", 2, 10.0),
                                 vm("c", "h2", 2, 10.0), vm("d", "h2", 2, 10.0), vm("e", "h2", 2, 10.0)]})
        };
        let s = VmWorkloadConsolidation
            .execute(cluster(1.0), json!({}))
            .expect("plan");
        assert!(s.actions.is_empty(), "{:?}", ids(&s));
        // With a 2.0 cpu allocation ratio, the less used host, h1, empties.
        let s = VmWorkloadConsolidation
            .execute(cluster(2.0), json!({}))
            .expect("plan");
        assert_eq!(ids(&s), ["migrate-a", "migrate-b", "disable-h1"]);
    }

    #[test]
    fn offloads_an_overused_host_and_enables_a_watcher_disabled_receiver() {
        // h1: 2 instances at 100 % of 6 vcpus = 12 cores of 8: overloaded.
        // h2 is idle, disabled by Watcher earlier; with a 2.0 cpu ratio.
        let m = json!({"nodes": [node("h1", json!({"vcpu_ratio": 2.0})),
                                 node("h2", json!({"status": "disabled", "disabled_reason": "watcher_disabled", "vcpu_ratio": 2.0}))],
                       "instances": [vm("a", "h1", 6, 100.0), vm("b", "h1", 6, 100.0)]});
        let s = VmWorkloadConsolidation.execute(m, json!({})).expect("plan");
        assert_eq!(ids(&s), ["enable-h2", "migrate-a"]);
    }

    #[test]
    fn does_nothing_on_a_packed_cluster_or_with_an_operator_disabled_spare() {
        let m = json!({"nodes": [node("h1", json!({})), node("h2", json!({"status": "disabled", "disabled_reason": "repair"}))],
                       "instances": [vm("a", "h1", 4, 50.0)]});
        assert!(
            VmWorkloadConsolidation
                .execute(m, json!({}))
                .expect("plan")
                .actions
                .is_empty()
        );
        assert!(
            VmWorkloadConsolidation
                .execute(json!({"nodes": [], "instances": []}), json!({"x": 1}))
                .is_err()
        );
    }

    #[test]
    fn every_state_of_the_plan_is_within_capacity_on_random_clusters() {
        use crate::common::testgen;
        for seed in 0..400 {
            let c = testgen::cluster(seed);
            let params = json!({"min_migration_interval": c.interval, "now": c.now});
            let s = VmWorkloadConsolidation
                .execute(serde_json::to_value(&c.model).expect("model"), params)
                .expect("plan");
            let instance = |id: &str| c.model.instances.iter().find(|i| i.uuid == id);
            let mut moves = Vec::new();
            let mut released = Vec::new();
            let mut enabled = Vec::new();
            for a in &s.actions {
                let p = &a.input_parameters;
                match (a.action_type.as_str(), p["state"].as_str()) {
                    ("migrate", _) => moves.push((
                        a.resource_id
                            .as_deref()
                            .and_then(instance)
                            .expect("instance"),
                        p["source_node"].as_str().expect("source"),
                        p["destination_node"].as_str().expect("destination"),
                    )),
                    (_, Some("disabled")) => {
                        released.push(p["resource_name"].as_str().expect("host"))
                    }
                    (_, Some("enabled")) => {
                        enabled.push(p["resource_name"].as_str().expect("host"))
                    }
                    _ => panic!("unexpected action {a:?}"),
                }
            }
            for (_, _, t) in &moves {
                let n = c.model.node(t).expect("target");
                assert!(
                    n.status == "enabled" || enabled.contains(t),
                    "seed {seed}: {t} receives disabled"
                );
            }
            testgen::check_plan(
                &c,
                &moves,
                &released,
                &testgen::Rules {
                    cap: &|n| size6(n).to_vec(),
                    need: &|i| need(i).to_vec(),
                    may_receive: &|n| {
                        n.state == "up"
                            && n.power_state == "on"
                            && (n.status == "enabled"
                                || n.disabled_reason.as_deref() == Some("watcher_disabled"))
                    },
                    whole: false,
                    wake: true,
                },
            );
        }
    }

    #[test]
    fn keeps_the_big_host_and_releases_the_small_ones() {
        // As basic's: by use and by allocation, the 64-vcpu host can hold
        // everything, and only keeping it releases both 32-vcpu hosts.
        let big = json!({"vcpus": 64, "memory": 65536, "disk": 400});
        let small = json!({"vcpus": 32, "memory": 32768, "disk": 200});
        let m = json!({"nodes": [node("h1", big), node("h2", small.clone()), node("h3", small)],
                       "instances": [vm("a", "h1", 4, 50.0), vm("b", "h1", 4, 50.0), vm("c", "h1", 4, 50.0),
                                     vm("d", "h1", 4, 50.0), vm("e", "h2", 8, 50.0), vm("f", "h2", 8, 50.0),
                                     vm("g", "h3", 8, 50.0), vm("h", "h3", 8, 50.0)]});
        let s = VmWorkloadConsolidation.execute(m, json!({})).expect("plan");
        assert_eq!(
            ids(&s),
            [
                "migrate-g",
                "migrate-h",
                "migrate-e",
                "migrate-f",
                "disable-h3",
                "disable-h2"
            ]
        );
    }

    #[test]
    fn a_host_that_offloads_never_receives() {
        // h1 uses 10 cores of 8 and offloads a (6) to h3, the spare; h2
        // uses 10 too: d (8) fits nowhere, c (2) fits on h1, now the least
        // used, but h1 gives, so it may not receive: c goes to h3.
        let m = json!({"nodes": [node("h1", json!({"vcpu_ratio": 4.0})), node("h2", json!({"vcpu_ratio": 4.0})),
                                 node("h3", json!({"vcpu_ratio": 4.0, "status": "disabled", "disabled_reason": "watcher_disabled"}))],
                       "instances": [vm("a", "h1", 6, 100.0), vm("b", "h1", 4, 100.0),
                                     vm("c", "h2", 2, 100.0), vm("d", "h2", 8, 100.0)]});
        let s = VmWorkloadConsolidation.execute(m, json!({})).expect("plan");
        let to: Vec<(&str, &str)> = s
            .actions
            .iter()
            .filter(|a| a.action_type == "migrate")
            .map(|a| {
                (
                    a.id.as_str(),
                    a.input_parameters["destination_node"]
                        .as_str()
                        .unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(to, [("migrate-a", "h3"), ("migrate-c", "h3")]);
        assert_eq!(ids(&s), ["enable-h3", "migrate-a", "migrate-c"]);
    }
}
