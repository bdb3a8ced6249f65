//! Moving a simulated cloud with its store (`sextant db copy`): every row
//! of its tables and every `meta` value (time scale, simulated clock,
//! faults) from one location into another, empty one, in one write
//! transaction that is read back and compared before it commits. The host
//! names the two locations; which tables there are is known only here.
//!
//! Rules: the target holds no row and no `meta` value (refused, naming its
//! tables, before and again inside the transaction); rows are written in
//! the source's insertion order (the order lookups and listings follow);
//! each table's rows and the `meta` values are compared by count and a
//! SHA-256 of the rows in that order, each value length-prefixed and NULL
//! apart from the empty text. Any difference or error rolls the target's
//! transaction back: it is as it was.

use crate::tx::{StoredRow, Table, Tx};
use crate::{SimDb, SimError, SimLocation};
use sha2::{Digest, Sha256};

/// One table's verification, after a copy: the simulated cloud's here,
/// and the host's store's (`sextant db copy` shows both alike).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    /// The table (here `nodes`, `instances`, `storage_pools`, `volumes`,
    /// `meta`).
    pub table: String,
    /// Rows read from the source.
    pub source_rows: u64,
    /// Rows read back from the target.
    pub target_rows: u64,
    /// SHA-256 of the source's rows in order (hex).
    pub source_checksum: String,
    /// The same, of the target's rows.
    pub target_checksum: String,
    /// Whether counts and checksums are equal.
    pub equal: bool,
}

impl TableCheck {
    /// `table`'s check from the source's and the target's row counts and
    /// checksums.
    pub fn new(table: &str, source: (u64, String), target: (u64, String)) -> Self {
        Self {
            table: table.to_string(),
            equal: source == target,
            source_rows: source.0,
            target_rows: target.0,
            source_checksum: source.1,
            target_checksum: target.1,
        }
    }
}

/// What a copy of a simulated cloud did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimCopyReport {
    /// The source, without its password.
    pub from: String,
    /// The target, without its password.
    pub to: String,
    /// Every table, `meta` last.
    pub tables: Vec<TableCheck>,
    /// Rows copied (`meta` values included).
    pub rows: u64,
}

impl SimCopyReport {
    /// Whether every table's count and checksum are equal.
    pub fn verified(&self) -> bool {
        self.tables.iter().all(|t| t.equal)
    }
}

/// A copy of a simulated cloud refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SimCopyError {
    /// The target holds rows.
    #[error(
        "the simulated cloud at {target} is not empty ({}): copy into a new one",
        tables.iter().map(|(t, n)| format!("{t}: {n} rows")).collect::<Vec<_>>().join(", ")
    )]
    NotEmpty {
        /// The target, without its password.
        target: String,
        /// The tables that hold rows, and how many.
        tables: Vec<(String, u64)>,
    },
    /// What was read back differs from what was read; rolled back.
    #[error(
        "the simulated cloud copied to {} differs from its source in {} (rolled back: it is as it was)",
        report.to,
        report.tables.iter().filter(|t| !t.equal).map(|t| t.table.as_str()).collect::<Vec<_>>().join(", ")
    )]
    Differs {
        /// Both sides' counts and checksums.
        report: SimCopyReport,
    },
    /// Opening, reading or writing failed; the target's transaction, if
    /// begun, was rolled back.
    #[error(transparent)]
    Sim(#[from] SimError),
}

impl SimCopyError {
    /// Whether the operator's request is at fault (exit status 2), not the
    /// run (1).
    pub fn is_input(&self) -> bool {
        matches!(self, Self::NotEmpty { .. })
    }
}

/// Whether a simulated cloud is at `at`, found without creating one: an
/// existing SQLite file, or a PostgreSQL database holding its schema.
pub fn exists(at: &SimLocation) -> Result<bool, SimError> {
    match at {
        SimLocation::Sqlite(path) => Ok(crate::sqlite::exists(path)),
        SimLocation::Postgres(url) => crate::pg::exists(url, &at.to_string()),
    }
}

/// Refuses a target that holds any row or `meta` value; creates nothing
/// where there is no simulated cloud yet.
pub fn check_target(to: &SimLocation) -> Result<(), SimCopyError> {
    if !exists(to)? {
        return Ok(());
    }
    let db = SimDb::open(to)?;
    let at = db.at.clone();
    let held = db.read(held_rows)?;
    refuse_rows(&at, held)
}

