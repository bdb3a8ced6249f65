//! Policies through the built binary: a policy that names an action type,
//! a parameter or a planner that does not exist is refused where it is
//! loaded, at its file, line and column, before anything is stored;
//! `policy list | show | validate`; and an audit keeps the content of its
//! policy, so that later runs (in `serve`, from another directory, after
//! the file changed) plan with what the operator chose.

use serde_json::{Value, json};
use sextant::store::Store;
use sextant_e2e::*;
use std::path::Path;

/// Audits, plans and events in the store: what a refused command must not
/// change.
fn store_counts(db: &Path) -> (usize, usize, usize) {
    let s = Store::open(db).expect("open");
    (
        s.audits().expect("audits").len(),
        s.plans(None).expect("plans").len(),
        s.events(None, 0).expect("events").len(),
    )
}

fn db(home: &Path) -> std::path::PathBuf {
    home.join("data/sextant/sextant.db")
}

/// Each misspelling: the policy text, where the fault is, and words the
/// message must have.
const MISSPELT: &[(&str, &str, (usize, usize), &str)] = &[
    (
        "weights-type",
        "planner: weight\nweights: {nop: 70, slep: 40}\nparallelization: {nop: 1}\n",
        (2, 20),
        "weights: unknown action type \"slep\"",
    ),
    (
        "parallelization-type",
        "planner: weight\nparallelization:\n  nop: 1\n  noop: 2\n",
        (4, 3),
        "parallelization: unknown action type \"noop\"",
    ),
    (
        "recovery-type",
        "recovery:\n  default: {retries: 1}\n  migrat: {retries: 2}\n",
        (3, 3),
        "did you mean migrate?",
    ),
    (
        "rule-type",
        "rules:\n  - name: r\n    first: {action_type: change_nova_service_state}\n    then: {action_type: migrat}\n",
        (4, 25),
        "rules[0] (r).then.action_type: unknown action type \"migrat\"",
    ),
    (
        "where",
        "rules:\n  - name: r\n    first:\n      action_type: change_nova_service_state\n      where: {stat: disabled}\n    then: {action_type: migrate}\n",
        (5, 15),
        "\"stat\" is not a parameter of action type change_nova_service_state",
    ),
    (
        "when_equal",
        "rules:\n  - name: r\n    first: {action_type: change_nova_service_state}\n    then: {action_type: migrate}\n    when_equal: {first: resource_name, then: source_host}\n",
        (5, 46),
        "\"source_host\" is not a parameter of action type migrate",
    ),
    (
        "per",
        "limits:\n  - {action_type: migrate, max: 10}\n  - {action_type: migrate, per: source_nod, max: 2}\n",
        (3, 33),
        "did you mean source_node?",
    ),
    (
        "limit-type",
        "limits:\n  - {action_type: volume_migrat, max: 4}\n",
        (2, 19),
        "unknown action type \"volume_migrat\"",
    ),
    (
        "planner",
        "name: mine\nplanner: weigth\n",
        (2, 10),
        "no planner named \"weigth\" is loaded",
    ),
];

