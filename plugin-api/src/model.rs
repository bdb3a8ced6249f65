//! The cluster data model: what collectors produce and strategies read, as
//! plain serde types with Watcher's field names and defaults (reference
//! section 5.6). Memory in MB, disk in GB. It is also the format of cluster
//! snapshots (`examples/clusters/*.yaml`).
//!
//! It crosses the plugin boundary as JSON, so it is not part of the ABI:
//! fields can be added freely (with defaults).
//!
//! ```
//! use sextant_plugin_api::model::ClusterModel;
//! let m: ClusterModel = serde_json::from_value(serde_json::json!({
//!     "nodes": [{"uuid": "n1", "hostname": "compute-1", "vcpus": 8, "memory": 16384, "disk": 100}],
//!     "instances": [{"uuid": "i1", "name": "vm-1", "host": "compute-1", "vcpus": 2, "memory": 2048, "disk": 20}]
//! })).unwrap();
//! assert!(m.check().errors.is_empty());
//! assert_eq!(m.nodes[0].status, "enabled");
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

fn one() -> f64 {
    1.0
}
fn enabled() -> String {
    "enabled".into()
}
fn up() -> String {
    "up".into()
}
fn on() -> String {
    "on".into()
}
fn active() -> String {
    "active".into()
}
fn available() -> String {
    "available".into()
}

/// A metric: one value already aggregated over the audit period, or a
/// series of `[unix_seconds, value]` points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Metric {
    /// An aggregated value.
    Value(f64),
    /// A time series.
    Series(Vec<(f64, f64)>),
}

impl Metric {
    /// The mean of the series, or the value.
    pub fn mean(&self) -> Option<f64> {
        match self {
            Metric::Value(v) => Some(*v),
            Metric::Series(s) if s.is_empty() => None,
            Metric::Series(s) => Some(s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64),
        }
    }
}

/// A compute node (Watcher's `ComputeNode`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id.
    pub uuid: String,
    /// Hostname; instances name their host by it.
    pub hostname: String,
    /// Physical vCPUs.
    pub vcpus: u64,
    /// Memory, MB.
    pub memory: u64,
    /// Disk, GB.
    pub disk: u64,
    /// Reserved vCPUs.
    #[serde(default)]
    pub vcpu_reserved: u64,
    /// Reserved memory, MB.
    #[serde(default)]
    pub memory_mb_reserved: u64,
    /// Reserved disk, GB.
    #[serde(default)]
    pub disk_gb_reserved: u64,
    /// CPU allocation ratio.
    #[serde(default = "one")]
    pub vcpu_ratio: f64,
    /// Memory allocation ratio.
    #[serde(default = "one")]
    pub memory_ratio: f64,
    /// Disk allocation ratio.
    #[serde(default = "one")]
    pub disk_ratio: f64,
    /// nova-compute service status: `enabled` or `disabled`.
    #[serde(default = "enabled")]
    pub status: String,
    /// Why it is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Service state: `up` or `down`.
    #[serde(default = "up")]
    pub state: String,
    /// Power: `on` or `off`.
    #[serde(default = "on")]
    pub power_state: String,
    /// Availability zone (for audit scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Host aggregates it belongs to (for audit scopes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<String>,
    /// Metrics by Watcher's names (`host_cpu_usage`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Metric>,
}

impl Node {
    /// Usable capacity `(vcpus, memory MB, disk GB)`: `(total - reserved) × ratio`.
    pub fn capacity(&self) -> (f64, f64, f64) {
        (
            (self.vcpus.saturating_sub(self.vcpu_reserved)) as f64 * self.vcpu_ratio,
            (self.memory.saturating_sub(self.memory_mb_reserved)) as f64 * self.memory_ratio,
            (self.disk.saturating_sub(self.disk_gb_reserved)) as f64 * self.disk_ratio,
        )
    }
}

/// A server (Watcher's `Instance`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Unique id.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// The hostname of the node it runs on.
    pub host: String,
    /// vCPUs.
    pub vcpus: u64,
    /// Memory, MB.
    pub memory: u64,
    /// Disk, GB.
    pub disk: u64,
    /// `active`, `stopped`, `shelved`, …
    #[serde(default = "active")]
    pub state: String,
    /// Project.
    #[serde(default)]
    pub project_id: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// Locked against changes.
    #[serde(default)]
    pub locked: bool,
    /// Excluded from optimisation.
    #[serde(default)]
    pub watcher_exclude: bool,
    /// Metrics by Watcher's names (`instance_cpu_usage`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Metric>,
}

