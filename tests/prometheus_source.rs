//! The Prometheus metrics source against a real Prometheus
//! (`scripts/services/prometheus.sh`), fed node_exporter-style and
//! ceilometer-style series through its remote-write receiver, as Watcher's
//! tempest plugin feeds it.

use serde_json::{Value, json};
use sextant_e2e::prometheus::{Series, push};
use sextant_e2e::{Home, service_url, write_file};
use std::time::Duration;

/// Node memory, MB.
const NODE_MB: u64 = 65536;
/// vCPUs per node.
const NODE_VCPUS: u64 = 16;

/// A cluster whose usage is known: per host `(cpu %, ram MB)`, per
/// instance `(host index, vcpus, cpu %, ram MB)`. Names are unique per
/// test, so tests share one Prometheus.
struct Cloud {
    prefix: String,
    /// Appended to the hostnames in node_exporter's `fqdn` labels.
    domain: String,
    hosts: Vec<(f64, f64)>,
    instances: Vec<(usize, u64, f64, f64)>,
}

impl Cloud {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        Self {
            prefix: format!("{tag}-{:x}{:x}", std::process::id(), nanos),
            domain: String::new(),
            hosts: vec![(70.0, 20000.0), (5.0, 5000.0), (8.0, 6000.0), (2.0, 1000.0)],
            instances: vec![
                (0, 2, 90.0, 3000.0),
                (0, 2, 80.0, 2500.0),
                (0, 2, 70.0, 2000.0),
                (0, 4, 60.0, 1500.0),
                (1, 2, 10.0, 1000.0),
                (2, 2, 20.0, 1200.0),
            ],
        }
    }

    fn host(&self, i: usize) -> String {
        format!("{}-compute-{i}", self.prefix)
    }

    fn uuid(&self, i: usize) -> String {
        let h = self
            .prefix
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
        format!("{:08x}-0000-4000-8000-{:012x}", h as u32, i)
    }

    /// The snapshot, with or without the usage metrics in it.
    fn snapshot(&self, with_metrics: bool) -> String {
        let nodes: Vec<Value> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, (cpu, ram))| {
                let mut n = json!({"uuid": format!("node-{i}"), "hostname": self.host(i),
                    "vcpus": NODE_VCPUS, "memory": NODE_MB, "disk": 1000});
                if with_metrics {
                    n["metrics"] = json!({"host_cpu_usage": cpu, "host_ram_usage": ram});
                }
                n
            })
            .collect();
        let instances: Vec<Value> = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, (host, vcpus, cpu, ram))| {
                let mut v = json!({"uuid": self.uuid(i), "name": format!("vm-{i}"),
                    "host": self.host(*host), "vcpus": vcpus, "memory": 4096, "disk": 20});
                if with_metrics {
                    v["metrics"] = json!({"instance_cpu_usage": cpu, "instance_ram_usage": ram});
                }
                v
            })
            .collect();
        serde_json::to_string(&json!({"nodes": nodes, "instances": instances})).expect("json")
    }

    /// node_exporter's series for the hosts: one idle-cpu counter per cpu,
    /// total and available memory.
    fn host_series(&self) -> Vec<Series> {
        let span = Duration::from_secs(40 * 60);
        let step = Duration::from_secs(15);
        let mut out = Vec::new();
        for (i, (cpu, ram)) in self.hosts.iter().enumerate() {
            let host = format!("{}{}", self.host(i), self.domain);
            let target = format!("10.0.0.{i}:9100");
            let labels = [("fqdn", host.as_str()), ("instance", target.as_str())];
            let idle = 1.0 - cpu / 100.0;
            for c in 0..NODE_VCPUS {
                let c = c.to_string();
                out.push(
                    Series::new(
                        "node_cpu_seconds_total",
                        &[labels[0], labels[1], ("mode", "idle"), ("cpu", &c)],
                    )
                    .over_last(span, step, |t| 1000.0 + idle * t),
                );
            }
            let total = (NODE_MB * 1024 * 1024) as f64;
            let used = ram * 1024.0 * 1024.0;
            out.push(
                Series::new("node_memory_MemTotal_bytes", &labels).over_last(span, step, |_| total),
            );
            out.push(
                Series::new("node_memory_MemAvailable_bytes", &labels).over_last(
                    span,
                    step,
                    |_| total - used,
                ),
            );
        }
        out
    }

    /// Ceilometer's series for the instances: `ceilometer_cpu` in ns
    /// (a counter) and `ceilometer_memory_usage` in MB.
    fn instance_series(&self) -> Vec<Series> {
        let span = Duration::from_secs(40 * 60);
        let step = Duration::from_secs(15);
        let mut out = Vec::new();
        for (i, (_, vcpus, cpu, ram)) in self.instances.iter().enumerate() {
            let uuid = self.uuid(i);
            let labels = [("resource", uuid.as_str()), ("project", "p1")];
            let ns_per_s = cpu / 100.0 * *vcpus as f64 * 1e9;
            out.push(
                Series::new("ceilometer_cpu", &labels)
                    .over_last(span, step, |t| 5e9 + ns_per_s * t),
            );
            out.push(
                Series::new("ceilometer_memory_usage", &labels).over_last(span, step, |_| *ram),
            );
        }
        out
    }
}

