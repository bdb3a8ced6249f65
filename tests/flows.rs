//! Flows and alternatives (docs/flows.md) through the built binary, against
//! the simulated cloud with injected faults: an alternative takes over when
//! the first destination goes down, a failed flow is rolled back while
//! another completes, and a kill -9 during an alternative resumes without
//! running anything twice.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::Path;
use std::time::{Duration, Instant};

const VM1: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000001";
const VM2: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000002";
const VM6: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000006";
const N1: &str = "7c1d6a2e-0a1b-4c3d-8e9f-000000000001";
const N4: &str = "7c1d6a2e-0a1b-4c3d-8e9f-000000000004";

/// A home with the small cluster seeded with `faults`.
fn seeded(time_scale: &str, faults: &str) -> Home {
    let home = Home::new();
    let f = write_file(&home.path().join("in"), "faults.yaml", faults);
    let out = home.run(&[
        "sim",
        "init",
        "--time-scale",
        time_scale,
        "--faults",
        f.to_str().unwrap_or_default(),
        "--from",
        repo_root()
            .join("examples/clusters/small.yaml")
            .to_str()
            .unwrap_or_default(),
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    home
}

fn migrate(id: &str, vm: &str, from: &str, to: &str, parents: &[&str]) -> Value {
    json!({"id": id, "action_type": "migrate", "parents": parents,
           "input_parameters": {"migration_type": "live", "resource_id": vm, "source_node": from, "destination_node": to}})
}

fn service(id: &str, node: &str, host: &str, state: &str, parents: &[&str]) -> Value {
    json!({"id": id, "action_type": "change_nova_service_state", "parents": parents,
           "input_parameters": {"resource_id": node, "resource_name": host, "state": state}})
}

fn power_off(id: &str, node: &str, host: &str, parents: &[&str]) -> Value {
    json!({"id": id, "action_type": "change_node_power_state", "parents": parents,
           "input_parameters": {"resource_id": node, "resource_name": host, "state": "off"}})
}

fn with_alternatives(mut a: Value, alts: Value) -> Value {
    a["alternatives"] = alts;
    a
}

fn by_name<'a>(actions: &'a [Value], name: &str) -> &'a Value {
    actions
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no action {name} in {actions:?}"))
}

fn cloud(home: &Home) -> Value {
    home.run(&["sim", "show", "--format", "json"]).json()
}

fn host_of(c: &Value, vm: &str) -> String {
    c["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["uuid"] == vm))
        .and_then(|i| i["host"].as_str())
        .unwrap_or("")
        .to_string()
}

fn node<'a>(c: &'a Value, host: &str) -> &'a Value {
    c["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["hostname"] == host))
        .unwrap_or(&Value::Null)
}

