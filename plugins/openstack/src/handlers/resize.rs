//! `openstack.resize`: a server to another flavor (by id or name), then the
//! resize confirmed.

use super::{confirm, existing_server, failed, nova_reason, poll, session};
use crate::http::Method;
use crate::nova;
use crate::session::{Service, Session};
use serde::Deserialize;
use serde_json::json;
use sextant_plugin_api::prelude::*;

/// The action's parameters.
#[derive(Deserialize)]
pub struct Resize {
    resource_id: String,
    flavor: String,
}

/// A flavor's id and name.
#[derive(Deserialize)]
struct Flavor {
    id: String,
    name: String,
}

impl Resize {
    /// The flavor named (by id, else by name).
    fn flavor(&self, s: &Session) -> Result<Flavor, PluginError> {
        let path = format!("/flavors/{}", self.flavor);
        match s.call(Service::Compute, Method::Get, &path, None, None) {
            Ok(v) => {
                return serde_json::from_value(v["flavor"].clone()).map_err(|e| {
                    PluginError::execution_failed(format!("flavor {}: {e}", self.flavor))
                });
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(failed(e)),
        }
        let all = s
            .call(
                Service::Compute,
                Method::Get,
                "/flavors?is_public=None",
                None,
                None,
            )
            .map_err(failed)?;
        let list: Vec<Flavor> = serde_json::from_value(all["flavors"].clone())
            .map_err(|e| PluginError::execution_failed(format!("flavors: {e}")))?;
        list.into_iter()
            .find(|f| f.name == self.flavor)
            .ok_or_else(|| PluginError::precondition_failed(format!("no flavor {}", self.flavor)))
    }
}

impl ActionHandler for Resize {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        let v = existing_server(&s, &self.resource_id, ctx)?;
        let f = self.flavor(&s)?;
        if v.flavor.original_name == f.name {
            return Err(PluginError::skipped(format!(
                "server {} already has flavor {}",
                self.resource_id, f.name
            )));
        }
        if let Some(t) = &v.task_state {
            return Err(PluginError::precondition_failed(format!(
                "server {} is busy ({t})",
                self.resource_id
            )));
        }
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let s = session()?;
        let f = self.flavor(&s)?;
        let id = &self.resource_id;
        let request = nova::action(
            &s,
            id,
            &json!({"resize": {"flavorRef": f.id}}),
            Some(ctx.abort_signal()),
        )
        .map_err(failed)?;
        let v = poll(ctx, &format!("server {id}'s resize"), || {
            let v = nova::server(&s, id, Some(ctx.abort_signal()))
                .map_err(failed)?
                .ok_or_else(|| PluginError::execution_failed(format!("server {id} disappeared")))?;
            Ok(v.task_state.is_none().then_some(v))
        })?;
        if v.status != "VERIFY_RESIZE" {
            return Err(PluginError::execution_failed(format!(
                "Nova failed to resize server {id} to {}: {}",
                f.name,
                nova_reason(
                    &s,
                    &v,
                    request.as_deref(),
                    &format!("the server is {}", v.status)
                )
            )));
        }
        let v = confirm(&s, ctx, id)?;
        Ok(json!({"flavor": v.flavor.original_name, "host": v.host()}))
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        let v = existing_server(&s, &self.resource_id, ctx).map_err(|_| {
            PluginError::execution_failed(format!("server {} is gone", self.resource_id))
        })?;
        let f = self.flavor(&s)?;
        if v.flavor.original_name == f.name && matches!(v.status.as_str(), "ACTIVE" | "SHUTOFF") {
            Ok(())
        } else {
            Err(PluginError::execution_failed(format!(
                "server {} is {} with flavor {}, not {}",
                self.resource_id, v.status, v.flavor.original_name, f.name
            )))
        }
    }
}
