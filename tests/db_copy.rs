//! `sextant db migrate` and `sextant db copy` (docs/db-copy.md) through the
//! built binary, against the real PostgreSQL of scripts/services/postgres.sh
//! (`SEXTANT_TEST_PG_URL`), a new database per test: a store used by real
//! commands moves to PostgreSQL whole (every table, every row, the same
//! content read back from both sides) and back again with the same
//! command outputs; every refusal exits with its status, names what is at
//! fault, never prints a password and writes nothing; a copy that fails on
//! a row, fails its verification or is killed leaves the target empty.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// `url` with a password in it (the test server trusts loopback, so any
/// password is accepted and none is checked).
fn with_password(url: &str, password: &str) -> String {
    url.replacen("://sextant@", &format!("://sextant:{password}@"), 1)
}

/// The store file of a home.
fn store_of(home: &Home) -> PathBuf {
    home.path().join("data/sextant/sextant.db")
}

fn ok(home: &Home, args: &[&str]) -> String {
    let out = home.run(args);
    assert_eq!(out.status, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

/// Polls `what` for up to 30 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A store used as an operator uses one, by the real commands: the
/// simulated cloud seeded, a ONESHOT audit whose plan was applied, an audit
/// template with text that needs escaping, a plan cancelled while it ran,
/// a plan with a flow and an alternative applied, a webhook's outbox
/// cursor. Returns the home and the uuids of the applied plans.
fn used_store() -> (Home, Vec<String>) {
    let home = Home::new();
    // A webhook nobody listens on: its cursor is kept in the store.
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        "notifications:\n  - {type: webhook, url: \"http://127.0.0.1:9/hook\"}\n",
    );
    let cluster = repo_root().join("examples/clusters/small.yaml");
    ok(
        &home,
        &[
            "sim",
            "init",
            "--time-scale",
            "0",
            "--from",
            cluster.to_str().unwrap_or_default(),
        ],
    );
    let audit: Value = serde_json::from_str(&ok(
        &home,
        &[
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "-s",
            "basic",
            "--format",
            "json",
        ],
    ))
    .expect("audit json");
    let consolidation = audit["action_plan"].as_str().expect("a plan").to_string();
    ok(&home, &["action-plan", "start", &consolidation, "--wait"]);
    ok(
        &home,
        &[
            "audit-template",
            "create",
            "t1",
            "dummy",
            "-d",
            "tab\there, newline\nthere, a back\\slash, \u{e9}t\u{e9} \u{2713}",
        ],
    );
    ok(
        &home,
        &["audit", "create", "-a", "t1", "--name", "from-template"],
    );
    // Cancelled while it runs.
    let cancelled = home.import_json(
        "cancel.json",
        &json!({"actions": [
            {"id": "s", "action_type": "sleep", "input_parameters": {"duration": 30}},
            {"id": "n", "action_type": "nop", "input_parameters": {"message": "after"}, "parents": ["s"]}
        ]}),
    );
    let mut child = home.spawn(&["action-plan", "start", &cancelled, "--wait"]);
    wait_for("the sleep to run", || {
        home.actions(&cancelled)
            .iter()
            .any(|a| a["state"] == "ONGOING")
    });
    ok(&home, &["action-plan", "cancel", &cancelled]);
    let _ = child.wait();
    assert_eq!(home.plan(&cancelled)["state"], "CANCELLED");
    // Flows and alternatives.
    let flows = home.import_json(
        "flows.json",
        &json!({
            "actions": [
                {"id": "a", "action_type": "nop", "input_parameters": {"message": "a"}},
                {"id": "b", "action_type": "nop", "input_parameters": {"message": "b"}, "parents": ["a"],
                 "alternatives": [{"id": "b2"}]},
                {"id": "c", "action_type": "nop", "input_parameters": {"message": "c"}}
            ],
            "flows": [
                {"id": "f", "on_failure": "rollback", "actions": ["a", "b"]},
                {"id": "g", "actions": ["c"], "alternatives": ["g2"]},
                {"id": "g2", "actions": []}
            ]
        }),
    );
    ok(&home, &["action-plan", "start", &flows, "--wait"]);
    (home, vec![consolidation, cancelled, flows])
}

/// Every row of every table of the SQLite file, as JSON arrays sorted,
/// read directly (not through Sextant).
fn sqlite_rows(path: &Path) -> BTreeMap<String, Vec<String>> {
    let c = raw_db(path);
    let tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    let mut out = BTreeMap::new();
    for t in tables {
        let mut s = c
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = s.column_count();
        let names: Vec<String> = s.column_names().map(|c| c.to_string()).collect();
        let mut rows: Vec<String> = s
            .query_map([], |r| {
                let mut obj = serde_json::Map::new();
                for (i, name) in names.iter().enumerate().take(n) {
                    use rusqlite::types::ValueRef;
                    let v = match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(x) => json!(x),
                        ValueRef::Real(x) => json!(x),
                        ValueRef::Text(x) => json!(String::from_utf8_lossy(x)),
                        ValueRef::Blob(x) => json!(x),
                    };
                    obj.insert(name.clone(), v);
                }
                Ok(Value::Object(obj).to_string())
            })
            .and_then(|rows| rows.collect())
            .expect("rows");
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// The same, of the PostgreSQL database (without `sextant_schema`).
fn pg_rows(url: &str) -> BTreeMap<String, Vec<String>> {
    use postgres::types::Type;
    let mut c = client(url);
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'sextant_schema'",
            &[],
        )
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut rows: Vec<String> = c
            .query(&format!("SELECT * FROM \"{t}\""), &[])
            .expect("rows")
            .iter()
            .map(|r| {
                let mut obj = serde_json::Map::new();
                for (i, col) in r.columns().iter().enumerate() {
                    let v = match *col.type_() {
                        Type::INT4 => json!(r.get::<_, Option<i32>>(i)),
                        Type::INT8 => json!(r.get::<_, Option<i64>>(i)),
                        Type::FLOAT8 => json!(r.get::<_, Option<f64>>(i)),
                        Type::TEXT => json!(r.get::<_, Option<String>>(i)),
                        ref other => panic!("{t}.{}: type {other} not expected", col.name()),
                    };
                    obj.insert(col.name().to_string(), v);
                }
                Value::Object(obj).to_string()
            })
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// Rows per table of the PostgreSQL database (no table: empty map).
fn pg_counts(url: &str) -> BTreeMap<String, usize> {
    pg_rows(url)
        .into_iter()
        .map(|(t, r)| (t, r.len()))
        .collect()
}

fn copy(home: &Home, from: &str, to: &str) -> Run {
    home.run(&["db", "copy", "--from", from, "--to", to, "--format", "json"])
}

/// `sim show --format json` of the simulated cloud beside the store `db`.
fn sim_show(home: &Home, db: &str) -> Value {
    let out = run(home
        .cmd()
        .args(["--db", db, "sim", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let v = out.json();
    assert!(
        !v["nodes"].as_array().is_none_or(Vec::is_empty),
        "a seeded cloud: {v}"
    );
    v
}

/// A copy's report says the simulated cloud was copied, every table
/// (and its `meta` values) with equal counts and checksums.
fn assert_sim_copied(report: &Value) {
    let sim = &report["sim"];
    assert_eq!(sim["state"], "copied", "{report}");
    let tables = sim["tables"].as_array().expect("sim tables");
    let names: Vec<&str> = tables.iter().filter_map(|t| t["table"].as_str()).collect();
    assert_eq!(
        names,
        ["nodes", "instances", "storage_pools", "volumes", "meta"]
    );
    for t in tables {
        assert_eq!(t["equal"], true, "{t}");
        assert_eq!(t["source_rows"], t["target_rows"], "{t}");
        assert_eq!(t["source_checksum"], t["target_checksum"], "{t}");
    }
    for used in ["nodes", "instances", "meta"] {
        let t = tables.iter().find(|t| t["table"] == used).expect(used);
        assert!(t["source_rows"].as_u64() > Some(0), "{t}");
    }
}

#[test]
fn a_used_sqlite_store_moves_to_postgresql_whole_and_back_with_the_same_outputs() {
    let (home, plans) = used_store();
    let db = store_of(&home);
    let (_held, url) = own_pg_database();
    let secret_url = with_password(&url, "hunter2");
    let from = format!("sqlite:{}", db.display());
    let out = copy(&home, &from, &secret_url);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
    let report = out.json();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["to"], url.as_str(), "shown without its password");
    assert_eq!(report["target_version_before"], 0);

    // Every table of the schema, each with equal counts and checksums,
    // and the tables this store uses hold rows.
    let source = sqlite_rows(&db);
    let tables: BTreeMap<String, Value> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap_or_default().to_string(),
                t.clone(),
            )
        })
        .collect();
    assert_eq!(
        tables.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>(),
        "every table copied"
    );
    for (name, t) in &tables {
        assert_eq!(t["equal"], true, "{t}");
        assert_eq!(t["source_rows"], t["target_rows"], "{t}");
        assert_eq!(t["source_checksum"], t["target_checksum"], "{t}");
        assert_eq!(t["source_rows"], json!(source[name].len()), "{t}");
    }
    for used in [
        "goals",
        "strategies",
        "audit_templates",
        "audits",
        "action_plans",
        "actions",
        "efficacy_indicators",
        "action_descriptions",
        "events",
        "plan_flows",
        "plan_action_scopes",
        "notification_cursors",
        "notification_origin",
    ] {
        assert!(!source[used].is_empty(), "the used store has {used} rows");
    }
    assert_eq!(
        report["rows"],
        json!(source.values().map(Vec::len).sum::<usize>())
    );

    // The simulated cloud beside it (seeded, then changed by the applied
    // plan) moved too, verified, and reads the same there.
    assert_sim_copied(&report);
    assert_eq!(sim_show(&home, &from), sim_show(&home, &url));

    // The rows themselves, read back from both sides, outside Sextant: the
    // same values of the same types, ids included (the text that needed
    // escaping, the origin of notification message ids).
    let target = pg_rows(&url);
    assert_eq!(source, target);
    assert!(
        source["audit_templates"]
            .iter()
            .any(|r| r.contains("tab\\there, newline\\nthere, a back\\\\slash")),
        "{:?}",
        source["audit_templates"]
    );

    // The sequences hand out the next ids after the copied ones.
    let mut c = client(&url);
    for table in ["events", "actions", "action_plans", "audits", "goals"] {
        let row = c
            .query_one(
                &format!(
                    "SELECT (SELECT max(id) FROM {table}), nextval(pg_get_serial_sequence('{table}', 'id'))"
                ),
                &[],
            )
            .expect("sequence");
        assert_eq!(row.get::<_, i64>(1), row.get::<_, i64>(0) + 1, "{table}");
    }

    // And back into a new SQLite store: the operator's commands print the
    // same as on the original.
    let back = home.path().join("back/sextant.db");
    // A named store's directory must exist (it is never made).
    std::fs::create_dir(home.path().join("back")).expect("mkdir");
    let out = copy(&home, &url, &format!("sqlite:{}", back.display()));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["verified"], true);
    assert_sim_copied(&out.json());
    assert!(home.path().join("back/sim.db").is_file());
    assert_eq!(
        sim_show(&home, &from),
        sim_show(&home, &format!("sqlite:{}", back.display()))
    );
    let back_rows = sqlite_rows(&back);
    // The sequences' ids were consumed above on PostgreSQL only.
    assert_eq!(source, back_rows);
    let original = store_of(&home);
    let outputs = |db: &Path| -> Vec<String> {
        let mut args: Vec<Vec<String>> = vec![
            vec!["history".into()],
            vec!["audit".into(), "list".into()],
            vec!["audit-template".into(), "list".into()],
            vec!["action-plan".into(), "list".into()],
        ];
        for p in &plans {
            args.push(vec!["action-plan".into(), "show".into(), p.clone()]);
            args.push(vec![
                "action".into(),
                "list".into(),
                "--plan".into(),
                p.clone(),
            ]);
            args.push(vec![
                "history".into(),
                "--plan".into(),
                p.clone(),
                "--format".into(),
                "json".into(),
            ]);
        }
        args.iter()
            .map(|a| {
                let out = run(home.cmd().arg("--db").arg(db).args(a));
                assert_eq!(out.status, 0, "{a:?}: {}", out.stderr);
                out.stdout
            })
            .collect()
    };
    assert_eq!(outputs(&original), outputs(&back));
}

