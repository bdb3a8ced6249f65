//! What the simulated cloud's services do: each operation is one immediate
//! transaction that checks the rules (capacity with ratios and reservations,
//! service and power state) and applies the change, as Nova, Cinder and
//! Ironic would refuse or accept it.

use crate::{SimDb, SimError};
use rusqlite::{OptionalExtension, Transaction, params};
use sextant_plugin_api::model::{Instance, Node, StoragePool, Volume};

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

fn get<T: serde::de::DeserializeOwned>(
    tx: &Transaction<'_>,
    sql: &str,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    let doc: Option<String> = tx.query_row(sql, [key], |r| r.get(0)).optional()?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

fn node(tx: &Transaction<'_>, hostname: &str) -> rusqlite::Result<Option<Node>> {
    get(tx, "SELECT doc FROM nodes WHERE hostname = ?1", hostname)
}

fn node_by_uuid_or_name(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<Node>> {
    match get::<Node>(tx, "SELECT doc FROM nodes WHERE uuid = ?1", id)? {
        Some(n) => Ok(Some(n)),
        None => node(tx, id),
    }
}

fn instance(tx: &Transaction<'_>, uuid: &str) -> rusqlite::Result<Option<Instance>> {
    get(tx, "SELECT doc FROM instances WHERE uuid = ?1", uuid)
}

fn put_node(tx: &Transaction<'_>, n: &Node) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE nodes SET doc = ?1 WHERE uuid = ?2",
        params![serde_json::to_string(n).unwrap_or_default(), n.uuid],
    )?;
    Ok(())
}

fn put_instance(tx: &Transaction<'_>, i: &Instance) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE instances SET host = ?1, doc = ?2 WHERE uuid = ?3",
        params![i.host, serde_json::to_string(i).unwrap_or_default(), i.uuid],
    )?;
    Ok(())
}

/// `(vcpus, memory, disk)` used on a host, without `except`.
/// A shelved and offloaded instance keeps its record but, as in Nova, no
/// longer uses its host: its vcpus, memory and disk are free.
fn offloaded(i: &Instance) -> bool {
    i.state == "shelved_offloaded"
}

