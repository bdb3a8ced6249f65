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

/// A webhook endpoint on `listener`: answers 200 to each POST and sends
/// its body on `tx`.
fn hook_server(listener: std::net::TcpListener, tx: std::sync::mpsc::Sender<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            continue;
        }
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        if let Ok(v) = serde_json::from_slice(&body)
            && tx.send(v).is_err()
        {
            return;
        }
    }
}

#[test]
fn a_webhook_that_comes_back_gets_the_backlog_in_order() {
    let home = scratch();
    let port = closed_port();
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        &format!(
            "notifications:\n  - {{type: webhook, url: \"http://u:hook-secret@127.0.0.1:{port}/hook\", retries: 0, timeout: 1}}\n"
        ),
    );
    let status = |home: &Path| {
        let out = run(sextant(home).args(["notifications", "status", "--format", "json"]));
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.json()[0].clone()
    };
    let before = status(home.path());
    assert_eq!(
        before["last_event_id"],
        Value::Null,
        "no cursor before a publisher ran"
    );
    assert_eq!(before["configured"], true);
    assert!(
        !before.to_string().contains("hook-secret"),
        "the password is not shown: {before}"
    );
    // The endpoint is down while the plan runs: the run keeps its pace and
    // the events wait in the outbox.
    let first = import(home.path(), 5);
    let out = run(sextant(home.path()).args(["action-plan", "start", &first, "--wait"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("hook-secret"), "{}", out.stderr);
    let cursor = status(home.path())["last_event_id"]
        .as_i64()
        .expect("a cursor now");
    let waiting = status(home.path())["lag"].as_i64().expect("lag");
    // plan start, 5 × (start, end), plan end.
    assert_eq!(waiting, 1 + 10 + 1, "{}", status(home.path()));

    // It comes back: the next run delivers the backlog first, then its own.
    let (tx, rx) = std::sync::mpsc::channel();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    std::thread::spawn(move || hook_server(listener, tx));
    let second = import(home.path(), 3);
    let out = run(sextant(home.path()).args(["action-plan", "start", &second, "--wait"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(status(home.path())["lag"], 0, "{}", status(home.path()));
    let got: Vec<i64> = rx.try_iter().filter_map(|e| e["id"].as_i64()).collect();
    let all = run(sextant(home.path()).args(["history", "--format", "json"])).json();
    let stored: Vec<i64> = all
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .filter(|id| *id > cursor)
        .collect();
    assert_eq!(got, stored, "every event after the cursor, once, in order");
}

#[test]
fn a_bad_amqp_sink_is_refused_with_its_place_and_without_its_password() {
    let home = scratch();
    let plan = import(home.path(), 1);
    let before = run(sextant(home.path()).args(["history", "--format", "json"])).json();
    let config = write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        "notifications:\n  - {type: log}\n  - type: amqp\n    url: \"http://watcher:amqp-secret@127.0.0.1/\"\n",
    );
    for args in [
        vec!["notifications", "status"],
        vec!["action-plan", "start", plan.as_str(), "--wait"],
    ] {
        let out = run(sextant(home.path()).args(&args));
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
        // The file and line of the sink list (serde places a whole sink's
        // refusal there), the field and what it takes.
        assert!(
            out.stderr
                .contains(&format!("{}: line 2", config.display())),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("notifications: an amqp sink's url"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("amqp://"), "{}", out.stderr);
        assert!(!out.stderr.contains("amqp-secret"), "{}", out.stderr);
    }
    std::fs::remove_file(&config).expect("rm");
    let after = run(sextant(home.path()).args(["history", "--format", "json"])).json();
    assert_eq!(before, after, "nothing stored changed");
}
