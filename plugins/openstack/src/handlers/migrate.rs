//! `openstack.migrate`: live migration (to a named host, or where Nova's
//! scheduler chooses) and cold migration with its confirmation.
//!
//! Which migration is this action's is told from Nova's migration records:
//! the newest record of the server created after the request. Its final
//! status says whether the migration happened.

use super::{confirm, existing_server, failed, nova_reason, poll, session, settled};
use crate::nova::{self, Migration};
use crate::session::Session;
use serde::Deserialize;
use serde_json::json;
use sextant_plugin_api::prelude::*;

/// How long an abort keeps asking Nova.
const ABORT_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);

/// How.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MigrationType {
    /// The server keeps running.
    Live,
    /// The server is moved, then the move confirmed.
    Cold,
}

/// The action's parameters.
#[derive(Deserialize)]
pub struct Migrate {
    migration_type: MigrationType,
    resource_id: String,
    source_node: String,
    #[serde(default)]
    destination_node: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    resource_name: Option<String>,
}

impl Migrate {
    fn newest_migration(&self, s: &Session, ctx: &Context) -> Result<Option<u64>, PluginError> {
        Ok(
            nova::migrations(s, &self.resource_id, Some(ctx.abort_signal()))
                .map_err(failed)?
                .first()
                .map(|m| m.id),
        )
    }

    /// This action's migration record: the newest after `before`.
    fn ours(
        &self,
        s: &Session,
        ctx: &Context,
        before: Option<u64>,
    ) -> Result<Option<Migration>, PluginError> {
        Ok(
            nova::migrations(s, &self.resource_id, Some(ctx.abort_signal()))
                .map_err(failed)?
                .into_iter()
                .find(|m| before.is_none_or(|b| m.id > b)),
        )
    }

    /// Sends the migration request; Nova's request id.
    fn request(
        &self,
        s: &Session,
        ctx: &Context,
        to: Option<&str>,
    ) -> Result<Option<String>, PluginError> {
        let body = match self.migration_type {
            MigrationType::Live => {
                json!({"os-migrateLive": {"host": to, "block_migration": "auto"}})
            }
            MigrationType::Cold => match to {
                Some(h) => json!({"migrate": {"host": h}}),
                None => json!({"migrate": null}),
            },
        };
        nova::action(s, &self.resource_id, &body, Some(ctx.abort_signal())).map_err(|e| {
            PluginError::execution_failed(format!(
                "Nova refused to migrate server {}: {}",
                self.resource_id,
                match &e {
                    crate::http::ApiError::Status { message, .. } => message.clone(),
                    other => other.to_string(),
                }
            ))
        })
    }

    /// Migrates the server from `from` to `to` (None: the scheduler
    /// chooses) and waits until Nova is done; the host it is on.
    fn migrate(
        &self,
        s: &Session,
        ctx: &Context,
        from: &str,
        to: Option<&str>,
    ) -> Result<String, PluginError> {
        let before = self.newest_migration(s, ctx)?;
        let request_id = self.request(s, ctx, to)?;
        let id = &self.resource_id;
        let what = format!("server {id}'s migration from {from}");
        // Nova done with the request: the migration record final, or the
        // server waiting for the confirmation of a cold migration.
        let (server, record) = poll(ctx, &what, || {
            let v = nova::server(s, id, Some(ctx.abort_signal()))
                .map_err(failed)?
                .ok_or_else(|| PluginError::execution_failed(format!("server {id} disappeared")))?;
            let m = self.ours(s, ctx, before)?;
            let cold_done = self.migration_type == MigrationType::Cold
                && v.status == "VERIFY_RESIZE"
                && v.task_state.is_none();
            let final_record = m.as_ref().is_some_and(|m| m.is_over()) && v.task_state.is_none();
            Ok(
                (cold_done || final_record || (v.status == "ERROR" && v.task_state.is_none()))
                    .then_some((v, m)),
            )
        })?;
        if server.status == "ERROR" || record.as_ref().is_some_and(|m| m.failed()) {
            let status = record
                .as_ref()
                .map_or("none", |m| m.status.as_str())
                .to_string();
            return Err(PluginError::execution_failed(format!(
                "Nova failed to migrate server {id} from {from}{}: {} (migration {status}, server {})",
                to.map(|t| format!(" to {t}")).unwrap_or_default(),
                nova_reason(s, &server, request_id.as_deref(), "no reason given"),
                server.status
            )));
        }
        let server = if server.status == "VERIFY_RESIZE" {
            confirm(s, ctx, id)?
        } else {
            server
        };
        Ok(server.host().to_string())
    }
}

