//! The PostgreSQL backend against a real PostgreSQL (scripts/services/
//! postgres.sh, `SEXTANT_TEST_PG_URL`): each test makes a database of its
//! own. What is PostgreSQL's own: connecting, the schema's twin migrations.
//! The cases of the store's interface (the lease, hosts racing for it,
//! transitions, a plan stored whole) run on both backends here
//! (`on_both_backends!`), as the store's unit tests do beside the code.

use sextant::store::pg::PgStore;
use sextant::store::{Store, StoreError};
use sextant_e2e::*;

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// The schema version SQLite reaches: the one PostgreSQL must reach too.
fn sqlite_version() -> i64 {
    let dir = tempfile::tempdir().expect("tempdir");
    Store::open(dir.path().join("s.db"))
        .expect("open")
        .schema_version()
        .expect("version")
}

#[test]
fn open_migrates_to_sqlites_version_once_and_refuses_a_newer_schema() {
    let (_held, url) = own_pg_database();
    let s = PgStore::open(&url).expect("open");
    let known = sqlite_version();
    assert_eq!(s.schema_version().ok(), Some(known));
    drop(s);
    // The tables every later operation needs are there, with the latest
    // columns.
    let mut c = client(&url);
    let columns: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'actions' \
             AND column_name IN ('execute_failed', 'parents', 'outputs')",
            &[],
        )
        .expect("columns")
        .get(0);
    assert_eq!(columns, 3);
    // Reopened: nothing to do, the same version.
    let s = PgStore::open(&url).expect("reopen");
    assert_eq!(s.schema_version().ok(), Some(known));
    drop(s);
    // Written by a newer Sextant: refused, naming the database and both
    // versions, and nothing changed.
    c.batch_execute("UPDATE sextant_schema SET version = 999")
        .expect("bump");
    let e = PgStore::open(&url).err().expect("refused");
    assert!(
        matches!(e, StoreError::TooNew { found: 999, known: k, .. } if k == known),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(url.rsplit_once('/').map_or("", |p| p.1)) && msg.contains("999"),
        "{msg}"
    );
    let version: i32 = c
        .query_one("SELECT version FROM sextant_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, 999);
}

#[test]
fn a_failing_migration_leaves_the_database_as_it_was() {
    let (_held, url) = own_pg_database();
    // Something in the way of migration 1.
    let mut c = client(&url);
    c.batch_execute("CREATE TABLE goals (x INTEGER)")
        .expect("in the way");
    let e = PgStore::open(&url).err().expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("goals") && msg.contains("already exists"),
        "the error says what failed: {msg}"
    );
    // Migration 1 and its version bump went together: neither is there.
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 1, "only the table that was in the way");
    // Out of the way, it migrates.
    c.batch_execute("DROP TABLE goals").expect("drop");
    let s = PgStore::open(&url).expect("open");
    assert_eq!(s.schema_version().ok(), Some(sqlite_version()));
}

#[test]
fn hosts_opening_one_database_at_once_migrate_it_once() {
    let (_held, url) = own_pg_database();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|s| s.schema_version()))
        })
        .collect();
    let known = sqlite_version();
    for t in threads {
        let version = t.join().expect("no panic").expect("open").expect("version");
        assert_eq!(version, known);
    }
    let rows: i64 = client(&url)
        .query_one("SELECT count(*) FROM sextant_schema", &[])
        .expect("rows")
        .get(0);
    assert_eq!(rows, 1);
}

#[test]
fn a_password_in_the_url_is_never_in_an_error() {
    let url = service_url("SEXTANT_TEST_PG_URL");
    // A database that does not exist, reached with a password.
    let (scheme_user, rest) = url.split_once('@').expect("user@host");
    let (base, _) = rest.rsplit_once('/').expect("db");
    let with_password = format!("{scheme_user}:hunter2-secret@{base}/no_such_database_here");
    let e = PgStore::open(&with_password).err().expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("no_such_database_here"), "{msg}");
    assert!(!msg.contains("hunter2-secret"), "{msg}");
}

