//! The `openstack` collector: the cluster model from Nova and Placement.
//!
//! Nodes are Nova's hypervisors (ironic ones left out, as Watcher does),
//! named by their compute service's host; their capacity is Placement's
//! inventory of the hypervisor's resource provider (`VCPU`, `MEMORY_MB`,
//! `DISK_GB`: total, reserved, allocation ratio), falling back to the
//! hypervisor's own figures with ratio 1 when Placement has none; their
//! status, state, disabled reason and availability zone are the
//! nova-compute service's, their aggregates the host aggregates that list
//! them. Instances are every project's servers that sit on a node, sized
//! by their embedded flavor. Requests run at most [`CONCURRENCY`] at once,
//! each bounded by the session's timeout; the audit's scope is applied by
//! the host. When the cloud has a Cinder, its pools and volumes are the
//! model's storage part ([`crate::storage`]).

use crate::http::ApiError;
use crate::nova::{self, Hypervisor};
use crate::placement::{self, Inventory};
use crate::session::Session;
use sextant_plugin_api::model::{ClusterModel, Instance, Node};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Requests in flight at once.
pub const CONCURRENCY: usize = 8;

/// Reads the model.
pub fn collect(s: &Session) -> Result<ClusterModel, ApiError> {
    // The four listings side by side.
    let (hypervisors, services, aggregates, servers) = std::thread::scope(|t| {
        let h = t.spawn(|| nova::hypervisors(s));
        let sv = t.spawn(|| nova::compute_services(s, None));
        let a = t.spawn(|| nova::aggregates(s));
        let servers = nova::servers(s);
        (join(h.join()), join(sv.join()), join(a.join()), servers)
    });
    let hypervisors: Vec<Hypervisor> = hypervisors?
        .into_iter()
        .filter(|h| !h.hypervisor_type.eq_ignore_ascii_case("ironic"))
        .collect();
    let services = services?;
    let aggregates = aggregates?;
    let servers = servers?;
    let inventories = inventories_of(s, &hypervisors)?;

    let mut nodes = Vec::with_capacity(hypervisors.len());
    for h in &hypervisors {
        let host = &h.service.host;
        let service = services.iter().find(|c| &c.host == host);
        let inv = inventories.get(&h.id);
        let class = |name: &str, fallback: Option<u64>| -> (u64, u64, f64) {
            match inv.and_then(|i| i.get(name)) {
                Some(Inventory {
                    total,
                    reserved,
                    allocation_ratio,
                }) => (*total, *reserved, *allocation_ratio),
                None => (fallback.unwrap_or(0), 0, 1.0),
            }
        };
        let (vcpus, vcpu_reserved, vcpu_ratio) = class("VCPU", h.vcpus);
        let (memory, memory_mb_reserved, memory_ratio) = class("MEMORY_MB", h.memory_mb);
        let (disk, disk_gb_reserved, disk_ratio) = class("DISK_GB", h.local_gb);
        nodes.push(Node {
            uuid: h.id.clone(),
            hostname: host.clone(),
            vcpus,
            memory,
            disk,
            vcpu_reserved,
            memory_mb_reserved,
            disk_gb_reserved,
            vcpu_ratio,
            memory_ratio,
            disk_ratio,
            status: service.map_or_else(|| h.status.clone(), |c| c.status.clone()),
            disabled_reason: service.and_then(|c| c.disabled_reason.clone()),
            state: service.map_or_else(|| h.state.clone(), |c| c.state.clone()),
            power_state: "on".into(),
            availability_zone: service.and_then(|c| c.zone.clone()),
            aggregates: aggregates
                .iter()
                .filter(|a| a.hosts.iter().any(|x| x == host))
                .map(|a| a.name.clone())
                .collect(),
            metrics: BTreeMap::new(),
        });
    }
    let instances = servers
        .into_iter()
        .filter(|v| nodes.iter().any(|n| n.hostname == v.host()))
        .map(|v| Instance {
            disk: v.disk_gb(),
            host: v.host().to_string(),
            uuid: v.id,
            name: v.name,
            vcpus: v.flavor.vcpus,
            memory: v.flavor.ram,
            state: v.vm_state.unwrap_or_else(|| v.status.to_lowercase()),
            project_id: v.tenant_id,
            metadata: v.metadata,
            locked: v.locked,
            watcher_exclude: false,
            metrics: BTreeMap::new(),
        })
        .collect();
    let (storage_pools, volumes) = if s.has_block_storage()? {
        crate::storage::collect(s)?
    } else {
        Default::default()
    };
    Ok(ClusterModel {
        nodes,
        instances,
        storage_pools,
        volumes,
    })
}

fn join<T>(r: std::thread::Result<Result<T, ApiError>>) -> Result<T, ApiError> {
    r.unwrap_or_else(|_| Err(ApiError::Config("a collector thread panicked".into())))
}

/// Each hypervisor's inventories, read [`CONCURRENCY`] at a time.
fn inventories_of(
    s: &Session,
    hypervisors: &[Hypervisor],
) -> Result<HashMap<String, BTreeMap<String, Inventory>>, ApiError> {
    let next = Mutex::new(hypervisors.iter());
    let found = Mutex::new(HashMap::new());
    let failed: Mutex<Option<ApiError>> = Mutex::new(None);
    std::thread::scope(|t| {
        for _ in 0..CONCURRENCY.min(hypervisors.len()) {
            t.spawn(|| {
                loop {
                    if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    let Some(h) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                        return;
                    };
                    match placement::inventories(s, &h.id) {
                        Ok(Some(inv)) => {
                            found
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(h.id.clone(), inv);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()))
}
