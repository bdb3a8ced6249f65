//! Nova's API as typed requests: what the collector reads and the handlers
//! call, at the session's negotiated microversion (2.56 to 2.96).

use crate::http::{ApiError, Method};
use crate::session::{Service, Session};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sextant_plugin_api::prelude::AbortSignal;
use std::collections::BTreeMap;

/// A page size for listings.
const PAGE: usize = 1000;

/// A server's embedded flavor (2.47+).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EmbeddedFlavor {
    /// vCPUs.
    #[serde(default)]
    pub vcpus: u64,
    /// Memory, MB.
    #[serde(default)]
    pub ram: u64,
    /// Root disk, GB.
    #[serde(default)]
    pub disk: u64,
    /// Ephemeral disk, GB.
    #[serde(default)]
    pub ephemeral: u64,
    /// Swap, MB.
    #[serde(default)]
    pub swap: u64,
    /// The flavor's name.
    #[serde(default)]
    pub original_name: String,
}

/// A server's fault.
#[derive(Clone, Debug, Deserialize)]
pub struct Fault {
    /// Nova's message.
    #[serde(default)]
    pub message: String,
}

/// A server, as `GET /servers/detail` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct Server {
    /// UUID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// ACTIVE, SHUTOFF, VERIFY_RESIZE, MIGRATING, ERROR, …
    pub status: String,
    /// The compute host.
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    pub host: Option<String>,
    /// vm_state: active, stopped, resized, shelved_offloaded, …
    #[serde(rename = "OS-EXT-STS:vm_state", default)]
    pub vm_state: Option<String>,
    /// task_state: migrating, resize_prep, …, or none.
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// Project.
    #[serde(default)]
    pub tenant_id: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// Locked.
    #[serde(default)]
    pub locked: bool,
    /// The embedded flavor.
    #[serde(default)]
    pub flavor: EmbeddedFlavor,
    /// The image: an object, or "" when booted from a volume.
    #[serde(default)]
    pub image: Value,
    /// The fault, when in ERROR.
    #[serde(default)]
    pub fault: Option<Fault>,
}

impl Server {
    /// The server's disk in GB as Watcher counts it: root (0 when booted
    /// from a volume) + ephemeral + swap rounded up to GB.
    pub fn disk_gb(&self) -> u64 {
        let boot_from_volume = self.image.as_str().is_some_and(str::is_empty);
        let root = if boot_from_volume {
            0
        } else {
            self.flavor.disk
        };
        root + self.flavor.ephemeral + self.flavor.swap.div_ceil(1024)
    }

    /// The host, or "".
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("")
    }
}

/// A hypervisor, as `GET /os-hypervisors/detail` shows it (2.53+).
#[derive(Clone, Debug, Deserialize)]
pub struct Hypervisor {
    /// UUID: the compute node's, which is its resource provider's.
    pub id: String,
    /// `fake`, `QEMU`, `ironic`, …
    #[serde(default)]
    pub hypervisor_type: String,
    /// up or down.
    #[serde(default)]
    pub state: String,
    /// enabled or disabled.
    #[serde(default)]
    pub status: String,
    /// Its service.
    pub service: HypervisorService,
    /// Capacity before 2.88 (used when Placement has no inventory).
    #[serde(default)]
    pub vcpus: Option<u64>,
    /// Memory before 2.88.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Disk before 2.88.
    #[serde(default)]
    pub local_gb: Option<u64>,
}

/// A hypervisor's service.
#[derive(Clone, Debug, Deserialize)]
pub struct HypervisorService {
    /// The compute host name.
    pub host: String,
}

/// A nova-compute service.
#[derive(Clone, Debug, Deserialize)]
pub struct ComputeService {
    /// UUID (2.53+).
    pub id: String,
    /// Host.
    pub host: String,
    /// enabled or disabled.
    pub status: String,
    /// up or down.
    pub state: String,
    /// Availability zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// Why it is disabled.
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// A host aggregate.
#[derive(Clone, Debug, Deserialize)]
pub struct Aggregate {
    /// Name.
    pub name: String,
    /// Its hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A migration record (`GET /os-migrations`, 2.59+).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Migration {
    /// Id.
    pub id: u64,
    /// UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// live-migration, migration, resize, evacuation.
    #[serde(default)]
    pub migration_type: Option<String>,
    /// The source host.
    #[serde(default)]
    pub source_compute: Option<String>,
    /// The destination host.
    #[serde(default)]
    pub dest_compute: Option<String>,
    /// queued, preparing, running, completed, confirmed, finished, error,
    /// failed, cancelled, …
    pub status: String,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Migration {
    /// Nova is done with it, one way or the other.
    pub fn is_over(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed"
                | "confirmed"
                | "finished"
                | "reverted"
                | "error"
                | "failed"
                | "cancelled"
                | "done"
        )
    }
    /// It failed.
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "error" | "failed" | "cancelled")
    }
}

