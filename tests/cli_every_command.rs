//! Every command of the CLI, taken from its own definition (`sextant
//! help-markdown`), against two contracts of the design brief (section 9):
//! - a command that prints exits quietly (status 0, no panic) when its
//!   standard output is a pipe whose reader is gone, in every format;
//! - a command a script may call takes `--format json` and then prints one
//!   JSON document on standard output.
//!
//! A command added to the CLI fails these tests until it is listed here,
//! either with the arguments it runs with or with why it is left out.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A home with something in it for every command: the small simulated
/// cluster, an audit and its plan, an imported plan.
struct Fixture {
    home: Home,
    /// The plan of a ONESHOT server consolidation audit (RECOMMENDED).
    audit_plan: String,
    /// That audit.
    audit: String,
    /// Makes names unique across the cases that create something.
    serial: Cell<u32>,
}

impl Fixture {
    fn new() -> Self {
        let home = Home::new();
        let seed = home.run(&[
            "sim",
            "init",
            "--time-scale",
            "0",
            "--from",
            &repo_root()
                .join("examples/clusters/small.yaml")
                .display()
                .to_string(),
        ]);
        assert_eq!(seed.status, 0, "{}", seed.stderr);
        let out = home.run(&[
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "-s",
            "basic",
            "--format",
            "json",
        ]);
        assert_eq!(out.status, 0, "{}", out.stderr);
        let a = out.json();
        let audit_plan = a["action_plan"].as_str().expect("a plan").to_string();
        let audit = a["uuid"].as_str().expect("uuid").to_string();
        Self {
            home,
            audit_plan,
            audit,
            serial: Cell::new(0),
        }
    }

    fn next(&self) -> u32 {
        self.serial.set(self.serial.get() + 1);
        self.serial.get()
    }

    /// `sextant ARGS`, which must succeed; its JSON output.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.home.run(&[args, &["--format", "json"]].concat());
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        out.json()
    }

    /// A new RECOMMENDED plan of two nop actions.
    fn plan(&self) -> String {
        let n = self.next();
        self.home.import_json(
            &format!("plan{n}.json"),
            &json!({"actions": [
                {"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}},
                {"id": "b", "action_type": "nop", "input_parameters": {"message": "m"}, "parents": ["a"]}
            ]}),
        )
    }

    /// A new audit of `kind` (ONESHOT ends SUCCEEDED, CONTINUOUS stays
    /// PENDING with nothing serving it).
    fn audit(&self, kind: &str) -> String {
        let mut args = vec![
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "-s",
            "basic",
            "--type",
            kind,
        ];
        if kind == "CONTINUOUS" {
            args.extend(["--interval", "3600"]);
        }
        self.json(&args)["uuid"].as_str().expect("uuid").to_string()
    }

    /// A new audit template; its name.
    fn template(&self) -> String {
        let name = format!("template-{}", self.next());
        self.json(&["audit-template", "create", &name, "server_consolidation"]);
        name
    }

    /// A new action type file, not registered; its path and name.
    fn type_file(&self) -> (PathBuf, String) {
        let name = format!("hello_{}", self.next());
        let f = write_file(
            &self.home.path().join("new-types"),
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n  properties:\n    message: {{type: string}}\n"
            ),
        );
        (f, name)
    }
}

