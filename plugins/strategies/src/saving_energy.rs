//! `saving_energy` (goal `saving_energy`): Watcher's Saving Energy
//! Strategy. It keeps a pool of empty, powered-on hosts ready for new
//! instances, no bigger than needed: `min_free_hosts_num`, or
//! `free_used_percent` of the hosts in use when that is more. Extra empty
//! hosts are powered off, and powered-off hosts are powered on when the pool
//! is short.
//!
//! Unlike Watcher's, it picks hosts in hostname order rather than at random
//! (the same cluster always gives the same plan), and it reads power states
//! from the cluster model instead of requiring Ironic or MAAS. Only enabled,
//! up hosts count as spare: a disabled host takes no new instances.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::Node;
use sextant_plugin_api::prelude::*;
use std::collections::BTreeSet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "free_used_percent")]
    free_used_percent: f64,
    #[serde(default = "min_free_hosts_num")]
    min_free_hosts_num: f64,
}

fn free_used_percent() -> f64 {
    10.0
}

fn min_free_hosts_num() -> f64 {
    1.0
}

#[derive(Default)]
pub struct SavingEnergy;

fn power(n: &Node, state: &str) -> Action {
    Action {
        id: format!("power-{state}-{}", n.hostname),
        action_type: "change_node_power_state".into(),
        resource_id: Some(n.uuid.clone()),
        input_parameters: json!({"state": state, "resource_name": n.hostname}),
    }
}

impl Strategy for SavingEnergy {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("saving_energy", parameters)?;
        if p.free_used_percent < 0.0 || p.min_free_hosts_num < 0.0 {
            return Err(PluginError::invalid_input(
                "saving_energy parameters: free_used_percent and min_free_hosts_num must not be negative",
            ));
        }
        let m = common::model(model)?;
        let busy: BTreeSet<&str> = m.instances.iter().map(|i| i.host.as_str()).collect();
        let mut nodes: Vec<&Node> = m.nodes.iter().collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        let in_use = nodes
            .iter()
            .filter(|n| busy.contains(n.hostname.as_str()))
            .count();
        let free_on: Vec<&Node> = nodes
            .iter()
            .copied()
            .filter(|n| !busy.contains(n.hostname.as_str()))
            .filter(|n| n.power_state == "on" && n.status == "enabled" && n.state == "up")
            .collect();
        let off: Vec<&Node> = nodes
            .iter()
            .copied()
            .filter(|n| !busy.contains(n.hostname.as_str()) && n.power_state == "off")
            .collect();
        let want = (p.min_free_hosts_num.ceil() as usize)
            .max((in_use as f64 * p.free_used_percent / 100.0).ceil() as usize);
        let actions: Vec<Action> = if free_on.len() > want {
            free_on[want..].iter().map(|n| power(n, "off")).collect()
        } else {
            off.iter()
                .take(want - free_on.len())
                .map(|n| power(n, "on"))
                .collect()
        };
        Ok(Solution {
            actions,
            efficacy_indicators: json!([]),
            extra: json!({"hosts_in_use": in_use, "spare_hosts_wanted": want,
                          "spare_hosts_on": free_on.len(), "hosts_off": off.len()}),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "free_used_percent": {"type": "number", "minimum": 0, "default": 10.0,
      "description": "Spare hosts to keep powered on, as a percentage of the hosts in use."},
    "min_free_hosts_num": {"type": "number", "minimum": 0, "default": 1,
      "description": "The fewest spare hosts to keep powered on."}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// `busy` hosts with one instance each, `on` empty powered-on hosts and
    /// `off` powered-off hosts.
    fn model(busy: usize, on: usize, off: usize) -> Value {
        let mut nodes = Vec::new();
        let mut instances = Vec::new();
        for k in 0..busy + on + off {
            let power = if k < busy + on { "on" } else { "off" };
            let state = if power == "on" { "up" } else { "down" };
            nodes.push(
                json!({"uuid": format!("n{k:02}"), "hostname": format!("h{k:02}"),
                              "vcpus": 8, "memory": 8192, "disk": 100,
                              "power_state": power, "state": state}),
            );
            if k < busy {
                instances.push(json!({"uuid": format!("i{k}"), "name": format!("vm{k}"),
                                      "host": format!("h{k:02}"), "vcpus": 1, "memory": 512, "disk": 1}));
            }
        }
        json!({"nodes": nodes, "instances": instances})
    }

    fn plan(m: Value, p: Value) -> Vec<String> {
        SavingEnergy
            .execute(m, p)
            .expect("plan")
            .actions
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    #[test]
    fn powers_off_the_spare_hosts_beyond_the_pool_in_hostname_order() {
        // 4 in use, 3 spare: keep 1 (10 % of 4 rounds up to 1).
        assert_eq!(
            plan(model(4, 3, 0), json!({})),
            ["power-off-h05", "power-off-h06"]
        );
        // 30 in use at 10 %: keep 3 of 5.
        assert_eq!(
            plan(model(30, 5, 0), json!({})),
            ["power-off-h33", "power-off-h34"]
        );
    }

    #[test]
    fn powers_on_hosts_when_the_pool_is_short_and_only_those_that_are_off() {
        assert_eq!(
            plan(model(4, 0, 3), json!({"min_free_hosts_num": 2})),
            ["power-on-h04", "power-on-h05"]
        );
        // Wants 5, has 1 on and 2 off: powers on both, no more.
        assert_eq!(
            plan(model(4, 1, 2), json!({"min_free_hosts_num": 5})),
            ["power-on-h05", "power-on-h06"]
        );
    }

    #[test]
    fn does_nothing_when_the_pool_is_right_and_refuses_bad_parameters() {
        assert!(plan(model(4, 1, 2), json!({})).is_empty());
        assert!(
            plan(model(3, 0, 0), json!({})).is_empty(),
            "nothing to power on"
        );
        assert!(
            SavingEnergy
                .execute(model(1, 1, 1), json!({"min_free_hosts": 1}))
                .is_err()
        );
        assert!(
            SavingEnergy
                .execute(model(1, 1, 1), json!({"free_used_percent": -5}))
                .is_err()
        );
    }
}
