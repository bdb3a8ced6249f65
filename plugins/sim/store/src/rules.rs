//! The simulated cloud's rules, written once over a [`Cloud`]: what Nova,
//! Cinder and Ironic accept or refuse (capacity with ratios and
//! reservations, service and power state) and what each accepted operation
//! changes.
//!
//! Two clouds implement [`Cloud`]: sim.db inside one transaction
//! ([`crate::ops`], what the `sim` handlers execute) and a
//! [`PredictedModel`] (what simulation predicts). The same functions decide
//! both, so a prediction and an execution from the same state agree.

use crate::SimError;
use sextant_plugin_api::model::{Instance, Node, StoragePool, Volume};
use sextant_plugin_api::prediction::PredictedModel;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The target does not exist (a pre-condition skips the action).
    #[error("{0}")]
    NotFound(String),
    /// The change is not needed (a pre-condition skips the action).
    #[error("{0}")]
    AlreadyDone(String),
    /// The service refuses the change.
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] SimError),
}

/// Flavors of the simulated cloud: OpenStack's defaults.
pub const FLAVORS: &[(&str, u64, u64, u64)] = &[
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
];

/// A cloud the rules read and change.
pub trait Cloud {
    /// The node with this hostname.
    fn node(&self, hostname: &str) -> Result<Option<Node>, OpError>;
    /// The node with this uuid.
    fn node_by_uuid(&self, uuid: &str) -> Result<Option<Node>, OpError>;
    /// Every node, in model order.
    fn nodes(&self) -> Result<Vec<Node>, OpError>;
    /// The instance with this uuid.
    fn instance(&self, uuid: &str) -> Result<Option<Instance>, OpError>;
    /// The instances on a host.
    fn instances_on(&self, hostname: &str) -> Result<Vec<Instance>, OpError>;
    /// The storage pool with this name.
    fn pool(&self, name: &str) -> Result<Option<StoragePool>, OpError>;
    /// Every storage pool.
    fn pools(&self) -> Result<Vec<StoragePool>, OpError>;
    /// The volume with this uuid.
    fn volume(&self, uuid: &str) -> Result<Option<Volume>, OpError>;
    /// Replaces a node (by uuid).
    fn put_node(&mut self, n: &Node) -> Result<(), OpError>;
    /// Replaces an instance (by uuid).
    fn put_instance(&mut self, i: &Instance) -> Result<(), OpError>;
    /// Removes an instance; false when there was none.
    fn delete_instance(&mut self, uuid: &str) -> Result<bool, OpError>;
    /// Replaces a storage pool (by name).
    fn put_pool(&mut self, p: &StoragePool) -> Result<(), OpError>;
    /// Replaces a volume (by uuid).
    fn put_volume(&mut self, v: &Volume) -> Result<(), OpError>;
}

/// A shelved and offloaded instance keeps its record but, as in Nova, no
/// longer uses its host: its vcpus, memory and disk are free.
pub fn offloaded(i: &Instance) -> bool {
    i.state == "shelved_offloaded"
}

fn node_by_uuid_or_name(c: &impl Cloud, id: &str) -> Result<Option<Node>, OpError> {
    match c.node_by_uuid(id)? {
        Some(n) => Ok(Some(n)),
        None => c.node(id),
    }
}

/// `(vcpus, memory, disk)` the instances on a host use, without `except`
/// (offloaded ones use nothing).
fn used(c: &impl Cloud, hostname: &str, except: Option<&str>) -> Result<(f64, f64, f64), OpError> {
    let mut u = (0.0, 0.0, 0.0);
    for i in c.instances_on(hostname)? {
        if Some(i.uuid.as_str()) == except || offloaded(&i) {
            continue;
        }
        u.0 += i.vcpus as f64;
        u.1 += i.memory as f64;
        u.2 += i.disk as f64;
    }
    Ok(u)
}