/// What the instances on a host use (offloaded ones use nothing).
fn used(
    tx: &Transaction<'_>,
    hostname: &str,
    except: Option<&str>,
) -> rusqlite::Result<(f64, f64, f64)> {
    let mut st = tx.prepare("SELECT uuid, doc FROM instances WHERE host = ?1")?;
    let rows: Vec<(String, String)> = st
        .query_map([hostname], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut u = (0.0, 0.0, 0.0);
    for (id, doc) in rows {
        if Some(id.as_str()) == except {
            continue;
        }
        if let Ok(i) = serde_json::from_str::<Instance>(&doc)
            && !offloaded(&i)
        {
            u.0 += i.vcpus as f64;
            u.1 += i.memory as f64;
            u.2 += i.disk as f64;
        }
    }
    Ok(u)
}

/// Refuses if `host` cannot take `need` more (vcpus, memory, disk).
fn check_capacity(
    tx: &Transaction<'_>,
    host: &Node,
    need: (u64, u64, u64),
    except: Option<&str>,
) -> Result<(), OpError> {
    let (cv, cm, cd) = host.capacity();
    let (uv, um, ud) = used(tx, &host.hostname, except).map_err(SimError::from_rusqlite)?;
    for (what, u, n, c) in [
        ("vcpus", uv, need.0, cv),
        ("memory", um, need.1, cm),
        ("disk", ud, need.2, cd),
    ] {
        if u + n as f64 > c + 1e-9 {
            return Err(OpError::Refused(format!(
                "No valid host was found: {} has {} {what} free, {n} needed",
                host.hostname,
                c - u
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

impl SimError {
    pub(crate) fn from_rusqlite(e: rusqlite::Error) -> Self {
        SimError::Sqlite {
            path: PathBuf::new(),
            source: e,
        }
    }
}

use std::path::PathBuf;

impl SimDb {
    /// Runs one operation in an immediate transaction.
    fn op<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let path = self.path.clone();
        let err = |source| SimError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let v = f(&tx)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    /// An instance, if it exists.
    pub fn instance(&mut self, uuid: &str) -> Result<Option<Instance>, OpError> {
        self.op(|tx| Ok(instance(tx, uuid).map_err(SimError::from_rusqlite)?))
    }

    /// A node by hostname or uuid, if it exists.
    pub fn node(&mut self, id: &str) -> Result<Option<Node>, OpError> {
        self.op(|tx| Ok(node_by_uuid_or_name(tx, id).map_err(SimError::from_rusqlite)?))
    }

    /// Checks a migration as Nova's pre-checks would; returns the chosen
    /// destination (the scheduler picks one when none is given).
    pub fn check_migrate(
        &mut self,
        uuid: &str,
        source: &str,
        destination: Option<&str>,
        live: bool,
    ) -> Result<String, OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let i = instance(tx, uuid)
                .map_err(db)?
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
            pick_destination(tx, &i, destination)
        })
    }

    /// Moves an instance to `destination`, checking capacity and the
    /// destination's state at the moment of the move.
    pub fn migrate(&mut self, uuid: &str, source: &str, destination: &str) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut i = instance(tx, uuid)
                .map_err(db)?
                .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
            if i.host != source {
                return Err(OpError::Refused(format!(
                    "Instance {uuid} moved to {} meanwhile",
                    i.host
                )));
            }
            let d = pick_destination(tx, &i, Some(destination))?;
            i.host = d;
            put_instance(tx, &i).map_err(db)?;
            Ok(())
        })
    }

    /// Sets a compute service's status (`enabled`/`disabled`).
    pub fn set_service(
        &mut self,
        host: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut n = node_by_uuid_or_name(tx, host).map_err(db)?.ok_or_else(|| {
                OpError::NotFound(format!("No nova-compute service on host {host}"))
            })?;
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
            put_node(tx, &n).map_err(db)?;
            Ok(())
        })
    }

    /// Powers a node on or off; off is refused while instances run on it.
    pub fn set_power(&mut self, id: &str, state: &str, check_only: bool) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut n = node_by_uuid_or_name(tx, id)
                .map_err(db)?
                .ok_or_else(|| OpError::NotFound(format!("Node {id} not found")))?;
            if n.power_state == state {
                return Err(OpError::AlreadyDone(format!(
                    "node {} is already {state}",
                    n.hostname
                )));
            }
            if state == "off" {
                let docs: Vec<String> = tx
                    .prepare("SELECT doc FROM instances WHERE host = ?1")
                    .and_then(|mut st| {
                        st.query_map([&n.hostname], |r| r.get(0))?
                            .collect::<rusqlite::Result<_>>()
                    })
                    .map_err(db)?;
                let running = docs
                    .iter()
                    .filter_map(|d| serde_json::from_str::<Instance>(d).ok())
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
                put_node(tx, &n).map_err(db)?;
            }
            Ok(())
        })
    }

    /// Resizes an instance to a flavor, on its host.
    pub fn resize(&mut self, uuid: &str, flavor: &str, check_only: bool) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut i = instance(tx, uuid)
                .map_err(db)?
                .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
            let &(_, v, m, d) = FLAVORS
                .iter()
                .find(|f| f.0 == flavor)
                .ok_or_else(|| OpError::Refused(format!("Flavor {flavor} could not be found")))?;
            let host = node(tx, &i.host)
                .map_err(db)?
                .ok_or_else(|| OpError::Refused(format!("host {} is gone", i.host)))?;
            check_capacity(tx, &host, (v, m, d), Some(uuid))?;
            if !check_only {
                (i.vcpus, i.memory, i.disk) = (v, m, d);
                put_instance(tx, &i).map_err(db)?;
            }
            Ok(())
        })
    }

    /// Sets an instance's state (`stopped`, `shelved_offloaded`, `active`).
    pub fn set_instance_state(
        &mut self,
        uuid: &str,
        state: &str,
        skip_if: &[&str],
    ) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut i = instance(tx, uuid)
                .map_err(db)?
                .ok_or_else(|| OpError::NotFound(format!("Instance {uuid} not found")))?;
            if skip_if.contains(&i.state.as_str()) {
                return Err(OpError::AlreadyDone(format!(
                    "Instance {uuid} is already {}",
                    i.state
                )));
            }
            i.state = state.into();
            put_instance(tx, &i).map_err(db)?;
            Ok(())
        })
    }

    /// Deletes an instance.
    pub fn delete_instance(&mut self, uuid: &str) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let n = tx
                .execute("DELETE FROM instances WHERE uuid = ?1", [uuid])
                .map_err(db)?;
            if n == 0 {
                return Err(OpError::NotFound(format!("Instance {uuid} not found")));
            }
            Ok(())
        })
    }

    /// Moves a volume to another pool, or changes its type.
    pub fn volume_migrate(
        &mut self,
        uuid: &str,
        pool: Option<&str>,
        new_type: Option<&str>,
        check_only: bool,
    ) -> Result<(), OpError> {
        self.op(|tx| {
            let db = |e| OpError::Db(SimError::from_rusqlite(e));
            let mut v: Volume = get(tx, "SELECT doc FROM volumes WHERE uuid = ?1", uuid)
                .map_err(db)?
                .ok_or_else(|| OpError::NotFound(format!("Volume {uuid} not found")))?;
            if let Some(p) = pool {
                if v.pool == p {
                    return Err(OpError::AlreadyDone(format!("Volume {uuid} is already in pool {p}")));
                }
                let mut dst: StoragePool = get(tx, "SELECT doc FROM storage_pools WHERE name = ?1", p)
                    .map_err(db)?
                    .ok_or_else(|| OpError::Refused(format!("Pool {p} not found")))?;
                if dst.free_capacity_gb < v.size as f64 {
                    return Err(OpError::Refused(format!(
                        "Pool {p} has {} GB free, volume {uuid} needs {}",
                        dst.free_capacity_gb, v.size
                    )));
                }
                if !check_only {
                    if let Some(mut src) = get::<StoragePool>(tx, "SELECT doc FROM storage_pools WHERE name = ?1", &v.pool).map_err(db)? {
                        src.free_capacity_gb += v.size as f64;
                        tx.execute(
                            "UPDATE storage_pools SET doc = ?1 WHERE name = ?2",
                            params![serde_json::to_string(&src).unwrap_or_default(), src.name],
                        )
                        .map_err(db)?;
                    }
                    dst.free_capacity_gb -= v.size as f64;
                    tx.execute(
                        "UPDATE storage_pools SET doc = ?1 WHERE name = ?2",
                        params![serde_json::to_string(&dst).unwrap_or_default(), dst.name],
                    )
                    .map_err(db)?;
                    v.pool = p.into();
                }
            }
            if let Some(t) = new_type {
                if v.volume_type == t {
                    return Err(OpError::AlreadyDone(format!("Volume {uuid} is already of type {t}")));
                }
                let known: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM storage_pools WHERE EXISTS (SELECT 1 FROM json_each(json_extract(doc, '$.volume_type')) WHERE value = ?1)",
                        [t],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                if known == 0 {
                    return Err(OpError::Refused(format!("Volume type {t} not found")));
                }
                v.volume_type = t.into();
            }
            if !check_only {
                tx.execute(
                    "UPDATE volumes SET pool = ?1, doc = ?2 WHERE uuid = ?3",
                    params![v.pool, serde_json::to_string(&v).unwrap_or_default(), v.uuid],
                )
                .map_err(db)?;
            }
            Ok(())
        })
    }
}

