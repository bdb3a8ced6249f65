//! The planners through `sextant plan`: every public Watcher 17.0.0 planner
//! vector, the errors that exit 2, and planner output the host refuses.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::{Path, PathBuf};

fn vectors() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/vectors/watcher-17.0.0");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("vectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".yaml") && (n.starts_with('W') || n.starts_with('S') || n.starts_with('N'))
        })
        .collect();
    v.sort();
    v
}

fn expected(path: &Path) -> Value {
    let v: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml");
    v["expected"].clone()
}

#[test]
fn every_public_planner_vector_passes() {
    let home = scratch();
    let all = vectors();
    assert!(all.len() >= 11, "{all:?}");
    for path in &all {
        let out = run(sextant(home.path())
            .args(["plan", "--format", "json", "--input"])
            .arg(path));
        let exp = expected(path);
        if exp["error"].is_string() || exp.get("raises").is_some() {
            assert_eq!(out.status, 2, "{}: {}", path.display(), out.stderr);
            continue;
        }
        assert_eq!(out.status, 0, "{}: {}", path.display(), out.stderr);
        let got = out.json();
        assert_eq!(
            got["action_plan_state"],
            exp["action_plan_state"],
            "{}",
            path.display()
        );
        let actions: Vec<Value> = got["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| json!({"id": a["id"], "action_type": a["action_type"], "parents": a["parents"]}))
            .collect();
        assert_eq!(
            Value::Array(actions),
            exp["actions_in_creation_order"],
            "{}",
            path.display()
        );
    }
}

#[test]
fn the_copied_vectors_match_the_shared_reference_when_it_is_there() {
    let shared = repo_root().join("../shared/reference/vectors");
    if !shared.is_dir() {
        return; // A clone without the shared material: nothing to compare.
    }
    for entry in std::fs::read_dir(&shared).expect("shared") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name");
        let ours = repo_root().join("tests/vectors/watcher-17.0.0").join(name);
        assert_eq!(
            std::fs::read(&p).expect("read"),
            std::fs::read(&ours).unwrap_or_default(),
            "{} differs from the shared copy",
            name.to_string_lossy()
        );
    }
}

fn plan_file(home: &Path, name: &str, body: &Value) -> PathBuf {
    write_file(&home.join("in"), name, &body.to_string())
}

#[test]
fn planner_errors_exit_2_naming_the_action_type() {
    let home = scratch();
    let cases = [
        (
            json!({"planner": "weight", "config": {"weights": {"migrate": 3}, "parallelization": {"migrate": 2}},
                   "solution": [{"id": "m1", "action_type": "migrate", "input_parameters": {}},
                                {"id": "x1", "action_type": "teleport", "input_parameters": {}}]}),
            "teleport",
        ),
        (
            json!({"planner": "weight", "config": {"weights": {"migrate": "3"}},
                   "solution": [{"id": "m1", "action_type": "migrate"}]}),
            "must be a number",
        ),
        (
            json!({"planner": "workload_stabilization",
                   "solution": [{"id": "v1", "action_type": "volume_migrate", "resource_id": "v", "input_parameters": {}}]}),
            "volume_migrate",
        ),
        (
            json!({"planner": "workload_stabilization",
                   "solution": [{"id": "r1", "action_type": "resize", "resource_id": "vm1", "input_parameters": {"flavor": "x"}}]}),
            "instance_hosts",
        ),
        (
            json!({"planner": "node_resource_consolidation",
                   "solution": [{"id": "s1", "action_type": "stop", "input_parameters": {}}]}),
            "stop",
        ),
        (
            json!({"planner": "no_such_planner", "solution": []}),
            "no_such_planner",
        ),
        (
            json!({"planner": "weight", "config": {"weight": {}}, "solution": []}),
            "weight",
        ),
    ];
    for (i, (body, words)) in cases.iter().enumerate() {
        let f = plan_file(home.path(), &format!("case{i}.json"), body);
        let out = run(sextant(home.path()).args(["plan", "--input"]).arg(&f));
        assert_eq!(out.status, 2, "case {i}: {}", out.stderr);
        assert!(
            out.stderr.contains(words),
            "case {i}: {} lacks {words:?}",
            out.stderr
        );
    }
    // With no config, each planner uses Watcher's defaults; an empty solution
    // is a SUCCEEDED plan.
    let f = plan_file(
        home.path(),
        "empty.json",
        &json!({"planner": "weight", "solution": []}),
    );
    let out = run(sextant(home.path())
        .args(["plan", "--format", "json", "--input"])
        .arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["action_plan_state"], "SUCCEEDED");
}

