//! What the simulated cloud's services do: each operation is one write
//! transaction, exclusive across every host sharing the cloud, that applies
//! a rule of [`crate::rules`] (capacity with ratios and reservations,
//! service and power state) to the stored cloud, as Nova, Cinder and Ironic
//! would refuse or accept the change.

use crate::rules::{self, Cloud};
use crate::tx::{Column, Row, Table, Tx};
use crate::{SimDb, doc};
use sextant_plugin_api::model::{Instance, Node, StoragePool, Volume};
use std::cell::{RefCell, RefMut};

pub use crate::rules::{FLAVORS, OpError};

/// The simulated cloud inside one transaction, as the rules see it.
pub(crate) struct TxCloud<'a>(RefCell<&'a mut dyn Tx>);

impl<'a> TxCloud<'a> {
    pub(crate) fn new(tx: &'a mut dyn Tx) -> Self {
        Self(RefCell::new(tx))
    }

    /// The transaction (for the `meta` values).
    pub(crate) fn tx(&self) -> RefMut<'_, &'a mut dyn Tx> {
        self.0.borrow_mut()
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        column: Column,
        value: &str,
    ) -> Result<Option<T>, OpError> {
        let doc = self.tx().doc(table, column, value)?;
        Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
    }

    fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        by: Option<&str>,
    ) -> Result<Vec<T>, OpError> {
        let docs = self.tx().docs(table, by)?;
        Ok(docs
            .iter()
            .filter_map(|(_, d)| serde_json::from_str(d).ok())
            .collect())
    }

    fn put<T: serde::Serialize>(
        &self,
        table: Table,
        key: &str,
        by: Option<&str>,
        entry: &T,
    ) -> Result<(), OpError> {
        let doc = doc(entry);
        self.tx().update(table, &Row { key, by, doc: &doc })?;
        Ok(())
    }
}

impl Cloud for TxCloud<'_> {
    fn node(&self, hostname: &str) -> Result<Option<Node>, OpError> {
        self.get(Table::Nodes, Column::By, hostname)
    }
    fn node_by_uuid(&self, uuid: &str) -> Result<Option<Node>, OpError> {
        self.get(Table::Nodes, Column::Key, uuid)
    }
    fn nodes(&self) -> Result<Vec<Node>, OpError> {
        self.all(Table::Nodes, None)
    }
    fn instance(&self, uuid: &str) -> Result<Option<Instance>, OpError> {
        self.get(Table::Instances, Column::Key, uuid)
    }
    fn instances_on(&self, hostname: &str) -> Result<Vec<Instance>, OpError> {
        self.all(Table::Instances, Some(hostname))
    }
    fn pool(&self, name: &str) -> Result<Option<StoragePool>, OpError> {
        self.get(Table::StoragePools, Column::Key, name)
    }
    fn pools(&self) -> Result<Vec<StoragePool>, OpError> {
        self.all(Table::StoragePools, None)
    }
    fn volume(&self, uuid: &str) -> Result<Option<Volume>, OpError> {
        self.get(Table::Volumes, Column::Key, uuid)
    }
    fn put_node(&mut self, n: &Node) -> Result<(), OpError> {
        self.put(Table::Nodes, &n.uuid, Some(&n.hostname), n)
    }
    fn put_instance(&mut self, i: &Instance) -> Result<(), OpError> {
        self.put(Table::Instances, &i.uuid, Some(&i.host), i)
    }
    fn delete_instance(&mut self, uuid: &str) -> Result<bool, OpError> {
        Ok(self.tx().delete(Table::Instances, uuid)?)
    }
    fn put_pool(&mut self, p: &StoragePool) -> Result<(), OpError> {
        self.put(Table::StoragePools, &p.name, None, p)
    }
    fn put_volume(&mut self, v: &Volume) -> Result<(), OpError> {
        self.put(Table::Volumes, &v.uuid, Some(&v.pool), v)
    }
}

impl SimDb {
    /// Runs one operation in a write transaction (exclusive across every
    /// host), at the simulated time `at` (the clock moves there if it is
    /// later; `None`: now), after the host faults due by then.
    pub(crate) fn op<T>(
        &mut self,
        f: impl FnOnce(&mut TxCloud<'_>) -> Result<T, OpError>,
        at: Option<f64>,
    ) -> Result<T, OpError> {
        self.write(|tx| {
            let mut cloud = TxCloud::new(tx);
            if let Some(at) = at {
                crate::faults::advance(&cloud, at)?;
            }
            crate::faults::fire_due(&mut cloud)?;
            f(&mut cloud)
        })
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
