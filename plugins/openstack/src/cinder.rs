//! Cinder's v3 API as typed requests: what `openstack.volume_migrate`
//! calls, at the session's negotiated microversion (3.67 to 3.71).

use crate::http::{ApiError, Method};
use crate::session::{Service, Session};
use serde::Deserialize;
use serde_json::{Value, json};
use sextant_plugin_api::prelude::AbortSignal;

/// A volume, as `GET /volumes/{id}` shows it to an admin.
#[derive(Clone, Debug, Deserialize)]
pub struct Volume {
    /// UUID.
    pub id: String,
    /// available, in-use, maintenance, retyping, error, …
    pub status: String,
    /// starting, migrating, completing, success, error, or none.
    #[serde(default)]
    pub migration_status: Option<String>,
    /// `host@backend#pool`.
    #[serde(rename = "os-vol-host-attr:host", default)]
    pub host: Option<String>,
    /// Its volume type's name.
    #[serde(default)]
    pub volume_type: Option<String>,
}

impl Volume {
    /// The host, or "".
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("")
    }

    /// Whether a migration of it is under way.
    pub fn migrating(&self) -> bool {
        matches!(
            self.migration_status.as_deref(),
            Some("starting" | "migrating" | "completing")
        ) || self.status == "retyping"
    }
}

/// A cinder-volume service: one backend of one host (`host@backend`).
#[derive(Clone, Debug, Deserialize)]
pub struct VolumeService {
    /// `host@backend`.
    pub host: String,
    /// up or down.
    pub state: String,
    /// Its availability zone.
    #[serde(default)]
    pub zone: Option<String>,
}

/// `host@backend#pool` at the level `at` names: a pool (`#` in `at`), a
/// backend (`@`), or a host; whether `host` is there.
pub fn is_at(host: &str, at: &str) -> bool {
    let level = if at.contains('#') {
        host
    } else if at.contains('@') {
        host.split('#').next().unwrap_or(host)
    } else {
        host.split(['@', '#']).next().unwrap_or(host)
    };
    !at.is_empty() && level == at
}

/// `host@backend` of `host@backend#pool`.
pub fn backend_of(host: &str) -> &str {
    host.split('#').next().unwrap_or(host)
}

/// The volume, or `None` when Cinder has no such volume.
pub fn volume(
    s: &Session,
    id: &str,
    abort: Option<&AbortSignal>,
) -> Result<Option<Volume>, ApiError> {
    match s.call(
        Service::BlockStorage,
        Method::Get,
        &format!("/volumes/{id}"),
        None,
        abort,
    ) {
        Ok(v) => parse(&v["volume"], "/volumes/{id}").map(Some),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The cinder-volume services.
pub fn volume_services(
    s: &Session,
    abort: Option<&AbortSignal>,
) -> Result<Vec<VolumeService>, ApiError> {
    let v = s.call(
        Service::BlockStorage,
        Method::Get,
        "/os-services?binary=cinder-volume",
        None,
        abort,
    )?;
    parse(&v["services"], "/os-services")
}

/// `POST /volumes/{id}/action` with `body`.
pub fn action(
    s: &Session,
    id: &str,
    body: &Value,
    abort: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    s.call(
        Service::BlockStorage,
        Method::Post,
        &format!("/volumes/{id}/action"),
        Some(body),
        abort,
    )
    .map(|_| ())
}

/// Watcher's driver-assisted migration to `host`: Cinder's volume manager
/// asks the source backend's driver first, and copies the data itself
/// only when the driver cannot move it.
pub fn migrate(
    s: &Session,
    id: &str,
    host: &str,
    abort: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    action(
        s,
        id,
        &json!({"os-migrate_volume": {"host": host, "force_host_copy": false, "lock_volume": true}}),
        abort,
    )
}

/// Watcher's retype: to `new_type`, migrating when its backend cannot
/// hold the type.
pub fn retype(
    s: &Session,
    id: &str,
    new_type: &str,
    abort: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    action(
        s,
        id,
        &json!({"os-retype": {"new_type": new_type, "migration_policy": "on-demand"}}),
        abort,
    )
}

/// The newest of Cinder's user messages about the volume (why an
/// asynchronous request failed), if any.
pub fn last_message(s: &Session, id: &str) -> Option<String> {
    let v = s
        .call(
            Service::BlockStorage,
            Method::Get,
            &format!("/messages?resource_uuid={id}&sort=created_at:desc&limit=1"),
            None,
            None,
        )
        .ok()?;
    v["messages"][0]["user_message"]
        .as_str()
        .map(str::to_string)
}

fn parse<T: serde::de::DeserializeOwned>(v: &Value, path: &str) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ApiError::Invalid {
        service: "cinder",
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_at_the_pool_backend_or_host_a_destination_names() {
        let h = "cinder@fake1#fake1";
        assert!(is_at(h, "cinder@fake1#fake1"));
        assert!(is_at(h, "cinder@fake1"));
        assert!(is_at(h, "cinder"));
        assert!(!is_at(h, "cinder@fake1#other"));
        assert!(!is_at(h, "cinder@fake2"));
        assert!(!is_at(h, "cinder@fake"));
        assert!(!is_at(h, "cind"));
        assert!(!is_at("", ""));
        assert_eq!(backend_of(h), "cinder@fake1");
        assert_eq!(backend_of("cinder@fake1"), "cinder@fake1");
    }
}
