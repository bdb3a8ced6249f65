//! What `serve --api` does without a restart, and what a restart picks up:
//! an action type registered while serve runs (through the API or the
//! CLI) is used by the audits and plans made and applied through the API;
//! a ONESHOT audit created through the API that serve stopped before
//! running is run by the next serve; the audits of an applier-only host's
//! API are run by a decision host.

use serde_json::{Value, json};
use sextant_e2e::Home;
use sextant_e2e::api::{http, wait_for};
use std::time::Duration;

const V15: (&str, &str) = ("openstack-api-version", "infra-optim 1.5");

fn get(url: &str) -> Value {
    let a = http("GET", url, &[V15], None);
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.json()
}

fn home_with_cloud() -> Home {
    let h = Home::new();
    h.seed_small_cloud();
    h
}

/// A new version of the built-in `nop` (the `weight` planner the
/// `actuator` strategy plans with knows `nop`): the audits that follow its
/// registration make their `nop` actions of this version, the latest.
fn nop_version(version: &str) -> String {
    format!(
        "name: nop
version: {version}
description: Logs a message, version {version}.
handler: nop
parameters:
  type: object
  required: [message]
  properties:
    message: {{type: string}}
"
    )
}

const EXTRAS: (&str, &str) = ("sextant-extras", "true");

/// Creates an ONESHOT audit of the `actuator` strategy through the API
/// whose one action is of `action_type`; its uuid.
fn actuator_audit(base: &str, action_type: &str) -> String {
    let a = http(
        "POST",
        &format!("{base}/v1/audits"),
        &[V15],
        Some(
            &json!({
                "goal": "unclassified",
                "strategy": "actuator",
                "audit_type": "ONESHOT",
                "parameters": {"actions": [
                    {"action_type": action_type, "input_parameters": {"message": "hi"}}
                ]},
            })
            .to_string(),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    a.json()["uuid"].as_str().expect("uuid").to_string()
}

/// Waits for the audit to succeed; the uuid of its plan.
fn plan_of(base: &str, audit: &str) -> String {
    wait_for("the audit to run", Duration::from_secs(60), || {
        let a = get(&format!("{base}/v1/audits/{audit}"));
        assert_ne!(a["state"], "FAILED", "{a}");
        a["state"] == "SUCCEEDED"
    });
    let plans = get(&format!("{base}/v1/action_plans?audit_uuid={audit}"));
    plans["action_plans"][0]["uuid"]
        .as_str()
        .expect("a plan")
        .to_string()
}

fn start_and_wait(base: &str, plan: &str) {
    let a = http(
        "POST",
        &format!("{base}/v1/action_plans/{plan}/start"),
        &[V15],
        Some("{}"),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    wait_for("serve to apply the plan", Duration::from_secs(60), || {
        let p = get(&format!("{base}/v1/action_plans/{plan}"));
        assert_ne!(p["state"], "FAILED", "{p}");
        p["state"] == "SUCCEEDED"
    });
}

#[test]
fn an_action_type_registered_while_serve_runs_is_used_by_the_next_audit_and_plan_of_the_api() {
    let h = home_with_cloud();
    let s = h.serve_api();
    // Through the API.
    let version_of_plan = |plan: &str| {
        let a = http(
            "GET",
            &format!("{}/v1/actions/detail?action_plan_uuid={plan}", s.url),
            &[V15, EXTRAS],
            None,
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let a = a.json();
        assert_eq!(a["actions"][0]["action_type"], "nop", "{a}");
        a["actions"][0]["action_type_version"].clone()
    };
    let audit = actuator_audit(&s.url, "nop");
    assert_eq!(version_of_plan(&plan_of(&s.url, &audit)), "1.0.0");
    let made = http(
        "POST",
        &format!("{}/v1/action_types", s.url),
        &[V15],
        Some(&nop_version("2.0.0")),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let audit = actuator_audit(&s.url, "nop");
    let plan = plan_of(&s.url, &audit);
    assert_eq!(version_of_plan(&plan), "2.0.0");
    start_and_wait(&s.url, &plan);
    // Through the CLI, beside the running serve.
    let file = sextant_e2e::write_file(&h.path().join("defs"), "nop3.yaml", &nop_version("3.0.0"));
    let reg = h.run(&["action-type", "register", file.to_str().expect("utf-8")]);
    assert_eq!(reg.status, 0, "{}", reg.stderr);
    assert_eq!(
        get(&format!("{}/v1/action_types/nop@3.0.0", s.url))["version"],
        "3.0.0"
    );
    let audit = actuator_audit(&s.url, "nop");
    let plan = plan_of(&s.url, &audit);
    assert_eq!(version_of_plan(&plan), "3.0.0");
    start_and_wait(&s.url, &plan);
}

#[test]
fn a_oneshot_audit_serve_stopped_before_running_is_run_by_the_next_serve() {
    use std::io::{Read, Write};
    let h = home_with_cloud();
    let mut s = h.serve_api();
    // The audit is posted while serve stops: the request is under way
    // (headers sent, body not yet) when SIGTERM arrives, so serve answers
    // it but launches nothing more: the audit stays PENDING.
    let body = json!({"goal": "dummy", "strategy": "dummy", "audit_type": "ONESHOT"}).to_string();
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        conn,
        "POST /v1/audits HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nopenstack-api-version: infra-optim 1.5\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body.len(),
        &body[..1]
    )
    .expect("send headers");
    conn.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let pid = s.pid();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(500));
    conn.write_all(&body.as_bytes()[1..]).expect("send body");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let created: Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("body")).expect("json body");
    let audit = created["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(s.stop(), 0, "{}", s.log_text());
    assert!(
        s.log_text().contains(&audit),
        "serve did not say it left {audit} for the next one:\n{}",
        s.log_text()
    );
    drop(s);
    let left = h.run(&["audit", "show", &audit, "--format", "json"]);
    assert_eq!(left.status, 0, "{}", left.stderr);
    assert_eq!(left.json()["state"], "PENDING", "{}", left.stdout);
    // The next serve runs it.
    let s = h.serve_api();
    wait_for(
        "the next serve to run the audit",
        Duration::from_secs(60),
        || {
            let a = get(&format!("{}/v1/audits/{audit}", s.url));
            assert_ne!(a["state"], "FAILED", "{a}");
            a["state"] == "SUCCEEDED"
        },
    );
    let plans = get(&format!("{}/v1/action_plans?audit_uuid={audit}", s.url));
    assert_eq!(
        plans["action_plans"].as_array().map(Vec::len),
        Some(1),
        "{plans}"
    );
}

#[test]
fn the_api_threads_yield_the_cpu_to_the_applier() {
    let h = home_with_cloud();
    let s = h.serve_api();
    // A request makes sure the runtime's threads exist.
    get(&format!("{}/v1/goals", s.url));
    let (mut api, mut others) = (Vec::new(), Vec::new());
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.pid())).expect("tasks");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Field 19 is the nice value; fields after the parenthesised name.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let nice: i32 = after
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("a nice value");
        if comm.trim() == "sextant-api" {
            api.push(nice);
        } else {
            others.push((comm.trim().to_string(), nice));
        }
    }
    assert!(!api.is_empty(), "no sextant-api thread: {others:?}");
    assert!(api.iter().all(|&n| n == 5), "{api:?}");
    assert!(others.iter().any(|(_, n)| *n == 0), "{others:?}");
}

