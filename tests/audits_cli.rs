//! Goals, strategies, audit templates and audits through the built binary,
//! on a real database: Watcher's parameter checks, and synchronisation as a
//! strategy plugin is added, changed and removed.

use serde_json::Value;
use sextant::store::Store;
use sextant_e2e::*;
use std::path::Path;

fn db_counts(db: &Path) -> (usize, usize, usize) {
    let s = Store::open(db).expect("open");
    (
        s.audits().expect("audits").len(),
        s.templates().expect("templates").len(),
        s.events(None, 0).expect("events").len(),
    )
}

#[test]
fn a_template_whose_name_lookup_fails_is_not_created_and_nothing_is_written() {
    // A store whose templates cannot be read is an error, not a free name:
    // the lookup's error once let a second template of the same name in.
    let home = scratch();
    let db = home.path().join("data/sextant/sextant.db");
    assert_eq!(run(sextant(home.path()).args(["sync"])).status, 0);
    for name in ["t1", "t2"] {
        let r = run(sextant(home.path()).args(["audit-template", "create", name, "dummy"]));
        assert_eq!(r.status, 0, "{}", r.stderr);
    }
    raw_db(&db)
        .execute_batch("UPDATE audit_templates SET description = x'00ff' WHERE name = 't2'")
        .expect("corrupt a template's description");
    let r = run(sextant(home.path()).args(["audit-template", "create", "t2", "dummy"]));
    assert_ne!(r.status, 0, "created: {}", r.stdout);
    assert!(
        r.stderr.contains("sextant.db"),
        "names nothing: {}",
        r.stderr
    );
    let n: i64 = raw_db(&db)
        .query_row("SELECT count(*) FROM audit_templates", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 2);
}

