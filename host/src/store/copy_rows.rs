//! What `db copy` moves and how it checks it, whatever the backend: a row
//! as typed cells ([`Cell`]), a table's shape ([`TableInfo`]), the per-table
//! checksum ([`RowHasher`]), and the two roles a database plays
//! ([`CopySource`], [`CopyTarget`]), which `copy_sqlite.rs` and `copy_pg.rs`
//! implement.

use super::Result;
use sha2::{Digest, Sha256};

/// One value of a row, as both backends can hold it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A table as one side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableInfo {
    pub name: String,
    /// Column names, in the table's order.
    pub columns: Vec<String>,
    /// The primary key's columns (every column when there is none): the
    /// order rows are read in, on both sides.
    pub key: Vec<String>,
    /// The tables its foreign keys refer to.
    pub parents: Vec<String>,
}

/// The checksum of a table: SHA-256 over every row in key order, each cell
/// encoded with its type (`N`; `I` and 8 bytes; `R` and the 8 bytes of the
/// float; `T`/`B`, an 8-byte length, the bytes). The same rows in the same
/// order give the same checksum on either backend; a changed value, type,
/// row or order changes it.
pub(super) struct RowHasher {
    sha: Sha256,
    rows: u64,
}

impl RowHasher {
    pub fn new() -> Self {
        Self {
            sha: Sha256::new(),
            rows: 0,
        }
    }

    pub fn add(&mut self, row: &[Cell]) {
        for cell in row {
            match cell {
                Cell::Null => self.sha.update(b"N"),
                Cell::Int(n) => {
                    self.sha.update(b"I");
                    self.sha.update(n.to_be_bytes());
                }
                Cell::Real(x) => {
                    self.sha.update(b"R");
                    self.sha.update(x.to_bits().to_be_bytes());
                }
                Cell::Text(s) => {
                    self.sha.update(b"T");
                    self.sha.update((s.len() as u64).to_be_bytes());
                    self.sha.update(s.as_bytes());
                }
                Cell::Blob(b) => {
                    self.sha.update(b"B");
                    self.sha.update((b.len() as u64).to_be_bytes());
                    self.sha.update(b);
                }
            }
        }
        self.rows += 1;
    }

    /// The row count and the checksum, in hex.
    pub fn finish(self) -> (u64, String) {
        let digest = self.sha.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (self.rows, hex)
    }
}

/// A database `db copy` reads from or writes to.
pub(super) trait CopySide {
    /// The database, without its password.
    fn location(&self) -> &str;
    /// Its schema version (0 before the first migration).
    fn schema_version(&mut self) -> Result<i64>;
    /// Its tables (not its own bookkeeping: SQLite's `sqlite_*`,
    /// PostgreSQL's `sextant_schema`), by name.
    fn tables(&mut self) -> Result<Vec<TableInfo>>;
    /// How many rows `table` holds.
    fn count(&mut self, table: &str) -> Result<u64>;
    /// Every row of `table` (as the source describes it: the same columns
    /// in the same order), in the order of its key, each given to `each`.
    fn read(
        &mut self,
        table: &TableInfo,
        each: &mut dyn FnMut(&[Cell]) -> Result<()>,
    ) -> Result<()>;
}

/// The side rows are read from: one consistent snapshot for the whole copy.
pub(super) trait CopySource: CopySide {
    /// Starts the snapshot every later read sees.
    fn begin_snapshot(&mut self) -> Result<()>;
    /// Ends it.
    fn end_snapshot(&mut self) -> Result<()>;
}

/// The side rows are written to, in one transaction.
pub(super) trait CopyTarget: CopySide {
    /// Starts the transaction every later write is in.
    fn begin(&mut self) -> Result<()>;
    /// Keeps every other session from writing `tables` until the
    /// transaction ends (reads may go on).
    fn lock(&mut self, tables: &[TableInfo]) -> Result<()>;
    /// Deletes every row of `table` (the rows a migration seeded).
    fn clear(&mut self, table: &str) -> Result<()>;
    /// A writer of rows into `table` (columns as `table` lists them).
    fn sink<'a>(&'a mut self, table: &TableInfo) -> Result<Box<dyn RowSink + 'a>>;
    /// Moves the id generators past the ids written (PostgreSQL's
    /// sequences; SQLite has none to move).
    fn reset_ids(&mut self, tables: &[TableInfo]) -> Result<()>;
    /// Commits the transaction.
    fn commit(&mut self) -> Result<()>;
    /// Rolls it back: the database is as it was before [`CopyTarget::begin`].
    fn rollback(&mut self) -> Result<()>;
}

/// Rows going into one table.
pub(super) trait RowSink {
    fn push(&mut self, row: &[Cell]) -> Result<()>;
    /// Ends the table; until then a row may still be buffered.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// `name` quoted as an SQL identifier (both dialects).
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `cols` quoted and joined with commas.
pub(super) fn column_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(rows: &[Vec<Cell>]) -> String {
        let mut h = RowHasher::new();
        for r in rows {
            h.add(r);
        }
        h.finish().1
    }

    #[test]
    fn a_checksum_sees_every_value_its_type_and_the_order() {
        let a = vec![Cell::Int(1), Cell::Text("x".into()), Cell::Null];
        let b = vec![Cell::Int(2), Cell::Text("y".into()), Cell::Real(0.5)];
        let base = sum(&[a.clone(), b.clone()]);
        assert_eq!(base, sum(&[a.clone(), b.clone()]), "stable");
        assert_ne!(base, sum(&[b.clone(), a.clone()]), "order");
        // The same text in another type.
        let as_text = vec![Cell::Text("1".into()), Cell::Text("x".into()), Cell::Null];
        assert_ne!(base, sum(&[as_text, b.clone()]));
        // NULL is not an empty text.
        let empty = vec![
            Cell::Int(1),
            Cell::Text("x".into()),
            Cell::Text(String::new()),
        ];
        assert_ne!(base, sum(&[empty, b.clone()]));
        // Cells cannot slide into each other.
        let slid = vec![Cell::Int(1), Cell::Text("xN".into())];
        assert_ne!(
            sum(&[vec![Cell::Int(1), Cell::Text("x".into()), Cell::Null]]),
            sum(&[slid])
        );
        // A float's exact bits.
        let c = vec![Cell::Real(0.1 + 0.2)];
        assert_ne!(sum(&[c]), sum(&[vec![Cell::Real(0.3)]]));
        assert_eq!(sum(&[]).len(), 64);
    }
}
