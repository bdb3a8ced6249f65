//! Audit runs asked of the decision engine by hosts that do not run it: a
//! `serve --roles applier` host serving the API records each ONESHOT run or
//! EVENT trigger it is asked for in the store
//! ([`crate::store::FleetStore::request_audit`]); a host of the `decision`
//! role takes the requests and runs them, each taken by one host, a request
//! whose taker died taken over (docs/fleet.md).

use super::{AuditContext, DecideError, run_audit_claimed, trigger_audit};
use crate::store::{AuditRequestKind, Store};

/// Requests one pass takes at most (more wait for the next pass).
pub const PER_PASS: usize = 8;

/// Takes the requests no host took (or whose taker died) and runs them, as
/// host `host`; how many it took. An audit that cannot run (deleted,
/// already run, refused) is said and its request finished; a database that
/// cannot be reached leaves the request to be taken over.
pub fn run_requested_audits(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    host: &str,
) -> Result<usize, DecideError> {
    let taken = store.take_audit_requests(host, PER_PASS)?;
    for r in &taken {
        tracing::info!(
            "host {host}: running audit {} ({}), asked by host {}",
            r.audit_uuid,
            r.kind,
            r.requested_by
        );
        let outcome = match r.kind {
            // Claimed as an EVENT trigger is: one run even if two hosts
            // took the request (the first one's taking went stale).
            AuditRequestKind::Run => {
                run_audit_claimed(store, ctx, &r.audit_uuid, Some(("run", host)))
            }
            AuditRequestKind::Trigger => trigger_audit(store, ctx, &r.audit_uuid, host),
        };
        match outcome {
            Ok(a) => tracing::info!("audit {} ({}) ran: {}", a.name, a.uuid, a.state),
            Err(DecideError::Store(e)) if e.is_unreachable() => return Err(e.into()),
            Err(e) => tracing::warn!("audit {}: {e}", r.audit_uuid),
        }
        store.finish_audit_request(r.id)?;
    }
    Ok(taken.len())
}
