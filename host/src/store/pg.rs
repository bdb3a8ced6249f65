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
use super::pg_sql::{Sql, Statements, int};
use super::{Cause, DatabaseCause, Result, StoreError};
use std::cell::RefCell;
use std::path::PathBuf;

/// The advisory lock key migrations hold (any constant all hosts share).
const MIGRATION_LOCK: i64 = 0x5e87_a400_0001;

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
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(err)?;
        let read_only: bool = client
            .query_one(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'",
                &[],
            )
            .map_err(err)?
            .get(0);
        let store = Self {
            client: RefCell::new(Some(client)),
            statements: Statements::default(),
            location,
            read_only,
        };
        if !read_only {
            store.migrate()?;
        }
        let (found, known) = (store.schema_version()?, PG_MIGRATIONS.len() as i64);
        if found > known {
            return Err(StoreError::TooNew {
                path: PathBuf::from(&store.location),
                found,
                known,
            });
        }
        if found < known {
            return Err(StoreError::ReadOnlyOld {
                path: PathBuf::from(&store.location),
                found,
                known,
            });
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
                .get(0);
            if !exists {
                return Ok(0);
            }
            let found = db.opt("SELECT version FROM sextant_schema", &[])?;
            Ok(found.map_or(0, |r| int(&r, 0)))
        })
    }

    /// The error of a store whose connection is gone (only while dropped).
    fn closed(&self) -> StoreError {
        StoreError::Commit(format!("database {}: connection closed", self.location))
    }

    fn migrate(&self) -> Result<()> {
        let known = PG_MIGRATIONS.len() as i64;
        // Already migrated (every open but the first): one read, no lock.
        // Every open of a host's appliers went through each migration's
        // transaction and the advisory lock, some hundred round trips
        // queued behind each other's locks.
        if self.schema_version()? == known {
            return Ok(());
        }
        let location = self.location.clone();
        let err = |e| pg_error(&location, e);
        let mut client = self.client.borrow_mut();
        let Some(client) = client.as_mut() else {
            return Err(self.closed());
        };
        for (i, sql) in PG_MIGRATIONS.iter().enumerate() {
            let mut tx = client.transaction().map_err(err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS sextant_schema (version INTEGER NOT NULL); \
                 INSERT INTO sextant_schema (version) \
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM sextant_schema);",
            )
            .map_err(err)?;
            let current = i64::from(
                tx.query_one("SELECT version FROM sextant_schema", &[])
                    .map_err(err)?
                    .get::<_, i32>(0),
            );
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
