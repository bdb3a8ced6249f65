//! Bad input through the built binary (issue 20 items 3, 6 and 11): huge
//! durations and sizes, NaN and empty snapshots, oversized files, unknown
//! YAML tags, a read-only database, and store errors printed once. Each
//! refusal exits 2 naming the file and the line, column or entry at fault,
//! and leaves the store or the simulated cloud exactly as it was.

use serde_json::Value;
use sextant_e2e::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn small() -> PathBuf {
    repo_root().join("examples/clusters/small.yaml")
}

fn vector(name: &str) -> PathBuf {
    repo_root().join("tests/vectors/watcher-17.0.0").join(name)
}

const HUGE_TYPE: &str = "name: slowpoke\nversion: 1.0.0\nhandler: nop\nestimated_duration: 1e300\n";

fn plans(home: &Path) -> Value {
    let out = run(sextant(home).args(["action-plan", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
}

fn import(home: &Path, file: &Path) -> Run {
    run(sextant(home).args(["action-plan", "import"]).arg(file))
}

fn sim_show(home: &Path) -> Value {
    let out = run(sextant(home).args(["sim", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
}

fn seeded() -> Scratch {
    let home = scratch();
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--from"])
        .arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    home
}

#[test]
fn huge_estimated_duration_is_refused_with_location() {
    let home = scratch();
    let file = write_file(&home.path().join("in"), "slowpoke.yaml", HUGE_TYPE);
    for cmd in ["validate", "register"] {
        let out = run(sextant(home.path()).args(["action-type", cmd]).arg(&file));
        assert_eq!(out.status, 2, "{cmd}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("{}:4:1: estimated_duration", file.display())),
            "{cmd}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("366 days"), "{cmd}: {}", out.stderr);
    }
    // Nothing was registered.
    let registered = home.path().join("data/sextant/action-types");
    assert!(
        std::fs::read_dir(&registered).map_or(true, |mut d| d.next().is_none()),
        "register wrote something"
    );
}

#[test]
fn invalid_action_type_file_does_not_break_goal_list() {
    let home = scratch();
    let dir = home.path().join("types");
    let bad = write_file(&dir, "slowpoke.yaml", HUGE_TYPE);
    for args in [
        &["goal", "list"][..],
        &["audit", "list"],
        &["action-type", "list"],
        &["action-plan", "list"],
    ] {
        let out = run(sextant(home.path())
            .env("SEXTANT_ACTION_TYPE_PATH", &dir)
            .args(args));
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&bad.display().to_string()) && out.stderr.contains("WARN"),
            "{args:?} warns naming the file: {}",
            out.stderr
        );
    }
    // serve starts, and stops at its --exit-after.
    let out = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &dir)
        .args(["serve", "--exit-after", "0.2"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
}

#[test]
fn invalid_action_type_dropped_in_while_serve_runs_does_not_strand_queued_plans() {
    let home = scratch();
    let dir = home.path().join("types");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = import(home.path(), &vector("A01_chain_all_ok.yaml"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let uuid = out.stdout.trim().to_string();
    let mut serve = sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &dir)
        .args(["serve", "--exit-after", "8"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    std::thread::sleep(Duration::from_millis(1500));
    write_file(&dir, "slowpoke.yaml", HUGE_TYPE);
    let out = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &dir)
        .args(["action-plan", "start", &uuid]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let state = || {
        run(sextant(home.path()).args(["action-plan", "show", &uuid, "--format", "json"]))
            .json()["state"]
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(8);
    while state() != "SUCCEEDED" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = serve.wait().expect("serve exits");
    assert_eq!(state(), "SUCCEEDED", "the queued plan ran");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn huge_policy_timeout_is_refused_and_the_plan_kept() {
    let home = scratch();
    let out = import(home.path(), &vector("A01_chain_all_ok.yaml"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let uuid = out.stdout.trim().to_string();
    let before = plans(home.path());
    for (text, at) in [
        ("recovery:\n  default:\n    timeout: 1e300\n", ":3:5:"),
        (
            "recovery:\n  migrate:\n    backoff: {initial: 1s, max: 99999999h}\n",
            ":3:",
        ),
    ] {
        let policy = write_file(&home.path().join("p"), "huge.yaml", text);
        let out = run(sextant(home.path())
            .args(["action-plan", "start", &uuid, "--wait", "--policy"])
            .arg(&policy));
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{}{at}", policy.display())),
            "{}",
            out.stderr
        );
        assert_eq!(plans(home.path()), before);
    }
}

#[test]
fn webhook_queue_is_bounded() {
    let home = scratch();
    for (sink, what) in [
        (
            "{type: webhook, url: \"http://127.0.0.1:9/h\", queue: 1000000000}",
            "queue",
        ),
        (
            "{type: webhook, url: \"http://127.0.0.1:9/h\", timeout: .inf}",
            "finite",
        ),
        (
            "{type: webhook, url: \"http://127.0.0.1:9/h\", retries: 4000000000}",
            "retries",
        ),
    ] {
        let config = write_file(
            &home.path().join("c"),
            "config.yaml",
            &format!("notifications:\n  - {{type: log}}\n  - {sink}\n"),
        );
        let started = Instant::now();
        let out = run(sextant(home.path()).arg("--config").arg(&config).args([
            "serve",
            "--exit-after",
            "0",
        ]));
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("{}: line 3 column 5", config.display()))
                && out.stderr.contains(what),
            "{}",
            out.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // The largest queue accepted is not allocated up front.
    let config = write_file(
        &home.path().join("c"),
        "config.yaml",
        "notifications:\n  - {type: webhook, url: \"http://127.0.0.1:9/h\", queue: 100000, timeout: 1s}\n",
    );
    let out = run(sextant(home.path()).arg("--config").arg(&config).args([
        "serve",
        "--exit-after",
        "0.2",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
}

#[test]
fn exit_after_and_time_scale_are_bounded() {
    let home = seeded();
    let before = sim_show(home.path());
    for v in ["1e300", "-1", "NaN", "inf", "400d"] {
        let out = run(sextant(home.path()).args(["serve", &format!("--exit-after={v}")]));
        assert_eq!(out.status, 2, "{v}: {}", out.stderr);
        assert!(out.stderr.contains("--exit-after"), "{v}: {}", out.stderr);
    }
    for v in ["1e300", "-1", "NaN", "inf", "1001"] {
        let out = run(sextant(home.path())
            .args(["sim", "init", &format!("--time-scale={v}"), "--from"])
            .arg(small()));
        assert_eq!(out.status, 2, "{v}: {}", out.stderr);
        assert!(out.stderr.contains("--time-scale"), "{v}: {}", out.stderr);
    }
    assert_eq!(sim_show(home.path()), before);
}

#[test]
fn snapshot_with_nan_metric_is_refused_and_cloud_kept() {
    let home = seeded();
    let before = sim_show(home.path());
    let node = "{uuid: n1, hostname: h1, vcpus: 4, memory: 4096, disk: 10";
    for (text, named) in [
        (
            format!("nodes:\n  - {node}, metrics: {{host_cpu_usage: .nan}}}}\n"),
            "node h1: metric host_cpu_usage is NaN",
        ),
        (
            format!("nodes:\n  - {node}, metrics: {{host_cpu_usage: [[0, 1.0], [60, .inf]]}}}}\n"),
            "node h1: metric host_cpu_usage point 1",
        ),
        (
            format!(
                "nodes:\n  - {node}}}\nstorage_pools:\n  - {{name: p1, total_capacity_gb: .nan, free_capacity_gb: 1}}\n"
            ),
            "storage pool p1: total_capacity_gb",
        ),
        (
            format!(
                "nodes:\n  - {node}}}\nstorage_pools:\n  - {{name: p1, total_capacity_gb: 10, free_capacity_gb: -1}}\n"
            ),
            "storage pool p1: free_capacity_gb",
        ),
    ] {
        let file = write_file(&home.path().join("s"), "nan.yaml", &text);
        let out = run(sextant(home.path())
            .args(["sim", "init", "--from"])
            .arg(&file));
        assert_eq!(out.status, 2, "{text}: {}", out.stderr);
        assert!(
            out.stderr.contains(&file.display().to_string()) && out.stderr.contains(named),
            "{text}: {}",
            out.stderr
        );
        assert_eq!(sim_show(home.path()), before, "{text}");
    }
}

#[test]
fn empty_snapshot_refused_unless_allowed() {
    let home = seeded();
    let before = sim_show(home.path());
    for text in ["", "{}\n", "nodes: []\ninstances: []\n"] {
        let file = write_file(&home.path().join("s"), "empty.yaml", text);
        let out = run(sextant(home.path())
            .args(["sim", "init", "--from"])
            .arg(&file));
        assert_eq!(out.status, 2, "{text:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&file.display().to_string())
                && out.stderr.contains("--allow-empty"),
            "{text:?}: {}",
            out.stderr
        );
        assert_eq!(sim_show(home.path()), before);
    }
    let file = write_file(&home.path().join("s"), "empty.yaml", "{}\n");
    let out = run(sextant(home.path())
        .args(["sim", "init", "--allow-empty", "--from"])
        .arg(&file));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let after = sim_show(home.path());
    assert_eq!(after["nodes"].as_array().map(Vec::len), Some(0), "{after}");
}

#[test]
fn oversized_action_type_file_refused() {
    let home = scratch();
    let dir = home.path().join("types");
    // 2 MiB: a valid type padded with a long description.
    let big = write_file(
        &dir,
        "big.yaml",
        &format!(
            "name: big\nversion: 1.0.0\nhandler: nop\ndescription: {}\n",
            "x".repeat(2 * 1024 * 1024)
        ),
    );
    let started = Instant::now();
    let out = run(sextant(home.path())
        .env("SEXTANT_ACTION_TYPE_PATH", &dir)
        .args(["action-type", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&big.display().to_string()) && out.stderr.contains("1048576"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("\"big\""),
        "the big type is not listed"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    for cmd in ["validate", "register"] {
        let out = run(sextant(home.path()).args(["action-type", cmd]).arg(&big));
        assert_eq!(out.status, 2, "{cmd}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{}:1:1:", big.display()))
                && out.stderr.contains("more than the 1048576 bytes accepted"),
            "{cmd}: {}",
            out.stderr
        );
    }
    assert!(
        !home
            .path()
            .join("data/sextant/action-types/big@1.0.0.yaml")
            .exists()
    );
}

#[test]
fn yaml_tags_refused() {
    let home = seeded();
    let cloud = sim_show(home.path());
    let out = import(home.path(), &vector("A01_chain_all_ok.yaml"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let stored = plans(home.path());

    // An action type.
    let t = write_file(
        &home.path().join("in"),
        "tagged.yaml",
        "name: tagged\nversion: 1.0.0\nhandler: nop\ndescription: !include secret.txt\n",
    );
    let out = run(sextant(home.path())
        .args(["action-type", "validate"])
        .arg(&t));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{}:4:14: YAML tag !include", t.display())),
        "{}",
        out.stderr
    );

    // A snapshot: the cloud is kept.
    let s = write_file(
        &home.path().join("in"),
        "tagged-snapshot.yaml",
        "nodes:\n  - {uuid: n1, hostname: !!binary aDE=, vcpus: 4, memory: 4096, disk: 10}\n",
    );
    let out = run(sextant(home.path()).args(["sim", "init", "--from"]).arg(&s));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: line 2 column 26: YAML tag !!binary",
            s.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(sim_show(home.path()), cloud);

    // A plan import: nothing stored.
    let p = write_file(
        &home.path().join("in"),
        "tagged-plan.yaml",
        "actions:\n  - id: a\n    action_type: nop\n    input_parameters: !include params.yaml\n",
    );
    let out = import(home.path(), &p);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: line 4 column 23: YAML tag !include",
            p.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), stored);

    // A policy and the config file.
    let pol = write_file(
        &home.path().join("in"),
        "tagged-policy.yaml",
        "planner: !foo rules\n",
    );
    let uuid = stored[0]["uuid"].as_str().expect("uuid").to_string();
    let out = run(sextant(home.path())
        .args(["action-plan", "start", &uuid, "--wait", "--policy"])
        .arg(&pol));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{}:1:10: YAML tag !foo", pol.display())),
        "{}",
        out.stderr
    );
    assert_eq!(plans(home.path()), stored);
    // An audit scope: no template is created.
    let scope = write_file(
        &home.path().join("in"),
        "scope.yaml",
        "- availability_zones: [{name: az1}]\n- exclude: !include more.yaml\n",
    );
    let out = run(sextant(home.path())
        .args(["audit-template", "create", "t", "dummy", "--scope"])
        .arg(&scope));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: line 2 column 12: YAML tag !include",
            scope.display()
        )),
        "{}",
        out.stderr
    );
    let out = run(sextant(home.path()).args(["audit-template", "list", "--format", "json"]));
    assert_eq!(out.json(), serde_json::json!([]), "{}", out.stdout);
    let cfg = write_file(
        &home.path().join("in"),
        "config.yaml",
        "plugin_dirs: !env PATH\n",
    );
    let out = run(sextant(home.path())
        .arg("--config")
        .arg(&cfg)
        .args(["goal", "list"]));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: line 1 column 14: YAML tag !env",
            cfg.display()
        )),
        "{}",
        out.stderr
    );
}

/// Whether this process runs as root (which ignores file permissions).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command that cannot write what root wrote: as `nobody` when running
/// as root, else as the user (for whom the permissions already hold).
fn unprivileged(mut c: Command) -> Command {
    if running_as_root() {
        c.uid(65534).gid(65534);
    }
    c
}

#[test]
fn read_only_database_can_be_listed() {
    let home = scratch();
    let out = import(home.path(), &vector("A01_chain_all_ok.yaml"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let uuid = out.stdout.trim().to_string();
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--from"])
        .arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let cloud = sim_show(home.path());
    let listed = plans(home.path());
    let db_dir = home.path().join("data/sextant");
    let db = db_dir.join("sextant.db");
    let sim_db = db_dir.join("sim.db");
    let bytes = std::fs::read(&db).expect("db");
    let sim_bytes = std::fs::read(&sim_db).expect("sim.db");
    // The data directories are readable by all; the database and its
    // directory by none for writing.
    for d in [home.path().join("data"), db_dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for f in [&db, &sim_db] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    }
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");

    let as_reader = |args: &[&str]| run(unprivileged(sextant(home.path())).args(args));
    let out = as_reader(&["action-plan", "list", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json(), listed);
    let out = as_reader(&["sim", "show", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json(), cloud);
    for args in [
        &["action-plan", "show", &uuid][..],
        &["action", "list", "--plan", &uuid],
        &["goal", "list"],
        &["audit", "list"],
        &["history", "--plan", &uuid],
    ] {
        let out = as_reader(args);
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
    }
    // A write fails, saying why once, and changes nothing.
    let out = run(unprivileged(sextant(home.path()))
        .args(["action-plan", "import"])
        .arg(vector("A01_chain_all_ok.yaml")));
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .matches("attempt to write a readonly database")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&db.display().to_string()),
        "{}",
        out.stderr
    );
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(
        std::fs::read(&db).expect("db"),
        bytes,
        "the database was written"
    );
    assert_eq!(
        std::fs::read(&sim_db).expect("sim.db"),
        sim_bytes,
        "sim.db was written"
    );
    assert_eq!(plans(home.path()), listed);
}

#[test]
fn store_error_cause_printed_once() {
    let home = scratch();
    let db = write_file(
        &home.path().join("d"),
        "garbage.db",
        &"this is not a database ".repeat(100),
    );
    let out = run(sextant(home.path())
        .arg("--db")
        .arg(&db)
        .args(["action-plan", "list"]));
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&db.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("file is not a database").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&db).expect("db"),
        "this is not a database ".repeat(100)
    );
}

/// With a metrics source configured, an audit parameter `period` beyond
/// what a duration holds (1e300 s) panicked the command
/// (`Duration::from_secs_f64`) before any query was made. Now the audit
/// fails, naming the parameter. (The source is never reached: the window
/// is worked out first.)
#[test]
fn a_metrics_period_beyond_a_year_fails_the_audit_naming_it() {
    let home = scratch();
    let seed = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--from"])
        .arg(small()));
    assert_eq!(seed.status, 0, "{}", seed.stderr);
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        "metrics:\n  source: prometheus\n  url: http://127.0.0.1:9\n",
    );
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "thermal_optimization",
        "-s",
        "outlet_temperature",
        "-p",
        "period=1e300",
        "--format",
        "json",
    ]));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("audit parameter period") && out.stderr.contains("366 days"),
        "{}",
        out.stderr
    );
    let audits = run(sextant(home.path()).args(["audit", "list", "--format", "json"])).json();
    assert_eq!(audits[0]["state"], "FAILED", "{audits}");
}
