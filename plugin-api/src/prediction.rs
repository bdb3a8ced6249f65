//! Predicting a plan's effect on the cluster model.
//!
//! During simulation the host walks a plan's DAG in a topological order and
//! asks each action's handler what its action would do to the cluster
//! model. A handler declares its effect by implementing
//! [`crate::sdk::Predict`]: it reads and changes a [`PredictedModel`], or
//! says why the action could not run in the state the model is in.
//!
//! [`PredictedModel`] is one mutable copy of the model, indexed so that each
//! read and write costs O(1) (or O(instances on one host)): a plan of
//! 10,000 actions is predicted without copying the model per action. Every
//! write is recorded as a [`ModelChange`], which is what crosses the plugin
//! boundary (as JSON): the host applies a plugin's changes to its own copy
//! and forwards them to the other plugins' predictors. A failed prediction
//! is rolled back, as a refused operation changes nothing.
//!
//! ```
//! use sextant_plugin_api::model::ClusterModel;
//! use sextant_plugin_api::prediction::{ModelChange, PredictedModel};
//! let m: ClusterModel = serde_json::from_value(serde_json::json!({
//!     "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 16384, "disk": 100}],
//!     "instances": [{"uuid": "i1", "name": "vm-1", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 20}]
//! })).unwrap();
//! let mut p = PredictedModel::new(m);
//! let mut n = p.node("h1").unwrap().clone();
//! n.status = "disabled".into();
//! p.put_node(n);
//! assert!(matches!(&p.take_changes()[..], [ModelChange::Node(n)] if n.status == "disabled"));
//! assert_eq!(p.to_model().nodes[0].status, "disabled");
//! ```

use crate::model::{ClusterModel, Instance, Node, StoragePool, Volume};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// One change to the cluster model: an entry as it is after the change, or
/// the removal of one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChange {
    /// A node, as it is now (added or changed; keyed by uuid).
    Node(Node),
    /// An instance, as it is now (added or changed; keyed by uuid).
    Instance(Instance),
    /// The instance of this uuid is gone.
    InstanceRemoved(String),
    /// A storage pool, as it is now (keyed by name).
    StoragePool(StoragePool),
    /// A volume, as it is now (keyed by uuid).
    Volume(Volume),
}

/// How to undo one write.
#[derive(Debug)]
enum Undo {
    /// Node slot `idx` held this (None: it was pushed).
    Node(usize, Option<Node>),
    /// Instance slot `idx` held this.
    Instance(usize, Option<Instance>),
    /// Pool slot `idx` held this (None: it was pushed).
    Pool(usize, Option<StoragePool>),
    /// Volume slot `idx` held this (None: it was pushed).
    Volume(usize, Option<Volume>),
}

/// The cluster model as a plan changes it: one indexed, mutable copy.
#[derive(Debug, Default)]
pub struct PredictedModel {
    nodes: Vec<Node>,
    node_by_hostname: HashMap<String, usize>,
    node_by_uuid: HashMap<String, usize>,
    /// Slots: a removed instance leaves `None`, so indexes stay valid and
    /// the model keeps its order.
    instances: Vec<Option<Instance>>,
    instance_by_uuid: HashMap<String, usize>,
    instances_by_host: HashMap<String, BTreeSet<usize>>,
    pools: Vec<StoragePool>,
    pool_by_name: HashMap<String, usize>,
    volumes: Vec<Volume>,
    volume_by_uuid: HashMap<String, usize>,
    changes: Vec<ModelChange>,
    undo: Vec<Undo>,
}

impl PredictedModel {
    /// Indexes a model. Where two entries share a key, the last one wins
    /// (the host refuses such models before predicting).
    pub fn new(model: ClusterModel) -> Self {
        let mut p = Self::default();
        for n in model.nodes {
            p.set_node(n);
        }
        for i in model.instances {
            p.set_instance(i);
        }
        for s in model.storage_pools {
            p.set_pool(s);
        }
        for v in model.volumes {
            p.set_volume(v);
        }
        p
    }

    /// The model as it is now.
    pub fn to_model(&self) -> ClusterModel {
        ClusterModel {
            nodes: self.nodes.clone(),
            instances: self.instances.iter().flatten().cloned().collect(),
            storage_pools: self.pools.clone(),
            volumes: self.volumes.clone(),
        }
    }

