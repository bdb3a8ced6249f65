//! `sextant serve` applies queued plans; notification sinks get every
//! event, and a dead webhook neither slows a plan nor loses an event.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn import(home: &Path, n: usize) -> String {
    let actions: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("a{i}"), "action_type": "sleep", "input_parameters": {"duration": 0.05},
                         "parents": if i > 0 { vec![format!("a{}", i - 1)] } else { vec![] }}))
        .collect();
    let f = write_file(
        &home.join("plans"),
        &format!("p{n}.json"),
        &json!({"actions": actions}).to_string(),
    );
    let out = run(sextant(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.stdout.trim().to_string()
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_dead_webhook_does_not_slow_the_plan_and_every_event_is_stored_and_written() {
    let home = scratch();
    // Baseline, no sinks.
    let plan = import(home.path(), 10);
    let t = Instant::now();
    assert_eq!(
        run(sextant(home.path()).args(["action-plan", "start", &plan, "--wait"])).status,
        0
    );
    let baseline = t.elapsed();

    let jsonl = home.path().join("events.jsonl");
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        &format!(
            "notifications:\n  - {{type: log}}\n  - {{type: jsonl, path: {}}}\n  - {{type: webhook, url: \"http://127.0.0.1:{}/hook\", retries: 3, timeout: 1}}\n",
            jsonl.display(),
            closed_port()
        ),
    );
    let plan = import(home.path(), 10);
    let t = Instant::now();
    let out = run(sextant(home.path()).args(["action-plan", "start", &plan, "--wait"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let with_dead_hook = t.elapsed();
    assert!(
        with_dead_hook < baseline * 2 + Duration::from_secs(2),
        "{with_dead_hook:?} against {baseline:?} without sinks"
    );
    let stored =
        run(sextant(home.path()).args(["history", "--plan", &plan, "--format", "json"])).json();
    let stored: Vec<i64> = stored
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    // 1 plan create, 10 action creates, start, 10 × (start, end), end.
    assert_eq!(stored.len(), 1 + 10 + 1 + 20 + 1, "{stored:?}");
    let text = std::fs::read_to_string(&jsonl).expect("jsonl");
    let written: Vec<i64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action_plan_uuid"] == plan.as_str())
        .filter_map(|e| e["id"].as_i64())
        .collect();
    // The import happened before the applier's notifier started.
    let executed: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|id| *id > stored[10])
        .collect();
    assert_eq!(
        written, executed,
        "every event of the run reached the file, in order"
    );
}

#[test]
fn serve_applies_queued_plans_and_auto_triggered_audits() {
    let home = scratch();
    let plan = import(home.path(), 3);
    let out = run(sextant(home.path()).args(["action-plan", "start", &plan]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("PENDING"), "{}", out.stdout);
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=1",
        "--auto-trigger",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit_plan = out.json()["action_plan"]
        .as_str()
        .expect("plan")
        .to_string();
    let show = |p: &str| {
        run(sextant(home.path()).args(["action-plan", "show", p, "--format", "json"])).json()["state"].clone()
    };
    assert_eq!(show(&audit_plan), "PENDING", "auto_trigger queues the plan");
    let out = run(sextant(home.path()).args(["serve", "--exit-after", "4"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(show(&plan), "SUCCEEDED");
    assert_eq!(show(&audit_plan), "SUCCEEDED");
}
