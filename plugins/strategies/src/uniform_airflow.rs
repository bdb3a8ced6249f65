//! `uniform_airflow` (goal `airflow_optimization`): Watcher's "Uniform
//! airflow migration strategy". Hosts whose `host_airflow` metric is at or
//! above `threshold_airflow` (0.1 CFM) are sources; instances move to the
//! hosts with the least airflow. From the source with the most airflow it
//! moves one active instance, or, when the host draws at least
//! `threshold_power` watts while its inlet is cooler than
//! `threshold_inlet_t` (a fan or hardware fault rather than load), every
//! instance it has. All or nothing: when not every chosen instance has a
//! place, nothing is recommended.
//!
//! Unlike Watcher's, room is checked in every dimension with ratios and
//! reservations, only enabled, up and powered-on hosts receive, excluded and
//! locked instances stay put, and a stopped instance is moved cold (Nova
//! refuses to live-migrate it).

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Node};
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "threshold_airflow")]
    threshold_airflow: f64,
    #[serde(default = "threshold_inlet_t")]
    threshold_inlet_t: f64,
    #[serde(default = "threshold_power")]
    threshold_power: f64,
    #[serde(default)]
    #[allow(dead_code)]
    period: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    granularity: Option<f64>,
}

fn threshold_airflow() -> f64 {
    400.0
}
fn threshold_inlet_t() -> f64 {
    28.0
}
fn threshold_power() -> f64 {
    350.0
}

#[derive(Default)]
pub struct UniformAirflow;

fn metric(n: &Node, name: &str) -> Option<f64> {
    n.metrics.get(name).and_then(|m| m.mean())
}

