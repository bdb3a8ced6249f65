//! `openstack.stop` (revert: start), `openstack.shelve` and
//! `openstack.delete`: a server's power, shelving and deletion through
//! Nova.

use super::{existing_server, failed, nova_reason, poll, session};
use crate::nova;
use serde::Deserialize;
use serde_json::json;
use sextant_plugin_api::prelude::*;

/// A server action and the statuses it ends in.
struct Change {
    /// What it is, for messages.
    what: &'static str,
    /// The action body's key.
    action: &'static str,
    /// The statuses that mean done.
    done: &'static [&'static str],
}

const STOP: Change = Change {
    what: "stop",
    action: "os-stop",
    done: &["SHUTOFF"],
};
const START: Change = Change {
    what: "start",
    action: "os-start",
    done: &["ACTIVE"],
};
const SHELVE: Change = Change {
    what: "shelve",
    action: "shelve",
    done: &["SHELVED", "SHELVED_OFFLOADED"],
};

/// Skips a change already done or a server gone.
fn check(ctx: &Context, id: &str, c: &Change) -> Result<(), PluginError> {
    let s = session()?;
    let v = existing_server(&s, id, ctx)?;
    if c.done.contains(&v.status.as_str()) {
        return Err(PluginError::skipped(format!(
            "server {id} is already {}",
            v.status
        )));
    }
    if let Some(t) = &v.task_state {
        return Err(PluginError::precondition_failed(format!(
            "server {id} is busy ({t})"
        )));
    }
    Ok(())
}

/// Runs the change and waits for its end.
fn run(ctx: &Context, id: &str, c: &Change) -> Result<Value, PluginError> {
    let s = session()?;
    let request = nova::action(&s, id, &json!({ c.action: null }), Some(ctx.abort_signal()))
        .map_err(failed)?;
    let v = poll(ctx, &format!("server {id} to {}", c.what), || {
        let v = nova::server(&s, id, Some(ctx.abort_signal()))
            .map_err(failed)?
            .ok_or_else(|| PluginError::execution_failed(format!("server {id} disappeared")))?;
        let over =
            v.task_state.is_none() && (c.done.contains(&v.status.as_str()) || v.status == "ERROR");
        Ok(over.then_some(v))
    })?;
    if !c.done.contains(&v.status.as_str()) {
        return Err(PluginError::execution_failed(format!(
            "Nova failed to {} server {id}: {}",
            c.what,
            nova_reason(
                &s,
                &v,
                request.as_deref(),
                &format!("the server is {}", v.status)
            )
        )));
    }
    Ok(json!({"status": v.status}))
}

/// Checks the server ended in one of the change's statuses.
fn verify(ctx: &Context, id: &str, c: &Change) -> Result<(), PluginError> {
    let s = session()?;
    let v = existing_server(&s, id, ctx)
        .map_err(|_| PluginError::execution_failed(format!("server {id} is gone")))?;
    if c.done.contains(&v.status.as_str()) {
        Ok(())
    } else {
        Err(PluginError::execution_failed(format!(
            "server {id} is {} after {}",
            v.status, c.what
        )))
    }
}

/// `openstack.stop`.
#[derive(Deserialize)]
pub struct Stop {
    resource_id: String,
}

impl ActionHandler for Stop {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        check(ctx, &self.resource_id, &STOP)
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        run(ctx, &self.resource_id, &STOP)
    }
    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        verify(ctx, &self.resource_id, &STOP)
    }
    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        match check(ctx, &self.resource_id, &START) {
            Err(e) if e.kind() == ErrorKind::SKIPPED => Ok(()),
            Err(e) => Err(e),
            Ok(()) => run(ctx, &self.resource_id, &START).map(|_| ()),
        }
    }
}

/// `openstack.shelve`.
#[derive(Deserialize)]
pub struct Shelve {
    resource_id: String,
}

impl ActionHandler for Shelve {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        check(ctx, &self.resource_id, &SHELVE)
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        run(ctx, &self.resource_id, &SHELVE)
    }
    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        verify(ctx, &self.resource_id, &SHELVE)
    }
}

/// `openstack.delete`.
#[derive(Deserialize)]
pub struct Delete {
    resource_id: String,
}

impl ActionHandler for Delete {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        existing_server(&s, &self.resource_id, ctx).map(|_| ())
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let s = session()?;
        let id = &self.resource_id;
        match s.call(
            crate::session::Service::Compute,
            crate::http::Method::Delete,
            &format!("/servers/{id}"),
            None,
            Some(ctx.abort_signal()),
        ) {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => return Ok(json!({"deleted": id})),
            Err(e) => return Err(failed(e)),
        }
        poll(
            ctx,
            &format!("server {id} to be deleted"),
            || match nova::server(&s, id, Some(ctx.abort_signal())).map_err(failed)? {
                None => Ok(Some(())),
                Some(v) if v.status == "ERROR" && v.task_state.is_none() => {
                    Err(PluginError::execution_failed(format!(
                        "Nova failed to delete server {id}: {}",
                        nova_reason(&s, &v, None, "the server is in ERROR")
                    )))
                }
                Some(_) => Ok(None),
            },
        )?;
        Ok(json!({"deleted": id}))
    }
    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let s = session()?;
        match nova::server(&s, &self.resource_id, Some(ctx.abort_signal())).map_err(failed)? {
            None => Ok(()),
            Some(v) => Err(PluginError::execution_failed(format!(
                "server {} still exists ({})",
                self.resource_id, v.status
            ))),
        }
    }
}
