//! The storage a simulated cloud's operation sees inside one transaction,
//! whichever the backend ([`crate::sqlite`], [`crate::pg`]): rows of
//! model entries as JSON keyed by id, and the `meta` values (time scale,
//! clock, faults). Everything the sim decides (rules, faults, seeding) is
//! written once over this trait.

use crate::SimError;

/// A table of model entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Nodes,
    Instances,
    StoragePools,
    Volumes,
}

impl Table {
    /// Every table, in seeding order.
    pub(crate) const ALL: [Table; 4] = [
        Table::Nodes,
        Table::Instances,
        Table::StoragePools,
        Table::Volumes,
    ];

    /// The table's name (unqualified).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Nodes => "nodes",
            Table::Instances => "instances",
            Table::StoragePools => "storage_pools",
            Table::Volumes => "volumes",
        }
    }

    /// The column an entry is keyed by.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Table::StoragePools => "name",
            _ => "uuid",
        }
    }

    /// The column entries are looked up or grouped by besides their key:
    /// a node's hostname, an instance's host, a volume's pool.
    pub(crate) fn by(self) -> Option<&'static str> {
        match self {
            Table::Nodes => Some("hostname"),
            Table::Instances => Some("host"),
            Table::StoragePools => None,
            Table::Volumes => Some("pool"),
        }
    }
}

/// Which column a lookup matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    /// [`Table::key`].
    Key,
    /// [`Table::by`].
    By,
}

impl Column {
    /// The column's name in `table`.
    pub(crate) fn of(self, table: Table) -> &'static str {
        match self {
            Column::Key => table.key(),
            Column::By => table.by().unwrap_or_else(|| table.key()),
        }
    }
}

/// One row: its key, its lookup column's value (for tables that have one)
/// and its JSON document.
pub(crate) struct Row<'a> {
    pub key: &'a str,
    pub by: Option<&'a str>,
    pub doc: &'a str,
}

/// One stored row, as read whole (for copying it): its key, its lookup
/// column's value (for tables that have one) and its JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub key: String,
    pub by: Option<String>,
    pub doc: String,
}

/// The simulated cloud's storage inside one transaction. Write
/// transactions exclude each other across processes and hosts (SQLite: an
/// IMMEDIATE transaction; PostgreSQL: a transaction-scoped advisory lock),
/// so each operation's reads and writes are one atomic step.
pub(crate) trait Tx {
    /// A `meta` value.
    fn meta(&mut self, key: &str) -> Result<Option<String>, SimError>;
    /// Sets a `meta` value.
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), SimError>;
    /// The document of the first row (in insertion order) whose `column`
    /// is `value`.
    fn doc(
        &mut self,
        table: Table,
        column: Column,
        value: &str,
    ) -> Result<Option<String>, SimError>;
    /// `(key, document)` of every row, or of those whose [`Table::by`] is
    /// `by`, in insertion order.
    fn docs(&mut self, table: Table, by: Option<&str>) -> Result<Vec<(String, String)>, SimError>;
    /// Replaces the row with the same key; false when there is none.
    fn update(&mut self, table: Table, row: &Row<'_>) -> Result<bool, SimError>;
    /// Adds a row.
    fn insert(&mut self, table: Table, row: &Row<'_>) -> Result<(), SimError>;
    /// Removes the row with this key; false when there was none.
    fn delete(&mut self, table: Table, key: &str) -> Result<bool, SimError>;
    /// Removes every row and every `meta` value.
    fn clear(&mut self) -> Result<(), SimError>;
    /// Every row of `table`, whole, in insertion order.
    fn rows(&mut self, table: Table) -> Result<Vec<StoredRow>, SimError>;
    /// Every `meta` value, by key.
    fn metas(&mut self) -> Result<Vec<(String, String)>, SimError>;
}

/// The SQL of the operations, with the backend's table prefix
/// (`sextant_sim.` on PostgreSQL), order column (`rowid`, `seq`) and
/// parameter style (`?1`, `$1`) filled in: the statements are the same.
pub(crate) struct Dialect {
    pub prefix: &'static str,
    pub order: &'static str,
    pub param: fn(usize) -> String,
}

impl Dialect {
    pub(crate) fn get_meta(&self) -> String {
        format!(
            "SELECT value FROM {}meta WHERE key = {}",
            self.prefix,
            (self.param)(1)
        )
    }
    pub(crate) fn set_meta(&self) -> String {
        format!(
            "INSERT INTO {}meta (key, value) VALUES ({}, {}) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            self.prefix,
            (self.param)(1),
            (self.param)(2)
        )
    }
    pub(crate) fn doc(&self, t: Table, c: Column) -> String {
        format!(
            "SELECT doc FROM {}{} WHERE {} = {} ORDER BY {} LIMIT 1",
            self.prefix,
            t.name(),
            c.of(t),
            (self.param)(1),
            self.order
        )
    }
    pub(crate) fn docs(&self, t: Table, filtered: bool) -> String {
        let filter = match (filtered, t.by()) {
            (true, Some(by)) => format!(" WHERE {by} = {}", (self.param)(1)),
            _ => String::new(),
        };
        format!(
            "SELECT {}, doc FROM {}{}{filter} ORDER BY {}",
            t.key(),
            self.prefix,
            t.name(),
            self.order
        )
    }
    /// Parameters: doc, key, then by (for tables that have it).
    pub(crate) fn update(&self, t: Table) -> String {
        let by = t
            .by()
            .map(|c| format!(", {c} = {}", (self.param)(3)))
            .unwrap_or_default();
        format!(
            "UPDATE {}{} SET doc = {}{by} WHERE {} = {}",
            self.prefix,
            t.name(),
            (self.param)(1),
            t.key(),
            (self.param)(2)
        )
    }
    /// Parameters as [`Dialect::update`].
    pub(crate) fn insert(&self, t: Table) -> String {
        match t.by() {
            Some(by) => format!(
                "INSERT INTO {}{} (doc, {}, {by}) VALUES ({}, {}, {})",
                self.prefix,
                t.name(),
                t.key(),
                (self.param)(1),
                (self.param)(2),
                (self.param)(3)
            ),
            None => format!(
                "INSERT INTO {}{} (doc, {}) VALUES ({}, {})",
                self.prefix,
                t.name(),
                t.key(),
                (self.param)(1),
                (self.param)(2)
            ),
        }
    }
    pub(crate) fn delete(&self, t: Table) -> String {
        format!(
            "DELETE FROM {}{} WHERE {} = {}",
            self.prefix,
            t.name(),
            t.key(),
            (self.param)(1)
        )
    }
    /// Key, lookup column (NULL for tables without one) and document of
    /// every row, in insertion order.
    pub(crate) fn rows(&self, t: Table) -> String {
        format!(
            "SELECT {}, {}, doc FROM {}{} ORDER BY {}",
            t.key(),
            t.by().unwrap_or("CAST(NULL AS TEXT)"),
            self.prefix,
            t.name(),
            self.order
        )
    }
    pub(crate) fn metas(&self) -> String {
        format!("SELECT key, value FROM {}meta ORDER BY key", self.prefix)
    }
    pub(crate) fn clear(&self) -> String {
        let mut sql = String::new();
        for t in Table::ALL.iter().rev() {
            sql.push_str(&format!("DELETE FROM {}{};", self.prefix, t.name()));
        }
        sql.push_str(&format!("DELETE FROM {}meta;", self.prefix));
        sql
    }
}
