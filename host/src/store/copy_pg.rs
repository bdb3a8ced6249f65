//! A PostgreSQL database as a side of `db copy` (see `copy_rows.rs`): read
//! in one `REPEATABLE READ READ ONLY` transaction (a snapshot), written in
//! one transaction through `COPY … FROM STDIN` (text format), its identity
//! sequences moved past the ids written. Text keys are read in the "C"
//! collation (byte order), as SQLite's BINARY orders them.

use super::copy_rows::{Cell, CopySide, CopySource, CopyTarget, RowSink, TableInfo};
use super::copy_rows::{column_list, quoted};
use super::pg::pg_error;
use super::pg::redact;
use super::pg_sql::{PgRow, int};
use super::{Result, StoreError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// Connects to `url` without touching its schema; `synchronous_commit` on.
pub(super) fn connect(url: &str) -> Result<postgres::Client> {
    let location = redact(url);
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).map_err(|e| pg_error(&location, e))?;
    client
        .batch_execute("SET synchronous_commit = on")
        .map_err(|e| pg_error(&location, e))?;
    Ok(client)
}

/// The schema version of the database (0 before the first migration).
pub(super) fn schema_version(client: &mut postgres::Client, location: &str) -> Result<i64> {
    let err = |e| pg_error(location, e);
    let exists: bool = client
        .query_one("SELECT to_regclass('sextant_schema') IS NOT NULL", &[])
        .map_err(err)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let query = "SELECT version FROM sextant_schema";
    let found = client.query_opt(query, &[]).map_err(err)?;
    found.map_or(Ok(0), |r| int(&PgRow::one(location, query, r), 0))
}

/// An open PostgreSQL database, for `db copy`.
pub(super) struct PgSide {
    client: postgres::Client,
    location: String,
    /// The columns of text types, per table (read in the "C" collation).
    text_columns: BTreeMap<String, BTreeSet<String>>,
}

impl PgSide {
    /// Connects to `url`.
    pub fn open(url: &str) -> Result<Self> {
        Ok(Self {
            client: connect(url)?,
            location: redact(url),
            text_columns: BTreeMap::new(),
        })
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        pg_error(&self.location, e)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| self.err(e))
    }

    /// `(table, column)` of every text-valued query result.
    fn pairs(&mut self, sql: &str) -> Result<Vec<(String, String)>> {
        let rows = self.client.query(sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl CopySide for PgSide {
    fn location(&self) -> &str {
        &self.location
    }

    fn schema_version(&mut self) -> Result<i64> {
        schema_version(&mut self.client, &self.location)
    }

    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        let names: Vec<String> = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                 AND c.relname <> 'sextant_schema' ORDER BY 1",
                &[],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = self.pairs(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
        )?;
        let text = self.pairs(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype)",
        )?;
        let keys = self.pairs(
            "SELECT c.relname::text, a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary AND n.nspname = current_schema() \
             ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum)",
        )?;
        let parents = self.pairs(
            "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_class p ON p.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = current_schema() ORDER BY 1, 2",
        )?;
        let of = |pairs: &[(String, String)], table: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|p| p.0 == table)
                .map(|p| p.1.clone())
                .collect()
        };
        self.text_columns.clear();
        for (t, c) in text {
            self.text_columns.entry(t).or_default().insert(c);
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let columns = of(&columns, &name);
                let mut key = of(&keys, &name);
                if key.is_empty() {
                    key = columns.clone();
                }
                let mut parents = of(&parents, &name);
                parents.dedup();
                TableInfo {
                    name,
                    columns,
                    key,
                    parents,
                }
            })
            .collect())
    }

    fn count(&mut self, table: &str) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", quoted(table)), &[])
            .map_err(|e| self.err(e))?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn read(
        &mut self,
        table: &TableInfo,
        each: &mut dyn FnMut(&[Cell]) -> Result<()>,
    ) -> Result<()> {
        let text = self.text_columns.get(&table.name);
        let order: Vec<String> = table
            .key
            .iter()
            .map(|k| match text.is_some_and(|t| t.contains(k)) {
                true => format!("{} COLLATE \"C\"", quoted(k)),
                false => quoted(k),
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            column_list(&table.columns),
            quoted(&table.name),
            order.join(", ")
        );
        let location = self.location.clone();
        let err = |e| pg_error(&location, e);
        let mut rows = self
            .client
            .query_raw(&sql, std::iter::empty::<&str>())
            .map_err(err)?;
        let mut cells = Vec::with_capacity(table.columns.len());
        while let Some(row) = rows.next().map_err(err)? {
            cells.clear();
            for (i, column) in row.columns().iter().enumerate() {
                cells.push(cell(&row, i, column.type_()).map_err(err)?.ok_or_else(|| {
                    StoreError::Refused {
                        kind: "column",
                        id: format!("{}.{}", table.name, column.name()),
                        state: format!("of type {}", column.type_()),
                        what: "db copy reads integers, floats, text, bytea and booleans"
                            .to_string(),
                    }
                })?);
            }
            each(&cells)?;
        }
        Ok(())
    }
}

