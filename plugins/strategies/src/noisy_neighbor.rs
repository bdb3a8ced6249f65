//! `noisy_neighbor` (goal `noisy_neighbor`): Watcher's "Noisy Neighbor"
//! strategy. On a host with more than one instance, a priority instance is
//! one whose L3 cache usage (`instance_l3_cache_usage`) dropped by more than
//! `cache_threshold` percent between the previous `period` and the current
//! one; a noisy instance is one of lower priority on the same host whose
//! usage grew by more than that. The noisy instance moves, live, to a host
//! without such a pair that has room for it.
//!
//! Priorities come from instance metadata `watcher-priority` (lower is more
//! important; 5 when absent), as in Watcher. The current and previous
//! periods end at the latest point of each instance's series; an instance
//! whose metric is a single value (no series) is not judged. One migration
//! per audit. Unlike Watcher's, the destination has room in every dimension
//! with ratios and reservations and is enabled, up and powered on; excluded
//! and locked instances stay; and among hosts in need the one whose priority
//! instance matters most goes first (Watcher compares instance objects).

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Metric, Node};
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "cache_threshold")]
    cache_threshold: f64,
    #[serde(default = "period")]
    period: f64,
}

fn cache_threshold() -> f64 {
    35.0
}
fn period() -> f64 {
    100.0
}

const DEFAULT_PRIORITY: f64 = 5.0;

#[derive(Default)]
pub struct NoisyNeighbor;

fn priority(i: &Instance) -> f64 {
    match i.metadata.get("watcher-priority") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(DEFAULT_PRIORITY),
        Some(Value::String(s)) => s.parse().unwrap_or(DEFAULT_PRIORITY),
        _ => DEFAULT_PRIORITY,
    }
}

