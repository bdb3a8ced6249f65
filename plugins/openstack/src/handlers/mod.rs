//! The `openstack.*` action handlers: Watcher's actions through Nova's API,
//! each with the whole contract: `pre_condition` (skip what is already
//! done or gone, refuse what cannot run), `execute` (the call at the
//! negotiated microversion, then polling with backoff until Nova says done
//! or failed, bounded by [`TIMEOUT`], abortable), `post_condition`,
//! `revert`, and `abort` for live migration. A failure carries Nova's own
//! message: the API's refusal, the failed instance action's details, or the
//! server's fault. `volume_migrate` does the same through Cinder.

pub mod migrate;
pub mod resize;
pub mod server_state;
pub mod service_state;
pub mod volume_migrate;

use crate::http::ApiError;
use crate::nova::{self, Server};
use crate::session::{self, Session};
use sextant_plugin_api::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest an action waits for Nova: Watcher's 180 × 5 s.
pub const TIMEOUT: Duration = Duration::from_secs(900);
/// The first poll interval; each next one is 1.5 times longer, up to
/// [`POLL_FAST_MAX`] during the first [`POLL_FAST_PHASE`] (most server
/// operations end within it, and a late look is the applier's overhead),
/// then up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
const POLL_FAST_MAX: Duration = Duration::from_secs(1);
const POLL_FAST_PHASE: Duration = Duration::from_secs(60);
const POLL_MAX: Duration = Duration::from_secs(5);

/// The session, or a failure naming the cloud configuration.
pub fn session() -> Result<Arc<Session>, PluginError> {
    session::current().map_err(failed)
}

/// An API error as the action's failure.
pub fn failed(e: ApiError) -> PluginError {
    match e {
        ApiError::Aborted => PluginError::aborted("aborted while waiting for Nova"),
        ApiError::Config(m) => PluginError::invalid_input(m),
        other => PluginError::execution_failed(other.to_string()),
    }
}

/// The server, or `skipped` when Nova has no such server.
pub fn existing_server(s: &Session, id: &str, ctx: &Context) -> Result<Server, PluginError> {
    nova::server(s, id, Some(ctx.abort_signal()))
        .map_err(failed)?
        .ok_or_else(|| PluginError::skipped(format!("server {id} does not exist")))
}

/// Polls `check` until it says done (`Some`), with backoff, until
/// [`TIMEOUT`] or the abort signal.
pub fn poll<T>(
    ctx: &Context,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>, PluginError>,
) -> Result<T, PluginError> {
    let start = Instant::now();
    let mut wait = POLL_FIRST;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if start.elapsed() >= TIMEOUT {
            return Err(PluginError::execution_failed(format!(
                "timed out after {}s waiting for {what}",
                TIMEOUT.as_secs()
            )));
        }
        if !ctx.abort_signal().sleep(wait) {
            return Err(PluginError::aborted(format!(
                "aborted while waiting for {what}"
            )));
        }
        let cap = if start.elapsed() < POLL_FAST_PHASE {
            POLL_FAST_MAX
        } else {
            POLL_MAX
        };
        wait = wait.mul_f64(1.5).min(cap);
    }
}

/// Waits until the server has no task, then returns it.
pub fn settled(s: &Session, ctx: &Context, id: &str, what: &str) -> Result<Server, PluginError> {
    poll(ctx, what, || {
        let v = nova::server(s, id, Some(ctx.abort_signal()))
            .map_err(failed)?
            .ok_or_else(|| PluginError::execution_failed(format!("server {id} disappeared")))?;
        Ok(v.task_state.is_none().then_some(v))
    })
}

/// Confirms a resize or cold migration and waits until Nova has done it
/// (the confirmation is asynchronous: the server stays VERIFY_RESIZE, with
/// no task, until its compute host has cleaned up).
pub fn confirm(s: &Session, ctx: &Context, id: &str) -> Result<Server, PluginError> {
    nova::action(
        s,
        id,
        &serde_json::json!({"confirmResize": null}),
        Some(ctx.abort_signal()),
    )
    .map_err(failed)?;
    poll(
        ctx,
        &format!("server {id}'s resize to be confirmed"),
        || {
            let v = nova::server(s, id, Some(ctx.abort_signal()))
                .map_err(failed)?
                .ok_or_else(|| PluginError::execution_failed(format!("server {id} disappeared")))?;
            Ok((v.task_state.is_none() && v.status != "VERIFY_RESIZE").then_some(v))
        },
    )
}

/// Why a request on a server failed, in Nova's words: the instance
/// action's failed event, else the server's fault, else `fallback`.
pub fn nova_reason(
    s: &Session,
    server: &Server,
    request_id: Option<&str>,
    fallback: &str,
) -> String {
    request_id
        .and_then(|r| nova::action_failure(s, &server.id, r))
        .or_else(|| server.fault.as_ref().map(|f| f.message.clone()))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}
