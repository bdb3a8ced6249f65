//! Audits: create (`POST /v1/audits`, `audit create`), update (PATCH of
//! `/state` and `/interval`, `audit update`), cancel and delete. Running an
//! audit is the decision engine's (`decide::run_audit`): the CLI runs a
//! ONESHOT audit in its own process, the API hands it to a blocking task.

use super::{OpError, invalid};
use crate::decide::{AuditRequest, prepare_audit, schedule};
use crate::policy::Vocabulary;
use crate::states::AuditState;
use crate::states::AuditType;
use crate::store::audits::{AuditChanges, AuditRow};
use crate::store::{Store, StoreError};

/// Creates an audit, PENDING, checked as Watcher's API does. Writes
/// nothing when refused.
pub fn create(
    store: &mut Store,
    req: &AuditRequest,
    vocab: &dyn Fn() -> Vocabulary,
) -> Result<AuditRow, OpError> {
    let new = prepare_audit(store, req, &vocab())?;
    Ok(store.create_audit(&new)?)
}

/// The states an update moves an audit to.
pub const UPDATE_STATES: [AuditState; 3] = [
    AuditState::Suspended,
    AuditState::Ongoing,
    AuditState::Cancelled,
];

/// The state an update asks for, from its text (any case): one of
/// [`UPDATE_STATES`], else the field at fault.
pub fn update_state(text: &str) -> Result<AuditState, OpError> {
    match text.to_uppercase().parse::<AuditState>() {
        Ok(to) if UPDATE_STATES.contains(&to) => Ok(to),
        _ => {
            let names: Vec<&str> = UPDATE_STATES.iter().map(|s| s.as_str()).collect();
            Err(super::field(
                "state",
                text.to_uppercase(),
                format!("an audit is updated to one of {}", names.join(", ")),
            ))
        }
    }
}

/// Watcher's audit PATCH of `/state` (ONGOING → SUSPENDED suspends,
/// SUSPENDED → ONGOING resumes, PENDING or ONGOING → CANCELLED) and
/// `/interval` (CONTINUOUS audits only; the next run is one new interval
/// from now). The move is a compare-and-set on the state read.
pub fn update(
    store: &mut Store,
    id: &str,
    state: Option<AuditState>,
    interval: Option<&str>,
) -> Result<AuditRow, OpError> {
    if state.is_none() && interval.is_none() {
        return Err(invalid("nothing to change: give a state or an interval"));
    }
    let a = store.audit(id)?;
    let mut extra = AuditChanges::default();
    if let Some(i) = interval {
        if a.audit_type != AuditType::Continuous {
            return Err(invalid(format!(
                "audit {} is {}: only a CONTINUOUS audit has an interval",
                a.uuid, a.audit_type
            )));
        }
        if !matches!(
            a.state,
            AuditState::Pending | AuditState::Ongoing | AuditState::Suspended
        ) {
            return Err(invalid(format!(
                "audit {} is {}: it has ended; create a new audit",
                a.uuid, a.state
            )));
        }
        let parsed = schedule::parse_interval(i).map_err(|e| super::field("interval", i, e))?;
        let next = parsed
            .next_after(chrono::Utc::now())
            .map(schedule::format_time);
        extra.interval = Some(i.to_string());
        extra.next_run_time = Some(next);
    }
    let to = state.unwrap_or(a.state);
    if to != a.state && !a.state.may_become(to) {
        let what = match (a.state, to) {
            (AuditState::Pending, AuditState::Suspended) => {
                "it has not run yet; cancel it, or suspend it once it is ONGOING"
            }
            (_, AuditState::Suspended) => "only an ONGOING audit is suspended",
            (_, AuditState::Ongoing) => "only a SUSPENDED audit is resumed",
            _ => "only a PENDING or ONGOING audit is cancelled",
        };
        return Err(StoreError::Refused {
            kind: "audit",
            id: a.uuid,
            state: a.state.to_string(),
            what: format!("cannot go to {to}: {what}"),
        }
        .into());
    }
    let message = match to {
        _ if to == a.state => None,
        AuditState::Suspended => Some("suspended by the operator"),
        AuditState::Ongoing => Some("resumed by the operator"),
        _ => Some("cancelled by the operator"),
    };
    Ok(store.move_audit(&a.uuid, to, message, &extra, |from, to| {
        from == to || from.may_become(to)
    })?)
}

/// Cancels a PENDING or ONGOING audit.
pub fn cancel(store: &mut Store, id: &str) -> Result<AuditRow, OpError> {
    let a = store.audit(id)?;
    Ok(store.transition_audit(
        &a.uuid,
        AuditState::Cancelled,
        Some("cancelled by the operator"),
        &AuditChanges::default(),
    )?)
}

/// Why an audit is not deleted now, with what to do: Watcher deletes
/// audits from FAILED, SUCCEEDED, CANCELLED and SUSPENDED only.
pub fn delete_refusal(a: &AuditRow) -> Option<OpError> {
    if a.state.may_become(AuditState::Deleted) {
        return None;
    }
    Some(
        StoreError::Refused {
            kind: "audit",
            id: a.uuid.clone(),
            state: a.state.to_string(),
            what: format!(
                "an audit that has not ended is not deleted; cancel it first (`sextant audit cancel {}`) or suspend it (`sextant audit update {} --state SUSPENDED`)",
                a.uuid, a.uuid
            ),
        }
        .into(),
    )
}

/// Deletes finished audits (soft delete); every one is checked before any
/// is deleted.
pub fn delete(store: &mut Store, ids: &[String]) -> Result<Vec<AuditRow>, OpError> {
    let mut uuids = Vec::with_capacity(ids.len());
    for id in ids {
        let a = store.audit(id)?;
        if let Some(refusal) = delete_refusal(&a) {
            return Err(refusal);
        }
        uuids.push(a.uuid);
    }
    let mut deleted = Vec::with_capacity(uuids.len());
    for u in uuids {
        deleted.push(store.transition_audit(
            &u,
            AuditState::Deleted,
            None,
            &AuditChanges::default(),
        )?);
    }
    Ok(deleted)
}