/// No host holds more than it has (vcpus, memory, disk).
fn assert_within_capacity(c: &Value) {
    for n in c["nodes"].as_array().into_iter().flatten() {
        let host = n["hostname"].as_str().unwrap_or("");
        for (dim, inst_key) in [("vcpus", "vcpus"), ("memory", "memory"), ("disk", "disk")] {
            let used: u64 = c["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["host"] == host)
                .map(|i| i[inst_key].as_u64().unwrap_or(0))
                .sum();
            let cap = n[dim].as_u64().unwrap_or(0);
            assert!(used <= cap, "{host} holds {used} {dim} of {cap}");
        }
    }
}

fn events(home: &Home, plan: &str) -> Vec<Value> {
    home.run(&["history", "--plan", plan, "--format", "json"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn when_the_first_destination_goes_down_the_alternatives_are_used_and_the_plan_succeeds() {
    // compute-003, the first destination of both migrations, goes down
    // once the host is disabled (2 simulated seconds in).
    let home = seeded(
        "0",
        "hosts:\n  - {host: compute-003, at: 1s, becomes: down}\n",
    );
    let plan = home.import_json(
        "drain.json",
        &json!({"actions": [
            service("dis", N1, "compute-001", "disabled", &[]),
            with_alternatives(migrate("mv-vm1", VM1, "compute-001", "compute-003", &["dis"]),
                json!([{"id": "mv-vm1-b", "input_parameters": {"destination_node": "compute-002"}}])),
            with_alternatives(migrate("mv-vm2", VM2, "compute-001", "compute-003", &["dis"]),
                json!([{"id": "mv-vm2-b", "input_parameters": {"destination_node": "compute-003"}},
                       {"id": "mv-vm2-c", "input_parameters": {"destination_node": "compute-004"}}])),
            power_off("off", N1, "compute-001", &["mv-vm1", "mv-vm2"]),
        ]}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
    // start --wait lists no unfinished work for a plan that succeeded
    // through its alternatives: the failed primaries are said to be replaced.
    assert!(!out.stdout.contains("MESSAGE"), "{}", out.stdout);
    for line in [
        "mv-vm1 FAILED; its alternative mv-vm1-b succeeded in its place",
        "mv-vm2 FAILED; its alternative mv-vm2-c succeeded in its place",
        "mv-vm2-b FAILED; its alternative mv-vm2-c succeeded in its place",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    let a = home.actions(&plan);
    for (name, state) in [
        ("dis", "SUCCEEDED"),
        ("mv-vm1", "FAILED"),
        ("mv-vm1-b", "SUCCEEDED"),
        ("mv-vm2", "FAILED"),
        ("mv-vm2-b", "FAILED"),
        ("mv-vm2-c", "SUCCEEDED"),
        ("off", "SUCCEEDED"),
    ] {
        assert_eq!(by_name(&a, name)["state"], state, "{name}: {a:?}");
    }
    // Which alternative ran and why the ones before it failed.
    let b = by_name(&a, "mv-vm1-b")["status_message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        b.contains("Alternative 1 of mv-vm1") && b.contains("compute-003 is down"),
        "{b}"
    );
    let c = by_name(&a, "mv-vm2-c")["status_message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        c.contains("Alternative 2 of mv-vm2") && c.contains("mv-vm2-b failed"),
        "{c}"
    );
    assert_eq!(by_name(&a, "mv-vm2-c")["alternative_of"], "mv-vm2");
    assert_eq!(by_name(&a, "mv-vm2-c")["alternative"], 2);
    assert_eq!(by_name(&a, "mv-vm2")["alternative"], 0);
    assert!(by_name(&a, "dis").get("alternative_of").is_none());
    let table = home.run(&["action", "list", "--plan", &plan]).stdout;
    assert!(
        table.contains("mv-vm2-c (alternative 2 of mv-vm2)"),
        "{table}"
    );
    let cl = cloud(&home);
    assert_eq!(host_of(&cl, VM1), "compute-002");
    assert_eq!(host_of(&cl, VM2), "compute-004");
    assert_eq!(node(&cl, "compute-001")["power_state"], "off");
    assert_within_capacity(&cl);
    // History shows each switch, committed before the alternative started.
    let ev = events(&home, &plan);
    let switches: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event_type"] == "action.alternative.start")
        .collect();
    assert_eq!(switches.len(), 3, "{ev:?}");
    let pos = |pred: &dyn Fn(&Value) -> bool| ev.iter().position(pred);
    let switch_b = pos(&|e: &Value| {
        e["event_type"] == "action.alternative.start" && e["payload"]["to"] == "mv-vm1-b"
    })
    .expect("switch");
    let uuid_b = by_name(&a, "mv-vm1-b")["uuid"].clone();
    let ongoing_b = pos(&|e: &Value| e["object_uuid"] == uuid_b && e["new_state"] == "ONGOING")
        .expect("mv-vm1-b went ONGOING");
    assert!(
        switch_b < ongoing_b,
        "the switch is committed first: {ev:?}"
    );
    let text = home.run(&["history", "--plan", &plan]).stdout;
    assert!(
        text.contains("action.alternative.start")
            && text.contains("mv-vm1 -> mv-vm1-b (alternative 1 of mv-vm1)"),
        "{text}"
    );
}

#[test]
fn two_evacuation_flows_one_fails_for_good_is_rolled_back_the_other_completes() {
    let home = seeded("0", "actions:\n  - {name: mv-vm2}\n");
    let no_retries = write_file(
        &home.path().join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    );
    let plan = home.import_json(
        "evacuate.json",
        &json!({
            "actions": [
                service("dis-001", N1, "compute-001", "disabled", &[]),
                migrate("mv-vm1", VM1, "compute-001", "compute-003", &["dis-001"]),
                migrate("mv-vm2", VM2, "compute-001", "compute-003", &["mv-vm1"]),
                power_off("off-001", N1, "compute-001", &["mv-vm2"]),
                service("dis-004", N4, "compute-004", "disabled", &[]),
                migrate("mv-vm6", VM6, "compute-004", "compute-003", &["dis-004"]),
                power_off("off-004", N4, "compute-004", &["mv-vm6"]),
            ],
            "flows": [
                {"id": "evacuate-001", "on_failure": "rollback", "actions": ["dis-001", "mv-vm1", "mv-vm2", "off-001"]},
                {"id": "evacuate-004", "on_failure": "rollback", "actions": ["dis-004", "mv-vm6", "off-004"]},
                {"id": "maintenance", "flows": ["evacuate-001", "evacuate-004"]}
            ]
        }),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--policy",
        no_retries.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let p = home.plan(&plan);
    assert_eq!(p["state"], "FAILED");
    let msg = p["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("flow evacuate-001 failed")
            && msg.contains("mv-vm2")
            && msg.contains("rolled back"),
        "{msg}"
    );
    assert!(!msg.contains("flow evacuate-004"), "{msg}");
    let a = home.actions(&plan);
    for (name, state) in [
        ("dis-001", "SUCCEEDED"),
        ("mv-vm1", "SUCCEEDED"),
        ("mv-vm2", "FAILED"),
        ("off-001", "CANCELLED"),
        ("dis-004", "SUCCEEDED"),
        ("mv-vm6", "SUCCEEDED"),
        ("off-004", "SUCCEEDED"),
    ] {
        assert_eq!(by_name(&a, name)["state"], state, "{name}: {a:?}");
    }
    assert_eq!(by_name(&a, "mv-vm6")["flow"], "evacuate-004");
    let table = home.run(&["action", "list", "--plan", &plan]).stdout;
    assert!(table.contains("mv-vm2 [flow evacuate-001]"), "{table}");
    let history = home.run(&["history", "--plan", &plan]).stdout;
    assert!(
        history.contains("FAILED: action mv-vm2 failed") && history.contains("ROLLED_BACK"),
        "{history}"
    );
    for name in ["dis-001", "mv-vm1"] {
        let m = by_name(&a, name)["status_message"].as_str().unwrap_or("");
        assert!(
            m.contains("Reverted: its flow evacuate-001 rolled back"),
            "{name}: {m}"
        );
    }
    // compute-001 is back in service with its instances; compute-004 is
    // evacuated and off.
    let c = cloud(&home);
    assert_eq!(host_of(&c, VM1), "compute-001");
    assert_eq!(host_of(&c, VM2), "compute-001");
    assert_eq!(node(&c, "compute-001")["status"], "enabled");
    assert_eq!(node(&c, "compute-001")["power_state"], "on");
    assert_eq!(host_of(&c, VM6), "compute-003");
    assert_eq!(node(&c, "compute-004")["status"], "disabled");
    assert_eq!(node(&c, "compute-004")["power_state"], "off");
    assert_within_capacity(&c);
    // A retry would flatten the alternatives and flows: refused, nothing made.
    let plans_before = home
        .run(&["action-plan", "list", "--format", "json"])
        .stdout;
    let retry = home.run(&["action-plan", "retry", &plan]);
    assert_eq!(retry.status, 2, "{}{}", retry.stdout, retry.stderr);
    assert!(
        retry.stderr.contains(&plan) && retry.stderr.contains("flows or alternatives"),
        "{}",
        retry.stderr
    );
    assert_eq!(
        home.run(&["action-plan", "list", "--format", "json"])
            .stdout,
        plans_before
    );
    // The rollback's events, reverse order of completion: mv-vm1 first.
    let ev = events(&home, &plan);
    let kinds: Vec<(String, String)> = ev
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or("").to_string(),
                e["object_uuid"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let at = |t: &str, o: &str| {
        kinds
            .iter()
            .position(|(k, u)| k == t && u == o)
            .unwrap_or_else(|| panic!("no {t} of {o}: {kinds:?}"))
    };
    let uuid = |n: &str| by_name(&a, n)["uuid"].as_str().unwrap_or("").to_string();
    let failed = at("flow.failed", "evacuate-001");
    let start = at("flow.rollback.start", "evacuate-001");
    let r1 = at("action.revert.end", &uuid("mv-vm1"));
    let r0 = at("action.revert.end", &uuid("dis-001"));
    let end = at("flow.rollback.end", "evacuate-001");
    assert!(
        failed < start && start < r1 && r1 < r0 && r0 < end,
        "{kinds:?}"
    );
    // The enclosing flow failed too (on_failure: continue), once.
    assert_eq!(
        kinds
            .iter()
            .filter(|(k, o)| k == "flow.failed" && o == "maintenance")
            .count(),
        1
    );
}

/// `step`: appends its name to a log (not idempotent, as a real side
/// effect), waits, and succeeds unless told to fail.
fn step_type(home: &Home) {
    write_file(
        &home.types,
        "step.yaml",
        r#"
name: step
version: 1.0.0
description: Appends its name to a log, waits, then succeeds or fails.
handler: command
idempotent: false
with:
  argv: ["/bin/sh", "-c", "echo \"$1\" >> \"$2\"; sleep 0.15; [ \"$3\" = ok ]", "sh", "{{ name }}", "{{ log }}", "{{ outcome }}"]
parameters:
  type: object
  required: [name, log, outcome]
  properties:
    name: {type: string}
    log: {type: string}
    outcome: {type: string, enum: [ok, fail]}
"#,
    );
}

#[test]
fn kill_9_during_alternatives_then_resume_runs_nothing_twice_and_leaves_nothing_pending() {
    let home = Home::new();
    step_type(&home);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut interrupted = 0;
    for round in 0..8 {
        let log = home.path().join(format!("ran{round}.log"));
        std::fs::write(&log, "").expect("reset log");
        let step = |id: &str, outcome: &str, parents: &[&str]| {
            json!({"id": id, "action_type": "step", "parents": parents,
                   "input_parameters": {"name": id, "log": log, "outcome": outcome}})
        };
        let alt = |id: &str, outcome: &str| json!({"id": id, "input_parameters": {"name": id, "outcome": outcome}});
        let mut p1 = step("p1", "fail", &["a0"]);
        p1["alternatives"] = json!([alt("p1-b", "fail"), alt("p1-c", "ok")]);
        let mut p2 = step("p2", "fail", &["a0"]);
        p2["alternatives"] = json!([alt("p2-b", "ok")]);
        let plan = home.import_json(
            &format!("alts{round}.json"),
            &json!({
                "actions": [
                    step("a0", "ok", &[]), p1, p2, step("z", "ok", &["p1", "p2"]),
                    step("q", "fail", &["a0"]), step("q2", "ok", &["a0"]), step("w", "ok", &["q"]),
                ],
                "flows": [
                    {"id": "f", "on_failure": "rollback", "actions": ["p1", "p2", "z"]},
                    {"id": "h", "actions": ["q"], "alternatives": ["h2"]},
                    {"id": "h2", "actions": ["q2"]}
                ]
            }),
        );
        let mut child = home.spawn(&["action-plan", "start", &plan, "--wait"]);
        std::thread::sleep(Duration::from_millis(150 + next(700)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if home.plan(&plan)["state"] != "SUCCEEDED" {
            interrupted += 1;
        }
        let t = Instant::now();
        loop {
            let state = home.plan(&plan)["state"].as_str().unwrap_or("").to_string();
            if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&state.as_str()) {
                break;
            }
            let out = home.run(&["action-plan", "resume", &plan, "--wait"]);
            if out.status == 0 || out.status == 1 && !out.stderr.contains("is being applied by") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "round {round}: resume never ended: {}{}",
                out.stdout,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&log).expect("log");
        let ran: Vec<&str> = text.lines().collect();
        let mut unique = ran.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ran.len(),
            "round {round}: an action ran twice: {ran:?}"
        );
        let a = home.actions(&plan);
        for x in &a {
            let state = x["state"].as_str().unwrap_or("");
            let name = x["name"].as_str().unwrap_or("");
            assert!(
                !["PENDING", "ONGOING"].contains(&state),
                "round {round}: {x}"
            );
            if state == "SUCCEEDED" {
                assert!(
                    ran.contains(&name),
                    "round {round}: {name} SUCCEEDED without running"
                );
            }
        }
        // An alternative never runs while one before it could still
        // succeed: the log has each group in order. One killed after its
        // ONGOING commit but before its command wrote the log is settled
        // FAILED on resume without running (not idempotent), so the next
        // one runs with no line of the first.
        let order = |n: &str| ran.iter().position(|r| *r == n);
        let settled_unrun = |n: &str| {
            a.iter().any(|x| {
                x["name"] == n
                    && x["state"] == "FAILED"
                    && x["status_message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Interrupted while ONGOING"))
            })
        };
        for (first, then) in [
            ("p1", "p1-b"),
            ("p1-b", "p1-c"),
            ("p2", "p2-b"),
            ("q", "q2"),
            ("q2", "w"),
        ] {
            if let Some(t) = order(then) {
                assert!(
                    match order(first) {
                        Some(f) => f < t,
                        None => settled_unrun(first),
                    },
                    "round {round}: {first} before {then}: {ran:?} {a:?}"
                );
            }
        }
        let plan_state = home.plan(&plan)["state"].clone();
        if plan_state == "SUCCEEDED" {
            for (name, state) in [
                ("p1-c", "SUCCEEDED"),
                ("p2-b", "SUCCEEDED"),
                ("z", "SUCCEEDED"),
                ("q2", "SUCCEEDED"),
                ("w", "SUCCEEDED"),
            ] {
                assert_eq!(by_name(&a, name)["state"], state, "round {round}: {a:?}");
            }
        }
        // A kill that landed before a switch was settled must not leave a
        // group half-decided: every started alternative's predecessor is
        // settled in the history.
        let ev = events(&home, &plan);
        let starts = ev
            .iter()
            .filter(|e| e["event_type"] == "action.alternative.start")
            .count();
        let settles = ev
            .iter()
            .filter(|e| e["event_type"] == "action.alternative.settled")
            .count();
        assert_eq!(starts, settles, "round {round}: {ev:?}");
    }
    assert!(interrupted >= 3, "only {interrupted} kills landed mid-plan");
}

#[test]
fn import_refuses_bad_flows_and_alternatives_with_the_line_and_field_and_stores_nothing() {
    let home = Home::new();
    let before = home
        .run(&["action-plan", "list", "--format", "json"])
        .stdout;
    for (text, wanted) in [
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, actions: [a, b]}\n",
            "line 4 column 26: flows[0].actions[1]: unknown action b",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}, alternatives: [{id: a2}]}\n  - {id: c, action_type: nop, input_parameters: {message: m}, parents: [a2]}\n",
            "line 3 column 73: actions[1].parents[0]: a2 is an alternative of a",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, actions: [a]}\n  - {id: g, actions: [a]}\n",
            "flows[1].actions[0]: action a is already in flow f",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, flows: [g]}\n  - {id: g, flows: [f]}\n",
            "is nested in itself",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, actions: [a], retries: 11}\n",
            "line 4 column 36: flows[0].retries: at most 10 retries of a whole flow",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\n  - {id: b, action_type: nop, input_parameters: {message: m}, parents: [a]}\nflows:\n  - {id: f, actions: [], alternatives: [g]}\n  - {id: g, actions: [a]}\n",
            "actions[1].parents[0]: a is in flow g, an alternative of f",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, actions: [a], alternatives: [h]}\n",
            "line 4 column 42: flows[0].alternatives[0]: unknown flow h",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}}\nflows:\n  - {id: f, actions: [a], on_failure: undo}\n",
            "line 4",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}, alternatives: [{id: a, parents: [x]}]}\n",
            "unknown field `parents`",
        ),
        (
            "actions:\n  - {id: a, action_type: nop, input_parameters: {message: m}, alternatives: [{id: a}]}\n",
            "the same id a",
        ),
    ] {
        let f = write_file(&home.path().join("in"), "bad.yaml", text);
        let out = home.run(&["action-plan", "import", f.to_str().unwrap_or_default()]);
        assert_eq!(out.status, 2, "{text}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("bad.yaml") && out.stderr.contains(wanted),
            "{text}: {}",
            out.stderr
        );
    }
    assert_eq!(
        home.run(&["action-plan", "list", "--format", "json"])
            .stdout,
        before
    );
}

