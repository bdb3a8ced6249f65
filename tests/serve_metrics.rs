//! `sextant serve --metrics ADDR`: Sextant's own metrics, scraped by a real
//! Prometheus (`scripts/services/prometheus.sh`) and queried with PromQL.

use serde_json::json;
use sextant_e2e::prometheus::query;
use sextant_e2e::{Home, run, service_url};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A `serve` that is stopped (SIGTERM, by its pid) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// A Prometheus scrape target (file_sd) that is removed when dropped.
struct Target(std::path::PathBuf);

impl Target {
    fn new(port: u16, run: &str) -> Self {
        let dir = std::path::PathBuf::from(service_url("SEXTANT_TEST_PROMETHEUS_SD_DIR"));
        let text = json!([{"targets": [format!("127.0.0.1:{port}")], "labels": {"run": run}}]);
        // Written whole, then renamed: Prometheus never reads half a file.
        let tmp = dir.join(format!(".{run}.tmp"));
        std::fs::write(&tmp, text.to_string()).expect("write target");
        let path = dir.join(format!("{run}.json"));
        std::fs::rename(&tmp, &path).expect("rename target");
        Self(path)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The value of a one-series PromQL answer, once it is `want` (or the
/// last value seen when it never gets there within `within`).
fn wait_for(url: &str, promql: &str, want: f64, within: Duration) -> Option<f64> {
    let until = Instant::now() + within;
    let mut last = None;
    while Instant::now() < until {
        last = query(url, promql)
            .first()
            .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()));
        if last == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

#[test]
fn prometheus_scrapes_serve_and_a_query_returns_the_plans_action_counts() {
    let url = service_url("SEXTANT_TEST_PROMETHEUS_URL");
    let home = Home::new();
    let port = free_port();
    let serve = Serve(
        home.cmd()
            .args(["serve", "--metrics", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let run_id = format!("serve-{}-{port}", std::process::id());
    let _target = Target::new(port, &run_id);

    let mut actions = Vec::new();
    for i in 0..3 {
        actions.push(json!({"id": format!("s{i}"), "action_type": "sleep",
                            "input_parameters": {"duration": 0.2}, "parents": []}));
    }
    for i in 0..2 {
        actions.push(json!({"id": format!("n{i}"), "action_type": "nop",
                            "input_parameters": {"message": "hi"}, "parents": ["s0"]}));
    }
    actions.push(json!({"id": "bad", "action_type": "nop",
                        "input_parameters": {"message": "no", "fail_execute": true}, "parents": []}));
    let plan = home.import_json("p.json", &json!({"actions": actions}));
    let out = home.run(&["action-plan", "start", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);

    // serve applies the queued plan.
    let until = Instant::now() + Duration::from_secs(60);
    while home.plan(&plan)["state"] != "FAILED" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        home.plan(&plan)["state"],
        "FAILED",
        "one action fails on purpose"
    );

    let within = Duration::from_secs(60);
    let q = |expr: &str| expr.replace("RUN", &run_id);
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sextant_actions{state="SUCCEEDED",run="RUN"}"#),
            5.0,
            within
        ),
        Some(5.0)
    );
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sextant_actions{state="FAILED",run="RUN"}"#),
            1.0,
            within
        ),
        Some(1.0)
    );
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sextant_action_plans{state="FAILED",run="RUN"}"#),
            1.0,
            within
        ),
        Some(1.0)
    );
    assert_eq!(
        wait_for(
            &url,
            &q(
                r#"sum(sextant_action_duration_seconds_count{action_type="sleep",state="SUCCEEDED",run="RUN"})"#
            ),
            3.0,
            within
        ),
        Some(3.0)
    );
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sum(sextant_action_duration_seconds_count{action_type="nop",run="RUN"})"#),
            3.0,
            within
        ),
        Some(3.0),
        "two nops succeeded, one failed"
    );
    // The sleeps ran 0.2 s each.
    let sum = wait_for(
        &url,
        &q(r#"sum(sextant_action_duration_seconds_sum{action_type="sleep",run="RUN"})"#),
        f64::NAN,
        Duration::from_secs(1),
    )
    .expect("a sum");
    assert!((0.5..10.0).contains(&sum), "{sum}");
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sextant_applier_running_actions{run="RUN"}"#),
            0.0,
            within
        ),
        Some(0.0)
    );
    assert_eq!(
        wait_for(
            &url,
            &q(r#"sextant_applier_queue_depth{run="RUN"}"#),
            0.0,
            within
        ),
        Some(0.0)
    );
    // An audit run's duration.
    let out = home.run(&[
        "audit", "create", "-g", "dummy", "-s", "dummy", "-p", "para1=1",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        wait_for(
            &url,
            &q(
                r#"sextant_audit_duration_seconds_count{audit_type="ONESHOT",state="SUCCEEDED",run="RUN"}"#
            ),
            1.0,
            within
        ),
        Some(1.0)
    );

    // A CONTINUOUS audit's runs (it stays ONGOING between them).
    let out = home.run(&[
        "audit",
        "create",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=1",
        "--type",
        "CONTINUOUS",
        "--interval",
        "1",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        wait_for(
            &url,
            &q(
                r#"clamp_max(sextant_audit_duration_seconds_count{audit_type="CONTINUOUS",state="SUCCEEDED",run="RUN"}, 1)"#
            ),
            1.0,
            within
        ),
        Some(1.0)
    );

    // Every query of the Grafana dashboard in docs/ is valid PromQL and
    // finds this serve's series.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sextant_e2e::repo_root().join("docs/grafana/sextant.json"))
            .expect("docs/grafana/sextant.json"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{}", panels.len());
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let concrete = expr
                .replace("$instance", &format!("127.0.0.1:{port}"))
                .replace("$__rate_interval", "1m");
            let answer = query(&url, &concrete);
            if expr.contains("sextant_actions{") || expr.contains("sextant_action_plans{") {
                assert!(
                    !answer.is_empty(),
                    "{} finds nothing: {concrete}",
                    panel["title"]
                );
            }
        }
    }
    drop(serve);
}

#[test]
fn serve_refuses_a_metrics_address_that_is_taken() {
    let home = Home::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(home
        .cmd()
        .args(["serve", "--exit-after", "5", "--metrics", &addr]));
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("metrics listener on {addr}")),
        "{}",
        out.stderr
    );
}