/// A fresh, migrated store of `backend`, with the temporary directory
/// that holds it on SQLite.
fn fresh(backend: &str) -> (TestDb, Scratch) {
    let dir = scratch();
    let db = match backend {
        "postgres" => TestDb::Postgres(fresh_pg_database(dir.path())),
        _ => TestDb::Sqlite(dir.path().join("s.db")),
    };
    drop(db.open());
    (db, dir)
}

/// A fresh store with one ONGOING plan, `p`.
fn database_with_a_plan(backend: &str) -> (TestDb, Scratch) {
    let (db, dir) = fresh(backend);
    db.raw()
        .exec("INSERT INTO action_plans (uuid, state, created_at) VALUES ('p', 'ONGOING', 't')");
    (db, dir)
}

/// For each `fn case(backend: &str)`, a module `case` with a test per
/// backend: the store's cases hold on both.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn sqlite() {
                super::$case("sqlite");
            }
            #[test]
            fn postgres() {
                super::$case("postgres");
            }
        }
    )+};
}

on_both_backends!(
    the_lease_keeps_a_second_host_out_until_it_expires_on_the_databases_clock,
    of_hosts_racing_for_one_plan_exactly_one_gets_the_lease,
    action_transitions_are_compare_and_set_with_their_events_and_an_unknown_state_writes_nothing,
    plan_transitions_are_compare_and_set_with_their_events,
    a_plan_is_stored_whole_with_its_events_and_read_back_with_parents_as_uuids,
);

fn the_lease_keeps_a_second_host_out_until_it_expires_on_the_databases_clock(backend: &str) {
    let (db, _dir) = database_with_a_plan(backend);
    let ttl = std::time::Duration::from_secs(30);
    let (mut a, mut b) = (db.open(), db.open());
    assert!(b.plan_lease_is_free("p").expect("free"));
    assert_eq!(a.acquire_lease("p", "host-a", ttl).ok(), Some(Ok(())));
    let held = b
        .acquire_lease("p", "host-b", ttl)
        .expect("asked")
        .expect_err("held by a");
    assert_eq!(held.owner, "host-a");
    assert!(!b.plan_lease_is_free("p").expect("free"));
    assert!(!b.renew_lease("p", "host-b", ttl).expect("renew"));
    assert!(a.renew_lease("p", "host-a", ttl).expect("renew"));
    // The expiry is now + ttl (on PostgreSQL, the database's now), in the
    // stored format.
    let lease = a.lease("p").expect("lease").expect("held");
    let raw = db.raw();
    let ahead: f64 = raw.rows(raw.pick(
        &format!(
            "SELECT CAST((julianday('{}') - julianday('now')) * 86400 AS TEXT)",
            lease.expires_at
        ),
        &format!(
            "SELECT extract(epoch FROM '{}'::timestamptz - now())::text",
            lease.expires_at
        ),
    ))[0][0]
        .as_deref()
        .and_then(|t| t.parse().ok())
        .expect("seconds ahead");
    assert!((25.0..=31.0).contains(&ahead), "{ahead} s ahead");
    assert!(
        lease.expires_at.ends_with('Z') && lease.expires_at.len() == 24,
        "{lease:?}"
    );
    // Expired: the other host takes it, and the first cannot renew.
    assert!(
        a.renew_lease("p", "host-a", std::time::Duration::ZERO)
            .expect("renew")
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(b.plan_lease_is_free("p").expect("free"));
    assert_eq!(b.acquire_lease("p", "host-b", ttl).ok(), Some(Ok(())));
    assert!(!a.renew_lease("p", "host-a", ttl).expect("renew"));
    // Taken over from a dead owner only if it still holds it.
    assert!(
        !a.take_over_lease("p", "host-a", "host-c", ttl)
            .expect("take")
    );
    assert!(
        a.take_over_lease("p", "host-b", "host-c", ttl)
            .expect("take")
    );
    b.release_lease("p", "host-b")
        .expect("not the owner: nothing happens");
    assert_eq!(
        b.lease("p").expect("lease").map(|l| l.owner),
        Some("host-c".into())
    );
    a.release_lease("p", "host-c").expect("release");
    assert_eq!(a.lease("p").expect("lease"), None);
}

fn of_hosts_racing_for_one_plan_exactly_one_gets_the_lease(backend: &str) {
    let (db, _dir) = database_with_a_plan(backend);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = db.open();
                barrier.wait();
                s.acquire_lease(
                    "p",
                    &format!("host-{i}"),
                    std::time::Duration::from_secs(30),
                )
                .expect("asked")
                .is_ok()
            })
        })
        .collect();
    let winners = threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .filter(|&won| won)
        .count();
    assert_eq!(winners, 1);
}

