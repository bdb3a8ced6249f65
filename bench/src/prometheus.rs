//! `sextant-bench prometheus`: the time to fill a 10,000-instance model's
//! four usage metrics from Prometheus with the batched queries, against
//! Watcher's one query per instance (or host) and metric, measured on a
//! sample and scaled. Against the harness's Prometheus
//! (`scripts/services/prometheus.sh`: `--url $SEXTANT_TEST_PROMETHEUS_URL`),
//! fed through its remote-write receiver.

use serde_json::json;
use sextant::cli::CliResult;
use sextant::config::{MetricsConfig, SourceKind};
use sextant::datasource::{Aggregate, Window, fill_model, prometheus::Client};
use sextant_e2e::prometheus::{Series, push};
use sextant_plugin_api::model::ClusterModel;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const CPUS: usize = 8;

pub fn run(url: &str, hosts: usize, instances: usize, runs: usize) -> CliResult {
    let load_before = crate::notify::load_average();
    let tag = format!("bench{:x}", std::process::id());
    let host = |h: usize| format!("{tag}-h{h}");
    let uuid = |i: usize| format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), i);
    let span = Duration::from_secs(600);
    let step = Duration::from_secs(15);

    let started = Instant::now();
    let mut series = Vec::new();
    for h in 0..hosts {
        let name = host(h);
        for c in 0..CPUS {
            let c = c.to_string();
            series.push(
                Series::new(
                    "node_cpu_seconds_total",
                    &[("fqdn", &name), ("mode", "idle"), ("cpu", &c)],
                )
                .over_last(span, step, |t| t * 0.5),
            );
        }
        series.push(
            Series::new("node_memory_MemTotal_bytes", &[("fqdn", &name)]).over_last(
                span,
                step,
                |_| 6.4e10,
            ),
        );
        series.push(
            Series::new("node_memory_MemAvailable_bytes", &[("fqdn", &name)]).over_last(
                span,
                step,
                |_| 3.2e10,
            ),
        );
    }
    for i in 0..instances {
        let u = uuid(i);
        series.push(
            Series::new("ceilometer_cpu", &[("resource", &u)]).over_last(span, step, |t| t * 1e9),
        );
        series.push(
            Series::new("ceilometer_memory_usage", &[("resource", &u)]).over_last(
                span,
                step,
                |_| 2048.0,
            ),
        );
    }
    let n_series = series.len();
    push(url, &series);
    drop(series);
    let pushed = started.elapsed();

    let model: ClusterModel = serde_json::from_value(json!({
        "nodes": (0..hosts).map(|h| json!({"uuid": format!("n{h}"), "hostname": host(h),
            "vcpus": 32, "memory": 65536, "disk": 1000})).collect::<Vec<_>>(),
        "instances": (0..instances).map(|i| json!({"uuid": uuid(i), "name": format!("vm{i}"),
            "host": host(i % hosts), "vcpus": 2, "memory": 4096, "disk": 20})).collect::<Vec<_>>(),
    }))?;
    let cfg = MetricsConfig {
        source: Some(SourceKind::Prometheus),
        url: Some(url.to_string()),
        ..MetricsConfig::default()
    };
    let metrics: Vec<String> = [
        "host_cpu_usage",
        "host_ram_usage",
        "instance_cpu_usage",
        "instance_ram_usage",
    ]
    .map(String::from)
    .to_vec();
    let params = json!({"period": 300});
    let mut fills = Vec::new();
    for _ in 0..runs.max(1) {
        let mut m = model.clone();
        let t = Instant::now();
        fill_model(&cfg, &mut m, &metrics, &params)?;
        fills.push(t.elapsed().as_secs_f64());
        let filled = m.instances.iter().filter(|i| i.metrics.len() == 2).count() == instances
            && m.nodes.iter().filter(|n| n.metrics.len() == 2).count() == hosts;
        if !filled {
            return Err(
                anyhow::anyhow!("the model was not filled for every host and instance").into(),
            );
        }
    }
    fills.sort_by(f64::total_cmp);

    // Watcher's way: one query per instance and metric, on a sample.
    let client = Client::new(&cfg, &SourceKind::Prometheus)?;
    let w = Window {
        period: Duration::from_secs(300),
        aggregate: Aggregate::Mean,
    };
    let sample = 200.min(instances);
    let t = Instant::now();
    for i in 0..sample {
        client.instance_metric("instance_cpu_usage", &[&uuid(i)], w)?;
    }
    let per_query = t.elapsed().as_secs_f64() / sample as f64;
    let watcher_queries = 2 * instances + 2 * hosts;
    let doc = json!({
        "hosts": hosts, "instances": instances, "series": n_series,
        "push_seconds": pushed.as_secs_f64(),
        "batched_queries": 4,
        "fill_seconds_median": fills[fills.len() / 2],
        "fill_seconds_runs": fills,
        "watcher_style_queries": watcher_queries,
        "watcher_style_seconds_per_query": per_query,
        "watcher_style_seconds_estimated": per_query * watcher_queries as f64,
        "load_average_before": load_before,
        "load_average_after": crate::notify::load_average(),
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