#[test]
fn db_migrate_says_from_which_version_to_which_is_idempotent_and_refuses_a_newer_schema() {
    let home = Home::new();
    // A new SQLite file: from 0 to the newest.
    let file = home.path().join("m/sextant.db");
    std::fs::create_dir(home.path().join("m")).expect("mkdir");
    let db = format!("sqlite:{}", file.display());
    let first = home.run(&["--db", &db, "db", "migrate", "--format", "json"]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let m = first.json();
    assert_eq!(m["from"], 0);
    let newest = m["to"].as_i64().expect("to");
    assert!(newest > 0);
    assert_eq!(m["database"], file.to_str().unwrap_or_default());
    // Again: nothing to do, said so.
    let again = home.run(&["--db", &db, "db", "migrate"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains(&format!("at schema version {newest}, the newest")),
        "{}",
        again.stdout
    );
    // A plain path (the old form of --db) is an SQLite file too.
    let plain = home.run(&["--db", file.to_str().unwrap_or_default(), "db", "migrate"]);
    assert_eq!(plain.status, 0, "{}", plain.stderr);
    assert!(plain.stdout.contains("nothing to do"), "{}", plain.stdout);

    // PostgreSQL, with a password in the URL that is never printed.
    let (_held, url) = own_pg_database();
    let secret = with_password(&url, "hunter2");
    let out = home.run(&["--db", &secret, "db", "migrate"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("{url}: migrated from schema version 0 to {newest}")
    );
    let out = home.run(&["--db", &secret, "db", "migrate", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.json(),
        json!({"database": url, "from": newest, "to": newest})
    );
    // A newer schema: refused (2), both versions named, nothing changed.
    let mut c = client(&url);
    c.batch_execute("UPDATE sextant_schema SET version = 999")
        .expect("bump");
    let out = home.run(&["--db", &secret, "db", "migrate"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&url)
            && out.stderr.contains("999")
            && out.stderr.contains(&format!("({newest})"))
            && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );
    let v: i32 = c
        .query_one("SELECT version FROM sextant_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(v, 999);
    // The same for SQLite.
    let file = home.path().join("n/sextant.db");
    std::fs::create_dir(home.path().join("n")).expect("mkdir");
    let db = format!("sqlite:{}", file.display());
    assert_eq!(home.run(&["--db", &db, "db", "migrate"]).status, 0);
    raw_db(&file)
        .execute_batch("PRAGMA user_version = 999")
        .expect("bump");
    let before = std::fs::read(&file).expect("read");
    let out = home.run(&["--db", &db, "db", "migrate"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("999"), "{}", out.stderr);
    assert_eq!(std::fs::read(&file).expect("read"), before);
    // Not a database location at all.
    let out = home.run(&["--db", "mysql://root:hunter2@h/d", "db", "migrate"]);
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("mysql://root@h/d") && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );
}

#[test]
fn refusals_name_what_is_at_fault_never_print_a_password_and_write_nothing() {
    let home = Home::new();
    let plan = home.import_json(
        "p.json",
        &json!({"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}}]}),
    );
    ok(&home, &["action-plan", "start", &plan, "--wait"]);
    let db = store_of(&home);
    let from = format!("sqlite:{}", db.display());
    let newest: i64 = raw_db(&db)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");

    // The source at another schema version: both named; the target untouched
    // (not even migrated).
    let (_held, url) = own_pg_database();
    raw_db(&db)
        .execute_batch(&format!("PRAGMA user_version = {}", newest - 1))
        .expect("older");
    let out = copy(&home, &from, &url);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(db.to_str().unwrap_or_default())
            && out
                .stderr
                .contains(&format!("schema version {}", newest - 1))
            && out.stderr.contains(&format!("this sextant's is {newest}"))
            && out.stderr.contains("db migrate"),
        "{}",
        out.stderr
    );
    assert!(pg_counts(&url).is_empty(), "no table made");
    raw_db(&db)
        .execute_batch(&format!("PRAGMA user_version = {newest}"))
        .expect("back");

    // A target that holds rows: refused, the tables named, nothing changed.
    assert_eq!(copy(&home, &from, &url).status, 0);
    let before = pg_rows(&url);
    let out = copy(&home, &from, &with_password(&url, "hunter2"));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("the target {url} is not empty"))
            && out.stderr.contains("events: ")
            && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );
    assert_eq!(pg_rows(&url), before);

    // A target at a newer schema version.
    let (_held, newer) = own_pg_database();
    let out = home.run(&["--db", &newer, "db", "migrate"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    client(&newer)
        .batch_execute("UPDATE sextant_schema SET version = 999")
        .expect("bump");
    let before = pg_rows(&newer);
    let out = copy(&home, &from, &newer);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&newer) && out.stderr.contains("999"),
        "{}",
        out.stderr
    );
    assert_eq!(pg_rows(&newer), before);

    // An unreachable server: named without its password (a runtime failure).
    let out = copy(
        &home,
        &from,
        "postgres://sextant:hunter2@127.0.0.1:1/nowhere",
    );
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("postgres://sextant@127.0.0.1:1/nowhere")
            && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );

    // Nor when the password is a parameter of the URL.
    let out = copy(
        &home,
        &from,
        "postgres://sextant@127.0.0.1:1/nowhere?password=hunter2&connect_timeout=5",
    );
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("postgres://sextant@127.0.0.1:1/nowhere?")
            && out.stderr.contains("connect_timeout=5")
            && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );

    // A source that does not exist is not created.
    let missing = home.path().join("nothing.db");
    let (_held, empty) = own_pg_database();
    let out = copy(&home, &format!("sqlite:{}", missing.display()), &empty);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("nothing.db"), "{}", out.stderr);
    assert!(!missing.exists());
    assert!(pg_counts(&empty).is_empty());

    // Onto itself.
    let out = copy(&home, &from, db.to_str().unwrap_or_default());
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("both the source and the target"),
        "{}",
        out.stderr
    );
}

