//! `outlet_temperature` (goal `thermal_optimization`): Watcher's "Outlet
//! temperature based strategy". Hosts whose `host_outlet_temp` metric is at
//! or above `threshold` are too hot; one instance is moved off the hottest of
//! them to the coolest host below the threshold that has room.
//!
//! As in Watcher, one migration per audit (a continuous audit cools the
//! cluster step by step), live, and no action when no host is too hot or none
//! is cool enough. Unlike Watcher's, room is checked in every dimension with
//! ratios and reservations, only enabled, up and powered-on hosts receive,
//! excluded, locked or recently migrated instances stay put, and when the
//! first candidate fits nowhere the next one is tried instead of giving up.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Node};
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "threshold")]
    threshold: f64,
    #[serde(default)]
    #[allow(dead_code)]
    period: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    granularity: Option<f64>,
    #[serde(default)]
    min_migration_interval: f64,
    /// The clock, for tests (unix seconds); now when absent.
    #[serde(default)]
    now: Option<f64>,
}

fn threshold() -> f64 {
    35.0
}

#[derive(Default)]
pub struct OutletTemperature;

const METRIC: &str = "host_outlet_temp";

fn temperature(n: &Node) -> Option<f64> {
    n.metrics.get(METRIC).and_then(|m| m.mean())
}

/// Why no migration is recommended, when none is.
fn nothing_to_do(
    nodes: &[Node],
    hot: &[(&Node, f64)],
    cool: &[(&Node, f64)],
    threshold: f64,
) -> String {
    if nodes.is_empty() {
        "the cluster model has no node".into()
    } else if nodes.iter().all(|n| temperature(n).is_none()) {
        format!("no node has {METRIC}")
    } else if hot.is_empty() {
        format!("no node's {METRIC} is at or above the threshold {threshold}")
    } else if cool.is_empty() {
        format!("no node below the threshold {threshold} ({METRIC}) can receive an instance")
    } else {
        "no movable instance of a hot node fits on a cool node".into()
    }
}