#[test]
fn each_misspelt_policy_is_refused_at_its_line_and_column_and_stores_nothing() {
    let home = scratch();
    assert_eq!(run(sextant(home.path()).args(["sync"])).status, 0);
    let before = store_counts(&db(home.path()));
    for (name, text, (line, column), words) in MISSPELT {
        let file = write_file(home.path(), &format!("{name}.yaml"), text);
        let at = format!("{}:{line}:{column}: ", file.display());
        // Where an audit loads it.
        let out = run(sextant(home.path())
            .args(["audit", "create", "-g", "dummy", "-s", "dummy", "--policy"])
            .arg(&file));
        assert_eq!(out.status, 2, "{name}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&at),
            "{name}: {} lacks {at}",
            out.stderr
        );
        assert!(
            out.stderr.contains(words),
            "{name}: {} lacks {words}",
            out.stderr
        );
        assert_eq!(
            store_counts(&db(home.path())),
            before,
            "{name}: the store changed"
        );
        // A CONTINUOUS audit, which runs later in `serve`, is refused too.
        let out = run(sextant(home.path())
            .args([
                "audit",
                "create",
                "-t",
                "CONTINUOUS",
                "-i",
                "60",
                "-g",
                "dummy",
            ])
            .arg("--policy")
            .arg(&file));
        assert_eq!(out.status, 2, "{name}: {}", out.stderr);
        assert_eq!(store_counts(&db(home.path())), before);
        // `policy validate` says the same.
        let out = run(sextant(home.path()).args(["policy", "validate"]).arg(&file));
        assert_eq!(out.status, 2, "{name}: {}", out.stdout);
        assert!(
            out.stderr.contains(&at) && out.stderr.contains(words),
            "{name}: {}",
            out.stderr
        );
        let out = run(sextant(home.path())
            .args(["policy", "validate", "--format", "json"])
            .arg(&file));
        assert_eq!(out.status, 2);
        let doc = out.json();
        assert_eq!(doc["valid"], false);
        assert_eq!(
            (&doc["errors"][0]["line"], &doc["errors"][0]["column"]),
            (&json!(line), &json!(column)),
            "{name}: {doc}"
        );
    }
    // A stateless plan loads it the same way.
    let bad = home.path().join("where.yaml");
    let input = write_file(
        home.path(),
        "input.json",
        &json!({"planner": "rules", "config": {"policy": bad}, "solution": []}).to_string(),
    );
    let out = run(sextant(home.path()).args(["plan", "--input"]).arg(&input));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{}:5:15: ", bad.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn policy_list_show_and_validate() {
    let home = scratch();
    let dir = home.path().join("policies");
    write_file(
        &dir,
        "fast.yaml",
        "description: Many at once.\nplanner: weight\nweights: {migrate: 1}\nparallelization: {migrate: 50}\n",
    );
    write_file(&dir, "broken.yaml", "planner: rulez\n");
    let listed = |home: &Path| {
        let out = run(sextant(home)
            .env("SEXTANT_POLICY_PATH", &dir)
            .args(["policy", "list", "--format", "json"]));
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.json()
    };
    let list = listed(home.path());
    let by_name = |n: &str| -> Value {
        list.as_array()
            .and_then(|l| l.iter().find(|p| p["name"] == n).cloned())
            .unwrap_or_else(|| panic!("{n} not listed: {list}"))
    };
    assert_eq!(by_name("default")["planner"], "rules");
    assert_eq!(by_name("default")["valid"], true);
    assert_eq!(by_name("watcher-compat")["planner"], "weight");
    assert_eq!(by_name("watcher-compat")["valid"], true);
    assert_eq!(by_name("fast")["description"], "Many at once.");
    assert_eq!(by_name("broken")["valid"], false);
    assert!(
        by_name("broken")["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken.yaml:1:10: planner")),
        "{list}"
    );
    // The table names every policy, and flags the broken one.
    let out = run(sextant(home.path())
        .env("SEXTANT_POLICY_PATH", &dir)
        .args(["policy", "list"]));
    assert!(
        out.stdout.contains("fast") && out.stdout.contains("INVALID"),
        "{}",
        out.stdout
    );

    // `show` gives every key, defaults filled in.
    let out = run(sextant(home.path()).args(["policy", "show", "default", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let p = out.json();
    assert_eq!(p["planner"], "rules");
    assert_eq!(p["abort_on_cancel"], true);
    assert_eq!(p["recovery"]["migrate"]["retries"], 2);
    let out = run(sextant(home.path())
        .env("SEXTANT_POLICY_PATH", &dir)
        .args(["policy", "show", "fast", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let p = out.json();
    assert_eq!(
        (
            &p["execution_rule"],
            &p["simulate"],
            &p["parallelization"]["migrate"]
        ),
        (&json!("STRICT"), &json!(true), &json!(50.0))
    );
    let out = run(sextant(home.path())
        .env("SEXTANT_POLICY_PATH", &dir)
        .args(["policy", "show", "broken"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("broken.yaml:1:10"), "{}", out.stderr);
    let out = run(sextant(home.path()).args(["policy", "show", "defualt"]));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("did you mean default?"),
        "{}",
        out.stderr
    );

    // Both shipped policies are valid against the shipped action types.
    for name in ["default", "watcher-compat"] {
        let file = repo_root().join("policies").join(format!("{name}.yaml"));
        let out = run(sextant(home.path())
            .args(["policy", "validate", "--format", "json"])
            .arg(&file));
        assert_eq!(out.status, 0, "{name}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.json()["policy"], name);
    }
}

/// The plan an audit made, with the policy stored with it.
fn plan_policy(db: &Path, plan: &str) -> (String, Value) {
    let (planner, policy): (String, String) = raw_db(db)
        .query_row(
            "SELECT planner, policy FROM action_plans WHERE uuid = ?1",
            [plan],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("plan");
    let policy: Value = serde_json::from_str(&policy).expect("json");
    (planner, policy["policy"].clone())
}

const MINE: &str = "name: mine\nplanner: weight\nweights: {sleep: 9, nop: 5}\nparallelization: {sleep: 1, nop: 2}\n";

#[test]
fn an_audit_plans_with_the_policy_it_was_created_with_from_any_directory() {
    let home = scratch();
    let db = db(home.path());
    let created_in = home.path().join("created-in");
    let elsewhere = home.path().join("elsewhere");
    let file = write_file(&created_in, "mine.yaml", MINE);
    write_file(&elsewhere, "README", "another directory\n");

    // A CONTINUOUS audit names the policy by a relative path.
    let out = run(sextant(home.path()).current_dir(&created_in).args([
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
        "--policy",
        "mine.yaml",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json();
    let uuid = audit["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(
        audit["policy"],
        json!(file.display().to_string()),
        "kept by absolute path"
    );
    assert_eq!(audit["policy_content"]["planner"], "weight");
    assert_eq!(audit["policy_content"]["weights"]["sleep"], 9.0);

    // The file changes (a planner that would refuse nothing, other weights),
    // then `serve` runs the audit from another directory.
    std::fs::write(&file, "name: mine\nplanner: rules\n").expect("edit");
    let out =
        run(sextant(home.path())
            .current_dir(&elsewhere)
            .args(["serve", "--exit-after", "1.5"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = run(sextant(home.path()).args(["audit", "show", &uuid, "--format", "json"])).json();
    assert_eq!(a["state"], "ONGOING", "{a}");
    let plan = a["action_plan"].as_str().expect("a plan").to_string();
    let (planner, policy) = plan_policy(&db, &plan);
    assert_eq!(planner, "weight");
    assert_eq!(policy["weights"], json!({"sleep": 9.0, "nop": 5.0}));
    // Weight order: the sleep (9) before the nops (5).
    let acts =
        run(sextant(home.path()).args(["action", "list", "--plan", &plan, "--format", "json"]))
            .json();
    let types: Vec<&str> = acts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["action_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["sleep", "nop", "nop"], "{acts}");
}

#[test]
fn a_plan_is_applied_with_its_audits_policy_after_the_file_is_gone() {
    let home = scratch();
    let db = db(home.path());
    let created_in = home.path().join("created-in");
    let elsewhere = home.path().join("elsewhere");
    let file = write_file(&created_in, "mine.yaml", MINE);
    write_file(&elsewhere, "README", "another directory\n");
    let out = run(sextant(home.path()).current_dir(&created_in).args([
        "audit",
        "create",
        "-g",
        "dummy",
        "-s",
        "dummy",
        "-p",
        "para1=1",
        "--policy",
        "./mine.yaml",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.json()["action_plan"]
        .as_str()
        .expect("plan")
        .to_string();
    assert_eq!(plan_policy(&db, &plan).0, "weight");
    // Editing, then removing, the file changes nothing in the plan.
    std::fs::write(&file, "planner: rules\nweights: {nop: 1}\n").expect("edit");
    assert_eq!(plan_policy(&db, &plan).1["weights"]["sleep"], 9.0);
    std::fs::remove_file(&file).expect("rm");
    let out = run(sextant(home.path()).current_dir(&elsewhere).args([
        "action-plan",
        "start",
        &plan,
        "--wait",
    ]));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let s = Store::open(&db).expect("open");
    assert_eq!(
        s.plan(&plan).expect("plan").state,
        sextant::states::PlanState::Succeeded
    );
    assert_eq!(plan_policy(&db, &plan).1["name"], "mine");
}
