//! `storage_capacity_balance` (goal `workload_balancing`): Watcher's
//! "Storage Capacity Balance Strategy". A storage pool whose used capacity
//! is above `volume_threshold` percent is overloaded; its volumes, biggest
//! first, are migrated to pools of the same volume type that stay at or
//! under the threshold with them, until the pool is under it. Pools named
//! in `ex_pools` (Watcher's config, default `local_vstorage`) are left
//! alone.
//!
//! Unlike Watcher's, it never retypes a volume (a retype changes the
//! volume's type, which the operator did not ask for); only `available` and
//! `in-use` volumes move; and a destination is the pool with the most free
//! share, so the load spreads instead of filling the first pool found. It
//! is planned by `weight`, not Watcher's `workload_stabilization`, whose
//! weights have no `volume_migrate`: in Watcher the pair cannot plan its
//! own actions (reference section 9, item 7).

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::Volume;
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "volume_threshold")]
    volume_threshold: f64,
    #[serde(default = "ex_pools")]
    ex_pools: Vec<String>,
}

fn volume_threshold() -> f64 {
    80.0
}

fn ex_pools() -> Vec<String> {
    vec!["local_vstorage".into()]
}

#[derive(Default)]
pub struct StorageCapacityBalance;

/// A pool as the strategy sees it: name, types, total and used GB.
struct Pool<'a> {
    name: &'a str,
    types: &'a [String],
    total: f64,
    used: f64,
}

impl Pool<'_> {
    fn percent(&self) -> f64 {
        if self.total > 0.0 {
            self.used / self.total * 100.0
        } else {
            0.0
        }
    }
}

/// The population standard deviation of the pools' used percentages.
fn std_dev(p: &[Pool]) -> f64 {
    if p.is_empty() {
        return 0.0;
    }
    let mean = p.iter().map(Pool::percent).sum::<f64>() / p.len() as f64;
    (p.iter().map(|x| (x.percent() - mean).powi(2)).sum::<f64>() / p.len() as f64).sqrt()
}

