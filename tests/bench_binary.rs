//! The benchmarks are a binary of their own (`sextant-bench`, crate
//! `bench/`): the product binary has no `bench` command, and the user-path
//! benchmark still runs the real `sextant` commands as children. Tiny sizes:
//! these check that the benchmarks run, not how fast (nothing is timed).

use sextant_e2e::{Home, must_exist_in_profile, run};
use std::process::Command;

/// `sextant-bench` in the test's home, with its action types.
fn bench(home: &Home) -> Command {
    let mut c = Command::new(must_exist_in_profile("sextant-bench"));
    let sextant = home.cmd();
    for (k, v) in sextant.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

#[test]
fn the_product_binary_has_no_bench_command() {
    let home = Home::new();
    let out = home.run(&["bench", "plugins"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unrecognized subcommand 'bench'"),
        "{}",
        out.stderr
    );
    let help = home.run(&["--help"]);
    assert_eq!(help.status, 0, "{}", help.stderr);
    assert!(!help.stdout.contains("bench"), "{}", help.stdout);
}

#[test]
fn user_path_runs_the_sextant_commands_as_children() {
    let home = Home::new();
    let out = run(bench(&home).args([
        "user-path",
        "--plan-actions",
        "20",
        "--apply-actions",
        "10",
        "--runs",
        "1",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["benchmark"], "user_path");
    assert_eq!(doc["plan_input"]["actions"], 20);
    assert_eq!(doc["apply"]["actions"], 10);
    for (section, figure) in [
        ("plan_input", "median_s_plan_input"),
        ("plan_input", "median_s_plan_input_save"),
        ("apply", "median_s_import"),
        ("apply", "median_s_start_wait"),
        ("apply", "median_s_show"),
        ("apply", "median_s_action_list"),
        ("apply", "ratio_start_wait_to_in_process_engine"),
    ] {
        let v = doc[section][figure].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0 && v.is_finite(), "{section}.{figure}: {v}");
    }
    // The children's peak memory is theirs (wait4), so nonzero.
    assert!(
        doc["apply"]["median_peak_rss_mb_start_wait"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
}

#[test]
fn a_missing_sextant_binary_is_named() {
    let home = Home::new();
    let missing = home.path().join("no-such-sextant");
    let out = run(bench(&home)
        .arg("--sextant")
        .arg(&missing)
        .args(["import", "--sizes", "10", "--runs", "1"]));
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&missing.display().to_string())
            && out.stderr.contains("no sextant binary"),
        "{}",
        out.stderr
    );
}

#[test]
fn api_drives_a_serve_child_under_load_while_it_applies_a_plan() {
    let home = Home::new();
    let out = run(bench(&home).args([
        "api",
        "--actions",
        "50",
        "--clients",
        "1,2",
        "--seconds",
        "0.3",
        "--runs",
        "1",
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["benchmark"], "api");
    assert_eq!(doc["store"], "sqlite");
    let cells = doc["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 6, "{doc}");
    for c in cells {
        assert!(c["requests"].as_f64().is_some_and(|n| n > 0.0), "{c}");
        assert_eq!(c["errors"], 0.0, "{c}");
    }
    for k in [
        "ms_per_action_alone",
        "ms_per_action_under_traffic",
        "ratio",
    ] {
        assert!(
            doc["applier"][k].as_f64().is_some_and(f64::is_finite),
            "{k}: {doc}"
        );
    }
}

#[test]
fn api_runs_on_postgresql_in_a_database_it_drops() {
    let home = Home::new();
    let server = sextant_e2e::service_url("SEXTANT_TEST_PG_URL");
    let bench_dbs = || -> Vec<String> {
        let mut c = postgres::Client::connect(&server, postgres::NoTls).expect("connect");
        c.query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sextant_bench_api_%'",
            &[],
        )
        .expect("databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let before = bench_dbs();
    let out = run(bench(&home).args([
        "api",
        "--actions",
        "50",
        "--clients",
        "2",
        "--seconds",
        "0.3",
        "--runs",
        "1",
        "--pg",
        &server,
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["store"], "postgresql", "{doc}");
    let cells = doc["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 3, "{doc}");
    for c in cells {
        assert!(c["requests"].as_f64().is_some_and(|n| n > 0.0), "{c}");
        assert_eq!(c["errors"], 0.0, "{c}");
    }
    assert!(
        doc["applier"]["ratio"].as_f64().is_some_and(f64::is_finite),
        "{doc}"
    );
    assert_eq!(bench_dbs(), before, "the run's database is dropped");
}

/// `openstack` runs only against the harness's services; without them it
/// fails naming the variable it needs and how to get it.
#[test]
fn openstack_names_the_services_it_needs() {
    let home = Home::new();
    let out =
        run(bench(&home)
            .env_remove("SEXTANT_TEST_CA_FILE")
            .args(["openstack", "--runs", "1"]));
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("$SEXTANT_TEST_CA_FILE is not set")
            && out
                .stderr
                .contains("services_start postgres rabbitmq keystone nova watcher_bench"),
        "{}",
        out.stderr
    );
}

/// The children of process `pid` whose command line holds `word`.
fn children_running(pid: u32, word: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": the fields after the command name.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let state = fields.next().unwrap_or("Z");
        let ppid = fields.next().and_then(|f| f.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) && state != "Z" && String::from_utf8_lossy(&cmdline).contains(word) {
            found.push(p);
        }
    }
    found
}

/// Whether `pid` runs (a zombie, or no process, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// A bench killed by SIGKILL left its `sextant serve` child running (its
/// port, its database, its CPU): the child now dies with it.
#[test]
fn a_bench_killed_by_sigkill_takes_its_serve_child_with_it() {
    let home = Home::new();
    let mut bench_run = bench(&home)
        .args([
            "api",
            "--actions",
            "50",
            "--clients",
            "1",
            "--seconds",
            "60",
            "--runs",
            "1",
        ])
        // Its work directories in the test's home, not left in /tmp.
        .env("TMPDIR", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sextant-bench");
    let t = std::time::Instant::now();
    let serve = loop {
        if let Some(&p) = children_running(bench_run.id(), "serve").first() {
            break p;
        }
        if t.elapsed() > std::time::Duration::from_secs(60) {
            let _ = bench_run.kill();
            panic!("the bench started no serve child");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    bench_run.kill().expect("SIGKILL the bench");
    bench_run.wait().expect("reap the bench");
    let t = std::time::Instant::now();
    while alive(serve) && t.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let outlived = alive(serve);
    if outlived {
        // Not left behind by a failing test.
        let _ = Command::new("kill")
            .args(["-9", &serve.to_string()])
            .status();
    }
    assert!(!outlived, "sextant serve {serve} outlived the bench by 5 s");
}
