//! `sextant db copy`: every row of every table of one store copied into
//! another (SQLite to PostgreSQL, or back), ids kept, then verified.
//!
//! Rules, checked before anything is written:
//! - the source is at this Sextant's newest schema version (else it is
//!   refused, naming both versions: migrate it first);
//! - the target is empty: no row in any table but those a migration fills
//!   by itself (`notification_origin`), which the copy replaces; it may be
//!   missing (an SQLite file) or unmigrated, and is migrated first;
//! - the two are not the same database.
//!
//! The source is read in one snapshot; the target is written in one
//! transaction: tables in foreign-key order, PostgreSQL through `COPY`,
//! its sequences moved past the ids written. Before that transaction
//! commits, every table is read back from the target and compared with
//! what was read from the source: the row count and a checksum of the rows
//! in key order ([`super::copy_rows::RowHasher`]). Any difference, any
//! error, or the process killed: the transaction is rolled back and the
//! target holds no row.

use super::copy_pg::PgSide;
use super::copy_rows::{CopySource, CopyTarget, RowHasher, TableInfo};
use super::copy_sqlite::SqliteSide;
use super::db_schema::{migrate, newest_schema_version, schema_version};
use super::location::Location;
use super::pg::redact;
use super::{StoreError, schema};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A copy refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Source and target are one database.
    #[error("{0} is both the source and the target")]
    SameDatabase(String),
    /// The source is not at this Sextant's schema version.
    #[error(
        "the source {source_db} has schema version {found}, this sextant's is {known}: {advice}"
    )]
    SourceVersion {
        /// The source, without its password.
        source_db: String,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
        /// What to do.
        advice: String,
    },
    /// The target holds rows.
    #[error(
        "the target {target} is not empty ({}): copy into a new database (nothing was written)",
        tables.iter().map(|(t, n)| format!("{t}: {n} rows")).collect::<Vec<_>>().join(", ")
    )]
    NotEmpty {
        /// The target, without its password.
        target: String,
        /// The tables that hold rows, and how many.
        tables: Vec<(String, u64)>,
    },
    /// Source and target are at the same version but their tables differ.
    #[error("the schemas of {source_db} and {target} differ: {what} (nothing was copied)")]
    SchemaDiffers {
        /// The source.
        source_db: String,
        /// The target.
        target: String,
        /// The difference.
        what: String,
    },
    /// Copying one table failed; the target's transaction was rolled back.
    #[error("copying table {table}: {cause} (rolled back: the target is as it was)")]
    Table {
        /// The table.
        table: String,
        /// Why.
        cause: Box<StoreError>,
    },
    /// Opening, reading or migrating a database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CopyError {
    /// Whether the operator's request is at fault (exit status 2), not the
    /// run (1).
    pub fn is_input(&self) -> bool {
        match self {
            Self::SameDatabase(_) | Self::SourceVersion { .. } | Self::NotEmpty { .. } => true,
            Self::Store(StoreError::TooNew { .. } | StoreError::NotFound { .. }) => true,
            Self::SchemaDiffers { .. } | Self::Table { .. } | Self::Store(_) => false,
        }
    }
}

/// One table's verification: the simulated cloud's copy makes the same
/// (its crate, which the host depends on, holds the one definition).
pub use sextant_sim_store::copy::TableCheck;

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source, without its password.
    pub from: String,
    /// The target, without its password.
    pub to: String,
    /// The target's schema version before the copy migrated it.
    pub target_version_before: i64,
    /// The schema version of both.
    pub schema_version: i64,
    /// Every table, in the order written.
    pub tables: Vec<TableCheck>,
    /// Rows copied.
    pub rows: u64,
    /// Wall-clock time of the copy and its verification, in seconds.
    pub seconds: f64,
    /// Whether every table's count and checksum are equal; if not, the
    /// transaction was rolled back.
    pub verified: bool,
}

/// How far a copy is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum CopyProgress {
    /// The rows to copy, counted before starting.
    Total(u64),
    /// Rows copied so far.
    Copied(u64),
    /// Reading the target back to verify it.
    Verifying,
}

