//! `workload_stabilization` (goal `workload_balancing`): Watcher's
//! "Workload stabilization" strategy. It measures each host's load for each
//! metric of `metrics` as a fraction of its capacity (cpu: the
//! `host_cpu_usage` metric in percent, or the sum of the instances' cores;
//! ram: `host_ram_usage` in MB, or the sum of the instances'
//! `instance_ram_usage`, against memory). When the standard deviation of a
//! metric across hosts is above its `thresholds` entry, it simulates live
//! migrations and keeps, one after another, the one that lowers the
//! weighted standard deviation (Σ weight × sd) most, until every metric is
//! under its threshold or no migration helps.
//!
//! Candidate destinations follow `host_choice`: `fullsearch` tries every
//! host, `cycle` the next host in turn, `retry` `retry_count` hosts. Unlike
//! Watcher's, `retry` picks them in a fixed rotation rather than at random
//! (the same cluster gives the same plan), every kept migration fits in
//! vcpus, memory and disk with ratios and reservations on an enabled, up and
//! powered-on host, an instance moves at most once per audit, and excluded,
//! locked and recently migrated instances stay put.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::{Instance, Node};
use sextant_plugin_api::prelude::*;
use std::collections::{BTreeMap, HashSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "metrics")]
    metrics: Vec<String>,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    #[serde(default)]
    weights: BTreeMap<String, f64>,
    #[serde(default)]
    #[allow(dead_code)]
    instance_metrics: Option<Value>,
    #[serde(default = "host_choice")]
    host_choice: String,
    #[serde(default = "retry_count")]
    retry_count: f64,
    #[serde(default)]
    #[allow(dead_code)]
    periods: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    aggregation_method: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    granularity: Option<f64>,
    #[serde(default)]
    min_migration_interval: f64,
    #[serde(default)]
    now: Option<f64>,
}

fn metrics() -> Vec<String> {
    vec!["instance_cpu_usage".into()]
}
fn host_choice() -> String {
    "retry".into()
}
fn retry_count() -> f64 {
    1.0
}

#[derive(Default)]
pub struct WorkloadStabilization;

/// What one instance adds to a host, as a fraction of that host, per metric.
fn share(i: &Instance, n: &Node, metric: &str) -> f64 {
    let usage = i.metrics.get(metric).and_then(|m| m.mean()).unwrap_or(0.0);
    match metric {
        "instance_cpu_usage" if n.vcpus > 0 => usage / 100.0 * i.vcpus as f64 / n.vcpus as f64,
        "instance_ram_usage" if n.memory > 0 => usage / n.memory as f64,
        _ => 0.0,
    }
}