#[test]
fn the_config_files_metrics_listen_starts_the_listener() {
    let home = Home::new();
    let port = free_port();
    sextant_e2e::write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        &format!("metrics:\n  listen: 127.0.0.1:{port}\n"),
    );
    let _serve = Serve(
        home.cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let until = Instant::now() + Duration::from_secs(30);
    let mut body = String::new();
    while Instant::now() < until {
        if let Ok(mut r) = ureq::get(format!("http://127.0.0.1:{port}/metrics")).call() {
            body = r.body_mut().read_to_string().unwrap_or_default();
            if body.contains("sextant_actions{") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("sextant_applier_queue_depth 0"), "{body}");
    assert!(
        body.contains(r#"sextant_action_plans{state="RECOMMENDED"} 0"#),
        "{body}"
    );
}

/// `GET /metrics` on `port`: the exposition's text.
fn scrape(port: u16) -> String {
    let a = sextant_e2e::api::http(
        "GET",
        &format!("http://127.0.0.1:{port}/metrics"),
        &[],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// The value of the one sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A webhook endpoint that answers 204 to every POST once `open`.
fn webhook_endpoint(open: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Ok(clone) = conn.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            loop {
                let mut length = 0usize;
                let mut line = String::new();
                // The request line and headers.
                let mut first = true;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    first = false;
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                if first {
                    break;
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                let status = if open.load(std::sync::atomic::Ordering::SeqCst) {
                    "204 No Content"
                } else {
                    "503 Service Unavailable"
                };
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                if conn.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn sink_lag_and_api_latency_by_route_template_are_scraped() {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = webhook_endpoint(open.clone());
    let home = Home::new();
    home.write_config(&format!(
        "notifications:\n  - {{type: webhook, url: \"http://127.0.0.1:{hook}/events\", retries: 0, timeout: 2s}}\n"
    ));
    let (api, metrics) = (free_port(), free_port());
    let serve = Serve(
        home.cmd()
            .args([
                "serve",
                "--api",
                &format!("127.0.0.1:{api}"),
                "--metrics",
                &format!("127.0.0.1:{metrics}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let sink = format!(
        "sextant_notification_sink_lag{{sink=\"webhook http://127.0.0.1:{hook}/events\"}} "
    );
    let until = Instant::now() + Duration::from_secs(30);
    while sample(&scrape_when_up(metrics), &sink) != Some(0.0) {
        assert!(
            Instant::now() < until,
            "no lag of 0 for the new sink:\n{}",
            scrape(metrics)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The endpoint refuses: the plan's events wait after the cursor.
    let actions: Vec<_> = (0..3)
        .map(|i| {
            json!({"id": format!("n{i}"), "action_type": "nop",
                        "input_parameters": {"message": "hi"}, "parents": []})
        })
        .collect();
    let plan = home.import_json("p.json", &json!({"actions": actions}));
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let status = home.run(&["notifications", "status", "--format", "json"]);
    assert_eq!(status.status, 0, "{}", status.stderr);
    let want = status.json()[0]["lag"].as_f64().expect("a lag");
    assert!(want >= 10.0, "{}", status.stdout);
    let until = Instant::now() + Duration::from_secs(30);
    while sample(&scrape(metrics), &sink) != Some(want) {
        assert!(
            Instant::now() < until,
            "lag is not {want}:\n{}",
            scrape(metrics)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The endpoint comes back: the backlog drains, the lag goes to 0.
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(60);
    while sample(&scrape(metrics), &sink) != Some(0.0) {
        assert!(
            Instant::now() < until,
            "the lag did not drain:\n{}",
            scrape(metrics)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // API requests: labelled by route template and status, never the path.
    let base = format!("http://127.0.0.1:{api}");
    let v = ("openstack-api-version", "infra-optim 1.5");
    for _ in 0..2 {
        let a =
            sextant_e2e::api::http("GET", &format!("{base}/v1/action_plans/{plan}"), &[v], None);
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = sextant_e2e::api::http("GET", &format!("{base}/audits/no-such-audit/"), &[v], None);
    assert_eq!(a.status, 404, "{}", a.body);
    let a = sextant_e2e::api::http("GET", &format!("{base}/nowhere/{plan}"), &[], None);
    assert_eq!(a.status, 404, "{}", a.body);
    let text = scrape(metrics);
    let count = |labels: &str| {
        sample(
            &text,
            &format!("sextant_api_request_duration_seconds_count{{{labels}}} "),
        )
    };
    assert_eq!(
        count(r#"method="GET",route="/v1/action_plans/{id}",status="200""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="/v1/audits/{id}",status="404""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="unmatched",status="404""#),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains(&plan), "a raw path in the metrics:\n{text}");
    assert!(!text.contains("no-such-audit"), "{text}");
    drop(serve);
}

/// Scrapes once the listener answers.
fn scrape_when_up(port: u16) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "serve's metrics never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    scrape(port)
}