impl Strategy for UniformAirflow {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("uniform_airflow", parameters)?;
        let m = common::model(model)?;
        let mut sources: Vec<(&Node, f64)> = Vec::new();
        let mut targets: Vec<(&Node, f64)> = Vec::new();
        for n in &m.nodes {
            match metric(n, "host_airflow") {
                Some(a) if a >= p.threshold_airflow => sources.push((n, a)),
                Some(a) if common::receives(n) => targets.push((n, a)),
                _ => {}
            }
        }
        sources.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.hostname.cmp(&b.0.hostname)));
        targets.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.hostname.cmp(&b.0.hostname)));
        let movable = |i: &Instance| !i.watcher_exclude && !i.locked;
        // The instances to move, from the first source that has any.
        let chosen = sources.iter().find_map(|(src, _)| {
            let on: Vec<&Instance> = m
                .instances
                .iter()
                .filter(|i| i.host == src.hostname)
                .collect();
            let fault = metric(src, "host_power").is_some_and(|w| w >= p.threshold_power)
                && metric(src, "host_inlet_temp").is_some_and(|t| t < p.threshold_inlet_t);
            let picked: Vec<&Instance> = if fault {
                on.into_iter()
                    .filter(|i| movable(i) && matches!(i.state.as_str(), "active" | "stopped"))
                    .collect()
            } else {
                on.into_iter()
                    .find(|i| movable(i) && i.state == "active")
                    .into_iter()
                    .collect()
            };
            (!picked.is_empty()).then_some((*src, picked, fault))
        });
        let chosen_none = chosen.is_none();
        let mut actions = Vec::new();
        let mut fault_host = false;
        if let Some((src, mut picked, fault)) = chosen {
            fault_host = fault;
            // Large instances first, each on the least-airflow host with room.
            picked.sort_by(|a, b| b.vcpus.cmp(&a.vcpus).then(a.uuid.cmp(&b.uuid)));
            let mut used: Vec<(f64, f64, f64)> = targets
                .iter()
                .map(|(n, _)| {
                    m.instances.iter().filter(|i| i.host == n.hostname).fold(
                        (0.0, 0.0, 0.0),
                        |u, i| {
                            (
                                u.0 + i.vcpus as f64,
                                u.1 + i.memory as f64,
                                u.2 + i.disk as f64,
                            )
                        },
                    )
                })
                .collect();
            for i in &picked {
                let need = (i.vcpus as f64, i.memory as f64, i.disk as f64);
                let Some(t) = (0..targets.len()).find(|&t| {
                    let (cv, cm, cd) = targets[t].0.capacity();
                    let u = used[t];
                    u.0 + need.0 <= cv + 1e-9
                        && u.1 + need.1 <= cm + 1e-9
                        && u.2 + need.2 <= cd + 1e-9
                }) else {
                    // All or nothing, as Watcher.
                    actions.clear();
                    break;
                };
                used[t] = (used[t].0 + need.0, used[t].1 + need.1, used[t].2 + need.2);
                actions.push(common::migrate(
                    i,
                    i.state == "active",
                    &src.hostname,
                    Some(&targets[t].0.hostname),
                ));
            }
        }
        let reason = actions.is_empty().then(|| {
            if m.nodes.is_empty() {
                "the cluster model has no node".to_string()
            } else if m.nodes.iter().all(|n| metric(n, "host_airflow").is_none()) {
                "no node has host_airflow".to_string()
            } else if sources.is_empty() {
                format!(
                    "no node's host_airflow is at or above the threshold {}",
                    p.threshold_airflow
                )
            } else if targets.is_empty() {
                "no node below the airflow threshold can receive an instance".to_string()
            } else if chosen_none {
                "no node above the airflow threshold has a movable instance".to_string()
            } else {
                "the instances to move do not all fit on the nodes below the threshold".to_string()
            }
        });
        let solution = Solution {
            actions,
            efficacy_indicators: json!([]),
            extra: json!({"source_hosts": sources.len(), "target_hosts": targets.len(), "fault": fault_host}),
        };
        Ok(match reason {
            Some(r) => solution.with_reason(r),
            None => solution,
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "threshold_airflow": {"type": "number", "default": 400.0,
      "description": "Airflow threshold for migration, unit is 0.1CFM."},
    "threshold_inlet_t": {"type": "number", "default": 28.0,
      "description": "Inlet temperature threshold for migration decision."},
    "threshold_power": {"type": "number", "default": 350.0,
      "description": "System power threshold for migration decision."},
    "period": {"type": "number", "minimum": 0, "default": 300, "description": "Aggregate time period of ceilometer (metrics come from the model)."},
    "granularity": {"type": "number", "minimum": 0, "default": 300, "description": "The time between two measures in an aggregated timeseries of a metric."}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// h1 (airflow `a1`, power `w1`, inlet `t1`) holds a (4 vcpus, active),
    /// b (2, stopped) and c (1, active); h2 (airflow 200) and h3 (300) are
    /// empty, h2 with room for 4 vcpus, h3 for 8.
    fn model(a1: f64, w1: f64, t1: f64) -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 16, "memory": 16384, "disk": 500,
                 "metrics": {"host_airflow": a1, "host_power": w1, "host_inlet_temp": t1}},
                {"uuid": "n2", "hostname": "h2", "vcpus": 4, "memory": 16384, "disk": 500,
                 "metrics": {"host_airflow": 200.0}},
                {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 16384, "disk": 500,
                 "metrics": {"host_airflow": 300.0}}
            ],
            "instances": [
                {"uuid": "ia", "name": "a", "host": "h1", "vcpus": 4, "memory": 1024, "disk": 10},
                {"uuid": "ib", "name": "b", "host": "h1", "vcpus": 2, "memory": 1024, "disk": 10, "state": "stopped"},
                {"uuid": "ic", "name": "c", "host": "h1", "vcpus": 1, "memory": 1024, "disk": 10}
            ]
        })
    }

    fn moves(s: &Solution) -> Vec<(String, String, String)> {
        s.actions
            .iter()
            .map(|a| {
                let p = &a.input_parameters;
                let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
                (
                    s("resource_name"),
                    s("destination_node"),
                    s("migration_type"),
                )
            })
            .collect()
    }

    fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn moves_the_first_active_instance_to_the_host_with_the_least_airflow() {
        let s = UniformAirflow
            .execute(model(500.0, 200.0, 25.0), json!({}))
            .expect("plan");
        assert_eq!(moves(&s), [t("a", "h2", "live")]);
    }

    #[test]
    fn a_hot_power_hungry_host_with_a_cool_inlet_is_emptied_whole() {
        let s = UniformAirflow
            .execute(model(500.0, 400.0, 25.0), json!({}))
            .expect("plan");
        // Biggest first: a fills h2, b and c go to h3; b is stopped, so cold.
        assert_eq!(
            moves(&s),
            [
                t("a", "h2", "live"),
                t("b", "h3", "cold"),
                t("c", "h3", "live")
            ]
        );
        // With the inlet hot, it is load, not a fault: one instance.
        let s = UniformAirflow
            .execute(model(500.0, 400.0, 30.0), json!({}))
            .expect("plan");
        assert_eq!(s.actions.len(), 1);
    }

    #[test]
    fn does_nothing_under_the_threshold_or_when_not_everything_fits() {
        let s = UniformAirflow
            .execute(model(350.0, 400.0, 25.0), json!({}))
            .expect("plan");
        assert!(s.actions.is_empty());
        assert_eq!(
            s.reason(),
            Some("no node's host_airflow is at or above the threshold 400")
        );
        // A 10-vcpu instance on the faulty host fits nowhere: all or nothing.
        let mut m = model(500.0, 400.0, 25.0);
        m["instances"][2]["vcpus"] = json!(10);
        let s = UniformAirflow.execute(m, json!({})).expect("plan");
        assert!(s.actions.is_empty(), "{:?}", moves(&s));
        assert_eq!(
            s.reason(),
            Some("the instances to move do not all fit on the nodes below the threshold")
        );
        let mut m = model(500.0, 400.0, 25.0);
        for n in m["nodes"].as_array_mut().into_iter().flatten() {
            n["metrics"] = json!({});
        }
        let s = UniformAirflow.execute(m, json!({})).expect("plan");
        assert_eq!(s.reason(), Some("no node has host_airflow"));
        assert!(
            UniformAirflow
                .execute(model(1.0, 1.0, 1.0), json!({"threshold": 1}))
                .is_err()
        );
    }
}