/// A home whose simulated cloud is `snapshot`, with `config` as its config.
fn home(snapshot: &str, config: Option<&str>) -> Home {
    let home = Home::new();
    let file = write_file(home.path(), "cluster.json", snapshot);
    let out = home.run(&[
        "sim",
        "init",
        "--time-scale",
        "0",
        "--from",
        &file.to_string_lossy(),
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    if let Some(c) = config {
        write_file(&home.path().join("config/sextant"), "config.yaml", c);
    }
    home
}

fn source_config(url: &str) -> String {
    format!("metrics:\n  source: prometheus\n  url: {url}\n")
}

/// Each action of the audit's plan as `(type, parameters)`, in order.
fn solution(home: &Home, audit: &Value) -> Vec<(Value, Value)> {
    let plan = audit["action_plan"].as_str().expect("a plan");
    home.actions(plan)
        .into_iter()
        .map(|a| (a["action_type"].clone(), a["input_parameters"].clone()))
        .collect()
}

fn audit(home: &Home, strategy: &str) -> (i32, Value, String) {
    let goal = match strategy {
        "vm_workload_consolidation" => "server_consolidation",
        _ => "workload_balancing",
    };
    let out = home.run(&[
        "audit", "create", "-g", goal, "-s", strategy, "--format", "json",
    ]);
    (out.status, out.json(), out.stderr)
}

#[test]
fn an_audit_from_prometheus_decides_as_from_the_same_metrics_in_the_snapshot() {
    let url = service_url("SEXTANT_TEST_PROMETHEUS_URL");
    let cloud = Cloud::new("same");
    let mut series = cloud.host_series();
    series.extend(cloud.instance_series());
    push(&url, &series);

    for strategy in [
        "workload_stabilization",
        "workload_balance",
        "vm_workload_consolidation",
    ] {
        // The snapshot carries no usage: only Prometheus can tell.
        let from_prometheus = home(&cloud.snapshot(false), Some(&source_config(&url)));
        let (status, a, err) = audit(&from_prometheus, strategy);
        assert_eq!(status, 0, "{strategy}: {a} {err}");
        assert_eq!(a["state"], "SUCCEEDED", "{strategy}: {a}");
        let got = solution(&from_prometheus, &a);

        let from_snapshot = home(&cloud.snapshot(true), None);
        let (status, b, err) = audit(&from_snapshot, strategy);
        assert_eq!(status, 0, "{strategy}: {b} {err}");
        let want = solution(&from_snapshot, &b);

        assert!(
            !want.is_empty(),
            "{strategy}: the usage calls for actions: {b}"
        );
        assert_eq!(got, want, "{strategy}: the same solution");

        // Without the source, the metric-less snapshot gives another answer
        // (vm_workload_consolidation empties the same hosts by allocation
        // here: for it, the source is proven by the equal solution and by
        // the audit failing when a metric is missing).
        if strategy == "vm_workload_consolidation" {
            continue;
        }
        let blind = home(&cloud.snapshot(false), None);
        let (_, c, _) = audit(&blind, strategy);
        let blind_solution = c["action_plan"]
            .as_str()
            .map(|_| solution(&blind, &c))
            .unwrap_or_default();
        assert_ne!(
            blind_solution, want,
            "{strategy}: the metrics made the difference"
        );
    }
}

#[test]
fn hosts_are_found_by_the_short_name_of_a_fully_qualified_fqdn_label() {
    let url = service_url("SEXTANT_TEST_PROMETHEUS_URL");
    let mut cloud = Cloud::new("fqdn");
    // Nova knows compute-0, node_exporter's target says compute-0.example.test.
    cloud.domain = ".example.test".into();
    let mut series = cloud.host_series();
    series.extend(cloud.instance_series());
    push(&url, &series);
    let from_prometheus = home(&cloud.snapshot(false), Some(&source_config(&url)));
    let (status, a, err) = audit(&from_prometheus, "workload_stabilization");
    assert_eq!(status, 0, "{a} {err}");
    let from_snapshot = home(&cloud.snapshot(true), None);
    let (_, b, _) = audit(&from_snapshot, "workload_stabilization");
    let want = solution(&from_snapshot, &b);
    assert!(!want.is_empty());
    assert_eq!(solution(&from_prometheus, &a), want);
}

#[test]
fn a_metric_prometheus_cannot_give_fails_the_audit_naming_it() {
    let url = service_url("SEXTANT_TEST_PROMETHEUS_URL");
    let cloud = Cloud::new("missing");
    // Ceilometer's series only: no node_exporter for these hosts.
    push(&url, &cloud.instance_series());
    let home = home(&cloud.snapshot(true), Some(&source_config(&url)));
    let (status, a, _) = audit(&home, "workload_stabilization");
    assert_eq!(status, 1, "{a}");
    assert_eq!(a["state"], "FAILED", "{a}");
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("Metric: host_cpu_usage not available") && why.contains("label fqdn"),
        "{why}"
    );
    assert!(a["action_plan"].is_null(), "{a}");
    let plans = home
        .run(&["action-plan", "list", "--format", "json"])
        .json();
    assert_eq!(plans, json!([]), "no plan is left behind");
    let audits = home.run(&["audit", "list", "--format", "json"]).json();
    assert_eq!(audits.as_array().map(Vec::len), Some(1), "{audits}");

    // A metric Prometheus does not provide at all (Watcher's map has no
    // query for it), with none in the model, is named too.
    let (status, a, _) = {
        let out = home.run(&[
            "audit",
            "create",
            "-g",
            "thermal_optimization",
            "-s",
            "outlet_temperature",
            "--format",
            "json",
        ]);
        (out.status, out.json(), out.stderr)
    };
    assert_eq!(status, 1, "{a}");
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("Metric: host_outlet_temp not available")
            && why.contains("does not provide it"),
        "{why}"
    );
}

