//! `sextant-sim-store`: the state of the simulated cloud, shared by the
//! `sim` plugin (its collector and handlers) and the `sextant sim`
//! commands. It lives in a SQLite file (`sim.db`, beside the store) or in
//! a PostgreSQL database (schema `sextant_sim`, beside the store's tables),
//! so that every host applying plans against one PostgreSQL sees and
//! changes one cloud ([`SimLocation`]).
//!
//! Each node, instance, pool and volume is a row holding its model entry as
//! JSON, keyed by its id. The sim's semantics (seeding, [`rules`],
//! [`faults`], [`ops`]) are written once over [`tx::Tx`], which each
//! backend implements ([`sqlite`], [`pg`]). Invariants: seeding
//! replaces the whole cloud in one transaction, so a crash leaves the old
//! cloud or the new one; each operation is one transaction that excludes
//! every other writer, on any host, from its first read to its commit.

pub mod copy;
pub mod faults;
mod location;
pub mod ops;
mod pg;
pub mod rules;
mod sqlite;
#[cfg(test)]
mod testing;
mod tx;

pub use location::SimLocation;
use sextant_plugin_api::model::ClusterModel;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use tx::{Row, Table, Tx};

/// A simulated cloud operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// SQLite failed.
    #[error("simulated cloud {at}: {cause}")]
    Sqlite {
        /// The file.
        at: String,
        /// Why (in the message, not a `source`, so it is printed once).
        cause: rusqlite::Error,
    },
    /// PostgreSQL failed.
    #[error("simulated cloud {at}: {cause}")]
    Postgres {
        /// The database, without its password.
        at: String,
        /// Why (the server's message when it gave one).
        cause: String,
    },
    /// A row holds JSON that is not a model entry.
    #[error("simulated cloud {at}: corrupt {what}: {cause}")]
    Corrupt {
        /// The file or database.
        at: String,
        /// Which row.
        what: String,
        /// Why.
        cause: serde_json::Error,
    },
    /// The file's directory does not exist: a simulated cloud is made
    /// only in a directory that exists (the host makes its own data
    /// directory before it opens one there).
    #[error(
        "simulated cloud {}: the directory {} does not exist (create it, or correct the path)",
        file.display(),
        dir.display()
    )]
    NoDirectory {
        /// The file.
        file: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
}

/// The file beside a store database: `<dir>/sim.db`.
pub fn path_beside(store_db: &Path) -> PathBuf {
    store_db.with_file_name("sim.db")
}

/// A connection to either backend.
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

/// The open simulated cloud.
pub struct SimDb {
    conn: RefCell<Conn>,
    /// Where it is, as messages show it (no password).
    at: String,
}

impl SimDb {
    /// Opens (creating its tables if needed) the simulated cloud at `at`:
    /// a SQLite file (opened read-only when it cannot be written, so that
    /// `sim show` and the collector still read it) or a PostgreSQL
    /// database.
    pub fn open(at: impl Into<SimLocation>) -> Result<Self, SimError> {
        let location = at.into();
        let shown = location.to_string();
        let conn = match &location {
            SimLocation::Sqlite(path) => Conn::Sqlite(sqlite::open(path)?),
            SimLocation::Postgres(url) => Conn::Postgres(pg::open(url, &shown)?),
        };
        Ok(Self {
            conn: RefCell::new(conn),
            at: shown,
        })
    }

    /// Whether this is a PostgreSQL connection the server has not closed
    /// (one worth keeping for the next operation); false for SQLite.
    pub fn is_open(&self) -> bool {
        match &*self.conn.borrow() {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => !c.is_closed(),
        }
    }

    /// Whether the PostgreSQL server still answers on this connection (one
    /// round trip, at most 2 s): a kept connection is checked before reuse,
    /// since a server restart shows only on the next use. False for SQLite.
    pub fn responds(&self) -> bool {
        match &mut *self.conn.borrow_mut() {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.is_valid(std::time::Duration::from_secs(2)).is_ok(),
        }
    }

    /// Runs `f` as one write transaction that excludes every other writer
    /// (on PostgreSQL, of every host), committed when `f` succeeds.
    pub(crate) fn write<T, E: From<SimError>>(
        &mut self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        match self.conn.get_mut() {
            Conn::Sqlite(c) => sqlite::write(c, &self.at, f),
            Conn::Postgres(c) => pg::write(c, &self.at, f),
        }
    }

