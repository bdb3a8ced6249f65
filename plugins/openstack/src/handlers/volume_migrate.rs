//! `openstack.volume_migrate`: Watcher's volume_migrate through Cinder's
//! v3 API. `migrate` is `os-migrate_volume` to `destination_node`
//! (`host@backend#pool`, or `host@backend`) with Watcher's
//! `force_host_copy: false, lock_volume: true`; `retype` is `os-retype` to
//! `destination_type` with `migration_policy: on-demand`. Both are polled
//! (`migration_status`, the volume's type) until Cinder says done or
//! failed. `swap` went with Watcher's Nova swap-volume path (security bug
//! 2112187) and is refused.

use super::{failed, poll, session};
use crate::cinder::{self, Volume, backend_of, is_at};
use crate::session::Session;
use serde::Deserialize;
use serde_json::json;
use sextant_plugin_api::prelude::*;

/// Watcher's migration types.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MigrationType {
    /// Nova's swap volume: removed from Watcher, not offered.
    Swap,
    /// To another volume type.
    Retype,
    /// To another backend or pool.
    Migrate,
}

/// The action's parameters.
#[derive(Deserialize)]
pub struct VolumeMigrate {
    resource_id: String,
    #[serde(default)]
    #[allow(dead_code)]
    resource_name: Option<String>,
    migration_type: MigrationType,
    #[serde(default)]
    destination_node: Option<String>,
    #[serde(default)]
    destination_type: Option<String>,
    /// Where the plan expects the volume (`host@backend#pool` or
    /// `host@backend`); checked by the pre-condition, and where revert
    /// moves it back to.
    #[serde(default)]
    source_node: Option<String>,
}

/// What the action asks of Cinder.
enum Target<'a> {
    /// A backend or pool.
    Node(&'a str),
    /// A volume type.
    Type(&'a str),
}

impl VolumeMigrate {
    fn target(&self) -> Result<Target<'_>, PluginError> {
        match self.migration_type {
            MigrationType::Migrate => self
                .destination_node
                .as_deref()
                .map(Target::Node)
                .ok_or_else(|| {
                    PluginError::invalid_input(
                        "volume_migrate with migration_type migrate needs destination_node",
                    )
                }),
            MigrationType::Retype => self
                .destination_type
                .as_deref()
                .map(Target::Type)
                .ok_or_else(|| {
                    PluginError::invalid_input(
                        "volume_migrate with migration_type retype needs destination_type",
                    )
                }),
            MigrationType::Swap => Err(PluginError::invalid_input(
                "volume_migrate with migration_type swap is not supported: it went with Watcher's Nova swap-volume path (security bug 2112187); use migrate or retype",
            )),
        }
    }

    fn volume(&self, s: &Session, ctx: &Context) -> Result<Option<Volume>, PluginError> {
        cinder::volume(s, &self.resource_id, Some(ctx.abort_signal())).map_err(failed)
    }

    /// Whether `v` is where the action sends it.
    fn arrived(v: &Volume, target: &Target<'_>) -> bool {
        match target {
            Target::Node(dest) => is_at(v.host(), dest),
            Target::Type(t) => v.volume_type.as_deref() == Some(*t),
        }
    }

    /// Sends the volume to `target` and waits until Cinder says done.
    fn run(&self, ctx: &Context, target: &Target<'_>) -> Result<Volume, PluginError> {
        let s = session()?;
        let abort = Some(ctx.abort_signal());
        let id = &self.resource_id;
        match target {
            Target::Node(dest) => cinder::migrate(&s, id, dest, abort),
            Target::Type(t) => cinder::retype(&s, id, t, abort),
        }
        .map_err(failed)?;
        let what = match target {
            Target::Node(dest) => format!("volume {id}'s migration to {dest}"),
            Target::Type(t) => format!("volume {id}'s retype to {t}"),
        };
        // Cinder answers 202 with the volume already `starting` (migrate)
        // or `retyping`; a retype that needs no migration may be done at once.
        poll(ctx, &what, || {
            let v = self
                .volume(&s, ctx)?
                .ok_or_else(|| PluginError::execution_failed(format!("volume {id} disappeared")))?;
            if v.migrating() {
                return Ok(None);
            }
            if Self::arrived(&v, target) {
                return Ok(Some(v));
            }
            let reason = cinder::last_message(&s, id)
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            Err(PluginError::execution_failed(format!(
                "Cinder did not complete {what}: the volume is {} on {} (type {}, migration_status {}){reason}",
                v.status,
                v.host(),
                v.volume_type.as_deref().unwrap_or("none"),
                v.migration_status.as_deref().unwrap_or("none"),
            )))
        })
    }

    /// Waits for a migration of the volume still under way (one started
    /// before a crash), then returns it.
    fn settled(&self, s: &Session, ctx: &Context) -> Result<Volume, PluginError> {
        let id = &self.resource_id;
        poll(ctx, &format!("volume {id}'s migration to end"), || {
            let v = self.volume(s, ctx)?.ok_or_else(|| {
                PluginError::execution_failed(format!("volume {id} does not exist"))
            })?;
            Ok((!v.migrating()).then_some(v))
        })
    }
}