impl Strategy for StorageCapacityBalance {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("storage_capacity_balance", parameters)?;
        let m = common::model(model)?;
        // Watcher's ex_pools name the pool part after '#', or the whole name.
        let excluded = |name: &str| {
            let short = name.rsplit('#').next().unwrap_or(name);
            p.ex_pools.iter().any(|x| x == name || x == short)
        };
        let mut pools: Vec<Pool> = m
            .storage_pools
            .iter()
            .filter(|s| !excluded(&s.name))
            .map(|s| Pool {
                name: &s.name,
                types: &s.volume_type,
                total: s.total_capacity_gb,
                used: s.total_capacity_gb - s.free_capacity_gb,
            })
            .collect();
        let before = std_dev(&pools);
        let mut order: Vec<usize> = (0..pools.len())
            .filter(|&k| pools[k].percent() > p.volume_threshold)
            .collect();
        order.sort_by(|&a, &b| {
            pools[b]
                .percent()
                .total_cmp(&pools[a].percent())
                .then(a.cmp(&b))
        });
        let mut actions = Vec::new();
        for src in order {
            let mut volumes: Vec<&Volume> = m
                .volumes
                .iter()
                .filter(|v| {
                    v.pool == pools[src].name && matches!(v.status.as_str(), "available" | "in-use")
                })
                .collect();
            volumes.sort_by(|a, b| b.size.cmp(&a.size).then(a.uuid.cmp(&b.uuid)));
            for v in volumes {
                if pools[src].percent() <= p.volume_threshold {
                    break;
                }
                let size = v.size as f64;
                let dest = (0..pools.len())
                    .filter(|&d| d != src && pools[d].types.contains(&v.volume_type))
                    .filter(|&d| {
                        let x = &pools[d];
                        x.total > 0.0 && (x.used + size) / x.total * 100.0 <= p.volume_threshold
                    })
                    .min_by(|&a, &b| {
                        pools[a]
                            .percent()
                            .total_cmp(&pools[b].percent())
                            .then(a.cmp(&b))
                    });
                let Some(d) = dest else { continue };
                pools[src].used -= size;
                pools[d].used += size;
                actions.push(Action {
                    id: format!("volume-migrate-{}", v.name),
                    action_type: "volume_migrate".into(),
                    resource_id: Some(v.uuid.clone()),
                    input_parameters: json!({
                        "migration_type": "migrate",
                        "destination_node": pools[d].name,
                        "resource_name": v.name,
                    }),
                });
            }
        }
        let migrations = actions.len();
        let volumes = m.volumes.len();
        Ok(Solution {
            actions,
            efficacy_indicators: json!([
                {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "value": 0},
                {"name": "standard_deviation_after_audit", "description": "The value of resulted standard deviation.", "unit": null, "value": std_dev(&pools)},
                {"name": "standard_deviation_before_audit", "description": "The value of original standard deviation.", "unit": null, "value": before},
            ]),
            extra: json!({"volume_migrations": migrations, "volumes": volumes}),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "volume_threshold": {"type": "number", "default": 80.0,
      "description": "volume threshold for capacity balance"},
    "ex_pools": {"type": "array", "items": {"type": "string"}, "default": ["local_vstorage"],
      "description": "Pools excluded from the balance (Watcher's ex_pools option)."}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(k: usize, pool: &str, size: u64, ty: &str, status: &str) -> Value {
        json!({"uuid": format!("00000000-0000-4000-8000-{k:012}"), "name": format!("v{k}"),
               "size": size, "pool": pool, "volume_type": ty, "status": status})
    }

    fn model(volumes: Vec<Value>) -> Value {
        json!({
            "nodes": [], "instances": [],
            "storage_pools": [
                {"name": "s1@lvm#a", "total_capacity_gb": 100, "free_capacity_gb": 10, "volume_type": ["lvm"]},
                {"name": "s2@lvm#b", "total_capacity_gb": 100, "free_capacity_gb": 70, "volume_type": ["lvm"]},
                {"name": "s3@lvm#c", "total_capacity_gb": 100, "free_capacity_gb": 90, "volume_type": ["lvm"]},
                {"name": "s4@ceph#d", "total_capacity_gb": 100, "free_capacity_gb": 100, "volume_type": ["ceph"]}
            ],
            "volumes": volumes
        })
    }

    fn dests(s: &Solution) -> Vec<(String, String)> {
        s.actions
            .iter()
            .map(|a| {
                let p = &a.input_parameters;
                (
                    p["resource_name"].as_str().unwrap_or("").into(),
                    p["destination_node"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    #[test]
    fn moves_the_biggest_volumes_to_same_type_pools_until_under_the_threshold() {
        // a is 90 % full: moving v1 (40) makes it 50 %; v2 stays.
        let m = model(vec![
            vol(1, "s1@lvm#a", 40, "lvm", "in-use"),
            vol(2, "s1@lvm#a", 30, "lvm", "available"),
            vol(3, "s1@lvm#a", 20, "lvm", "available"),
        ]);
        let s = StorageCapacityBalance.execute(m, json!({})).expect("plan");
        assert_eq!(dests(&s), [("v1".to_string(), "s3@lvm#c".to_string())]);
        let sd = |n: &str| {
            s.efficacy_indicators
                .as_array()
                .and_then(|a| a.iter().find(|i| i["name"] == n))
                .map(|i| i["value"].as_f64().unwrap_or(0.0))
        };
        assert!(sd("standard_deviation_after_audit") < sd("standard_deviation_before_audit"));
    }

    #[test]
    fn never_retypes_and_skips_volumes_that_fit_nowhere_or_are_busy() {
        // An nfs volume has no nfs pool to go to, and an lvm one cannot go to ceph;
        // v2 (85) fits nowhere under 80 %; v3 is being attached.
        let m = model(vec![
            vol(1, "s1@lvm#a", 5, "nfs", "in-use"),
            vol(2, "s1@lvm#a", 85, "lvm", "in-use"),
            vol(3, "s1@lvm#a", 2, "lvm", "attaching"),
        ]);
        let s = StorageCapacityBalance.execute(m, json!({})).expect("plan");
        assert!(s.actions.is_empty(), "{:?}", dests(&s));
    }

    #[test]
    fn does_nothing_under_the_threshold_or_for_excluded_pools() {
        let m = model(vec![vol(1, "s1@lvm#a", 40, "lvm", "in-use")]);
        assert!(
            StorageCapacityBalance
                .execute(m.clone(), json!({"volume_threshold": 95.0}))
                .expect("plan")
                .actions
                .is_empty()
        );
        assert!(
            StorageCapacityBalance
                .execute(m.clone(), json!({"ex_pools": ["a"]}))
                .expect("plan")
                .actions
                .is_empty()
        );
        assert!(
            StorageCapacityBalance
                .execute(m, json!({"threshold": 1}))
                .is_err()
        );
    }
}