/// The arguments of a case, made anew for each run (a command that
/// changes state gets a fresh object each time).
type Args = fn(&Fixture) -> Vec<String>;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every command that prints, with the arguments it runs with.
fn cases() -> Vec<(&'static str, Args)> {
    vec![
        ("plugins list", |_| strings(&["plugins", "list"])),
        ("plugins show", |_| strings(&["plugins", "show", "nop"])),
        ("plugins check", |_| {
            strings(&["plugins", "check", &core_plugin().display().to_string()])
        }),
        ("action-type list", |_| strings(&["action-type", "list"])),
        ("action-type show", |_| {
            strings(&["action-type", "show", "migrate"])
        }),
        ("action-type validate", |_| {
            let f = repo_root().join("action-types/migrate.yaml");
            strings(&["action-type", "validate", &f.display().to_string()])
        }),
        ("action-type register", |f| {
            let (file, _) = f.type_file();
            strings(&["action-type", "register", &file.display().to_string()])
        }),
        ("action-type unregister", |f| {
            let (file, name) = f.type_file();
            f.json(&["action-type", "register", &file.display().to_string()]);
            strings(&["action-type", "unregister", &format!("{name}@1.0.0")])
        }),
        ("action-type run", |_| {
            strings(&["action-type", "run", "nop", "-p", "message=hi"])
        }),
        ("demo", |_| strings(&["demo"])),
        ("sync", |_| strings(&["sync"])),
        ("policy list", |_| strings(&["policy", "list"])),
        ("policy show", |_| strings(&["policy", "show", "default"])),
        ("policy validate", |_| {
            let f = repo_root().join("policies/default.yaml");
            strings(&["policy", "validate", &f.display().to_string()])
        }),
        ("goal list", |_| strings(&["goal", "list"])),
        ("goal show", |_| {
            strings(&["goal", "show", "server_consolidation"])
        }),
        ("strategy list", |_| strings(&["strategy", "list"])),
        ("strategy show", |_| strings(&["strategy", "show", "basic"])),
        ("audit-template create", |f| {
            let name = format!("created-{}", f.next());
            strings(&["audit-template", "create", &name, "server_consolidation"])
        }),
        ("audit-template list", |_| {
            strings(&["audit-template", "list"])
        }),
        ("audit-template update", |f| {
            let t = f.template();
            strings(&["audit-template", "update", &t, "-d", "changed"])
        }),
        ("audit-template show", |f| {
            let t = f.template();
            strings(&["audit-template", "show", &t])
        }),
        ("audit-template delete", |f| {
            let t = f.template();
            strings(&["audit-template", "delete", &t])
        }),
        ("audit create", |_| {
            strings(&[
                "audit",
                "create",
                "-g",
                "server_consolidation",
                "-s",
                "basic",
            ])
        }),
        ("audit list", |_| strings(&["audit", "list"])),
        ("audit update", |f| {
            let a = f.audit("CONTINUOUS");
            strings(&["audit", "update", &a, "--interval", "600"])
        }),
        ("audit show", |f| strings(&["audit", "show", &f.audit])),
        ("audit trigger", |f| {
            let a = f.audit("EVENT");
            strings(&["audit", "trigger", &a])
        }),
        ("audit cancel", |f| {
            let a = f.audit("CONTINUOUS");
            strings(&["audit", "cancel", &a])
        }),
        ("audit delete", |f| {
            let a = f.audit("ONESHOT");
            strings(&["audit", "delete", &a])
        }),
        ("sim init", |_| {
            let f = repo_root().join("examples/clusters/small.yaml");
            strings(&[
                "sim",
                "init",
                "--time-scale",
                "0",
                "--from",
                &f.display().to_string(),
            ])
        }),
        ("sim show", |_| strings(&["sim", "show"])),
        ("sim generate", |_| {
            strings(&["sim", "generate", "--nodes", "20", "--instances", "100"])
        }),
        ("datamodel show", |_| strings(&["datamodel", "show"])),
        ("plan", |f| {
            let input = write_file(
                f.home.path(),
                "plan-input.json",
                &json!({"planner": "weight", "solution": [
                    {"id": "a", "action_type": "nop", "input_parameters": {}},
                    {"id": "b", "action_type": "sleep", "input_parameters": {}}
                ]})
                .to_string(),
            );
            strings(&["plan", "--input", &input.display().to_string()])
        }),
        ("action-plan list", |_| strings(&["action-plan", "list"])),
        ("action-plan show", |f| {
            strings(&["action-plan", "show", &f.audit_plan])
        }),
        ("action-plan import", |f| {
            let n = f.next();
            let file = write_file(
                &f.home.path().join("plans"),
                &format!("import{n}.json"),
                &json!({"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}}]})
                    .to_string(),
            );
            strings(&["action-plan", "import", &file.display().to_string()])
        }),
        ("action-plan start", |f| {
            let p = f.plan();
            strings(&["action-plan", "start", &p, "--wait"])
        }),
        ("action-plan cancel", |f| {
            let p = f.plan();
            strings(&["action-plan", "cancel", &p])
        }),
        ("action-plan delete", |f| {
            let p = f.plan();
            strings(&["action-plan", "delete", &p])
        }),
        ("action-plan retry", |f| {
            let p = f.plan();
            f.json(&["action-plan", "cancel", &p]);
            strings(&["action-plan", "retry", &p])
        }),
        ("action-plan resume", |f| {
            // A queued plan: resume runs it here.
            let p = f.plan();
            f.json(&["action-plan", "start", &p]);
            strings(&["action-plan", "resume"])
        }),
        ("action-plan graph", |f| {
            strings(&["action-plan", "graph", &f.audit_plan])
        }),
        ("action list", |f| {
            strings(&["action", "list", "--plan", &f.audit_plan])
        }),
        ("action show", |f| {
            let actions = f.json(&["action", "list", "--plan", &f.audit_plan]);
            strings(&["action", "show", actions[0]["uuid"].as_str().expect("uuid")])
        }),
        ("action skip", |f| {
            let p = f.plan();
            let actions = f.json(&["action", "list", "--plan", &p]);
            strings(&["action", "skip", actions[0]["uuid"].as_str().expect("uuid")])
        }),
        ("history", |_| strings(&["history"])),
        ("history purge", |_| {
            strings(&["history", "purge", "--before", "30d"])
        }),
        ("notifications status", |_| {
            strings(&["notifications", "status"])
        }),
        ("db migrate", |_| strings(&["db", "migrate"])),
        ("db copy", |f| {
            // A directory of its own: the simulated cloud goes beside it.
            let dir = f.home.path().join(format!("copy-{}", f.next()));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let to = dir.join("sextant.db").display().to_string();
            strings(&[
                "db",
                "copy",
                "--from",
                &home_db(f.home.path()).url(),
                "--to",
                &to,
            ])
        }),
        ("service list", |_| strings(&["service", "list"])),
        ("completions", |_| strings(&["completions", "bash"])),
        ("man", |_| strings(&["man"])),
        ("help-markdown", |_| strings(&["help-markdown"])),
    ]
}

/// Commands that print no JSON, and why.
const NOT_JSON: &[(&str, &str)] = &[
    (
        "action-plan graph",
        "a drawing (`--format dot|mermaid`); the DAG as data is `action list --format json` (parents)",
    ),
    ("completions", "a shell script for the shell named"),
    ("man", "the man page, roff"),
    ("help-markdown", "docs/cli.md, markdown"),
];

/// Commands not run here, and why.
const NOT_RUN: &[(&str, &str)] = &[(
    "serve",
    "a service that runs until it is stopped; it logs on stderr and prints nothing (tests/serve_lifecycle.rs)",
)];

/// The commands the CLI defines that do something (not a group that only
/// names its subcommands): the `## sextant …` sections of `help-markdown`
/// whose usage line does not require a `<COMMAND>`.
fn defined_commands() -> Vec<String> {
    let out = run(Command::new(sextant_bin()).arg("help-markdown"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let mut found = Vec::new();
    for section in out.stdout.split("\n## sextant").skip(1) {
        let name = section.lines().next().unwrap_or_default().trim();
        let usage = section
            .lines()
            .find(|l| l.starts_with("Usage: "))
            .unwrap_or_default();
        if !usage.contains("<COMMAND>") && !name.is_empty() {
            found.push(name.to_string());
        }
    }
    assert!(found.len() > 40, "{found:?}");
    found
}

#[test]
fn every_command_is_listed_here() {
    let listed: Vec<&str> = cases()
        .iter()
        .map(|c| c.0)
        .chain(NOT_RUN.iter().map(|c| c.0))
        .collect();
    let missing: Vec<String> = defined_commands()
        .into_iter()
        .filter(|c| !listed.contains(&c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "commands to add to cases() (or NOT_RUN, with why): {missing:?}"
    );
}

/// Runs `args` with standard output a pipe whose read end is already
/// closed, so that the first write fails (EPIPE), whatever the output's
/// size; returns the status and stderr.
fn into_closed_pipe(home: &Home, args: &[String]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = home
        .cmd()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run sextant");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_into_a_closed_pipe_exits_quietly_in_every_format() {
    let f = Fixture::new();
    let mut failures = Vec::new();
    for (name, args) in cases() {
        let formats: &[&[&str]] = if NOT_JSON.iter().any(|n| n.0 == name) {
            &[&[]]
        } else {
            &[&[], &["--format", "json"], &["--format", "yaml"]]
        };
        for format in formats {
            let argv = [args(&f), strings(format)].concat();
            let (status, stderr) = into_closed_pipe(&f.home, &argv);
            if status != 0 || stderr.contains("panicked") || stderr.contains("Broken pipe") {
                failures.push(format!("{argv:?}: status {status}: {stderr}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_command_a_script_calls_prints_one_json_document_with_format_json() {
    let f = Fixture::new();
    let mut failures = Vec::new();
    for (name, args) in cases() {
        if NOT_JSON.iter().any(|n| n.0 == name) {
            continue;
        }
        let argv = [args(&f), strings(&["--format", "json"])].concat();
        let out = run(f.home.cmd().args(&argv));
        if out.status != 0 {
            failures.push(format!("{argv:?}: status {}: {}", out.status, out.stderr));
        } else if let Err(e) = serde_json::from_str::<Value>(&out.stdout) {
            failures.push(format!(
                "{argv:?}: not one JSON document ({e}):\n{}",
                out.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `action-plan delete` had no `--format`; `action-plan resume` with no
/// plan printed a sentence when there was nothing to resume, and one JSON
/// document per plan when there were several.
#[test]
fn delete_and_resume_print_one_json_document() {
    let f = Fixture::new();
    let p = f.plan();
    let deleted = f.json(&["action-plan", "delete", &p]);
    assert_eq!(deleted[0]["uuid"], p.as_str(), "{deleted}");
    assert_eq!(deleted[0]["state"], "DELETED", "{deleted}");
    assert_eq!(deleted.as_array().map(Vec::len), Some(1), "{deleted}");

    assert_eq!(f.json(&["action-plan", "resume"]), json!([]));
    let (a, b) = (f.plan(), f.plan());
    f.json(&["action-plan", "start", &a]);
    f.json(&["action-plan", "start", &b]);
    let resumed = f.json(&["action-plan", "resume"]);
    let mut uuids: Vec<&str> = resumed
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["uuid"].as_str().expect("uuid"))
        .collect();
    uuids.sort_unstable();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort_unstable();
    assert_eq!(uuids, want, "{resumed}");
    for o in resumed.as_array().into_iter().flatten() {
        assert_eq!(o["state"], "SUCCEEDED", "{o}");
    }
    // Named, a plan is still one object.
    let c = f.plan();
    f.json(&["action-plan", "start", &c]);
    let one = f.json(&["action-plan", "resume", &c]);
    assert_eq!(one["uuid"], c.as_str(), "{one}");
}
