//! `sextant action-type …` through the built binary: the broken-definition
//! corpus, YAML-only types bound to `command` (a real process) and `http` (a
//! real server on 127.0.0.1), drop-in directories, register/unregister.

use serde_json::Value;
use sextant_e2e::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

fn types_named(doc: &Value) -> Vec<String> {
    doc["action_types"]
        .as_array()
        .expect("action_types")
        .iter()
        .map(|t| {
            format!(
                "{}@{}",
                t["name"].as_str().unwrap_or(""),
                t["version"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn every_broken_definition_is_refused_with_exit_2_naming_file_line_and_column() {
    let home = scratch();
    let corpus = repo_root().join("tests/fixtures/action-types/broken");
    // (file, line, words in the message)
    let expected: &[(&str, usize, &str)] = &[
        ("syntax_error.yaml", 0, ""),
        ("unknown_key.yaml", 4, "timeout_seconds"),
        ("duplicate_key.yaml", 8, "duplicate"),
        ("bad_semver.yaml", 2, "SemVer"),
        ("invalid_schema.yaml", 7, "JSON Schema"),
        ("undeclared_placeholder.yaml", 5, "reason"),
        ("wrong_field_type.yaml", 4, "bool"),
        ("unknown_handler.yaml", 3, "teleport"),
        ("with_does_not_fit_handler.yaml", 4, "argvv"),
    ];
    let on_disk = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(
        on_disk,
        expected.len(),
        "every corpus file has an expectation"
    );
    for (file, line, words) in expected {
        let path = corpus.join(file);
        let out = run(sextant(home.path())
            .args(["action-type", "validate"])
            .arg(&path));
        assert_eq!(out.status, 2, "{file}: {}{}", out.stdout, out.stderr);
        let prefix = format!("{}:", path.display());
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(first.starts_with(&prefix), "{file}: {first}");
        let pos: Vec<&str> = first[prefix.len()..].splitn(3, ':').collect();
        assert!(
            pos.len() == 3 && pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
            "{file}: no line:column in {first}"
        );
        if *line > 0 {
            assert_eq!(pos[0], line.to_string(), "{file}: {first}");
        }
        assert!(first.contains(words), "{file}: {first} lacks {words:?}");

        // The JSON form carries the same.
        let out = run(sextant(home.path())
            .args(["action-type", "validate", "--format", "json"])
            .arg(&path));
        assert_eq!(out.status, 2);
        let doc = out.json();
        assert_eq!(doc["valid"], false);
        assert!(doc["errors"][0]["line"].as_u64().is_some(), "{doc}");
    }
}

#[test]
fn shipped_types_are_listed_and_those_without_a_loaded_handler_are_flagged() {
    let home = scratch();
    let out = run(sextant(home.path()).args(["action-type", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    let names = types_named(&doc);
    for t in [
        "migrate",
        "resize",
        "change_nova_service_state",
        "change_node_power_state",
        "stop",
        "shelve",
        "delete",
        "volume_migrate",
        "nop",
        "sleep",
    ] {
        assert!(
            names.contains(&format!("{t}@1.0.0")),
            "{t} missing: {names:?}"
        );
    }
    let by_name = |n: &str| {
        doc["action_types"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == n))
            .cloned()
            .expect("listed")
    };
    assert_eq!(by_name("sleep")["handler_entry"], "sleep");
    assert_eq!(
        by_name("migrate")["handler_entry"],
        "sim.migrate",
        "the default driver is sim"
    );

    // Every shipped type validates against the loaded handlers.
    for entry in std::fs::read_dir(repo_root().join("action-types")).expect("dir") {
        let f = entry.expect("entry").path();
        let out = run(sextant(home.path())
            .args(["action-type", "validate"])
            .arg(&f));
        assert_eq!(out.status, 0, "{}: {}", f.display(), out.stderr);
    }
    // With another driver and no such handlers, the types are flagged.
    let cfg = write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        "drivers: [nova]\n",
    );
    let out = run(sextant(home.path()).args(["action-type", "list"]));
    assert!(out.stdout.contains("UNMAPPED"), "{}", out.stdout);
    let doc = run(sextant(home.path()).args(["action-type", "list", "--format", "json"])).json();
    let migrate = doc["action_types"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "migrate"))
        .cloned()
        .expect("migrate");
    assert!(migrate["handler_entry"].is_null());
    assert!(
        migrate["mapping_error"]
            .as_str()
            .unwrap_or("")
            .contains("nova.migrate"),
        "{migrate}"
    );
    let out = run(sextant(home.path())
        .args(["action-type", "validate"])
        .arg(repo_root().join("action-types/migrate.yaml")));
    assert_eq!(out.status, 2, "no handler is loaded for nova.migrate");
    assert!(out.stderr.contains("unknown handler"), "{}", out.stderr);
    std::fs::remove_file(cfg).expect("rm");

    let out =
        run(sextant(home.path()).args(["action-type", "show", "migrate@1.0.0", "--lang", "fr"]));
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("Migrer l'instance"), "{}", out.stdout);
    assert!(out.stdout.contains("\"pattern\""), "{}", out.stdout);
    let out = run(sextant(home.path()).args(["action-type", "show", "migrate@2.0.0"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("1.0.0"), "{}", out.stderr);
}

const ECHO_TYPE: &str = r#"
name: echo_arg
version: 1.0.0
display_name: Echo one argument
description: Prints its argument between angle brackets.
handler: command
with:
  argv: ["/usr/bin/printf", "<%s>", "{{ value }}"]
  timeout: 10s
parameters:
  type: object
  required: [value]
  additionalProperties: false
  properties:
    value: {type: string}
"#;

#[test]
fn a_command_type_runs_a_real_process_and_a_nasty_value_stays_one_argument() {
    let home = scratch();
    let dir = home.path().join("types");
    write_file(&dir, "echo_arg.yaml", ECHO_TYPE);
    write_file(
        &dir,
        "host_json.yaml",
        "name: host_json\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/usr/bin/printf\", '{\"host\": \"%s\", \"n\": 2}', \"{{ host }}\"]\nparameters:\n  type: object\n  properties:\n    host: {type: string}\noutputs:\n  type: object\n  required: [host]\n",
    );
    write_file(
        &dir,
        "fails.yaml",
        "name: fails\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/bin/ls\", \"/no/such/path/{{ p }}\"]\nparameters:\n  type: object\n  properties:\n    p: {type: string}\n",
    );
    write_file(
        &dir,
        "slow.yaml",
        "name: slow\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/bin/sleep\", \"30\"]\n  timeout: 300ms\n",
    );
    let cmd = || {
        let mut c = sextant(home.path());
        c.env("SEXTANT_ACTION_TYPE_PATH", &dir);
        c
    };
    let nasty = "a b; rm -rf / \"double\" 'single' $(whoami) `id` | cat > /tmp/x && echo *";
    let out = run(cmd()
        .args(["action-type", "run", "echo_arg", "--format", "json", "-p"])
        .arg(format!("value={nasty}")));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["state"], "SUCCEEDED");
    assert_eq!(
        doc["outputs"]["stdout"],
        format!("<{nasty}>"),
        "one argument, untouched"
    );

    let out = run(cmd().args([
        "action-type",
        "run",
        "host_json",
        "-p",
        "host=compute-7",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["outputs"]["host"], "compute-7");
    assert_eq!(doc["outputs"]["n"], 2);

    let out = run(cmd().args([
        "action-type",
        "run",
        "fails",
        "-p",
        "p=x",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 1);
    let doc = out.json();
    assert_eq!(doc["state"], "FAILED");
    let msg = doc["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("/no/such/path/x"),
        "stderr is in the status message: {msg}"
    );

    let t = std::time::Instant::now();
    let out = run(cmd().args(["action-type", "run", "slow", "--format", "json"]));
    assert_eq!(out.status, 1);
    assert!(
        out.json()["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("timed out")
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the process was killed at its timeout"
    );

    // Invalid parameters never reach the handler.
    let out = run(cmd().args(["action-type", "run", "echo_arg", "-p", "valu=1"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("echo_arg@1.0.0"), "{}", out.stderr);
}

/// A tiny HTTP server on 127.0.0.1: `/ok` answers 200 with JSON echoing the
/// request, `/teapot` 418, `/slow` waits before answering. Serves `n`
/// connections, then stops.
fn serve(n: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut len = 0usize;
            let mut auth = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                    break;
                }
                let lower = l.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-token:") {
                    auth = l["x-token:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).into_owned();
            seen.push(request_line.trim().to_string());
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let (status, text) = if path.starts_with("/ok") {
                let echo = serde_json::json!({"path": path, "token": auth, "body": body});
                ("200 OK", echo.to_string())
            } else if path.starts_with("/teapot") {
                ("418 I'm a teapot", "short and stout".to_string())
            } else {
                std::thread::sleep(Duration::from_secs(3));
                ("200 OK", "{}".to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        seen
    });
    (port, h)
}

#[test]
fn an_http_type_calls_a_real_server_with_timeout_and_unexpected_status() {
    let home = scratch();
    let dir = home.path().join("types");
    write_file(
        &dir,
        "notify.yaml",
        r#"
name: notify
version: 1.0.0
handler: http
with:
  method: POST
  url: "http://127.0.0.1:{{ port }}/{{ path }}"
  headers: {x-token: "{{ token }}"}
  body: '{"host": "{{ host }}"}'
  expected_status: [200]
  timeout: "{{ timeout }}"
parameters:
  type: object
  required: [port, path, host]
  properties:
    port: {type: integer}
    path: {type: string}
    host: {type: string}
    token: {type: string, default: "t0k"}
    timeout: {type: string, default: "5s"}
"#,
    );
    let (port, server) = serve(3);
    let cmd = || {
        let mut c = sextant(home.path());
        c.env("SEXTANT_ACTION_TYPE_PATH", &dir);
        c
    };
    let p = format!("port={port}");
    let out = run(cmd().args([
        "action-type",
        "run",
        "notify",
        "-p",
        &p,
        "-p",
        "path=ok",
        "-p",
        "host=c1",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["outputs"]["path"], "/ok");
    assert_eq!(doc["outputs"]["token"], "t0k");
    assert_eq!(doc["outputs"]["body"], "{\"host\": \"c1\"}");

    let out = run(cmd().args([
        "action-type",
        "run",
        "notify",
        "-p",
        &p,
        "-p",
        "path=teapot",
        "-p",
        "host=c1",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 1);
    let msg = out.json()["status_message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("418") && msg.contains("short and stout"),
        "{msg}"
    );

    let t = std::time::Instant::now();
    let out = run(cmd().args([
        "action-type",
        "run",
        "notify",
        "-p",
        &p,
        "-p",
        "path=slow",
        "-p",
        "host=c1",
        "-p",
        "timeout=500ms",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 1);
    let msg = out.json()["status_message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg.contains("timed out"), "{msg}");
    assert!(
        t.elapsed() < Duration::from_millis(2900),
        "gave up at the timeout, not the answer"
    );
    let seen = server.join().expect("server");
    assert_eq!(seen.len(), 3);
    assert!(seen[0].starts_with("POST /ok "), "{seen:?}");
}

#[test]
fn a_yaml_dropped_into_the_action_type_path_appears_in_the_next_list() {
    let home = scratch();
    let dir = home.path().join("dropin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let list = || {
        run(sextant(home.path())
            .env("SEXTANT_ACTION_TYPE_PATH", &dir)
            .args(["action-type", "list", "--format", "json"]))
        .json()
    };
    assert!(!types_named(&list()).contains(&"echo_arg@1.0.0".to_string()));
    write_file(&dir, "echo_arg.yaml", ECHO_TYPE);
    assert!(types_named(&list()).contains(&"echo_arg@1.0.0".to_string()));
    // A second version lives beside the first; the latest is the default.
    write_file(
        &dir,
        "echo_arg2.yaml",
        &ECHO_TYPE.replace("version: 1.0.0", "version: 1.1.0"),
    );
    let names = types_named(&list());
    assert!(
        names.contains(&"echo_arg@1.0.0".to_string())
            && names.contains(&"echo_arg@1.1.0".to_string())
    );
    let out = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &dir)
        .args(["action-type", "show", "echo_arg", "--format", "json"]));
    assert_eq!(out.json()["version"], "1.1.0");
}

#[test]
fn register_is_atomic_refuses_conflicts_and_unregister_removes() {
    let home = scratch();
    let src = write_file(&home.path().join("src"), "echo_arg.yaml", ECHO_TYPE);
    let registered = home
        .path()
        .join("data/sextant/action-types/echo_arg@1.0.0.yaml");
    let out = run(sextant(home.path())
        .args(["action-type", "register"])
        .arg(&src));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(registered.exists());
    assert_eq!(
        std::fs::read_to_string(&registered).expect("read"),
        ECHO_TYPE
    );
    // Same content: fine, unchanged.
    let out = run(sextant(home.path())
        .args(["action-type", "register", "--format", "json"])
        .arg(&src));
    assert_eq!(out.status, 0);
    assert_eq!(out.json()["changed"], false);
    // Other content under the same name@version: refused, nothing changes.
    let changed = write_file(
        &home.path().join("src"),
        "echo_arg_changed.yaml",
        &ECHO_TYPE.replace("angle brackets", "chevrons"),
    );
    let out = run(sextant(home.path())
        .args(["action-type", "register"])
        .arg(&changed));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("already registered"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&registered).expect("read"),
        ECHO_TYPE
    );
    // An invalid definition is refused and writes nothing.
    let broken = repo_root().join("tests/fixtures/action-types/broken/bad_semver.yaml");
    let out = run(sextant(home.path())
        .args(["action-type", "register"])
        .arg(&broken));
    assert_eq!(out.status, 2);
    let files: Vec<_> = std::fs::read_dir(registered.parent().expect("dir"))
        .expect("ls")
        .collect();
    assert_eq!(
        files.len(),
        1,
        "no temporary or partial file is left behind"
    );

    let out = run(sextant(home.path()).args(["action-type", "list", "--format", "json"]));
    assert!(types_named(&out.json()).contains(&"echo_arg@1.0.0".to_string()));
    // Built-in types cannot be unregistered.
    let out = run(sextant(home.path()).args(["action-type", "unregister", "nop@1.0.0"]));
    assert_eq!(out.status, 2);
    let out = run(sextant(home.path()).args(["action-type", "unregister", "echo_arg@1.0.0"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!registered.exists());
    assert!(!Path::new(&registered).exists());
}

#[test]
fn the_generic_handler_examples_in_the_dsl_reference_are_valid() {
    let home = scratch();
    let doc = std::fs::read_to_string(repo_root().join("docs/action-types.md")).expect("docs");
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap_or("");
        if !yaml.starts_with("name:")
            || !(yaml.contains("handler: command") || yaml.contains("handler: http"))
        {
            continue;
        }
        let f = write_file(&home.path().join("ex"), &format!("ex{checked}.yaml"), yaml);
        let out = run(sextant(home.path())
            .args(["action-type", "validate"])
            .arg(&f));
        assert_eq!(out.status, 0, "{yaml}\n{}", out.stderr);
        checked += 1;
    }
    assert_eq!(checked, 2, "one command and one http example");
}
