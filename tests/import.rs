//! `sextant action-plan import` of a large DAG whose actions read other
//! actions' outputs: references to ancestors are accepted, others refused
//! with the action named, and a refused file stores nothing. At 50,000
//! actions the former check (every action's ancestors by scanning the edge
//! list) did not finish in a test's time.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::path::Path;

/// Deterministic xorshift64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const N: usize = 50_000;

/// Two interleaved chains, even and odd actions: each action waits for the
/// one two before it and for up to one more of its own parity among the
/// previous thousand. Every fifth action reads the outputs of its chain's
/// first action (shared by 10,000 actions), of its parent, and of an
/// action 600 before it (an ancestor through the chain).
fn dag() -> Vec<Value> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..N)
        .map(|i| {
            let mut parents = Vec::new();
            if i >= 2 {
                parents.push(i - 2);
                let back = 2 * (1 + rng.below(500));
                if back < i && back != 2 && rng.below(2) == 0 {
                    parents.push(i - back);
                }
            }
            let message = if i % 5 == 0 && i >= 600 {
                format!(
                    "{{{{ actions.a{}.outputs.x }}}} {{{{ actions.a{}.outputs.x }}}} {{{{ actions.a{}.outputs.x }}}}",
                    i % 2,
                    i - 2,
                    i - 600
                )
            } else {
                format!("m{i}")
            };
            json!({
                "id": format!("a{i}"),
                "action_type": "nop",
                "input_parameters": {"message": message},
                "parents": parents.iter().map(|p| format!("a{p}")).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn import(home: &Path, name: &str, actions: &[Value]) -> Run {
    let f = write_file(
        &home.join("plans"),
        name,
        &json!({ "actions": actions }).to_string(),
    );
    run(sextant(home).args(["action-plan", "import"]).arg(&f))
}

fn plans(home: &Path) -> Value {
    let out = run(sextant(home).args(["action-plan", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
}

#[test]
fn a_large_dag_with_references_imports_and_refuses_non_ancestors_by_name() {
    let home = scratch();
    let actions = dag();

    // Valid: every reference names an ancestor.
    let out = import(home.path(), "ok.json", &actions);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.stdout.trim().to_string();
    let listed =
        run(sextant(home.path()).args(["action", "list", "--plan", &plan, "--format", "json"]));
    assert_eq!(listed.status, 0, "{}", listed.stderr);
    let stored = listed.json();
    let stored = stored.as_array().expect("actions");
    assert_eq!(stored.len(), N);
    let uuid_of: std::collections::HashMap<&str, &str> = stored
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or(""),
                a["uuid"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for a in stored {
        let name = a["name"].as_str().expect("name");
        let i: usize = name[1..].parse().expect("index");
        let want: Vec<&str> = actions[i]["parents"]
            .as_array()
            .expect("parents")
            .iter()
            .map(|p| uuid_of[p.as_str().unwrap_or("")])
            .collect();
        assert_eq!(a["parents"], json!(want), "parents of {name}");
        assert_eq!(
            a["input_parameters"]["message"],
            actions[i]["input_parameters"]["message"]
        );
    }
    // The table names each action's parents (looked up once per plan: a
    // scan per parent made this quadratic).
    let table = run(sextant(home.path())
        .args(["action", "list", "--plan", &plan])
        .env_remove("COLUMNS"));
    assert_eq!(table.status, 0, "{}", table.stderr);
    for i in [2, 25_001, N - 1] {
        let name = format!("a{i}");
        let row = table
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}"));
        let parents: Vec<&str> = actions[i]["parents"]
            .as_array()
            .expect("parents")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(row.ends_with(&parents.join(", ")), "{row}");
    }
    let before = plans(home.path());
    assert_eq!(before.as_array().map(Vec::len), Some(1));

    // An odd action reads the even chain's first action: not an ancestor,
    // though it ranks below it. Refused, naming both; nothing stored.
    let mut bad = actions.clone();
    bad[30_001]["input_parameters"]["message"] = json!("{{ actions.a0.outputs.x }}");
    // A later refusal in the file is not the one reported.
    bad[40_001]["input_parameters"]["message"] = json!("{{ actions.a40003.outputs.x }}");
    let out = import(home.path(), "bad.json", &bad);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.json: action a30001: its parameters use the outputs of a0, which is not one of its ancestors"),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), before);

    // A reference to a later action of its own chain: refused.
    let mut bad = actions.clone();
    bad[20_000]["input_parameters"]["message"] = json!("{{ actions.a20002.outputs.x }}");
    let out = import(home.path(), "later.json", &bad);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("action a20000: its parameters use the outputs of a20002"),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), before);
}

#[test]
fn duplicate_ids_are_refused_naming_the_id() {
    let home = scratch();
    let out = import(
        home.path(),
        "dup.json",
        &[
            json!({"id": "x", "action_type": "nop", "input_parameters": {"message": "m"}}),
            json!({"id": "y", "action_type": "nop", "input_parameters": {"message": "m"}}),
            json!({"id": "x", "action_type": "nop", "input_parameters": {"message": "m"}}),
        ],
    );
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("dup.json: actions #1 and #3 have the same id x"),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), json!([]));
}

/// An empty id was imported: an action with no name, which no `action
/// show`, parent or context reference can name.
#[test]
fn an_empty_id_is_refused_naming_the_action() {
    let home = scratch();
    let out = import(
        home.path(),
        "empty.json",
        &[
            json!({"id": "x", "action_type": "nop", "input_parameters": {"message": "m"}}),
            json!({"id": "", "action_type": "nop", "input_parameters": {"message": "m"}}),
        ],
    );
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("empty.json: action #2 has an empty id"),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), json!([]));
}

#[test]
fn a_json_file_with_an_unknown_field_names_its_line_and_column() {
    let home = scratch();
    let f = write_file(
        &home.path().join("plans"),
        "typo.json",
        "{\"actions\": [\n  {\"id\": \"x\", \"action_typ\": \"nop\"}\n]}\n",
    );
    let out = run(sextant(home.path()).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("typo.json: line 2 column") && out.stderr.contains("action_typ"),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), json!([]));
}