/// Copies every row of `from` into `to` (see the module's rules).
pub fn copy(
    from: &Location,
    to: &Location,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<CopyReport, CopyError> {
    let started = std::time::Instant::now();
    if same_database(from, to) {
        return Err(CopyError::SameDatabase(to.to_string()));
    }
    let known = newest_schema_version();
    let mut source = open_source(from)?;
    check_source_version(&mut *source, from, known)?;
    let seeded = seeded_tables()?;
    let target_version_before = check_target(to, known, &seeded)?;
    migrate(to)?;
    let mut target = open_target(to)?;

    source.begin_snapshot()?;
    let tables = source.tables()?;
    let target_tables = target.tables()?;
    check_same_tables(
        source.location(),
        &tables,
        target.location(),
        &target_tables,
    )?;
    let order = write_order(&tables);
    let mut total = 0;
    for t in &order {
        total += source.count(&t.name)?;
    }
    progress(CopyProgress::Total(total));

    target.begin()?;
    // No one writes the target from here on; had anyone written it since
    // it was checked, it is refused now.
    let locked = target
        .lock(&order)
        .map_err(CopyError::from)
        .and_then(|()| refuse_rows(&mut *target, &order, &seeded, to));
    let copied = locked
        .and_then(|()| write_and_verify(&mut *source, &mut *target, &order, &seeded, progress));
    let checks = match copied {
        Ok(checks) => checks,
        Err(e) => {
            // Ending the session rolls back too, should this fail.
            if let Err(r) = target.rollback() {
                tracing::warn!("rolling back {}: {r}", target.location());
            }
            return Err(e);
        }
    };
    let verified = checks.iter().all(|c| c.equal);
    if verified {
        target.commit()?;
    } else {
        target.rollback()?;
    }
    source.end_snapshot()?;
    Ok(CopyReport {
        from: from.to_string(),
        to: to.to_string(),
        target_version_before,
        schema_version: known,
        rows: checks.iter().map(|c| c.source_rows).sum(),
        tables: checks,
        seconds: started.elapsed().as_secs_f64(),
        verified,
    })
}

/// Refuses a source at another schema version than `known`.
fn check_source_version(
    source: &mut dyn CopySource,
    from: &Location,
    known: i64,
) -> Result<(), CopyError> {
    let found = source.schema_version()?;
    if found == known {
        return Ok(());
    }
    let advice = if found < known {
        format!("migrate it first (sextant db migrate --db {from})")
    } else {
        "copy it with the newer sextant that wrote it".to_string()
    };
    Err(CopyError::SourceVersion {
        source_db: from.to_string(),
        found,
        known,
        advice,
    })
}

/// Refuses a target at a newer schema version than `known`, or holding
/// rows, before anything is written to it; its schema version.
fn check_target(to: &Location, known: i64, seeded: &BTreeSet<String>) -> Result<i64, CopyError> {
    let version = schema_version(to)?;
    if version > known {
        return Err(StoreError::TooNew {
            path: PathBuf::from(to.to_string()),
            found: version,
            known,
        }
        .into());
    }
    if let Some(mut t) = open_existing_target(to)? {
        let tables = t.tables()?;
        refuse_rows(&mut *t, &tables, seeded, to)?;
    }
    Ok(version)
}

/// [`CopyError::NotEmpty`] when any of `tables` but the `seeded` ones
/// holds a row.
fn refuse_rows(
    target: &mut dyn CopyTarget,
    tables: &[TableInfo],
    seeded: &BTreeSet<String>,
    to: &Location,
) -> Result<(), CopyError> {
    let mut full = Vec::new();
    for table in tables {
        let n = target.count(&table.name)?;
        if n > 0 && !seeded.contains(&table.name) {
            full.push((table.name.clone(), n));
        }
    }
    if full.is_empty() {
        return Ok(());
    }
    Err(CopyError::NotEmpty {
        target: to.to_string(),
        tables: full,
    })
}

/// In the target's open transaction: replaces the seeded tables' rows,
/// writes every table (hashing the source's rows as they go by), moves
/// the sequences, then reads every table back and hashes it.
fn write_and_verify(
    source: &mut dyn CopySource,
    target: &mut dyn CopyTarget,
    order: &[TableInfo],
    seeded: &BTreeSet<String>,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<Vec<TableCheck>, CopyError> {
    let in_table = |table: &str| {
        let table = table.to_string();
        move |cause| CopyError::Table {
            table,
            cause: Box::new(cause),
        }
    };
    let mut copied = 0u64;
    let mut sources = Vec::with_capacity(order.len());
    for t in order {
        if seeded.contains(&t.name) {
            target.clear(&t.name).map_err(in_table(&t.name))?;
        }
        let table_started = std::time::Instant::now();
        let mut hasher = RowHasher::new();
        let mut sink = target.sink(t).map_err(in_table(&t.name))?;
        source
            .read(t, &mut |row| {
                hasher.add(row);
                sink.push(row)?;
                copied += 1;
                if copied.is_multiple_of(1000) {
                    progress(CopyProgress::Copied(copied));
                }
                Ok(())
            })
            .map_err(in_table(&t.name))?;
        sink.finish().map_err(in_table(&t.name))?;
        tracing::debug!("copied {} in {:?}", t.name, table_started.elapsed());
        progress(CopyProgress::Copied(copied));
        sources.push(hasher.finish());
    }
    target.reset_ids(order).map_err(|cause| CopyError::Table {
        table: "(sequences)".to_string(),
        cause: Box::new(cause),
    })?;
    progress(CopyProgress::Verifying);
    let mut checks = Vec::with_capacity(order.len());
    for (t, source) in order.iter().zip(sources) {
        let table_started = std::time::Instant::now();
        let mut hasher = RowHasher::new();
        target
            .read(t, &mut |row| {
                hasher.add(row);
                Ok(())
            })
            .map_err(in_table(&t.name))?;
        tracing::debug!("read back {} in {:?}", t.name, table_started.elapsed());
        checks.push(TableCheck::new(&t.name, source, hasher.finish()));
    }
    Ok(checks)
}

/// The tables a fresh database already holds rows in (what migrations
/// insert): found by migrating an empty in-memory SQLite database.
fn seeded_tables() -> Result<BTreeSet<String>, StoreError> {
    let memory = Path::new(":memory:");
    let err = |e| super::sqlite_error(memory, e);
    let conn = rusqlite::Connection::open_in_memory().map_err(err)?;
    for sql in schema::MIGRATIONS {
        conn.execute_batch(sql).map_err(err)?;
    }
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    let mut seeded = BTreeSet::new();
    for name in names {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {}", super::copy_rows::quoted(&name)),
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if n > 0 {
            seeded.insert(name);
        }
    }
    Ok(seeded)
}

fn open_source(from: &Location) -> Result<Box<dyn CopySource>, StoreError> {
    Ok(match from {
        Location::Sqlite(path) => Box::new(SqliteSide::open(path, false)?),
        Location::Postgres(url) => Box::new(PgSide::open(url)?),
    })
}

/// The target as it is before the copy, to count its rows; `None` when
/// there is no SQLite file yet.
fn open_existing_target(to: &Location) -> Result<Option<Box<dyn CopyTarget>>, StoreError> {
    Ok(match to {
        Location::Sqlite(path) if !path.exists() => None,
        Location::Sqlite(path) => Some(Box::new(SqliteSide::open(path, false)?)),
        Location::Postgres(url) => Some(Box::new(PgSide::open(url)?)),
    })
}

fn open_target(to: &Location) -> Result<Box<dyn CopyTarget>, StoreError> {
    Ok(match to {
        Location::Sqlite(path) => Box::new(SqliteSide::open(path, true)?),
        Location::Postgres(url) => Box::new(PgSide::open(url)?),
    })
}

/// Whether `a` and `b` name one database (one file, or one URL).
fn same_database(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Sqlite(a), Location::Sqlite(b)) => {
            match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            }
        }
        (Location::Postgres(a), Location::Postgres(b)) => redact(a) == redact(b),
        _ => false,
    }
}

