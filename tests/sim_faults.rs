//! Fault injection in the simulated cloud (`sim init --faults FILE`),
//! through plans run by the built binary: an injected failure fails exactly
//! the action it targets, and a host goes down at its simulated time.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::Path;

const VM1: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000001";
const VM3: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000003";
const VM5: &str = "0d8a5f7e-3c1b-4a2e-9f6d-000000000005";

/// A home with the small cluster seeded at time scale 0 with `faults`.
fn seeded(faults: &str) -> Scratch {
    let home = scratch();
    let f = write_file(&home.path().join("in"), "faults.yaml", faults);
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--faults"])
        .arg(&f)
        .arg("--from")
        .arg(repo_root().join("examples/clusters/small.yaml")));
    assert_eq!(out.status, 0, "{}", out.stderr);
    home
}

/// No retries, so a failure is final at once.
fn no_retries(home: &Path) -> std::path::PathBuf {
    write_file(
        &home.join("in"),
        "no-retries.yaml",
        "name: no-retries\nrecovery:\n  default: {retries: 0, on_failure: continue}\n",
    )
}

fn migrate(id: &str, vm: &str, from: &str, to: &str, parents: &[&str]) -> Value {
    json!({"id": id, "action_type": "migrate", "parents": parents,
           "input_parameters": {"migration_type": "live", "resource_id": vm, "source_node": from, "destination_node": to}})
}

fn apply(home: &Path, actions: Value) -> (String, Run) {
    let f = write_file(
        &home.join("in"),
        "plan.json",
        &json!({"actions": actions}).to_string(),
    );
    let out = run(sextant(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.stdout.trim().to_string();
    let policy = no_retries(home);
    let out = run(sextant(home)
        .args(["action-plan", "start", &plan, "--wait", "--policy"])
        .arg(policy));
    (plan, out)
}

fn actions(home: &Path, plan: &str) -> Vec<Value> {
    run(sextant(home).args(["action", "list", "--plan", plan, "--format", "json"]))
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn state_of<'a>(actions: &'a [Value], name: &str) -> &'a Value {
    actions
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| &a["state"])
        .unwrap_or(&Value::Null)
}

fn host_of(home: &Path, vm: &str) -> String {
    let c = run(sextant(home).args(["sim", "show", "--format", "json"])).json();
    c["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["uuid"] == vm))
        .and_then(|i| i["host"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn an_injected_failure_fails_exactly_the_targeted_action() {
    for (faults, target) in [
        ("actions:\n  - {name: mv2}\n", "mv2"),
        (
            &*format!(
                "actions:\n  - {{action_type: migrate, parameters: {{resource_id: {VM1}}}}}\n"
            ),
            "mv1",
        ),
    ] {
        let home = seeded(faults);
        let (plan, out) = apply(
            home.path(),
            json!([
                migrate("mv1", VM1, "compute-001", "compute-003", &[]),
                migrate("mv2", VM3, "compute-002", "compute-003", &[]),
                migrate("mv3", VM5, "compute-003", "compute-004", &[]),
            ]),
        );
        assert_eq!(out.status, 1, "{faults}: {}{}", out.stdout, out.stderr);
        let a = actions(home.path(), &plan);
        for name in ["mv1", "mv2", "mv3"] {
            let wanted = if name == target {
                "FAILED"
            } else {
                "SUCCEEDED"
            };
            assert_eq!(state_of(&a, name), wanted, "{faults}: {name}: {a:?}");
        }
        let failed = a.iter().find(|x| x["name"] == target).expect("target");
        let msg = failed["status_message"].as_str().unwrap_or("");
        assert!(msg.contains("injected fault"), "{msg}");
        // The failed migration changed nothing.
        let (vm, home_host) = if target == "mv2" {
            (VM3, "compute-002")
        } else {
            (VM1, "compute-001")
        };
        assert_eq!(host_of(home.path(), vm), home_host);
    }
}

#[test]
fn a_host_goes_down_at_its_simulated_time() {
    // mv1 runs from 0s to 60s, mv2 from 60s to 120s; compute-002 goes down at 90s.
    let home = seeded("hosts:\n  - {host: compute-002, at: 90s, becomes: down}\n");
    let (plan, out) = apply(
        home.path(),
        json!([
            migrate("mv1", VM1, "compute-001", "compute-002", &[]),
            migrate("mv2", VM5, "compute-003", "compute-002", &["mv1"]),
        ]),
    );
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let a = actions(home.path(), &plan);
    assert_eq!(state_of(&a, "mv1"), "SUCCEEDED", "{a:?}");
    assert_eq!(state_of(&a, "mv2"), "FAILED", "{a:?}");
    let mv2 = a.iter().find(|x| x["name"] == "mv2").expect("mv2");
    let msg = mv2["status_message"].as_str().unwrap_or("");
    assert!(msg.contains("compute-002 is down"), "{msg}");
    assert_eq!(host_of(home.path(), VM1), "compute-002");
    assert_eq!(host_of(home.path(), VM5), "compute-003");
    let show = run(sextant(home.path()).args(["sim", "show"]));
    assert!(
        show.stdout.contains("simulated clock 120s"),
        "{}",
        show.stdout
    );
}

#[test]
fn a_bad_faults_file_is_refused_and_the_cloud_is_untouched() {
    let home = seeded("actions:\n  - {name: x}\n");
    let before = run(sextant(home.path()).args(["sim", "show", "--format", "json"])).stdout;
    let f = write_file(
        &home.path().join("in"),
        "bad.yaml",
        "hosts:\n  - {host: compute-009, at: 10s, becomes: down}\n",
    );
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--faults"])
        .arg(&f)
        .arg("--from")
        .arg(repo_root().join("examples/clusters/small.yaml")));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.yaml")
            && out.stderr.contains("line 2")
            && out.stderr.contains("hosts[0].host")
            && out.stderr.contains("compute-009"),
        "{}",
        out.stderr
    );
    let after = run(sextant(home.path()).args(["sim", "show", "--format", "json"])).stdout;
    assert_eq!(before, after);
}
