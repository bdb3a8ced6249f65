//! `sextant-sim-store`: the state of the simulated cloud, one SQLite file
//! (`sim.db`, beside the store), shared by the `sim` plugin (its collector
//! and, later, its handlers) and the `sextant sim` commands.
//!
//! Each node, instance, pool and volume is a row holding its model entry as
//! JSON, keyed by its id. Invariant: seeding replaces the whole cloud in one
//! transaction, so a crash leaves the old cloud or the new one.

pub mod faults;
pub mod ops;
pub mod rules;

use rusqlite::{Connection, OptionalExtension, params};
use sextant_plugin_api::model::ClusterModel;
use std::path::{Path, PathBuf};

/// A sim.db operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// SQLite failed.
    #[error("simulated cloud {}: {cause}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a `source`, so it is printed once).
        cause: rusqlite::Error,
    },
    /// A row holds JSON that is not a model entry.
    #[error("simulated cloud {}: corrupt {what}: {cause}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which row.
        what: String,
        /// Why.
        cause: serde_json::Error,
    },
    /// The directory could not be created.
    #[error("cannot create {}: {cause}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (uuid TEXT PRIMARY KEY, hostname TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (uuid TEXT PRIMARY KEY, host TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS instances_host ON instances(host);
CREATE TABLE IF NOT EXISTS storage_pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (uuid TEXT PRIMARY KEY, pool TEXT NOT NULL, doc TEXT NOT NULL);
"#;

/// The file beside a store database: `<dir>/sim.db`.
pub fn path_beside(store_db: &Path) -> PathBuf {
    store_db.with_file_name("sim.db")
}

/// How [`SimDb::open`] opens the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
    /// Read-only, with SQLite told no one else writes it.
    Immutable,
}

impl SimError {
    /// Whether SQLite refused because the file or its directory cannot be
    /// written.
    fn is_write_refusal(&self) -> bool {
        matches!(
            self,
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

/// The open simulated cloud.
pub struct SimDb {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl SimDb {
    /// Opens (creating if needed) the file. Nothing is written when the
    /// file is already in WAL mode with its tables; a file SQLite cannot
    /// write (a read-only file or directory) is opened read-only, so `sim
    /// show` and the collector still read it.
    pub fn open(path: &Path) -> Result<Self, SimError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
                path: dir.to_path_buf(),
                cause: source,
            })?;
        }
        match Self::open_with(path, Access::ReadWrite) {
            Err(e) if path.is_file() && e.is_write_refusal() => {
                match Self::open_with(path, Access::ReadOnly) {
                    // No -shm file and a directory we cannot write: only
                    // as immutable, right only when no -wal holds commits.
                    Err(e) if e.is_write_refusal() && !has_wal_content(path) => {
                        Self::open_with(path, Access::Immutable)
                    }
                    r => r,
                }
            }
            r => r,
        }
    }