fn action_transitions_are_compare_and_set_with_their_events_and_an_unknown_state_writes_nothing(
    backend: &str,
) {
    use sextant::states::{ActionState as A, EventType};
    use sextant::store::apply::ActionTransition;
    let (db, _dir) = database_with_a_plan(backend);
    let c = db.raw();
    for (u, n) in [("u1", "one"), ("u2", "two"), ("u3", "three")] {
        c.exec(&format!(
            "INSERT INTO actions (uuid, action_plan_id, name, action_type, state, created_at) \
             SELECT '{u}', id, '{n}', 'nop', 'PENDING', 't' FROM action_plans WHERE uuid = 'p'"
        ));
    }
    let mut s = db.open();
    let t = |u: &str, from: A, to: A| {
        ActionTransition::new(u, &[from], to, None, None, EventType::ActionUpdate)
    };
    let results = s
        .action_transitions(&[
            // Plan and name known: the UPDATE alone.
            t("u1", A::Pending, A::Ongoing).known("p", "one"),
            // Read first.
            t("u2", A::Pending, A::Ongoing),
            // No longer in that state: nothing changes.
            t("u2", A::Pending, A::Skipped),
            ActionTransition::new(
                "u3",
                &[A::Pending],
                A::Failed,
                Some("Action failed in execute: boom".into()),
                None,
                EventType::ActionExecutionError,
            )
            .in_execute(),
            t("nobody", A::Pending, A::Ongoing),
        ])
        .expect("committed");
    assert!(matches!(
        results.as_slice(),
        [
            Ok(true),
            Ok(true),
            Ok(false),
            Ok(true),
            Err(StoreError::NotFound { .. })
        ]
    ));
    let states =
        c.rows("SELECT uuid, state, CAST(execute_failed AS TEXT) FROM actions ORDER BY uuid");
    let text =
        |v: [&str; 3]| -> Vec<Option<String>> { v.iter().map(|t| Some(t.to_string())).collect() };
    assert_eq!(
        states,
        [
            text(["u1", "ONGOING", "0"]),
            text(["u2", "ONGOING", "0"]),
            text(["u3", "FAILED", "1"])
        ]
    );
    let events = s.events(Some("p"), 0).expect("events");
    let got: Vec<(EventType, &str, Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.event_type,
                e.object_uuid.as_str(),
                e.old_state.map(|s| s.as_str()),
                e.new_state.map(|s| s.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                EventType::ActionUpdate,
                "u1",
                Some("PENDING"),
                Some("ONGOING")
            ),
            (
                EventType::ActionUpdate,
                "u2",
                Some("PENDING"),
                Some("ONGOING")
            ),
            (
                EventType::ActionExecutionError,
                "u3",
                Some("PENDING"),
                Some("FAILED")
            ),
        ]
    );
    assert_eq!(events[2].payload["name"], "three");
    assert_eq!(
        events[2].payload["status_message"],
        "Action failed in execute: boom"
    );

    // A state no Sextant knows: the batch fails naming the row, and the
    // transition before it in the batch is not committed either.
    c.exec("UPDATE actions SET state = 'RUNNING' WHERE uuid = 'u2'");
    let id = c.int("SELECT CAST(id AS TEXT) FROM actions WHERE uuid = 'u2'");
    let e = s
        .action_transitions(&[
            t("u1", A::Ongoing, A::Succeeded),
            t("u2", A::Ongoing, A::Succeeded),
        ])
        .expect_err("refused");
    let msg = e.to_string();
    assert!(
        matches!(&e, StoreError::Unknown { value, .. } if value.table == "actions" && value.row == id),
        "{msg}"
    );
    assert!(msg.contains("\"RUNNING\""), "{msg}");
    assert_eq!(
        c.rows("SELECT state FROM actions WHERE uuid = 'u1'"),
        [[Some("ONGOING".to_string())]]
    );
    assert_eq!(s.events(Some("p"), 0).expect("events").len(), 3);
}

