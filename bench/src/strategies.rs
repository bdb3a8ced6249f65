//! `sextant-bench strategies`: the `basic` consolidation on the medium
//! example and a generated large cluster: strategy time (through the plugin
//! boundary), nodes in use after against the lower bound, migrations; and
//! the same figures for Watcher-style first-fit, implemented here as the
//! baseline.

use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use sextant_plugin_api::model::ClusterModel;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

type Res = (f64, f64, f64);

fn fits(u: Res, d: Res, c: Res) -> bool {
    u.0 + d.0 <= c.0 + 1e-9 && u.1 + d.1 <= c.1 + 1e-9 && u.2 + d.2 <= c.2 + 1e-9
}

/// The fewest nodes whose capacities cover the total demand in every
/// dimension (largest nodes first): a lower bound on nodes in use.
fn lower_bound(m: &ClusterModel) -> usize {
    let total = m.instances.iter().fold((0.0, 0.0, 0.0), |t, i| {
        (
            t.0 + i.vcpus as f64,
            t.1 + i.memory as f64,
            t.2 + i.disk as f64,
        )
    });
    let mut caps: Vec<Res> = m.nodes.iter().map(|n| n.capacity()).collect();
    let mut worst = 0;
    for dim in 0..3 {
        let get = |r: &Res| [r.0, r.1, r.2][dim];
        caps.sort_by(|a, b| get(b).total_cmp(&get(a)));
        let need = [total.0, total.1, total.2][dim];
        let mut sum = 0.0;
        let mut k = 0;
        while sum + 1e-9 < need && k < caps.len() {
            sum += get(&caps[k]);
            k += 1;
        }
        worst = worst.max(k);
    }
    worst
}

/// Watcher-style first-fit: instances in model order onto the first host
/// (in host order) with room, counting hosts in use.
fn first_fit(m: &ClusterModel) -> (usize, usize) {
    let caps: Vec<Res> = m.nodes.iter().map(|n| n.capacity()).collect();
    let mut used: Vec<Res> = vec![(0.0, 0.0, 0.0); caps.len()];
    let index: HashMap<&str, usize> = m
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.hostname.as_str(), i))
        .collect();
    let mut moved = 0;
    for i in &m.instances {
        let d = (i.vcpus as f64, i.memory as f64, i.disk as f64);
        let Some(k) = (0..caps.len()).find(|&k| fits(used[k], d, caps[k])) else {
            continue;
        };
        used[k] = (used[k].0 + d.0, used[k].1 + d.1, used[k].2 + d.2);
        if index.get(i.host.as_str()) != Some(&k) {
            moved += 1;
        }
    }
    (
        used.iter().filter(|u| u.0 > 0.0 || u.1 > 0.0).count(),
        moved,
    )
}

fn in_use_after(m: &ClusterModel, solution: &Value) -> usize {
    let mut host: HashMap<String, String> = m
        .instances
        .iter()
        .map(|i| (i.uuid.clone(), i.host.clone()))
        .collect();
    for a in solution["actions"].as_array().into_iter().flatten() {
        if a["action_type"] == "migrate"
            && let (Some(id), Some(dst)) = (
                a["resource_id"].as_str(),
                a["input_parameters"]["destination_node"].as_str(),
            )
        {
            host.insert(id.to_string(), dst.to_string());
        }
    }
    host.values()
        .collect::<std::collections::HashSet<_>>()
        .len()
}

pub fn run(env: &Env, nodes: usize, instances: usize, runs: usize) -> CliResult {
    let plugins = env.registry()?;
    let medium = sextant::installation::example_cluster("medium.yaml")
        .and_then(|p| sextant::cli::read_snapshot(&p).ok())
        .unwrap_or_else(|| sextant::cli::generate_cluster(100, 1000, 100));
    let large = sextant::cli::generate_cluster(nodes, instances, 7);
    let mut out = Vec::new();
    for (name, m) in [("medium", medium), ("large", large)] {
        let model = serde_json::to_value(&m)?;
        let before = m
            .instances
            .iter()
            .map(|i| i.host.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let bound = lower_bound(&m);
        let mut row = serde_json::Map::new();
        for strategy in ["basic", "vm_workload_consolidation"] {
            let mut times = Vec::new();
            let mut solution = Value::Null;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let s = plugins
                    .run_strategy(strategy, &model, &json!({}))
                    .map_err(|e| anyhow::anyhow!(e))?;
                times.push(t.elapsed().as_secs_f64());
                solution = serde_json::to_value(&s)?;
            }
            times.sort_by(f64::total_cmp);
            let after = in_use_after(&m, &solution);
            let migrations = solution["actions"].as_array().map_or(0, |a| {
                a.iter().filter(|x| x["action_type"] == "migrate").count()
            });
            row.insert(
                strategy.into(),
                json!({"median_s": times[times.len() / 2], "nodes_in_use_before": before, "nodes_in_use_after": after,
                       "lower_bound": bound, "ratio_to_bound": after as f64 / bound.max(1) as f64, "migrations": migrations}),
            );
        }
        let t = Instant::now();
        let (ff_used, ff_moved) = first_fit(&m);
        let ff_time = t.elapsed().as_secs_f64();
        row.insert("cluster".into(), json!(name));
        row.insert("nodes".into(), json!(m.nodes.len()));
        row.insert("instances".into(), json!(m.instances.len()));
        row.insert(
            "first_fit_baseline".into(),
            json!({"s": ff_time, "nodes_in_use_after": ff_used,
                   "ratio_to_bound": ff_used as f64 / bound.max(1) as f64, "migrations": ff_moved}),
        );
        out.push(Value::Object(row));
    }
    let doc = json!({
        "benchmark": "strategies",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs,
        "results": out,
        "targets": {"large_strategy_s": 2.0, "ratio_to_bound": 1.1},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
