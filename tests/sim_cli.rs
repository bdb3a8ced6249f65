//! The simulated cloud through the built binary: seeding, showing,
//! contradictions refused, crash safety of seeding and sync, and the model
//! an audit sees (through the `sim` collector plugin and the audit scope).

use serde_json::Value;
use sextant::store::Store;
use sextant_e2e::*;
use sextant_sim_store::SimDb;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn small() -> std::path::PathBuf {
    repo_root().join("examples/clusters/small.yaml")
}

#[test]
fn seed_show_and_refuse_contradictions() {
    let home = scratch();
    let out = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(small())
        .args(["--time-scale", "0"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = run(sextant(home.path()).args(["sim", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let m = out.json();
    assert_eq!(m["nodes"].as_array().map(Vec::len), Some(4));
    assert_eq!(m["instances"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        m["nodes"][0]["status"], "enabled",
        "Watcher's defaults are filled in"
    );
    assert_eq!(m["nodes"][0]["vcpu_ratio"], 1.0);
    // The JSON it prints is itself a snapshot that seeds the same cloud.
    let again = write_file(&home.path().join("s"), "again.json", &m.to_string());
    assert_eq!(
        run(sextant(home.path())
            .args(["sim", "init", "--from"])
            .arg(&again))
        .status,
        0
    );
    assert_eq!(
        run(sextant(home.path()).args(["sim", "show", "--format", "json"])).json(),
        m
    );

    let out = run(sextant(home.path()).args(["sim", "show"]));
    assert!(out.stdout.contains("compute-004"), "{}", out.stdout);

    let bad = write_file(
        &home.path().join("s"),
        "bad.yaml",
        "nodes:\n  - {uuid: n1, hostname: h1, vcpus: 4, memory: 4096, disk: 10}\n  - {uuid: n1, hostname: h2, vcpus: 4, memory: 4096, disk: 10}\ninstances:\n  - {uuid: i1, name: vm-1, host: h9, vcpus: 1, memory: 512, disk: 1}\n",
    );
    let out = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(&bad));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("node n1: duplicate uuid"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("instance i1 (vm-1): on unknown host h9"),
        "{}",
        out.stderr
    );
    assert_eq!(
        run(sextant(home.path()).args(["sim", "show", "--format", "json"])).json(),
        m,
        "nothing changed"
    );

    let typo = write_file(
        &home.path().join("s"),
        "typo.yaml",
        "nodes:\n  - {uuid: n1, hostname: h1, vcpus: 4, memory: 4096, disk: 10, vcpu: 3}\n",
    );
    let out = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(&typo));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("typo.yaml: line 2"), "{}", out.stderr);

    let over = write_file(
        &home.path().join("s"),
        "over.yaml",
        "nodes:\n  - {uuid: n1, hostname: h1, vcpus: 1, memory: 4096, disk: 10}\ninstances:\n  - {uuid: i1, name: a, host: h1, vcpus: 2, memory: 512, disk: 1}\n",
    );
    let out = run(sextant(home.path())
        .args(["sim", "init", "--from"])
        .arg(&over));
    assert_eq!(out.status, 0, "over-allocation is a warning");
    assert!(out.stderr.contains("beyond its capacity"), "{}", out.stderr);
}

#[test]
fn an_audit_sees_the_simulated_cloud_through_the_collector_and_its_scope() {
    let home = scratch();
    assert_eq!(
        run(sextant(home.path())
            .args(["sim", "init", "--from"])
            .arg(small()))
        .status,
        0
    );
    // The actuator echoes its actions; the point here is that the audit
    // collected the model (a collector failure fails the audit).
    let scope = write_file(
        &home.path().join("s"),
        "scope.yaml",
        "- availability_zones: [{name: az1}]\n- exclude: [{instances: [{uuid: 0d8a5f7e-3c1b-4a2e-9f6d-000000000001}]}]\n",
    );
    let out = run(sextant(home.path())
        .args([
            "audit-template",
            "create",
            "t",
            "dummy",
            "-s",
            "dummy",
            "--scope",
        ])
        .arg(&scope));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = run(sextant(home.path()).args(["audit", "create", "-a", "t", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["state"], "SUCCEEDED");

    let bad_scope = write_file(&home.path().join("s"), "bad-scope.yaml", "- teleport: []\n");
    let out = run(sextant(home.path())
        .args(["audit-template", "create", "t2", "dummy", "--scope"])
        .arg(&bad_scope));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("teleport"), "{}", out.stderr);

    // Scope semantics on the real model.
    let model: sextant_plugin_api::model::ClusterModel = serde_json::from_value(
        run(sextant(home.path()).args(["sim", "show", "--format", "json"])).json(),
    )
    .expect("model");
    let scoped = sextant::decide::scope::apply(
        &model,
        &serde_yaml_ng_value(&std::fs::read_to_string(&scope).expect("read")),
    )
    .expect("scope");
    let hosts: Vec<_> = scoped.nodes.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(hosts, ["compute-001", "compute-002"]);
    assert!(scoped.instances.iter().any(|i| i.watcher_exclude));
}

fn serde_yaml_ng_value(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("yaml")
}

fn kill_at(mut cmd: std::process::Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(after);
    let finished = child.try_wait().expect("wait").is_some();
    let _ = child.kill();
    let _ = child.wait();
    finished
}

#[test]
fn sigkill_during_a_large_seed_or_a_sync_leaves_a_consistent_database() {
    let home = scratch();
    let large = home.path().join("large.json");
    let out = std::process::Command::new(sextant_bin())
        .args([
            "sim",
            "generate",
            "--nodes",
            "2000",
            "--instances",
            "20000",
            "--seed",
            "3",
            "--format",
            "json",
        ])
        .output()
        .expect("generate");
    assert!(out.status.success());
    std::fs::write(&large, &out.stdout).expect("write");
    assert_eq!(
        run(sextant(home.path())
            .args(["sim", "init", "--from"])
            .arg(small()))
        .status,
        0
    );
    // Where the cloud is: sim.db beside the store, or on PostgreSQL the
    // store's own database.
    let sim_db = match home_db(home.path()) {
        TestDb::Sqlite(_) => {
            sextant_sim_store::SimLocation::Sqlite(home.path().join("data/sextant/sim.db"))
        }
        TestDb::Postgres(url) => sextant_sim_store::SimLocation::Postgres(url),
    };

    let mut seen_small = false;
    let mut interrupted = 0;
    for (i, ms) in [30u64, 120, 250, 400, 700, 1000, 1500, 2500]
        .iter()
        .enumerate()
    {
        // Alternate the cloud being replaced, so every kill interrupts a real change.
        let from = if i % 2 == 0 { large.clone() } else { small() };
        let mut cmd = sextant(home.path());
        cmd.args(["sim", "init", "--from"]).arg(&from);
        if !kill_at(cmd, Duration::from_millis(*ms)) {
            interrupted += 1;
        }
        let db = SimDb::open(&sim_db).expect("the database opens after SIGKILL");
        let m = db.model().expect("and reads");
        match m.nodes.len() {
            2000 => assert_eq!(m.instances.len(), 20000),
            4 => {
                assert_eq!(m.instances.len(), 6);
                seen_small = true;
            }
            n => panic!("a half-written cloud with {n} nodes after a kill at {ms} ms"),
        }
        assert!(m.check().errors.is_empty());
    }
    assert!(seen_small, "some kill left the old cloud");
    assert!(interrupted > 0, "no kill landed while a seed was running");

    // Sync is one transaction too: after a kill, none or all of it (on
    // SQLite, whose file this removes; the store's own cases prove a
    // PostgreSQL transaction).
    if on_postgres() {
        return;
    }
    let db = home.path().join("data/sextant/sextant.db");
    assert_eq!(run(sextant(home.path()).args(["sync"])).status, 0);
    let full = {
        let s = Store::open(&db).expect("open");
        (
            s.goals().expect("goals").len(),
            s.strategies(None).expect("strategies").len(),
        )
    };
    for ms in [5u64, 20, 40, 80] {
        let _ = std::fs::remove_file(&db);
        let mut cmd = sextant(home.path());
        cmd.args(["sync"]);
        kill_at(cmd, Duration::from_millis(ms));
        if !db.exists() {
            continue;
        }
        let s = Store::open(Path::new(&db)).expect("opens after SIGKILL");
        let goals = s.goals().expect("goals").len();
        let strategies = s.strategies(None).expect("strategies").len();
        assert!(
            (goals, strategies) == (0, 0) || (goals, strategies) == full,
            "half a sync: {goals} goals, {strategies} strategies"
        );
    }
}

/// `sim: {sim_db: …}` in the config moves the cloud: a relative file is
/// relative to the config's directory, and a PostgreSQL URL puts the cloud
/// in that database whatever the store is; `sim init`, `sim show` and an
/// audit's collector all use it, and nothing is written beside the store.
#[test]
fn a_configured_sim_location_is_where_every_sim_command_and_the_collector_look() {
    let home = scratch();
    let config_dir = home.path().join("config/sextant");
    write_file(
        &config_dir,
        "config.yaml",
        "sim:\n  sim_db: clouds/lab.db\n",
    );
    // A named cloud's directory must exist (it is never made).
    std::fs::create_dir(config_dir.join("clouds")).expect("mkdir");
    let out = run(sextant(home.path())
        .args([
            "sim",
            "init",
            "--time-scale",
            "0",
            "--format",
            "json",
            "--from",
        ])
        .arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let file = config_dir.join("clouds/lab.db");
    assert_eq!(out.json()["sim_db"], file.display().to_string());
    let m = SimDb::open(&file).expect("open").model().expect("model");
    assert_eq!(m.nodes.len(), 4);
    assert!(!home.path().join("data/sextant/sim.db").exists());
    let out = run(sextant(home.path()).args(["sim", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["nodes"].as_array().map(Vec::len), Some(4));
    let out = run(sextant(home.path()).args([
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-s",
        "basic",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["state"], "SUCCEEDED", "{}", out.stdout);

    // A PostgreSQL database of its own, named with a password that never
    // shows.
    let url =
        fresh_pg_database(home.path()).replacen("://sextant@", "://sextant:hunter2secret@", 1);
    write_file(
        &config_dir,
        "config.yaml",
        &format!("sim:\n  sim_db: {url}\n"),
    );
    let out = run(sextant(home.path()).args(["sim", "show"]));
    assert_eq!(out.status, 2, "never seeded: {}", out.stderr);
    assert!(out.stderr.contains("was never seeded"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
    let out = run(sextant(home.path())
        .args(["sim", "init", "--time-scale", "0", "--from"])
        .arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("postgres://sextant@"), "{}", out.stdout);
    assert!(!out.stdout.contains("hunter2secret"), "{}", out.stdout);
    let m = SimDb::open(sextant_sim_store::SimLocation::Postgres(url.clone()))
        .expect("open")
        .model()
        .expect("model");
    assert_eq!(m.nodes.len(), 4);
    let out = run(sextant(home.path()).args(["sim", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["instances"].as_array().map(Vec::len), Some(6));

    // A location that names no database is refused, naming the key and
    // the line, before anything is touched.
    write_file(
        &config_dir,
        "config.yaml",
        "sim:\n  sim_db: mysql://u:hunter2secret@h/db\n",
    );
    let out = run(sextant(home.path()).args(["sim", "show"]));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("config.yaml")
            && out.stderr.contains("line 2")
            && out.stderr.contains("sim_db"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
}

/// `sim generate` builds the whole model in memory: `--nodes` and
/// `--instances` beyond what `sim init` could read back are refused (exit 2,
/// naming the flag, nothing written) instead of exhausting memory; and once
/// the cluster is full it stops, instead of scanning every node for each
/// instance left (2,000 nodes and 1,000,000 instances took 70 s, now 0.4 s).
#[test]
fn generate_refuses_counts_beyond_its_bounds_and_stops_when_the_cluster_is_full() {
    for (flag, value) in [("--nodes", "100001"), ("--instances", "1000001")] {
        let out =
            run(std::process::Command::new(sextant_bin()).args(["sim", "generate", flag, value]));
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(value),
            "{}",
            out.stderr
        );
        assert_eq!(out.stdout, "");
    }
    let started = std::time::Instant::now();
    let out = run(std::process::Command::new(sextant_bin()).args([
        "sim",
        "generate",
        "--nodes",
        "2000",
        "--instances",
        "1000000",
        "--format",
        "json",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let model = out.json();
    let placed = model["instances"].as_array().map_or(0, Vec::len);
    assert!(placed > 10_000 && placed < 1_000_000, "{placed} placed");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a full cluster took {:?}",
        started.elapsed()
    );
}

/// `datamodel show` on a simulated cloud that was never seeded printed an
/// empty model and exit status 0: an operator who forgot `sim init` saw a
/// cloud with no node, and audits that found nothing to do. It is refused
/// as `sim show` refuses it (exit 2, saying how to seed), and writes
/// nothing; a cloud seeded empty on purpose (`--allow-empty`) is an empty
/// model, as Watcher's data model of an empty cloud is an empty context.
#[test]
fn datamodel_show_on_a_cloud_never_seeded_says_how_to_seed_it() {
    let home = scratch();
    let h = home.path();
    for format in ["table", "json"] {
        let out = run(sextant(h).args(["datamodel", "show", "--format", format]));
        assert_eq!(out.status, 2, "{format}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty(), "{format}: {}", out.stdout);
        assert!(
            out.stderr.contains("never seeded") && out.stderr.contains("sextant sim init --from"),
            "{format}: {}",
            out.stderr
        );
        if !on_postgres() {
            assert!(!h.join("data").exists(), "{format}: nothing written");
        }
    }
    let empty = write_file(&h.join("s"), "empty.yaml", "{}\n");
    let out = run(sextant(h)
        .args(["sim", "init", "--allow-empty", "--from"])
        .arg(&empty));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = run(sextant(h).args(["datamodel", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["nodes"], serde_json::json!([]));
    let out = run(sextant(h).args(["sim", "init", "--from"]).arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = run(sextant(h).args(["datamodel", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["nodes"].as_array().map(Vec::len), Some(4));
}

/// `sim show` on SQLite decided "never seeded" from whether `sim.db`
/// existed: a file another command made (a `sim.*` handler opens the
/// cloud, creating it) showed as an empty cloud, exit 0. It is the cloud's
/// own record that says, as on PostgreSQL: such a cloud is refused (exit
/// 2, saying how to seed it) by `sim show` and `datamodel show`, while a
/// cloud seeded and then emptied is an empty model, exit 0.
#[test]
fn a_sim_database_that_exists_but_was_never_seeded_is_refused_and_an_emptied_one_is_shown() {
    let home = scratch();
    let h = home.path();
    let sim = match home_db(h) {
        TestDb::Sqlite(store) => {
            sextant_sim_store::SimLocation::Sqlite(sextant_sim_store::path_beside(&store))
        }
        TestDb::Postgres(url) => sextant_sim_store::SimLocation::parse(&url),
    };
    if let Some(file) = sim.file() {
        std::fs::create_dir_all(file.parent().expect("a directory")).expect("mkdir");
    }
    // What the sim plugin's handlers do with the cloud they are given.
    drop(SimDb::open(&sim).expect("open the simulated cloud"));
    if let Some(file) = sim.file() {
        assert!(file.exists(), "{}", file.display());
    }
    for args in [
        &["sim", "show"][..],
        &["sim", "show", "--format", "json"],
        &["datamodel", "show", "--format", "json"],
    ] {
        let out = run(sextant(h).args(args));
        assert_eq!(out.status, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("was never seeded")
                && out.stderr.contains("sextant sim init --from"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = run(sextant(h).args(["sim", "init", "--from"]).arg(small()));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let empty = write_file(&h.join("s"), "empty.yaml", "{}\n");
    let out = run(sextant(h)
        .args(["sim", "init", "--allow-empty", "--from"])
        .arg(&empty));
    assert_eq!(out.status, 0, "{}", out.stderr);
    for args in [
        &["sim", "show", "--format", "json"][..],
        &["datamodel", "show", "--format", "json"],
    ] {
        let out = run(sextant(h).args(args));
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        assert_eq!(out.json()["nodes"], serde_json::json!([]), "{args:?}");
    }
    let out = run(sextant(h).args(["sim", "show"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
}
