//! `sextant demo`: the main job on the simulated cloud, start to finish.

use serde_json::json;
use sextant_e2e::*;

#[test]
fn the_demo_consolidates_the_small_cluster() {
    let home = scratch();
    let out = run(sextant(home.path()).args(["demo", "--format", "json"]));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let d = out.json();
    assert_eq!(d["nodes_in_use_before"], 4);
    assert_eq!(d["nodes_in_use_after"], 1);
    assert_eq!(d["migrations"], 4);
    assert_eq!(d["plan_state"], "SUCCEEDED");
    assert_eq!(d["nodes_over_capacity"], json!([]));
    // The demo keeps its own state: the user's database is untouched.
    assert!(!home.path().join("data/sextant/sextant.db").exists());
    assert!(home.path().join("data/sextant/demo/sextant.db").exists());
    // The human form says the same.
    let out = run(sextant(home.path()).args(["demo"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Nodes in use: 4 -> 1 (3 released), 4 migrations."),
        "{}",
        out.stdout
    );
}

#[test]
fn after_consolidating_the_medium_cluster_no_node_is_over_capacity_and_the_efficacy_matches() {
    let home = scratch();
    let out = run(sextant(home.path())
        .args(["demo", "--format", "json", "--cluster"])
        .arg(repo_root().join("examples/clusters/medium.yaml")));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let d = out.json();
    assert_eq!(d["plan_state"], "SUCCEEDED");
    assert_eq!(d["nodes_over_capacity"], json!([]));
    let indicator = |n: &str| {
        d["efficacy_indicators"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == n))
            .map(|i| i["value"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    let before = d["nodes_in_use_before"].as_u64().unwrap_or(0);
    let after = d["nodes_in_use_after"].as_u64().unwrap_or(0);
    assert!(after < before, "{d}");
    assert_eq!(indicator("released_compute_nodes_count"), before - after);
    assert_eq!(
        indicator("instance_migrations_count"),
        d["migrations"].as_u64().unwrap_or(0)
    );
    assert_eq!(indicator("compute_nodes_count"), 100);
    // Watcher's global efficacy: released / compute nodes × 100, in %.
    let ratio = &d["global_efficacy"][0];
    assert_eq!(
        (&ratio["name"], &ratio["unit"]),
        (&json!("released_nodes_ratio"), &json!("%"))
    );
    let want = (before - after) as f64 / 100.0 * 100.0;
    assert!(
        (ratio["value"].as_f64().unwrap_or(-1.0) - want).abs() < 1e-9,
        "{ratio}"
    );
}