/// Copies the simulated cloud at `from` into `to` (see the module's
/// rules): `to` is created if needed and must be empty.
pub fn copy(from: &SimLocation, to: &SimLocation) -> Result<SimCopyReport, SimCopyError> {
    let source = SimDb::open(from)?;
    let read = source.read(Snapshot::read)?;
    drop(source);
    let mut target = SimDb::open(to)?;
    let to_shown = target.at.clone();
    let from_shown = from.to_string();
    target.write(|tx| -> Result<SimCopyReport, SimCopyError> {
        // Checked again under the write lock: no one wrote it since.
        refuse_rows(&to_shown, held_rows(tx)?)?;
        read.write(tx)?;
        let back = Snapshot::read(tx)?;
        let report = SimCopyReport {
            from: from_shown,
            to: to_shown.clone(),
            tables: read.compare(&back),
            rows: read.rows(),
        };
        if !report.verified() {
            return Err(SimCopyError::Differs { report });
        }
        Ok(report)
    })
}

/// The tables (and `meta`) that hold rows, with their counts.
fn held_rows(tx: &mut dyn Tx) -> Result<Vec<(String, u64)>, SimError> {
    let mut held = Vec::new();
    for t in Table::ALL {
        let n = tx.rows(t)?.len() as u64;
        if n > 0 {
            held.push((t.name().to_string(), n));
        }
    }
    let n = tx.metas()?.len() as u64;
    if n > 0 {
        held.push(("meta".to_string(), n));
    }
    Ok(held)
}

fn refuse_rows(target: &str, held: Vec<(String, u64)>) -> Result<(), SimCopyError> {
    if held.is_empty() {
        return Ok(());
    }
    Err(SimCopyError::NotEmpty {
        target: target.to_string(),
        tables: held,
    })
}

/// A whole simulated cloud as read in one transaction.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tables: Vec<(Table, Vec<StoredRow>)>,
    meta: Vec<(String, String)>,
}

impl Snapshot {
    fn read(tx: &mut dyn Tx) -> Result<Self, SimError> {
        let mut tables = Vec::new();
        for t in Table::ALL {
            tables.push((t, tx.rows(t)?));
        }
        Ok(Self {
            tables,
            meta: tx.metas()?,
        })
    }

    /// Inserts every row, in order, and sets every `meta` value.
    fn write(&self, tx: &mut dyn Tx) -> Result<(), SimError> {
        for (t, rows) in &self.tables {
            for r in rows {
                tx.insert(
                    *t,
                    &crate::tx::Row {
                        key: &r.key,
                        by: r.by.as_deref(),
                        doc: &r.doc,
                    },
                )?;
            }
        }
        for (k, v) in &self.meta {
            tx.set_meta(k, v)?;
        }
        Ok(())
    }

    fn rows(&self) -> u64 {
        let rows: usize = self.tables.iter().map(|(_, r)| r.len()).sum();
        (rows + self.meta.len()) as u64
    }

    /// Each table's count and checksum here (the source) and in `back`.
    fn compare(&self, back: &Snapshot) -> Vec<TableCheck> {
        let mut checks: Vec<TableCheck> = self
            .tables
            .iter()
            .zip(&back.tables)
            .map(|((t, rows), (_, back_rows))| {
                TableCheck::new(t.name(), rows_checksum(rows), rows_checksum(back_rows))
            })
            .collect();
        checks.push(TableCheck::new(
            "meta",
            meta_checksum(&self.meta),
            meta_checksum(&back.meta),
        ));
        checks
    }
}

