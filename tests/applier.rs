//! The applier through the built binary: Watcher's applier vectors under
//! `watcher-compat`, Sextant's STRICT rule, retries, timeouts, on_failure,
//! cancel from another process, manual skip, simulation, leases, context
//! passing, and resuming after SIGKILL.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::{Duration, Instant};

fn vectors() -> PathBuf {
    repo_root().join("tests/vectors/watcher-17.0.0")
}

/// What this file adds to the shared [`Home`].
trait HomeExt {
    fn start(&self, plan: &str, policy: &Path, extra: &[&str]) -> Run;
}

impl HomeExt for Home {
    /// `action-plan start PLAN --wait [EXTRA…] --policy POLICY`.
    fn start(&self, plan: &str, policy: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["action-plan", "start", plan, "--wait"];
        args.extend_from_slice(extra);
        args.extend(["--policy", policy.to_str().unwrap_or("")]);
        self.run(&args)
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_public_applier_vector_passes_under_watcher_compat() {
    let home = Home::new();
    let mut seen = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors())
        .expect("vectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('A') && n.ends_with(".yaml"))
        })
        .collect();
    files.sort();
    for f in &files {
        let v: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(f).expect("read")).expect("yaml");
        let rule = v["execution_rule"].as_str().unwrap_or("ALWAYS").to_string();
        let plan = home.import(f);
        let args = [
            "action-plan",
            "start",
            &plan,
            "--wait",
            "--policy",
            "watcher-compat",
            "--execution-rule",
            &rule,
        ];
        match v["scenario"].as_str() {
            None => {
                let _ = home.run(&args);
            }
            Some(s) if s.starts_with("CANCEL_DURING") => {
                let mut child = home.spawn(&args);
                wait_for("the first action to run", || {
                    home.actions(&plan).iter().any(|a| a["state"] == "ONGOING")
                });
                std::thread::sleep(Duration::from_millis(300));
                assert_eq!(home.run(&["action-plan", "cancel", &plan]).status, 0);
                let _ = child.wait();
            }
            Some(other) => panic!("{}: unknown scenario {other}", f.display()),
        }
        let exp = &v["expected"];
        let p = home.plan(&plan);
        assert_eq!(p["state"], exp["action_plan_state"], "{}", f.display());
        assert_eq!(
            p["status_message"],
            exp["action_plan_status_message"],
            "{}",
            f.display()
        );
        for e in exp["actions"].as_array().expect("actions") {
            let name = e["id"].as_str().expect("id");
            let a = home.action(&plan, name);
            assert_eq!(a["state"], e["state"], "{} {name}", f.display());
            match e["status_message"].as_str() {
                None => assert!(
                    a["status_message"].is_null(),
                    "{} {name}: {}",
                    f.display(),
                    a["status_message"]
                ),
                Some(m) => {
                    let m = m.replace("<uuid of this action>", a["uuid"].as_str().unwrap_or(""));
                    // Sextant keeps Watcher's message and may add the handler's reason.
                    let got = a["status_message"].as_str().unwrap_or("");
                    assert!(
                        got.starts_with(&m),
                        "{} {name}: {got:?} does not start with {m:?}",
                        f.display()
                    );
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 5, "{seen}");
}

fn nop(id: &str, parents: &[&str], extra: Value) -> Value {
    let mut p = json!({"message": id});
    if let (Value::Object(m), Value::Object(e)) = (&mut p, extra) {
        m.extend(e);
    }
    json!({"id": id, "action_type": "nop", "input_parameters": p, "parents": parents})
}

#[test]
fn strict_cancels_the_dependents_of_a_failed_action_and_independent_branches_go_on() {
    let home = Home::new();
    let plan = home.import_json(
        "strict.json",
        &json!({"actions": [
            nop("a", &[], json!({"fail_execute": true})),
            nop("b", &["a"], json!({})),
            nop("c", &["b"], json!({})),
            nop("x", &[], json!({})),
        ]}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait", "--format", "json"]);
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(out.json()["state"], "FAILED");
    assert_eq!(home.action(&plan, "a")["state"], "FAILED");
    let b = home.action(&plan, "b");
    assert_eq!(b["state"], "CANCELLED");
    assert!(
        b["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("parent a is FAILED"),
        "{b}"
    );
    assert_eq!(home.action(&plan, "c")["state"], "CANCELLED");
    assert_eq!(home.action(&plan, "x")["state"], "SUCCEEDED");
}

#[test]
fn a_parent_is_committed_before_its_child_starts_and_nothing_runs_twice() {
    // Chains, a fan-out and a join: the thread that finishes an action
    // runs the child it was the last parent of, committing the parent's
    // SUCCEEDED with the child's ONGOING, never after it.
    let home = Home::new();
    let mut actions = vec![nop("root", &[], json!({}))];
    for k in 0..6 {
        let prev = if k == 0 {
            "root".to_string()
        } else {
            format!("c{}", k - 1)
        };
        actions.push(nop(&format!("c{k}"), &[&prev], json!({})));
        actions.push(nop(&format!("f{k}"), &["root"], json!({})));
    }
    actions.push(nop("join", &["c5", "f0", "f3", "f5"], json!({})));
    let plan = home.import_json("order.json", &json!({ "actions": actions }));
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--max-workers",
        "3",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let rows = home.actions(&plan);
    let uuid_of = |name: &str| {
        rows.iter()
            .find(|a| a["name"] == name)
            .and_then(|a| a["uuid"].as_str())
            .unwrap_or_else(|| panic!("no action {name}"))
            .to_string()
    };
    let events = home.events(&plan);
    let position = |uuid: &str, event: &str| {
        let at: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["object_uuid"] == uuid && e["event_type"] == event)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(at.len(), 1, "{event} of {uuid}: {at:?}");
        at[0]
    };
    for a in &rows {
        assert_eq!(a["state"], "SUCCEEDED", "{a}");
        let child = a["uuid"].as_str().unwrap_or("");
        let started = position(child, "action.execution.start");
        for p in a["parents"].as_array().cloned().unwrap_or_default() {
            let p = p.as_str().unwrap_or("");
            assert!(
                position(p, "action.execution.end") < started,
                "{} started before its parent {p} was committed",
                a["name"]
            );
        }
    }
    assert!(
        position(&uuid_of("c5"), "action.execution.end")
            < position(&uuid_of("join"), "action.execution.start")
    );
}

fn flaky_type(home: &Home) {
    write_file(
        &home.types,
        "flaky.yaml",
        r#"
name: flaky
version: 1.0.0
description: Fails until it has been called `succeed_on` times (counts in a file).
handler: command
with:
  argv: ["/bin/sh", "-c", "n=$(cat \"$1\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$1\"; [ $n -ge \"$2\" ]", "sh", "{{ counter }}", "{{ succeed_on }}"]
  timeout: "{{ timeout }}"
parameters:
  type: object
  required: [counter, succeed_on]
  properties:
    counter: {type: string}
    succeed_on: {type: integer}
    timeout: {type: string, default: "30s"}
"#,
    );
}

fn policy(home: &Home, name: &str, text: &str) -> PathBuf {
    write_file(&home.path().join("policies"), name, text)
}

#[test]
fn retries_with_exponential_backoff_then_success_or_failure() {
    let home = Home::new();
    flaky_type(&home);
    let p = policy(
        &home,
        "retry.yaml",
        "recovery:\n  default: {retries: 0}\n  flaky: {retries: 2, backoff: {initial: 200ms, factor: 2.0, max: 5s}}\n",
    );
    let counter = home.path().join("count1");
    let plan = home.import_json(
        "retry.json",
        &json!({"actions": [{"id": "f", "action_type": "flaky",
            "input_parameters": {"counter": counter, "succeed_on": 3}}]}),
    );
    let t = Instant::now();
    let out = home.start(&plan, &p, &[]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "backoff 200 ms then 400 ms"
    );
    assert_eq!(home.action(&plan, "f")["state"], "SUCCEEDED");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "3"
    );
    let retries: Vec<Value> = home
        .events(&plan)
        .into_iter()
        .filter(|e| e["event_type"] == "action.execution.retry")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[1]["payload"]["retry_in_seconds"], 0.4);

    // Retries spent: FAILED.
    let counter = home.path().join("count2");
    let plan = home.import_json(
        "retry2.json",
        &json!({"actions": [{"id": "f", "action_type": "flaky",
            "input_parameters": {"counter": counter, "succeed_on": 5}}]}),
    );
    let out = home.start(&plan, &p, &[]);
    assert_eq!(out.status, 1);
    assert_eq!(home.action(&plan, "f")["state"], "FAILED");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "3",
        "1 try + 2 retries"
    );
}

#[test]
fn a_timeout_fails_the_action_and_aborts_it() {
    let home = Home::new();
    let p = policy(
        &home,
        "fast.yaml",
        "recovery:\n  default: {timeout: 300ms}\n",
    );
    let plan = home.import_json(
        "slow.json",
        &json!({"actions": [{"id": "s", "action_type": "sleep", "input_parameters": {"duration": 20}}]}),
    );
    let t = Instant::now();
    let out = home.start(&plan, &p, &[]);
    assert_eq!(out.status, 1);
    assert!(t.elapsed() < Duration::from_secs(10));
    let s = home.action(&plan, "s");
    assert_eq!(s["state"], "FAILED");
    assert!(
        s["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("timed out after 0.3s"),
        "{s}"
    );
}

#[test]
fn on_failure_stop_and_rollback() {
    let home = Home::new();
    let stop = policy(
        &home,
        "stop.yaml",
        "recovery:\n  default: {on_failure: stop}\n",
    );
    let plan = home.import_json(
        "stop.json",
        &json!({"actions": [nop("bad", &[], json!({"fail_execute": true})), nop("later", &["bad"], json!({})),
                             nop("other", &[], json!({}))]}),
    );
    let out = home.start(&plan, &stop, &["--max-workers", "1"]);
    assert_eq!(out.status, 1);
    let p = home.plan(&plan);
    assert_eq!(p["state"], "FAILED");
    assert!(
        p["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("on_failure: stop"),
        "{p}"
    );
    let other = home.action(&plan, "other");
    assert_eq!(
        other["state"], "CANCELLED",
        "nothing new starts after the failure: {other}"
    );

    let rollback = policy(
        &home,
        "rollback.yaml",
        "recovery:\n  default: {on_failure: rollback}\n",
    );
    let plan = home.import_json(
        "rollback.json",
        &json!({"actions": [nop("one", &[], json!({})), nop("two", &["one"], json!({})),
                             nop("bad", &["two"], json!({"fail_execute": true}))]}),
    );
    let out = home.start(&plan, &rollback, &[]);
    assert_eq!(out.status, 1);
    let reverted: Vec<String> = home
        .events(&plan)
        .into_iter()
        .filter(|e| e["event_type"] == "action.revert.end")
        .map(|e| e["object_uuid"].as_str().unwrap_or("").to_string())
        .collect();
    let (one, two) = (home.action(&plan, "one"), home.action(&plan, "two"));
    assert_eq!(
        reverted,
        [
            two["uuid"].as_str().unwrap_or(""),
            one["uuid"].as_str().unwrap_or("")
        ],
        "reverse order"
    );
    assert!(
        one["status_message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Reverted"),
        "{one}"
    );
}

#[test]
fn cancel_from_another_process_aborts_running_actions_and_cancels_pending_ones() {
    let home = Home::new();
    let plan = home.import_json(
        "cancel.json",
        &json!({"actions": [
            {"id": "s1", "action_type": "sleep", "input_parameters": {"duration": 30}, "parents": []},
            {"id": "s2", "action_type": "sleep", "input_parameters": {"duration": 30}, "parents": []},
            nop("after", &["s1", "s2"], json!({})),
        ]}),
    );
    let mut child = home.spawn(&["action-plan", "start", &plan, "--wait"]);
    wait_for("both sleeps to run", || {
        home.actions(&plan)
            .iter()
            .filter(|a| a["state"] == "ONGOING")
            .count()
            == 2
    });
    let t = Instant::now();
    let out = home.run(&["action-plan", "cancel", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("CANCELLING"), "{}", out.stdout);
    let status = child.wait().expect("applier");
    // `start --wait` exits 0 only for a SUCCEEDED plan (issue 19.8).
    assert_eq!(status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "aborted, not waited for"
    );
    assert_eq!(home.plan(&plan)["state"], "CANCELLED");
    for a in home.actions(&plan) {
        assert_eq!(a["state"], "CANCELLED", "{a}");
    }
    // A cancelled plan cannot be cancelled again.
    assert_eq!(home.run(&["action-plan", "cancel", &plan]).status, 2);
}

#[test]
fn an_action_skipped_by_hand_does_not_run_and_its_children_do() {
    let home = Home::new();
    let plan = home.import_json(
        "skip.json",
        &json!({"actions": [nop("a", &[], json!({"fail_execute": true})), nop("b", &["a"], json!({}))]}),
    );
    let a = home.action(&plan, "a");
    let out = home.run(&[
        "action",
        "skip",
        a["uuid"].as_str().unwrap_or(""),
        "--reason",
        "done by hand",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = home.action(&plan, "a");
    assert_eq!(a["state"], "SKIPPED");
    assert_eq!(
        a["status_message"],
        "Action skipped by user. Reason: done by hand"
    );
    assert_eq!(home.action(&plan, "b")["state"], "SUCCEEDED");
    assert_eq!(
        home.plan(&plan)["status_message"],
        "One or more actions were skipped."
    );
    // Only PENDING actions are skipped.
    let out = home.run(&["action", "skip", a["uuid"].as_str().unwrap_or("")]);
    assert_eq!(out.status, 2);
}

#[test]
fn simulation_reports_every_problem_and_executes_nothing() {
    let home = Home::new();
    let plan = home.import_json(
        "sim.json",
        &json!({"actions": [
            nop("ok", &[], json!({})),
            nop("bad1", &[], json!({"fail_pre_condition": true})),
            nop("bad3", &["ok"], json!({"fail_pre_condition": true})),
            nop("bad2", &[], json!({"fail_pre_condition": true})),
        ]}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait", "--format", "json"]);
    assert_eq!(out.status, 1);
    let o = out.json();
    assert_eq!(o["state"], "FAILED");
    assert_eq!(
        o["simulation_problems"].as_array().map(Vec::len),
        Some(2),
        "{o}"
    );
    for a in home.actions(&plan) {
        assert_eq!(a["state"], "PENDING", "nothing ran: {a}");
    }
}

#[test]
fn outputs_flow_to_descendants_and_only_to_them() {
    let home = Home::new();
    write_file(
        &home.types,
        "emit.yaml",
        "name: emit\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", '{\"host\": \"%s\"}', \"{{ host }}\"]\nparameters:\n  type: object\n  properties:\n    host: {type: string}\n",
    );
    write_file(
        &home.types,
        "echo_arg.yaml",
        "name: echo_arg\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", \"<%s>\", \"{{ value }}\"]\nparameters:\n  type: object\n  properties:\n    value: {type: string}\n",
    );
    let plan = home.import_json(
        "ctx.json",
        &json!({"actions": [
            {"id": "first", "action_type": "emit", "input_parameters": {"host": "compute-9"}},
            {"id": "second", "action_type": "echo_arg", "input_parameters": {"value": "{{ actions.first.outputs.host }}"}, "parents": ["first"]},
        ]}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        home.action(&plan, "second")["outputs"]["stdout"],
        "<compute-9>"
    );

    let f = write_file(
        &home.path().join("plans"),
        "bad-ctx.json",
        &json!({"actions": [
            {"id": "first", "action_type": "emit", "input_parameters": {"host": "x"}},
            {"id": "second", "action_type": "echo_arg", "input_parameters": {"value": "{{ actions.first.outputs.host }}"}},
        ]})
        .to_string(),
    );
    let out = run(home.cmd().args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("not one of its ancestors"),
        "{}",
        out.stderr
    );
}

#[test]
fn two_appliers_on_one_plan_one_runs_it_the_other_says_who_holds_it() {
    let home = Home::new();
    let plan = home.import_json(
        "lease.json",
        &json!({"actions": [{"id": "s", "action_type": "sleep", "input_parameters": {"duration": 2}}]}),
    );
    let mut first = home.spawn(&["action-plan", "start", &plan, "--wait"]);
    wait_for("the first applier to start", || {
        home.action(&plan, "s")["state"] == "ONGOING"
    });
    let out = home.run(&["action-plan", "resume", &plan, "--wait"]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("is being applied by") && out.stderr.contains(':'),
        "{}",
        out.stderr
    );
    assert!(first.wait().expect("first").success());
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
}

#[test]
fn sigkill_at_random_moments_then_resume_runs_nothing_twice_and_misses_nothing() {
    let home = Home::new();
    write_file(
        &home.types,
        "append.yaml",
        r#"
name: append
version: 1.0.0
description: Appends its name to a file (not idempotent).
handler: command
idempotent: false
with:
  argv: ["/bin/sh", "-c", "sleep 0.05; echo \"$1\" >> \"$2\"", "sh", "{{ name }}", "{{ log }}"]
parameters:
  type: object
  required: [name, log]
  properties:
    name: {type: string}
    log: {type: string}
"#,
    );
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut interrupted = 0;
    for round in 0..15 {
        // One log per round: a killed applier's orphaned command may still
        // append after the round ends.
        let log = home.path().join(format!("ran{round}.log"));
        std::fs::write(&log, "").expect("reset log");
        let actions: Vec<Value> = (0..12)
            .map(|i| {
                let parents: Vec<String> = if i >= 4 { vec![format!("a{}", i - 4)] } else { vec![] };
                json!({"id": format!("a{i}"), "action_type": "append",
                       "input_parameters": {"name": format!("a{i}"), "log": log}, "parents": parents})
            })
            .collect();
        let plan = home.import_json(&format!("crash{round}.json"), &json!({"actions": actions}));
        let mut child = home.spawn(&[
            "action-plan",
            "start",
            &plan,
            "--wait",
            "--max-workers",
            "3",
        ]);
        std::thread::sleep(Duration::from_millis(50 + next(400)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if home.plan(&plan)["state"] != "SUCCEEDED" {
            interrupted += 1;
        }
        // Resume until the plan ends (kill the resumer too, once).
        if round % 2 == 0 {
            let mut again = home.spawn(&["action-plan", "resume", &plan, "--wait"]);
            std::thread::sleep(Duration::from_millis(30 + next(200)));
            let _ = again.kill();
            let _ = again.wait();
        }
        // The killed applier's lease must expire before another takes over.
        let mut last = String::new();
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
            last = format!("status {}: {}{}", out.status, out.stdout, out.stderr);
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "round {round}: resume never ended: {last}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = last;
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
        for a in home.actions(&plan) {
            let state = a["state"].as_str().unwrap_or("");
            assert!(
                !["PENDING", "ONGOING"].contains(&state),
                "round {round}: {a}"
            );
            let name = a["name"].as_str().unwrap_or("");
            if state == "SUCCEEDED" {
                assert!(
                    ran.contains(&name),
                    "round {round}: {name} SUCCEEDED without running"
                );
            }
            if state == "FAILED" {
                assert!(
                    a["status_message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Interrupted"),
                    "round {round}: {a}"
                );
            }
        }
    }
    assert!(interrupted >= 3, "only {interrupted} kills landed mid-plan");
}

/// `echo_arg`: prints `<value>` through the command handler.
fn echo_arg_type(home: &Home) {
    write_file(
        &home.types,
        "echo_arg.yaml",
        "name: echo_arg\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", \"<%s>\", \"{{ value }}\"]\nparameters:\n  type: object\n  properties:\n    value: {type: string}\n",
    );
}

#[test]
fn action_parameters_are_never_rendered_as_templates() {
    let home = Home::new();
    echo_arg_type(&home);
    // Cluster data that looks like a template: a host a tenant named, an
    // expression naming another host, a reference the plan did not declare
    // as one (a filter makes it an expression, not a reference).
    let nasty = [
        "c{{ 7*7 }}",
        "{{ 'compute-003' }}",
        "{{ actions.a0.outputs.stdout | upper }}",
        "{% for i in range(3) %}x{% endfor %}",
    ];
    let plan = home.import_json(
        "nasty.json",
        &json!({"actions": nasty.iter().enumerate().map(|(i, v)| json!({
            "id": format!("a{i}"), "action_type": "echo_arg",
            "input_parameters": {"value": v},
            "parents": if i == 0 { vec![] } else { vec![format!("a{}", i - 1)] },
        })).collect::<Vec<_>>()}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    for (i, v) in nasty.iter().enumerate() {
        let a = home.action(&plan, &format!("a{i}"));
        assert_eq!(a["outputs"]["stdout"], format!("<{v}>"), "{a}");
        assert_eq!(a["input_parameters"]["value"], *v, "stored as given: {a}");
    }
    // `action-type run` agrees with the applier.
    let out = home.run(&[
        "action-type",
        "run",
        "echo_arg",
        "-p",
        "value=c{{ 7*7 }}",
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.json()["outputs"]["stdout"],
        "<c{{ 7*7 }}>",
        "{}",
        out.stdout
    );
}

#[test]
fn a_looping_with_template_runs_out_of_fuel_and_fails_its_action() {
    let home = Home::new();
    write_file(
        &home.types,
        "loop.yaml",
        &format!(
            "name: loop\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/bin/echo\", \"{}{{{{ v }}}}{}\"]\nparameters:\n  type: object\n  properties:\n    v: {{type: string}}\n",
            "{% for i in [0,1,2,3,4,5,6,7,8,9] %}".repeat(8),
            "{% endfor %}".repeat(8)
        ),
    );
    let plan = home.import_json(
        "loop.json",
        &json!({"actions": [
            {"id": "spin", "action_type": "loop", "input_parameters": {"v": "x"}},
            {"id": "after", "action_type": "nop", "input_parameters": {"message": "after"}},
        ]}),
    );
    // Simulation renders it first: it fails there, naming the action.
    let out = home.run(&["action-plan", "start", &plan, "--wait", "--format", "json"]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let problems = out.json()["simulation_problems"].to_string();
    assert!(
        problems.contains("spin") && problems.contains("fuel"),
        "{problems}"
    );
    assert_eq!(home.action(&plan, "spin")["state"], "PENDING");
    // Without simulation, the action fails when it runs; the plan goes on.
    let plan = home.import_json(
        "loop2.json",
        &json!({"actions": [
            {"id": "spin", "action_type": "loop", "input_parameters": {"v": "x"}},
            {"id": "after", "action_type": "nop", "input_parameters": {"message": "after"}},
        ]}),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--policy",
        "watcher-compat",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let spin = home.action(&plan, "spin");
    assert_eq!(spin["state"], "FAILED", "{spin}");
    assert!(
        spin["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("fuel")),
        "{spin}"
    );
    assert_eq!(home.action(&plan, "after")["state"], "SUCCEEDED");
    // `action-type run` fails the same way, with the type named.
    let out = home.run(&["action-type", "run", "loop", "-p", "v=x"]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("loop") && out.stderr.contains("fuel"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failed_final_state_commit_stops_the_applier_and_the_plan_resumes() {
    let home = Home::new();
    let plan = home.import_json(
        "chain.json",
        &json!({"actions": [
            nop("first", &[], json!({})),
            nop("second", &["first"], json!({})),
            nop("other", &[], json!({})),
        ]}),
    );
    let conn = fail_commits_of(&home, "first", "SUCCEEDED");
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--max-workers",
        "1",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("first") && out.stderr.contains("disk is full"),
        "the error names the action and the cause: {}",
        out.stderr
    );
    assert!(out.stderr.contains("resume"), "{}", out.stderr);
    // Interrupted, not ended: the child never ran on a state the store
    // does not hold, and nothing was cancelled.
    assert_eq!(home.plan(&plan)["state"], "ONGOING");
    assert_eq!(home.action(&plan, "first")["state"], "ONGOING");
    assert_eq!(home.action(&plan, "second")["state"], "PENDING");
    let started = |events: &[Value], name: &str| {
        let uuid = home.action(&plan, name)["uuid"].clone();
        events
            .iter()
            .filter(|e| e["event_type"] == "action.execution.start" && e["object_uuid"] == uuid)
            .count()
    };
    assert_eq!(started(&home.events(&plan), "second"), 0);

    // The disk has room again: the plan resumes and ends, each action run
    // once more at most (first is idempotent: it runs again).
    conn.exec(conn.pick(
        "DROP TRIGGER fail_commit",
        "DROP TRIGGER fail_commit ON actions",
    ));
    let out = home.run(&["action-plan", "resume", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
    let events = home.events(&plan);
    assert_eq!(started(&events, "second"), 1, "{events:?}");
    assert_eq!(started(&events, "other"), 1, "{events:?}");
}

#[test]
fn on_resume_any_reads_that_a_parent_failed_in_execute_from_the_store_not_its_message() {
    let home = Home::new();
    let plan = home.import_json(
        "any.json",
        &json!({"actions": [
            nop("bad", &[], json!({"fail_execute": true})),
            nop("child", &["bad"], json!({})),
        ]}),
    );
    // ANY runs the child because its parent failed in execute; committing
    // the child's ONGOING fails, so the applier stops there.
    let conn = fail_commits_of(&home, "child", "ONGOING");
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--execution-rule",
        "ANY",
        "--max-workers",
        "1",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "ONGOING");
    assert_eq!(home.action(&plan, "bad")["state"], "FAILED");
    assert_eq!(home.action(&plan, "child")["state"], "PENDING");
    // The message is for people: the resume must not depend on its words.
    conn.exec(conn.pick(
        "DROP TRIGGER fail_commit; \
         UPDATE actions SET status_message = 'edited by an operator' WHERE name = 'bad';",
        "DROP TRIGGER fail_commit ON actions; \
         UPDATE actions SET status_message = 'edited by an operator' WHERE name = 'bad';",
    ));
    let out = home.run(&["action-plan", "resume", &plan, "--wait"]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        home.action(&plan, "child")["state"],
        "SUCCEEDED",
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_action_state_in_the_store_stops_every_command_naming_the_row_and_changes_nothing() {
    let home = Home::new();
    let plan = home.import_json(
        "unknown.json",
        &json!({"actions": [nop("first", &[], json!({})), nop("second", &["first"], json!({}))]}),
    );
    let raw = home_db(home.path()).raw();
    // Written by something else: a state no Sextant knows. The applier
    // once read it as PENDING and ran the action.
    raw.exec("UPDATE actions SET state = 'RUNNING' WHERE name = 'second'");
    let id = raw.int("SELECT CAST(id AS TEXT) FROM actions WHERE name = 'second'");
    let dump = |raw: &RawDb| {
        let mut rows = raw.rows(
            "SELECT 'a', state, CAST(id AS TEXT) FROM actions \
             UNION ALL SELECT 'p', state, CAST(id AS TEXT) FROM action_plans \
             UNION ALL SELECT event_type, coalesce(new_state, ''), CAST(id AS TEXT) FROM events",
        );
        let id = |r: &Vec<Option<String>>| -> i64 {
            r[2].as_deref().and_then(|t| t.parse().ok()).unwrap_or(-1)
        };
        rows.sort_by(|a, b| (&a[0], id(a)).cmp(&(&b[0], id(b))));
        rows
    };
    let before = dump(&raw);
    for args in [
        vec!["action-plan", "start", plan.as_str(), "--wait"],
        vec!["action", "list", "--plan", plan.as_str()],
    ] {
        let out = home.run(&args);
        assert_eq!(out.status, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("table actions")
                && out.stderr.contains(&format!("row {id}"))
                && out.stderr.contains("\"RUNNING\""),
            "{args:?}: the error names the table, the row and the value: {}",
            out.stderr
        );
    }
    assert_eq!(dump(&raw), before, "nothing was written");
}

#[test]
fn start_options_are_recorded_and_serve_applies_the_plan_with_them() {
    let home = Home::new();
    // Under `default` (simulate: true) the pre_condition failure is found
    // by the simulation and nothing runs; under watcher-compat (no
    // simulation) each action runs, and STRICT cancels the child.
    let plan = home.import_json(
        "opts.json",
        &json!({"actions": [
            nop("pre_bad", &[], json!({"fail_pre_condition": true})),
            nop("bad", &[], json!({"fail_execute": true})),
            nop("child", &["bad"], json!({})),
        ]}),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--policy",
        "watcher-compat",
        "--execution-rule",
        "STRICT",
        "--max-workers",
        "1",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(home.plan(&plan)["state"], "PENDING");
    let mut serve = home.spawn(&["serve", "--exit-after", "1"]);
    let status = serve.wait().expect("serve");
    assert!(status.success());
    assert_eq!(home.plan(&plan)["state"], "FAILED");
    assert_eq!(home.action(&plan, "pre_bad")["state"], "FAILED");
    assert_eq!(home.action(&plan, "bad")["state"], "FAILED");
    assert_eq!(home.action(&plan, "child")["state"], "CANCELLED");
}

#[test]
fn start_wait_options_survive_a_crash_and_the_resume_uses_them() {
    let home = Home::new();
    let plan = home.import_json(
        "crash.json",
        &json!({"actions": [
            {"id": "s", "action_type": "sleep", "input_parameters": {"duration": 3}},
            nop("bad", &["s"], json!({"fail_execute": true})),
            nop("child", &["bad"], json!({})),
        ]}),
    );
    let mut first = home.spawn(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--execution-rule",
        "ALWAYS",
    ]);
    wait_for("the sleep to start", || {
        home.action(&plan, "s")["state"] == "ONGOING"
    });
    first.kill().expect("kill -9");
    let _ = first.wait();
    // The sleep was ONGOING; it is idempotent, so it runs again.
    assert_eq!(home.action(&plan, "s")["state"], "ONGOING");
    let out = home.run(&["action-plan", "resume", &plan, "--wait"]);
    // ALWAYS, as recorded: the child runs although its parent failed
    // (STRICT, the default policy's rule, would cancel it).
    assert_eq!(
        home.action(&plan, "bad")["state"],
        "FAILED",
        "{}",
        out.stderr
    );
    assert_eq!(
        home.action(&plan, "child")["state"],
        "SUCCEEDED",
        "{}",
        out.stderr
    );
}

#[test]
fn parameters_filled_from_outputs_are_checked_against_the_type_after_substitution() {
    let home = Home::new();
    write_file(
        &home.types,
        "emit.yaml",
        "name: emit\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", '{\"host\": \"%s\"}', \"{{ host }}\"]\nparameters:\n  type: object\n  properties:\n    host: {type: string}\n",
    );
    write_file(
        &home.types,
        "to_host.yaml",
        "name: to_host\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", \"<%s>\", \"{{ host }}\"]\nparameters:\n  type: object\n  required: [host]\n  properties:\n    host: {type: string, pattern: '^compute-[0-9]+$'}\n",
    );
    let plan = home.import_json(
        "checked.json",
        &json!({"actions": [
            {"id": "first", "action_type": "emit", "input_parameters": {"host": "not a host"}},
            {"id": "second", "action_type": "to_host", "input_parameters": {"host": "{{ actions.first.outputs.host }}"}, "parents": ["first"]},
        ]}),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let second = home.action(&plan, "second");
    assert_eq!(second["state"], "FAILED", "{second}");
    let msg = second["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("after substitution") && msg.contains("not a host"),
        "{second}"
    );
    assert!(second["outputs"].is_null(), "it never ran: {second}");
}

#[test]
fn a_timeout_covers_the_whole_attempt_pre_condition_included() {
    let home = Home::new();
    let plugins = home.path().join("plugins");
    populate(&plugins, &[&fixture("libfixture_kinds.so")]);
    write_file(
        &home.types,
        "slow_pre.yaml",
        "name: slow_pre\nversion: 1.0.0\nhandler: fixture.echo\nparameters:\n  type: object\n  properties:\n    pre_wait: {type: number}\n",
    );
    let p = policy(
        &home,
        "fast.yaml",
        "name: fast\nsimulate: false\nrecovery:\n  default: {timeout: 1s, retries: 2, backoff: {initial: 10ms}}\n",
    );
    let plan = home.import_json(
        "slow.json",
        &json!({"actions": [
            {"id": "slow", "action_type": "slow_pre", "input_parameters": {"pre_wait": 30}},
            {"id": "other", "action_type": "slow_pre", "input_parameters": {}},
        ]}),
    );
    let t = Instant::now();
    let out = run(home
        .cmd()
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["action-plan", "start", &plan, "--wait", "--policy"])
        .arg(&p));
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the 30 s pre_condition was cut at its 1 s timeout: {:?}",
        t.elapsed()
    );
    let slow = home.action(&plan, "slow");
    assert_eq!(slow["state"], "FAILED", "{slow}");
    assert!(
        slow["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out") && m.contains("before it started")),
        "{slow}"
    );
    // It never went ONGOING, and a timeout before it started is not retried.
    let uuid = slow["uuid"].clone();
    let events = home.events(&plan);
    assert!(
        !events
            .iter()
            .any(|e| e["object_uuid"] == uuid && e["event_type"] == "action.execution.start"),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["object_uuid"] == uuid && e["event_type"] == "action.execution.retry"),
        "{events:?}"
    );
    assert_eq!(home.action(&plan, "other")["state"], "SUCCEEDED");
}

#[test]
fn a_stop_during_an_abortable_pre_condition_leaves_the_action_pending() {
    let home = Home::new();
    let plugins = home.path().join("plugins");
    populate(&plugins, &[&fixture("libfixture_kinds.so")]);
    write_file(
        &home.types,
        "slow_pre.yaml",
        "name: slow_pre\nversion: 1.0.0\nhandler: fixture.echo\nabortable: true\nparameters:\n  type: object\n  properties:\n    pre_wait: {type: number}\n",
    );
    let plan = home.import_json(
        "stop.json",
        &json!({"actions": [
            {"id": "slow", "action_type": "slow_pre", "input_parameters": {"pre_wait": 30}},
        ]}),
    );
    // No simulation: the attempt's own pre_condition is the one stopped.
    let p = policy(&home, "nosim.yaml", "name: nosim\nsimulate: false\n");
    let mut applier = home
        .cmd()
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["action-plan", "start", &plan, "--wait", "--policy"])
        .arg(&p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the applier to start the plan", || {
        home.plan(&plan)["state"] == "ONGOING"
    });
    // In pre_condition (30 s) by now; SIGTERM asks the applier to stop.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &applier.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = applier.wait();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Aborted before it ran: left to the resume, neither FAILED nor run.
    let slow = home.action(&plan, "slow");
    assert_eq!(slow["state"], "PENDING", "{slow}");
    assert_eq!(home.plan(&plan)["state"], "ONGOING");
}

/// A type bound to `fixture.echo` whose pre_condition can hang deaf to
/// abort (`pre_hang`), in a plugin directory of the home; the directory.
fn hanging_type(home: &Home) -> PathBuf {
    let plugins = home.path().join("plugins");
    populate(&plugins, &[&fixture("libfixture_kinds.so")]);
    write_file(
        &home.types,
        "hang_pre.yaml",
        "name: hang_pre\nversion: 1.0.0\nhandler: fixture.echo\nparameters:\n  type: object\n  properties:\n    pre_hang: {type: number}\n",
    );
    plugins
}

/// The plan, its actions and their events, as the store holds them.
fn stored(home: &Home, plan: &str) -> (Vec<Value>, Vec<Value>) {
    let actions = home.actions(plan);
    let events: Vec<Value> = home
        .events(plan)
        .into_iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("action."))
        })
        .collect();
    (actions, events)
}

#[test]
fn a_hung_pre_condition_in_simulation_fails_by_its_timeout_naming_the_action() {
    let home = Home::new();
    let plugins = hanging_type(&home);
    // Simulation on (as by default); the live check of `hung` (a root whose
    // effect is not predicted) hangs for 60 s, deaf to abort.
    let p = policy(
        &home,
        "short.yaml",
        "name: short\nrecovery:\n  default: {timeout: 1s}\n",
    );
    let plan = home.import_json(
        "hung.json",
        &json!({"actions": [
            {"id": "hung", "action_type": "hang_pre", "input_parameters": {"pre_hang": 60}},
            {"id": "fine", "action_type": "hang_pre", "input_parameters": {}},
        ]}),
    );
    let before = stored(&home, &plan);
    let t = Instant::now();
    let out = run(home
        .cmd()
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["action-plan", "start", &plan, "--wait", "--policy"])
        .arg(&p));
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 1, "{said}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the hung check was cut at its 1 s timeout: {:?}",
        t.elapsed()
    );
    assert!(
        said.contains("action hung (hang_pre): pre_condition timed out after 1s"),
        "{said}"
    );
    assert!(!said.contains("action fine"), "{said}");
    let p = home.plan(&plan);
    assert_eq!(p["state"], "FAILED", "{p}");
    assert!(
        p["status_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Simulation failed; nothing was executed")
                && m.contains("action hung (hang_pre): pre_condition timed out")),
        "{p}"
    );
    // Nothing executed: every action and its events as before.
    assert_eq!(stored(&home, &plan), before);
}

#[test]
fn sigterm_during_simulation_exits_promptly_and_leaves_the_plan_to_resume() {
    let home = Home::new();
    let plugins = hanging_type(&home);
    let plan = home.import_json(
        "hung.json",
        &json!({"actions": [
            {"id": "hung", "action_type": "hang_pre", "input_parameters": {"pre_hang": 60}},
            {"id": "next", "action_type": "hang_pre", "input_parameters": {}, "parents": ["hung"]},
        ]}),
    );
    let before = stored(&home, &plan);
    // The default policy: simulation on, a 30 s timeout per check.
    let applier = home
        .cmd()
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["action-plan", "start", &plan, "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for("the applier to start the plan", || {
        home.plan(&plan)["state"] == "ONGOING"
    });
    // In the hung check by now; SIGTERM asks the applier to stop.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &applier.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = applier.wait_with_output().expect("wait");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped promptly, not after the 30 s timeout: {:?}",
        t.elapsed()
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("stop during simulation"), "{said}");
    // Nothing half-written: the actions and their events as before, the
    // plan left to resume (ONGOING, its lease released).
    assert_eq!(stored(&home, &plan), before);
    let p = home.plan(&plan);
    assert_eq!(p["state"], "ONGOING", "{p}");
    let cancel = home.run(&["action-plan", "cancel", &plan]);
    assert_eq!(
        cancel.status, 0,
        "the lease was released: {}",
        cancel.stderr
    );
}
