//! The PostgreSQL backend: connecting, and the schema (`pg_schema.rs`)
//! migrated at open with the same versions as SQLite's. Its operations
//! mirror the SQLite files, one file per concern (`pg_plans.rs` for
//! `plans.rs`, …); `pg_backend.rs` implements [`super::StoreBackend`] with
//! them, and `pg_sql.rs` is how they talk to the database.
//!
//! Migrations: each runs in its own transaction with the version bump, under
//! a transaction-scoped advisory lock, so hosts opening one database at once
//! migrate it once; a database at a newer version than this Sextant knows is
//! refused. `synchronous_commit` is on: a commit is on disk when it returns.

use super::pg_schema::PG_MIGRATIONS;
use super::pg_sql::{PgRow, Sql, Statements, int};
use super::{Cause, DatabaseCause, Result, StoreError};
use std::cell::RefCell;
use std::path::PathBuf;

/// The advisory lock key migrations hold (any constant all hosts share).
const MIGRATION_LOCK: i64 = 0x5e87_a400_0001;

/// How long a statement waits for a lock another session holds before it
/// fails (PostgreSQL's `lock_timeout`), unless the server, the role or the
/// URL's `options` set one. The store's own transactions hold their row
/// locks for milliseconds; a wait this long is a session stuck with a
/// transaction open (an operator's `psql`, a host stopped mid-commit), and
/// an applier whose commit waited past its lease (15 s) would find the
/// plan claimed by another host. The failed call is retried like a lost
/// connection (`apply/reconnect.rs`), or reported.
pub const LOCK_TIMEOUT: &str = "10s";
/// How long one of the store's sessions may sit in an open transaction
/// doing nothing before the server ends it, releasing its locks
/// (`idle_in_transaction_session_timeout`), unless set elsewhere: the
/// store never leaves a transaction idle, so only a process stalled (or
/// cut off) mid-transaction meets it, and its lease has lapsed long before.
/// No `statement_timeout`: a migration, a `db copy` or the COPY of a plan
/// of 100,000 actions may rightly take minutes.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "1min";

/// An open PostgreSQL store: one connection, used by one thread at a time
/// (the store's interface is `Send`, not `Sync`), borrowed by each operation
/// (reads take `&self`).
pub struct PgStore {
    /// Always `Some` but while dropped (see `Drop`).
    client: RefCell<Option<postgres::Client>>,
    /// The statements this connection prepared.
    statements: Statements,
    /// The URL without its password, for messages.
    location: String,
    /// Whether the server only accepts reads (a standby, or a read-only
    /// default for the role).
    read_only: bool,
}

