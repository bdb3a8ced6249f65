//! Audits: create (`POST /v1/audits`, `audit create`), update (PATCH of
//! `/state` and `/interval`, `audit update`), cancel and delete. Running an
//! audit is the decision engine's (`decide::run_audit`): the CLI runs a
//! ONESHOT audit in its own process, the API hands it to a blocking task.

use super::{OpError, invalid};
use crate::decide::{AuditRequest, prepare_audit, schedule};
use crate::policy::Vocabulary;
use crate::store::audits::{AuditRow, audit_transition_allowed};
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
pub const UPDATE_STATES: [&str; 3] = ["SUSPENDED", "ONGOING", "CANCELLED"];

/// Watcher's audit PATCH of `/state` (ONGOING → SUSPENDED suspends,
/// SUSPENDED → ONGOING resumes, PENDING or ONGOING → CANCELLED) and
/// `/interval` (CONTINUOUS audits only; the next run is one new interval
/// from now).
pub fn update(
    store: &mut Store,
    id: &str,
    state: Option<&str>,
    interval: Option<&str>,
) -> Result<AuditRow, OpError> {
    if state.is_none() && interval.is_none() {
        return Err(invalid("nothing to change: give a state or an interval"));
    }
    let state = state.map(str::to_uppercase);
    if let Some(s) = &state
        && !UPDATE_STATES.contains(&s.as_str())
    {
        return Err(super::field(
            "state",
            s,
            format!("an audit is updated to one of {}", UPDATE_STATES.join(", ")),
        ));
    }
    let a = store.audit(id)?;
    let mut extra: Vec<(&str, rusqlite::types::Value)> = Vec::new();
    if let Some(i) = interval {
        if a.audit_type != "CONTINUOUS" {
            return Err(invalid(format!(
                "audit {} is {}: only a CONTINUOUS audit has an interval",
                a.uuid, a.audit_type
            )));
        }
        if !["PENDING", "ONGOING", "SUSPENDED"].contains(&a.state.as_str()) {
            return Err(invalid(format!(
                "audit {} is {}: it has ended; create a new audit",
                a.uuid, a.state
            )));
        }
        let parsed = schedule::parse_interval(i).map_err(|e| super::field("interval", i, e))?;
        let next = parsed
            .next_after(chrono::Utc::now())
            .map(schedule::format_time);
        extra.push(("interval", rusqlite::types::Value::Text(i.to_string())));
        extra.push((
            "next_run_time",
            next.map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Text),
        ));
    }
    let to = state.unwrap_or_else(|| a.state.clone());
    if to != a.state && !audit_transition_allowed(&a.state, &to) {
        let what = match (a.state.as_str(), to.as_str()) {
            ("PENDING", "SUSPENDED") => {
                "it has not run yet; cancel it, or suspend it once it is ONGOING"
            }
            (_, "SUSPENDED") => "only an ONGOING audit is suspended",
            (_, "ONGOING") => "only a SUSPENDED audit is resumed",
            _ => "only a PENDING or ONGOING audit is cancelled",
        };
        return Err(StoreError::Refused {
            kind: "audit",
            id: a.uuid,
            state: a.state,
            what: format!("cannot go to {to}: {what}"),
        }
        .into());
    }
    let message = match to.as_str() {
        _ if to == a.state => None,
        "SUSPENDED" => Some("suspended by the operator"),
        "ONGOING" => Some("resumed by the operator"),
        _ => Some("cancelled by the operator"),
    };
    Ok(store.move_audit(&a.uuid, &to, message, &extra, |from, to| {
        from == to || audit_transition_allowed(from, to)
    })?)
}

/// Cancels a PENDING or ONGOING audit.
pub fn cancel(store: &mut Store, id: &str) -> Result<AuditRow, OpError> {
    let a = store.audit(id)?;
    Ok(store.transition_audit(&a.uuid, "CANCELLED", Some("cancelled by the operator"), &[])?)
}

/// Why an audit is not deleted now, with what to do: Watcher deletes
/// audits from FAILED, SUCCEEDED, CANCELLED and SUSPENDED only.
pub fn delete_refusal(a: &AuditRow) -> Option<OpError> {
    if audit_transition_allowed(&a.state, "DELETED") {
        return None;
    }
    Some(
        StoreError::Refused {
            kind: "audit",
            id: a.uuid.clone(),
            state: a.state.clone(),
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
        deleted.push(store.transition_audit(&u, "DELETED", None, &[])?);
    }
    Ok(deleted)
}