    /// Runs `f` over one consistent snapshot.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        match &mut *self.conn.borrow_mut() {
            Conn::Sqlite(c) => sqlite::read(c, &self.at, f),
            Conn::Postgres(c) => pg::read(c, &self.at, f),
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
        self.write(|tx| {
            tx.clear()?;
            for n in &model.nodes {
                insert(tx, Table::Nodes, &n.uuid, Some(&n.hostname), n)?;
            }
            for i in &model.instances {
                insert(tx, Table::Instances, &i.uuid, Some(&i.host), i)?;
            }
            for p in &model.storage_pools {
                insert(tx, Table::StoragePools, &p.name, None, p)?;
            }
            for v in &model.volumes {
                insert(tx, Table::Volumes, &v.uuid, Some(&v.pool), v)?;
            }
            tx.set_meta("time_scale", &time_scale.to_string())?;
            tx.set_meta("initialised", "1")?;
            faults::seed(tx, faults)
        })
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
        self.read(|tx| tx.meta(key))
    }

    /// The cluster model as Nova would report it to a collector: without the
    /// shelved and offloaded instances, which no longer sit on any host.
    pub fn collected_model(&self) -> Result<ClusterModel, SimError> {
        let mut m = self.model()?;
        m.instances.retain(|i| i.state != "shelved_offloaded");
        Ok(m)
    }

    /// The current cloud, in the snapshot format, as of one moment.
    pub fn model(&self) -> Result<ClusterModel, SimError> {
        let at = self.at.clone();
        self.read(|tx| {
            Ok(ClusterModel {
                nodes: docs(tx, Table::Nodes, &at)?,
                instances: docs(tx, Table::Instances, &at)?,
                storage_pools: docs(tx, Table::StoragePools, &at)?,
                volumes: docs(tx, Table::Volumes, &at)?,
            })
        })
    }
}

fn insert<T: serde::Serialize>(
    tx: &mut dyn Tx,
    table: Table,
    key: &str,
    by: Option<&str>,
    entry: &T,
) -> Result<(), SimError> {
    let doc = doc(entry);
    tx.insert(table, &Row { key, by, doc: &doc })
}

/// Every entry of a table, a row that does not parse refused naming it.
fn docs<T: serde::de::DeserializeOwned>(
    tx: &mut dyn Tx,
    table: Table,
    at: &str,
) -> Result<Vec<T>, SimError> {
    tx.docs(table, None)?
        .into_iter()
        .map(|(k, d)| {
            serde_json::from_str(&d).map_err(|source| SimError::Corrupt {
                at: at.to_string(),
                what: format!("{} {k}", table.name()),
                cause: source,
            })
        })
        .collect()
}

/// A model entry as JSON text (model types always serialise).
pub(crate) fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{TestCloud, on_both_backends};

    on_both_backends!(
        init_replaces_the_cloud_and_model_reads_it_back,
        a_shelved_offloaded_instance_frees_its_host,
        concurrent_migrations_from_many_connections_never_overfill_a_host,
    );

    fn init_replaces_the_cloud_and_model_reads_it_back(t: TestCloud) {
        let mut db = t.open();
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

    fn a_shelved_offloaded_instance_frees_its_host(t: TestCloud) {
        let mut db = t.open();
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

    /// Eight connections (as eight hosts) each try to move its own four
    /// instances onto one host with room for ten: every move is checked
    /// and made in one exclusive transaction, so exactly ten succeed, the
    /// rest are refused for capacity, and no instance is lost.
    fn concurrent_migrations_from_many_connections_never_overfill_a_host(t: TestCloud) {
        let mut instances = Vec::new();
        for k in 0..32 {
            instances.push(
                serde_json::json!({"uuid": format!("i{k}"), "name": format!("vm{k}"),
                "host": "src", "vcpus": 1, "memory": 512, "disk": 1}),
            );
        }
        let m: ClusterModel = serde_json::from_value(serde_json::json!({
            "nodes": [
                {"uuid": "n1", "hostname": "src", "vcpus": 64, "memory": 65536, "disk": 1000},
                {"uuid": "n2", "hostname": "dst", "vcpus": 10, "memory": 65536, "disk": 1000}
            ],
            "instances": instances
        }))
        .expect("model");
        t.open().init(&m, 0.0).expect("init");
        let location = t.location.clone();
        let threads: Vec<_> = (0..8)
            .map(|w| {
                let location = location.clone();
                std::thread::spawn(move || {
                    let mut db = SimDb::open(&location).expect("open");
                    let mut moved = 0;
                    for k in (w * 4)..(w * 4 + 4) {
                        match db.migrate(&format!("i{k}"), "src", "dst") {
                            Ok(()) => moved += 1,
                            Err(crate::ops::OpError::Refused(m)) => {
                                assert!(m.contains("No valid host"), "{m}")
                            }
                            Err(e) => panic!("i{k}: {e}"),
                        }
                    }
                    moved
                })
            })
            .collect();
        let moved: usize = threads.into_iter().map(|h| h.join().expect("thread")).sum();
        let after = t.open().model().expect("model");
        let on_dst = after.instances.iter().filter(|i| i.host == "dst").count();
        assert_eq!(moved, 10);
        assert_eq!(on_dst, 10);
        assert_eq!(after.instances.len(), 32);
    }
}
