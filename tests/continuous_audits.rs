//! Auto-triggered audits under `sextant serve`: a CONTINUOUS audit applies
//! each plan it makes to the simulated cloud, never starts a second plan
//! while one of its own is queued or running (it skips the run and says
//! so), and never cancels a plan that was started; an EVENT audit follows
//! the same rule when it is triggered again.

use serde_json::Value;
use sextant_e2e::*;
use std::path::Path;

fn seeded(time_scale: &str) -> Scratch {
    let home = scratch();
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", time_scale, "--from"])
        .arg(repo_root().join("examples/clusters/small.yaml")));
    assert_eq!(out.status, 0, "{}", out.stderr);
    home
}

/// Creates an auto-triggered CONTINUOUS server consolidation audit run
/// every second (with `extra` options); returns its uuid.
fn continuous_audit(home: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-s",
        "basic",
        "--type",
        "CONTINUOUS",
        "--interval",
        "1",
        "--auto-trigger",
        "--format",
        "json",
    ];
    args.extend(extra);
    let out = run(sextant(home).args(&args));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "PENDING", "{a}");
    a["uuid"].as_str().expect("uuid").to_string()
}

/// The hosts that carry at least one instance.
fn nodes_in_use(home: &Path) -> usize {
    let c = run(sextant(home).args(["sim", "show", "--format", "json"])).json();
    let mut hosts: Vec<&str> = c["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["host"].as_str())
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.len()
}

fn plans_of(home: &Path, audit: &str) -> Vec<Value> {
    run(sextant(home).args(["action-plan", "list", "--audit", audit, "--format", "json"]))
        .json()
        .as_array()
        .cloned()
        .expect("plans")
}

fn events(home: &Path) -> Vec<Value> {
    run(sextant(home).args(["history", "--format", "json"]))
        .json()
        .as_array()
        .cloned()
        .expect("events")
}

/// No plan was ever moved to CANCELLING or CANCELLED.
fn assert_nothing_cancelled(events: &[Value]) {
    let cancelled: Vec<&Value> = events
        .iter()
        .filter(|e| e["object_type"] == "action_plan")
        .filter(|e| e["new_state"] == "CANCELLED" || e["new_state"] == "CANCELLING")
        .collect();
    assert!(cancelled.is_empty(), "{cancelled:?}");
}

#[test]
fn a_continuous_auto_triggered_audit_under_serve_changes_the_simulated_cloud() {
    let home = seeded("0");
    assert_eq!(nodes_in_use(home.path()), 4);
    let audit = continuous_audit(home.path(), &[]);
    let out = run(sextant(home.path()).args(["serve", "--exit-after", "4"]));
    assert_eq!(out.status, 0, "{}", out.stderr);

    let in_use = nodes_in_use(home.path());
    assert!(
        in_use < 4,
        "the consolidation was applied: {in_use} nodes in use"
    );
    let plans = plans_of(home.path(), &audit);
    assert!(
        plans.first().and_then(|p| p["action_count"].as_i64()) > Some(0),
        "the first run recommended actions: {plans:?}"
    );
    for p in &plans {
        assert_eq!(p["state"], "SUCCEEDED", "{p}");
    }
    assert_nothing_cancelled(&events(home.path()));
    let a = run(sextant(home.path()).args(["audit", "show", &audit, "--format", "json"])).json();
    assert_eq!(a["state"], "ONGOING", "{a}");
}

#[test]
fn while_its_plan_runs_the_next_interval_skips_and_says_so_even_when_forced() {
    // migrate's estimated duration is 60 s: at scale 0.04 each migration
    // takes 2.4 s, so the first plan outlives several 1 s intervals.
    // --force lifts Watcher's rule about other ONGOING plans: only the rule
    // about the audit's own plan holds the next run back.
    let home = seeded("0.04");
    let audit = continuous_audit(home.path(), &["--force"]);
    let out = run(sextant(home.path()).args(["serve", "--exit-after", "8"]));
    assert_eq!(out.status, 0, "{}", out.stderr);

    let plans = plans_of(home.path(), &audit);
    let first = plans.first().expect("a plan")["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    for p in &plans {
        assert_eq!(p["state"], "SUCCEEDED", "{p}");
    }
    assert!(nodes_in_use(home.path()) < 4);

    let events = events(home.path());
    assert_nothing_cancelled(&events);
    // Each plan was made after the previous one ended.
    let id = |e: &Value| e["id"].as_i64().expect("id");
    let created = |plan: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == "action_plan.create" && e["object_uuid"] == plan)
            .map(id)
            .expect("create event")
    };
    let ended = |plan: &str| {
        events
            .iter()
            .filter(|e| e["object_type"] == "action_plan" && e["object_uuid"] == plan)
            .filter(|e| {
                ["SUCCEEDED", "FAILED", "CANCELLED"]
                    .contains(&e["new_state"].as_str().unwrap_or(""))
            })
            .map(id)
            .max()
            .expect("end event")
    };
    for pair in plans.windows(2) {
        let (a, b) = (
            pair[0]["uuid"].as_str().expect("uuid"),
            pair[1]["uuid"].as_str().expect("uuid"),
        );
        assert!(ended(a) < created(b), "plan {b} was made while {a} ran");
    }
    // The skipped runs are recorded, naming the audit and the running plan.
    let skipped: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "audit.update" && e["object_uuid"] == audit.as_str())
        .filter(|e| e["payload"]["skipped"] == true)
        .collect();
    assert!(!skipped.is_empty(), "no skipped run recorded");
    for e in &skipped {
        assert_eq!(e["payload"]["action_plan"], first.as_str(), "{e}");
        assert!(
            ["PENDING", "ONGOING"]
                .contains(&e["payload"]["action_plan_state"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(
            e["payload"]["status_message"]
                .as_str()
                .is_some_and(|m| m.contains(&first)),
            "{e}"
        );
    }
    // And said at the default log level.
    let said = out
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("skips this run"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", out.stderr));
    assert!(said.contains(&audit) && said.contains(&first), "{said}");
}

#[test]
fn an_auto_triggered_event_audit_is_not_triggered_again_while_its_plan_is_queued() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=1",
        "--type",
        "EVENT",
        "--auto-trigger",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json()["uuid"].as_str().expect("uuid").to_string();
    let out = run(sextant(home.path()).args(["audit", "trigger", &audit, "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.json()["action_plan"]
        .as_str()
        .expect("plan")
        .to_string();
    let plans = plans_of(home.path(), &audit);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["state"], "PENDING", "auto_trigger queues the plan");
    let audit_before =
        run(sextant(home.path()).args(["audit", "show", &audit, "--format", "json"])).json();
    let events_before = events(home.path());

    // Triggered again while that plan waits for the applier: refused.
    let out = run(sextant(home.path()).args(["audit", "trigger", &audit]));
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&audit) && out.stderr.contains(&plan) && out.stderr.contains("PENDING"),
        "{}",
        out.stderr
    );
    assert_eq!(plans_of(home.path(), &audit), plans);
    assert_eq!(
        run(sextant(home.path()).args(["audit", "show", &audit, "--format", "json"])).json(),
        audit_before
    );
    assert_eq!(events(home.path()), events_before);

    // Once serve has applied it, the audit can be triggered again.
    let out = run(sextant(home.path()).args(["serve", "--exit-after", "3"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(plans_of(home.path(), &audit)[0]["state"], "SUCCEEDED");
    let out = run(sextant(home.path()).args(["audit", "trigger", &audit]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(plans_of(home.path(), &audit).len(), 2);
}

/// An interval of more seconds than chrono's time can add once panicked
/// `serve` at every start (`TimeDelta::seconds out of bounds`), for as long
/// as such an audit was stored. Now `audit create` refuses it, naming the
/// field, with nothing stored; and an audit stored with one before (written
/// here behind the store's back) is FAILED by `serve`, which goes on.
#[test]
fn an_interval_too_long_is_refused_and_a_stored_one_fails_its_audit_not_serve() {
    let home = seeded("0");
    let audits_before = run(sextant(home.path()).args(["audit", "list", "--format", "json"]));
    assert_eq!(audits_before.status, 0, "{}", audits_before.stderr);
    for interval in ["99999999999999999", "31622401"] {
        let out = run(sextant(home.path()).args([
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "--type",
            "CONTINUOUS",
            "--interval",
            interval,
        ]));
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("interval") && out.stderr.contains(interval),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let after = run(sextant(home.path()).args(["audit", "list", "--format", "json"]));
        assert_eq!(after.stdout, audits_before.stdout, "nothing stored");
    }

    let audit = continuous_audit(home.path(), &[]);
    home_db(home.path()).raw().exec(&format!(
        "UPDATE audits SET \"interval\" = '99999999999999999' WHERE uuid = '{audit}'"
    ));
    let out = run(sextant(home.path()).args(["serve", "--exit-after", "2"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let a = run(sextant(home.path()).args(["audit", "show", &audit, "--format", "json"])).json();
    assert_eq!(a["state"], "FAILED", "{a}");
}