fn invalid(path: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid {
        service: "nova",
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn get<T: serde::de::DeserializeOwned>(
    s: &Session,
    path: &str,
    key: &str,
    abort: Option<&AbortSignal>,
) -> Result<T, ApiError> {
    let v = s.call(Service::Compute, Method::Get, path, None, abort)?;
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Null)).map_err(|e| invalid(path, e))
}

/// Every server of every project, page by page (`all_tenants`).
pub fn servers(s: &Session) -> Result<Vec<Server>, ApiError> {
    let mut all: Vec<Server> = Vec::new();
    loop {
        let mut path = format!("/servers/detail?all_tenants=1&limit={PAGE}");
        if let Some(last) = all.last() {
            path.push_str(&format!("&marker={}", last.id));
        }
        let page: Vec<Server> = get(s, &path, "servers", None)?;
        let n = page.len();
        all.extend(page);
        if n < PAGE {
            return Ok(all);
        }
    }
}

/// One server, or None when Nova has no such server.
pub fn server(
    s: &Session,
    id: &str,
    abort: Option<&AbortSignal>,
) -> Result<Option<Server>, ApiError> {
    match get(s, &format!("/servers/{id}"), "server", abort) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every hypervisor, page by page.
pub fn hypervisors(s: &Session) -> Result<Vec<Hypervisor>, ApiError> {
    let mut all: Vec<Hypervisor> = Vec::new();
    loop {
        let mut path = format!("/os-hypervisors/detail?limit={PAGE}");
        if let Some(last) = all.last() {
            path.push_str(&format!("&marker={}", last.id));
        }
        let page: Vec<Hypervisor> = get(s, &path, "hypervisors", None)?;
        let n = page.len();
        all.extend(page);
        if n < PAGE {
            return Ok(all);
        }
    }
}

/// The nova-compute services.
pub fn compute_services(
    s: &Session,
    abort: Option<&AbortSignal>,
) -> Result<Vec<ComputeService>, ApiError> {
    get(s, "/os-services?binary=nova-compute", "services", abort)
}

/// The nova-compute service of `host`.
pub fn compute_service(
    s: &Session,
    host: &str,
    abort: Option<&AbortSignal>,
) -> Result<Option<ComputeService>, ApiError> {
    Ok(compute_services(s, abort)?
        .into_iter()
        .find(|c| c.host == host))
}

/// Enables or disables a service (by UUID, 2.53+).
pub fn set_service(
    s: &Session,
    id: &str,
    disabled: Option<&str>,
    abort: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    let body = match disabled {
        None => json!({"status": "enabled"}),
        Some(reason) => json!({"status": "disabled", "disabled_reason": reason}),
    };
    s.call(
        Service::Compute,
        Method::Put,
        &format!("/os-services/{id}"),
        Some(&body),
        abort,
    )
    .map(|_| ())
}

/// Every host aggregate.
pub fn aggregates(s: &Session) -> Result<Vec<Aggregate>, ApiError> {
    get(s, "/os-aggregates", "aggregates", None)
}

/// `POST /servers/{id}/action`; the request id Nova gave it.
pub fn action(
    s: &Session,
    id: &str,
    body: &Value,
    abort: Option<&AbortSignal>,
) -> Result<Option<String>, ApiError> {
    s.call_reply(
        Service::Compute,
        Method::Post,
        &format!("/servers/{id}/action"),
        Some(body),
        abort,
    )
    .map(|r| r.request_id)
}

/// The migration records of a server, newest first.
pub fn migrations(
    s: &Session,
    id: &str,
    abort: Option<&AbortSignal>,
) -> Result<Vec<Migration>, ApiError> {
    let mut m: Vec<Migration> = get(
        s,
        &format!("/os-migrations?instance_uuid={id}"),
        "migrations",
        abort,
    )?;
    m.sort_by_key(|x| std::cmp::Reverse(x.id));
    Ok(m)
}

/// Aborts an in-progress live migration (2.24+).
pub fn abort_live_migration(s: &Session, id: &str, migration: u64) -> Result<(), ApiError> {
    s.call(
        Service::Compute,
        Method::Delete,
        &format!("/servers/{id}/migrations/{migration}"),
        None,
        None,
    )
    .map(|_| ())
}

/// Nova's own account of why request `request_id` on a server failed: the
/// instance action's failed event details (2.84+) or message.
pub fn action_failure(s: &Session, id: &str, request_id: &str) -> Option<String> {
    let v = s
        .call(
            Service::Compute,
            Method::Get,
            &format!("/servers/{id}/os-instance-actions/{request_id}"),
            None,
            None,
        )
        .ok()?;
    let a = &v["instanceAction"];
    let from_events = a["events"].as_array().and_then(|evs| {
        evs.iter()
            .filter(|e| {
                e["result"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case("error"))
            })
            .find_map(|e| e["details"].as_str())
            .map(str::to_string)
    });
    from_events.or_else(|| a["message"].as_str().map(str::to_string))
}