fn plan_transitions_are_compare_and_set_with_their_events(backend: &str) {
    use sextant::states::{EventType, PlanState as P};
    let (db, _dir) = database_with_a_plan(backend);
    let mut s = db.open();
    assert_eq!(s.plan_state("p").ok(), Some(P::Ongoing));
    assert_eq!(s.last_event_id().ok(), Some(0));
    // Not in that state: nothing written.
    assert_eq!(
        s.plan_transition(
            "p",
            &[P::Recommended],
            P::Ongoing,
            None,
            EventType::PlanUpdate
        )
        .ok(),
        Some(false)
    );
    assert!(s.events(None, 0).expect("events").is_empty());
    assert_eq!(
        s.plan_transition(
            "p",
            &[P::Ongoing, P::Cancelling],
            P::Succeeded,
            Some("done"),
            EventType::PlanExecutionEnd
        )
        .ok(),
        Some(true)
    );
    assert_eq!(s.plan_state("p").ok(), Some(P::Succeeded));
    s.note(
        EventType::ActionExecutionRetry,
        "u1",
        Some("p"),
        serde_json::json!({"attempt": 1}),
    )
    .expect("note");
    let events = s.events(Some("p"), 0).expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[0].event_type,
            events[0].object_type.as_str(),
            events[0].old_state.map(|s| s.as_str()),
            events[0].new_state.map(|s| s.as_str()),
            events[0].payload["status_message"].as_str()
        ),
        (
            EventType::PlanExecutionEnd,
            "action_plan",
            Some("ONGOING"),
            Some("SUCCEEDED"),
            Some("done")
        )
    );
    assert_eq!(
        (
            events[1].event_type,
            events[1].object_type.as_str(),
            events[1].new_state.map(|s| s.as_str()),
            events[1].payload["attempt"].as_i64()
        ),
        (EventType::ActionExecutionRetry, "action", None, Some(1))
    );
    assert_eq!(s.last_event_id().ok(), Some(events[1].id));
    assert!(matches!(
        s.plan_state("no-such-plan"),
        Err(StoreError::NotFound { .. })
    ));
    // A state no Sextant knows, read back: refused, naming the row.
    db.raw().exec("UPDATE action_plans SET state = 'PAUSED'");
    for e in [
        s.plan_state("p").expect_err("refused"),
        s.plan_transition("p", &[P::Ongoing], P::Failed, None, EventType::PlanUpdate)
            .expect_err("refused"),
    ] {
        assert!(
            matches!(&e, StoreError::Unknown { value, .. } if value.table == "action_plans"),
            "{e}"
        );
        assert!(e.to_string().contains("\"PAUSED\""), "{e}");
    }
    assert_eq!(s.events(None, 0).expect("events").len(), 2);
}