/// (previous, current) mean L3 cache usage over the two last periods.
fn cache(i: &Instance, period: f64) -> Option<(f64, f64)> {
    let Some(Metric::Series(s)) = i.metrics.get("instance_l3_cache_usage") else {
        return None;
    };
    let end = s.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let mean = |from: f64, to: f64| {
        let v: Vec<f64> = s
            .iter()
            .filter(|p| p.0 > from && p.0 <= to)
            .map(|p| p.1)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Some((
        mean(end - 2.0 * period, end - period)?,
        mean(end - period, end)?,
    ))
}

/// The change in percent of the previous value; None when it was 0.
fn change(i: &Instance, period: f64) -> Option<f64> {
    let (prev, cur) = cache(i, period)?;
    (prev > 0.0).then(|| (cur - prev) / prev * 100.0)
}

impl Strategy for NoisyNeighbor {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("noisy_neighbor", parameters)?;
        if p.period <= 0.0 {
            return Err(PluginError::invalid_input(
                "noisy_neighbor parameters: period must be positive",
            ));
        }
        let m = common::model(model)?;
        // (host, priority instance, noisy instance) for each host in need.
        let mut need: Vec<(&Node, &Instance, &Instance)> = Vec::new();
        let mut targets: Vec<&Node> = Vec::new();
        for n in &m.nodes {
            let mut on: Vec<&Instance> = m
                .instances
                .iter()
                .filter(|i| i.host == n.hostname)
                .collect();
            on.sort_by(|a, b| {
                priority(a)
                    .total_cmp(&priority(b))
                    .then(a.uuid.cmp(&b.uuid))
            });
            let mut pair = None;
            if on.len() > 1 {
                'outer: for (k, hi) in on.iter().enumerate() {
                    if !change(hi, p.period).is_some_and(|c| -c > p.cache_threshold) {
                        continue;
                    }
                    // Noisy candidates: lower priority, least important first.
                    for lo in on[k + 1..].iter().rev() {
                        if change(lo, p.period).is_some_and(|c| c > p.cache_threshold) {
                            pair = Some((*hi, *lo));
                            break 'outer;
                        }
                    }
                    break;
                }
            }
            match pair {
                Some((hi, lo)) => need.push((n, hi, lo)),
                None if n.status == "enabled" && n.state == "up" && n.power_state == "on" => {
                    targets.push(n)
                }
                None => {}
            }
        }
        need.sort_by(|a, b| {
            priority(a.1)
                .total_cmp(&priority(b.1))
                .then(a.0.hostname.cmp(&b.0.hostname))
        });
        targets.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        let fits = |n: &Node, i: &Instance| common::fits(n, common::allocated(&m, n), i);
        let choice = need
            .iter()
            .filter(|(_, _, noisy)| {
                noisy.state == "active" && !noisy.watcher_exclude && !noisy.locked
            })
            .find_map(|(src, _, noisy)| {
                targets
                    .iter()
                    .find(|t| fits(t, noisy))
                    .map(|t| (*src, *noisy, *t))
            });
        let actions = choice
            .map(|(src, i, dst)| common::migrate(i, true, &src.hostname, Some(&dst.hostname)))
            .into_iter()
            .collect();
        Ok(Solution {
            actions,
            efficacy_indicators: json!([]),
            extra: json!({"hosts_in_need": need.iter().map(|(n, hi, lo)| json!({
                "host": n.hostname, "priority_instance": hi.name, "noisy_instance": lo.name})).collect::<Vec<_>>()}),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "cache_threshold": {"type": "number", "default": 35.0,
      "description": "Performance drop in L3_cache threshold for migration"},
    "period": {"type": "number", "exclusiveMinimum": 0, "default": 100.0,
      "description": "Aggregate time period of ceilometer and gnocchi (seconds; metrics come from the model)"}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A series whose previous period averages `prev` and current `cur`
    /// (period 100 s, points every 50 s).
    fn series(prev: f64, cur: f64) -> Value {
        json!([
            [1000.0, prev],
            [1050.0, prev],
            [1100.0, prev],
            [1150.0, cur],
            [1200.0, cur]
        ])
    }

    fn vm(k: u32, host: &str, prio: Option<u32>, l3: Value) -> Value {
        let mut v = json!({"uuid": format!("00000000-0000-4000-8000-{k:012}"), "name": format!("vm{k}"), "host": host,
                           "vcpus": 2, "memory": 1024, "disk": 10, "metrics": {"instance_l3_cache_usage": l3}});
        if let Some(p) = prio {
            v["metadata"] = json!({"watcher-priority": p});
        }
        v
    }

    fn model(instances: Vec<Value>) -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 2, "memory": 8192, "disk": 100},
                {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 8192, "disk": 100}
            ],
            "instances": instances
        })
    }

    fn moved(s: &Solution) -> Vec<(String, String)> {
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
    fn moves_the_noisy_neighbour_of_a_starved_priority_instance() {
        // vm1 (priority 1) lost half its cache; vm2 (default 5) doubled its own.
        // h2 is full (one 2-vcpu instance on 2 vcpus), so vm2 goes to h3.
        let s = NoisyNeighbor
            .execute(
                model(vec![
                    vm(1, "h1", Some(1), series(10.0, 5.0)),
                    vm(2, "h1", None, series(10.0, 20.0)),
                    vm(3, "h2", None, series(10.0, 10.0)),
                ]),
                json!({}),
            )
            .expect("plan");
        assert_eq!(moved(&s), [("vm2".to_string(), "h3".to_string())]);
    }

    #[test]
    fn does_nothing_when_the_drop_or_the_growth_is_small_or_the_host_is_alone() {
        for pair in [
            vec![
                vm(1, "h1", Some(1), series(10.0, 8.0)),
                vm(2, "h1", None, series(10.0, 20.0)),
            ],
            vec![
                vm(1, "h1", Some(1), series(10.0, 5.0)),
                vm(2, "h1", None, series(10.0, 12.0)),
            ],
            vec![vm(1, "h1", Some(1), series(10.0, 5.0))],
            // The grower is the more important one: it is not noisy.
            vec![
                vm(1, "h1", Some(9), series(10.0, 5.0)),
                vm(2, "h1", Some(1), series(10.0, 20.0)),
            ],
            // A single value is no series: not judged.
            vec![
                vm(1, "h1", Some(1), json!(5.0)),
                vm(2, "h1", None, json!(20.0)),
            ],
        ] {
            let s = NoisyNeighbor.execute(model(pair), json!({})).expect("plan");
            assert!(s.actions.is_empty(), "{:?}", s.extra);
        }
        assert!(
            NoisyNeighbor
                .execute(model(vec![]), json!({"threshold": 1}))
                .is_err()
        );
    }
}
