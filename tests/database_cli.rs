//! Choosing the database: `--db`, `SEXTANT_DB` and the config's
//! `database:` (in that order) name a SQLite file or a PostgreSQL database
//! (the real one of scripts/services/postgres.sh); anything else is bad
//! input; a password in the URL never reaches a message, a log, an event
//! or JSON output.

use sextant_e2e::*;
use std::path::Path;
use std::process::Command;

/// A command in `home` with no database chosen by the harness.
fn bare(home: &Path) -> Command {
    let mut c = sextant(home);
    c.env_remove("SEXTANT_DB");
    c
}

/// How many goals the PostgreSQL database at `url` holds.
fn goals_in(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let exists: bool = c
        .query_one("SELECT to_regclass('goals') IS NOT NULL", &[])
        .expect("query")
        .get(0);
    if !exists {
        return 0;
    }
    c.query_one("SELECT count(*) FROM goals", &[])
        .expect("count")
        .get(0)
}

fn config(home: &Path, database: &str) {
    write_file(
        &home.join("config").join("sextant"),
        "config.yaml",
        &format!("database: {database:?}\n"),
    );
}

#[test]
fn the_flag_then_the_environment_then_the_config_choose_the_database() {
    let dir = scratch();
    let home = dir.path();
    let (a, b, c) = (
        fresh_pg_database(home),
        fresh_pg_database(home),
        fresh_pg_database(home),
    );
    config(home, &c);
    let sync = |args: &[&str], env: Option<&str>| {
        let mut cmd = bare(home);
        if let Some(v) = env {
            cmd.env("SEXTANT_DB", v);
        }
        let out = run(cmd.args(args).arg("sync"));
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
    };
    sync(&["--db", &a], Some(&b));
    assert!(goals_in(&a) > 0);
    assert_eq!((goals_in(&b), goals_in(&c)), (0, 0), "only --db was used");
    sync(&[], Some(&b));
    assert!(goals_in(&b) > 0);
    assert_eq!(goals_in(&c), 0, "SEXTANT_DB comes before the config");
    sync(&[], None);
    assert!(goals_in(&c) > 0, "the config's database:");
    // postgresql:// is the same scheme.
    let d = fresh_pg_database(home).replacen("postgres://", "postgresql://", 1);
    sync(&["--db", &d], None);
    assert!(goals_in(&d) > 0);
    // No config: the SQLite default; sqlite:PATH names a file; a relative
    // file in the config is beside the config.
    std::fs::remove_file(home.join("config/sextant/config.yaml")).expect("rm config");
    sync(&[], None);
    assert!(home.join("data/sextant/sextant.db").is_file());
    let named = home.join("named.db");
    sync(&["--db", &format!("sqlite:{}", named.display())], None);
    assert!(named.is_file());
    config(home, "rel.db");
    sync(&[], None);
    assert!(home.join("config/sextant/rel.db").is_file());
}

#[test]
fn a_value_that_names_no_database_is_refused_with_status_2_and_nothing_is_made() {
    let dir = scratch();
    let home = dir.path();
    for (how, value) in [
        ("--db", "mysql://root:hunter2@db.example/sextant"),
        ("SEXTANT_DB", "oracle://scott:hunter2@db.example/orcl"),
        ("database:", "redis://:hunter2@db.example/0"),
        ("--db", "postgres://u:hunter2@h:notaport/db"),
        ("--db", "sqlite:"),
    ] {
        let mut cmd = bare(home);
        match how {
            "--db" => {
                cmd.args(["--db", value]);
            }
            "SEXTANT_DB" => {
                cmd.env("SEXTANT_DB", value);
            }
            _ => config(home, value),
        }
        let out = run(cmd.args(["goal", "list"]));
        assert_eq!(out.status, 2, "{how} {value}: {}", out.stderr);
        assert!(out.stderr.contains(how), "names where: {}", out.stderr);
        assert!(out.stderr.contains("names no database"), "{}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        assert!(!home.join("data/sextant/sextant.db").exists());
        let _ = std::fs::remove_file(home.join("config/sextant/config.yaml"));
    }
}

#[test]
fn an_unreachable_database_fails_naming_its_url_without_the_password() {
    let dir = scratch();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://sextant:hunter2@127.0.0.1:{port}/nowhere");
    for args in [
        vec!["goal", "list"],
        vec!["audit", "list", "--format", "json"],
    ] {
        let out = run(bare(dir.path()).args(["--db", &url]).args(&args));
        assert_eq!(out.status, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("postgres://sextant@127.0.0.1:{port}/nowhere")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("connect"), "says why: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

#[test]
fn the_password_never_reaches_output_logs_events_or_json() {
    let dir = scratch();
    let home = dir.path();
    // The test server trusts loopback: any password is accepted, and
    // carried through every command.
    let plain = fresh_pg_database(home);
    let url = plain.replacen("postgres://sextant@", "postgres://sextant:hunter2@", 1);
    assert_ne!(url, plain);
    let plan = write_file(
        &home.join("plans"),
        "p.json",
        &serde_json::json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "a"}},
            {"id": "b", "action_type": "nop", "input_parameters": {"message": "b"}, "parents": ["a"]}
        ]})
        .to_string(),
    );
    let mut outputs = Vec::new();
    let mut step = |args: &[&str], env: bool| {
        let mut cmd = bare(home);
        cmd.env("SEXTANT_LOG", "trace");
        if env {
            cmd.env("SEXTANT_DB", &url);
        } else {
            cmd.args(["--db", &url]);
        }
        let out = run(cmd.arg("-vvv").args(args));
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        outputs.push(out.stdout.clone());
        outputs.push(out.stderr.clone());
        out
    };
    step(&["sync", "--format", "json"], false);
    let uuid = step(
        &["action-plan", "import", &plan.display().to_string()],
        true,
    )
    .stdout
    .trim()
    .to_string();
    step(
        &["action-plan", "start", &uuid, "--wait", "--format", "json"],
        false,
    );
    step(&["history", "--plan", &uuid, "--format", "json"], true);
    step(&["action-plan", "show", &uuid, "--format", "json"], false);
    step(&["audit", "list", "--format", "json"], true);
    step(&["serve", "--exit-after", "1"], true);
    for text in &outputs {
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert!(
        outputs.iter().any(|t| t.contains(&plain)),
        "serve's log names the database, without the password"
    );
    // Nor the store: no row of any table holds it.
    let mut c = postgres::Client::connect(&plain, postgres::NoTls).expect("connect");
    for table in ["events", "action_plans", "actions", "audits"] {
        let n: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM {table} t WHERE t::text LIKE '%hunter2%'"),
                &[],
            )
            .expect("scan")
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
}