#[test]
fn graph_draws_flows_as_clusters_and_alternatives_as_dashed_edges() {
    let home = Home::new();
    let plan = home.import_json(
        "g.json",
        &json!({
            "actions": [
                {"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}},
                {"id": "b", "action_type": "nop", "input_parameters": {"message": "m"}, "parents": ["a"], "alternatives": [{"id": "b2"}]},
                {"id": "c", "action_type": "nop", "input_parameters": {"message": "m"}, "parents": ["b"]},
            ],
            "flows": [{"id": "inner", "actions": ["b"]}, {"id": "outer", "actions": ["c"], "flows": ["inner"]}]
        }),
    );
    let dot = home
        .run(&["action-plan", "graph", &plan, "--format", "dot"])
        .stdout;
    assert!(dot.contains("subgraph cluster_outer {"), "{dot}");
    assert!(dot.contains("subgraph cluster_inner {"), "{dot}");
    assert!(dot.contains("label=\"flow inner\\nPENDING\""), "{dot}");
    assert!(dot.contains("style=dashed"), "{dot}");
    // inner is drawn inside outer.
    let (o, i) = (
        dot.find("cluster_outer").unwrap_or(usize::MAX),
        dot.find("cluster_inner").unwrap_or(0),
    );
    assert!(o < i, "{dot}");
    let mm = home
        .run(&["action-plan", "graph", &plan, "--format", "mermaid"])
        .stdout;
    assert!(mm.contains("subgraph f_outer[\"flow outer\"]"), "{mm}");
    assert!(mm.contains("-. alternative .->"), "{mm}");
    // Flat plans draw as before: no subgraph.
    let flat = home.import_json("flat.json", &json!({"actions": [{"id": "x", "action_type": "nop", "input_parameters": {"message": "m"}}]}));
    let dot = home
        .run(&["action-plan", "graph", &flat, "--format", "dot"])
        .stdout;
    assert!(!dot.contains("subgraph"), "{dot}");
    let _ = Path::new("");
}

#[test]
fn kill_9_during_a_flow_then_resume_rolls_it_back_and_leaves_the_host_as_it_was() {
    // Migrations take 1.2 s of real time (60 s simulated × 0.02); the
    // third one always fails, so the flow is rolled back.
    let home = seeded("0.02", "actions:\n  - {name: mv-vm2}\n");
    let no_retries = write_file(
        &home.path().join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    );
    let policy = no_retries.to_str().unwrap_or_default().to_string();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..4 {
        let plan = home.import_json(
            &format!("drain{round}.json"),
            &json!({
                "actions": [
                    service("dis-001", N1, "compute-001", "disabled", &[]),
                    migrate("mv-vm1", VM1, "compute-001", "compute-003", &["dis-001"]),
                    migrate("mv-vm2", VM2, "compute-001", "compute-003", &["mv-vm1"]),
                ],
                "flows": [{"id": "drain", "on_failure": "rollback", "actions": ["dis-001", "mv-vm1", "mv-vm2"]}]
            }),
        );
        let mut child = home.spawn(&["action-plan", "start", &plan, "--wait", "--policy", &policy]);
        std::thread::sleep(Duration::from_millis(200 + next(1400)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let t = Instant::now();
        loop {
            let state = home.plan(&plan)["state"].as_str().unwrap_or("").to_string();
            if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&state.as_str()) {
                break;
            }
            let out = home.run(&[
                "action-plan",
                "resume",
                &plan,
                "--wait",
                "--policy",
                &policy,
            ]);
            if out.status == 0 || out.status == 1 && !out.stderr.contains("is being applied by") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "round {round}: {}",
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let p = home.plan(&plan);
        assert_eq!(p["state"], "FAILED", "round {round}: {p}");
        let a = home.actions(&plan);
        for x in &a {
            let state = x["state"].as_str().unwrap_or("");
            assert!(
                !["PENDING", "ONGOING"].contains(&state),
                "round {round}: {x}"
            );
        }
        // No migration (not idempotent) started twice; an interrupted
        // change of service state (idempotent) may run again, by design.
        let ev = events(&home, &plan);
        for x in a.iter().filter(|x| x["action_type"] == "migrate") {
            let starts = ev
                .iter()
                .filter(|e| {
                    e["object_uuid"] == x["uuid"] && e["event_type"] == "action.execution.start"
                })
                .count();
            assert!(
                starts <= 1,
                "round {round}: {} started {starts} times",
                x["name"]
            );
        }
        // The flow ended rolled back: compute-001 is as it was.
        let flow_end = ev
            .iter()
            .any(|e| e["event_type"] == "flow.rollback.end" && e["object_uuid"] == "drain");
        assert!(flow_end, "round {round}: {ev:?}");
        let c = cloud(&home);
        assert_eq!(host_of(&c, VM1), "compute-001", "round {round}");
        assert_eq!(host_of(&c, VM2), "compute-001", "round {round}");
        assert_eq!(
            node(&c, "compute-001")["status"],
            "enabled",
            "round {round}"
        );
    }
}

#[test]
fn an_idempotent_action_interrupted_after_its_effect_is_settled_succeeded_on_resume_and_rolled_back()
 {
    // mv-vm2 always fails, so the flow is rolled back.
    let home = seeded("0", "actions:\n  - {name: mv-vm2}\n");
    let no_retries = write_file(
        &home.path().join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    );
    let policy = no_retries.to_str().unwrap_or_default().to_string();
    let plan = home.import_json(
        "drain.json",
        &json!({
            "actions": [
                service("dis-001", N1, "compute-001", "disabled", &[]),
                migrate("mv-vm1", VM1, "compute-001", "compute-003", &["dis-001"]),
                migrate("mv-vm2", VM2, "compute-001", "compute-003", &["mv-vm1"]),
            ],
            "flows": [{"id": "drain", "on_failure": "rollback", "actions": ["dis-001", "mv-vm1", "mv-vm2"]}]
        }),
    );
    // The host is disabled, then the applier dies before it records it:
    // its commit of SUCCEEDED fails, as a crash there would leave it.
    let conn = fail_commits_of(&home, "dis-001", "SUCCEEDED");
    let out = home.run(&["action-plan", "start", &plan, "--wait", "--policy", &policy]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.action(&plan, "dis-001")["state"], "ONGOING");
    assert_eq!(node(&cloud(&home), "compute-001")["status"], "disabled");
    conn.exec(conn.pick(
        "DROP TRIGGER fail_commit",
        "DROP TRIGGER fail_commit ON actions",
    ));
    // Resumed: run again (idempotent), its pre_condition finds the host
    // disabled. That is the interrupted run's work: SUCCEEDED, so the
    // flow's rollback enables the host again (SKIPPED would leave it
    // disabled for good).
    let out = home.run(&[
        "action-plan",
        "resume",
        &plan,
        "--wait",
        "--policy",
        &policy,
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "FAILED");
    let dis = home.action(&plan, "dis-001");
    // (Its message now says it was reverted.)
    assert_eq!(dis["state"], "SUCCEEDED", "{dis}");
    let ev = events(&home, &plan);
    assert!(
        ev.iter()
            .any(|e| e["event_type"] == "flow.rollback.end" && e["object_uuid"] == "drain"),
        "{ev:?}"
    );
    let c = cloud(&home);
    assert_eq!(node(&c, "compute-001")["status"], "enabled");
    assert_eq!(host_of(&c, VM1), "compute-001");
    assert_eq!(host_of(&c, VM2), "compute-001");
}

/// The YAML block of docs/flows.md that follows `heading`.
fn doc_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/flows.md")).expect("docs/flows.md");
    let at = doc.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &doc[at..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = rest[start..].find("```").expect("its end");
    rest[start..start + len].to_string()
}

#[test]
fn the_documented_examples_are_the_files_and_they_run_on_the_small_cluster() {
    let drain = repo_root().join("examples/plans/maintenance-drain.yaml");
    let consolidation = repo_root().join("examples/plans/consolidation-fallback.yaml");
    for (heading, file) in [
        ("### A maintenance drain", &drain),
        (
            "### A consolidation with fallback destinations",
            &consolidation,
        ),
    ] {
        assert_eq!(
            doc_block(heading),
            std::fs::read_to_string(file).expect("example"),
            "docs/flows.md shows {} as it is",
            file.display()
        );
    }
    // The drain as written.
    let home = seeded("0", "{}\n");
    let plan = home.import(&drain);
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let c = cloud(&home);
    assert_eq!(
        host_of(&c, "0d8a5f7e-3c1b-4a2e-9f6d-000000000005"),
        "compute-001"
    );
    assert_eq!(node(&c, "compute-003")["power_state"], "off");
    // The consolidation while compute-001 fills up: the fallbacks are used.
    let home = seeded(
        "0",
        "hosts:\n  - {host: compute-001, at: 0s, becomes: full}\n",
    );
    let plan = home.import(&consolidation);
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let a = home.actions(&plan);
    for (name, state) in [
        ("mv-vm3", "FAILED"),
        ("mv-vm3-b", "SUCCEEDED"),
        ("mv-vm4-b", "SUCCEEDED"),
        ("mv-vm6", "SUCCEEDED"),
        ("mv-vm6-b", "SKIPPED"),
        ("off-002", "SUCCEEDED"),
        ("off-004", "SUCCEEDED"),
    ] {
        assert_eq!(by_name(&a, name)["state"], state, "{name}: {a:?}");
    }
    let c = cloud(&home);
    assert_within_capacity(&c);
    assert_eq!(node(&c, "compute-002")["power_state"], "off");
}

#[test]
fn an_alternative_flow_takes_over_after_the_failed_flow_is_rolled_back() {
    // Plan A empties compute-001 onto compute-003, which goes down once
    // the first move is made; plan B, its alternative, uses compute-002.
    let home = seeded(
        "0",
        "hosts:\n  - {host: compute-003, at: 61s, becomes: down}\n",
    );
    let no_retries = write_file(
        &home.path().join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    );
    let plan = home.import_json(
        "flow-alt.json",
        &json!({
            "actions": [
                migrate("a-vm1", VM1, "compute-001", "compute-003", &[]),
                migrate("a-vm2", VM2, "compute-001", "compute-003", &["a-vm1"]),
                migrate("b-vm1", VM1, "compute-001", "compute-002", &[]),
                migrate("b-vm2", VM2, "compute-001", "compute-002", &["b-vm1"]),
                power_off("off-001", N1, "compute-001", &["a-vm2"]),
            ],
            "flows": [
                {"id": "plan-a", "on_failure": "rollback", "actions": ["a-vm1", "a-vm2"], "alternatives": ["plan-b"]},
                {"id": "plan-b", "on_failure": "rollback", "actions": ["b-vm1", "b-vm2"]}
            ]
        }),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--policy",
        no_retries.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
    let a = home.actions(&plan);
    for (name, state) in [
        ("a-vm1", "SUCCEEDED"),
        ("a-vm2", "FAILED"),
        ("b-vm1", "SUCCEEDED"),
        ("b-vm2", "SUCCEEDED"),
        ("off-001", "SUCCEEDED"),
    ] {
        assert_eq!(by_name(&a, name)["state"], state, "{name}: {a:?}");
    }
    let c = cloud(&home);
    assert_eq!(host_of(&c, VM1), "compute-002");
    assert_eq!(host_of(&c, VM2), "compute-002");
    assert_eq!(node(&c, "compute-001")["power_state"], "off");
    assert_within_capacity(&c);
    // Plan A rolled back (vm1 came home) before plan B started.
    let ev = events(&home, &plan);
    let at = |t: &str, o: &str| {
        ev.iter()
            .position(|e| e["event_type"] == t && e["object_uuid"] == o)
            .unwrap_or_else(|| panic!("no {t} of {o}: {ev:?}"))
    };
    let uuid = |n: &str| by_name(&a, n)["uuid"].as_str().unwrap_or("").to_string();
    let failed = at("flow.failed", "plan-a");
    let reverted = at("action.revert.end", &uuid("a-vm1"));
    let rolled = at("flow.rollback.end", "plan-a");
    let switch = at("flow.alternative.start", "plan-b");
    let b_starts = ev
        .iter()
        .position(|e| e["object_uuid"] == uuid("b-vm1").as_str() && e["new_state"] == "ONGOING")
        .expect("b-vm1 ran");
    assert!(
        failed < reverted && reverted < rolled && rolled < switch && switch < b_starts,
        "{ev:?}"
    );
    let dot = home
        .run(&["action-plan", "graph", &plan, "--format", "dot"])
        .stdout;
    assert!(dot.contains("label=\"alternative flow plan-b\""), "{dot}");
}

#[test]
fn a_flow_with_retries_runs_again_after_its_rollback() {
    // The first run of the drain fails at its second migration; the flow
    // is rolled back, then run again as its copy, which succeeds.
    let home = seeded("0", "actions:\n  - {name: mv-vm2}\n");
    let no_retries = write_file(
        &home.path().join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    );
    let plan = home.import_json(
        "retry.json",
        &json!({
            "actions": [
                migrate("mv-vm1", VM1, "compute-001", "compute-003", &[]),
                migrate("mv-vm2", VM2, "compute-001", "compute-003", &["mv-vm1"]),
                power_off("off-001", N1, "compute-001", &["mv-vm2"]),
            ],
            "flows": [{"id": "drain", "on_failure": "rollback", "retries": 1, "actions": ["mv-vm1", "mv-vm2"]}]
        }),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--policy",
        no_retries.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let a = home.actions(&plan);
    for (name, state) in [
        ("mv-vm1", "SUCCEEDED"),
        ("mv-vm2", "FAILED"),
        ("mv-vm1-retry1", "SUCCEEDED"),
        ("mv-vm2-retry1", "SUCCEEDED"),
        ("off-001", "SUCCEEDED"),
    ] {
        assert_eq!(by_name(&a, name)["state"], state, "{name}: {a:?}");
    }
    assert_eq!(by_name(&a, "mv-vm2-retry1")["flow"], "drain-retry1");
    let m = by_name(&a, "mv-vm1")["status_message"]
        .as_str()
        .unwrap_or("");
    assert!(m.contains("Reverted: its flow drain rolled back"), "{m}");
    let c = cloud(&home);
    assert_eq!(host_of(&c, VM1), "compute-003");
    assert_eq!(host_of(&c, VM2), "compute-003");
    assert_eq!(node(&c, "compute-001")["power_state"], "off");
    let ev = events(&home, &plan);
    assert!(
        ev.iter()
            .any(|e| e["event_type"] == "flow.alternative.start"
                && e["object_uuid"] == "drain-retry1"),
        "{ev:?}"
    );
}