/// Cell `i` of `row`, whose type is `ty`; `None` for a type `db copy`
/// does not move.
fn cell(
    row: &postgres::Row,
    i: usize,
    ty: &Type,
) -> std::result::Result<Option<Cell>, postgres::Error> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Option<Cell> {
        Some(v.map_or(Cell::Null, f))
    }
    Ok(match *ty {
        Type::INT2 => or_null(row.try_get::<_, Option<i16>>(i)?, |n| {
            Cell::Int(i64::from(n))
        }),
        Type::INT4 => or_null(row.try_get::<_, Option<i32>>(i)?, |n| {
            Cell::Int(i64::from(n))
        }),
        Type::INT8 => or_null(row.try_get::<_, Option<i64>>(i)?, Cell::Int),
        Type::FLOAT4 => or_null(row.try_get::<_, Option<f32>>(i)?, |x| {
            Cell::Real(f64::from(x))
        }),
        Type::FLOAT8 => or_null(row.try_get::<_, Option<f64>>(i)?, Cell::Real),
        Type::BOOL => or_null(row.try_get::<_, Option<bool>>(i)?, |b| {
            Cell::Int(i64::from(b))
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            or_null(row.try_get::<_, Option<String>>(i)?, Cell::Text)
        }
        Type::BYTEA => or_null(row.try_get::<_, Option<Vec<u8>>>(i)?, Cell::Blob),
        _ => None,
    })
}

impl CopySource for PgSide {
    fn begin_snapshot(&mut self) -> Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }

    fn end_snapshot(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }
}

impl CopyTarget for PgSide {
    fn begin(&mut self) -> Result<()> {
        // Events keep the ids copied (pg_schema.rs, migration 17).
        self.batch("BEGIN; SET LOCAL sextant.events_ordered = 'on'")
    }

    fn lock(&mut self, tables: &[TableInfo]) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = tables.iter().map(|t| quoted(&t.name)).collect();
        self.batch(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            names.join(", ")
        ))
    }

    fn clear(&mut self, table: &str) -> Result<()> {
        self.batch(&format!("DELETE FROM {}", quoted(table)))
    }

    fn sink<'a>(&'a mut self, table: &TableInfo) -> Result<Box<dyn RowSink + 'a>> {
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            quoted(&table.name),
            column_list(&table.columns)
        );
        let Self {
            client, location, ..
        } = self;
        let writer = client.copy_in(&sql).map_err(|e| pg_error(location, e))?;
        Ok(Box::new(PgSink {
            writer,
            line: Vec::with_capacity(1024),
            location,
        }))
    }

    fn reset_ids(&mut self, tables: &[TableInfo]) -> Result<()> {
        let generated = self.pairs(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped \
             AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL",
        )?;
        for (table, column) in generated {
            if !tables.iter().any(|t| t.name == table) {
                continue;
            }
            // The next id handed out is the largest written plus one.
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), \
                 COALESCE((SELECT max({c}) FROM {t}), 0) + 1, false)",
                c = quoted(&column),
                t = quoted(&table),
            );
            self.client
                .query_one(&sql, &[&quoted(&table), &column])
                .map_err(|e| pg_error(&self.location, e))?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<()> {
        self.batch("ROLLBACK")
    }
}

struct PgSink<'a> {
    writer: postgres::CopyInWriter<'a>,
    line: Vec<u8>,
    location: &'a str,
}

impl RowSink for PgSink<'_> {
    fn push(&mut self, row: &[Cell]) -> Result<()> {
        self.line.clear();
        copy_text_line(row, &mut self.line);
        self.writer
            .write_all(&self.line)
            .map_err(|e| io_error(self.location, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let location = self.location;
        self.writer
            .finish()
            .map(|_| ())
            .map_err(|e| pg_error(location, e))
    }
}

/// A failed write into `COPY`: the server's error when it is one.
pub(super) fn io_error(location: &str, e: std::io::Error) -> StoreError {
    match e
        .into_inner()
        .map(|inner| inner.downcast::<postgres::Error>())
    {
        Some(Ok(pg)) => pg_error(location, *pg),
        Some(Err(other)) => StoreError::Commit(format!("{location}: {other}")),
        None => StoreError::Commit(format!("{location}: write failed")),
    }
}

/// `s` as one cell of `COPY`'s text format: backslash, newline, carriage
/// return and tab escaped.
pub(super) fn copy_text(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `row` as one line of `COPY`'s text format: cells separated by tabs,
/// NULL as `\N`, backslash, newline, carriage return and tab escaped,
/// floats in the shortest form that reads back to the same bits, bytes as
/// `\\x` and hex.
fn copy_text_line(row: &[Cell], out: &mut Vec<u8>) {
    for (i, c) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match c {
            Cell::Null => out.extend_from_slice(b"\\N"),
            Cell::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Cell::Real(x) if x.is_infinite() => {
                out.extend_from_slice(if *x > 0.0 { b"Infinity" } else { b"-Infinity" })
            }
            Cell::Real(x) => {
                let _ = write!(out, "{x}");
            }
            Cell::Text(s) => copy_text(s, out),
            Cell::Blob(bytes) => {
                out.extend_from_slice(b"\\\\x");
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_one_line_of_copys_text_format() {
        let mut out = Vec::new();
        copy_text_line(
            &[
                Cell::Int(-7),
                Cell::Null,
                Cell::Text("a\tb\nc\\d\re".into()),
                Cell::Real(0.1),
                Cell::Real(f64::NEG_INFINITY),
                Cell::Blob(vec![0, 255]),
                Cell::Text(String::new()),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "-7\t\\N\ta\\tb\\nc\\\\d\\re\t0.1\t-Infinity\t\\\\x00ff\t\n"
        );
    }
}
