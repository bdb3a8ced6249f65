//! An SQLite file as a side of `db copy` (see `copy_rows.rs`): read in one
//! read transaction (a snapshot, with the file opened read-only when it is
//! the source), written in one immediate transaction with foreign keys
//! enforced, row by row through one prepared statement.

use super::copy_rows::{Cell, CopySide, CopySource, CopyTarget, RowSink, TableInfo};
use super::copy_rows::{column_list, quoted};
use super::{Result, StoreError, sqlite_error};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// An open SQLite database, for `db copy`.
pub(super) struct SqliteSide {
    conn: Connection,
    path: PathBuf,
    location: String,
}

/// The schema version of the file at `path`, read without writing (0 when
/// there is no file).
pub(super) fn schema_version_of(path: &Path) -> Result<i64> {
    if !path.exists() {
        return Ok(0);
    }
    SqliteSide::open(path, false)?.schema_version()
}

impl SqliteSide {
    /// Opens the existing database at `path`, read-only unless `write`.
    /// A missing file is [`StoreError::NotFound`] (never created here).
    pub fn open(path: &Path, write: bool) -> Result<Self> {
        let location = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::NotFound {
                kind: "database",
                id: location,
            });
        }
        let flags = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let err = |e| sqlite_error(path, e);
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;")
            .map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            location,
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite_error(&self.path, e)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }
}

impl CopySide for SqliteSide {
    fn location(&self) -> &str {
        &self.location
    }

    fn schema_version(&mut self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        let err = |e| sqlite_error(&self.path, e);
        let names: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(err)?;
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            // (column, position in the primary key, 0 when not in it)
            let columns: Vec<(String, i64)> = self
                .conn
                .prepare(&format!("PRAGMA table_info({})", quoted(&name)))
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?.collect())
                .map_err(err)?;
            let mut key: Vec<&(String, i64)> = columns.iter().filter(|c| c.1 > 0).collect();
            key.sort_by_key(|c| c.1);
            let mut key: Vec<String> = key.into_iter().map(|c| c.0.clone()).collect();
            let columns: Vec<String> = columns.into_iter().map(|c| c.0).collect();
            if key.is_empty() {
                key = columns.clone();
            }
            let mut parents: Vec<String> = self
                .conn
                .prepare(&format!("PRAGMA foreign_key_list({})", quoted(&name)))
                .and_then(|mut s| s.query_map([], |r| r.get(2))?.collect())
                .map_err(err)?;
            parents.sort();
            parents.dedup();
            tables.push(TableInfo {
                name,
                columns,
                key,
                parents,
            });
        }
        Ok(tables)
    }

    fn count(&mut self, table: &str) -> Result<u64> {
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quoted(table)),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    fn read(
        &mut self,
        table: &TableInfo,
        each: &mut dyn FnMut(&[Cell]) -> Result<()>,
    ) -> Result<()> {
        // BINARY: byte order, as PostgreSQL's "C" collation on the other side.
        let order: Vec<String> = table
            .key
            .iter()
            .map(|k| format!("{} COLLATE BINARY", quoted(k)))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            column_list(&table.columns),
            quoted(&table.name),
            order.join(", ")
        );
        let path = self.path.clone();
        let err = |e| sqlite_error(&path, e);
        let mut stmt = self.conn.prepare(&sql).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut cells = Vec::with_capacity(table.columns.len());
        while let Some(row) = rows.next().map_err(err)? {
            cells.clear();
            for i in 0..table.columns.len() {
                cells.push(match row.get_ref(i).map_err(err)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Real(x) => Cell::Real(x),
                    ValueRef::Text(t) => Cell::Text(
                        std::str::from_utf8(t)
                            .map_err(|e| err(rusqlite::Error::Utf8Error(i, e)))?
                            .to_string(),
                    ),
                    ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                });
            }
            each(&cells)?;
        }
        Ok(())
    }
}

impl CopySource for SqliteSide {
    fn begin_snapshot(&mut self) -> Result<()> {
        // A deferred transaction's snapshot starts at its first read; the
        // schema read here is one.
        self.batch("BEGIN")?;
        self.schema_version().map(|_| ())
    }

    fn end_snapshot(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }
}

impl CopyTarget for SqliteSide {
    fn begin(&mut self) -> Result<()> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn lock(&mut self, _tables: &[TableInfo]) -> Result<()> {
        // BEGIN IMMEDIATE holds the database's write lock already.
        Ok(())
    }

    fn clear(&mut self, table: &str) -> Result<()> {
        self.batch(&format!("DELETE FROM {}", quoted(table)))
    }

    fn sink<'a>(&'a mut self, table: &TableInfo) -> Result<Box<dyn RowSink + 'a>> {
        let marks = vec!["?"; table.columns.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quoted(&table.name),
            column_list(&table.columns)
        );
        let path = &self.path;
        let stmt = self.conn.prepare(&sql).map_err(|e| sqlite_error(path, e))?;
        Ok(Box::new(SqliteSink { stmt, path }))
    }

    fn reset_ids(&mut self, _tables: &[TableInfo]) -> Result<()> {
        // A rowid table hands out the largest id plus one.
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.batch("ROLLBACK")
    }
}

struct SqliteSink<'a> {
    stmt: rusqlite::Statement<'a>,
    path: &'a Path,
}

impl RowSink for SqliteSink<'_> {
    fn push(&mut self, row: &[Cell]) -> Result<()> {
        let values = row.iter().map(|c| match c {
            Cell::Null => Value::Null,
            Cell::Int(n) => Value::Integer(*n),
            Cell::Real(x) => Value::Real(*x),
            Cell::Text(s) => Value::Text(s.clone()),
            Cell::Blob(b) => Value::Blob(b.clone()),
        });
        self.stmt
            .execute(rusqlite::params_from_iter(values))
            .map(|_| ())
            .map_err(|e| sqlite_error(self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
