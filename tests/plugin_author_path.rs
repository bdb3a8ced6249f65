//! The plugin author's path, as docs/plugin-guide.md tells it: drop the
//! built plugin-hello in, bind it to an action type, import a plan that
//! uses it, run the plan. The guide is read, not retold: the files it shows
//! must be the files in examples/plugin-hello/, and the commands it marks
//! `<!-- run -->` are run, in order, in one shell, as a reader would.
//!
//! Markers in the guide (HTML comments, invisible when rendered), each on
//! the line before a fenced block:
//! - `<!-- file: PATH -->`: the block is the file PATH of the repository;
//! - `<!-- run -->`: a shell block this test runs (from a copy of
//!   examples/plugin-hello, the .so built by scripts/test standing in for
//!   section 3's `cargo build --release`);
//! - `<!-- output -->`: text that the commands run so far print, verbatim.

use serde_json::Value;
use sextant_e2e::*;
use std::path::{Path, PathBuf};

/// A fenced block of the guide that follows a marker.
struct Block {
    marker: String,
    /// 1-based line of the marker, for messages.
    line: usize,
    text: String,
}

fn guide_text() -> String {
    std::fs::read_to_string(repo_root().join("docs/plugin-guide.md")).expect("read the guide")
}

/// Every marked block of the guide, in order.
fn marked_blocks(guide: &str) -> Vec<Block> {
    let lines: Vec<&str> = guide.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(marker) = l
            .strip_prefix("<!-- ")
            .and_then(|m| m.strip_suffix(" -->"))
            .filter(|m| *m == "run" || *m == "output" || m.starts_with("file: "))
        {
            let fence = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                fence.starts_with("```"),
                "docs/plugin-guide.md:{}: marker <!-- {marker} --> is not followed by a fenced block",
                i + 1
            );
            let mut text = String::new();
            let mut j = i + 2;
            while j < lines.len() && lines[j] != "```" {
                text.push_str(lines[j]);
                text.push('\n');
                j += 1;
            }
            assert!(
                j < lines.len(),
                "docs/plugin-guide.md:{}: unclosed block",
                i + 2
            );
            out.push(Block {
                marker: marker.to_string(),
                line: i + 1,
                text,
            });
            i = j;
        }
        i += 1;
    }
    out
}

const EXAMPLE_FILES: [&str; 5] = [
    "examples/plugin-hello/Cargo.toml",
    "examples/plugin-hello/src/lib.rs",
    "examples/plugin-hello/src/tests.rs",
    "examples/plugin-hello/hello.yaml",
    "examples/plugin-hello/greetings-plan.yaml",
];

#[test]
fn every_file_the_plugin_guide_shows_is_the_file_in_examples_plugin_hello() {
    let blocks = marked_blocks(&guide_text());
    let mut shown = Vec::new();
    for b in &blocks {
        let Some(path) = b.marker.strip_prefix("file: ") else {
            continue;
        };
        let real = std::fs::read_to_string(repo_root().join(path))
            .unwrap_or_else(|e| panic!("docs/plugin-guide.md:{}: {path}: {e}", b.line));
        assert!(
            b.text == real,
            "docs/plugin-guide.md:{}: the block differs from {path}; copy the file into the guide",
            b.line
        );
        shown.push(path);
    }
    for f in EXAMPLE_FILES {
        assert!(shown.contains(&f), "the guide does not show {f}");
    }
}

/// A copy of examples/plugin-hello as a reader has it after section 3:
/// its files, and the built library where `cargo build --release` puts it.
fn built_example(root: &Path) -> PathBuf {
    let dir = root.join("plugin-hello");
    for f in EXAMPLE_FILES {
        let rel = f
            .strip_prefix("examples/plugin-hello/")
            .expect("under the example");
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(repo_root().join(f), &to).expect("copy");
    }
    populate(
        &dir.join("target/release"),
        &[&fixture("libplugin_hello.so")],
    );
    dir
}

/// Runs `script` with bash in `cwd`, in the environment of
/// [`sextant`]: HOME and the XDG directories in `home`, `sextant` on PATH.
fn bash(home: &Path, cwd: &Path, script: &str) -> Run {
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        profile_dir().to_str().expect("utf8")
    );
    run(std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("PATH", path)
        .env("LANG", "C")
        .env_remove("SEXTANT_PLUGIN_PATH")
        .env_remove("SEXTANT_ACTION_TYPE_PATH")
        .env_remove("SEXTANT_CONFIG")
        .env_remove("SEXTANT_DB")
        .env_remove("SEXTANT_LOG"))
}

/// `sextant` with the plugin directory of the guide.
fn sextant_after_guide(home: &Path) -> std::process::Command {
    let mut c = sextant(home);
    c.env(
        "SEXTANT_PLUGIN_PATH",
        home.join(".local/lib/sextant/plugins"),
    )
    .env_remove("SEXTANT_ACTION_TYPE_PATH")
    .env_remove("SEXTANT_DB");
    c
}

