//! The simulated cloud in a PostgreSQL database, shared by every host that
//! reaches it: its tables live in a schema of their own (`sextant_sim`),
//! beside the store's (which `db copy` and the store's migrations never
//! see), and [`Tx`] runs over a PostgreSQL transaction.
//!
//! Every write transaction first takes a transaction-scoped advisory lock:
//! operations of every host run one at a time, as SQLite's IMMEDIATE
//! transactions do, so a capacity check and the move it allows are one
//! atomic step however many hosts migrate at once. Reads take a
//! REPEATABLE READ snapshot.

use crate::SimError;
use crate::tx::{Column, Dialect, Row, StoredRow, Table, Tx};
use postgres::{Client, NoTls};

/// The advisory lock key of the simulated cloud's writes (any constant
/// every host shares; the store's keys are `0x5e87_a400_00xx`).
const SIM_LOCK: i64 = 0x5e87_a400_5100;

const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS sextant_sim;
CREATE TABLE IF NOT EXISTS sextant_sim.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sextant_sim.nodes (seq BIGSERIAL NOT NULL, uuid TEXT PRIMARY KEY, hostname TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sextant_sim.instances (seq BIGSERIAL NOT NULL, uuid TEXT PRIMARY KEY, host TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS instances_host ON sextant_sim.instances(host);
CREATE TABLE IF NOT EXISTS sextant_sim.storage_pools (seq BIGSERIAL NOT NULL, name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sextant_sim.volumes (seq BIGSERIAL NOT NULL, uuid TEXT PRIMARY KEY, pool TEXT NOT NULL, doc TEXT NOT NULL);
"#;

const DIALECT: Dialect = Dialect {
    prefix: "sextant_sim.",
    order: "seq",
    param: |n| format!("${n}"),
};

/// A PostgreSQL failure at `at` (the URL without its password), with the
/// server's message when there is one.
fn failure(at: &str) -> impl Fn(postgres::Error) -> SimError + '_ {
    move |e| SimError::Postgres {
        at: at.to_string(),
        cause: match e.as_db_error() {
            Some(db) => db.to_string(),
            None => e.to_string(),
        },
    }
}

/// Connects, and creates the schema if it is missing (under the lock, so
/// that hosts opening it at once do not race).
pub(crate) fn open(url: &str, at: &str) -> Result<Client, SimError> {
    let err = failure(at);
    let mut client = Client::connect(url, NoTls).map_err(&err)?;
    let present: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'sextant_sim' \
             AND tablename IN ('meta', 'nodes', 'instances', 'storage_pools', 'volumes')",
            &[],
        )
        .map_err(&err)?
        .get(0);
    if present < 5 {
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SIM_LOCK])
            .map_err(&err)?;
        tx.batch_execute(SCHEMA).map_err(&err)?;
        tx.commit().map_err(&err)?;
    }
    Ok(client)
}

/// Runs `f` in a transaction holding the simulated cloud's write lock,
/// committed when `f` succeeds.
pub(crate) fn write<T, E: From<SimError>>(
    client: &mut Client,
    at: &str,
    f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
) -> Result<T, E> {
    let err = failure(at);
    let mut tx = client.transaction().map_err(&err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SIM_LOCK])
        .map_err(&err)?;
    let v = f(&mut PgTx { tx: &mut tx, at })?;
    tx.commit().map_err(&err)?;
    Ok(v)
}

/// Runs `f` in a read-only REPEATABLE READ transaction: one snapshot.
pub(crate) fn read<T>(
    client: &mut Client,
    at: &str,
    f: impl FnOnce(&mut dyn Tx) -> Result<T, SimError>,
) -> Result<T, SimError> {
    let err = failure(at);
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(&err)?;
    let v = f(&mut PgTx { tx: &mut tx, at })?;
    tx.commit().map_err(&err)?;
    Ok(v)
}

struct PgTx<'t, 'c> {
    tx: &'t mut postgres::Transaction<'c>,
    at: &'t str,
}

impl PgTx<'_, '_> {
    fn run(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, SimError> {
        let at = self.at;
        self.tx.execute(sql, params).map_err(failure(at))
    }

    fn select(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, SimError> {
        let at = self.at;
        self.tx.query(sql, params).map_err(failure(at))
    }

    fn first(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<String>, SimError> {
        let at = self.at;
        let row = self.tx.query_opt(sql, params).map_err(failure(at))?;
        row.map(|r| r.try_get(0)).transpose().map_err(failure(at))
    }
}

impl Tx for PgTx<'_, '_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>, SimError> {
        self.first(&DIALECT.get_meta(), &[&key])
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), SimError> {
        self.run(&DIALECT.set_meta(), &[&key, &value]).map(drop)
    }

    fn doc(
        &mut self,
        table: Table,
        column: Column,
        value: &str,
    ) -> Result<Option<String>, SimError> {
        self.first(&DIALECT.doc(table, column), &[&value])
    }

    fn docs(&mut self, table: Table, by: Option<&str>) -> Result<Vec<(String, String)>, SimError> {
        let sql = DIALECT.docs(table, by.is_some());
        let rows = match by {
            Some(b) => self.select(&sql, &[&b])?,
            None => self.select(&sql, &[])?,
        };
        let at = self.at;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(failure(at))
    }

    fn update(&mut self, table: Table, row: &Row<'_>) -> Result<bool, SimError> {
        let by = row.by.unwrap_or("");
        let n = match table.by() {
            Some(_) => self.run(&DIALECT.update(table), &[&row.doc, &row.key, &by])?,
            None => self.run(&DIALECT.update(table), &[&row.doc, &row.key])?,
        };
        Ok(n > 0)
    }

    fn insert(&mut self, table: Table, row: &Row<'_>) -> Result<(), SimError> {
        let by = row.by.unwrap_or("");
        match table.by() {
            Some(_) => self.run(&DIALECT.insert(table), &[&row.doc, &row.key, &by])?,
            None => self.run(&DIALECT.insert(table), &[&row.doc, &row.key])?,
        };
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &str) -> Result<bool, SimError> {
        Ok(self.run(&DIALECT.delete(table), &[&key])? > 0)
    }

    fn clear(&mut self) -> Result<(), SimError> {
        let at = self.at;
        self.tx.batch_execute(&DIALECT.clear()).map_err(failure(at))
    }

    fn rows(&mut self, table: Table) -> Result<Vec<StoredRow>, SimError> {
        let rows = self.select(&DIALECT.rows(table), &[])?;
        let at = self.at;
        rows.iter()
            .map(|r| {
                Ok(StoredRow {
                    key: r.try_get(0)?,
                    by: r.try_get(1)?,
                    doc: r.try_get(2)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(failure(at))
    }

    fn metas(&mut self) -> Result<Vec<(String, String)>, SimError> {
        let rows = self.select(&DIALECT.metas(), &[])?;
        let at = self.at;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(failure(at))
    }
}

/// Whether the database at `url` holds the simulated cloud's tables,
/// found without creating them.
pub(crate) fn exists(url: &str, at: &str) -> Result<bool, SimError> {
    let err = failure(at);
    let mut client = Client::connect(url, NoTls).map_err(&err)?;
    let present: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'sextant_sim'",
            &[],
        )
        .map_err(&err)?
        .get(0);
    Ok(present > 0)
}