/// Every table of the target empty but the rows its migrations seeded.
fn assert_holds_no_copied_row(url: &str, origin_before: &str) {
    for (table, rows) in pg_rows(url) {
        if table == "notification_origin" {
            assert_eq!(rows.len(), 1);
            assert!(rows[0].contains(origin_before), "{rows:?}");
        } else {
            assert!(rows.is_empty(), "{table}: {rows:?}");
        }
    }
}

fn origin(url: &str) -> String {
    client(url)
        .query_one("SELECT origin FROM notification_origin", &[])
        .expect("origin")
        .get(0)
}

#[test]
fn a_copy_that_fails_on_a_row_or_its_verification_or_is_killed_leaves_the_target_empty() {
    let (home, _) = used_store();
    let db = store_of(&home);
    let from = format!("sqlite:{}", db.display());
    let migrated = |url: &str| {
        let out = home.run(&["--db", url, "db", "migrate"]);
        assert_eq!(out.status, 0, "{}", out.stderr);
        origin(url)
    };

    // A row PostgreSQL refuses, in the last table written (after every
    // other table went in): the whole copy is rolled back.
    let (_held, url) = own_pg_database();
    let before = migrated(&url);
    let broken = home.path().join("broken.db");
    std::fs::copy(&db, &broken).expect("copy file");
    raw_db(&broken)
        .execute_batch("UPDATE plan_flows SET rank = 'x' WHERE name = 'g2'")
        .expect("fault");
    let out = copy(&home, &format!("sqlite:{}", broken.display()), &url);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("copying table plan_flows")
            && out.stderr.contains("\"x\"")
            && out.stderr.contains("rolled back"),
        "{}",
        out.stderr
    );
    assert_holds_no_copied_row(&url, &before);

    // The database changes what it stores (a trigger): the verification
    // sees it, says which table, and rolls back.
    let (_held, url) = own_pg_database();
    let before = migrated(&url);
    client(&url)
        .batch_execute(
            "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN NEW.payload := NEW.payload || ' '; RETURN NEW; END $$; \
             CREATE TRIGGER tamper BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION tamper();",
        )
        .expect("trigger");
    let out = home.run(&["db", "copy", "--from", &from, "--to", &url]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let events_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("events "))
        .unwrap_or_default();
    assert!(events_line.ends_with("DIFFERS"), "{}", out.stdout);
    assert!(
        out.stdout.lines().filter(|l| l.ends_with(" ok")).count() > 5,
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("verification failed: events differ")
            && out.stderr.contains("rolled back"),
        "{}",
        out.stderr
    );
    assert_holds_no_copied_row(&url, &before);

    // Killed (SIGKILL) while it writes: PostgreSQL drops the transaction.
    let big = home.path().join("big.db");
    std::fs::copy(&db, &big).expect("copy file");
    raw_db(&big)
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) \
             INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload) \
             SELECT '2026-01-01T00:00:00.000Z', 'action.update', 'action', printf('%036d', i), NULL, 'PENDING', 'ONGOING', \
                    '{\"padding\": \"' || hex(randomblob(40)) || '\"}' FROM n;",
        )
        .expect("many events");
    let (_held, url) = own_pg_database();
    let before = migrated(&url);
    let name = url
        .rsplit_once('/')
        .map(|p| p.1.to_string())
        .unwrap_or_default();
    let mut child = home.spawn(&[
        "db",
        "copy",
        "--from",
        &format!("sqlite:{}", big.display()),
        "--to",
        &url,
    ]);
    let mut watch = client(&service_url("SEXTANT_TEST_PG_URL"));
    // From its first COPY to its COMMIT, the copy's last statement is a
    // COPY, the sequences' setval or a read back (SELECT "column", …).
    let writing = |watch: &mut postgres::Client| -> bool {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND (query LIKE 'COPY%' OR query LIKE 'SELECT setval%' OR query LIKE 'SELECT \"%')",
                &[&name],
            )
            .expect("activity")
            .get(0);
        n > 0
    };
    wait_for("the copy to write", || writing(&mut watch));
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed by the signal, not finished");
    wait_for("the server to drop the copy's session", || {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .expect("activity")
            .get(0);
        n == 0
    });
    assert_holds_no_copied_row(&url, &before);
    // And the same source copies whole afterwards.
    let out = copy(&home, &format!("sqlite:{}", big.display()), &url);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.json()["rows"].as_u64().unwrap_or(0) > 150_000);

    // Back into SQLite, killed while its transaction spills into the WAL:
    // the file holds no copied row.
    let back = home.path().join("back/sextant.db");
    std::fs::create_dir(home.path().join("back")).expect("mkdir");
    let target = format!("sqlite:{}", back.display());
    assert_eq!(home.run(&["--db", &target, "db", "migrate"]).status, 0);
    let wal = home.path().join("back/sextant.db-wal");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let baseline = size(&wal);
    let mut child = home.spawn(&["db", "copy", "--from", &url, "--to", &target]);
    wait_for("the copy to spill into the WAL", || {
        size(&wal) > baseline + 4 * 1024 * 1024
    });
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed by the signal, not finished");
    for (table, rows) in sqlite_rows(&back) {
        if table != "notification_origin" {
            assert!(rows.is_empty(), "{table}: {} rows", rows.len());
        }
    }
}

