//! Action plans and their actions: start (queue for `serve`), cancel,
//! delete, skip an action. `POST /v1/action_plans/{uuid}/start`, the PATCH
//! of `/state`, `action-plan start | cancel | delete`, `action skip` and
//! `PATCH /v1/actions/{uuid}` all come here.

use super::{OpError, invalid};
use crate::states::PlanState;
use crate::store::Store;
use crate::store::plans::PlanRow;
use serde_json::Value;

/// Why a plan in `state` is not started, and what to do instead: a plan
/// starts from RECOMMENDED only, as Watcher's `POST .../start` says.
pub fn not_startable(uuid: &str, state: PlanState) -> OpError {
    let what = match state {
        PlanState::Pending => format!(
            "it is queued: `sextant serve` runs it, or `sextant action-plan resume {uuid}` runs it here"
        ),
        PlanState::Ongoing | PlanState::Cancelling => format!(
            "it was started already; if its applier was interrupted, `sextant action-plan resume {uuid}` goes on with it"
        ),
        PlanState::Failed | PlanState::Cancelled => format!(
            "it has ended; `sextant action-plan retry {uuid}` makes a new plan of its unfinished actions"
        ),
        PlanState::Succeeded => "it has run to the end".to_string(),
        _ => "its audit made a newer plan".to_string(),
    };
    OpError::Conflict(format!(
        "action plan {uuid} is {state}: only a RECOMMENDED plan can be started; {what}"
    ))
}

/// Queues a RECOMMENDED plan (PENDING) for `serve`'s applier, with what
/// it was started with before (`applied_with`, `{}` when nothing), in one
/// transaction.
pub fn queue(store: &mut Store, id: &str) -> Result<PlanRow, OpError> {
    queue_with(store, id, None)
}

/// As [`queue`], recording `applied_with` (policy, execution rule and
/// workers given explicitly) instead of what was recorded before.
pub fn queue_with(
    store: &mut Store,
    id: &str,
    applied_with: Option<&Value>,
) -> Result<PlanRow, OpError> {
    let p = store.plan(id)?;
    if p.state != PlanState::Recommended {
        return Err(not_startable(&p.uuid, p.state));
    }
    let recorded = match applied_with {
        Some(v) => v.clone(),
        None => match store.plan_extra(&p.uuid)?.get("applied_with") {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::Object(Default::default()),
        },
    };
    // A compare-and-set: another queue or cancel in between wins.
    if !store.record_applied_with(&p.uuid, None, &[PlanState::Recommended], &recorded, true)? {
        let state = store.plan(&p.uuid)?.state;
        return Err(not_startable(&p.uuid, state));
    }
    Ok(store.plan(&p.uuid)?)
}

/// Cancels a plan: RECOMMENDED or PENDING become CANCELLED with their
/// PENDING actions; ONGOING becomes CANCELLING (its applier, wherever it
/// runs, finishes the job). Returns the new state.
pub fn cancel(store: &mut Store, id: &str) -> Result<(PlanRow, PlanState), OpError> {
    let p = store.plan(id)?;
    let state = store.cancel_plan(&p.uuid)?;
    Ok((p, state))
}

/// Deletes plans (soft delete, their actions with them); every one is
/// checked before any is deleted.
pub fn delete(store: &mut Store, ids: &[String]) -> Result<Vec<PlanRow>, OpError> {
    if ids.is_empty() {
        return Err(invalid("give the action plans to delete"));
    }
    let mut uuids = Vec::with_capacity(ids.len());
    for id in ids {
        let p = store.plan(id)?;
        if let Some(refusal) = crate::store::lifecycle::delete_refusal(&p) {
            return Err(refusal.into());
        }
        uuids.push(p.uuid);
    }
    let mut deleted = Vec::with_capacity(uuids.len());
    for u in uuids {
        deleted.push(store.delete_plan(&u)?);
    }
    Ok(deleted)
}

/// Skips a PENDING action by hand before it runs (Watcher 1.5: its plan
/// RECOMMENDED, PENDING or ONGOING); returns its uuid. The status message
/// is Watcher's: "Action skipped by user. Reason: …".
pub fn skip_action(
    store: &mut Store,
    id: &str,
    plan: Option<&str>,
    reason: Option<&str>,
) -> Result<String, OpError> {
    let uuid = store.resolve_action(id, plan)?;
    store.skip_action(&uuid, reason)?;
    Ok(uuid)
}