impl Strategy for WorkloadStabilization {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("workload_stabilization", parameters)?;
        let bad = |m: String| {
            Err(PluginError::invalid_input(format!(
                "workload_stabilization parameters: {m}"
            )))
        };
        if p.metrics.is_empty() {
            return bad("metrics is empty".into());
        }
        for m in &p.metrics {
            if m != "instance_cpu_usage" && m != "instance_ram_usage" {
                return bad(format!(
                    "metrics: {m:?} is not instance_cpu_usage or instance_ram_usage"
                ));
            }
        }
        if !matches!(p.host_choice.as_str(), "cycle" | "retry" | "fullsearch") {
            return bad(format!(
                "host_choice {:?} is not cycle, retry or fullsearch",
                p.host_choice
            ));
        }
        if p.retry_count < 1.0 {
            return bad("retry_count must be at least 1".into());
        }
        let threshold = |m: &str| p.thresholds.get(m).copied().unwrap_or(0.1);
        let weight = |m: &str| {
            p.weights
                .get(&format!("{m}_weight"))
                .copied()
                .unwrap_or(1.0)
        };
        let model = common::model(model)?;
        let now = common::now(p.now);
        let hosts: Vec<&Node> = {
            let mut h: Vec<&Node> = model.nodes.iter().filter(|n| common::receives(n)).collect();
            h.sort_by(|a, b| a.hostname.cmp(&b.hostname));
            h
        };
        let index = |name: &str| hosts.iter().position(|n| n.hostname == name);
        // load[metric][host], as a fraction of the host.
        let mut load: Vec<Vec<f64>> = p
            .metrics
            .iter()
            .map(|m| {
                hosts
                    .iter()
                    .map(|n| {
                        let host_metric = |k: &str| n.metrics.get(k).and_then(|x| x.mean());
                        match m.as_str() {
                            "instance_cpu_usage" => {
                                host_metric("host_cpu_usage").map(|v| v / 100.0)
                            }
                            _ => host_metric("host_ram_usage").map(|v| {
                                if n.memory > 0 {
                                    v / n.memory as f64
                                } else {
                                    0.0
                                }
                            }),
                        }
                        .unwrap_or_else(|| {
                            model
                                .instances
                                .iter()
                                .filter(|i| i.host == n.hostname)
                                .map(|i| share(i, n, m))
                                .sum()
                        })
                    })
                    .collect()
            })
            .collect();
        let mut used: Vec<(f64, f64, f64)> = hosts
            .iter()
            .map(|n| {
                model
                    .instances
                    .iter()
                    .filter(|i| i.host == n.hostname)
                    .fold((0.0, 0.0, 0.0), |u, i| {
                        (
                            u.0 + i.vcpus as f64,
                            u.1 + i.memory as f64,
                            u.2 + i.disk as f64,
                        )
                    })
            })
            .collect();
        let sds = |load: &Vec<Vec<f64>>| {
            load.iter()
                .map(|l| common::std_dev(l))
                .collect::<Vec<f64>>()
        };
        let weighted = |sd: &[f64]| {
            p.metrics
                .iter()
                .zip(sd)
                .map(|(m, s)| weight(m) * s)
                .sum::<f64>()
        };
        let before = sds(&load);
        let movable = |i: &Instance| {
            let recent = common::recently_migrated(i, now, p.min_migration_interval);
            matches!(i.state.as_str(), "active" | "paused")
                && !i.watcher_exclude
                && !i.locked
                && !recent
        };
        let mut host_of: Vec<Option<usize>> =
            model.instances.iter().map(|i| index(&i.host)).collect();
        let mut moved: HashSet<usize> = HashSet::new();
        let mut actions = Vec::new();
        let unbalanced = |sd: &[f64]| p.metrics.iter().zip(sd).any(|(m, s)| *s > threshold(m));
        let mut turn = 0usize;
        while unbalanced(&sds(&load)) && hosts.len() > 1 {
            let current = weighted(&sds(&load));
            let mut best: Option<(f64, usize, usize)> = None;
            for (k, i) in model.instances.iter().enumerate() {
                let Some(src) = host_of[k] else { continue };
                if moved.contains(&k) || !movable(i) {
                    continue;
                }
                let others: Vec<usize> = (0..hosts.len()).filter(|&d| d != src).collect();
                let candidates: Vec<usize> = match p.host_choice.as_str() {
                    "fullsearch" => others,
                    "cycle" => vec![others[(turn + k) % others.len()]],
                    _ => (0..(p.retry_count as usize).min(others.len()))
                        .map(|r| others[(turn + k + r) % others.len()])
                        .collect(),
                };
                for dst in candidates {
                    let (cv, cm, cd) = hosts[dst].capacity();
                    let u = used[dst];
                    if u.0 + i.vcpus as f64 > cv + 1e-9
                        || u.1 + i.memory as f64 > cm + 1e-9
                        || u.2 + i.disk as f64 > cd + 1e-9
                    {
                        continue;
                    }
                    let mut trial = load.clone();
                    for (mi, m) in p.metrics.iter().enumerate() {
                        trial[mi][src] -= share(i, hosts[src], m);
                        trial[mi][dst] += share(i, hosts[dst], m);
                    }
                    let w = weighted(&sds(&trial));
                    if w + 1e-12 < best.map_or(current, |b| b.0) {
                        best = Some((w, k, dst));
                    }
                }
            }
            turn += 1;
            let Some((_, k, dst)) = best else { break };
            let i = &model.instances[k];
            let src = host_of[k].unwrap_or(dst);
            for (mi, m) in p.metrics.iter().enumerate() {
                load[mi][src] -= share(i, hosts[src], m);
                load[mi][dst] += share(i, hosts[dst], m);
            }
            used[src] = (
                used[src].0 - i.vcpus as f64,
                used[src].1 - i.memory as f64,
                used[src].2 - i.disk as f64,
            );
            used[dst] = (
                used[dst].0 + i.vcpus as f64,
                used[dst].1 + i.memory as f64,
                used[dst].2 + i.disk as f64,
            );
            host_of[k] = Some(dst);
            moved.insert(k);
            actions.push(common::migrate(
                i,
                true,
                &hosts[src].hostname,
                Some(&hosts[dst].hostname),
            ));
        }
        let after = sds(&load);
        let instances = model.instances.len();
        let mut s =
            common::workload_balancing(actions, instances, weighted(&before), weighted(&after));
        if let Some(o) = s.extra.as_object_mut() {
            o.extend(
                json!({"sd_before": before, "sd_after": after})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        Ok(s)
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "metrics": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["instance_cpu_usage", "instance_ram_usage"]},
      "default": ["instance_cpu_usage"], "description": "Metrics used as rates of cluster loads."},
    "thresholds": {"type": "object", "description": "Dict where key is a metric and value is a trigger value.",
      "properties": {"instance_cpu_usage": {"type": "number", "minimum": 0, "maximum": 1},
                     "instance_ram_usage": {"type": "number", "minimum": 0, "maximum": 1}},
      "default": {"instance_cpu_usage": 0.1, "instance_ram_usage": 0.1}},
    "weights": {"type": "object", "description": "These weights used to calculate common standard deviation. Name of weight contains meter name and _weight suffix",
      "properties": {"instance_cpu_usage_weight": {"type": "number", "minimum": 0, "maximum": 1},
                     "instance_ram_usage_weight": {"type": "number", "minimum": 0, "maximum": 1}},
      "default": {"instance_cpu_usage_weight": 1.0, "instance_ram_usage_weight": 1.0}},
    "instance_metrics": {"type": "object", "description": "Mapping to get hardware statistics using instance metrics",
      "default": {"instance_cpu_usage": "host_cpu_usage", "instance_ram_usage": "host_ram_usage"}},
    "host_choice": {"type": "string", "enum": ["cycle", "retry", "fullsearch"], "default": "retry",
      "description": "Method of host's choice. There are cycle, retry and fullsearch methods."},
    "retry_count": {"type": "number", "minimum": 1, "default": 1, "description": "Count of random returned hosts"},
    "periods": {"type": "object", "default": {"instance": 720, "compute_node": 600, "node": 0},
      "description": "These periods are used to get statistic aggregation for instance and host metrics."},
    "aggregation_method": {"type": "object", "default": {"instance": "mean", "compute_node": "mean", "node": ""}},
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