/// A Cinder storage pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePool {
    /// `host@backend#pool`-style name.
    pub name: String,
    /// Total capacity, GB.
    pub total_capacity_gb: f64,
    /// Free capacity, GB.
    pub free_capacity_gb: f64,
    /// Volume types it serves.
    #[serde(default)]
    pub volume_type: Vec<String>,
    /// Availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// A Cinder volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Unique id.
    pub uuid: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Size, GB.
    pub size: u64,
    /// The pool it lives in.
    pub pool: String,
    /// Its volume type.
    #[serde(default)]
    pub volume_type: String,
    /// `available`, `in-use`, …
    #[serde(default = "available")]
    pub status: String,
    /// Instances it is attached to.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Project.
    #[serde(default)]
    pub project_id: String,
}

/// The whole model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterModel {
    /// Compute nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Instances.
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// Storage pools.
    #[serde(default)]
    pub storage_pools: Vec<StoragePool>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// What [`ClusterModel::check`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelCheck {
    /// Contradictions: the model must be refused.
    pub errors: Vec<String>,
    /// Oddities worth a warning (a host allocated beyond its capacity).
    pub warnings: Vec<String>,
}

/// Each metric value (or series point) that is NaN or infinite, as
/// `metric NAME is VALUE` (or `metric NAME point I is VALUE`).
fn non_finite_metrics(metrics: &BTreeMap<String, Metric>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, m) in metrics {
        match m {
            Metric::Value(v) if !v.is_finite() => out.push(format!("metric {name} is {v}")),
            Metric::Value(_) => {}
            Metric::Series(points) => {
                for (i, (t, v)) in points.iter().enumerate() {
                    if !(t.is_finite() && v.is_finite()) {
                        out.push(format!("metric {name} point {i} is [{t}, {v}]"));
                    }
                }
            }
        }
    }
    out
}