#[test]
fn an_applier_only_hosts_api_asks_a_decision_host_to_run_its_audits() {
    let h = home_with_cloud();
    let hands = h.serve_api_args(&[], &["--roles", "applier", "--host-id", "hands"]);
    let base = hands.url.clone();
    let audit_state = |uuid: &str| get(&format!("{base}/v1/audits/{uuid}"));
    // An EVENT audit triggered through the applier-only host while no
    // decision host runs: asked for, not run.
    let made = http(
        "POST",
        &format!("{base}/v1/audits"),
        &[V15],
        Some(
            &json!({"goal": "dummy", "strategy": "dummy", "audit_type": "EVENT", "name": "on-alert"})
                .to_string(),
        ),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let event = made.json()["uuid"].as_str().expect("uuid").to_string();
    let fired = http("POST", &format!("{base}/v1/webhooks/{event}"), &[V15], None);
    assert_eq!(fired.status, 202, "{}", fired.body);
    std::thread::sleep(Duration::from_secs(2));
    let a = audit_state(&event);
    assert_eq!(a["state"], "PENDING", "run without a decision host: {a}");
    assert!(
        hands.log_text().contains(&format!(
            "audit {event}: trigger asked of the decision hosts"
        )),
        "{}",
        hands.log_text()
    );
    // A decision host comes: it runs the trigger it was asked for.
    let judge = h.serve_api_args(&[], &["--roles", "decision", "--host-id", "judge"]);
    wait_for(
        "the decision host to run the trigger",
        Duration::from_secs(60),
        || {
            let a = audit_state(&event);
            assert_ne!(a["state"], "FAILED", "{a}");
            a["state"] == "SUCCEEDED"
        },
    );
    assert_eq!(audit_state(&event)["hostname"], "judge");
    // A ONESHOT audit made through the applier-only host: run by the
    // decision host, once.
    let made = http(
        "POST",
        &format!("{base}/v1/audits"),
        &[V15],
        Some(&json!({"goal": "dummy", "strategy": "dummy", "audit_type": "ONESHOT"}).to_string()),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let oneshot = made.json()["uuid"].as_str().expect("uuid").to_string();
    wait_for(
        "the decision host to run the audit",
        Duration::from_secs(60),
        || {
            let a = audit_state(&oneshot);
            assert_ne!(a["state"], "FAILED", "{a}");
            a["state"] == "SUCCEEDED"
        },
    );
    assert_eq!(audit_state(&oneshot)["hostname"], "judge");
    let plans = get(&format!("{base}/v1/action_plans?audit_uuid={oneshot}"));
    assert_eq!(
        plans["action_plans"].as_array().map(Vec::len),
        Some(1),
        "{plans}"
    );
    let log = judge.log_text();
    for uuid in [&event, &oneshot] {
        assert!(
            log.contains(&format!("running audit {uuid}")) && log.contains("asked by host hands"),
            "{log}"
        );
    }
    // The applier-only host ran no audit itself.
    assert!(!hands.log_text().contains(" ran: "), "{}", hands.log_text());
    // Every request was handled and removed.
    let left = sextant_e2e::home_db(h.path())
        .raw()
        .int("SELECT CAST(count(*) AS TEXT) FROM audit_requests");
    assert_eq!(left, 0);
}