    /// Three 10-core hosts; each instance has 2 vcpus and `cpu` percent usage.
    fn model(on: [&[f64]; 3]) -> Value {
        let mut instances = Vec::new();
        for (h, list) in ["h1", "h2", "h3"].iter().zip(on) {
            for (k, cpu) in list.iter().enumerate() {
                instances.push(
                    json!({"uuid": format!("{h}-{k}"), "name": format!("{h}-{k}"), "host": h,
                    "vcpus": 2, "memory": 1024, "disk": 10,
                    "metrics": {"instance_cpu_usage": cpu, "instance_ram_usage": 512}}),
                );
            }
        }
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 10, "memory": 8192, "disk": 500},
                {"uuid": "n2", "hostname": "h2", "vcpus": 10, "memory": 8192, "disk": 500},
                {"uuid": "n3", "hostname": "h3", "vcpus": 10, "memory": 8192, "disk": 500}
            ],
            "instances": instances
        })
    }

    fn value(s: &Solution, name: &str) -> f64 {
        crate::common::testgen::named_value(&s.efficacy_indicators, name)
    }

    #[test]
    fn spreads_a_hot_host_until_the_deviation_is_under_the_threshold() {
        // h1 carries 4 busy instances, each 1.6 of its 10 cores (0.16):
        // loads 0.64, 0, 0: sd 0.30.
        let s = WorkloadStabilization
            .execute(
                model([&[80.0, 80.0, 80.0, 80.0], &[], &[]]),
                json!({"host_choice": "fullsearch"}),
            )
            .expect("plan");
        assert_eq!(s.actions.len(), 2, "{:?}", s.extra);
        assert!(value(&s, "standard_deviation_after_audit") <= 0.1);
        assert!(value(&s, "standard_deviation_before_audit") > 0.29);
        let dests: HashSet<&str> = s
            .actions
            .iter()
            .filter_map(|a| a.input_parameters["destination_node"].as_str())
            .collect();
        assert_eq!(dests.len(), 2, "one to each idle host");
        // retry (the default) and cycle also find improving moves here.
        for choice in ["retry", "cycle"] {
            let s = WorkloadStabilization
                .execute(
                    model([&[80.0, 80.0, 80.0, 80.0], &[], &[]]),
                    json!({"host_choice": choice}),
                )
                .expect("plan");
            assert!(!s.actions.is_empty(), "{choice}");
            assert!(
                value(&s, "standard_deviation_after_audit")
                    < value(&s, "standard_deviation_before_audit")
            );
        }
    }

    #[test]
    fn does_nothing_on_a_balanced_cluster_or_when_no_move_helps() {
        let s = WorkloadStabilization
            .execute(model([&[50.0], &[50.0], &[50.0]]), json!({}))
            .expect("plan");
        assert!(s.actions.is_empty());
        // One huge instance: moving it only moves the imbalance.
        let s = WorkloadStabilization
            .execute(
                model([&[100.0], &[], &[]]),
                json!({"thresholds": {"instance_cpu_usage": 0.05}, "host_choice": "fullsearch"}),
            )
            .expect("plan");
        assert!(s.actions.is_empty(), "{:?}", s.actions);
    }

    #[test]
    fn refuses_bad_parameters() {
        for p in [
            json!({"metrics": ["disk"]}),
            json!({"host_choice": "random"}),
            json!({"retry_count": 0}),
            json!({"x": 1}),
        ] {
            assert!(
                WorkloadStabilization
                    .execute(model([&[], &[], &[]]), p.clone())
                    .is_err(),
                "{p}"
            );
        }
    }
}
