//! The PostgreSQL backend, as far as it goes: connecting, and the schema
//! (`pg_schema.rs`) migrated at open with the same versions as SQLite's.
//! It does not implement [`super::StoreBackend`] yet, so no command can
//! select it. The applier's lease is in `pg_lease.rs`, action transitions
//! (the group commit's transaction) and the event log in `pg_transitions.rs`.
//!
//! Migrations: each runs in its own transaction with the version bump, under
//! a transaction-scoped advisory lock, so hosts opening one database at once
//! migrate it once; a database at a newer version than this Sextant knows is
//! refused. `synchronous_commit` is on: a commit is on disk when it returns.

use super::pg_schema::PG_MIGRATIONS;
use super::{Cause, DatabaseCause, Result, StoreError};
use std::path::PathBuf;

/// The advisory lock key migrations hold (any constant all hosts share).
const MIGRATION_LOCK: i64 = 0x5e87_a400_0001;

/// An open PostgreSQL store.
pub struct PgStore {
    client: postgres::Client,
    /// The URL without its password, for messages.
    location: String,
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
        let location = redact(url);
        let err = |e| pg_error(&location, e);
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(err)?;
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(err)?;
        let mut store = Self { client, location };
        store.migrate()?;
        Ok(store)
    }

    pub(super) fn err(&self, e: postgres::Error) -> StoreError {
        pg_error(&self.location, e)
    }

    /// The database's URL without its password.
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    /// The connection, for the backend's own statements.
    pub(super) fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }

    /// The schema version (0 before the first migration).
    pub fn schema_version(&mut self) -> Result<i64> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('sextant_schema') IS NOT NULL", &[])
            .map_err(|e| self.err(e))?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let found = self
            .client
            .query_opt("SELECT version FROM sextant_schema", &[])
            .map_err(|e| self.err(e))?;
        Ok(found.map_or(0, |r| i64::from(r.get::<_, i32>(0))))
    }

    fn migrate(&mut self) -> Result<()> {
        let known = PG_MIGRATIONS.len() as i64;
        let location = self.location.clone();
        let err = |e| pg_error(&location, e);
        for (i, sql) in PG_MIGRATIONS.iter().enumerate() {
            let mut tx = self.client.transaction().map_err(err)?;
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
