//! `vm_workload_consolidation` (goal `server_consolidation`): Watcher's "VM
//! Workload Consolidation Strategy", which packs by what instances use
//! rather than what they are allocated: cpu `instance_cpu_usage` × vcpus /
//! 100 cores, ram `instance_ram_usage` MB, disk `instance_root_disk_size` GB
//! (each falling back to the allocation when the metric is absent).
//!
//! Two phases, as Watcher's: offload, which moves instances (busiest first)
//! off hosts whose usage exceeds their capacity onto the least used hosts
//! with room; then consolidation, which empties the least used hosts onto
//! the most used ones and disables them (reason `watcher_disabled`).
//! Disabled hosts that receive instances are enabled first.
//!
//! Unlike Watcher's, a destination must have room for the instance both by
//! usage and by allocation (vcpus, memory, disk with ratios and
//! reservations), so the plan never overcommits what Nova will check; a
//! host is emptied whole or not at all and never receives once chosen as a
//! source, so capacity holds at every point the plan can reach; and
//! excluded, locked and recently migrated instances stay put.

use crate::common;
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

fn add(a: R3, b: R3) -> R3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: R3, b: R3) -> R3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn within(a: R3, cap: R3) -> bool {
    (0..3).all(|k| a[k] <= cap[k] + 1e-9)
}
/// The tightest dimension's share.
fn share(a: R3, cap: R3) -> f64 {
    (0..3)
        .map(|k| if cap[k] > 0.0 { a[k] / cap[k] } else { 0.0 })
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
fn alloc(i: &Instance) -> R3 {
    [i.vcpus as f64, i.memory as f64, i.disk as f64]
}
fn physical(n: &Node) -> R3 {
    [n.vcpus as f64, n.memory as f64, n.disk as f64]
}
fn allocatable(n: &Node) -> R3 {
    let (v, m, d) = n.capacity();
    [v, m, d]
}

struct Host<'a> {
    node: &'a Node,
    used: R3,
    alloc: R3,
    on: Vec<&'a Instance>,
    source: bool,
    received: bool,
}

impl Host<'_> {
    fn fits(&self, i: &Instance) -> bool {
        within(add(self.used, usage(i)), physical(self.node))
            && within(add(self.alloc, alloc(i)), allocatable(self.node))
    }
    fn load(&self) -> f64 {
        share(self.used, physical(self.node))
    }
}

/// Moves `i` from `src` to `dst` in the loads and records the move.
fn place<'a>(
    hosts: &mut [Host<'a>],
    moves: &mut Vec<(&'a Instance, usize, usize)>,
    i: &'a Instance,
    src: usize,
    dst: usize,
) {
    hosts[src].used = sub(hosts[src].used, usage(i));
    hosts[src].alloc = sub(hosts[src].alloc, alloc(i));
    hosts[dst].used = add(hosts[dst].used, usage(i));
    hosts[dst].alloc = add(hosts[dst].alloc, alloc(i));
    hosts[dst].received = true;
    moves.push((i, src, dst));
}

impl Strategy for VmWorkloadConsolidation {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
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
        let mut by_host: std::collections::HashMap<&str, Vec<&Instance>> = Default::default();
        for i in &m.instances {
            by_host.entry(i.host.as_str()).or_default().push(i);
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
                    used: on.iter().fold([0.0; 3], |u, i| add(u, usage(i))),
                    alloc: on.iter().fold([0.0; 3], |u, i| add(u, alloc(i))),
                    on,
                    source: false,
                    received: false,
                }
            })
            .collect();
        hosts.sort_by(|a, b| a.node.hostname.cmp(&b.node.hostname));
        let mut moves: Vec<(&Instance, usize, usize)> = Vec::new();
        // 1. Offload: hosts using more than they have.
        for src in 0..hosts.len() {
            if within(hosts[src].used, physical(hosts[src].node)) {
                continue;
            }
            let mut list: Vec<&Instance> = hosts[src]
                .on
                .iter()
                .copied()
                .filter(|i| movable(i))
                .collect();
            list.sort_by(|a, b| {
                usage(b)[0]
                    .total_cmp(&usage(a)[0])
                    .then(a.uuid.cmp(&b.uuid))
            });
            for i in list {
                if within(hosts[src].used, physical(hosts[src].node)) {
                    break;
                }
                let dst = (0..hosts.len())
                    .filter(|&d| d != src && hosts[d].fits(i))
                    .min_by(|&a, &b| hosts[a].load().total_cmp(&hosts[b].load()).then(a.cmp(&b)));
                if let Some(d) = dst {
                    place(&mut hosts, &mut moves, i, src, d);
                    hosts[src].on.retain(|x| x.uuid != i.uuid);
                }
            }
        }
        // 2. Consolidation: empty the least used hosts whole.
        let mut order: Vec<usize> = (0..hosts.len())
            .filter(|&k| !hosts[k].on.is_empty())
            .collect();
        order.sort_by(|&a, &b| hosts[a].load().total_cmp(&hosts[b].load()).then(a.cmp(&b)));
        let mut released = Vec::new();
        for src in order {
            if hosts[src].received || !hosts[src].on.iter().all(|i| movable(i)) {
                continue;
            }
            let mut list = hosts[src].on.clone();
            list.sort_by(|a, b| {
                share(usage(b), physical(hosts[src].node))
                    .total_cmp(&share(usage(a), physical(hosts[src].node)))
            });
            // Trial on copies of the loads.
            let saved: Vec<(R3, R3, bool)> = hosts
                .iter()
                .map(|h| (h.used, h.alloc, h.received))
                .collect();
            let mut trial = Vec::new();
            let mut ok = true;
            for i in list {
                let dst = (0..hosts.len())
                    .filter(|&d| {
                        d != src
                            && !hosts[d].source
                            && (hosts[d].received || !hosts[d].on.is_empty())
                            && hosts[d].fits(i)
                    })
                    .max_by(|&a, &b| hosts[a].load().total_cmp(&hosts[b].load()).then(b.cmp(&a)));
                match dst {
                    Some(d) => {
                        place(&mut hosts, &mut trial, i, src, d);
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                hosts[src].source = true;
                hosts[src].on.clear();
                released.push(src);
                moves.extend(trial);
            } else {
                for (h, (u, a, r)) in hosts.iter_mut().zip(saved) {
                    (h.used, h.alloc, h.received) = (u, a, r);
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
                actions.push(Action {
                    id: format!("disable-{}", hosts[k].node.hostname),
                    action_type: "change_nova_service_state".into(),
                    resource_id: Some(hosts[k].node.uuid.clone()),
                    input_parameters: json!({"state": "disabled", "disabled_reason": "watcher_disabled", "resource_name": hosts[k].node.hostname}),
                });
            }
        }
        let enabled = m.nodes.iter().filter(|n| n.status == "enabled").count();
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
    "period": {"type": "number", "default": 3600, "description": "The time interval in seconds for getting statistic aggregation (metrics come from the model)."},
    "granularity": {"type": "number", "default": 300, "description": "The time between two measures in an aggregated timeseries of a metric."},
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
}
