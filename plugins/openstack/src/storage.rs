//! The storage part of the `openstack` collector, when the cloud has a
//! Cinder ([`Session::has_block_storage`]): pools from the scheduler's
//! `GET /scheduler-stats/get_pools?detail=true` (capacity as the backends
//! report it; `infinite` or `unknown` capacity counts as 0, as Watcher's
//! storage model does), the volume types each serves (those whose
//! `volume_backend_name` extra spec names the pool's backend, and those
//! tied to no backend), the zone of its cinder-volume service; and every
//! project's volumes (`GET /volumes/detail?all_tenants=1`, paged), each in
//! the pool its host names.

use crate::cinder::{self, backend_of};
use crate::http::{ApiError, Method};
use crate::session::{Service, Session};
use serde_json::Value;
use sextant_plugin_api::model::{StoragePool, Volume};

/// A page size for the volume listing.
const PAGE: usize = 1000;

/// The pools and volumes.
pub fn collect(s: &Session) -> Result<(Vec<StoragePool>, Vec<Volume>), ApiError> {
    let call = |path: &str| s.call(Service::BlockStorage, Method::Get, path, None, None);
    let pools = call("/scheduler-stats/get_pools?detail=true")?;
    let types = call("/types?is_public=None")?;
    let services = cinder::volume_services(s, None)?;
    let gb = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
            .unwrap_or(0.0)
    };
    let storage_pools = pools["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_string();
            let caps = &p["capabilities"];
            let backend_name = caps["volume_backend_name"].as_str();
            let volume_type = types["volume_types"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| match t["extra_specs"]["volume_backend_name"].as_str() {
                    Some(b) => Some(b) == backend_name,
                    None => true,
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            let zone = services
                .iter()
                .find(|c| c.host == backend_of(&name))
                .and_then(|c| c.zone.clone());
            Some(StoragePool {
                total_capacity_gb: gb(&caps["total_capacity_gb"]),
                free_capacity_gb: gb(&caps["free_capacity_gb"]),
                name,
                volume_type,
                availability_zone: zone,
            })
        })
        .collect();
    let mut volumes = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("/volumes/detail?all_tenants=1&limit={PAGE}&marker={m}"),
            None => format!("/volumes/detail?all_tenants=1&limit={PAGE}"),
        };
        let page = call(&path)?;
        let list = page["volumes"].as_array().cloned().unwrap_or_default();
        for v in &list {
            let (Some(id), Some(host)) = (v["id"].as_str(), v["os-vol-host-attr:host"].as_str())
            else {
                continue; // not scheduled yet: in no pool
            };
            volumes.push(Volume {
                uuid: id.to_string(),
                name: v["name"].as_str().unwrap_or("").to_string(),
                size: v["size"].as_u64().unwrap_or(0),
                pool: host.to_string(),
                volume_type: v["volume_type"].as_str().unwrap_or("").to_string(),
                status: v["status"].as_str().unwrap_or("").to_string(),
                attachments: v["attachments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["server_id"].as_str().map(str::to_string))
                    .collect(),
                project_id: v["os-vol-tenant-attr:tenant_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            });
        }
        match list.last().and_then(|v| v["id"].as_str()) {
            Some(last) if list.len() >= PAGE => marker = Some(last.to_string()),
            _ => break,
        }
    }
    Ok((storage_pools, volumes))
}