#[test]
fn an_unreachable_prometheus_fails_the_audit_naming_its_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cloud = Cloud::new("down");
    let config = format!(
        "{}  retries: 2\n  retry_interval: 300ms\n",
        source_config(&url)
    );
    let home = home(&cloud.snapshot(true), Some(&config));
    let started = std::time::Instant::now();
    let (status, a, _) = audit(&home, "workload_balance");
    assert_eq!(status, 1, "{a}");
    assert_eq!(a["state"], "FAILED", "{a}");
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains(&url) && why.contains("after 3 attempts"),
        "{why}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "tried again, waiting between"
    );
    assert_eq!(
        home.run(&["action-plan", "list", "--format", "json"])
            .json(),
        json!([])
    );
}

#[test]
fn tls_and_basic_auth_reach_a_secured_prometheus_and_a_wrong_password_is_named_not_shown() {
    use sextant_e2e::prometheus::{Secured, push_secured};
    let p = Secured::from_env();
    let cloud = Cloud::new("tls");
    push_secured(&p, &cloud.instance_series());
    let config = |password: &str, ca: bool| {
        let mut c = format!(
            "metrics:\n  source: prometheus\n  url: {}\n  username: {}\n  password: '{password}'\n",
            p.url, p.user
        );
        if ca {
            c.push_str(&format!("  ca_file: {}\n", p.ca));
        }
        c
    };

    let home = home(&cloud.snapshot(false), Some(&config(&p.password, true)));
    let (status, a, err) = audit(&home, "workload_balance");
    assert_eq!(status, 0, "{a} {err}");
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    let want = solution(&home, &a);
    let from_snapshot = self::home(&cloud.snapshot(true), None);
    let (_, b, _) = audit(&from_snapshot, "workload_balance");
    assert!(!want.is_empty());
    assert_eq!(want, solution(&from_snapshot, &b));

    let wrong = "not-the-password-7f3e";
    let home = self::home(&cloud.snapshot(false), Some(&config(wrong, true)));
    let out = home.run(&[
        "audit",
        "create",
        "-g",
        "workload_balancing",
        "-s",
        "workload_balance",
        "--format",
        "json",
        "-vvv",
    ]);
    assert_eq!(out.status, 1, "{}", out.stderr);
    let a = out.json();
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("answered 401") && why.contains(&p.url),
        "{why}"
    );
    assert!(
        !out.stdout.contains(wrong) && !out.stderr.contains(wrong),
        "the password is never shown"
    );
    let events = home.run(&["history", "--format", "json"]);
    assert!(!events.stdout.contains(wrong), "nor stored in events");

    // Without the CA, the server's certificate is not trusted.
    let home = self::home(&cloud.snapshot(false), Some(&config(&p.password, false)));
    let (status, a, _) = audit(&home, "workload_balance");
    assert_eq!(status, 1, "{a}");
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains(&p.url) && why.to_lowercase().contains("certificate"),
        "{why}"
    );
}

