//! What the simulated cloud's services do: each operation is one immediate
//! transaction that applies a rule of [`crate::rules`] (capacity with
//! ratios and reservations, service and power state) to sim.db, as Nova,
//! Cinder and Ironic would refuse or accept the change.

use crate::rules::{self, Cloud};
use crate::{SimDb, SimError};
use rusqlite::{OptionalExtension, Transaction, params};
use sextant_plugin_api::model::{Instance, Node, StoragePool, Volume};
use std::path::PathBuf;

pub use crate::rules::{FLAVORS, OpError};

/// sim.db inside one transaction, as the rules see it.
pub(crate) struct TxCloud<'a, 'c>(&'a Transaction<'c>);

fn db(e: rusqlite::Error) -> OpError {
    OpError::Db(SimError::from_rusqlite(e))
}

impl TxCloud<'_, '_> {
    fn get<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, OpError> {
        let doc: Option<String> = self
            .0
            .query_row(sql, [key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
    }

    fn all<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        key: Option<&str>,
    ) -> Result<Vec<T>, OpError> {
        let mut st = self.0.prepare(sql).map_err(db)?;
        let docs: Vec<String> = st
            .query_map(rusqlite::params_from_iter(key), |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(db)?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect())
    }

    fn write(&self, sql: &str, p: impl rusqlite::Params) -> Result<(), OpError> {
        self.0.execute(sql, p).map(drop).map_err(db)
    }
}

/// A model entry as JSON text (model types always serialise).
fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Cloud for TxCloud<'_, '_> {
    fn node(&self, hostname: &str) -> Result<Option<Node>, OpError> {
        self.get("SELECT doc FROM nodes WHERE hostname = ?1", hostname)
    }
    fn node_by_uuid(&self, uuid: &str) -> Result<Option<Node>, OpError> {
        self.get("SELECT doc FROM nodes WHERE uuid = ?1", uuid)
    }
    fn nodes(&self) -> Result<Vec<Node>, OpError> {
        self.all("SELECT doc FROM nodes ORDER BY rowid", None)
    }
    fn instance(&self, uuid: &str) -> Result<Option<Instance>, OpError> {
        self.get("SELECT doc FROM instances WHERE uuid = ?1", uuid)
    }
    fn instances_on(&self, hostname: &str) -> Result<Vec<Instance>, OpError> {
        self.all(
            "SELECT doc FROM instances WHERE host = ?1 ORDER BY rowid",
            Some(hostname),
        )
    }
    fn pool(&self, name: &str) -> Result<Option<StoragePool>, OpError> {
        self.get("SELECT doc FROM storage_pools WHERE name = ?1", name)
    }
    fn pools(&self) -> Result<Vec<StoragePool>, OpError> {
        self.all("SELECT doc FROM storage_pools ORDER BY rowid", None)
    }
    fn volume(&self, uuid: &str) -> Result<Option<Volume>, OpError> {
        self.get("SELECT doc FROM volumes WHERE uuid = ?1", uuid)
    }
    fn put_node(&mut self, n: &Node) -> Result<(), OpError> {
        self.write(
            "UPDATE nodes SET doc = ?1 WHERE uuid = ?2",
            params![doc(n), n.uuid],
        )
    }
    fn put_instance(&mut self, i: &Instance) -> Result<(), OpError> {
        self.write(
            "UPDATE instances SET host = ?1, doc = ?2 WHERE uuid = ?3",
            params![i.host, doc(i), i.uuid],
        )
    }
    fn delete_instance(&mut self, uuid: &str) -> Result<bool, OpError> {
        let n = self
            .0
            .execute("DELETE FROM instances WHERE uuid = ?1", [uuid])
            .map_err(db)?;
        Ok(n > 0)
    }
    fn put_pool(&mut self, p: &StoragePool) -> Result<(), OpError> {
        self.write(
            "UPDATE storage_pools SET doc = ?1 WHERE name = ?2",
            params![doc(p), p.name],
        )
    }
    fn put_volume(&mut self, v: &Volume) -> Result<(), OpError> {
        self.write(
            "UPDATE volumes SET pool = ?1, doc = ?2 WHERE uuid = ?3",
            params![v.pool, doc(v), v.uuid],
        )
    }
}

impl SimError {
    pub(crate) fn from_rusqlite(e: rusqlite::Error) -> Self {
        SimError::Sqlite {
            path: PathBuf::new(),
            cause: e,
        }
    }
}

impl SimDb {
    /// Runs one operation in an immediate transaction, at the simulated
    /// time `at` (the clock moves there if it is later; `None`: now), after
    /// the host faults due by then.
    pub(crate) fn op<T>(
        &mut self,
        f: impl FnOnce(&mut TxCloud<'_, '_>) -> Result<T, OpError>,
        at: Option<f64>,
    ) -> Result<T, OpError> {
        let path = self.path.clone();
        let err = |source| SimError::Sqlite {
            path: path.clone(),
            cause: source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        if let Some(at) = at {
            crate::faults::advance(&tx, at)?;
        }
        crate::faults::fire_due(&tx, &mut TxCloud(&tx))?;
        let v = f(&mut TxCloud(&tx))?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    /// An instance, if it exists.
    pub fn instance(&mut self, uuid: &str) -> Result<Option<Instance>, OpError> {
        self.op(|c| c.instance(uuid), None)
    }

    /// A node by hostname or uuid, if it exists.
    pub fn node(&mut self, id: &str) -> Result<Option<Node>, OpError> {
        self.op(
            |c| match c.node_by_uuid(id)? {
                Some(n) => Ok(Some(n)),
                None => c.node(id),
            },
            None,
        )
    }

    /// [`rules::check_migrate`]
    pub fn check_migrate(
        &mut self,
        uuid: &str,
        source: &str,
        destination: Option<&str>,
        live: bool,
    ) -> Result<String, OpError> {
        self.op(
            |c| rules::check_migrate(c, uuid, source, destination, live),
            None,
        )
    }

    /// [`rules::migrate`]
    pub fn migrate(&mut self, uuid: &str, source: &str, destination: &str) -> Result<(), OpError> {
        self.op(|c| rules::migrate(c, uuid, source, destination), None)
    }

    /// [`rules::migrate_back`]
    pub fn migrate_back(&mut self, uuid: &str, from: &str, to: &str) -> Result<(), OpError> {
        self.op(|c| rules::migrate_back(c, uuid, from, to), None)
    }

    /// [`rules::set_service`]
    pub fn set_service(
        &mut self,
        host: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), OpError> {
        self.op(|c| rules::set_service(c, host, status, reason), None)
    }

    /// [`rules::set_power`]
    pub fn set_power(&mut self, id: &str, state: &str, check_only: bool) -> Result<(), OpError> {
        self.op(|c| rules::set_power(c, id, state, check_only), None)
    }

    /// [`rules::resize`]
    pub fn resize(&mut self, uuid: &str, flavor: &str, check_only: bool) -> Result<(), OpError> {
        self.op(|c| rules::resize(c, uuid, flavor, check_only), None)
    }

    /// [`rules::set_instance_state`]
    pub fn set_instance_state(
        &mut self,
        uuid: &str,
        state: &str,
        skip_if: &[&str],
    ) -> Result<(), OpError> {
        self.op(|c| rules::set_instance_state(c, uuid, state, skip_if), None)
    }

    /// [`rules::delete_instance`]
    pub fn delete_instance(&mut self, uuid: &str) -> Result<(), OpError> {
        self.op(|c| rules::delete_instance(c, uuid), None)
    }

    /// [`rules::volume_migrate`]
    pub fn volume_migrate(
        &mut self,
        uuid: &str,
        pool: Option<&str>,
        new_type: Option<&str>,
        check_only: bool,
    ) -> Result<(), OpError> {
        self.op(
            |c| rules::volume_migrate(c, uuid, pool, new_type, check_only),
            None,
        )
    }
}