impl Strategy for OutletTemperature {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("outlet_temperature", parameters)?;
        let m = common::model(model)?;
        let now = common::now(p.now);
        let mut hot: Vec<(&Node, f64)> = Vec::new();
        let mut cool: Vec<(&Node, f64)> = Vec::new();
        for n in &m.nodes {
            match temperature(n) {
                Some(t) if t >= p.threshold => hot.push((n, t)),
                Some(t) if common::receives(n) => cool.push((n, t)),
                _ => {}
            }
        }
        hot.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.hostname.cmp(&b.0.hostname)));
        cool.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.hostname.cmp(&b.0.hostname)));
        let movable = |i: &Instance| {
            let recent = common::recently_migrated(i, now, p.min_migration_interval);
            i.state == "active" && !i.watcher_exclude && !i.locked && !recent
        };
        let choice = hot.iter().find_map(|(src, _)| {
            m.instances
                .iter()
                .filter(|i| i.host == src.hostname && movable(i))
                .find_map(|i| {
                    cool.iter()
                        .find(|(dst, _)| common::fits(dst, common::allocated(&m, dst), i))
                        .map(|(dst, _)| (i, *src, *dst))
                })
        });
        let actions = match choice {
            Some((i, src, dst)) => {
                vec![common::migrate(i, true, &src.hostname, Some(&dst.hostname))]
            }
            None => Vec::new(),
        };
        let solution = Solution {
            actions,
            efficacy_indicators: json!([]),
            extra: json!({"hot_hosts": hot.len(), "cool_hosts": cool.len()}),
        };
        Ok(if solution.actions.is_empty() {
            let reason = nothing_to_do(&m.nodes, &hot, &cool, p.threshold);
            solution.with_reason(reason)
        } else {
            solution
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "threshold": {"type": "number", "default": 35.0, "description": "Temperature threshold for migration (host_outlet_temp, degrees C)."},
    "period": {"type": "number", "minimum": 0, "default": 30, "description": "The time interval in seconds for getting statistic aggregation (metrics come from the model)."},
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

    fn model(temps: [f64; 3]) -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100, "metrics": {"host_outlet_temp": temps[0]}},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100, "metrics": {"host_outlet_temp": temps[1]}},
                {"uuid": "n3", "hostname": "h3", "vcpus": 2, "memory": 2048, "disk": 100, "metrics": {"host_outlet_temp": temps[2]}}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 4, "memory": 4096, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 10},
                {"uuid": "i3", "name": "c", "host": "h2", "vcpus": 2, "memory": 2048, "disk": 10}
            ]
        })
    }

    fn moves(s: &Solution) -> Vec<(String, String, String)> {
        s.actions
            .iter()
            .map(|a| {
                let p = &a.input_parameters;
                (
                    p["resource_name"].as_str().unwrap_or("").into(),
                    p["source_node"].as_str().unwrap_or("").into(),
                    p["destination_node"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    #[test]
    fn moves_one_instance_off_the_hottest_host_to_the_coolest_with_room() {
        // h3 is coolest but too small for a; h2 takes it.
        let s = OutletTemperature
            .execute(model([40.0, 30.0, 20.0]), json!({}))
            .expect("plan");
        assert_eq!(moves(&s), [("a".into(), "h1".into(), "h2".into())]);
        assert_eq!(s.actions[0].input_parameters["migration_type"], "live");
        // When h2 is hot too, h1 is still the hotter: from h1, to h3, the only cool host.
        let s = OutletTemperature
            .execute(model([40.0, 36.0, 20.0]), json!({}))
            .expect("plan");
        assert_eq!(
            moves(&s),
            [("b".into(), "h1".into(), "h3".into())],
            "a fits nowhere cool"
        );
    }

    #[test]
    fn does_nothing_when_no_host_is_hot_or_none_is_cool() {
        for (temps, why) in [
            (
                [30.0, 30.0, 30.0],
                "no node's host_outlet_temp is at or above the threshold 35",
            ),
            (
                [40.0, 41.0, 42.0],
                "no node below the threshold 35 (host_outlet_temp) can receive an instance",
            ),
        ] {
            let s = OutletTemperature
                .execute(model(temps), json!({}))
                .expect("plan");
            assert!(s.actions.is_empty(), "{temps:?}");
            assert_eq!(s.reason(), Some(why));
        }
        let mut bare = model([0.0; 3]);
        for n in bare["nodes"].as_array_mut().into_iter().flatten() {
            n["metrics"] = json!({});
        }
        let s = OutletTemperature.execute(bare, json!({})).expect("plan");
        assert_eq!(s.reason(), Some("no node has host_outlet_temp"));
        let s = OutletTemperature
            .execute(model([40.0, 30.0, 20.0]), json!({"threshold": 45.0}))
            .expect("plan");
        assert!(s.actions.is_empty());
    }

    #[test]
    fn keeps_recently_moved_instances_and_refuses_unknown_parameters() {
        let mut m = model([40.0, 30.0, 20.0]);
        for i in m["instances"]
            .as_array_mut()
            .expect("instances")
            .iter_mut()
            .take(2)
        {
            i["metadata"] = json!({"last_migrated_at": 1000.0});
        }
        let p = json!({"min_migration_interval": 600, "now": 1300.0});
        let s = OutletTemperature.execute(m.clone(), p).expect("plan");
        assert!(s.actions.is_empty(), "both h1 instances moved 300 s ago");
        let p = json!({"min_migration_interval": 600, "now": 1700.0});
        assert_eq!(
            OutletTemperature.execute(m, p).expect("plan").actions.len(),
            1
        );
        assert!(
            OutletTemperature
                .execute(model([40.0, 30.0, 20.0]), json!({"treshold": 1}))
                .is_err()
        );
    }
}