/// Refuses if `host` cannot take `need` more (vcpus, memory, disk).
fn check_capacity(
    c: &impl Cloud,
    host: &Node,
    need: (u64, u64, u64),
    except: Option<&str>,
) -> Result<(), OpError> {
    let (cv, cm, cd) = host.capacity();
    let (uv, um, ud) = used(c, &host.hostname, except)?;
    for (what, u, n, cap) in [
        ("vcpus", uv, need.0, cv),
        ("memory", um, need.1, cm),
        ("disk", ud, need.2, cd),
    ] {
        if u + n as f64 > cap + 1e-9 {
            return Err(OpError::Refused(format!(
                "No valid host was found: {} has {} {what} free, {n} needed",
                host.hostname,
                cap - u
            )));
        }
    }
    Ok(())
}

fn usable(n: &Node) -> Result<(), OpError> {
    if n.status != "enabled" {
        return Err(OpError::Refused(format!("host {} is disabled", n.hostname)));
    }
    if n.state != "up" {
        return Err(OpError::Refused(format!("host {} is down", n.hostname)));
    }
    if n.power_state != "on" {
        return Err(OpError::Refused(format!(
            "host {} is powered off",
            n.hostname
        )));
    }
    Ok(())
}

/// The destination of a move: the one given (usable, with room), or the
/// first usable host with room (what the scheduler would pick).
fn pick_destination(
    c: &impl Cloud,
    i: &Instance,
    destination: Option<&str>,
) -> Result<String, OpError> {
    let need = (i.vcpus, i.memory, i.disk);
    match destination {
        Some(d) => {
            let n = c
                .node(d)?
                .ok_or_else(|| OpError::Refused(format!("destination host {d} not found")))?;
            if n.hostname == i.host {
                return Err(OpError::Refused(format!(
                    "instance {} is already on {d}",
                    i.uuid
                )));
            }
            usable(&n)?;
            check_capacity(c, &n, need, None)?;
            Ok(n.hostname)
        }
        None => {
            for n in c.nodes()? {
                if n.hostname == i.host || usable(&n).is_err() {
                    continue;
                }
                if check_capacity(c, &n, need, None).is_ok() {
                    return Ok(n.hostname);
                }
            }
            Err(OpError::Refused(format!(
                "No valid host was found for instance {}",
                i.uuid
            )))
        }
    }
}