impl ActionHandler for VolumeMigrate {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let target = self.target()?;
        let s = session()?;
        let id = &self.resource_id;
        let v = self
            .volume(&s, ctx)?
            .ok_or_else(|| PluginError::skipped(format!("volume {id} does not exist")))?;
        if Self::arrived(&v, &target) {
            return Err(PluginError::skipped(match target {
                Target::Node(dest) => format!("volume {id} is already on {dest} ({})", v.host()),
                Target::Type(t) => format!("volume {id} is already of type {t}"),
            }));
        }
        if let Some(src) = &self.source_node
            && !is_at(v.host(), src)
        {
            return Err(PluginError::execution_failed(format!(
                "volume {id} is on {}, not on {src} where the plan expects it",
                v.host()
            )));
        }
        if v.migrating() {
            return Err(PluginError::execution_failed(format!(
                "volume {id} is already being migrated (status {}, migration_status {})",
                v.status,
                v.migration_status.as_deref().unwrap_or("none")
            )));
        }
        if !matches!(v.status.as_str(), "available" | "in-use") {
            return Err(PluginError::execution_failed(format!(
                "volume {id} is {}; Cinder migrates only available or in-use volumes",
                v.status
            )));
        }
        // The destination backend must exist and be up; whether it is
        // enabled is Cinder's to decide when the request arrives, so that
        // its own refusal reaches the action's status message.
        if let Target::Node(dest) = target {
            let backend = backend_of(dest);
            let services = cinder::volume_services(&s, Some(ctx.abort_signal())).map_err(failed)?;
            let up = services
                .iter()
                .filter(|c| is_at(&c.host, backend))
                .any(|c| c.state == "up");
            if !up {
                let known = services.iter().map(|c| c.host.as_str()).collect::<Vec<_>>();
                return Err(PluginError::execution_failed(
                    if services.iter().any(|c| is_at(&c.host, backend)) {
                        format!("the cinder-volume service of {backend} is down")
                    } else {
                        format!(
                            "no cinder-volume service {backend} (Cinder has {})",
                            known.join(", ")
                        )
                    },
                ));
            }
        }
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let target = self.target()?;
        let v = self.run(ctx, &target)?;
        Ok(json!({"volume": v.id, "host": v.host(), "volume_type": v.volume_type}))
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let target = self.target()?;
        let s = session()?;
        let v = self.settled(&s, ctx)?;
        if Self::arrived(&v, &target) {
            Ok(())
        } else {
            Err(PluginError::execution_failed(format!(
                "volume {} is on {} (type {}), not where it was sent",
                v.id,
                v.host(),
                v.volume_type.as_deref().unwrap_or("none")
            )))
        }
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        match (self.migration_type, &self.source_node) {
            (MigrationType::Migrate, Some(src)) => {
                let s = session()?;
                let v = self.settled(&s, ctx)?;
                if is_at(v.host(), src) {
                    return Ok(());
                }
                self.run(ctx, &Target::Node(src)).map(|_| ())
            }
            _ => Err(PluginError::unsupported(
                "volume_migrate is reverted only as a migrate with its source_node",
            )),
        }
    }
}
