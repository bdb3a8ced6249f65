//! `sextant serve` stops cleanly on SIGTERM: nothing more starts, abortable
//! actions are aborted back to PENDING, the others finish within the grace
//! period, it exits 0, and the next `serve` finishes the plan with every
//! action's effect applied exactly once.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `mark`: a non-abortable, non-idempotent command that appends
/// `start-NAME` and, `secs` seconds later, `end-NAME` to `log`.
fn mark_type(types: &Path, log: &Path) {
    write_file(
        types,
        "mark.yaml",
        &format!(
            "name: mark\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [/bin/sh, -c, 'echo start-$0 >> {log}; sleep $1; echo end-$0 >> {log}', '{{{{ name }}}}', '{{{{ secs }}}}']\nparameters:\n  type: object\n  required: [name, secs]\n  properties:\n    name: {{type: string}}\n    secs: {{type: string}}\n",
            log = log.display()
        ),
    );
}

fn cmd(home: &Path) -> Command {
    let mut c = sextant(home);
    c.env("SEXTANT_ACTION_TYPE_PATH", home.join("types"));
    c
}

fn sx(home: &Path, args: &[&str]) -> Run {
    run(cmd(home).args(args))
}

fn spawn_serve(home: &Path, args: &[&str], stderr: &Path) -> Child {
    cmd(home)
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("spawn serve")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("serve did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn actions(home: &Path, plan: &str) -> Vec<Value> {
    sx(
        home,
        &["action", "list", "--plan", plan, "--format", "json"],
    )
    .json()
    .as_array()
    .cloned()
    .unwrap_or_default()
}

fn state_of(home: &Path, plan: &str, name: &str) -> Value {
    actions(home, plan)
        .into_iter()
        .find(|a| a["name"] == name)
        .map(|a| a["state"].clone())
        .unwrap_or(Value::Null)
}

fn plan_state(home: &Path, plan: &str) -> Value {
    sx(home, &["action-plan", "show", plan, "--format", "json"]).json()["state"].clone()
}

fn import(home: &Path, actions: Value) -> String {
    let f = write_file(
        &home.join("plans"),
        "plan.json",
        &json!({ "actions": actions }).to_string(),
    );
    let out = run(cmd(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.stdout.trim().to_string()
}

#[test]
fn sigterm_stops_serve_cleanly_and_the_next_serve_runs_every_action_once() {
    let home = scratch();
    let h = home.path();
    let log = h.join("ran.log");
    mark_type(&h.join("types"), &log);
    // Abortable sleeps, and non-abortable commands that outlast the signal
    // but not the grace period; each mark has a child that waits for it.
    let mut plan_actions = Vec::new();
    for i in 0..3 {
        plan_actions.push(json!({"id": format!("s{i}"), "action_type": "sleep", "input_parameters": {"duration": 6}}));
        plan_actions.push(json!({"id": format!("m{i}"), "action_type": "mark", "input_parameters": {"name": format!("m{i}"), "secs": "2"}}));
        plan_actions.push(json!({"id": format!("after{i}"), "action_type": "mark", "input_parameters": {"name": format!("after{i}"), "secs": "0"}, "parents": [format!("m{i}")]}));
    }
    let plan = import(h, Value::Array(plan_actions));
    assert_eq!(sx(h, &["action-plan", "start", &plan]).status, 0);

    let err1 = h.join("serve1.log");
    let mut serve = spawn_serve(h, &[], &err1);
    wait_for(
        "the marks and sleeps to run",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (0..3).all(|i| text.contains(&format!("start-m{i}")))
                && (0..3).all(|i| state_of(h, &plan, &format!("s{i}")) == "ONGOING")
        },
    );
    sigterm(&serve);
    let code = wait_exit(&mut serve, Duration::from_secs(20));
    let said = std::fs::read_to_string(&err1).unwrap_or_default();
    assert_eq!(code, 0, "serve exits 0 on SIGTERM:\n{said}");
    assert!(said.contains("serve started"), "{said}");
    assert!(said.contains("applying action plan"), "{said}");
    assert!(said.contains("stopping"), "{said}");
    assert!(said.contains("serve stopped"), "{said}");

    // Nothing failed; the plan is left to resume. The marks finished within
    // the grace period; their children never started; the sleeps were
    // aborted back to PENDING.
    assert_eq!(plan_state(h, &plan), "ONGOING");
    for a in actions(h, &plan) {
        assert_ne!(a["state"], "FAILED", "{a}");
        let name = a["name"].as_str().unwrap_or("");
        let expect = if name.starts_with('m') {
            "SUCCEEDED"
        } else {
            "PENDING"
        };
        assert_eq!(a["state"], expect, "{a}");
        if name.starts_with('s') {
            assert!(
                a["status_message"]
                    .as_str()
                    .is_some_and(|m| m.contains("runs again when the plan resumes")),
                "{a}"
            );
        }
    }

    // The next serve finishes it: the sleeps run again, each command's
    // effect happens exactly once.
    let err2 = h.join("serve2.log");
    let mut serve = spawn_serve(h, &["--exit-after", "3"], &err2);
    let code = wait_exit(&mut serve, Duration::from_secs(60));
    let said = std::fs::read_to_string(&err2).unwrap_or_default();
    assert_eq!(code, 0, "{said}");
    assert_eq!(plan_state(h, &plan), "SUCCEEDED", "{said}");
    for a in actions(h, &plan) {
        assert_eq!(a["state"], "SUCCEEDED", "{a}");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for name in ["m0", "m1", "m2", "after0", "after1", "after2"] {
        for edge in ["start", "end"] {
            let line = format!("{edge}-{name}");
            assert_eq!(
                text.lines().filter(|l| *l == line).count(),
                1,
                "{line} once:\n{text}"
            );
        }
    }
}

#[test]
fn a_stopping_serve_leaves_what_outlasts_the_grace_period_to_the_resume() {
    let home = scratch();
    let h = home.path();
    let log = h.join("ran.log");
    mark_type(&h.join("types"), &log);
    write_file(
        &h.join("config/sextant"),
        "config.yaml",
        "grace_period: 1s\n",
    );
    let plan = import(
        h,
        json!([{"id": "long", "action_type": "mark", "input_parameters": {"name": "long", "secs": "30"}}]),
    );
    assert_eq!(sx(h, &["action-plan", "start", &plan]).status, 0);
    let err = h.join("serve.log");
    let mut serve = spawn_serve(h, &[], &err);
    wait_for("the long mark to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("start-long"))
    });
    let t = Instant::now();
    sigterm(&serve);
    let code = wait_exit(&mut serve, Duration::from_secs(20));
    let said = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(code, 0, "{said}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the grace period bounds the stop: {:?}\n{said}",
        t.elapsed()
    );
    assert!(said.contains("grace period over"), "{said}");
    // Left ONGOING for the resume to settle (its post_condition decides).
    assert_eq!(plan_state(h, &plan), "ONGOING");
    assert_eq!(state_of(h, &plan, "long"), "ONGOING");
}

#[test]
fn serve_stops_with_an_error_when_its_database_is_replaced() {
    let home = scratch();
    let h = home.path();
    let err = h.join("serve.log");
    let mut serve = spawn_serve(h, &[], &err);
    wait_for("serve to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&err).is_ok_and(|t| t.contains("serve started"))
    });
    let db = h.join("data/sextant/sextant.db");
    let copy = h.join("data/sextant/copy.db");
    std::fs::copy(&db, &copy).expect("copy");
    std::fs::rename(&copy, &db).expect("replace");
    let code = wait_exit(&mut serve, Duration::from_secs(20));
    let said = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("sextant.db") && said.contains("deleted or replaced"),
        "{said}"
    );
}