#[test]
fn the_plugin_guide_run_literally_imports_and_runs_the_greetings_plan() {
    let guide = guide_text();
    let blocks = marked_blocks(&guide);
    let script: String = blocks
        .iter()
        .filter(|b| b.marker == "run")
        .map(|b| b.text.as_str())
        .collect();
    for step in [
        "cp target/release/libplugin_hello.so",
        "sextant action-type validate hello.yaml",
        "sextant action-type register hello.yaml",
        "sextant action-type run hello",
        "sextant action-plan import greetings-plan.yaml",
        "sextant action-plan start \"$plan\" --wait",
        "sextant action list --plan",
        "sextant history --plan",
    ] {
        assert!(script.contains(step), "the guide no longer runs `{step}`");
    }

    let home = scratch();
    let cwd = built_example(home.path());
    let out = bash(
        home.path(),
        &cwd,
        &format!("set -euo pipefail\numask 022\n{script}"),
    );
    assert_eq!(
        out.status, 0,
        "the guide's commands failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let outputs: Vec<&Block> = blocks.iter().filter(|b| b.marker == "output").collect();
    assert!(!outputs.is_empty(), "the guide shows no output to check");
    for b in outputs {
        assert!(
            out.stdout.contains(&b.text),
            "docs/plugin-guide.md:{}: the commands do not print this:\n{}\nthey print:\n{}",
            b.line,
            b.text,
            out.stdout
        );
    }

    // The plan the guide imported, and what the guide says of it.
    let plans =
        run(sextant_after_guide(home.path()).args(["action-plan", "list", "--format", "json"]));
    assert_eq!(plans.status, 0, "{}", plans.stderr);
    let plans = plans.json();
    let plans = plans.as_array().expect("a list of plans");
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0]["state"], "SUCCEEDED", "{plans:?}");
    let uuid = plans[0]["uuid"].as_str().expect("uuid");
    let actions = run(sextant_after_guide(home.path())
        .args(["action", "list", "--plan", uuid, "--format", "json"]));
    assert_eq!(actions.status, 0, "{}", actions.stderr);
    let actions = actions.json();
    let by_name = |name: &str| -> Value {
        actions
            .as_array()
            .expect("a list of actions")
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no action {name} in {actions}"))
    };
    for (name, greeting) in [
        ("greet_ops", "Hello, ops!"),
        ("greet_back", "Hello, Hello, ops!!"),
    ] {
        let a = by_name(name);
        assert_eq!(a["state"], "SUCCEEDED", "{a}");
        assert_eq!(
            a["outputs"],
            serde_json::json!({ "greeting": greeting }),
            "{a}"
        );
        let said = format!("`{{\"greeting\": \"{greeting}\"}}`");
        assert!(
            guide.contains(&format!("`{name}`")) && guide.contains(&said),
            "the guide no longer says {name} outputs {said}"
        );
    }
    assert_eq!(
        by_name("greet_back")["parents"],
        serde_json::json!([by_name("greet_ops")["uuid"]])
    );
}

#[test]
fn an_import_whose_reference_names_no_ancestor_is_refused_and_stores_nothing() {
    let home = scratch();
    let cwd = built_example(home.path());
    // What section 5 of the guide sets up: the plugin and its action type.
    let setup = "set -euo pipefail\numask 022\n\
        mkdir -p ~/.local/lib/sextant/plugins\n\
        cp target/release/libplugin_hello.so ~/.local/lib/sextant/plugins/\n\
        SEXTANT_PLUGIN_PATH=~/.local/lib/sextant/plugins sextant action-type register hello.yaml\n";
    let out = bash(home.path(), &cwd, setup);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // The guide's plan, but greet_back no longer waits for greet_ops.
    let plan = std::fs::read_to_string(cwd.join("greetings-plan.yaml")).expect("read");
    let broken = plan.replace("parents: [greet_ops]", "parents: []");
    assert_ne!(broken, plan, "the example plan changed: update this test");
    let file = write_file(&cwd, "broken-plan.yaml", &broken);
    let before =
        run(sextant_after_guide(home.path()).args(["action-plan", "list", "--format", "json"]));
    let out = run(sextant_after_guide(home.path())
        .args(["action-plan", "import"])
        .arg(&file));
    assert_eq!(out.status, 2, "{}\n{}", out.stdout, out.stderr);
    for named in ["broken-plan.yaml", "greet_back", "greet_ops", "ancestor"] {
        assert!(out.stderr.contains(named), "{named} not in: {}", out.stderr);
    }
    let after =
        run(sextant_after_guide(home.path()).args(["action-plan", "list", "--format", "json"]));
    assert_eq!(before.stdout, after.stdout);
    assert_eq!(after.json(), serde_json::json!([]));
}