/// `url` with any password left out: what messages may show.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let tail = redact_query(tail);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// The path and query of a URL with a `password=` parameter's value left out.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let kept: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=…"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", kept.join("&"))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DB`)
    /// and migrates it.
    pub fn open(url: &str) -> Result<Self> {
        outside_runtime(|| Self::connect(url))
    }

    fn connect(url: &str) -> Result<Self> {
        let location = redact(url);
        let err = |e| pg_error(&location, e);
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(err)?;
        // The bounds below, where nothing else (postgresql.conf, ALTER ROLE
        // or DATABASE … SET, the URL's `options`) set one: 0 is the default.
        // One round trip, with whether the server only accepts reads and
        // whether the database has a schema yet; its version is a second.
        // (An applier opens the store once per plan: the check used to be
        // eight round trips, half of them to prepare statements.)
        let replies = client
            .simple_query(&format!(
                "SET synchronous_commit = on; \
                 SELECT set_config('lock_timeout', '{LOCK_TIMEOUT}', false) \
                 WHERE current_setting('lock_timeout') = '0'; \
                 SELECT set_config('idle_in_transaction_session_timeout', '{IDLE_IN_TRANSACTION_TIMEOUT}', false) \
                 WHERE current_setting('idle_in_transaction_session_timeout') = '0'; \
                 SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only, \
                 to_regclass('sextant_schema') IS NOT NULL AS has_schema;"
            ))
            .map_err(err)?;
        let (read_only, has_schema) = replies
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r)
                    if r.columns().first().is_some_and(|c| c.name() == "read_only") =>
                {
                    Some((r.get(0) == Some("t"), r.get(1) == Some("t")))
                }
                _ => None,
            })
            .unwrap_or_default();
        let found = if has_schema {
            version_of(&mut client).map_err(err)?
        } else {
            0
        };
        let store = Self {
            client: RefCell::new(Some(client)),
            statements: Statements::default(),
            location,
            read_only,
        };
        let known = PG_MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::TooNew {
                path: PathBuf::from(&store.location),
                found,
                known,
            });
        }
        if found < known {
            if read_only {
                return Err(StoreError::ReadOnlyOld {
                    path: PathBuf::from(&store.location),
                    found,
                    known,
                });
            }
            store.migrate()?;
        }
        Ok(store)
    }

    pub(super) fn err(&self, e: postgres::Error) -> StoreError {
        pg_error(&self.location, e)
    }

    /// The database's URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the server accepts only reads.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `f` on the connection, outside any transaction (one statement,
    /// or reads whose consistency does not matter).
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&mut Sql<'_, postgres::Client>) -> Result<T>,
    ) -> Result<T> {
        outside_runtime(|| {
            let mut c = self.client.borrow_mut();
            f(&mut Sql {
                c: c.as_mut().ok_or_else(|| self.closed())?,
                location: &self.location,
                statements: &self.statements,
            })
        })
    }

    /// Runs `f` on the bare connection (statements of the backend's own that
    /// need the driver itself: LISTEN, notifications, a transaction it
    /// manages).
    pub(super) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T>,
    ) -> Result<T> {
        outside_runtime(|| {
            let mut c = self.client.borrow_mut();
            f(c.as_mut().ok_or_else(|| self.closed())?)
        })
    }

    /// Runs `f` in one transaction, committed only if `f` succeeds.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Sql<'_, postgres::Transaction<'_>>) -> Result<T>,
    ) -> Result<T> {
        outside_runtime(|| {
            let mut c = self.client.borrow_mut();
            let c = c.as_mut().ok_or_else(|| self.closed())?;
            let mut tx = c.transaction().map_err(|e| self.err(e))?;
            let v = f(&mut Sql {
                c: &mut tx,
                location: &self.location,
                statements: &self.statements,
            })?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(v)
        })
    }

    /// The schema version (0 before the first migration).
    pub fn schema_version(&self) -> Result<i64> {
        self.read(|db| {
            let exists: bool = db
                .one("SELECT to_regclass('sextant_schema') IS NOT NULL", &[])?
                .get(0)?;
            if !exists {
                return Ok(0);
            }
            let found = db.opt("SELECT version FROM sextant_schema", &[])?;
            found.map_or(Ok(0), |r| int(&r, 0))
        })
    }

    /// The error of a store whose connection is gone (only while dropped).
    fn closed(&self) -> StoreError {
        StoreError::Commit(format!("database {}: connection closed", self.location))
    }

    /// Migrates the database to the newest version (each migration in its
    /// own transaction under the advisory lock: another host may be
    /// migrating it at the same time).
    fn migrate(&self) -> Result<()> {
        let known = PG_MIGRATIONS.len() as i64;
        let location = self.location.clone();
        let err = |e| pg_error(&location, e);
        let mut client = self.client.borrow_mut();
        let Some(client) = client.as_mut() else {
            return Err(self.closed());
        };
        for (i, sql) in PG_MIGRATIONS.iter().enumerate() {
            let mut tx = client.transaction().map_err(err)?;
            // Another host's migration may hold the lock for as long as it
            // takes: waited for, whatever the session's lock_timeout.
            tx.batch_execute("SET LOCAL lock_timeout = 0")
                .map_err(err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS sextant_schema (version INTEGER NOT NULL); \
                 INSERT INTO sextant_schema (version) \
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM sextant_schema);",
            )
            .map_err(err)?;
            let query = "SELECT version FROM sextant_schema";
            let current = int(
                &PgRow::one(&location, query, tx.query_one(query, &[]).map_err(err)?),
                0,
            )?;
            if current > known {
                return Err(StoreError::TooNew {
                    path: PathBuf::from(&location),
                    found: current,
                    known,
                });
            }
            if current > i as i64 {
                // Already there (another host, or an earlier open).
                continue;
            }
            tx.batch_execute(sql).map_err(err)?;
            tx.execute("UPDATE sextant_schema SET version = $1", &[&(i as i32 + 1)])
                .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::debug!("migrated {location} to schema version {}", i + 1);
        }
        Ok(())
    }
}

impl Drop for PgStore {
    /// Closing the connection blocks on the driver's runtime too.
    fn drop(&mut self) {
        let client = self.client.get_mut().take();
        let statements = std::mem::take(&mut self.statements);
        outside_runtime(|| drop((statements, client)));
    }
}

/// Runs `f`, which blocks on the database, where blocking is allowed: the
/// driver runs its own small runtime, which cannot start on a thread of an
/// async runtime (the applier's and the API's call the store from their
/// tasks), so such a thread is first handed back to its runtime.
fn outside_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The schema version in `sextant_schema` (0 when it has no row), in one
/// round trip.
fn version_of(client: &mut postgres::Client) -> std::result::Result<i64, postgres::Error> {
    Ok(client
        .simple_query("SELECT version FROM sextant_schema")?
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .unwrap_or(0))
}

