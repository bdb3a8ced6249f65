//! What the command line prints: quiet exits into closed pipes, no colour
//! codes in redirected logs, tables that fit the width, each error once,
//! and `--format json` on commands that change state.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

/// Imports a plan of `n` nop actions; returns its uuid.
fn import(home: &Path, n: usize) -> String {
    let actions: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("a{i}"), "action_type": "nop", "input_parameters": {"message": "m"}}))
        .collect();
    let f = write_file(
        &home.join("plans"),
        &format!("p{n}.json"),
        &json!({ "actions": actions }).to_string(),
    );
    let out = run(sextant(home).args(["action-plan", "import"]).arg(&f));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// Runs `args` with stdout a pipe whose reader reads one line, then closes
/// it; returns the exit status and stderr.
fn into_closed_pipe(home: &Path, args: &[&str]) -> (i32, String) {
    let mut child = sextant(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("read");
        assert!(!first.is_empty(), "nothing printed before the pipe closed");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn history_into_closed_pipe_exits_quietly() {
    let home = scratch();
    // 2,000 events: far more than a pipe's 64 KiB in every format.
    import(home.path(), 2_000);
    for format in ["table", "json", "yaml"] {
        let (status, stderr) = into_closed_pipe(home.path(), &["history", "--format", format]);
        assert_eq!(status, 0, "--format {format}: {stderr}");
        assert!(!stderr.contains("panicked"), "--format {format}: {stderr}");
        assert_eq!(stderr, "", "--format {format}");
    }
}

#[test]
fn a_snapshot_written_into_a_closed_pipe_exits_quietly() {
    // `sim generate` serializes straight to stdout, not through a line.
    let home = scratch();
    let (status, stderr) = into_closed_pipe(
        home.path(),
        &["sim", "generate", "--nodes", "2000", "--instances", "20000"],
    );
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn logs_into_redirected_stderr_have_no_colour_codes() {
    let home = scratch();
    let out = run(sextant(home.path())
        .args(["-v", "serve", "--exit-after", "0.5"])
        .env_remove("NO_COLOR"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("serve started"),
        "expected log lines at -v: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escape codes in redirected stderr: {:?}",
        out.stderr
    );
}

#[test]
fn tables_fit_the_columns_given_and_keep_full_width_into_a_pipe() {
    let home = scratch();
    let full = run(sextant(home.path())
        .args(["plugins", "list"])
        .env_remove("COLUMNS"));
    assert_eq!(full.status, 0, "{}", full.stderr);
    let widest = full.stdout.lines().map(|l| l.chars().count()).max();
    assert!(widest > Some(80), "{}", full.stdout);
    for width in [60usize, 80] {
        let out = run(sextant(home.path())
            .args(["plugins", "list"])
            .env("COLUMNS", width.to_string()));
        assert_eq!(out.status, 0, "{}", out.stderr);
        for line in out.stdout.lines() {
            assert!(
                line.chars().count() <= width,
                "wider than {width}: {line:?}\n{}",
                out.stdout
            );
        }
        // Wrapped, not cut: every handler is still listed.
        for name in ["nop", "sleep", "command", "http"] {
            assert!(out.stdout.contains(name), "{}", out.stdout);
        }
    }
}

#[test]
fn an_error_is_printed_once() {
    let home = scratch();
    let cases: [(&[&str], &str); 3] = [
        (
            &["action-plan", "show", "nonexistent"],
            "action plan \"nonexistent\" not found",
        ),
        // Was printed twice: the error, then its source with the same text.
        (
            &["action-type", "run", "nope"],
            "unknown action type \"nope\"",
        ),
        (&["action", "show", "nope"], "action \"nope\" not found"),
    ];
    for (args, message) in cases {
        let out = run(sextant(home.path()).args(args));
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.matches(message).count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn commands_that_change_state_print_json_with_format_json() {
    let home = scratch();
    let plan = import(home.path(), 2);
    let actions =
        run(sextant(home.path()).args(["action", "list", "--plan", &plan, "--format", "json"]));
    let first = actions.json()[0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();

    let out = run(sextant(home.path()).args([
        "action", "skip", &first, "--reason", "not now", "--format", "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json(), json!({"action": first, "state": "SKIPPED"}));

    let out = run(sextant(home.path()).args(["action-plan", "cancel", &plan, "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.json(),
        json!({"action_plan": plan, "state": "CANCELLED"})
    );
}

#[test]
fn a_refused_action_type_file_is_reported_once_per_command() {
    let home = scratch();
    let types = home.path().join("types");
    write_file(&types, "broken.yaml", "name: broken\nbogus: 1\n");
    let f = write_file(
        &home.path().join("plans"),
        "one.json",
        &json!({"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}}]})
            .to_string(),
    );
    let import = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &types)
        .args(["action-plan", "import"])
        .arg(&f));
    assert_eq!(import.status, 0, "{}", import.stderr);
    // Read twice (for the import, then to open the store), it was
    // reported twice.
    assert_eq!(
        import.stderr.matches("broken.yaml:2:1").count(),
        1,
        "{}",
        import.stderr
    );
    let plan = import.stdout.trim().to_string();
    let start = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &types)
        .args(["action-plan", "start", &plan, "--wait"]));
    assert_eq!(start.status, 0, "{}", start.stderr);
    assert_eq!(
        start.stderr.matches("broken.yaml:2:1").count(),
        1,
        "{}",
        start.stderr
    );
}

/// The JSON type of a value, null left out (absent and null are alike).
fn kind(v: &Value) -> Option<&'static str> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some("boolean"),
        Value::Number(_) => Some("number"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("array"),
        Value::Object(_) => Some("object"),
    }
}

#[test]
fn a_field_has_one_json_type_across_commands() {
    let home = scratch();
    let h = home.path();
    let (a, b) = (import(h, 3), import(h, 2));
    let json = |args: &[&str]| {
        let out = run(sextant(h).args(args).args(["--format", "json"]));
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        (args.join(" "), out.json())
    };
    let docs = vec![
        json(&["action-plan", "start", &a]),
        json(&["action-plan", "start", &b, "--wait"]),
        json(&["action-plan", "list"]),
        json(&["action-plan", "show", &a]),
        json(&["action-plan", "show", &b]),
        json(&["action", "list", "--plan", &b]),
        json(&["history", "--plan", &b]),
    ];
    // Each field, at the top of a document or of the objects in its
    // top-level lists, has one type wherever it appears.
    let mut seen: std::collections::BTreeMap<String, (&'static str, String)> = Default::default();
    let mut clashes = Vec::new();
    let mut note = |key: &str, v: &Value, from: &str| {
        let Some(k) = kind(v) else { return };
        match seen.get(key) {
            Some((t, first)) if *t != k => {
                clashes.push(format!("{key}: {t} in `{first}`, {k} in `{from}`"))
            }
            Some(_) => {}
            None => {
                seen.insert(key.to_string(), (k, from.to_string()));
            }
        }
    };
    for (from, doc) in &docs {
        let items: Vec<&Value> = match doc {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            for (key, v) in item.as_object().into_iter().flatten() {
                note(key, v, from);
                for inner in v.as_array().into_iter().flatten() {
                    for (k2, v2) in inner.as_object().into_iter().flatten() {
                        note(k2, v2, from);
                    }
                }
            }
        }
    }
    assert!(clashes.is_empty(), "{clashes:#?}");
    // The two that clashed before: a plan's uuid and its list of actions.
    assert_eq!(seen.get("action_plan").map(|s| s.0), Some("string"));
    assert_eq!(seen.get("actions").map(|s| s.0), Some("array"));
    assert_eq!(seen.get("action_count").map(|s| s.0), Some("number"));
}
