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

/// What the store holds, as the operator's commands show it: the plans,
/// and the event log.
fn held(home: &Path) -> (Value, Value) {
    let out = run(sextant(home).args(["history", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    (plans(home), out.json())
}

/// A home holding one imported plan; its plans directory, and what it
/// holds.
fn home_with_a_plan() -> (Scratch, std::path::PathBuf, (Value, Value)) {
    let home = scratch();
    let dir = home.path().join("plans");
    let good = write_file(&dir, "good.yaml", &failing_parent("null"));
    let out = run(sextant(home.path())
        .args(["action-plan", "import"])
        .arg(&good));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let held = held(home.path());
    (home, dir, held)
}

/// Imports `text` as `dir/name` in `home`, which must refuse it: exit
/// status 2, nothing on stdout, the store holding what it held
/// (`before`). What it said on stderr.
fn refused(home: &Path, dir: &Path, name: &str, text: &str, before: &(Value, Value)) -> String {
    let f = write_file(dir, name, text);
    let out = run(sextant(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 2, "{name}: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
    assert_eq!(&held(home), before, "{name}: nothing stored");
    out.stderr
}

/// A plan whose first action fails, and a child of it, with the execution
/// rule `rule` (YAML, `null` for none).
fn failing_parent(rule: &str) -> String {
    format!(
        "id: A02\nexecution_rule: {rule}\nactions:\n\
         - {{id: a, action_type: nop, input_parameters: {{message: a, fail_execute: true}}}}\n\
         - {{id: b, action_type: nop, input_parameters: {{message: b}}, parents: [a]}}\n"
    )
}

/// The state of action `name` of `plan`.
fn state_of(home: &Path, plan: &str, name: &str) -> Value {
    let out = run(sextant(home).args(["action", "list", "--plan", plan, "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
        .map(|a| a["state"].clone())
        .unwrap_or(Value::Null)
}

/// Imports `text` as `name` and starts the plan (`start_args` added);
/// returns the plan and its child's state.
fn import_and_run(home: &Path, name: &str, text: &str, start_args: &[&str]) -> (String, Value) {
    let f = write_file(&home.join("plans"), name, text);
    let out = run(sextant(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 0, "{name}: {}", out.stderr);
    let plan = out.stdout.trim().to_string();
    let out = run(sextant(home)
        .args(["action-plan", "start", &plan, "--wait"])
        .args(start_args));
    assert_eq!(
        out.status, 1,
        "{name}: the plan fails: {}{}",
        out.stdout, out.stderr
    );
    let child = state_of(home, &plan, "b");
    (plan, child)
}

/// A top-level `execution_rule` (the one Watcher's applier vectors name)
/// was read past: the plan ran under the policy's rule whatever the file
/// said. It is now the plan's own rule, applied by `start` unless
/// `--execution-rule` overrides it; `null` is none (the policy's).
#[test]
fn an_imported_execution_rule_is_the_plans_own_unless_start_overrides_it() {
    let home = scratch();
    let h = home.path();
    // The default policy's rule, STRICT: the child of a failed action is
    // cancelled.
    let (_, child) = import_and_run(h, "none.yaml", &failing_parent("null"), &[]);
    assert_eq!(child, "CANCELLED");
    // ALWAYS from the file: the child runs.
    let (plan, child) = import_and_run(h, "always.yaml", &failing_parent("ALWAYS"), &[]);
    assert_eq!(child, "SUCCEEDED");
    let extra = home_db(h).open().plan_extra(&plan).expect("extra");
    assert_eq!(extra["execution_rule"], "ALWAYS", "{extra}");
    // The same in JSON.
    let json = json!({"execution_rule": "ALWAYS", "actions": [
        {"id": "a", "action_type": "nop", "input_parameters": {"message": "a", "fail_execute": true}},
        {"id": "b", "action_type": "nop", "input_parameters": {"message": "b"}, "parents": ["a"]}
    ]});
    let (_, child) = import_and_run(h, "always.json", &json.to_string(), &[]);
    assert_eq!(child, "SUCCEEDED");
    // --execution-rule overrides the file's.
    let (_, child) = import_and_run(
        h,
        "overridden.yaml",
        &failing_parent("ALWAYS"),
        &["--execution-rule", "STRICT"],
    );
    assert_eq!(child, "CANCELLED");
}

/// A rule that is not one, an `execution_rule` in an action (a plan has
/// one rule), or any key the format does not define: refused naming the
/// file, the line and the key (and in YAML its path); nothing stored.
#[test]
fn a_bad_execution_rule_or_an_unknown_key_in_an_import_is_refused_naming_where_and_stores_nothing()
{
    let (home, dir, before) = home_with_a_plan();
    for (name, text, place, key) in [
        (
            "rule.yaml",
            "actions:\n- {id: a, action_type: nop, input_parameters: {message: a}}\nexecution_rule: SOMETIMES\n",
            "rule.yaml: line 3 column",
            "execution_rule",
        ),
        (
            "rule.json",
            "{\"actions\": [{\"id\": \"a\", \"action_type\": \"nop\", \"input_parameters\": {\"message\": \"a\"}}],\n \"execution_rule\": \"SOMETIMES\"}\n",
            "rule.json: line 2 column",
            "execution_rule: unknown execution rule \"SOMETIMES\"",
        ),
        (
            "action-rule.yaml",
            "actions:\n- {id: a, action_type: nop, input_parameters: {message: a}}\n- id: b\n  action_type: nop\n  input_parameters: {message: b}\n  parents: [a]\n  execution_rule: ANY\n",
            "action-rule.yaml: line 7 column 3",
            "actions[1]: unknown field `execution_rule`",
        ),
        (
            "action-rule.json",
            "{\"actions\": [\n {\"id\": \"a\", \"action_type\": \"nop\", \"input_parameters\": {\"message\": \"a\"},\n  \"execution_rule\": \"ANY\"}]}\n",
            "action-rule.json: line 3",
            "actions[0]: unknown field `execution_rule`",
        ),
        (
            "unknown.yaml",
            "actions:\n- {id: a, action_type: nop, input_parameters: {message: a}}\nmax_workers: 2\n",
            "unknown.yaml: line 3 column 1",
            "unknown field `max_workers`",
        ),
    ] {
        let stderr = refused(home.path(), &dir, name, text, &before);
        assert!(
            stderr.contains(place) && stderr.contains(key),
            "{name}: names {place:?} and {key:?}: {stderr}"
        );
    }
}

/// A field of the wrong type in the third action: JSON names its path as
/// YAML does (`actions[2].parents`), with the line and column; exit 2,
/// nothing stored.
#[test]
fn a_bad_field_in_a_json_import_is_refused_naming_its_path_as_in_yaml() {
    let (home, dir, before) = home_with_a_plan();
    let json = "{\"actions\": [\n\
        {\"id\": \"a\", \"action_type\": \"nop\", \"input_parameters\": {\"message\": \"a\"}},\n\
        {\"id\": \"b\", \"action_type\": \"nop\", \"input_parameters\": {\"message\": \"b\"}},\n\
        {\"id\": \"c\", \"action_type\": \"nop\", \"input_parameters\": {\"message\": \"c\"}, \"parents\": \"b\"}\n]}\n";
    let yaml = "actions:\n\
        - {id: a, action_type: nop, input_parameters: {message: a}}\n\
        - {id: b, action_type: nop, input_parameters: {message: b}}\n\
        - {id: c, action_type: nop, input_parameters: {message: c}, parents: b}\n";
    for (name, text, place) in [
        ("bad.json", json, "bad.json: line 4 column"),
        ("bad.yaml", yaml, "bad.yaml: line 4 column"),
    ] {
        let stderr = refused(home.path(), &dir, name, text, &before);
        assert!(
            stderr.contains(place)
                && stderr.contains("actions[2].parents: invalid type: string \"b\""),
            "{name}: {stderr}"
        );
    }
}