pub(super) fn pg_error(location: &str, e: postgres::Error) -> StoreError {
    StoreError::Database {
        path: PathBuf::from(location),
        cause: DatabaseCause(Cause::Postgres(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        assert_eq!(
            PG_MIGRATIONS.len(),
            super::super::schema::MIGRATIONS.len(),
            "a migration appended to schema.rs needs its PostgreSQL twin in pg_schema.rs"
        );
    }

    /// A store on a fresh test database (its URL with `url_tail` appended),
    /// with the dummy goal and template `t1`; first, what drops the
    /// database (bound first, dropped after the store).
    fn store_with_template(
        url_tail: &str,
    ) -> (
        super::super::testing::TestDatabase,
        String,
        PgStore,
        super::super::audits::TemplateRow,
    ) {
        let (url, database) = super::super::testing::fresh_pg_database();
        let s = PgStore::open(&format!("{url}{url_tail}")).expect("open");
        s.with_client(|c| {
            c.batch_execute(
                "INSERT INTO goals (uuid, name, display_name, created_at) \
                 VALUES ('g', 'dummy', 'Dummy', 't')",
            )
            .map_err(|e| s.err(e))
        })
        .expect("goal");
        let mut s = s;
        let t = s
            .create_template(&super::super::audits::NewTemplate {
                name: "t1",
                description: "",
                goal: "dummy",
                strategy: None,
                scope: serde_json::json!([]),
                default_parameters: serde_json::json!({}),
                policy: None,
                policy_content: None,
            })
            .expect("template");
        (database, url, s, t)
    }

    fn setting(s: &PgStore, name: &str) -> String {
        s.with_client(|c| {
            c.query_one(&format!("SHOW {name}"), &[])
                .map_err(|e| s.err(e))
        })
        .expect("show")
        .get(0)
    }

    /// A row another session holds locked (an operator's open
    /// transaction, a host stalled mid-commit) makes a store call fail
    /// after `lock_timeout`, with an error that says it waited for a lock
    /// and on which table, and nothing written; before, it waited for as
    /// long as the other held the lock. (The URL's `options` shorten the
    /// wait to 1 s here.)
    #[test]
    fn a_row_lock_held_elsewhere_fails_the_store_call_within_lock_timeout_writing_nothing() {
        use super::super::StoreBackend;
        use std::time::{Duration, Instant};
        let (_database, url, mut s, t) = store_with_template("?options=-c%20lock_timeout%3D1s");
        assert_eq!(setting(&s, "lock_timeout"), "1s");
        let mut other = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let mut holder = other.transaction().expect("begin");
        holder
            .execute(
                "SELECT 1 FROM audit_templates WHERE uuid = $1 FOR UPDATE",
                &[&t.uuid],
            )
            .expect("lock the row");
        let (tx, rx) = std::sync::mpsc::channel();
        let uuid = t.uuid.clone();
        let started = Instant::now();
        let call = std::thread::spawn(move || {
            let r = s.update_template(
                &uuid,
                &super::super::lifecycle::TemplateChange {
                    name: None,
                    description: Some("never written"),
                    policy: None,
                },
            );
            let _ = tx.send((r.map(|_| ()), started.elapsed()));
            s
        });
        let answer = rx.recv_timeout(Duration::from_secs(20));
        // Whatever happened, the lock goes: a store call still waiting ends.
        holder.rollback().expect("rollback");
        let (result, waited) = answer.expect("the store call still waits for the lock after 20 s");
        let e = result.expect_err("the row is locked");
        let msg = e.to_string();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
            "waited {waited:?}: {msg}"
        );
        assert!(
            msg.contains("lock timeout")
                && msg.contains("audit_templates")
                && msg.contains("another session")
                && msg.contains(&redact(&url)),
            "{msg}"
        );
        let s = call.join().expect("the call's thread");
        assert_eq!(s.template(&t.uuid).expect("t1"), t);
    }

    /// Unless the server, the role or the URL sets them, a connection
    /// waits at most [`LOCK_TIMEOUT`] for a lock and the server ends one
    /// of its transactions left idle for [`IDLE_IN_TRANSACTION_TIMEOUT`];
    /// what the URL's `options` set is kept.
    #[test]
    fn the_store_bounds_lock_waits_and_idle_transactions_unless_told_otherwise() {
        let (_database, _, s, _) = store_with_template("");
        assert_eq!(setting(&s, "lock_timeout"), "10s");
        assert_eq!(setting(&s, "idle_in_transaction_session_timeout"), "1min");
        assert_eq!(setting(&s, "synchronous_commit"), "on");
        let (_database, _, s, _) = store_with_template("?options=-c%20lock_timeout%3D250ms");
        assert_eq!(setting(&s, "lock_timeout"), "250ms");
        assert_eq!(setting(&s, "idle_in_transaction_session_timeout"), "1min");
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://sextant:s3cret@db.example:5432/sextant"),
            "postgres://sextant@db.example:5432/sextant"
        );
        assert_eq!(
            redact("postgres://sextant@127.0.0.1:5432/x?sslmode=disable"),
            "postgres://sextant@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