    fn open_with(path: &Path, access: Access) -> Result<Self, SimError> {
        use rusqlite::OpenFlags;
        let err = |source| SimError::Sqlite {
            path: path.to_path_buf(),
            cause: source,
        };
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
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let read_only =
            access != Access::ReadWrite || conn.is_readonly(rusqlite::MAIN_DB).map_err(err)?;
        // A first read: a WAL file that cannot be read this way fails here,
        // at open, where the caller falls back to another access.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(err)?;
        if !read_only {
            if !mode.eq_ignore_ascii_case("wal") {
                conn.execute_batch("PRAGMA journal_mode = WAL;")
                    .map_err(err)?;
            }
            conn.execute_batch("PRAGMA synchronous = FULL;")
                .map_err(err)?;
            let tables: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'nodes', 'instances', 'storage_pools', 'volumes')",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if tables < 5 {
                conn.execute_batch(SCHEMA).map_err(err)?;
            }
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> SimError {
        SimError::Sqlite {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// Replaces the whole cloud with `model`, in one transaction, with no
    /// fault.
    pub fn init(&mut self, model: &ClusterModel, time_scale: f64) -> Result<(), SimError> {
        self.init_with_faults(model, time_scale, &faults::Faults::default())
    }

    /// Replaces the whole cloud with `model` and the faults of the run, in
    /// one transaction; the simulated clock starts at 0.
    pub fn init_with_faults(
        &mut self,
        model: &ClusterModel,
        time_scale: f64,
        faults: &faults::Faults,
    ) -> Result<(), SimError> {
        let path = self.path.clone();
        let err = |source| SimError::Sqlite {
            path: path.clone(),
            cause: source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "DELETE FROM volumes; DELETE FROM storage_pools; DELETE FROM instances; DELETE FROM nodes; DELETE FROM meta;",
        )
        .map_err(err)?;
        {
            let mut st = tx
                .prepare("INSERT INTO nodes (uuid, hostname, doc) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for n in &model.nodes {
                st.execute(params![n.uuid, n.hostname, doc(n)])
                    .map_err(err)?;
            }
            let mut st = tx
                .prepare("INSERT INTO instances (uuid, host, doc) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for i in &model.instances {
                st.execute(params![i.uuid, i.host, doc(i)]).map_err(err)?;
            }
            let mut st = tx
                .prepare("INSERT INTO storage_pools (name, doc) VALUES (?1, ?2)")
                .map_err(err)?;
            for p in &model.storage_pools {
                st.execute(params![p.name, doc(p)]).map_err(err)?;
            }
            let mut st = tx
                .prepare("INSERT INTO volumes (uuid, pool, doc) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for v in &model.volumes {
                st.execute(params![v.uuid, v.pool, doc(v)]).map_err(err)?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('time_scale', ?1), ('initialised', '1')",
                params![time_scale.to_string()],
            )
            .map_err(err)?;
            faults::seed(&tx, faults).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Whether `init` ever completed.
    pub fn is_initialised(&self) -> Result<bool, SimError> {
        Ok(self.meta("initialised")?.is_some())
    }

    /// The time scale (0: actions take no simulated time); 1 when unset.
    pub fn time_scale(&self) -> Result<f64, SimError> {
        Ok(self
            .meta("time_scale")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0))
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, SimError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn docs<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Vec<T>, SimError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {key}, doc FROM {table} ORDER BY rowid"))
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(k, d)| {
                serde_json::from_str(&d).map_err(|source| SimError::Corrupt {
                    path: self.path.clone(),
                    what: format!("{table} {k}"),
                    cause: source,
                })
            })
            .collect()
    }

    /// The current cloud, in the snapshot format.
    /// The cluster model as Nova would report it to a collector: without the
    /// shelved and offloaded instances, which no longer sit on any host.
    pub fn collected_model(&self) -> Result<ClusterModel, SimError> {
        let mut m = self.model()?;
        m.instances.retain(|i| i.state != "shelved_offloaded");
        Ok(m)
    }

    pub fn model(&self) -> Result<ClusterModel, SimError> {
        Ok(ClusterModel {
            nodes: self.docs("nodes", "uuid")?,
            instances: self.docs("instances", "uuid")?,
            storage_pools: self.docs("storage_pools", "name")?,
            volumes: self.docs("volumes", "uuid")?,
        })
    }
}

/// A model entry as JSON text (model types always serialise).
fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_replaces_the_cloud_and_model_reads_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = SimDb::open(&dir.path().join("sim.db")).expect("open");
        assert!(!db.is_initialised().expect("meta"));
        let m: ClusterModel = serde_json::from_value(serde_json::json!({
            "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100,
                       "metrics": {"host_cpu_usage": 41.5}}],
            "instances": [{"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1}],
            "storage_pools": [{"name": "p@lvm", "total_capacity_gb": 100, "free_capacity_gb": 40}],
            "volumes": [{"uuid": "v1", "size": 10, "pool": "p@lvm", "attachments": ["i1"]}]
        }))
        .expect("model");
        db.init(&m, 0.0).expect("init");
        assert_eq!(db.model().expect("model"), m);
        assert_eq!(db.time_scale().expect("scale"), 0.0);
        db.init(&ClusterModel::default(), 2.0).expect("reinit");
        assert_eq!(db.model().expect("model"), ClusterModel::default());
        assert!(db.is_initialised().expect("meta"));
    }

    #[test]
    fn a_shelved_offloaded_instance_frees_its_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = SimDb::open(&dir.path().join("sim.db")).expect("open");
        let m: ClusterModel = serde_json::from_value(serde_json::json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 4, "memory": 4096, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 4, "memory": 4096, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h2", "vcpus": 4, "memory": 4096, "disk": 10}
            ]
        }))
        .expect("model");
        db.init(&m, 0.0).expect("init");
        // h1 is full: b cannot move there, and h1 cannot be powered off.
        assert!(db.migrate("i2", "h2", "h1").is_err());
        assert!(db.set_power("n1", "off", true).is_err());
        db.set_instance_state("i1", "shelved_offloaded", &[])
            .expect("shelve");
        // Offloaded, a no longer holds h1's resources.
        db.set_power("n1", "off", true)
            .expect("h1 can be powered off");
        db.migrate("i2", "h2", "h1").expect("b fits on h1 now");
        // Nor does a collector see it on a host.
        let seen: Vec<String> = db
            .collected_model()
            .expect("model")
            .instances
            .into_iter()
            .map(|i| i.uuid)
            .collect();
        assert_eq!(seen, ["i2"]);
        assert_eq!(db.model().expect("model").instances.len(), 2);
    }
}
