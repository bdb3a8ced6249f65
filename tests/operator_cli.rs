//! The commands a Watcher operator expects, through the built binary
//! (issue 19 item 8): `action-plan delete | retry`, `audit update`,
//! `audit-template update` with a policy, paging of lists, uuid prefixes
//! and names, `history purge`, `start --wait`'s exit status and report,
//! the plan uuid of `audit create`, and the MESSAGE column. Every refusal
//! is checked for its exit status, its message, and a store left as it was.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Home {
    dir: Scratch,
}

impl Home {
    fn new() -> Self {
        let dir = scratch();
        std::fs::create_dir_all(dir.path().join("types")).expect("mkdir");
        Self { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn db(&self) -> TestDb {
        home_db(self.path())
    }
    fn types(&self) -> PathBuf {
        self.path().join("types")
    }
    fn cmd(&self) -> std::process::Command {
        let mut c = sextant(self.path());
        c.env("SEXTANT_ACTION_TYPE_PATH", self.types());
        c
    }
    fn run(&self, args: &[&str]) -> Run {
        run(self.cmd().args(args))
    }
    fn ok(&self, args: &[&str]) -> Run {
        let out = self.run(args);
        assert_eq!(out.status, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        out
    }
    fn import(&self, name: &str, actions: Value) -> String {
        let f = write_file(
            &self.path().join("plans"),
            name,
            &json!({ "actions": actions }).to_string(),
        );
        let out = run(self.cmd().args(["action-plan", "import"]).arg(&f));
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.stdout.trim().to_string()
    }
    fn plan(&self, id: &str) -> Value {
        self.ok(&["action-plan", "show", id, "--format", "json"])
            .json()
    }
    fn actions(&self, plan: &str) -> Vec<Value> {
        self.plan(plan)["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    fn action(&self, plan: &str, name: &str) -> Value {
        self.actions(plan)
            .into_iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no action {name}"))
    }
    /// Everything a command could change, as text: plans with their
    /// actions, audits, templates, events, and the raw plan and action rows
    /// (deleted ones too).
    fn snapshot(&self) -> String {
        let s = self.db().open();
        let plans = s.plans(None).expect("plans");
        let actions: Vec<_> = plans
            .iter()
            .map(|p| s.actions(&p.uuid).expect("actions"))
            .collect();
        let raw = self.db().raw().rows(
            "SELECT uuid, state, CAST(deleted AS TEXT) FROM action_plans UNION ALL \
             SELECT uuid, state, CAST(deleted AS TEXT) FROM actions ORDER BY 1",
        );
        let extras: Vec<Value> = plans
            .iter()
            .map(|p| s.plan_extra(&p.uuid).expect("extra"))
            .collect();
        serde_json::to_string(&json!({
            "plans": plans,
            "actions": actions,
            "extras": extras,
            "audits": s.audits().expect("audits"),
            "templates": s.templates().expect("templates"),
            "events": s.events(None, 0).expect("events"),
            "raw": raw,
        }))
        .expect("json")
    }
    /// Runs a command that must be refused: exit status 2, a message
    /// holding every one of `says`, and the store as it was.
    fn refused(&self, args: &[&str], says: &[&str]) -> Run {
        let before = self.snapshot();
        let out = self.run(args);
        assert_eq!(out.status, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        for s in says {
            assert!(
                out.stderr.contains(s),
                "{args:?}: {s:?} not in {}",
                out.stderr
            );
        }
        assert_eq!(self.snapshot(), before, "{args:?} changed the store");
        out
    }
}

fn nop(id: &str, parents: &[&str], extra: Value) -> Value {
    let mut p = json!({"message": id});
    if let (Value::Object(m), Value::Object(e)) = (&mut p, extra) {
        m.extend(e);
    }
    json!({"id": id, "action_type": "nop", "input_parameters": p, "parents": parents})
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plan left ONGOING by an applier killed mid-run (SIGKILL): ONGOING
/// with nobody applying it.
fn interrupted_plan(home: &Home) -> String {
    let plan = home.import(
        "long.json",
        json!([{"id": "s", "action_type": "sleep", "input_parameters": {"duration": 30}}]),
    );
    let mut child = home
        .cmd()
        .args(["action-plan", "start", &plan, "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the sleep to run", || {
        home.action(&plan, "s")["state"] == "ONGOING"
    });
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(home.plan(&plan)["state"], "ONGOING");
    plan
}

#[test]
fn delete_is_refused_while_a_plan_runs_then_soft_deletes_the_plan_and_its_actions() {
    let home = Home::new();
    let plan = interrupted_plan(&home);
    let other = home.import("other.json", json!([nop("n", &[], json!({}))]));
    // Refused while ONGOING, and all of a list is refused with it.
    home.refused(
        &["action-plan", "delete", &other, &plan],
        &[&plan, "ONGOING", "cancel it first"],
    );
    // Cancelled, and the cancellation finished by an applier.
    home.ok(&["action-plan", "cancel", &plan]);
    home.refused(&["action-plan", "delete", &plan], &["CANCELLING"]);
    let out = home.run(&["action-plan", "resume", &plan]);
    assert_eq!(out.status, 1, "a CANCELLED plan: {}", out.stdout);
    assert_eq!(home.plan(&plan)["state"], "CANCELLED");

    let out = home.ok(&["action-plan", "delete", &plan[..8]]);
    assert!(out.stdout.contains(&plan), "{}", out.stdout);
    // Gone from lists and shows, as Watcher's soft delete.
    let list = home.ok(&["action-plan", "list", "--format", "json"]).json();
    let uuids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["uuid"].as_str())
        .collect();
    assert_eq!(uuids, [other.as_str()]);
    let out = home.run(&["action-plan", "show", &plan]);
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains(&plan), "{}", out.stderr);
    assert_eq!(home.run(&["action", "list", "--plan", &plan]).status, 2);
    // Kept in the database as DELETED, its actions with it, with events.
    let s = home.db().open();
    let raw = home.db().raw();
    let text =
        |v: &[&str]| -> Vec<Option<String>> { v.iter().map(|t| Some(t.to_string())).collect() };
    assert_eq!(
        raw.rows(&format!(
            "SELECT state, CAST(deleted AS TEXT) FROM action_plans WHERE uuid = '{plan}'"
        )),
        [text(&["DELETED", "1"])]
    );
    assert_eq!(
        raw.rows(&format!(
            "SELECT x.state, CAST(x.deleted AS TEXT) FROM actions x \
             JOIN action_plans p ON p.id = x.action_plan_id WHERE p.uuid = '{plan}'"
        )),
        [text(&["DELETED", "1"])]
    );
    let events = s.events(Some(&plan), 0).expect("events");
    let last: Vec<(&str, Option<&str>)> = events
        .iter()
        .rev()
        .take(2)
        .map(|e| (e.event_type.as_str(), e.old_state.map(|s| s.as_str())))
        .collect();
    assert_eq!(
        last,
        [
            ("action.delete", Some("CANCELLED")),
            ("action_plan.delete", Some("CANCELLED"))
        ]
    );
    // A deleted plan is not deleted twice.
    home.refused(&["action-plan", "delete", &plan], &["not found"]);
}

#[test]
fn a_suspended_continuous_audit_makes_no_plan_until_it_is_resumed() {
    let home = Home::new();
    let a = home
        .ok(&[
            "audit",
            "create",
            "-t",
            "CONTINUOUS",
            "-g",
            "dummy",
            "-s",
            "dummy",
            "-i",
            "3600",
            "--name",
            "every-hour",
            "--format",
            "json",
        ])
        .json();
    let audit = a["uuid"].as_str().expect("uuid").to_string();
    let plans = |home: &Home| -> usize {
        home.ok(&["action-plan", "list", "--audit", &audit, "--format", "json"])
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    // Not ONGOING yet: Watcher suspends ONGOING audits only.
    home.refused(
        &["audit", "update", "every-hour", "--state", "SUSPENDED"],
        &[&audit, "PENDING", "suspend it once it is ONGOING"],
    );
    home.ok(&["serve", "--exit-after", "2"]);
    assert_eq!(plans(&home), 1);
    home.refused(
        &["audit", "delete", "every-hour"],
        &[&audit, "ONGOING", "cancel it first", "--state SUSPENDED"],
    );
    let out = home.ok(&[
        "audit",
        "update",
        &audit[..6],
        "--state",
        "suspended",
        "--format",
        "json",
    ]);
    assert_eq!(out.json()["state"], "SUSPENDED");
    // Every second from now on, but suspended: no run.
    let out = home.ok(&[
        "audit",
        "update",
        "every-hour",
        "-i",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(out.json()["interval"], "1");
    assert_eq!(out.json()["state"], "SUSPENDED");
    home.ok(&["serve", "--exit-after", "3"]);
    assert_eq!(plans(&home), 1, "a suspended audit ran");
    // Resumed: it runs every second again.
    home.ok(&["audit", "update", "every-hour", "--state", "ONGOING"]);
    home.ok(&["serve", "--exit-after", "3"]);
    assert!(plans(&home) >= 2, "a resumed audit did not run");
    let events = home.db().open().events(None, 0).expect("events");
    let moves: Vec<(Option<&str>, Option<&str>)> = events
        .iter()
        .filter(|e| {
            e.object_uuid == audit && e.event_type == sextant::states::EventType::AuditUpdate
        })
        .map(|e| {
            (
                e.old_state.map(|s| s.as_str()),
                e.new_state.map(|s| s.as_str()),
            )
        })
        .collect();
    assert!(
        moves.contains(&(Some("ONGOING"), Some("SUSPENDED"))),
        "{moves:?}"
    );
    assert!(
        moves.contains(&(Some("SUSPENDED"), Some("ONGOING"))),
        "{moves:?}"
    );

    // Refusals: a bad state, a bad interval, an interval on a ONESHOT audit.
    home.refused(
        &["audit", "update", &audit, "--state", "SUCCEEDED"],
        &["--state SUCCEEDED", "SUSPENDED, ONGOING, CANCELLED"],
    );
    home.refused(
        &["audit", "update", &audit, "-i", "every so often"],
        &["--interval every so often"],
    );
    let oneshot = home
        .ok(&[
            "audit", "create", "-g", "dummy", "-s", "dummy", "--format", "json",
        ])
        .json();
    let oneshot = oneshot["uuid"].as_str().expect("uuid");
    home.refused(
        &["audit", "update", oneshot, "-i", "60"],
        &[oneshot, "only a CONTINUOUS audit has an interval"],
    );
    home.refused(
        &["audit", "update", oneshot, "--state", "ONGOING"],
        &[oneshot, "SUCCEEDED", "only a SUSPENDED audit is resumed"],
    );
    home.refused(&["audit", "update", oneshot], &["nothing to change"]);
    // Suspended, it may be deleted, as in Watcher.
    home.ok(&["audit", "update", &audit, "--state", "SUSPENDED"]);
    home.ok(&["audit", "delete", &audit]);
    home.refused(&["audit", "show", &audit], &["not found"]);
}

#[test]
fn an_audit_template_carries_a_policy_that_its_audits_take() {
    let home = Home::new();
    home.ok(&["audit-template", "create", "t1", "dummy", "-s", "dummy"]);
    home.ok(&["audit-template", "create", "t2", "dummy"]);
    let t = home
        .ok(&[
            "audit-template",
            "update",
            "t1",
            "--policy",
            "watcher-compat",
            "-d",
            "with a policy",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(t["policy"], "watcher-compat");
    assert_eq!(t["description"], "with a policy");
    assert!(t["policy_content"].is_object(), "{t}");
    let a = home
        .ok(&["audit", "create", "-a", "t1", "--format", "json"])
        .json();
    assert_eq!(a["policy"], "watcher-compat");
    assert_eq!(a["policy_content"], t["policy_content"]);
    // An audit's own policy wins.
    let a = home
        .ok(&[
            "audit", "create", "-a", "t1", "--policy", "default", "--format", "json",
        ])
        .json();
    assert_eq!(a["policy"], "default");
    // Refusals.
    home.refused(
        &[
            "audit-template",
            "update",
            "t1",
            "--policy",
            "no-such-policy",
        ],
        &["--policy no-such-policy", "no-such-policy"],
    );
    home.refused(
        &["audit-template", "update", "t1", "--name", "t2"],
        &["named \"t2\""],
    );
    home.refused(&["audit-template", "update", "t1"], &["nothing to change"]);
    home.refused(
        &["audit-template", "update", "t9", "--name", "x"],
        &["\"t9\" not found"],
    );
    // Removed: audits made from it have none.
    let t = home
        .ok(&[
            "audit-template",
            "update",
            "t1",
            "--no-policy",
            "--name",
            "t3",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(
        (t["name"].as_str(), &t["policy"]),
        (Some("t3"), &Value::Null)
    );
    let a = home
        .ok(&["audit", "create", "-a", "t3", "--format", "json"])
        .json();
    assert_eq!(a["policy"], Value::Null);
}

#[test]
fn retry_makes_a_new_plan_of_exactly_the_unfinished_actions_and_their_edges() {
    let home = Home::new();
    let plan = home.import(
        "retry.json",
        json!([
            nop("a", &[], json!({"fail_execute": true})),
            nop("b", &["a"], json!({"fail_post_condition": false})),
            nop("x", &[], json!({})),
            nop("d", &["x", "a"], json!({})),
            nop("c", &["b"], json!({})),
            {"id": "s", "action_type": "nop", "input_parameters": {"message": "s"}, "initial_state": "SKIPPED"},
        ]),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--execution-rule",
        "STRICT",
        "--max-workers",
        "3",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let old = home.actions(&plan);
    let state = |n: &str| {
        old.iter()
            .find(|a| a["name"] == n)
            .map(|a| a["state"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state("a").as_deref(), Some("FAILED"));
    assert_eq!(state("x").as_deref(), Some("SUCCEEDED"));
    assert_eq!(state("s").as_deref(), Some("SKIPPED"));
    let before = home.snapshot();

    let out = home.ok(&["action-plan", "retry", &plan[..8], "--format", "json"]);
    let new = out.json()["action_plan"]
        .as_str()
        .expect("uuid")
        .to_string();
    assert_eq!(out.json()["retry_of"], plan.as_str());
    let doc = home.plan(&new);
    assert_eq!(doc["state"], "RECOMMENDED");
    let acts = doc["actions"].as_array().expect("actions");
    let uuid_of = |n: &str| {
        acts.iter()
            .find(|a| a["name"] == n)
            .map(|a| a["uuid"].clone())
            .unwrap_or(Value::Null)
    };
    let got: Vec<(String, Value, Value, String)> = acts
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").to_string(),
                a["parents"].clone(),
                a["input_parameters"].clone(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let old_params = |n: &str| {
        old.iter()
            .find(|a| a["name"] == n)
            .map(|a| a["input_parameters"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        got,
        [
            ("a".into(), json!([]), old_params("a"), "PENDING".into()),
            (
                "b".into(),
                json!([uuid_of("a")]),
                old_params("b"),
                "PENDING".into()
            ),
            // The edge from x, which succeeded, is dropped.
            (
                "d".into(),
                json!([uuid_of("a")]),
                old_params("d"),
                "PENDING".into()
            ),
            (
                "c".into(),
                json!([uuid_of("b")]),
                old_params("c"),
                "PENDING".into()
            ),
        ]
    );
    // The options the old plan was started with come along.
    let s = home.db().open();
    let extra = s.plan_extra(&new).expect("extra");
    assert_eq!(extra["retry_of"], plan.as_str());
    assert_eq!(extra["applied_with"]["execution_rule"], "STRICT");
    assert_eq!(extra["applied_with"]["max_workers"], 3);
    drop(s);
    // The old plan is untouched but for the new one beside it.
    let old_again: Vec<Value> = home.actions(&plan);
    assert_eq!(old_again, old);
    assert_ne!(home.snapshot(), before);

    // Refusals, with what to do.
    home.refused(
        &["action-plan", "retry", &new],
        &[&new, "RECOMMENDED", "action-plan start"],
    );
    let good = home.import("good.json", json!([nop("n", &[], json!({}))]));
    home.ok(&["action-plan", "start", &good, "--wait"]);
    home.refused(
        &["action-plan", "retry", &good],
        &["SUCCEEDED", "nothing is left"],
    );
}

#[test]
fn a_retried_action_reads_the_outputs_of_the_finished_actions_it_referenced() {
    let home = Home::new();
    write_file(
        &home.types(),
        "emit.yaml",
        "name: emit\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", '{\"host\": \"%s\"}', \"{{ host }}\"]\nparameters:\n  type: object\n  properties:\n    host: {type: string}\n",
    );
    write_file(
        &home.types(),
        "echo_arg.yaml",
        "name: echo_arg\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", \"<%s>\", \"{{ value }}\"]\nparameters:\n  type: object\n  properties:\n    value: {type: string}\n",
    );
    let plan = home.import(
        "ctx.json",
        json!([
            {"id": "first", "action_type": "emit", "input_parameters": {"host": "compute-9"}},
            nop("gate", &["first"], json!({"fail_execute": true})),
            {"id": "second", "action_type": "echo_arg", "input_parameters": {"value": "{{ actions.first.outputs.host }}"}, "parents": ["gate"]},
        ]),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--execution-rule",
        "STRICT",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(home.action(&plan, "first")["state"], "SUCCEEDED");
    assert_eq!(home.action(&plan, "second")["state"], "CANCELLED");
    let new = home
        .ok(&["action-plan", "retry", &plan])
        .stdout
        .trim()
        .to_string();
    let names: Vec<Value> = home
        .actions(&new)
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("gate"), json!("second")]);
    // `first` is not in the new plan: its output is read now.
    assert_eq!(
        home.action(&new, "second")["input_parameters"]["value"],
        "compute-9"
    );
    let extra = home.db().open().plan_extra(&new).expect("extra");
    assert_eq!(extra["references"], Value::Null, "{extra}");
}

#[test]
fn limit_and_marker_walk_every_plan_once_in_sort_order_and_bad_keys_are_refused() {
    let home = Home::new();
    for i in 0..7 {
        home.import(&format!("p{i}.json"), json!([nop("n", &[], json!({}))]));
    }
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["action-plan", "list", "--format", "json"];
        args.extend_from_slice(extra);
        home.ok(&args)
            .json()
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|p| p["uuid"].as_str().map(String::from))
            .collect()
    };
    let created = list(&[]);
    assert_eq!(created.len(), 7);
    for dir in ["asc", "desc"] {
        let mut want = created.clone();
        want.sort();
        if dir == "desc" {
            want.reverse();
        }
        assert_eq!(list(&["--sort-key", "uuid", "--sort-dir", dir]), want);
        let mut walked = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut args = vec!["--sort-key", "uuid", "--sort-dir", dir, "--limit", "3"];
            if let Some(m) = &marker {
                args.extend(["--marker", m.as_str()]);
            }
            let page = list(&args);
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3);
            marker = page.last().cloned();
            walked.extend(page);
        }
        assert_eq!(walked, want, "{dir}");
    }
    // Default: creation order.
    assert_eq!(list(&["--limit", "2"]), created[..2]);
    home.refused(
        &["action-plan", "list", "--sort-key", "colour"],
        &["--sort-key colour", "uuid, state, audit_uuid"],
    );
    home.refused(
        &["action-plan", "list", "--limit", "0"],
        &["must be positive"],
    );
    home.refused(
        &["action-plan", "list", "--marker", "ffffffff-0000"],
        &["--marker ffffffff-0000"],
    );
    // The other lists page too.
    let acts = home.ok(&[
        "action",
        "list",
        "--plan",
        &created[0],
        "--limit",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(acts.json().as_array().map(Vec::len), Some(1));
    home.refused(&["audit", "list", "--sort-key", "colour"], &["goal_name"]);
    home.refused(
        &["audit-template", "list", "--sort-key", "colour"],
        &["strategy_name"],
    );
}

#[test]
fn uuid_prefixes_and_names_resolve_and_an_ambiguous_prefix_lists_its_matches() {
    let home = Home::new();
    let p1 = home.import(
        "p1.json",
        json!([
            nop("first", &[], json!({})),
            nop("second", &["first"], json!({}))
        ]),
    );
    let p2 = home.import("p2.json", json!([nop("first", &[], json!({}))]));
    // Two plans whose uuids share a prefix.
    let (a, b) = (
        "abcd1111-0000-4000-8000-000000000001",
        "abcd2222-0000-4000-8000-000000000002",
    );
    {
        home.db().raw().exec(&format!(
            "UPDATE action_plans SET uuid = '{a}' WHERE uuid = '{p1}'; \
             UPDATE action_plans SET uuid = '{b}' WHERE uuid = '{p2}'; \
             UPDATE events SET action_plan_uuid = '{a}' WHERE action_plan_uuid = '{p1}'; \
             UPDATE events SET action_plan_uuid = '{b}' WHERE action_plan_uuid = '{p2}';"
        ));
    }
    let out = home.refused(&["action-plan", "show", "abcd"], &["ambiguous", a, b]);
    assert!(
        out.stderr.contains("give more of the uuid"),
        "{}",
        out.stderr
    );
    home.refused(&["action-plan", "delete", "abcd"], &["ambiguous", a, b]);
    assert_eq!(home.plan("abcd1")["uuid"], a);
    assert_eq!(home.plan("ABCD2")["uuid"], b);
    home.refused(&["action-plan", "show", "abc"], &["\"abc\" not found"]);
    // Actions by name within a plan; a name in two plans is ambiguous.
    let first = home
        .ok(&[
            "action", "show", "first", "--plan", "abcd1", "--format", "json",
        ])
        .json();
    assert_eq!(first["action_plan_uuid"], a);
    home.refused(&["action", "show", "first"], &["ambiguous"]);
    let second = home
        .ok(&["action", "show", "second", "--format", "json"])
        .json();
    assert_eq!(second["name"], "second");
    let prefix = &second["uuid"].as_str().expect("uuid")[..8];
    assert_eq!(
        home.ok(&["action", "show", prefix, "--format", "json"])
            .json()["uuid"],
        second["uuid"]
    );
    home.ok(&[
        "action", "skip", "second", "--plan", "abcd1", "--reason", "not now",
    ]);
    assert_eq!(home.action(a, "second")["state"], "SKIPPED");
    // Templates and audits by name or prefix.
    let t = home
        .ok(&[
            "audit-template",
            "create",
            "tpl",
            "dummy",
            "--format",
            "json",
        ])
        .json();
    let t_uuid = t["uuid"].as_str().expect("uuid");
    assert_eq!(
        home.ok(&["audit-template", "show", &t_uuid[..6], "--format", "json"])
            .json()["name"],
        "tpl"
    );
    let audit = home
        .ok(&[
            "audit", "create", "-a", "tpl", "--name", "named", "--format", "json",
        ])
        .json();
    let audit_uuid = audit["uuid"].as_str().expect("uuid");
    assert_eq!(
        home.ok(&["audit", "show", &audit_uuid[..5], "--format", "json"])
            .json()["name"],
        "named"
    );
    let plans = home.ok(&[
        "action-plan",
        "list",
        "--audit",
        "named",
        "--format",
        "json",
    ]);
    assert_eq!(plans.json().as_array().map(Vec::len), Some(1));
}

#[test]
fn history_purge_deletes_old_events_of_ended_plans_and_keeps_those_of_running_ones() {
    let home = Home::new();
    let done = home.import("done.json", json!([nop("n", &[], json!({}))]));
    home.ok(&["action-plan", "start", &done, "--wait"]);
    let running = interrupted_plan(&home);
    let waiting = home.import("waiting.json", json!([nop("n", &[], json!({}))]));
    let count = |plan: &str| {
        home.db()
            .open()
            .events(Some(plan), 0)
            .expect("events")
            .len()
    };
    let (r, w) = (count(&running), count(&waiting));
    assert!(count(&done) > 0);

    home.refused(
        &["history", "purge", "--before", "last tuesday"],
        &["--before last tuesday", "30d"],
    );
    // Nothing is 30 days old.
    let out = home.ok(&["history", "purge", "--before", "30d"]);
    assert!(out.stdout.contains("deleted 0 events"), "{}", out.stdout);
    std::thread::sleep(Duration::from_millis(20));
    let out = home.ok(&["history", "purge", "--before", "0s", "--format", "json"]);
    let n = out.json()["deleted"].as_u64().expect("deleted");
    assert!(n > 0);
    assert_eq!(count(&done), 0);
    assert_eq!((count(&running), count(&waiting)), (r, w));
    // The plans themselves are as they were.
    assert_eq!(home.plan(&done)["state"], "SUCCEEDED");
    assert_eq!(home.plan(&running)["state"], "ONGOING");
}

#[test]
fn start_wait_exits_1_unless_succeeded_and_lists_failed_skipped_and_cancelled_actions() {
    let home = Home::new();
    let plan = home.import(
        "fails.json",
        json!([
            nop("bad", &[], json!({"fail_execute": true})),
            nop("after", &["bad"], json!({})),
            nop("fine", &[], json!({})),
            {"id": "skipped", "action_type": "nop", "input_parameters": {"message": "s"}, "initial_state": "SKIPPED"},
        ]),
    );
    let out = home.run(&[
        "action-plan",
        "start",
        &plan,
        "--wait",
        "--execution-rule",
        "STRICT",
    ]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let bad = home.action(&plan, "bad");
    let after = home.action(&plan, "after");
    let bad_msg = bad["status_message"]
        .as_str()
        .expect("a message")
        .to_string();
    let after_msg = after["status_message"]
        .as_str()
        .expect("a message")
        .to_string();
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    for (name, state, msg) in [
        ("bad", "FAILED", bad_msg.as_str()),
        ("after", "CANCELLED", after_msg.as_str()),
        ("skipped", "SKIPPED", ""),
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {}", out.stdout));
        assert!(line.contains(state) && line.contains(msg), "{line}");
    }
    assert!(!out.stdout.contains(" fine "), "{}", out.stdout);

    // The JSON form, and `start` / `start --wait` refuse an ended plan alike.
    let out = home.refused(
        &["action-plan", "start", &plan, "--wait", "--format", "json"],
        &[&plan, "FAILED", "action-plan retry"],
    );
    assert!(out.stdout.is_empty());
    let queued = home.refused(
        &["action-plan", "start", &plan],
        &[&plan, "FAILED", "action-plan retry"],
    );
    let waited = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(queued.stderr, waited.stderr);

    let plan = home.import(
        "fails2.json",
        json!([nop("bad", &[], json!({"fail_execute": true}))]),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait", "--format", "json"]);
    assert_eq!(out.status, 1);
    let doc = out.json();
    assert_eq!(doc["state"], "FAILED");
    assert_eq!(doc["actions"][0]["name"], "bad");
    assert_eq!(doc["actions"][0]["state"], "FAILED");
    assert!(doc["actions"][0]["status_message"].is_string(), "{doc}");
    // SUCCEEDED: status 0, and no action listed.
    let ok = home.import("ok.json", json!([nop("n", &[], json!({}))]));
    let out = home.ok(&["action-plan", "start", &ok, "--wait", "--format", "json"]);
    assert_eq!(out.json()["actions"], json!([]));
}

#[test]
fn audit_create_prints_its_plan_and_action_tables_have_a_message_column() {
    let home = Home::new();
    let out = home.ok(&["audit", "create", "-g", "dummy", "-s", "dummy"]);
    let plans = home.ok(&["action-plan", "list", "--format", "json"]).json();
    let plan = plans[0]["uuid"].as_str().expect("a plan");
    assert!(
        out.stdout.contains(&format!("action plan: {plan}")),
        "{}",
        out.stdout
    );
    let plan = home.import(
        "m.json",
        json!([nop("bad", &[], json!({"fail_execute": true}))]),
    );
    assert_eq!(
        home.run(&["action-plan", "start", &plan, "--wait"]).status,
        1
    );
    let msg = home.action(&plan, "bad")["status_message"]
        .as_str()
        .expect("message")
        .to_string();
    for args in [
        vec!["action", "list", "--plan", plan.as_str()],
        vec!["action-plan", "show", plan.as_str()],
    ] {
        let out = home.ok(&args);
        let header = out
            .stdout
            .lines()
            .find(|l| l.starts_with("UUID"))
            .expect("header");
        assert!(header.trim_end().ends_with("MESSAGE"), "{header}");
        assert!(out.stdout.contains(&msg), "{args:?}: {}", out.stdout);
    }
}