/// The destination of a move: the one given (usable, with room), or the
/// first usable host with room (what the scheduler would pick).
fn pick_destination(
    tx: &Transaction<'_>,
    i: &Instance,
    destination: Option<&str>,
) -> Result<String, OpError> {
    let db = |e| OpError::Db(SimError::from_rusqlite(e));
    let need = (i.vcpus, i.memory, i.disk);
    match destination {
        Some(d) => {
            let n = node(tx, d)
                .map_err(db)?
                .ok_or_else(|| OpError::Refused(format!("destination host {d} not found")))?;
            if n.hostname == i.host {
                return Err(OpError::Refused(format!(
                    "instance {} is already on {d}",
                    i.uuid
                )));
            }
            usable(&n)?;
            check_capacity(tx, &n, need, None)?;
            Ok(n.hostname)
        }
        None => {
            let mut st = tx
                .prepare("SELECT doc FROM nodes ORDER BY rowid")
                .map_err(db)?;
            let nodes: Vec<String> = st
                .query_map([], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(db)?;
            for doc in nodes {
                let Ok(n) = serde_json::from_str::<Node>(&doc) else {
                    continue;
                };
                if n.hostname == i.host || usable(&n).is_err() {
                    continue;
                }
                if check_capacity(tx, &n, need, None).is_ok() {
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