#[test]
fn a_target_written_by_someone_else_as_the_copy_starts_is_refused_not_mixed() {
    let home = Home::new();
    let plan = home.import_json(
        "p.json",
        &json!({"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}}]}),
    );
    ok(&home, &["action-plan", "start", &plan, "--wait"]);
    let from = format!("sqlite:{}", store_of(&home).display());
    let (_held, url) = own_pg_database();
    assert_eq!(home.run(&["--db", &url, "db", "migrate"]).status, 0);
    // Another writer's transaction, not committed yet when the copy checks
    // the target (empty), committed while the copy waits for its lock.
    let mut other = client(&url);
    let mut tx = other.transaction().expect("begin");
    tx.batch_execute(
        "INSERT INTO events (at, event_type, object_type, object_uuid, payload) \
         VALUES ('2026-01-01T00:00:00Z', 'audit.create', 'audit', 'someone-else', '{}')",
    )
    .expect("insert");
    let child = home
        .cmd()
        .args(["db", "copy", "--from", &from, "--to", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let name = url
        .rsplit_once('/')
        .map(|p| p.1.to_string())
        .unwrap_or_default();
    let mut watch = client(&service_url("SEXTANT_TEST_PG_URL"));
    wait_for("the copy to wait for its lock", || {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND query LIKE 'LOCK TABLE%' AND wait_event_type = 'Lock'",
                &[&name],
            )
            .expect("activity")
            .get(0);
        n > 0
    });
    tx.commit().expect("commit");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty (events: 1 rows)"), "{stderr}");
    // Only the other writer's row.
    let rows = pg_rows(&url);
    assert_eq!(rows["events"].len(), 1, "{:?}", rows["events"]);
    assert!(rows["events"][0].contains("someone-else"));
    assert!(rows["actions"].is_empty() && rows["action_plans"].is_empty());
}

#[test]
fn the_operators_commands_print_the_same_on_the_postgresql_copy_as_on_the_sqlite_store() {
    let (home, plans) = used_store();
    let db = store_of(&home);
    let (_held, url) = own_pg_database();
    let out = copy(&home, db.to_str().unwrap_or_default(), &url);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let outputs = |location: &str| -> Vec<String> {
        let mut args: Vec<Vec<String>> = vec![
            vec!["history".into()],
            vec!["history".into(), "--format".into(), "json".into()],
            vec!["audit".into(), "list".into()],
            vec![
                "audit".into(),
                "list".into(),
                "--format".into(),
                "json".into(),
            ],
            vec!["audit-template".into(), "list".into()],
            vec!["action-plan".into(), "list".into()],
        ];
        for p in &plans {
            args.push(vec!["action-plan".into(), "show".into(), p.clone()]);
            args.push(vec![
                "action-plan".into(),
                "show".into(),
                p.clone(),
                "--format".into(),
                "json".into(),
            ]);
            args.push(vec![
                "action".into(),
                "list".into(),
                "--plan".into(),
                p.clone(),
            ]);
            args.push(vec!["history".into(), "--plan".into(), p.clone()]);
        }
        args.iter()
            .map(|a| {
                let out = run(home.cmd().arg("--db").arg(location).args(a));
                assert_eq!(out.status, 0, "{location} {a:?}: {}", out.stderr);
                out.stdout
            })
            .collect()
    };
    let on_sqlite = outputs(db.to_str().unwrap_or_default());
    let on_postgres = outputs(&url);
    for (s, p) in on_sqlite.iter().zip(&on_postgres) {
        assert_eq!(s, p);
    }
}

#[test]
fn a_target_whose_simulated_cloud_is_not_empty_is_refused_and_none_is_made_where_there_was_none() {
    let home = Home::new();
    let cluster = repo_root().join("examples/clusters/small.yaml");
    let cluster = cluster.to_str().expect("utf-8 path");
    let seed = |db: &str| {
        let out = run(home.cmd().args([
            "--db",
            db,
            "sim",
            "init",
            "--time-scale",
            "0",
            "--from",
            cluster,
        ]));
        assert_eq!(out.status, 0, "{}", out.stderr);
    };
    let source = home.path().join("src/sextant.db");
    std::fs::create_dir(home.path().join("src")).expect("mkdir");
    let from = format!("sqlite:{}", source.display());
    ok(&home, &["--db", &from, "db", "migrate"]);
    seed(&from);

    // A PostgreSQL target whose own cloud was seeded: refused before
    // anything is written, naming the cloud's tables; the target's store
    // and cloud are as they were.
    let (_held, url) = own_pg_database();
    seed(&url);
    let cloud_before = sim_show(&home, &url);
    let counts_before = pg_counts(&url);
    let out = copy(&home, &from, &url);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("simulated cloud")
            && out.stderr.contains("not empty")
            && out.stderr.contains("nodes: 4 rows"),
        "{}",
        out.stderr
    );
    assert_eq!(
        pg_counts(&url),
        counts_before,
        "the target's store untouched"
    );
    assert_eq!(sim_show(&home, &url), cloud_before);

    // The same into a SQLite target beside a seeded sim.db.
    let other = home.path().join("other/sextant.db");
    std::fs::create_dir(home.path().join("other")).expect("mkdir");
    let other_loc = format!("sqlite:{}", other.display());
    seed(&other_loc);
    let other_cloud = sim_show(&home, &other_loc);
    let store_before = other.exists().then(|| sqlite_rows(&other));
    let out = copy(&home, &from, &other_loc);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(other.exists().then(|| sqlite_rows(&other)), store_before);
    assert_eq!(sim_show(&home, &other_loc), other_cloud);

    // A target whose sim.db cannot be made (a directory of that name):
    // the store is copied and verified, the cloud is not, and the command
    // says so (exit status 1), and how to move it by hand.
    let blocked = home.path().join("blocked/sextant.db");
    std::fs::create_dir_all(home.path().join("blocked/sim.db")).expect("mkdir");
    let out = copy(&home, &from, &format!("sqlite:{}", blocked.display()));
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the store was copied")
            && out.stderr.contains("the simulated cloud was not")
            && out
                .stderr
                .contains(&home.path().join("blocked/sim.db").display().to_string())
            && out.stderr.contains("sim show --format json"),
        "{}",
        out.stderr
    );
    assert_eq!(
        sqlite_rows(&blocked),
        sqlite_rows(&source),
        "the store copied"
    );
    assert!(home.path().join("blocked/sim.db").is_dir());

    // A source with no cloud beside it: the store is copied, the report
    // says so, and no cloud is made beside the target.
    let bare = home.path().join("bare/sextant.db");
    for d in ["bare", "bare-copy", "bare-copy2"] {
        std::fs::create_dir(home.path().join(d)).expect("mkdir");
    }
    let bare_loc = format!("sqlite:{}", bare.display());
    ok(&home, &["--db", &bare_loc, "db", "migrate"]);
    let target = home.path().join("bare-copy/sextant.db");
    let out = copy(&home, &bare_loc, &format!("sqlite:{}", target.display()));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["sim"]["state"], "absent", "{report}");
    assert!(!home.path().join("bare-copy/sim.db").exists());
    let table = run(home.cmd().args([
        "db",
        "copy",
        "--from",
        &bare_loc,
        "--to",
        &format!(
            "sqlite:{}",
            home.path().join("bare-copy2/sextant.db").display()
        ),
    ]));
    assert_eq!(table.status, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("no simulated cloud at") && table.stdout.contains("nothing to copy"),
        "{}",
        table.stdout
    );
}