impl ClusterModel {
    /// Whether the model has no node, instance, pool or volume.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.instances.is_empty()
            && self.storage_pools.is_empty()
            && self.volumes.is_empty()
    }

    /// Finds contradictions (an instance on an unknown host, a duplicate
    /// uuid or hostname, a volume in an unknown pool or attached to an
    /// unknown instance, a NaN or infinite metric, a pool capacity that is
    /// negative or not a number) and over-allocated hosts.
    pub fn check(&self) -> ModelCheck {
        let mut c = ModelCheck::default();
        let mut uuids = HashSet::new();
        let mut dup = |kind: &str, uuid: &str, c: &mut ModelCheck| {
            if !uuids.insert(uuid.to_string()) {
                c.errors.push(format!("{kind} {uuid}: duplicate uuid"));
            }
        };
        let mut hostnames = HashSet::new();
        for n in &self.nodes {
            dup("node", &n.uuid, &mut c);
            if !hostnames.insert(n.hostname.as_str()) {
                c.errors.push(format!(
                    "node {}: duplicate hostname {}",
                    n.uuid, n.hostname
                ));
            }
            for (what, v) in [
                ("vcpu_ratio", n.vcpu_ratio),
                ("memory_ratio", n.memory_ratio),
                ("disk_ratio", n.disk_ratio),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    c.errors
                        .push(format!("node {}: {what} must be > 0, not {v}", n.hostname));
                }
            }
            for m in non_finite_metrics(&n.metrics) {
                c.errors.push(format!("node {}: {m}", n.hostname));
            }
        }
        let mut used: HashMap<&str, (f64, f64, f64)> = HashMap::new();
        for i in &self.instances {
            dup("instance", &i.uuid, &mut c);
            for m in non_finite_metrics(&i.metrics) {
                c.errors
                    .push(format!("instance {} ({}): {m}", i.uuid, i.name));
            }
            if !hostnames.contains(i.host.as_str()) {
                c.errors.push(format!(
                    "instance {} ({}): on unknown host {}",
                    i.uuid, i.name, i.host
                ));
                continue;
            }
            let u = used.entry(&i.host).or_default();
            u.0 += i.vcpus as f64;
            u.1 += i.memory as f64;
            u.2 += i.disk as f64;
        }
        for n in &self.nodes {
            let (cv, cm, cd) = n.capacity();
            if let Some((v, m, d)) = used.get(n.hostname.as_str()) {
                for (what, u, cap) in [("vcpus", v, cv), ("memory", m, cm), ("disk", d, cd)] {
                    if *u > cap + 1e-9 {
                        c.warnings.push(format!(
                            "node {}: {what} allocated {u} beyond its capacity {cap}",
                            n.hostname
                        ));
                    }
                }
            }
        }
        let pools: HashSet<&str> = self.storage_pools.iter().map(|p| p.name.as_str()).collect();
        let mut pool_names = HashSet::new();
        for p in &self.storage_pools {
            if !pool_names.insert(p.name.as_str()) {
                c.errors
                    .push(format!("storage pool {}: duplicate name", p.name));
            }
            for (what, v) in [
                ("total_capacity_gb", p.total_capacity_gb),
                ("free_capacity_gb", p.free_capacity_gb),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    c.errors.push(format!(
                        "storage pool {}: {what} must be a number >= 0, not {v}",
                        p.name
                    ));
                }
            }
        }
        let instances: HashSet<&str> = self.instances.iter().map(|i| i.uuid.as_str()).collect();
        for v in &self.volumes {
            dup("volume", &v.uuid, &mut c);
            if !pools.contains(v.pool.as_str()) {
                c.errors
                    .push(format!("volume {}: in unknown pool {}", v.uuid, v.pool));
            }
            for a in &v.attachments {
                if !instances.contains(a.as_str()) {
                    c.errors.push(format!(
                        "volume {}: attached to unknown instance {a}",
                        v.uuid
                    ));
                }
            }
        }
        c
    }

    /// The node with this hostname.
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.hostname == hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model(v: Value) -> ClusterModel {
        serde_json::from_value(v).expect("model")
    }

    #[test]
    fn contradictions_are_named() {
        let m = model(json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100},
                {"uuid": "n1", "hostname": "h2", "vcpus": 4, "memory": 4096, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h9", "vcpus": 1, "memory": 512, "disk": 1}
            ]
        }));
        let c = m.check();
        assert_eq!(c.errors.len(), 2, "{c:?}");
        assert!(c.errors[0].contains("n1") && c.errors[0].contains("duplicate"));
        assert!(c.errors[1].contains("i1") && c.errors[1].contains("h9"));
    }

    #[test]
    fn over_allocation_is_a_warning_with_ratios_and_reservations() {
        let m = model(json!({
            "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100,
                       "vcpu_ratio": 2.0, "memory_mb_reserved": 1024}],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 8, "memory": 3072, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 0, "memory": 1, "disk": 10}
            ]
        }));
        let c = m.check();
        assert!(c.errors.is_empty(), "{c:?}");
        assert_eq!(c.warnings.len(), 1, "{c:?}");
        assert!(c.warnings[0].contains("memory"), "{c:?}");
    }

    #[test]
    fn non_finite_metrics_and_bad_pool_capacities_are_named() {
        let mut m = model(json!({
            "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100}],
            "instances": [{"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1}],
            "storage_pools": [{"name": "p@lvm", "total_capacity_gb": 100, "free_capacity_gb": 40}]
        }));
        m.nodes[0]
            .metrics
            .insert("host_cpu_usage".into(), Metric::Value(f64::NAN));
        m.instances[0].metrics.insert(
            "instance_cpu_usage".into(),
            Metric::Series(vec![(0.0, 1.0), (60.0, f64::INFINITY)]),
        );
        m.storage_pools[0].total_capacity_gb = f64::NAN;
        m.storage_pools[0].free_capacity_gb = -1.0;
        let c = m.check();
        assert_eq!(c.errors.len(), 4, "{c:?}");
        assert!(c.errors[0].contains("h1") && c.errors[0].contains("host_cpu_usage"));
        assert!(c.errors[1].contains("i1") && c.errors[1].contains("point 1"));
        assert!(c.errors[2].contains("p@lvm") && c.errors[2].contains("total_capacity_gb"));
        assert!(c.errors[3].contains("p@lvm") && c.errors[3].contains("free_capacity_gb"));
        assert!(!m.is_empty() && ClusterModel::default().is_empty());
    }

    #[test]
    fn metrics_are_values_or_series() {
        let m: Metric = serde_json::from_value(json!([[0, 10.0], [60, 20.0]])).expect("series");
        assert_eq!(m.mean(), Some(15.0));
        let m: Metric = serde_json::from_value(json!(41.5)).expect("value");
        assert_eq!(m.mean(), Some(41.5));
    }
}