/// The same tables with the same columns on both sides (the order of the
/// columns may differ: rows are written by column name).
fn check_same_tables(
    source: &str,
    ours: &[TableInfo],
    target: &str,
    theirs: &[TableInfo],
) -> Result<(), CopyError> {
    let differs = |what: String| CopyError::SchemaDiffers {
        source_db: source.to_string(),
        target: target.to_string(),
        what,
    };
    let names = |ts: &[TableInfo]| ts.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>();
    let (a, b) = (names(ours), names(theirs));
    if let Some(t) = a.difference(&b).next() {
        return Err(differs(format!("table {t} is only in the source")));
    }
    if let Some(t) = b.difference(&a).next() {
        return Err(differs(format!("table {t} is only in the target")));
    }
    for t in ours {
        let Some(u) = theirs.iter().find(|u| u.name == t.name) else {
            continue;
        };
        let (x, y): (BTreeSet<_>, BTreeSet<_>) =
            (t.columns.iter().collect(), u.columns.iter().collect());
        if x != y {
            return Err(differs(format!(
                "table {} has columns ({}) in the source, ({}) in the target",
                t.name,
                t.columns.join(", "),
                u.columns.join(", ")
            )));
        }
    }
    Ok(())
}

/// The tables with every table a foreign key refers to before the tables
/// that refer to it; otherwise by name.
fn write_order(tables: &[TableInfo]) -> Vec<TableInfo> {
    let mut left: Vec<&TableInfo> = tables.iter().collect();
    left.sort_by(|a, b| a.name.cmp(&b.name));
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(tables.len());
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            t.parents.iter().all(|p| {
                p == &t.name || done.contains(p.as_str()) || !tables.iter().any(|u| &u.name == p)
            })
        });
        // A cycle: the first left goes next (the database will say which
        // row breaks a key).
        let t = left.remove(ready.unwrap_or(0));
        done.insert(&t.name);
        order.push(t.clone());
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> TableInfo {
        TableInfo {
            name: name.into(),
            columns: vec!["id".into()],
            key: vec!["id".into()],
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn tables_are_written_after_the_tables_they_refer_to() {
        let order = write_order(&[
            table("actions", &["action_plans"]),
            table("action_plans", &["audits", "strategies"]),
            table("audits", &["goals"]),
            table("events", &[]),
            table("goals", &[]),
            table("strategies", &["goals", "strategies"]),
        ]);
        let names: Vec<&str> = order.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "events",
                "goals",
                "audits",
                "strategies",
                "action_plans",
                "actions"
            ]
        );
    }

    #[test]
    fn the_seeded_tables_are_those_a_migration_fills() {
        let seeded = seeded_tables().expect("seeded");
        assert!(seeded.contains("notification_origin"), "{seeded:?}");
        assert!(!seeded.contains("events"), "{seeded:?}");
    }

    #[test]
    fn a_target_whose_tables_differ_at_the_same_version_is_refused_and_left_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let mut s = super::super::Store::open(&a).expect("open");
        s.sync_action_descriptions(&[("nop".into(), "does nothing".into())])
            .expect("write a row");
        drop(s);
        drop(super::super::Store::open(&b).expect("open"));
        rusqlite::Connection::open(&b)
            .and_then(|c| c.execute_batch("CREATE TABLE extra (x INTEGER)"))
            .expect("an extra table");
        let e = copy(
            &Location::Sqlite(a),
            &Location::Sqlite(b.clone()),
            &mut |_| {},
        )
        .expect_err("refused");
        assert!(!e.is_input(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("table extra is only in the target"), "{msg}");
        let rows: i64 = rusqlite::Connection::open(&b)
            .and_then(|c| c.query_row("SELECT count(*) FROM action_descriptions", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(rows, 0);
    }

    #[test]
    fn sqlite_to_sqlite_copies_every_row_and_refuses_a_used_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        {
            let mut s = super::super::Store::open(&a).expect("open");
            s.sync_action_descriptions(&[("nop".into(), "does nothing".into())])
                .expect("write a row");
        }
        let (from, to) = (Location::Sqlite(a.clone()), Location::Sqlite(b.clone()));
        let mut seen = Vec::new();
        let report = copy(&from, &to, &mut |p| seen.push(p)).expect("copy");
        assert!(report.verified);
        let descriptions = report
            .tables
            .iter()
            .find(|t| t.table == "action_descriptions")
            .expect("table");
        assert_eq!(descriptions.target_rows, 1);
        assert!(matches!(seen.first(), Some(CopyProgress::Total(_))));
        // The origin is the source's: the same database moved.
        let origin = |p: &Path| -> String {
            rusqlite::Connection::open(p)
                .and_then(|c| {
                    c.query_row("SELECT origin FROM notification_origin", [], |r| r.get(0))
                })
                .expect("origin")
        };
        assert_eq!(origin(&a), origin(&b));
        // Again: the target now holds rows.
        let e = copy(&from, &to, &mut |_| {}).expect_err("refused");
        assert!(e.is_input(), "{e}");
        assert!(e.to_string().contains("action_descriptions: 1 rows"), "{e}");
        // Onto itself.
        let e = copy(&from, &from, &mut |_| {}).expect_err("refused");
        assert!(matches!(e, CopyError::SameDatabase(_)), "{e}");
    }
}