/// Hashes one value: NULL, or its length and bytes.
fn hash_value(h: &mut Sha256, v: Option<&str>) {
    match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

fn rows_checksum(rows: &[StoredRow]) -> (u64, String) {
    let mut h = Sha256::new();
    for r in rows {
        hash_value(&mut h, Some(&r.key));
        hash_value(&mut h, r.by.as_deref());
        hash_value(&mut h, Some(&r.doc));
    }
    (rows.len() as u64, hex(&h.finalize()))
}

fn meta_checksum(meta: &[(String, String)]) -> (u64, String) {
    let mut h = Sha256::new();
    for (k, v) in meta {
        hash_value(&mut h, Some(k));
        hash_value(&mut h, Some(v));
    }
    (meta.len() as u64, hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCloud;
    use sextant_plugin_api::model::ClusterModel;

    #[test]
    fn a_table_check_is_equal_only_when_both_count_and_checksum_are() {
        let side = |n, sum: &str| (n, sum.to_string());
        assert!(TableCheck::new("t", side(2, "ab"), side(2, "ab")).equal);
        assert!(!TableCheck::new("t", side(2, "ab"), side(3, "ab")).equal);
        let c = TableCheck::new("t", side(2, "ab"), side(2, "cd"));
        assert!(!c.equal);
        assert_eq!(
            (c.table.as_str(), c.source_rows, c.target_rows),
            ("t", 2, 2)
        );
        assert_eq!(
            (c.source_checksum.as_str(), c.target_checksum.as_str()),
            ("ab", "cd")
        );
    }

    /// A cloud that has lived: seeded with faults, an instance migrated,
    /// the simulated clock moved.
    fn lived(t: &TestCloud) -> SimDb {
        let mut db = t.open();
        let m: ClusterModel = serde_json::from_value(serde_json::json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a \"quoted\"\ttab", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1}
            ],
            "storage_pools": [{"name": "p@lvm", "total_capacity_gb": 100, "free_capacity_gb": 40}],
            "volumes": [{"uuid": "v1", "size": 10, "pool": "p@lvm", "attachments": ["i1"]}]
        }))
        .expect("model");
        let faults: crate::faults::Faults = serde_json::from_value(serde_json::json!({
            "hosts": [{"host": "h2", "at_seconds": 3600.0, "becomes": "down"}],
            "actions": [{"name": "m1", "times": 1}]
        }))
        .expect("faults");
        db.init_with_faults(&m, 0.5, &faults).expect("init");
        db.migrate("i2", "h1", "h2").expect("migrate");
        db
    }

    fn everything(db: &SimDb) -> Snapshot {
        db.read(Snapshot::read).expect("read")
    }

    #[test]
    fn a_cloud_moves_between_backends_whole_in_both_directions() {
        let sqlite = TestCloud::sqlite();
        let pg = TestCloud::postgres();
        let source = lived(&sqlite);
        let before = everything(&source);
        assert!(!before.meta.is_empty(), "meta values to copy");
        drop(source);
        assert!(exists(&sqlite.location).expect("exists"));
        check_target(&pg.location).expect("an empty target");
        let report = copy(&sqlite.location, &pg.location).expect("copy");
        assert!(report.verified(), "{report:?}");
        assert_eq!(
            report
                .tables
                .iter()
                .map(|t| t.table.as_str())
                .collect::<Vec<_>>(),
            ["nodes", "instances", "storage_pools", "volumes", "meta"]
        );
        assert_eq!(report.tables[1].source_rows, 2);
        assert_eq!(everything(&pg.open()), before);
        assert_eq!(
            pg.open().model().expect("model"),
            sqlite.open().model().expect("model")
        );

        // And back, into a new file.
        let back = TestCloud::sqlite();
        assert!(!exists(&back.location).expect("exists"));
        let report = copy(&pg.location, &back.location).expect("copy back");
        assert!(report.verified(), "{report:?}");
        assert_eq!(everything(&back.open()), before);
        // The copy reads as the original.
        assert_eq!(back.open().time_scale().expect("scale"), 0.5);
    }

    #[test]
    fn a_target_that_holds_a_cloud_is_refused_and_left_as_it_was() {
        for (from, to) in [
            (TestCloud::sqlite(), TestCloud::postgres()),
            (TestCloud::postgres(), TestCloud::sqlite()),
        ] {
            drop(lived(&from));
            let mut target = to.open();
            let m: ClusterModel = serde_json::from_value(serde_json::json!({
                "nodes": [{"uuid": "t1", "hostname": "t1", "vcpus": 1, "memory": 1, "disk": 1}]
            }))
            .expect("model");
            target.init(&m, 1.0).expect("init");
            let before = everything(&target);
            drop(target);
            let e = check_target(&to.location).expect_err("not empty");
            assert!(e.is_input(), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("nodes: 1 rows") && msg.contains("not empty"),
                "{msg}"
            );
            let e = copy(&from.location, &to.location).expect_err("not empty");
            assert!(matches!(e, SimCopyError::NotEmpty { .. }), "{e}");
            assert_eq!(everything(&to.open()), before);
        }
    }

    #[test]
    fn nothing_is_created_where_there_is_no_cloud() {
        let file = TestCloud::sqlite();
        assert!(!exists(&file.location).expect("exists"));
        check_target(&file.location).expect("empty");
        assert!(!file.location.file().expect("a file").exists());
        let pg = TestCloud::postgres();
        assert!(!exists(&pg.location).expect("exists"));
        check_target(&pg.location).expect("empty");
        assert!(!exists(&pg.location).expect("exists"), "no schema made");
    }
}