/// Every file and directory under `dir`, for "nothing was made".
fn tree(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            found.push(p);
        }
    }
    found.sort();
    found
}

#[test]
fn a_named_store_in_a_directory_that_does_not_exist_is_refused_and_nothing_is_made() {
    let dir = scratch();
    let home = dir.path();
    let plan = write_file(
        &home.join("plans"),
        "p.json",
        r#"{"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "a"}}]}"#,
    );
    let cluster = repo_root().join("examples/clusters/small.yaml");
    // A store that exists, for db copy's --from.
    let good = home.join("good.db");
    let out = run(bare(home).arg("--db").arg(&good).args(["db", "migrate"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let missing = home.join("no/such/dir");
    let file = missing.join("x.db");
    let file = file.to_str().expect("utf-8");
    let commands: Vec<Vec<String>> = [
        &["db", "migrate"][..],
        &["goal", "list"],
        &["sync"],
        &["action-plan", "list"],
        &["action-plan", "import", plan.to_str().expect("utf-8")],
        &["audit", "list"],
        &["history"],
        &["service", "list"],
        &["sim", "init", "--from", cluster.to_str().expect("utf-8")],
        &["serve", "--exit-after", "1"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect())
    .collect();
    let before = tree(home);
    for how in ["--db", "SEXTANT_DB", "database:", "sqlite:"] {
        for args in &commands {
            let mut cmd = bare(home);
            match how {
                "--db" => {
                    cmd.args(["--db", file]);
                }
                "sqlite:" => {
                    cmd.arg("--db").arg(format!("sqlite:{file}"));
                }
                "SEXTANT_DB" => {
                    cmd.env("SEXTANT_DB", file);
                }
                _ => {
                    cmd.env("SEXTANT_CONFIG", home.join("c.yaml"));
                    write_file(home, "c.yaml", &format!("database: {file:?}\n"));
                }
            }
            let out = run(cmd.args(args));
            assert_eq!(out.status, 2, "{how} {args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(&missing.display().to_string())
                    && out.stderr.contains("does not exist"),
                "{how} {args:?} names the missing directory: {}",
                out.stderr
            );
            let _ = std::fs::remove_file(home.join("c.yaml"));
            assert_eq!(tree(home), before, "{how} {args:?} made nothing");
        }
    }
    // A simulated cloud the config names, in a directory that does not
    // exist: the same rule.
    let sim_file = missing.join("sim.db");
    write_file(
        home,
        "c.yaml",
        &format!("sim: {{sim_db: {:?}}}\n", sim_file.display().to_string()),
    );
    let before = tree(home);
    for args in [
        vec!["sim", "init", "--from", cluster.to_str().expect("utf-8")],
        vec!["sim", "show"],
    ] {
        let out = run(bare(home)
            .env("SEXTANT_CONFIG", home.join("c.yaml"))
            .arg("--db")
            .arg(&good)
            .args(&args));
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&missing.display().to_string()),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(tree(home), before, "{args:?} made nothing");
    }
    std::fs::remove_file(home.join("c.yaml")).expect("rm");
    // db copy's target: the same rule.
    let before = tree(home);
    let out = run(bare(home).args([
        "db",
        "copy",
        "--from",
        good.to_str().expect("utf-8"),
        "--to",
        file,
    ]));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(tree(home), before, "db copy made nothing");
    // The default location is Sextant's own: made on first use, as a new
    // installation expects.
    assert!(!home.join("data").exists());
    let out = run(bare(home).args(["goal", "list"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(home.join("data/sextant/sextant.db").is_file());
    // A named store in a directory that exists is made there.
    let out = run(bare(home)
        .arg("--db")
        .arg(home.join("plans/new.db"))
        .args(["db", "migrate"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(home.join("plans/new.db").is_file());
}