#[test]
fn a_bad_metrics_config_is_refused_naming_the_file_and_field_and_nothing_is_stored() {
    let cloud = Cloud::new("badcfg");
    let home = home(&cloud.snapshot(true), None);
    let before = home.run(&["audit", "list", "--format", "json"]).json();
    for (config, field) in [
        ("metrics:\n  source: prometheus\n", "needs a url"),
        (
            "metrics:\n  source: prometheus\n  url: http://h\n  aggregate: median\n",
            "metrics.aggregate",
        ),
        (
            "metrics:\n  source: gnocchi\n  url: http://h\n",
            "metrics.source",
        ),
        (
            "metrics:\n  source: prometheus\n  url: 'http://u:pw-4d2@h/'\n",
            "must not carry credentials",
        ),
        ("metrics:\n  listen: nowhere\n", "metrics.listen"),
    ] {
        let file = write_file(&home.path().join("config/sextant"), "config.yaml", config);
        let out = home.run(&[
            "audit",
            "create",
            "-g",
            "workload_balancing",
            "-s",
            "workload_balance",
        ]);
        assert_eq!(out.status, 2, "{config}: {}", out.stderr);
        assert!(
            out.stderr.contains(&file.display().to_string()) && out.stderr.contains(field),
            "{config}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("pw-4d2"), "{}", out.stderr);
    }
    std::fs::remove_file(home.path().join("config/sextant/config.yaml")).expect("rm");
    assert_eq!(
        home.run(&["audit", "list", "--format", "json"]).json(),
        before
    );
}
