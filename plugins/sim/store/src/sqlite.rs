//! The simulated cloud in a SQLite file (`sim.db`): opening it (read-only
//! when it cannot be written), its schema, and [`Tx`] over a SQLite
//! transaction.

use crate::SimError;
use crate::tx::{Column, Dialect, Row, StoredRow, Table, Tx};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (uuid TEXT PRIMARY KEY, hostname TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (uuid TEXT PRIMARY KEY, host TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS instances_host ON instances(host);
CREATE TABLE IF NOT EXISTS storage_pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (uuid TEXT PRIMARY KEY, pool TEXT NOT NULL, doc TEXT NOT NULL);
"#;

const DIALECT: Dialect = Dialect {
    prefix: "",
    order: "rowid",
    param: |n| format!("?{n}"),
};

/// A SQLite failure at `at`.
fn failure(at: &str) -> impl Fn(rusqlite::Error) -> SimError + '_ {
    move |cause| SimError::Sqlite {
        at: at.to_string(),
        cause,
    }
}

/// How [`open`] opens the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
    /// Read-only, with SQLite told no one else writes it.
    Immutable,
}

/// Whether SQLite refused because the file or its directory cannot be
/// written.
fn is_write_refusal(e: &SimError) -> bool {
    matches!(
        e,
        SimError::Sqlite {
            cause: rusqlite::Error::SqliteFailure(f, _),
            ..
        } if matches!(
            f.code,
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::PermissionDenied
        )
    )
}

/// Whether `<db>-wal` exists and is not empty.
fn has_wal_content(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `path` for a `file:` URI, the characters a URI gives meaning to
/// percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens (creating if needed) the file, in a directory that exists.
/// Nothing is written when the file is already in WAL mode with its
/// tables; a file SQLite cannot write (a read-only file or directory) is
/// opened read-only, so `sim show` and the collector still read it.
pub(crate) fn open(path: &Path) -> Result<Connection, SimError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(SimError::NoDirectory {
            file: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    match open_with(path, Access::ReadWrite) {
        Err(e) if path.is_file() && is_write_refusal(&e) => {
            match open_with(path, Access::ReadOnly) {
                // No -shm file and a directory we cannot write: only as
                // immutable, right only when no -wal holds commits.
                Err(e) if is_write_refusal(&e) && !has_wal_content(path) => {
                    open_with(path, Access::Immutable)
                }
                r => r,
            }
        }
        r => r,
    }
}

fn open_with(path: &Path, access: Access) -> Result<Connection, SimError> {
    use rusqlite::OpenFlags;
    let at = path.display().to_string();
    let err = failure(&at);
    let read_only_flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match access {
        Access::ReadWrite => Connection::open(path),
        Access::ReadOnly => Connection::open_with_flags(path, read_only_flags),
        Access::Immutable => Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            read_only_flags,
        ),
    }
    .map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&err)?;
    let read_only =
        access != Access::ReadWrite || conn.is_readonly(rusqlite::MAIN_DB).map_err(&err)?;
    // A first read: a WAL file that cannot be read this way fails here, at
    // open, where the caller falls back to another access.
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(&err)?;
    if !read_only {
        if !mode.eq_ignore_ascii_case("wal") {
            conn.execute_batch("PRAGMA journal_mode = WAL;")
                .map_err(&err)?;
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(&err)?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'nodes', 'instances', 'storage_pools', 'volumes')",
                [],
                |r| r.get(0),
            )
            .map_err(&err)?;
        if tables < 5 {
            conn.execute_batch(SCHEMA).map_err(&err)?;
        }
    }
    Ok(conn)
}

/// Runs `f` in an IMMEDIATE transaction (writers exclude each other from
/// its start), committed when `f` succeeds.
pub(crate) fn write<T, E: From<SimError>>(
    conn: &mut Connection,
    at: &str,
    f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
) -> Result<T, E> {
    let err = failure(at);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&err)?;
    let v = f(&mut SqliteTx { conn: &tx, at })?;
    tx.commit().map_err(&err)?;
    Ok(v)
}

