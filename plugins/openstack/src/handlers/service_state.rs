//! `openstack.change_nova_service_state`: enables or disables a host's
//! nova-compute service (`PUT /os-services/{uuid}`, 2.53+).

use super::{failed, poll, session};
use crate::nova;
use serde::Deserialize;
use serde_json::json;
use sextant_plugin_api::prelude::*;

/// The state asked for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Schedulable.
    Enabled,
    /// Not schedulable.
    Disabled,
    /// Watcher's schema allows it; no Nova call sets it.
    Up,
    /// Watcher's schema allows it; no Nova call sets it.
    Down,
}

impl Target {
    fn status(self) -> Result<&'static str, PluginError> {
        match self {
            Target::Enabled => Ok("enabled"),
            Target::Disabled => Ok("disabled"),
            other => Err(PluginError::invalid_input(format!(
                "The target state is not defined: {}",
                if other == Target::Up { "up" } else { "down" }
            ))),
        }
    }
}

/// The action's parameters.
#[derive(Deserialize)]
pub struct ServiceState {
    resource_id: String,
    #[serde(default)]
    resource_name: Option<String>,
    state: Target,
    #[serde(default)]
    disabled_reason: Option<String>,
}

impl ServiceState {
    /// The compute host: `resource_name`, else `resource_id`.
    fn host(&self) -> &str {
        self.resource_name.as_deref().unwrap_or(&self.resource_id)
    }

    fn set(&self, ctx: &Context, status: &str) -> Result<(), PluginError> {
        let s = session()?;
        let abort = Some(ctx.abort_signal());
        let c = nova::compute_service(&s, self.host(), abort)
            .map_err(failed)?
            .ok_or_else(|| {
                PluginError::execution_failed(format!(
                    "no nova-compute service on host {}",
                    self.host()
                ))
            })?;
        let reason = (status == "disabled").then(|| {
            self.disabled_reason
                .as_deref()
                .unwrap_or("disabled by sextant")
        });
        nova::set_service(&s, &c.id, reason, abort).map_err(failed)?;
        poll(
            ctx,
            &format!("nova-compute on {} to be {status}", self.host()),
            || {
                Ok(nova::compute_service(&s, self.host(), abort)
                    .map_err(failed)?
                    .is_some_and(|c| c.status == status)
                    .then_some(()))
            },
        )
    }
}

impl ActionHandler for ServiceState {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let target = self.state.status()?;
        let s = session()?;
        match nova::compute_service(&s, self.host(), Some(ctx.abort_signal())).map_err(failed)? {
            None => Err(PluginError::skipped(format!(
                "No nova-compute service on host {}",
                self.host()
            ))),
            Some(c) if c.status == target => Err(PluginError::skipped(format!(
                "nova-compute on {} is already {target}",
                self.host()
            ))),
            Some(_) => Ok(()),
        }
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let target = self.state.status()?;
        self.set(ctx, target)?;
        Ok(json!({"host": self.host(), "status": target}))
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let target = self.state.status()?;
        let s = session()?;
        match nova::compute_service(&s, self.host(), Some(ctx.abort_signal())).map_err(failed)? {
            Some(c) if c.status == target => Ok(()),
            _ => Err(PluginError::execution_failed(format!(
                "nova-compute on {} is not {target}",
                self.host()
            ))),
        }
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        let back = if self.state.status()? == "disabled" {
            "enabled"
        } else {
            "disabled"
        };
        self.set(ctx, back)
    }
}