    /// Every node, in model order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with this hostname.
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.node_by_hostname.get(hostname).map(|&i| &self.nodes[i])
    }

    /// The node with this uuid.
    pub fn node_by_uuid(&self, uuid: &str) -> Option<&Node> {
        self.node_by_uuid.get(uuid).map(|&i| &self.nodes[i])
    }

    /// The instance with this uuid.
    pub fn instance(&self, uuid: &str) -> Option<&Instance> {
        self.instance_by_uuid
            .get(uuid)
            .and_then(|&i| self.instances[i].as_ref())
    }

    /// The instances whose host is `hostname`, in model order.
    pub fn instances_on<'a>(&'a self, hostname: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances_by_host
            .get(hostname)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.instances[i].as_ref())
    }

    /// Every storage pool, in model order.
    pub fn storage_pools(&self) -> &[StoragePool] {
        &self.pools
    }

    /// The storage pool with this name.
    pub fn storage_pool(&self, name: &str) -> Option<&StoragePool> {
        self.pool_by_name.get(name).map(|&i| &self.pools[i])
    }

    /// The volume with this uuid.
    pub fn volume(&self, uuid: &str) -> Option<&Volume> {
        self.volume_by_uuid.get(uuid).map(|&i| &self.volumes[i])
    }

    /// Adds or replaces (by uuid) a node; recorded.
    pub fn put_node(&mut self, n: Node) {
        self.changes.push(ModelChange::Node(n.clone()));
        let (idx, old) = self.set_node(n);
        self.undo.push(Undo::Node(idx, old));
    }

    /// Adds or replaces (by uuid) an instance; recorded.
    pub fn put_instance(&mut self, i: Instance) {
        self.changes.push(ModelChange::Instance(i.clone()));
        let (idx, old) = self.set_instance(i);
        self.undo.push(Undo::Instance(idx, old));
    }

    /// Removes an instance; recorded. False when there was none.
    pub fn remove_instance(&mut self, uuid: &str) -> bool {
        match self.unset_instance(uuid) {
            Some((idx, old)) => {
                self.changes
                    .push(ModelChange::InstanceRemoved(uuid.to_string()));
                self.undo.push(Undo::Instance(idx, Some(old)));
                true
            }
            None => false,
        }
    }

    /// Adds or replaces (by name) a storage pool; recorded.
    pub fn put_storage_pool(&mut self, p: StoragePool) {
        self.changes.push(ModelChange::StoragePool(p.clone()));
        let (idx, old) = self.set_pool(p);
        self.undo.push(Undo::Pool(idx, old));
    }

    /// Adds or replaces (by uuid) a volume; recorded.
    pub fn put_volume(&mut self, v: Volume) {
        self.changes.push(ModelChange::Volume(v.clone()));
        let (idx, old) = self.set_volume(v);
        self.undo.push(Undo::Volume(idx, old));
    }

    /// Applies a change another predictor made, without recording it.
    pub fn apply(&mut self, change: ModelChange) {
        match change {
            ModelChange::Node(n) => drop(self.set_node(n)),
            ModelChange::Instance(i) => drop(self.set_instance(i)),
            ModelChange::InstanceRemoved(u) => drop(self.unset_instance(&u)),
            ModelChange::StoragePool(p) => drop(self.set_pool(p)),
            ModelChange::Volume(v) => drop(self.set_volume(v)),
        }
    }

    /// The changes recorded since the last call, which are kept.
    pub fn take_changes(&mut self) -> Vec<ModelChange> {
        self.undo.clear();
        std::mem::take(&mut self.changes)
    }

    /// Undoes every change recorded since the last [`Self::take_changes`].
    pub fn rollback(&mut self) {
        self.changes.clear();
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Node(idx, old) => {
                    let cur = self.nodes[idx].clone();
                    self.node_by_hostname.remove(&cur.hostname);
                    self.node_by_uuid.remove(&cur.uuid);
                    match old {
                        Some(n) => {
                            self.node_by_hostname.insert(n.hostname.clone(), idx);
                            self.node_by_uuid.insert(n.uuid.clone(), idx);
                            self.nodes[idx] = n;
                        }
                        None => drop(self.nodes.pop()),
                    }
                }
                Undo::Instance(idx, old) => {
                    if let Some(cur) = self.instances[idx].take() {
                        self.instance_by_uuid.remove(&cur.uuid);
                        self.unlink_host(&cur.host, idx);
                    }
                    if let Some(i) = old {
                        self.instance_by_uuid.insert(i.uuid.clone(), idx);
                        self.instances_by_host
                            .entry(i.host.clone())
                            .or_default()
                            .insert(idx);
                        self.instances[idx] = Some(i);
                    }
                }
                Undo::Pool(idx, old) => match old {
                    Some(p) => self.pools[idx] = p,
                    None => {
                        if let Some(p) = self.pools.pop() {
                            self.pool_by_name.remove(&p.name);
                        }
                    }
                },
                Undo::Volume(idx, old) => match old {
                    Some(v) => self.volumes[idx] = v,
                    None => {
                        if let Some(v) = self.volumes.pop() {
                            self.volume_by_uuid.remove(&v.uuid);
                        }
                    }
                },
            }
        }
    }

    fn set_node(&mut self, n: Node) -> (usize, Option<Node>) {
        match self.node_by_uuid.get(&n.uuid).copied() {
            Some(idx) => {
                let old = std::mem::replace(&mut self.nodes[idx], n);
                if old.hostname != self.nodes[idx].hostname {
                    self.node_by_hostname.remove(&old.hostname);
                    self.node_by_hostname
                        .insert(self.nodes[idx].hostname.clone(), idx);
                }
                (idx, Some(old))
            }
            None => {
                let idx = self.nodes.len();
                self.node_by_uuid.insert(n.uuid.clone(), idx);
                self.node_by_hostname.insert(n.hostname.clone(), idx);
                self.nodes.push(n);
                (idx, None)
            }
        }
    }

    fn unlink_host(&mut self, host: &str, idx: usize) {
        if let Some(s) = self.instances_by_host.get_mut(host) {
            s.remove(&idx);
            if s.is_empty() {
                self.instances_by_host.remove(host);
            }
        }
    }

    fn set_instance(&mut self, i: Instance) -> (usize, Option<Instance>) {
        let idx = match self.instance_by_uuid.get(&i.uuid).copied() {
            Some(idx) => idx,
            None => {
                self.instances.push(None);
                self.instances.len() - 1
            }
        };
        let old = self.instances[idx].take();
        if let Some(o) = &old {
            let host = o.host.clone();
            self.unlink_host(&host, idx);
        }
        self.instance_by_uuid.insert(i.uuid.clone(), idx);
        self.instances_by_host
            .entry(i.host.clone())
            .or_default()
            .insert(idx);
        self.instances[idx] = Some(i);
        (idx, old)
    }

    fn unset_instance(&mut self, uuid: &str) -> Option<(usize, Instance)> {
        let idx = self.instance_by_uuid.remove(uuid)?;
        let old = self.instances[idx].take()?;
        self.unlink_host(&old.host, idx);
        Some((idx, old))
    }

    fn set_pool(&mut self, p: StoragePool) -> (usize, Option<StoragePool>) {
        match self.pool_by_name.get(&p.name).copied() {
            Some(idx) => (idx, Some(std::mem::replace(&mut self.pools[idx], p))),
            None => {
                let idx = self.pools.len();
                self.pool_by_name.insert(p.name.clone(), idx);
                self.pools.push(p);
                (idx, None)
            }
        }
    }

    fn set_volume(&mut self, v: Volume) -> (usize, Option<Volume>) {
        match self.volume_by_uuid.get(&v.uuid).copied() {
            Some(idx) => (idx, Some(std::mem::replace(&mut self.volumes[idx], v))),
            None => {
                let idx = self.volumes.len();
                self.volume_by_uuid.insert(v.uuid.clone(), idx);
                self.volumes.push(v);
                (idx, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> ClusterModel {
        serde_json::from_value(json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1},
                {"uuid": "i3", "name": "c", "host": "h2", "vcpus": 1, "memory": 512, "disk": 1}
            ],
            "storage_pools": [{"name": "p1", "total_capacity_gb": 10, "free_capacity_gb": 10}],
            "volumes": [{"uuid": "v1", "size": 1, "pool": "p1"}]
        }))
        .expect("model")
    }

    fn on(p: &PredictedModel, h: &str) -> Vec<String> {
        p.instances_on(h).map(|i| i.uuid.clone()).collect()
    }

    #[test]
    fn moves_and_removals_keep_the_indexes_and_the_order() {
        let mut p = PredictedModel::new(model());
        let mut i = p.instance("i1").expect("i1").clone();
        i.host = "h2".into();
        p.put_instance(i);
        assert!(p.remove_instance("i2"));
        assert!(!p.remove_instance("i2"));
        assert_eq!(on(&p, "h1"), Vec::<String>::new());
        assert_eq!(on(&p, "h2"), ["i1", "i3"]);
        assert_eq!(
            p.take_changes().len(),
            2,
            "one put and one removal recorded"
        );
        let m = p.to_model();
        let ids: Vec<&str> = m.instances.iter().map(|i| i.uuid.as_str()).collect();
        assert_eq!(ids, ["i1", "i3"]);
        assert_eq!(m.instances[0].host, "h2");
    }

    #[test]
    fn rollback_restores_what_a_failed_prediction_changed() {
        let before = model();
        let mut p = PredictedModel::new(before.clone());
        let mut n = p.node("h1").expect("h1").clone();
        n.status = "disabled".into();
        p.put_node(n);
        let mut i = p.instance("i3").expect("i3").clone();
        i.host = "h1".into();
        p.put_instance(i);
        p.remove_instance("i1");
        let mut pool = p.storage_pool("p1").expect("p1").clone();
        pool.free_capacity_gb = 1.0;
        p.put_storage_pool(pool);
        let mut v = p.volume("v1").expect("v1").clone();
        v.pool = "p2".into();
        p.put_volume(v);
        p.rollback();
        assert_eq!(p.to_model(), before);
        assert_eq!(on(&p, "h1"), ["i1", "i2"]);
        assert_eq!(on(&p, "h2"), ["i3"]);
        assert!(p.take_changes().is_empty());
    }

    #[test]
    fn changes_applied_elsewhere_give_the_same_model() {
        let mut a = PredictedModel::new(model());
        let mut b = PredictedModel::new(model());
        let mut i = a.instance("i2").expect("i2").clone();
        i.host = "h2".into();
        a.put_instance(i);
        a.remove_instance("i3");
        let text = serde_json::to_string(&a.take_changes()).expect("json");
        for c in serde_json::from_str::<Vec<ModelChange>>(&text).expect("changes") {
            b.apply(c);
        }
        assert_eq!(a.to_model(), b.to_model());
        assert!(
            b.take_changes().is_empty(),
            "applied changes are not recorded"
        );
    }
}