/// Runs `f` in a deferred transaction: one snapshot of the file.
pub(crate) fn read<T>(
    conn: &mut Connection,
    at: &str,
    f: impl FnOnce(&mut dyn Tx) -> Result<T, SimError>,
) -> Result<T, SimError> {
    let err = failure(at);
    let tx = conn.transaction().map_err(&err)?;
    let v = f(&mut SqliteTx { conn: &tx, at })?;
    tx.commit().map_err(&err)?;
    Ok(v)
}

struct SqliteTx<'a> {
    conn: &'a Connection,
    at: &'a str,
}

impl SqliteTx<'_> {
    fn err(&self, cause: rusqlite::Error) -> SimError {
        SimError::Sqlite {
            at: self.at.to_string(),
            cause,
        }
    }
}

impl Tx for SqliteTx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>, SimError> {
        self.conn
            .prepare_cached(&DIALECT.get_meta())
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), SimError> {
        self.conn
            .prepare_cached(&DIALECT.set_meta())
            .and_then(|mut st| st.execute(params![key, value]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn doc(
        &mut self,
        table: Table,
        column: Column,
        value: &str,
    ) -> Result<Option<String>, SimError> {
        self.conn
            .prepare_cached(&DIALECT.doc(table, column))
            .and_then(|mut st| st.query_row([value], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    fn docs(&mut self, table: Table, by: Option<&str>) -> Result<Vec<(String, String)>, SimError> {
        self.conn
            .prepare_cached(&DIALECT.docs(table, by.is_some()))
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(by), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .and_then(Iterator::collect)
            })
            .map_err(|e| self.err(e))
    }

    fn update(&mut self, table: Table, row: &Row<'_>) -> Result<bool, SimError> {
        let n = match table.by() {
            Some(_) => self
                .conn
                .prepare_cached(&DIALECT.update(table))
                .and_then(|mut st| st.execute(params![row.doc, row.key, row.by.unwrap_or("")])),
            None => self
                .conn
                .prepare_cached(&DIALECT.update(table))
                .and_then(|mut st| st.execute(params![row.doc, row.key])),
        }
        .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn insert(&mut self, table: Table, row: &Row<'_>) -> Result<(), SimError> {
        match table.by() {
            Some(_) => self
                .conn
                .prepare_cached(&DIALECT.insert(table))
                .and_then(|mut st| st.execute(params![row.doc, row.key, row.by.unwrap_or("")])),
            None => self
                .conn
                .prepare_cached(&DIALECT.insert(table))
                .and_then(|mut st| st.execute(params![row.doc, row.key])),
        }
        .map(drop)
        .map_err(|e| self.err(e))
    }

    fn delete(&mut self, table: Table, key: &str) -> Result<bool, SimError> {
        let n = self
            .conn
            .prepare_cached(&DIALECT.delete(table))
            .and_then(|mut st| st.execute([key]))
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn clear(&mut self) -> Result<(), SimError> {
        self.conn
            .execute_batch(&DIALECT.clear())
            .map_err(|e| self.err(e))
    }

    fn rows(&mut self, table: Table) -> Result<Vec<StoredRow>, SimError> {
        self.conn
            .prepare_cached(&DIALECT.rows(table))
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(StoredRow {
                        key: r.get(0)?,
                        by: r.get(1)?,
                        doc: r.get(2)?,
                    })
                })
                .and_then(Iterator::collect)
            })
            .map_err(|e| self.err(e))
    }

    fn metas(&mut self) -> Result<Vec<(String, String)>, SimError> {
        self.conn
            .prepare_cached(&DIALECT.metas())
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(|e| self.err(e))
    }
}

/// Whether `path` holds a simulated cloud: an existing file (its tables
/// are made when it is opened).
pub(crate) fn exists(path: &Path) -> bool {
    path.is_file()
}