impl ActionHandler for Migrate {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        let v = existing_server(&s, &self.resource_id, ctx)?;
        if let Some(d) = &self.destination_node
            && v.host() == d
        {
            return Err(PluginError::skipped(format!(
                "server {} is already on {d}",
                self.resource_id
            )));
        }
        if v.host() != self.source_node {
            return Err(PluginError::precondition_failed(format!(
                "server {} is on {}, not on {}",
                self.resource_id,
                v.host(),
                self.source_node
            )));
        }
        if self.migration_type == MigrationType::Live && v.status != "ACTIVE" {
            return Err(PluginError::precondition_failed(format!(
                "server {} is {}: only an ACTIVE server can be live-migrated",
                self.resource_id, v.status
            )));
        }
        if let Some(t) = &v.task_state {
            return Err(PluginError::precondition_failed(format!(
                "server {} is busy ({t})",
                self.resource_id
            )));
        }
        // The destination must exist and be up. Whether it is enabled is
        // Nova's scheduler's call, made when the request arrives: its
        // refusal ("No valid host was found") is the action's message.
        if let Some(d) = &self.destination_node {
            match nova::compute_service(&s, d, Some(ctx.abort_signal())).map_err(failed)? {
                None => {
                    return Err(PluginError::precondition_failed(format!(
                        "no nova-compute service on destination {d}"
                    )));
                }
                Some(c) if c.state != "up" => {
                    return Err(PluginError::precondition_failed(format!(
                        "the nova-compute service on destination {d} is down"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let s = session()?;
        let host = self.migrate(&s, ctx, &self.source_node, self.destination_node.as_deref())?;
        Ok(json!({"source_node": self.source_node, "destination_node": host}))
    }

    /// Also what settles an action a killed applier left ONGOING (the host
    /// asks the post_condition of a non-idempotent action): a migration
    /// still under way is waited for, one Nova finished but that waits for
    /// its confirmation is confirmed, and Nova's migration record says
    /// whether it happened. Nothing is migrated twice.
    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        let id = &self.resource_id;
        if nova::server(&s, id, Some(ctx.abort_signal()))
            .map_err(failed)?
            .is_none()
        {
            return Err(PluginError::execution_failed(format!(
                "server {id} is gone"
            )));
        }
        let mut v = settled(&s, ctx, id, &format!("server {id}'s migration to end"))?;
        let newest = nova::migrations(&s, id, Some(ctx.abort_signal()))
            .map_err(failed)?
            .into_iter()
            .next();
        let ours = newest.as_ref().filter(|m| {
            m.source_compute.as_deref() == Some(self.source_node.as_str())
                && self
                    .destination_node
                    .as_ref()
                    .is_none_or(|d| m.dest_compute.as_deref() == Some(d.as_str()))
        });
        if v.status == "VERIFY_RESIZE" && ours.is_some() {
            v = confirm(&s, ctx, id)?;
        }
        let placed = match &self.destination_node {
            Some(d) => v.host() == d,
            None => v.host() != self.source_node,
        };
        if !placed {
            let record = ours.map_or_else(String::new, |m| {
                format!(
                    " (Nova's migration {} from {} to {}: {})",
                    m.id,
                    m.source_compute.as_deref().unwrap_or("?"),
                    m.dest_compute.as_deref().unwrap_or("?"),
                    m.status
                )
            });
            return Err(PluginError::execution_failed(format!(
                "server {id} is on {}, not where it was sent{record}",
                v.host()
            )));
        }
        if !matches!(v.status.as_str(), "ACTIVE" | "SHUTOFF") {
            return Err(PluginError::execution_failed(format!(
                "server {id} is {} after its migration",
                v.status
            )));
        }
        Ok(())
    }

    /// Asks Nova to abort the server's live migration under way (2.24+;
    /// queued and preparing ones too from 2.65). A migration Nova has only
    /// accepted cannot be aborted yet: tried again for up to
    /// [`ABORT_WINDOW`], until it is aborted or over.
    fn abort(&self, _ctx: &Context) -> Result<(), PluginError> {
        if self.migration_type != MigrationType::Live {
            return Ok(());
        }
        let s = session()?;
        let id = &self.resource_id;
        let start = std::time::Instant::now();
        loop {
            let running = nova::migrations(&s, id, None)
                .map_err(failed)?
                .into_iter()
                .find(|m| m.migration_type.as_deref() == Some("live-migration") && !m.is_over());
            let Some(m) = running else {
                return Ok(());
            };
            match nova::abort_live_migration(&s, id, m.id) {
                Ok(()) => {
                    log_info(&format!(
                        "asked Nova to abort live migration {} of server {id}",
                        m.id
                    ));
                    return Ok(());
                }
                Err(e) if matches!(e.status(), Some(400 | 404)) => {
                    if start.elapsed() >= ABORT_WINDOW {
                        return Err(PluginError::execution_failed(format!(
                            "Nova would not abort live migration {} of server {id}: {e}",
                            m.id
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        let Some(v) =
            nova::server(&s, &self.resource_id, Some(ctx.abort_signal())).map_err(failed)?
        else {
            return Ok(());
        };
        if v.host() == self.source_node {
            return Ok(());
        }
        let v = settled(&s, ctx, &self.resource_id, "the server to settle")?;
        self.migrate(&s, ctx, v.host(), Some(&self.source_node))
            .map(|_| ())
    }
}
