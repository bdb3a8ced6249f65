//! What every strategy of the library needs: reading parameters and the
//! model, the clock, the migration guard, the migrate action, host room,
//! and the efficacy of the server consolidation goal.

use serde::de::DeserializeOwned;
use sextant_plugin_api::model::{ClusterModel, Instance, Node};
use sextant_plugin_api::prelude::*;

/// The strategy's parameters; `null` reads as `{}` so defaults apply.
pub fn params<T: DeserializeOwned>(strategy: &str, parameters: Value) -> Result<T, PluginError> {
    let v = if parameters.is_null() {
        json!({})
    } else {
        parameters
    };
    serde_json::from_value(v)
        .map_err(|e| PluginError::invalid_input(format!("{strategy} parameters: {e}")))
}

/// The cluster model the host passed.
pub fn model(model: Value) -> Result<ClusterModel, PluginError> {
    serde_json::from_value(model)
        .map_err(|e| PluginError::invalid_input(format!("cluster model: {e}")))
}

/// `now` when a test gives one, else the clock, in unix seconds.
pub fn now(given: Option<f64>) -> f64 {
    given.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

/// Whether `i` moved less than `interval` seconds before `now` (metadata
/// `last_migrated_at`, unix seconds): such an instance stays put.
pub fn recently_migrated(i: &Instance, now: f64, interval: f64) -> bool {
    i.metadata
        .get("last_migrated_at")
        .and_then(Value::as_f64)
        .is_some_and(|t| now - t < interval)
}

/// Instance names by uuid, to name actions without a scan per action.
pub fn instance_names(m: &ClusterModel) -> std::collections::HashMap<&str, &str> {
    m.instances
        .iter()
        .map(|i| (i.uuid.as_str(), i.name.as_str()))
        .collect()
}

/// Whether a host takes new instances: enabled, up and powered on.
pub fn receives(n: &Node) -> bool {
    n.status == "enabled" && n.state == "up" && n.power_state == "on"
}

/// What the instances on `n` are allocated: (vcpus, memory MB, disk GB).
pub fn allocated(m: &ClusterModel, n: &Node) -> (f64, f64, f64) {
    m.instances
        .iter()
        .filter(|i| i.host == n.hostname)
        .fold((0.0, 0.0, 0.0), |u, i| {
            (
                u.0 + i.vcpus as f64,
                u.1 + i.memory as f64,
                u.2 + i.disk as f64,
            )
        })
}

/// Whether `i` fits on `n` beside `used`, within `n`'s allocatable capacity.
pub fn fits(n: &Node, used: (f64, f64, f64), i: &Instance) -> bool {
    let (cv, cm, cd) = n.capacity();
    used.0 + i.vcpus as f64 <= cv + 1e-9
        && used.1 + i.memory as f64 <= cm + 1e-9
        && used.2 + i.disk as f64 <= cd + 1e-9
}

/// Watcher's `add_action_migrate`: a `migrate` action for `i`, live or
/// cold, with hostnames; no destination lets the scheduler choose.
pub fn migrate(i: &Instance, live: bool, source: &str, destination: Option<&str>) -> Action {
    Action {
        id: format!("migrate-{}", i.name),
        action_type: "migrate".into(),
        resource_id: Some(i.uuid.clone()),
        input_parameters: json!({
            "migration_type": if live { "live" } else { "cold" },
            "source_node": source,
            "destination_node": destination,
            "resource_name": i.name,
        }),
    }
}

/// The population standard deviation.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// A solution for goal `server_consolidation`: Watcher's indicators and
/// its global efficacy `released_nodes_ratio`.
pub fn server_consolidation(
    actions: Vec<Action>,
    enabled: usize,
    released: usize,
    migrations: usize,
) -> Solution {
    Solution {
        actions,
        efficacy_indicators: json!([
            {"name": "compute_nodes_count", "description": "The total number of enabled compute nodes.", "unit": null, "value": enabled},
            {"name": "released_compute_nodes_count", "description": "The number of compute nodes to be released.", "unit": null, "value": released},
            {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "value": migrations},
        ]),
        extra: json!({"global_efficacy": [{
            "name": "released_nodes_ratio", "unit": "%",
            "value": if enabled == 0 { 0.0 } else { released as f64 / enabled as f64 * 100.0 },
        }]}),
    }
}

/// A solution for goal `workload_balancing`: Watcher's indicators and its
/// global efficacy `live_migrations_count` (migrations / instances, %).
pub fn workload_balancing(
    actions: Vec<Action>,
    instances: usize,
    sd_before: f64,
    sd_after: f64,
) -> Solution {
    let migrations = actions.len();
    Solution {
        actions,
        efficacy_indicators: json!([
            {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "value": migrations},
            {"name": "instances_count", "description": "The total number of audited instances in strategy.", "unit": null, "value": instances},
            {"name": "standard_deviation_after_audit", "description": "The value of resulted standard deviation.", "unit": null, "value": sd_after},
            {"name": "standard_deviation_before_audit", "description": "The value of original standard deviation.", "unit": null, "value": sd_before},
        ]),
        extra: json!({"global_efficacy": [{
            "name": "live_migrations_count", "unit": "%",
            "value": if instances == 0 { 0.0 } else { migrations as f64 / instances as f64 * 100.0 },
        }]}),
    }
}