#[test]
fn the_dummy_audit_runs_and_stores_its_solution_through_the_action_factory() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=1.5",
        "-p",
        "para2=hi",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "SUCCEEDED");
    assert_eq!(
        a["parameters"],
        serde_json::json!({"para1": 1.5, "para2": "hi"})
    );
    let plan = a["action_plan"]
        .as_str()
        .expect("the audit produced a plan")
        .to_string();
    let sol = a["solution"].as_array().expect("solution");
    let types: Vec<&str> = sol
        .iter()
        .map(|x| x["action_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["nop", "nop", "sleep"]);
    assert_eq!(sol[1]["input_parameters"]["message"], "hi");
    assert_eq!(
        sol[1]["input_parameters"]["fail_execute"], false,
        "defaults filled by the factory"
    );
    assert_eq!(sol[2]["action_type_version"], "1.0.0");

    // The plan is RECOMMENDED, scheduled by dummy's planner (weight): a chain
    // nop-1 -> nop-2 -> sleep-1, with the versions pinned.
    let out = run(sextant(home.path()).args(["action-plan", "show", &plan, "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["state"], "RECOMMENDED");
    assert_eq!(doc["planner"], "weight");
    let acts = doc["actions"].as_array().expect("actions");
    let names: Vec<&str> = acts
        .iter()
        .map(|a| a["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["nop-1", "nop-2", "sleep-1"]);
    assert_eq!(acts[0]["parents"], serde_json::json!([]));
    assert_eq!(acts[1]["parents"], serde_json::json!([acts[0]["uuid"]]));
    assert_eq!(acts[2]["parents"], serde_json::json!([acts[1]["uuid"]]));
    assert!(
        acts.iter()
            .all(|a| a["state"] == "PENDING" && a["action_type_version"] == "1.0.0")
    );
    assert_eq!(acts[2]["input_parameters"]["duration"], 1.5);
    let out = run(sextant(home.path()).args(["action-plan", "graph", &plan[..8]]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("digraph") && out.stdout.contains("a1 -> a2;"),
        "{}",
        out.stdout
    );
    let out =
        run(sextant(home.path()).args(["action", "list", "--plan", &plan, "--format", "json"]));
    assert_eq!(out.json().as_array().map(Vec::len), Some(3));
    // Actions show their type's description (Watcher's action_descriptions).
    let nop = acts[0]["uuid"].as_str().unwrap_or("").to_string();
    let out = run(sextant(home.path()).args(["action", "show", &nop, "--format", "json"]));
    assert_eq!(out.json()["description"], "Logging a NOP message.");

    // Defaults are stored with the audit; the goal alone picks the first strategy.
    let out =
        run(sextant(home.path()).args(["audit", "create", "-g", "dummy", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["strategy_name"], "dummy");
    let out = run(sextant(home.path()).args([
        "audit",
        "show",
        a["uuid"].as_str().unwrap_or(""),
        "--format",
        "json",
    ]));
    assert_eq!(out.json()["state"], "SUCCEEDED");

    // A finished audit can be deleted; a deleted one is gone.
    let uuid = a["uuid"].as_str().unwrap_or("").to_string();
    assert_eq!(
        run(sextant(home.path()).args(["audit", "delete", &uuid])).status,
        0
    );
    assert_eq!(
        run(sextant(home.path()).args(["audit", "show", &uuid])).status,
        2
    );
    // A finished audit cannot be cancelled.
    let first = run(sextant(home.path()).args(["audit", "list", "--format", "json"])).json();
    let u = first[0]["uuid"].as_str().unwrap_or("").to_string();
    let out = run(sextant(home.path()).args(["audit", "cancel", &u]));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("SUCCEEDED -> CANCELLED"),
        "{}",
        out.stderr
    );
}

#[test]
fn watcher_parameter_checks_refuse_and_leave_the_store_unchanged() {
    let home = scratch();
    let db = home.path().join("data/sextant/sextant.db");
    assert_eq!(run(sextant(home.path()).args(["sync"])).status, 0);
    assert_eq!(
        run(sextant(home.path()).args(["audit-template", "create", "at1", "dummy", "-s", "dummy"]))
            .status,
        0
    );
    let before = db_counts(&db);
    let cases: &[(&[&str], &str)] = &[
        (
            &["-g", "dummy", "-s", "dummy", "-p", "para1=20"],
            "20 is greater than the maximum of 10.2",
        ),
        (
            &["-g", "dummy", "-s", "dummy", "-p", "para1=0.5"],
            "less than the minimum of 1",
        ),
        (&["-g", "dummy", "-s", "dummy", "-p", "para2=5"], "para2"),
        (
            &["-g", "dummy", "-s", "dummy", "-p", "bogus=1"],
            "Audit parameter bogus are not allowed",
        ),
        // Without -s, the goal's default strategy checks the parameters.
        (
            &["-g", "dummy", "-p", "para1=20"],
            "Invalid parameters for strategy dummy: para1: 20 is greater than the maximum",
        ),
        (
            &[
                "-g",
                "thermal_optimization",
                "-s",
                "outlet_temperature",
                "-p",
                "period=-5",
            ],
            "period: -5 is less than the minimum of 0",
        ),
        (
            &["-g", "thermal_optimization", "-p", "period=-5"],
            "period: -5 is less than the minimum of 0",
        ),
        // Refused by the strategy only once it ran (the audit stored,
        // FAILED, exit 1) until the schemas said so.
        (
            &[
                "-g",
                "noisy_neighbor",
                "-s",
                "noisy_neighbor",
                "-p",
                "period=0",
            ],
            "Invalid parameters for strategy noisy_neighbor: period: 0",
        ),
        (
            &[
                "-g",
                "workload_balancing",
                "-s",
                "workload_stabilization",
                "-p",
                "metrics=[]",
            ],
            "Invalid parameters for strategy workload_stabilization: metrics: []",
        ),
        // A required parameter missing, for the default strategy too.
        (
            &["-g", "cluster_maintaining"],
            "\"maintenance_node\" is a required property",
        ),
        (&["-g", "no_such_goal"], "no_such_goal"),
        (
            &["-g", "thermal_optimisation"],
            "no goal named \"thermal_optimisation\" (known: ",
        ),
        (
            &["-g", "thermal_optimisation"],
            "did you mean thermal_optimization?",
        ),
        (
            &["-g", "thermal_optimization", "-s", "outlet_temprature"],
            "no strategy named \"outlet_temprature\" for goal thermal_optimization (known: outlet_temperature; did you mean outlet_temperature?)",
        ),
        (
            &["-g", "dummy", "-s", "actuator"],
            "achieves goal unclassified",
        ),
        (&["-g", "dummy", "-a", "at1"], "not both"),
        (&["-t", "CONTINUOUS", "-g", "dummy"], "needs an interval"),
        (
            &["-t", "ONESHOT", "-g", "dummy", "-i", "60"],
            "only for CONTINUOUS",
        ),
        (
            &["-t", "CONTINUOUS", "-g", "dummy", "-i", "every day"],
            "cron",
        ),
        (&["-t", "SOMETIMES", "-g", "dummy"], "SOMETIMES"),
        (
            &["-g", "dummy", "--start-time", "2026-01-01T00:00:00Z"],
            "not for ONESHOT",
        ),
    ];
    for (args, words) in cases {
        let out = run(sextant(home.path()).args(["audit", "create"]).args(*args));
        assert_eq!(out.status, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(words),
            "{args:?}: {} lacks {words:?}",
            out.stderr
        );
        assert_eq!(db_counts(&db), before, "{args:?} changed the store");
    }
    let out = run(sextant(home.path()).args([
        "audit-template",
        "create",
        "at2",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=99",
    ]));
    assert_eq!(out.status, 2);
    assert_eq!(db_counts(&db), before);
    // A template's goal and strategy are looked up the same way.
    for (args, words) in [
        (["at3", "dumy", "-s", "dummy"], "no goal named \"dumy\""),
        (
            ["at3", "dummy", "-s", "dumy"],
            "no strategy named \"dumy\" for goal dummy",
        ),
    ] {
        let out = run(sextant(home.path())
            .args(["audit-template", "create"])
            .args(args));
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(words) && out.stderr.contains("did you mean dummy?"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(db_counts(&db), before);
    }

    // A CONTINUOUS audit is stored PENDING, for `sextant serve`.
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-t",
        "CONTINUOUS",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-i",
        "*/5 * * * *",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["state"], "PENDING");
}

fn list(home: &Path, what: &str) -> Value {
    let out = run(sextant(home).args([what, "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{what}: {}", out.stderr);
    out.json()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn goals_and_strategies_follow_the_plugins_at_every_start() {
    let home = scratch();
    let dir = home.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let db = home.path().join("data/sextant/sextant.db");
    let cmd = |args: &[&str]| {
        let mut c = sextant(home.path());
        c.env("SEXTANT_PLUGIN_PATH", &dir).args(args);
        run(&mut c)
    };
    // Without the plugin: the built-in goals only.
    assert_eq!(cmd(&["sync"]).status, 0);
    assert!(!names(&list(home.path(), "goal")).contains(&"fixture_goal".to_string()));

    // Added: goal and strategy appear.
    populate(&dir, &[&fixture("libfixture_kinds.so")]);
    let out = cmd(&["goal", "list", "--format", "json"]);
    assert!(names(&out.json()).contains(&"fixture_goal".to_string()));
    let s1 = cmd(&["strategy", "show", "fixture_evacuate", "--format", "json"]).json();
    assert_eq!(
        s1["parameters_spec"]["properties"]["migration_type"]["default"],
        "live"
    );
    assert_eq!(
        cmd(&[
            "audit-template",
            "create",
            "t1",
            "fixture_goal",
            "-s",
            "fixture_evacuate"
        ])
        .status,
        0
    );
    let out = cmd(&[
        "audit",
        "create",
        "-t",
        "CONTINUOUS",
        "-i",
        "3600",
        "-g",
        "fixture_goal",
        "-s",
        "fixture_evacuate",
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json()["uuid"].as_str().unwrap_or("").to_string();

    // Changed schema: the strategy is replaced, the template follows it, the
    // runnable audit is cancelled.
    std::fs::remove_file(dir.join("libfixture_kinds.so")).expect("rm");
    populate(&dir, &[&fixture("libfixture_strategy_v2.so")]);
    let out = cmd(&["sync", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(
        report["strategies_created"],
        serde_json::json!(["fixture_evacuate"])
    );
    assert_eq!(report["audits_cancelled"], serde_json::json!([audit]));
    let s2 = cmd(&["strategy", "show", "fixture_evacuate", "--format", "json"]).json();
    assert_ne!(s1["uuid"], s2["uuid"]);
    assert_eq!(
        s2["parameters_spec"]["properties"]["migration_type"]["default"],
        "cold"
    );
    let t = cmd(&["audit-template", "show", "t1", "--format", "json"]).json();
    assert_eq!(t["strategy_uuid"], s2["uuid"]);
    let a = cmd(&["audit", "show", &audit, "--format", "json"]).json();
    assert_eq!(a["state"], "CANCELLED");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("strategy changed")
    );

    // Removed: goal and strategy soft-deleted, the template loses its
    // strategy and is flagged.
    std::fs::remove_file(dir.join("libfixture_strategy_v2.so")).expect("rm");
    let out = cmd(&["audit-template", "list"]);
    assert!(out.stdout.contains("GOAL VANISHED"), "{}", out.stdout);
    assert!(!names(&list(home.path(), "goal")).contains(&"fixture_goal".to_string()));
    assert!(!names(&list(home.path(), "strategy")).contains(&"fixture_evacuate".to_string()));
    let t = cmd(&["audit-template", "show", "t1", "--format", "json"]).json();
    assert!(t["strategy_uuid"].is_null());
    assert_eq!(t["goal_vanished"], true);

    // Soft delete: the rows are still in the database.
    let deleted: i64 = raw_db(&db)
        .query_row(
            "SELECT count(*) FROM strategies WHERE name = 'fixture_evacuate' AND deleted = 1",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(deleted, 2);
}

#[test]
fn a_continuous_audit_runs_at_its_interval_under_serve_and_supersedes_its_previous_plan() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-t",
        "CONTINUOUS",
        "-i",
        "1",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "--name",
        "every-second",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json();
    assert_eq!(audit["state"], "PENDING");
    let uuid = audit["uuid"].as_str().unwrap_or("").to_string();

    // A plan it recommended before (planners store plans; here one is
    // written directly, to see the next run supersede it).
    let db = home.path().join("data/sextant/sextant.db");
    let mut s = Store::open(&db).expect("open");
    let old_plan = s
        .create_plan(&sextant::store::plans::NewPlan {
            audit_uuid: Some(uuid.clone()),
            state: sextant::states::PlanState::Recommended,
            ..Default::default()
        })
        .expect("plan")
        .uuid;
    drop(s);

    let out = run(sextant(home.path()).args(["serve", "--exit-after", "3.5"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let s = Store::open(&db).expect("open");
    let runs = s
        .events(None, 0)
        .expect("events")
        .into_iter()
        .filter(|e| {
            e.object_uuid == uuid && e.event_type == sextant::states::EventType::AuditStrategyEnd
        })
        .count();
    assert!(
        (3..=5).contains(&runs),
        "{runs} runs in 3.5 s at a 1 s interval"
    );
    let a = s.audit(&uuid).expect("audit");
    assert_eq!(a.state, sextant::states::AuditState::Ongoing);
    assert!(a.next_run_time.is_some());
    assert_eq!(
        a.solution.as_ref().and_then(|v| v.as_array().map(Vec::len)),
        Some(3)
    );
    assert_eq!(
        s.plan_state(&old_plan).ok(),
        Some(sextant::states::PlanState::Cancelled)
    );

    // An end time in the past ends it at the next pass.
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-t",
        "CONTINUOUS",
        "-i",
        "60",
        "-g",
        "dummy",
        "--name",
        "ended",
        "--end-time",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        run(sextant(home.path()).args(["serve", "--exit-after", "0.5"])).status,
        0
    );
    let a = run(sextant(home.path()).args(["audit", "show", "ended", "--format", "json"])).json();
    assert_eq!(a["state"], "SUCCEEDED");
}

#[test]
fn an_event_audit_runs_when_triggered() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit", "create", "-t", "EVENT", "-g", "dummy", "--name", "ev", "--format", "json",
    ]));
    assert_eq!(out.json()["state"], "PENDING");
    for _ in 0..2 {
        let out = run(sextant(home.path()).args(["audit", "trigger", "ev", "--format", "json"]));
        assert_eq!(out.status, 0, "{}", out.stderr);
        assert_eq!(out.json()["state"], "SUCCEEDED");
    }
    let out = run(sextant(home.path()).args(["audit", "create", "-g", "dummy", "--name", "once"]));
    assert_eq!(out.status, 0);
    let out = run(sextant(home.path()).args(["audit", "trigger", "once"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("only EVENT audits"), "{}", out.stderr);
}

#[test]
fn a_planner_that_cannot_place_an_action_fails_the_audit_and_stores_no_plan() {
    let home = scratch();
    let types = home.path().join("types");
    write_file(
        &types,
        "echo_arg.yaml",
        "name: echo_arg\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [/bin/echo, \"{{ v }}\"]\nparameters:\n  type: object\n  properties:\n    v: {type: string}\n",
    );
    let params = write_file(
        &home.path().join("p"),
        "actions.json",
        r#"{"actions": [{"action_type": "echo_arg", "input_parameters": {"v": "x"}}]}"#,
    );
    let actions = std::fs::read_to_string(&params).expect("read");
    let out = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &types)
        .args([
            "audit",
            "create",
            "-g",
            "unclassified",
            "-s",
            "actuator",
            "--format",
            "json",
            "-p",
        ])
        .arg(format!(
            "actions={}",
            serde_json::from_str::<Value>(&actions).expect("json")["actions"]
        )));
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "FAILED");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("echo_arg"),
        "{a}"
    );
    assert!(a["action_plan"].is_null(), "no plan is left behind");
    let plans = run(sextant(home.path()).args(["action-plan", "list", "--format", "json"])).json();
    assert_eq!(plans, serde_json::json!([]));
}

#[test]
fn parameters_without_a_strategy_go_to_the_goals_default_strategy() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit", "create", "-g", "dummy", "-p", "para1=2", "--format", "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    assert_eq!(a["strategy_name"], "dummy", "the default strategy is kept");
    assert_eq!(a["parameters"]["para1"], 2.0);
}

#[test]
fn an_audit_of_a_cloud_never_seeded_fails_loudly() {
    let home = scratch();
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "FAILED", "{a}");
    let why = a["status_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("the cluster model is empty") && why.contains("sextant sim init"),
        "{why}"
    );
    assert!(
        out.stderr.contains("the cluster model is empty"),
        "{}",
        out.stderr
    );
    // An empty snapshot is the same.
    let empty = write_file(home.path(), "empty.yaml", "nodes: []\ninstances: []\n");
    let seeded = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(&empty));
    if seeded.status == 0 {
        let out = run(sextant(home.path()).args(["audit", "create", "-g", "server_consolidation"]));
        assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("the cluster model is empty"),
            "{}",
            out.stdout
        );
    } else {
        // Refused at seeding (bad input) is loud too.
        assert_eq!(seeded.status, 2, "{}", seeded.stderr);
    }
}

#[test]
fn an_empty_solution_carries_the_strategys_reason_to_the_operator() {
    let home = scratch();
    let cluster = write_file(
        home.path(),
        "no-metrics.yaml",
        "nodes:\n\
         \x20 - {uuid: n1, hostname: h1, vcpus: 8, memory: 8192, disk: 100}\n\
         \x20 - {uuid: n2, hostname: h2, vcpus: 8, memory: 8192, disk: 100}\n\
         instances:\n\
         \x20 - {uuid: i1, name: vm1, host: h1, vcpus: 1, memory: 1024, disk: 10}\n",
    );
    let seeded = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(&cluster));
    assert_eq!(seeded.status, 0, "{}", seeded.stderr);
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "thermal_optimization",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "SUCCEEDED");
    assert_eq!(
        a["status_message"],
        "no action recommended by outlet_temperature: no node has host_outlet_temp"
    );
    // The table output shows it too.
    let out = run(sextant(home.path()).args(["audit", "create", "-g", "thermal_optimization"]));
    assert!(
        out.stdout.contains("no node has host_outlet_temp"),
        "{}",
        out.stdout
    );
}

/// The collector runs once per audit: the planner gets the model the
/// strategy decided from (it used to collect a second time, doubling the
/// calls to a real cloud and possibly seeing another cloud).
#[test]
fn an_audit_collects_the_cluster_model_once() {
    let home = scratch();
    let h = home.path();
    let small = repo_root().join("examples/clusters/small.yaml");
    let out = run(sextant(h).args(["sim", "init", "--from"]).arg(&small));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = run(sextant(h).env("SEXTANT_LOG", "debug").args([
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-s",
        "basic",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["state"], "SUCCEEDED", "{}", out.stdout);
    let collected = out
        .stderr
        .lines()
        .filter(|l| l.contains("collector sim: model collected"))
        .count();
    assert_eq!(collected, 1, "{}", out.stderr);
}