fn a_plan_is_stored_whole_with_its_events_and_read_back_with_parents_as_uuids(backend: &str) {
    use sextant::states::{ActionState as A, EventType, PlanState as P};
    use sextant::store::plans::{NewPlan, NewPlanAction, NewPlanRow};
    let (db, _dir) = fresh(backend);
    let mut s = db.open();
    // More than one multi-row statement on either backend (64 and 1,000
    // rows), and a last one of another size.
    let n = 1070;
    let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let params: Vec<String> = (0..n).map(|i| format!(r#"{{"z":{i},"a":"x"}}"#)).collect();
    let parents: Vec<Vec<usize>> = (0..n)
        .map(|i| match i {
            0 => vec![],
            // Out of range: dropped, as an unknown parent name is.
            1 => vec![0, n + 5],
            _ => vec![i - 1, i - 2],
        })
        .collect();
    let plan = NewPlan {
        state: P::Recommended,
        planner: Some("weight".into()),
        efficacy_indicators: serde_json::json!([{"name": "released", "value": 2.0}]),
        actions: vec![NewPlanAction {
            name: "owned".into(),
            action_type: "nop".into(),
            action_type_version: "1.0.0".into(),
            input_parameters: serde_json::json!({"message": "hi"}),
            parents: vec!["nobody".into()],
            state: A::Skipped,
        }],
        rows: (0..n)
            .map(|i| NewPlanRow {
                name: &names[i],
                action_type: "migrate",
                action_type_version: "2.0.0",
                input_parameters_json: &params[i],
                parents: &parents[i],
                state: A::Pending,
            })
            .collect(),
        ..Default::default()
    };
    let uuid = s.create_plan(&plan).expect("stored").uuid;
    assert_eq!(s.plan_state(&uuid).ok(), Some(P::Recommended));
    let rows = s.actions(&uuid).expect("actions");
    assert_eq!(rows.len(), n + 1);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].state),
        ("owned", A::Skipped)
    );
    assert!(rows[0].parents.is_empty());
    for i in 0..n {
        let r = &rows[i + 1];
        assert_eq!(r.name, names[i]);
        assert_eq!(r.state, A::Pending);
        assert_eq!(r.input_parameters.to_string(), params[i]);
        let want: Vec<String> = parents[i]
            .iter()
            .filter(|&&p| p < n)
            .map(|&p| rows[p + 1].uuid.clone())
            .collect();
        assert_eq!(r.parents, want, "action {i}");
    }
    let events = s.events(Some(&uuid), 0).expect("events");
    assert_eq!(events.len(), n + 2);
    assert_eq!(events[0].event_type, EventType::PlanCreate);
    assert!(
        events[1..]
            .iter()
            .zip(&rows)
            .all(|(e, r)| e.event_type == EventType::ActionCreate
                && e.object_uuid == r.uuid
                && e.new_state.map(|s| s.as_str()) == Some(r.state.as_str()))
    );
    assert_eq!(
        db.raw()
            .int("SELECT CAST(count(*) AS TEXT) FROM efficacy_indicators"),
        1
    );

    // Two actions of one name: refused, naming it, and nothing stored.
    let twice = NewPlan {
        state: P::Recommended,
        rows: vec![
            NewPlanRow {
                name: "a",
                action_type: "nop",
                input_parameters_json: "{}",
                ..Default::default()
            },
            NewPlanRow {
                name: "a",
                action_type: "nop",
                input_parameters_json: "{}",
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let e = s.create_plan(&twice).expect_err("refused");
    assert!(
        e.to_string()
            .contains("two actions of the plan are named \"a\""),
        "{e}"
    );
    assert_eq!(
        db.raw()
            .int("SELECT CAST(count(*) AS TEXT) FROM action_plans"),
        1
    );
}

#[test]
fn a_database_that_only_accepts_reads_is_opened_read_only_and_a_write_says_why() {
    let (_held, url) = own_pg_database();
    let mut s = Store::open(sextant::store::Location::Postgres(url.clone())).expect("open");
    assert!(!s.is_read_only());
    s.sync_action_descriptions(&[("nop".into(), "does nothing".into())])
        .expect("written");
    drop(s);
    let name = url.rsplit_once('/').map_or("", |p| p.1).to_string();
    client(&url)
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .expect("read-only");
    let mut s = Store::open(sextant::store::Location::Postgres(url.clone())).expect("reopen");
    assert!(s.is_read_only());
    assert_eq!(
        s.action_description("nop").expect("reads work").as_deref(),
        Some("does nothing")
    );
    let e = s
        .sync_action_descriptions(&[("nop".into(), "changed".into())])
        .expect_err("a write is refused");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(e.to_string().contains(&name), "names the database: {e}");
    assert_eq!(
        s.action_description("nop").expect("reads").as_deref(),
        Some("does nothing"),
        "nothing changed"
    );
}