/// Checks a migration as Nova's pre-checks would; returns the chosen
/// destination (the scheduler picks one when none is given).
pub fn check_migrate(
    c: &impl Cloud,
    uuid: &str,
    source: &str,
    destination: Option<&str>,
    live: bool,
) -> Result<String, OpError> {
    let i = c
        .instance(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
    if i.host != source {
        return Err(OpError::AlreadyDone(format!(
            "Instance {uuid} is not running on source node {source} (currently on {})",
            i.host
        )));
    }
    if live && i.state != "active" {
        return Err(OpError::Refused(format!(
            "Instance {uuid} is {}: live migration needs an active instance",
            i.state
        )));
    }
    pick_destination(c, &i, destination)
}

/// Moves an instance to `destination`, checking capacity and the
/// destination's state at the moment of the move.
pub fn migrate(
    c: &mut impl Cloud,
    uuid: &str,
    source: &str,
    destination: &str,
) -> Result<(), OpError> {
    let mut i = c
        .instance(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
    if i.host != source {
        return Err(OpError::Refused(format!(
            "Instance {uuid} moved to {} meanwhile",
            i.host
        )));
    }
    i.host = pick_destination(c, &i, Some(destination))?;
    c.put_instance(&i)
}

/// Moves an instance back to the host it came from, undoing a migration:
/// as an operator's forced move, it goes to a host whose service is
/// disabled (a host being drained is disabled first), but the host must be
/// up, on, and have room.
pub fn migrate_back(c: &mut impl Cloud, uuid: &str, from: &str, to: &str) -> Result<(), OpError> {
    let mut i = c
        .instance(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
    if i.host == to {
        return Ok(());
    }
    if i.host != from {
        return Err(OpError::Refused(format!(
            "Instance {uuid} moved to {} meanwhile",
            i.host
        )));
    }
    let n = c
        .node(to)?
        .ok_or_else(|| OpError::Refused(format!("source host {to} not found")))?;
    if n.state != "up" {
        return Err(OpError::Refused(format!("host {to} is down")));
    }
    if n.power_state != "on" {
        return Err(OpError::Refused(format!("host {to} is powered off")));
    }
    check_capacity(c, &n, (i.vcpus, i.memory, i.disk), None)?;
    i.host = n.hostname;
    c.put_instance(&i)
}

/// Sets a compute service's status (`enabled`/`disabled`).
pub fn set_service(
    c: &mut impl Cloud,
    host: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<(), OpError> {
    let mut n = node_by_uuid_or_name(c, host)?
        .ok_or_else(|| OpError::NotFound(format!("No nova-compute service on host {host}")))?;
    if n.status == status {
        return Err(OpError::AlreadyDone(format!(
            "nova-compute on {host} is already {status}"
        )));
    }
    n.status = status.into();
    n.disabled_reason = if status == "disabled" {
        reason.map(String::from)
    } else {
        None
    };
    c.put_node(&n)
}

/// Powers a node on or off; off is refused while instances run on it.
pub fn set_power(
    c: &mut impl Cloud,
    id: &str,
    state: &str,
    check_only: bool,
) -> Result<(), OpError> {
    let mut n = node_by_uuid_or_name(c, id)?
        .ok_or_else(|| OpError::NotFound(format!("Node {id} not found")))?;
    if n.power_state == state {
        return Err(OpError::AlreadyDone(format!(
            "node {} is already {state}",
            n.hostname
        )));
    }
    if state == "off" {
        let running = c
            .instances_on(&n.hostname)?
            .iter()
            .filter(|i| !offloaded(i))
            .count();
        if running > 0 {
            return Err(OpError::Refused(format!(
                "node {} still hosts {running} instances: it cannot be powered off",
                n.hostname
            )));
        }
    }
    if !check_only {
        n.power_state = state.into();
        c.put_node(&n)?;
    }
    Ok(())
}

/// Resizes an instance to a flavor, on its host.
pub fn resize(
    c: &mut impl Cloud,
    uuid: &str,
    flavor: &str,
    check_only: bool,
) -> Result<(), OpError> {
    let mut i = c
        .instance(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
    let &(_, v, m, d) = FLAVORS
        .iter()
        .find(|f| f.0 == flavor)
        .ok_or_else(|| OpError::Refused(format!("Flavor {flavor} could not be found")))?;
    let host = c
        .node(&i.host)?
        .ok_or_else(|| OpError::Refused(format!("host {} is gone", i.host)))?;
    check_capacity(c, &host, (v, m, d), Some(uuid))?;
    if !check_only {
        (i.vcpus, i.memory, i.disk) = (v, m, d);
        c.put_instance(&i)?;
    }
    Ok(())
}

/// Sets an instance's state (`stopped`, `shelved_offloaded`, `active`);
/// `AlreadyDone` when it is in one of `skip_if`.
pub fn set_instance_state(
    c: &mut impl Cloud,
    uuid: &str,
    state: &str,
    skip_if: &[&str],
) -> Result<(), OpError> {
    let mut i = c
        .instance(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
    if skip_if.contains(&i.state.as_str()) {
        return Err(OpError::AlreadyDone(format!(
            "Instance {uuid} is already {}",
            i.state
        )));
    }
    i.state = state.into();
    c.put_instance(&i)
}

/// Deletes an instance.
pub fn delete_instance(c: &mut impl Cloud, uuid: &str) -> Result<(), OpError> {
    if !c.delete_instance(uuid)? {
        return Err(OpError::NotFound(format!("Instance {uuid} not found")));
    }
    Ok(())
}

/// Moves a volume to another pool, or changes its type.
pub fn volume_migrate(
    c: &mut impl Cloud,
    uuid: &str,
    pool: Option<&str>,
    new_type: Option<&str>,
    check_only: bool,
) -> Result<(), OpError> {
    let mut v = c
        .volume(uuid)?
        .ok_or_else(|| OpError::NotFound(format!("Volume {uuid} not found")))?;
    if let Some(p) = pool {
        if v.pool == p {
            return Err(OpError::AlreadyDone(format!(
                "Volume {uuid} is already in pool {p}"
            )));
        }
        let mut dst = c
            .pool(p)?
            .ok_or_else(|| OpError::Refused(format!("Pool {p} not found")))?;
        if dst.free_capacity_gb < v.size as f64 {
            return Err(OpError::Refused(format!(
                "Pool {p} has {} GB free, volume {uuid} needs {}",
                dst.free_capacity_gb, v.size
            )));
        }
        if !check_only {
            if let Some(mut src) = c.pool(&v.pool)? {
                src.free_capacity_gb += v.size as f64;
                c.put_pool(&src)?;
            }
            dst.free_capacity_gb -= v.size as f64;
            c.put_pool(&dst)?;
            v.pool = p.into();
        }
    }
    if let Some(t) = new_type {
        if v.volume_type == t {
            return Err(OpError::AlreadyDone(format!(
                "Volume {uuid} is already of type {t}"
            )));
        }
        if !c
            .pools()?
            .iter()
            .any(|p| p.volume_type.iter().any(|x| x == t))
        {
            return Err(OpError::Refused(format!("Volume type {t} not found")));
        }
        v.volume_type = t.into();
    }
    if !check_only {
        c.put_volume(&v)?;
    }
    Ok(())
}

/// The prediction's model as a cloud: the rules change it as they change
/// sim.db.
impl Cloud for PredictedModel {
    fn node(&self, hostname: &str) -> Result<Option<Node>, OpError> {
        Ok(PredictedModel::node(self, hostname).cloned())
    }
    fn node_by_uuid(&self, uuid: &str) -> Result<Option<Node>, OpError> {
        Ok(PredictedModel::node_by_uuid(self, uuid).cloned())
    }
    fn nodes(&self) -> Result<Vec<Node>, OpError> {
        Ok(PredictedModel::nodes(self).to_vec())
    }
    fn instance(&self, uuid: &str) -> Result<Option<Instance>, OpError> {
        Ok(PredictedModel::instance(self, uuid).cloned())
    }
    fn instances_on(&self, hostname: &str) -> Result<Vec<Instance>, OpError> {
        Ok(PredictedModel::instances_on(self, hostname)
            .cloned()
            .collect())
    }
    fn pool(&self, name: &str) -> Result<Option<StoragePool>, OpError> {
        Ok(self.storage_pool(name).cloned())
    }
    fn pools(&self) -> Result<Vec<StoragePool>, OpError> {
        Ok(self.storage_pools().to_vec())
    }
    fn volume(&self, uuid: &str) -> Result<Option<Volume>, OpError> {
        Ok(PredictedModel::volume(self, uuid).cloned())
    }
    fn put_node(&mut self, n: &Node) -> Result<(), OpError> {
        PredictedModel::put_node(self, n.clone());
        Ok(())
    }
    fn put_instance(&mut self, i: &Instance) -> Result<(), OpError> {
        PredictedModel::put_instance(self, i.clone());
        Ok(())
    }
    fn delete_instance(&mut self, uuid: &str) -> Result<bool, OpError> {
        Ok(self.remove_instance(uuid))
    }
    fn put_pool(&mut self, p: &StoragePool) -> Result<(), OpError> {
        self.put_storage_pool(p.clone());
        Ok(())
    }
    fn put_volume(&mut self, v: &Volume) -> Result<(), OpError> {
        PredictedModel::put_volume(self, v.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_plugin_api::model::ClusterModel;

    fn model() -> ClusterModel {
        serde_json::from_value(serde_json::json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 4, "memory": 4096, "disk": 100},
                {"uuid": "n3", "hostname": "h3", "vcpus": 2, "memory": 2048, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h2", "vcpus": 2, "memory": 2048, "disk": 10},
                {"uuid": "i3", "name": "c", "host": "h2", "vcpus": 2, "memory": 2048, "disk": 10}
            ],
            "storage_pools": [
                {"name": "p1", "total_capacity_gb": 100, "free_capacity_gb": 50, "volume_type": ["lvm"]},
                {"name": "p2", "total_capacity_gb": 100, "free_capacity_gb": 5, "volume_type": ["ssd"]}
            ],
            "volumes": [{"uuid": "v1", "size": 10, "pool": "p1", "volume_type": "lvm"}]
        }))
        .expect("model")
    }

    /// What an operation ended as, comparable across the two clouds.
    fn outcome<T: std::fmt::Debug>(r: Result<T, OpError>) -> String {
        match r {
            Ok(v) => format!("ok {v:?}"),
            Err(OpError::NotFound(m)) => format!("not found: {m}"),
            Err(OpError::AlreadyDone(m)) => format!("already done: {m}"),
            Err(OpError::Refused(m)) => format!("refused: {m}"),
            Err(OpError::Db(e)) => panic!("database: {e}"),
        }
    }

    crate::testing::on_both_backends!(sim_db_and_predicted_model_agree_on_every_rule);

    /// One script of operations, accepted and refused ones, run on the
    /// stored cloud and on a predicted model from the same state: every
    /// outcome and the end state agree.
    fn sim_db_and_predicted_model_agree_on_every_rule(t: crate::testing::TestCloud) {
        let mut db = t.open();
        db.init(&model(), 0.0).expect("init");
        let mut p = PredictedModel::new(model());
        let mut seen = Vec::new();
        macro_rules! both {
            ($db:expr, $m:expr) => {{
                let a = outcome($db);
                let b = outcome($m);
                if b.starts_with("ok") {
                    p.take_changes();
                } else {
                    p.rollback();
                }
                assert_eq!(a, b);
                seen.push(a);
            }};
        }
        both!(
            db.check_migrate("i1", "h1", None, true),
            check_migrate(&p, "i1", "h1", None, true)
        );
        both!(
            db.set_service("h2", "disabled", Some("x")),
            set_service(&mut p, "h2", "disabled", Some("x"))
        );
        both!(
            db.set_service("h2", "disabled", None),
            set_service(&mut p, "h2", "disabled", None)
        );
        both!(
            db.migrate("i1", "h1", "h2"),
            migrate(&mut p, "i1", "h1", "h2")
        );
        both!(
            db.migrate("i1", "h1", "h3"),
            migrate(&mut p, "i1", "h1", "h3")
        );
        both!(
            db.migrate("i1", "h3", "h1"),
            migrate(&mut p, "i1", "h3", "h1")
        );
        both!(
            db.set_power("n1", "off", false),
            set_power(&mut p, "n1", "off", false)
        );
        both!(
            db.resize("i2", "m1.large", false),
            resize(&mut p, "i2", "m1.large", false)
        );
        both!(
            db.resize("i2", "m1.tiny", false),
            resize(&mut p, "i2", "m1.tiny", false)
        );
        both!(
            db.resize("i2", "m1.huge", false),
            resize(&mut p, "i2", "m1.huge", false)
        );
        both!(
            db.set_instance_state("i3", "shelved_offloaded", &["shelved_offloaded"]),
            set_instance_state(&mut p, "i3", "shelved_offloaded", &["shelved_offloaded"])
        );
        both!(
            db.set_instance_state("i3", "shelved_offloaded", &["shelved_offloaded"]),
            set_instance_state(&mut p, "i3", "shelved_offloaded", &["shelved_offloaded"])
        );
        both!(db.delete_instance("i2"), delete_instance(&mut p, "i2"));
        both!(db.delete_instance("i2"), delete_instance(&mut p, "i2"));
        both!(
            db.set_power("h2", "off", false),
            set_power(&mut p, "h2", "off", false)
        );
        both!(
            db.volume_migrate("v1", Some("p2"), None, false),
            volume_migrate(&mut p, "v1", Some("p2"), None, false)
        );
        both!(
            db.volume_migrate("v1", Some("p1"), None, false),
            volume_migrate(&mut p, "v1", Some("p1"), None, false)
        );
        both!(
            db.volume_migrate("v1", None, Some("ssd"), false),
            volume_migrate(&mut p, "v1", None, Some("ssd"), false)
        );
        both!(
            db.volume_migrate("v1", None, Some("nvme"), false),
            volume_migrate(&mut p, "v1", None, Some("nvme"), false)
        );
        both!(
            db.volume_migrate("v9", Some("p2"), None, false),
            volume_migrate(&mut p, "v9", Some("p2"), None, false)
        );
        assert!(seen.iter().any(|s| s.starts_with("refused")), "{seen:?}");
        assert!(
            seen.iter().any(|s| s.starts_with("already done")),
            "{seen:?}"
        );
        assert!(seen.iter().any(|s| s.starts_with("not found")), "{seen:?}");
        assert_eq!(p.to_model(), db.model().expect("model"));
    }
}
