//! The applier's side of the group commit (`store::GroupCommit`): its
//! transitions, built with what the applier knows, committed from async
//! code.

use super::*;

/// A transition of an action of the plan being applied: its plan and name
/// are known, so it is one UPDATE with nothing read first.
pub(super) fn row_transition(
    row: &ActionRow,
    from: &[ActionState],
    to: ActionState,
    message: Option<String>,
    outputs: Option<Value>,
    event_type: EventType,
) -> ActionTransition {
    ActionTransition::new(&row.uuid, from, to, message, outputs, event_type)
        .known(&row.action_plan_uuid, &row.name)
}

/// Commits one action transition (group commit) from async code.
pub(super) async fn transition(
    shared: &Arc<Shared>,
    row: &ActionRow,
    from: &[ActionState],
    to: ActionState,
    message: Option<String>,
    outputs: Option<Value>,
    event_type: EventType,
) -> Result<bool, StoreError> {
    commit_transition(
        shared,
        row_transition(row, from, to, message, outputs, event_type),
    )
    .await
}

/// Commits one action transition, built by the caller (group commit),
/// from async code.
pub(super) async fn commit_transition(
    shared: &Arc<Shared>,
    t: ActionTransition,
) -> Result<bool, StoreError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        s.commit_many(vec![t])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Commit("no result".into())))
    })
    .await
    .map_err(|e| StoreError::Commit(e.to_string()))?
}

/// Commits transitions decided by the engine, in one transaction.
pub(super) async fn commit_all(
    shared: &Arc<Shared>,
    ts: Vec<ActionTransition>,
) -> Result<(), ApplyError> {
    if ts.is_empty() {
        return Ok(());
    }
    let s = shared.clone();
    let results = tokio::task::spawn_blocking(move || s.commit_many(ts))
        .await
        .map_err(|e| ApplyError::Task(e.to_string()))?;
    for r in results {
        r?;
    }
    Ok(())
}