#[test]
fn a_planner_that_returns_a_cycle_or_an_unknown_action_is_refused() {
    let home = scratch();
    let dir = home.path().join("plugins");
    populate(&dir, &[&fixture("libfixture_kinds.so")]);
    for (config, words) in [(json!({}), "cycle"), (json!({"extra_action": true}), "#2")] {
        let f = plan_file(
            home.path(),
            "broken.json",
            &json!({"planner": "fixture_broken", "config": config,
                    "solution": [{"id": "a", "action_type": "nop"}, {"id": "b", "action_type": "nop"}]}),
        );
        let out = run(sextant(home.path())
            .env("SEXTANT_PLUGIN_PATH", &dir)
            .args(["plan", "--input"])
            .arg(&f));
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("invalid plan") && out.stderr.contains(words),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn plan_save_stores_a_recommended_plan() {
    let home = scratch();
    let v = repo_root().join("tests/vectors/watcher-17.0.0/N03_disable_migrate_enable.yaml");
    let out = run(sextant(home.path())
        .args(["plan", "--save", "--format", "json", "--input"])
        .arg(&v));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let uuid = out.json()["action_plan"]
        .as_str()
        .expect("uuid")
        .to_string();
    let out = run(sextant(home.path()).args(["action-plan", "show", &uuid, "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["state"], "RECOMMENDED");
    let acts = doc["actions"].as_array().expect("actions");
    let by_name = |n: &str| {
        acts.iter()
            .find(|a| a["name"] == n)
            .cloned()
            .expect("action")
    };
    let e1 = by_name("e1");
    assert_eq!(
        e1["parents"],
        json!([by_name("m3")["uuid"], by_name("m2")["uuid"]])
    );
    assert_eq!(
        by_name("m1")["input_parameters"]["resource_id"],
        "f6416850-da28-4047-a547-8c49f53e95fe"
    );
    let out =
        run(sextant(home.path()).args(["action-plan", "graph", &uuid, "--format", "mermaid"]));
    assert!(out.stdout.contains("-->"), "{}", out.stdout);
}

#[test]
fn the_rules_planner_with_the_default_policy_orders_only_what_must_be() {
    let home = scratch();
    let f = plan_file(
        home.path(),
        "maintenance.json",
        &json!({
            "planner": "rules",
            "config": {"policy": "default"},
            "solution": [
                {"id": "off", "action_type": "change_node_power_state", "input_parameters": {"resource_id": "n1", "resource_name": "h1", "state": "off"}},
                {"id": "m1", "action_type": "migrate", "resource_id": "vm1", "input_parameters": {"migration_type": "live", "source_node": "h1", "destination_node": "h2"}},
                {"id": "m2", "action_type": "migrate", "resource_id": "vm2", "input_parameters": {"migration_type": "live", "source_node": "h1", "destination_node": "h3"}},
                {"id": "r2", "action_type": "resize", "resource_id": "vm2", "input_parameters": {"flavor": "m1.small"}},
                {"id": "dis", "action_type": "change_nova_service_state", "input_parameters": {"resource_id": "n1", "resource_name": "h1", "state": "disabled"}}
            ]
        }),
    );
    let out = run(sextant(home.path())
        .args(["plan", "--format", "json", "--input"])
        .arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    let parents = |id: &str| -> Vec<String> {
        doc["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id))
            .map(|x| {
                x["parents"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|v| v.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    assert_eq!(parents("dis"), Vec::<String>::new());
    assert_eq!(parents("m1"), ["dis"]);
    assert_eq!(parents("m2"), ["dis"]);
    assert_eq!(
        parents("r2"),
        ["m2"],
        "actions on one instance in weight order"
    );
    let mut off = parents("off");
    off.sort();
    assert_eq!(off, ["dis", "m1", "m2"]);
    assert_eq!(doc["actions"][0]["id"], "dis", "the critical path first");
    assert_eq!(
        doc["extra"]["pools"][0]["per"], "source_node",
        "limits go to the applier as pools"
    );

    // A malformed policy exits 2 naming the file, line and column.
    let bad = write_file(
        &home.path().join("in"),
        "bad-policy.yaml",
        "planner: rules\nlimits:\n  - {action_type: migrate, maxx: 2}\n",
    );
    let f = plan_file(
        home.path(),
        "with-bad-policy.json",
        &json!({"planner": "rules", "config": {"policy": bad}, "solution": []}),
    );
    let out = run(sextant(home.path()).args(["plan", "--input"]).arg(&f));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("bad-policy.yaml:3:"), "{}", out.stderr);
    // And an audit with it is refused, leaving nothing behind.
    let out = run(sextant(home.path())
        .args(["audit", "create", "-g", "dummy", "--policy"])
        .arg(&bad));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("maxx"), "{}", out.stderr);
    let audits = run(sextant(home.path()).args(["audit", "list", "--format", "json"])).json();
    assert_eq!(audits, json!([]));

    // An audit with the default policy is planned by the rules planner.
    let out = run(sextant(home.path()).args([
        "audit", "create", "-g", "dummy", "--policy", "default", "--format", "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.json()["action_plan"]
        .as_str()
        .expect("plan")
        .to_string();
    let p =
        run(sextant(home.path()).args(["action-plan", "show", &plan, "--format", "json"])).json();
    assert_eq!(p["planner"], "rules");
    assert!(
        p["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .all(|a| a["parents"] == json!([])),
        "dummy's nops and sleep have nothing that orders them: {p}"
    );
}
