//! `zone_migration` (goal `hardware_maintenance`): Watcher's "Zone
//! migration" strategy. It empties the compute nodes and storage pools an
//! operator names: instances on each `src_node` move to its `dst_node` (or
//! where the scheduler puts them when none is given), live when active and
//! cold when stopped; volumes in each `src_pool` move to its `dst_pool`, or
//! are retyped to `dst_type`; attached volumes are swapped (`swap`), and
//! with `with_attached_volume` their instances move too.
//!
//! As in Watcher, `parallel_total`, `parallel_per_node` and
//! `parallel_per_pool` cap how many actions one audit recommends (in total,
//! per source node, per source pool; 0 for no cap), so a large zone is
//! emptied over several audits, and `priority` orders what goes first. The
//! efficacy follows Watcher's HardwareMaintenance specification.
//!
//! Unlike Watcher's, a `dst_node` must exist, be usable and have room in
//! every dimension for what is sent to it (else the audit fails, naming
//! it); excluded and locked instances stay; an instance is moved once even
//! when two of its volumes bring it along.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Volume};
use sextant_plugin_api::prelude::*;
use std::collections::{BTreeSet, HashMap};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodePair {
    src_node: String,
    #[serde(default)]
    dst_node: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolPair {
    src_pool: String,
    #[serde(default)]
    dst_pool: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    src_type: Option<String>,
    #[serde(default)]
    dst_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Priority {
    #[serde(default)]
    project: Vec<String>,
    #[serde(default)]
    compute_node: Vec<String>,
    #[serde(default)]
    storage_pool: Vec<String>,
    #[serde(default)]
    compute: Option<String>,
    #[serde(default)]
    storage: Option<String>,
}

/// A count: JSON Schema's `integer` takes `6.0` as well as `6` (a number
/// with no fraction), so both are read, as Watcher's Python does.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
                .map(|f| f as u64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number >= 0")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    compute_nodes: Vec<NodePair>,
    #[serde(default)]
    storage_pools: Vec<PoolPair>,
    #[serde(default = "six", deserialize_with = "whole")]
    parallel_total: u64,
    #[serde(default = "two", deserialize_with = "whole")]
    parallel_per_node: u64,
    #[serde(default = "two", deserialize_with = "whole")]
    parallel_per_pool: u64,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    with_attached_volume: bool,
}

fn six() -> u64 {
    6
}
fn two() -> u64 {
    2
}

#[derive(Default)]
pub struct ZoneMigration;

/// Position of `x` in an operator's priority list; unlisted ones last.
fn rank(list: &[String], x: &str) -> usize {
    list.iter().position(|p| p == x).unwrap_or(list.len())
}

/// The action caps, as Watcher's ActionCounter.
struct Caps {
    total: u64,
    per_node: u64,
    per_pool: u64,
    count: u64,
    nodes: HashMap<String, u64>,
    pools: HashMap<String, u64>,
}

impl Caps {
    fn total_full(&self) -> bool {
        self.total > 0 && self.count >= self.total
    }
    fn node_full(&self, n: &str) -> bool {
        self.per_node > 0 && self.nodes.get(n).copied().unwrap_or(0) >= self.per_node
    }
    fn pool_full(&self, p: &str) -> bool {
        self.per_pool > 0 && self.pools.get(p).copied().unwrap_or(0) >= self.per_pool
    }
}

impl Strategy for ZoneMigration {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("zone_migration", parameters)?;
        let m = common::model(model)?;
        let bad = |what: String| Err(PluginError::invalid_input(what));
        for pair in &p.compute_nodes {
            if m.node(&pair.src_node).is_none() {
                return bad(format!(
                    "compute_nodes: src_node {} is not in the cluster",
                    pair.src_node
                ));
            }
            if let Some(d) = &pair.dst_node {
                match m.node(d) {
                    None => {
                        return bad(format!("compute_nodes: dst_node {d} is not in the cluster"));
                    }
                    Some(n)
                        if !(n.status == "enabled" && n.state == "up" && n.power_state == "on") =>
                    {
                        return bad(format!(
                            "compute_nodes: dst_node {d} is not usable ({}, {}, power {})",
                            n.status, n.state, n.power_state
                        ));
                    }
                    _ => {}
                }
            }
        }
        for pair in &p.storage_pools {
            if !m.storage_pools.iter().any(|s| s.name == pair.src_pool) {
                return bad(format!(
                    "storage_pools: src_pool {} is not in the cluster",
                    pair.src_pool
                ));
            }
            match (&pair.dst_pool, &pair.dst_type) {
                (Some(d), None) if !m.storage_pools.iter().any(|s| &s.name == d) => {
                    return bad(format!("storage_pools: dst_pool {d} is not in the cluster"));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return bad(format!(
                        "storage_pools: {} needs exactly one of dst_pool and dst_type",
                        pair.src_pool
                    ));
                }
            }
        }
        let pr = &p.priority;
        let mut caps = Caps {
            total: p.parallel_total,
            per_node: p.parallel_per_node,
            per_pool: p.parallel_per_pool,
            count: 0,
            nodes: HashMap::new(),
            pools: HashMap::new(),
        };
        // Instances on the source nodes, in priority order.
        let src_nodes: HashMap<&str, Option<&str>> = p
            .compute_nodes
            .iter()
            .map(|c| (c.src_node.as_str(), c.dst_node.as_deref()))
            .collect();
        let mut instances: Vec<&Instance> = m
            .instances
            .iter()
            .filter(|i| src_nodes.contains_key(i.host.as_str()))
            .collect();
        let size = |i: &Instance| match pr.compute.as_deref() {
            Some("vcpu_num") => i.vcpus,
            Some("mem_size") => i.memory,
            Some("disk_size") => i.disk,
            _ => 0,
        };
        instances.sort_by(|a, b| {
            rank(&pr.project, &a.project_id)
                .cmp(&rank(&pr.project, &b.project_id))
                .then(rank(&pr.compute_node, &a.host).cmp(&rank(&pr.compute_node, &b.host)))
                .then(size(b).cmp(&size(a)))
                .then(a.uuid.cmp(&b.uuid))
        });
        let mut volumes: Vec<&Volume> = m
            .volumes
            .iter()
            .filter(|v| p.storage_pools.iter().any(|s| s.src_pool == v.pool))
            .collect();
        let vsize = |v: &Volume| {
            if pr.storage.as_deref() == Some("size") {
                v.size
            } else {
                0
            }
        };
        volumes.sort_by(|a, b| {
            rank(&pr.project, &a.project_id)
                .cmp(&rank(&pr.project, &b.project_id))
                .then(rank(&pr.storage_pool, &a.pool).cmp(&rank(&pr.storage_pool, &b.pool)))
                .then(vsize(b).cmp(&vsize(a)))
                .then(a.uuid.cmp(&b.uuid))
        });
        let live_ok = |i: &Instance| i.state == "active";
        let cold_ok = |i: &Instance| i.state == "stopped";
        let movable = |i: &Instance| !i.watcher_exclude && !i.locked && (live_ok(i) || cold_ok(i));
        // Room used on named destinations.
        let mut room: HashMap<&str, (f64, f64, f64)> = HashMap::new();
        let mut actions: Vec<Action> = Vec::new();
        let mut moved: BTreeSet<String> = BTreeSet::new();
        let (mut planned_live, mut planned_cold, mut planned_vm, mut planned_vu) = (0, 0, 0, 0);
        let mut migrate = |i: &Instance,
                           caps: &mut Caps,
                           actions: &mut Vec<Action>,
                           moved: &mut BTreeSet<String>|
         -> Result<(), PluginError> {
            if moved.contains(&i.uuid)
                || !movable(i)
                || caps.total_full()
                || caps.node_full(&i.host)
            {
                return Ok(());
            }
            let dst = src_nodes.get(i.host.as_str()).copied().flatten();
            if let Some(d) = dst {
                let n = m
                    .node(d)
                    .ok_or_else(|| PluginError::invalid_input(format!("dst_node {d} vanished")))?;
                let used = room.entry(d).or_insert_with(|| {
                    m.instances
                        .iter()
                        .filter(|o| o.host == d)
                        .fold((0.0, 0.0, 0.0), |u, o| {
                            (
                                u.0 + o.vcpus as f64,
                                u.1 + o.memory as f64,
                                u.2 + o.disk as f64,
                            )
                        })
                });
                let (cv, cm, cd) = n.capacity();
                let need = (i.vcpus as f64, i.memory as f64, i.disk as f64);
                if used.0 + need.0 > cv + 1e-9
                    || used.1 + need.1 > cm + 1e-9
                    || used.2 + need.2 > cd + 1e-9
                {
                    return Err(PluginError::invalid_input(format!(
                        "dst_node {d} has no room for instance {} ({}): the zone cannot be emptied there",
                        i.name, i.uuid
                    )));
                }
                *used = (used.0 + need.0, used.1 + need.1, used.2 + need.2);
            }
            let live = live_ok(i);
            if live {
                planned_live += 1
            } else {
                planned_cold += 1
            }
            actions.push(common::migrate(i, live, &i.host, dst));
            caps.count += 1;
            *caps.nodes.entry(i.host.clone()).or_insert(0) += 1;
            moved.insert(i.uuid.clone());
            Ok(())
        };
        for i in &instances {
            migrate(i, &mut caps, &mut actions, &mut moved)?;
        }
        for v in &volumes {
            if caps.total_full() {
                break;
            }
            if caps.pool_full(&v.pool) {
                continue;
            }
            let pair = p.storage_pools.iter().find(|s| s.src_pool == v.pool);
            let Some(pair) = pair else { continue };
            let (kind, dst_node, dst_type) = match v.status.as_str() {
                "available" => match (&pair.dst_pool, &pair.dst_type) {
                    (Some(d), _) => ("migrate", Some(d.clone()), None),
                    (None, t) => ("retype", None, t.clone()),
                },
                "in-use" => ("swap", pair.dst_pool.clone(), pair.dst_type.clone()),
                _ => continue,
            };
            if kind == "swap" {
                planned_vu += 1
            } else {
                planned_vm += 1
            }
            actions.push(Action {
                id: format!("volume-{kind}-{}", v.name),
                action_type: "volume_migrate".into(),
                resource_id: Some(v.uuid.clone()),
                input_parameters: json!({
                    "migration_type": kind,
                    "destination_node": dst_node,
                    "destination_type": dst_type,
                    "resource_name": v.name,
                }),
            });
            caps.count += 1;
            *caps.pools.entry(v.pool.clone()).or_insert(0) += 1;
            if kind == "swap" && p.with_attached_volume {
                for a in &v.attachments {
                    if let Some(i) = m.instances.iter().find(|i| &i.uuid == a) {
                        migrate(i, &mut caps, &mut actions, &mut moved)?;
                    }
                }
            }
        }
        let live_count = instances.iter().filter(|i| live_ok(i)).count();
        let cold_count = instances.iter().filter(|i| cold_ok(i)).count();
        let vm_count = volumes.iter().filter(|v| v.status == "available").count();
        let vu_count = volumes.iter().filter(|v| v.status == "in-use").count();
        let ratio = |planned: usize, actual: usize| {
            if actual > 0 {
                planned as f64 / actual as f64 * 100.0
            } else {
                0.0
            }
        };
        let ind = |name: &str, description: &str, value: usize| json!({"name": name, "description": description, "unit": null, "value": value});
        let glob = |name: &str, description: &str, value: f64| json!({"name": name, "description": description, "unit": "%", "value": value});
        Ok(Solution {
            actions,
            efficacy_indicators: json!([
                ind(
                    "live_migrate_instance_count",
                    "The number of instances actually live migrated.",
                    live_count
                ),
                ind(
                    "planned_live_migrate_instance_count",
                    "The number of instances planned to live migrate.",
                    planned_live
                ),
                ind(
                    "cold_migrate_instance_count",
                    "The number of instances actually cold migrated.",
                    cold_count
                ),
                ind(
                    "planned_cold_migrate_instance_count",
                    "The number of instances planned to cold migrate.",
                    planned_cold
                ),
                ind(
                    "volume_migrate_count",
                    "The number of detached volumes actually migrated.",
                    vm_count
                ),
                ind(
                    "planned_volume_migrate_count",
                    "The number of detached volumes planned to migrate.",
                    planned_vm
                ),
                ind(
                    "volume_update_count",
                    "The number of attached volumes actually migrated.",
                    vu_count
                ),
                ind(
                    "planned_volume_update_count",
                    "The number of attached volumes planned to migrate.",
                    planned_vu
                ),
            ]),
            extra: json!({"global_efficacy": [
                glob("live_instance_migrate_ratio", "Ratio of actual live migrated instances to planned live migrate instances.", ratio(planned_live, live_count)),
                glob("cold_instance_migrate_ratio", "Ratio of actual cold migrated instances to planned cold migrate instances.", ratio(planned_cold, cold_count)),
                glob("volume_migrate_ratio", "Ratio of actual detached volumes migrated to planned detached volumes migrate.", ratio(planned_vm, vm_count)),
                glob("volume_update_ratio", "Ratio of actual attached volumes migrated to planned attached volumes migrate.", ratio(planned_vu, vu_count)),
            ]}),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "compute_nodes": {"type": "array", "description": "Compute nodes to migrate.",
      "items": {"type": "object", "properties": {
        "src_node": {"type": "string", "description": "A compute node from which instances migrate."},
        "dst_node": {"type": "string", "description": "A compute node to which instances migrate."}},
        "required": ["src_node"], "additionalProperties": false}},
    "storage_pools": {"type": "array", "description": "Storage pools to migrate.",
      "items": {"type": "object", "properties": {
        "src_pool": {"type": "string", "description": "A storage pool from which volumes migrate."},
        "dst_pool": {"type": "string", "description": "A storage pool to which volumes migrate."},
        "src_type": {"type": "string", "description": "The volume type of the source pool."},
        "dst_type": {"type": "string", "description": "The volume type to which volumes are retyped."}},
        "additionalProperties": false,
        "oneOf": [{"required": ["src_pool", "dst_pool"], "not": {"required": ["dst_type"]}},
                  {"required": ["src_pool", "dst_type"], "not": {"required": ["dst_pool"]}}]}},
    "parallel_total": {"type": "integer", "minimum": 0, "default": 6, "description": "The total number of actions in one audit; 0 for no cap."},
    "parallel_per_node": {"type": "integer", "minimum": 0, "default": 2, "description": "The number of actions per source compute node; 0 for no cap."},
    "parallel_per_pool": {"type": "integer", "minimum": 0, "default": 2, "description": "The number of actions per source storage pool; 0 for no cap."},
    "priority": {"type": "object", "description": "What goes first.", "additionalProperties": false, "properties": {
        "project": {"type": "array", "items": {"type": "string"}},
        "compute_node": {"type": "array", "items": {"type": "string"}},
        "storage_pool": {"type": "array", "items": {"type": "string"}},
        "compute": {"enum": ["vcpu_num", "mem_size", "disk_size", "created_at"]},
        "storage": {"enum": ["size", "created_at"]}}},
    "with_attached_volume": {"type": "boolean", "default": false, "description": "Migrate the instances attached to migrated volumes too."}
  },
  "additionalProperties": false
}"#;

pub const HARDWARE_MAINTENANCE: &str = r#"[
  {"name": "live_migrate_instance_count", "description": "The number of instances actually live migrated.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "planned_live_migrate_instance_count", "description": "The number of instances planned to live migrate.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "cold_migrate_instance_count", "description": "The number of instances actually cold migrated.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "planned_cold_migrate_instance_count", "description": "The number of instances planned to cold migrate.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "volume_migrate_count", "description": "The number of detached volumes actually migrated.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "planned_volume_migrate_count", "description": "The number of detached volumes planned to migrate.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "volume_update_count", "description": "The number of attached volumes actually migrated.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"},
  {"name": "planned_volume_update_count", "description": "The number of attached volumes planned to migrate.", "unit": null, "schema": "{\"type\": \"integer\", \"minimum\": 0}"}
]"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_written_with_a_zero_fraction_are_read_as_whole_numbers() {
        // `-p parallel_total=6.0` passes the schema's `integer` but was
        // refused by serde's u64 when the strategy ran: the audit FAILED.
        let p: Params = common::params(
            "zone_migration",
            json!({"parallel_total": 6.0, "parallel_per_node": 1e15, "parallel_per_pool": 3}),
        )
        .expect("whole numbers");
        assert_eq!(
            (p.parallel_total, p.parallel_per_node, p.parallel_per_pool),
            (6, 1_000_000_000_000_000, 3)
        );
        for bad in [json!(6.5), json!(-1.0), json!(1e300)] {
            let e = common::params::<Params>("zone_migration", json!({"parallel_total": bad}))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("whole number"), "{bad}: {e}");
        }
    }

    fn uuid(k: u32) -> String {
        format!("00000000-0000-4000-8000-{k:012}")
    }

    fn model() -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "c1", "vcpus": 16, "memory": 16384, "disk": 500},
                {"uuid": "n2", "hostname": "c2", "vcpus": 8, "memory": 16384, "disk": 500},
                {"uuid": "n3", "hostname": "c3", "vcpus": 16, "memory": 16384, "disk": 500}
            ],
            "instances": [
                {"uuid": uuid(1), "name": "a", "host": "c1", "vcpus": 2, "memory": 1024, "disk": 10, "project_id": "p2"},
                {"uuid": uuid(2), "name": "b", "host": "c1", "vcpus": 4, "memory": 1024, "disk": 10, "state": "stopped", "project_id": "p1"},
                {"uuid": uuid(3), "name": "c", "host": "c1", "vcpus": 2, "memory": 1024, "disk": 10, "locked": true},
                {"uuid": uuid(4), "name": "d", "host": "c3", "vcpus": 2, "memory": 1024, "disk": 10}
            ],
            "storage_pools": [
                {"name": "s1@lvm#p1", "total_capacity_gb": 1000, "free_capacity_gb": 900, "volume_type": ["lvm"]},
                {"name": "s2@lvm#p2", "total_capacity_gb": 1000, "free_capacity_gb": 1000, "volume_type": ["lvm"]}
            ],
            "volumes": [
                {"uuid": uuid(11), "name": "v1", "size": 10, "pool": "s1@lvm#p1", "volume_type": "lvm", "status": "available"},
                {"uuid": uuid(12), "name": "v2", "size": 20, "pool": "s1@lvm#p1", "volume_type": "lvm", "status": "in-use", "attachments": [uuid(4)]}
            ]
        })
    }

    fn ids(s: &Solution) -> Vec<&str> {
        s.actions.iter().map(|a| a.id.as_str()).collect()
    }

    use crate::common::testgen::named_value as value;

    #[test]
    fn empties_a_node_to_its_destination_in_priority_order_live_or_cold() {
        let p = json!({"compute_nodes": [{"src_node": "c1", "dst_node": "c2"}], "priority": {"project": ["p1"]}});
        let s = ZoneMigration.execute(model(), p).expect("plan");
        assert_eq!(ids(&s), ["migrate-b", "migrate-a"], "p1 first; c is locked");
        assert_eq!(s.actions[0].input_parameters["migration_type"], "cold");
        assert_eq!(s.actions[1].input_parameters["destination_node"], "c2");
        // a and c are active: one of the two live migrations is planned.
        assert_eq!(
            value(&s.efficacy_indicators, "live_migrate_instance_count"),
            2.0
        );
        assert_eq!(
            value(&s.extra["global_efficacy"], "live_instance_migrate_ratio"),
            50.0
        );
        assert_eq!(
            value(&s.extra["global_efficacy"], "cold_instance_migrate_ratio"),
            100.0
        );
        // Capped at one action per node, a zone is emptied over several audits.
        let p = json!({"compute_nodes": [{"src_node": "c1"}], "parallel_per_node": 1});
        let s = ZoneMigration.execute(model(), p).expect("plan");
        assert_eq!(ids(&s), ["migrate-a"]);
        assert!(
            s.actions[0].input_parameters["destination_node"].is_null(),
            "the scheduler picks"
        );
    }

    #[test]
    fn migrates_detached_volumes_swaps_attached_ones_and_brings_their_instances() {
        let p = json!({"storage_pools": [{"src_pool": "s1@lvm#p1", "dst_pool": "s2@lvm#p2"}], "with_attached_volume": true});
        let s = ZoneMigration.execute(model(), p).expect("plan");
        assert_eq!(
            ids(&s),
            ["volume-migrate-v1", "volume-swap-v2", "migrate-d"]
        );
        assert_eq!(
            s.actions[0].input_parameters["destination_node"],
            "s2@lvm#p2"
        );
        let p = json!({"storage_pools": [{"src_pool": "s1@lvm#p1", "dst_type": "ceph"}]});
        let s = ZoneMigration.execute(model(), p).expect("plan");
        assert_eq!(ids(&s), ["volume-retype-v1", "volume-swap-v2"]);
        assert_eq!(
            value(&s.extra["global_efficacy"], "volume_update_ratio"),
            100.0
        );
    }

    #[test]
    fn does_nothing_without_targets_and_refuses_what_cannot_be_done() {
        let s = ZoneMigration.execute(model(), json!({})).expect("plan");
        assert!(s.actions.is_empty());
        for (p, msg) in [
            (
                json!({"compute_nodes": [{"src_node": "c9"}]}),
                "src_node c9",
            ),
            (
                json!({"compute_nodes": [{"src_node": "c1", "dst_node": "c9"}]}),
                "dst_node c9",
            ),
            (
                json!({"compute_nodes": [{"src_node": "c1", "dst_node": "c2"}], "parallel_per_node": 0}),
                "no room",
            ),
            (
                json!({"storage_pools": [{"src_pool": "s1@lvm#p1", "dst_pool": "s2@lvm#p2", "dst_type": "x"}]}),
                "exactly one",
            ),
        ] {
            // c2 with 5 vcpus takes a (2) but not b (4) as well.
            let mut m = model();
            m["nodes"][1]["vcpus"] = json!(5);
            let e = ZoneMigration.execute(m, p).expect_err(msg);
            assert!(e.message().contains(msg), "{} / {msg}", e.message());
        }
    }
}
