//! What the applier writes: action and plan state transitions (each a
//! compare-and-set with its event, in one transaction), the applier lease,
//! imports, manual skips and cancellation.

use super::SqliteStore;
use super::plans::PlanRow;
use super::{Event, Result, StoreError, append_event, now};
use crate::states::{ActionState, EventType, PlanState};
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

/// One action state change asked of [`Store::action_transitions`].
#[derive(Clone, Debug)]
pub struct ActionTransition {
    /// The action.
    pub action_uuid: String,
    /// The states it may be in; otherwise nothing changes.
    pub from: Vec<ActionState>,
    /// Its new state.
    pub to: ActionState,
    /// Its new status message (None keeps the old one).
    pub message: Option<String>,
    /// Its outputs (None keeps the old ones).
    pub outputs: Option<Value>,
    /// The event appended with the change.
    pub event_type: EventType,
    /// It fails in its `execute` (a stored fact, read back on resume by
    /// Watcher's ANY rule).
    pub execute_failed: bool,
    /// The action's plan, when the caller knows it: with a single `from`
    /// state, the transition is then one UPDATE … RETURNING, no read first.
    pub plan_uuid: Option<String>,
    /// The action's name, when the caller knows it too: then a plain
    /// UPDATE, with nothing returned.
    pub name: Option<String>,
    /// The lease owner of the applier that writes it (`None`: not an
    /// applier's write): the transition applies only while that owner
    /// holds the plan's lease, checked in the same transaction; otherwise
    /// nothing is written and its result is [`StoreError::LeaseLost`].
    pub lease_owner: Option<String>,
}

impl ActionTransition {
    /// Moves action `uuid` from one of `from` to `to`, with event
    /// `event_type`; its plan and name are looked up.
    pub fn new(
        uuid: &str,
        from: &[ActionState],
        to: ActionState,
        message: Option<String>,
        outputs: Option<Value>,
        event_type: EventType,
    ) -> Self {
        Self {
            action_uuid: uuid.into(),
            from: from.to_vec(),
            to,
            message,
            outputs,
            event_type,
            execute_failed: false,
            plan_uuid: None,
            name: None,
            lease_owner: None,
        }
    }

    /// The action fails in its `execute` (with `to` FAILED).
    pub fn in_execute(mut self) -> Self {
        self.execute_failed = true;
        self
    }

    /// Fenced by the plan's lease: it applies only while `owner` holds it
    /// (see [`ActionTransition::lease_owner`]).
    pub fn fenced_by(mut self, owner: &str) -> Self {
        self.lease_owner = Some(owner.into());
        self
    }

    /// The action's plan and name are known: with a single `from` state,
    /// the transition is one UPDATE with nothing read first.
    pub fn known(mut self, plan_uuid: &str, name: &str) -> Self {
        self.plan_uuid = Some(plan_uuid.into());
        self.name = Some(name.into());
        self
    }
}

/// The lease an applier holds on a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// Who holds it.
    pub owner: String,
    /// Until when (RFC 3339).
    pub expires_at: String,
}

fn lease_time(after: std::time::Duration) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + after).to_string()
}

/// Who holds the lease on plan `uuid` (expired or not: a lapsed lease
/// nobody claimed since is still its owner's), `None` when nobody does.
fn lease_holder(tx: &rusqlite::Transaction<'_>, uuid: &str) -> rusqlite::Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT lease_owner FROM action_plans WHERE uuid = ?1")?
        .query_row([uuid], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// A write refused by the lease fence.
fn lease_lost(plan: &str, owner: &str) -> StoreError {
    StoreError::LeaseLost {
        plan: plan.into(),
        owner: owner.into(),
    }
}

/// The lease fence of an applier's write other than an action transition
/// (a note, a flow decision; a plan transition or `applied_with` whose
/// UPDATE, which carries the fence, changed nothing): with `owner`, the
/// write goes on only while that owner holds plan `plan`'s lease, read in
/// the write transaction (SQLite has one writer at a time, so no claim
/// comes in between); else [`StoreError::LeaseLost`], and the caller
/// writes nothing. `None` (not an applier's write): no check.
pub(super) fn fence(
    tx: &rusqlite::Transaction<'_>,
    plan: &str,
    owner: Option<&str>,
) -> rusqlite::Result<std::result::Result<(), StoreError>> {
    match owner {
        Some(owner) if lease_holder(tx, plan)?.as_deref() != Some(owner) => {
            Ok(Err(lease_lost(plan, owner)))
        }
        _ => Ok(Ok(())),
    }
}

/// The answer of a plan write (a transition, `applied_with`) whose fenced
/// UPDATE changed nothing: [`StoreError::LeaseLost`] when `owner` does not
/// hold the plan's lease, whatever its state (the fence first, as on
/// PostgreSQL); else the compare-and-set's "no". The owner is read only
/// here, off the common path.
fn unchanged(
    tx: &rusqlite::Transaction<'_>,
    plan: &str,
    owner: Option<&str>,
) -> rusqlite::Result<std::result::Result<bool, StoreError>> {
    Ok(fence(tx, plan, owner)?.map(|()| false))
}

/// The event of an applied action transition.
fn transition_event(
    tx: &rusqlite::Transaction<'_>,
    t: &ActionTransition,
    old_state: ActionState,
    plan: &str,
    name: &str,
    at: &str,
) -> rusqlite::Result<()> {
    super::append_event_with(
        tx,
        &Event::state_change(
            t.event_type,
            &t.action_uuid,
            Some(old_state.as_str()),
            t.to.as_str(),
        )
        .in_plan(plan),
        at,
        Some(&TransitionPayload {
            name,
            status_message: t.message.as_deref(),
        }),
    )
}

/// The payload of an action's state change.
#[derive(serde::Serialize)]
struct TransitionPayload<'a> {
    name: &'a str,
    status_message: Option<&'a str>,
}

impl SqliteStore {
    /// Takes the lease on a plan for `ttl`, unless another owner holds an
    /// unexpired one (returned as the error's lease).
    pub fn acquire_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<std::result::Result<(), Lease>> {
        let until = lease_time(ttl);
        let now = now();
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE action_plans SET lease_owner = ?1, lease_expires_at = ?2 \
                 WHERE uuid = ?3 AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_expires_at < ?4)",
                params![owner, until, plan_uuid, now],
            )?;
            if n == 1 {
                return Ok(Ok(()));
            }
            let held: Option<(Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT lease_owner, lease_expires_at FROM action_plans WHERE uuid = ?1",
                    [plan_uuid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(Err(Lease {
                owner: held.as_ref().and_then(|h| h.0.clone()).unwrap_or_default(),
                expires_at: held.and_then(|h| h.1).unwrap_or_default(),
            }))
        })
    }

    /// Takes over a lease from `old_owner` (known to be dead); false when
    /// someone else took it first.
    pub fn take_over_lease(
        &mut self,
        plan_uuid: &str,
        old_owner: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let until = lease_time(ttl);
        Ok(self.write(|tx| {
            tx.execute(
                "UPDATE action_plans SET lease_owner = ?1, lease_expires_at = ?2 WHERE uuid = ?3 AND lease_owner = ?4",
                params![owner, until, plan_uuid, old_owner],
            )
        })? == 1)
    }

    /// Renews a lease this owner holds; false when it lost it.
    pub fn renew_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let until = lease_time(ttl);
        Ok(self.write(|tx| {
            tx.execute(
                "UPDATE action_plans SET lease_expires_at = ?1 WHERE uuid = ?2 AND lease_owner = ?3",
                params![until, plan_uuid, owner],
            )
        })? == 1)
    }

    /// Gives a lease back.
    pub fn release_lease(&mut self, plan_uuid: &str, owner: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE action_plans SET lease_owner = NULL, lease_expires_at = NULL WHERE uuid = ?1 AND lease_owner = ?2",
                params![plan_uuid, owner],
            )
        })?;
        Ok(())
    }

    /// Whether no applier holds the plan: it has no lease, or its lease
    /// expired.
    pub fn plan_lease_is_free(&self, plan_uuid: &str) -> Result<bool> {
        Ok(self.lease(plan_uuid)?.is_none_or(|l| l.expires_at < now()))
    }

    /// The lease on a plan, if any (even expired).
    pub fn lease(&self, plan_uuid: &str) -> Result<Option<Lease>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT lease_owner, lease_expires_at FROM action_plans WHERE uuid = ?1",
                [plan_uuid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(o, e)| {
            o.map(|owner| Lease {
                owner,
                expires_at: e.unwrap_or_default(),
            })
        }))
    }

    /// Moves a plan from one of `from` to `to`, with its event; false when
    /// it was in another state.
    pub fn plan_transition(
        &mut self,
        plan_uuid: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        self.plan_transition_as(plan_uuid, None, from, to, message, event_type)
    }

    /// [`SqliteStore::plan_transition`] fenced by the plan's lease: only
    /// while `owner` holds it, else [`StoreError::LeaseLost`] and nothing
    /// written.
    pub fn leased_plan_transition(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        self.plan_transition_as(plan_uuid, Some(owner), from, to, message, event_type)
    }

    fn plan_transition_as(
        &mut self,
        plan_uuid: &str,
        owner: Option<&str>,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        let current = self.plan(plan_uuid)?;
        let in_from = from.contains(&current.state);
        if !in_from && owner.is_none() {
            return Ok(false);
        }
        self.write(|tx| {
            // The fence folded into the UPDATE (?6: the owner, NULL when
            // not fenced): one statement when it applies.
            let n = if in_from {
                tx.execute(
                    "UPDATE action_plans SET state = ?1, status_message = COALESCE(?2, status_message), updated_at = ?3 \
                     WHERE uuid = ?4 AND state = ?5 AND (?6 IS NULL OR lease_owner = ?6)",
                    params![to, message, now(), current.uuid, current.state, owner],
                )?
            } else {
                0
            };
            if n == 0 {
                return unchanged(tx, &current.uuid, owner);
            }
            append_event(
                tx,
                &Event::state_change(event_type, &current.uuid, Some(current.state.as_str()), to.as_str())
                    .in_plan(&current.uuid)
                    .with_payload(json!({"status_message": message})),
            )?;
            Ok(Ok(true))
        })?
    }

    /// Records how a plan is to be applied (`applied_with`: the policy,
    /// execution rule and worker count it was started with) in its
    /// extras; with `queue`, also moves it to PENDING with its event. One
    /// transaction; false (nothing written) when the plan is in none of
    /// `from`. With `owner` (a `serve` applier's), fenced by the plan's
    /// lease as [`SqliteStore::leased_plan_transition`].
    pub fn record_applied_with(
        &mut self,
        plan_uuid: &str,
        owner: Option<&str>,
        from: &[PlanState],
        applied_with: &Value,
        queue: bool,
    ) -> Result<bool> {
        let current = self.plan(plan_uuid)?;
        let in_from = from.contains(&current.state);
        if !in_from && owner.is_none() {
            return Ok(false);
        }
        let text = applied_with.to_string();
        self.write(|tx| {
            // The fence folded into the UPDATE, as in a plan transition.
            let n = if in_from {
                tx.execute(
                    "UPDATE action_plans SET policy = json_set(COALESCE(policy, '{}'), '$.applied_with', json(?1)), \
                     updated_at = ?2 WHERE uuid = ?3 AND state = ?4 AND (?5 IS NULL OR lease_owner = ?5)",
                    params![text, now(), current.uuid, current.state, owner],
                )?
            } else {
                0
            };
            if n == 0 {
                return unchanged(tx, &current.uuid, owner);
            }
            if queue {
                tx.execute(
                    "UPDATE action_plans SET state = 'PENDING' WHERE uuid = ?1",
                    params![current.uuid],
                )?;
                append_event(
                    tx,
                    &Event::state_change(
                        EventType::PlanUpdate,
                        &current.uuid,
                        Some(current.state.as_str()),
                        PlanState::Pending.as_str(),
                    )
                    .in_plan(&current.uuid)
                    .with_payload(json!({"status_message": null})),
                )?;
            }
            Ok(Ok(true))
        })?
    }

    /// Moves an action from one of `from` to `to` (with outputs and a
    /// message), with its event; false when it was in another state.
    pub fn action_transition(
        &mut self,
        action_uuid: &str,
        from: &[ActionState],
        to: ActionState,
        message: Option<&str>,
        outputs: Option<&Value>,
        event_type: EventType,
    ) -> Result<bool> {
        let t = ActionTransition::new(
            action_uuid,
            from,
            to,
            message.map(String::from),
            outputs.cloned(),
            event_type,
        );
        self.action_transitions(std::slice::from_ref(&t))?
            .pop()
            .unwrap_or(Ok(false))
    }

    /// Applies several action transitions in one transaction (a group
    /// commit): each is a compare-and-set with its event, as
    /// [`Store::action_transition`]; the result says, for each, whether it
    /// applied, or that its action does not exist.
    pub fn action_transitions(&mut self, batch: &[ActionTransition]) -> Result<Vec<Result<bool>>> {
        let at = now();
        self.write(|tx| {
            let mut results = Vec::with_capacity(batch.len());
            let mut read = tx.prepare_cached(
                "SELECT x.state, x.name, p.uuid, x.id FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE x.uuid = ?1 AND x.deleted = 0",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE actions SET state = ?1, status_message = COALESCE(?2, status_message), \
                 outputs = COALESCE(?3, outputs), updated_at = ?4, execute_failed = ?7 WHERE uuid = ?5 AND state = ?6",
            )?;
            // The fast paths' UPDATEs carry the lease fence in their WHERE
            // (?8: the owner, NULL when not fenced; ?9: the plan): one
            // statement, no read of the lease first.
            let mut update_known = tx.prepare_cached(
                "UPDATE actions SET state = ?1, status_message = COALESCE(?2, status_message), \
                 outputs = COALESCE(?3, outputs), updated_at = ?4, execute_failed = ?7 \
                 WHERE uuid = ?5 AND state = ?6 AND deleted = 0 AND (?8 IS NULL OR EXISTS \
                 (SELECT 1 FROM action_plans WHERE uuid = ?9 AND lease_owner = ?8)) RETURNING name",
            )?;
            let mut update_plain = tx.prepare_cached(
                "UPDATE actions SET state = ?1, status_message = COALESCE(?2, status_message), \
                 outputs = COALESCE(?3, outputs), updated_at = ?4, execute_failed = ?7 \
                 WHERE uuid = ?5 AND state = ?6 AND deleted = 0 AND (?8 IS NULL OR EXISTS \
                 (SELECT 1 FROM action_plans WHERE uuid = ?9 AND lease_owner = ?8))",
            )?;
            // The lease holder of each plan a fenced transition names, read
            // at most once a batch, where the fast paths' UPDATE did not
            // check it: SQLite has one writer at a time, so no claim
            // changes it before this transaction ends.
            let mut holders: std::collections::HashMap<String, Option<String>> =
                std::collections::HashMap::new();
            let mut holds = |plan: &str, owner: &str| -> rusqlite::Result<bool> {
                if !holders.contains_key(plan) {
                    holders.insert(plan.to_string(), lease_holder(tx, plan)?);
                }
                Ok(holders.get(plan).is_some_and(|h| h.as_deref() == Some(owner)))
            };
            for t in batch {
                let outputs = t.outputs.as_ref().map(crate::json_text);
                let fast = matches!((&t.plan_uuid, t.from.as_slice()), (Some(_), [_]));
                if let (Some(owner), Some(plan), false) = (&t.lease_owner, &t.plan_uuid, fast)
                    && !holds(plan, owner)?
                {
                    results.push(Err(lease_lost(plan, owner)));
                    continue;
                }
                if let (Some(plan), [from]) = (&t.plan_uuid, t.from.as_slice()) {
                    // The fast paths: the one state it may be in, and its
                    // plan; with its name too, a plain UPDATE.
                    let args = params![
                        t.to,
                        t.message,
                        outputs,
                        at,
                        t.action_uuid,
                        from,
                        t.execute_failed,
                        t.lease_owner,
                        plan
                    ];
                    let name: Option<std::borrow::Cow<'_, str>> = match &t.name {
                        Some(name) => (update_plain.execute(args)? == 1).then(|| name.into()),
                        None => update_known
                            .query_row(args, |r| r.get::<_, String>(0))
                            .optional()?
                            .map(Into::into),
                    };
                    if let Some(name) = name {
                        transition_event(tx, t, *from, plan, &name, &at)?;
                        results.push(Ok(true));
                        continue;
                    }
                    // Not changed: refused by the fence, in another state,
                    // or not there at all (the fence first, as above).
                    if let Some(owner) = &t.lease_owner
                        && !holds(plan, owner)?
                    {
                        results.push(Err(lease_lost(plan, owner)));
                        continue;
                    }
                }
                let row: Option<(ActionState, String, String)> = read
                    .query_row([&t.action_uuid], |r| {
                        Ok((
                            super::columns::enum_col(r, 0, 3, "actions", "state")?,
                            r.get(1)?,
                            r.get(2)?,
                        ))
                    })
                    .optional()?;
                let Some((state, name, plan)) = row else {
                    results.push(Err(StoreError::NotFound {
                        kind: "action",
                        id: t.action_uuid.clone(),
                    }));
                    continue;
                };
                if let Some(owner) = t.lease_owner.as_ref().filter(|_| t.plan_uuid.is_none())
                    && !holds(&plan, owner)?
                {
                    results.push(Err(lease_lost(&plan, owner)));
                    continue;
                }
                if !t.from.contains(&state) {
                    results.push(Ok(false));
                    continue;
                }
                let n = update.execute(params![
                    t.to,
                    t.message,
                    outputs,
                    at,
                    t.action_uuid,
                    state,
                    t.execute_failed
                ])?;
                if n == 1 {
                    transition_event(tx, t, state, &plan, &name, &at)?;
                }
                results.push(Ok(n == 1));
            }
            Ok(results)
        })
    }

    /// Appends an event that changes no state (`action.execution.start`, …).
    pub fn note(
        &mut self,
        event_type: EventType,
        uuid: &str,
        plan: Option<&str>,
        payload: Value,
    ) -> Result<()> {
        self.write(|tx| {
            let mut e = Event::note(event_type, uuid, payload);
            e.action_plan_uuid = plan;
            append_event(tx, &e)
        })
    }

    /// [`SqliteStore::note`] of plan `plan` by its applier, fenced by the
    /// plan's lease: written only while `owner` holds it, else
    /// [`StoreError::LeaseLost`] and nothing written.
    pub fn leased_note(
        &mut self,
        plan: &str,
        owner: &str,
        event_type: EventType,
        uuid: &str,
        payload: Value,
    ) -> Result<()> {
        self.write(|tx| {
            if let Err(lost) = fence(tx, plan, Some(owner))? {
                return Ok(Err(lost));
            }
            let mut e = Event::note(event_type, uuid, payload);
            e.action_plan_uuid = Some(plan);
            append_event(tx, &e).map(Ok)
        })?
    }

    /// [`super::StoreBackend::cancel_unstarted_plan`] on SQLite.
    pub(super) fn cancel_unstarted_plan(&mut self, p: &PlanRow) -> Result<bool> {
        self.write(|tx| {
                    let n = tx.execute(
                        "UPDATE action_plans SET state = 'CANCELLED', updated_at = ?1 WHERE uuid = ?2 AND state = ?3",
                        params![now(), p.uuid, p.state],
                    )?;
                    if n == 0 {
                        // Moved meanwhile (an applier took it): nothing written.
                        return Ok(false);
                    }
                    append_event(
                        tx,
                        &Event::state_change(EventType::PlanUpdate, &p.uuid, Some(p.state.as_str()), "CANCELLED")
                            .in_plan(&p.uuid),
                    )?;
                    let mut st = tx.prepare(
                        "SELECT uuid FROM actions WHERE action_plan_id = ?1 AND state = 'PENDING' AND deleted = 0",
                    )?;
                    let ids: Vec<String> = st
                        .query_map([p.id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for id in ids {
                        let n = tx.execute(
                            "UPDATE actions SET state = 'CANCELLED', updated_at = ?1 \
                             WHERE uuid = ?2 AND state = 'PENDING'",
                            params![now(), id],
                        )?;
                        if n == 0 {
                            continue;
                        }
                        append_event(
                            tx,
                            &Event::state_change(EventType::ActionUpdate, &id, Some("PENDING"), "CANCELLED")
                                .in_plan(&p.uuid),
                        )?;
                    }
                    Ok(true)
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, on_both_backends};
    use std::time::Duration;

    const TTL: Duration = Duration::from_secs(15);
    const OLD: &str = "host-a:1:old";
    const NEW: &str = "host-b:2:new";

    /// A plan of `n` nops whose lease `OLD` took, then `NEW` took over (as
    /// a claim of a lapsed lease does).
    fn taken_over(t: &mut TestStore, n: usize) -> (String, Vec<String>) {
        let (plan, uuids) = t.plan_of_nops(n);
        assert!(t.acquire_lease(&plan, OLD, TTL).expect("acquire").is_ok());
        assert!(t.take_over_lease(&plan, OLD, NEW, TTL).expect("take over"));
        (plan, uuids)
    }

    /// What the store holds of a plan: its actions' states, messages and
    /// outputs, the plan's state, and every event.
    fn held(t: &TestStore, plan: &str) -> (String, String) {
        let actions = t
            .actions(plan)
            .expect("actions")
            .iter()
            .map(|a| {
                format!(
                    "{} {:?} {:?} {:?}",
                    a.name, a.state, a.status_message, a.outputs
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let events = t.int("SELECT count(*) FROM events").unwrap_or(-1);
        let plan_state = t.plan_state(plan).expect("plan state");
        (format!("{actions} | {plan_state:?}"), events.to_string())
    }

    fn is_lease_lost<T>(r: &Result<T>, plan: &str, owner: &str) -> bool {
        matches!(r, Err(StoreError::LeaseLost { plan: p, owner: o }) if p == plan && o == owner)
    }

    on_both_backends!(
        a_transition_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing,
        the_holders_fenced_transitions_apply_and_unfenced_ones_are_unchanged,
        a_plan_transition_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing,
        a_large_batch_mixing_refused_and_held_transitions_answers_each_in_its_place,
        a_retry_note_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing,
        applied_with_recorded_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing,
        an_old_owners_plan_transition_in_the_wrong_state_is_refused_by_the_fence_first,
    );

    /// A retry's note (`action.execution.retry`, an event that changes no
    /// state) by the applier that lost the lease is refused, naming the
    /// plan and the owner, with no event written; the holder's is written,
    /// in its plan; an unfenced note is as before.
    fn a_retry_note_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing(
        mut t: TestStore,
    ) {
        let (plan, uuids) = taken_over(&mut t, 1);
        let before = held(&t, &plan);
        let note = json!({"attempt": 2, "of": 3, "error": "boom", "retry_in_seconds": 0.5});
        let retry = EventType::ActionExecutionRetry;
        let r = t.leased_note(&plan, OLD, retry, &uuids[0], note.clone());
        assert!(is_lease_lost(&r, &plan, OLD), "{r:?}");
        assert_eq!(held(&t, &plan), before);
        t.leased_note(&plan, NEW, retry, &uuids[0], note.clone())
            .expect("the holder's note");
        let retries = |t: &TestStore| {
            t.int(&format!(
                "SELECT count(*) FROM events WHERE event_type = 'action.execution.retry' \
                 AND object_uuid = '{}' AND action_plan_uuid = '{plan}'",
                uuids[0]
            ))
        };
        assert_eq!(retries(&t), Some(1));
        t.note(retry, &uuids[0], Some(&plan), note)
            .expect("an unfenced note");
        assert_eq!(retries(&t), Some(2));
    }

    /// The options a `serve` applier records at its start (`applied_with`)
    /// are fenced as its transitions: by the owner that lost the lease,
    /// refused with nothing written (neither the options nor the queueing
    /// with its event); by the holder, recorded.
    fn applied_with_recorded_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing(
        mut t: TestStore,
    ) {
        let (plan, _) = taken_over(&mut t, 1);
        let before = (held(&t, &plan), t.plan_extra(&plan).expect("extra"));
        let with = json!({"max_workers": 3});
        let from = [PlanState::Recommended];
        let r = t.record_applied_with(&plan, Some(OLD), &from, &with, true);
        assert!(is_lease_lost(&r, &plan, OLD), "{r:?}");
        assert_eq!(
            (held(&t, &plan), t.plan_extra(&plan).expect("extra")),
            before
        );
        let r = t.record_applied_with(&plan, Some(NEW), &from, &with, true);
        assert!(matches!(r, Ok(true)), "{r:?}");
        assert_eq!(
            t.plan_extra(&plan).expect("extra")["applied_with"],
            with,
            "recorded"
        );
        assert_eq!(t.plan_state(&plan).expect("state"), PlanState::Pending);
        // Unfenced (the command line's, before any lease): as before.
        let r = t.record_applied_with(&plan, None, &[PlanState::Pending], &json!({}), false);
        assert!(matches!(r, Ok(true)), "{r:?}");
    }

    /// A batch the size of a parallel applier's (PostgreSQL applies eight
    /// or more distinct actions as set operations, schema 18): the refused
    /// transitions are left out of what is applied, and each result stays
    /// in its place.
    fn a_large_batch_mixing_refused_and_held_transitions_answers_each_in_its_place(
        mut t: TestStore,
    ) {
        let (plan, uuids) = taken_over(&mut t, 20);
        let batch: Vec<ActionTransition> = (0..20)
            .map(|i| {
                let x = ActionTransition::new(
                    &uuids[i],
                    &[ActionState::Pending],
                    ActionState::Ongoing,
                    None,
                    None,
                    EventType::ActionExecutionStart,
                )
                .known(&plan, &format!("a{i}"));
                match i % 5 {
                    0 => x.fenced_by(OLD),
                    4 => x,
                    _ => x.fenced_by(NEW),
                }
            })
            .collect();
        let r = t.action_transitions(&batch).expect("batch");
        assert_eq!(r.len(), 20);
        for (i, r) in r.iter().enumerate() {
            if i % 5 == 0 {
                assert!(is_lease_lost(r, &plan, OLD), "{i}: {r:?}");
            } else {
                assert!(matches!(r, Ok(true)), "{i}: {r:?}");
            }
        }
        let states: Vec<ActionState> = t
            .actions(&plan)
            .expect("actions")
            .iter()
            .map(|a| a.state)
            .collect();
        for (i, s) in states.iter().enumerate() {
            let want = if i % 5 == 0 {
                ActionState::Pending
            } else {
                ActionState::Ongoing
            };
            assert_eq!(*s, want, "a{i}");
        }
        assert_eq!(
            t.int(&format!(
                "SELECT count(*) FROM events WHERE action_plan_uuid = '{plan}' \
                 AND object_type = 'action' AND new_state = 'ONGOING'"
            )),
            Some(16)
        );
        // All held: the whole batch applies.
        let again: Vec<ActionTransition> = (0..20)
            .filter(|i| i % 5 != 0)
            .map(|i| {
                ActionTransition::new(
                    &uuids[i],
                    &[ActionState::Ongoing],
                    ActionState::Succeeded,
                    None,
                    None,
                    EventType::ActionExecutionEnd,
                )
                .known(&plan, &format!("a{i}"))
                .fenced_by(NEW)
            })
            .collect();
        let r = t.action_transitions(&again).expect("batch");
        assert!(r.iter().all(|r| matches!(r, Ok(true))), "{r:?}");
    }

    /// The old holder's transitions (plan known or looked up, with one or
    /// several from-states, an ONGOING that would start an action, a
    /// final state) are refused, each naming the plan and the owner, and
    /// the store holds exactly what it held before.
    fn a_transition_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing(
        mut t: TestStore,
    ) {
        let (plan, uuids) = taken_over(&mut t, 3);
        let before = held(&t, &plan);
        let batch = vec![
            ActionTransition::new(
                &uuids[0],
                &[ActionState::Pending],
                ActionState::Ongoing,
                None,
                None,
                EventType::ActionExecutionStart,
            )
            .known(&plan, "a0")
            .fenced_by(OLD),
            ActionTransition::new(
                &uuids[1],
                &[ActionState::Pending, ActionState::Ongoing],
                ActionState::Succeeded,
                Some("done".into()),
                Some(json!({"host": "host-a"})),
                EventType::ActionExecutionEnd,
            )
            .fenced_by(OLD),
            ActionTransition::new(
                &uuids[2],
                &[ActionState::Pending],
                ActionState::Failed,
                None,
                None,
                EventType::ActionExecutionError,
            )
            .known(&plan, "a2")
            .in_execute()
            .fenced_by(OLD),
        ];
        let r = t.action_transitions(&batch).expect("batch");
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| is_lease_lost(r, &plan, OLD)), "{r:?}");
        assert_eq!(held(&t, &plan), before);
        // Released (no holder at all): refused too.
        t.release_lease(&plan, NEW).expect("release");
        let r = t.action_transitions(&batch[..1]).expect("batch");
        assert!(is_lease_lost(&r[0], &plan, OLD), "{r:?}");
        assert_eq!(held(&t, &plan), before);
        let e = r[0]
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(e.contains(&plan) && e.contains(OLD), "{e}");
    }

    /// In one batch with the old holder's, the holder's transitions apply
    /// (with their events) and an unfenced one (an operator's skip) is a
    /// compare-and-set as before, whoever holds the lease.
    fn the_holders_fenced_transitions_apply_and_unfenced_ones_are_unchanged(mut t: TestStore) {
        let (plan, uuids) = taken_over(&mut t, 3);
        let start = |i: usize, owner: &str| {
            ActionTransition::new(
                &uuids[i],
                &[ActionState::Pending],
                ActionState::Ongoing,
                None,
                None,
                EventType::ActionExecutionStart,
            )
            .known(&plan, &format!("a{i}"))
            .fenced_by(owner)
        };
        let unfenced = ActionTransition::new(
            &uuids[2],
            &[ActionState::Pending],
            ActionState::Skipped,
            None,
            None,
            EventType::ActionUpdate,
        );
        let r = t
            .action_transitions(&[start(0, OLD), start(1, NEW), start(0, NEW), unfenced])
            .expect("batch");
        assert!(is_lease_lost(&r[0], &plan, OLD), "{r:?}");
        assert!(matches!(r[1..], [Ok(true), Ok(true), Ok(true)]), "{r:?}");
        let states: Vec<ActionState> = t
            .actions(&plan)
            .expect("actions")
            .iter()
            .map(|a| a.state)
            .collect();
        assert_eq!(
            states,
            [
                ActionState::Ongoing,
                ActionState::Ongoing,
                ActionState::Skipped
            ]
        );
        assert_eq!(
            t.int(&format!(
                "SELECT count(*) FROM events WHERE action_plan_uuid = '{plan}' \
                 AND object_type = 'action' AND old_state = 'PENDING'"
            )),
            Some(3)
        );
        // A holder whose lease expired and nobody claimed still holds it.
        t.exec(&format!(
            "UPDATE action_plans SET lease_expires_at = '2000-01-01T00:00:00.000Z' WHERE uuid = '{plan}'"
        ));
        let done = ActionTransition::new(
            &uuids[0],
            &[ActionState::Ongoing],
            ActionState::Succeeded,
            None,
            None,
            EventType::ActionExecutionEnd,
        )
        .fenced_by(NEW);
        let r = t.action_transitions(&[done]).expect("batch");
        assert!(matches!(r[..], [Ok(true)]), "{r:?}");
        // Not in its from-state: the holder's compare-and-set says no (the
        // fence folded into SQLite's UPDATE tells the two apart), the old
        // owner's is refused by the fence, and a gone action is not found.
        let mut gone = start(0, NEW);
        gone.action_uuid = crate::store::new_uuid();
        let r = t
            .action_transitions(&[start(0, NEW), start(0, OLD), gone])
            .expect("batch");
        assert!(matches!(r[0], Ok(false)), "{r:?}");
        assert!(is_lease_lost(&r[1], &plan, OLD), "{r:?}");
        assert!(matches!(r[2], Err(StoreError::NotFound { .. })), "{r:?}");
    }

    fn a_plan_transition_by_an_owner_that_lost_the_lease_is_refused_and_writes_nothing(
        mut t: TestStore,
    ) {
        let (plan, _) = taken_over(&mut t, 1);
        let before = held(&t, &plan);
        let r = t.leased_plan_transition(
            &plan,
            OLD,
            &[PlanState::Recommended],
            PlanState::Ongoing,
            None,
            EventType::PlanExecutionStart,
        );
        assert!(is_lease_lost(&r, &plan, OLD), "{r:?}");
        assert_eq!(held(&t, &plan), before);
        let r = t.leased_plan_transition(
            &plan,
            NEW,
            &[PlanState::Recommended],
            PlanState::Ongoing,
            None,
            EventType::PlanExecutionStart,
        );
        assert!(matches!(r, Ok(true)), "{r:?}");
        assert_eq!(t.plan_state(&plan).expect("state"), PlanState::Ongoing);
        // The holder's compare-and-set still says no when the state moved.
        let r = t.leased_plan_transition(
            &plan,
            NEW,
            &[PlanState::Recommended],
            PlanState::Ongoing,
            None,
            EventType::PlanExecutionStart,
        );
        assert!(matches!(r, Ok(false)), "{r:?}");
    }

    /// The fence comes before the compare-and-set, on both stores: an old
    /// owner whose plan is also in none of `from` is told it lost the
    /// lease (not a mere "no"), for a plan transition and for
    /// `applied_with`, and nothing is written; the holder's answer in the
    /// same state is the compare-and-set's "no".
    fn an_old_owners_plan_transition_in_the_wrong_state_is_refused_by_the_fence_first(
        mut t: TestStore,
    ) {
        let (plan, _) = taken_over(&mut t, 1);
        let before = (held(&t, &plan), t.plan_extra(&plan).expect("extra"));
        let wrong = [PlanState::Ongoing];
        let r = t.leased_plan_transition(
            &plan,
            OLD,
            &wrong,
            PlanState::Succeeded,
            None,
            EventType::PlanExecutionEnd,
        );
        assert!(is_lease_lost(&r, &plan, OLD), "{r:?}");
        let r = t.record_applied_with(&plan, Some(OLD), &wrong, &json!({"max_workers": 3}), true);
        assert!(is_lease_lost(&r, &plan, OLD), "{r:?}");
        assert_eq!(
            (held(&t, &plan), t.plan_extra(&plan).expect("extra")),
            before
        );
        let r = t.leased_plan_transition(
            &plan,
            NEW,
            &wrong,
            PlanState::Succeeded,
            None,
            EventType::PlanExecutionEnd,
        );
        assert!(matches!(r, Ok(false)), "{r:?}");
        let r = t.record_applied_with(&plan, Some(NEW), &wrong, &json!({}), true);
        assert!(matches!(r, Ok(false)), "{r:?}");
        assert_eq!(
            (held(&t, &plan), t.plan_extra(&plan).expect("extra")),
            before
        );
    }

    /// PostgreSQL's fence without a tuple lock (schema 19): a batch of the
    /// lease's owner holds its plan's transaction lock from reading the
    /// owner to its commit, and a change of owner (a take-over here) takes
    /// the same lock before it commits: the take-over waits for the batch,
    /// and the old owner's next batch, after it, is refused.
    #[test]
    fn a_take_over_waits_for_the_old_owners_batch_in_flight_then_fences_the_next() {
        let mut t = TestStore::postgres();
        let (plan, uuids) = t.plan_of_nops(2);
        assert!(t.acquire_lease(&plan, OLD, TTL).expect("acquire").is_ok());
        let super::super::Location::Postgres(url) = t.location.clone() else {
            unreachable!("a PostgreSQL test store")
        };
        let known: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
        let mut batch = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let mut tx = batch.transaction().expect("begin");
        let applied: Vec<i32> = tx
            .query_one(
                "SELECT sextant_action_transitions(ARRAY[$1]::TEXT[], ARRAY['PENDING'], \
                 ARRAY['ONGOING'], ARRAY[NULL]::TEXT[], ARRAY[NULL]::TEXT[], ARRAY[0], \
                 ARRAY['action.execution.start'], ARRAY[$2]::TEXT[], 'now', $3::TEXT[], \
                 ARRAY[$4]::TEXT[])",
                &[&uuids[0], &plan, &known, &OLD],
            )
            .expect("the owner's batch")
            .get(0);
        assert_eq!(applied, [1]);
        let (done_tx, done) = std::sync::mpsc::channel();
        let taker = {
            let (location, plan) = (t.location.clone(), plan.clone());
            std::thread::spawn(move || {
                let mut other = crate::store::Store::open(&location).expect("open");
                let took = other.take_over_lease(&plan, OLD, NEW, TTL);
                let _ = done_tx.send(took.is_ok());
                took.expect("take over")
            })
        };
        assert!(
            done.recv_timeout(Duration::from_millis(700)).is_err(),
            "the take-over did not wait for the batch in flight"
        );
        tx.commit().expect("commit the batch");
        assert_eq!(
            done.recv_timeout(Duration::from_secs(8)),
            Ok(true),
            "the take-over goes on once the batch committed"
        );
        assert!(taker.join().expect("no panic"), "taken over");
        let late = ActionTransition::new(
            &uuids[1],
            &[ActionState::Pending],
            ActionState::Ongoing,
            None,
            None,
            EventType::ActionExecutionStart,
        )
        .known(&plan, "a1")
        .fenced_by(OLD);
        let r = t.action_transitions(&[late]).expect("batch");
        assert!(is_lease_lost(&r[0], &plan, OLD), "{r:?}");
        assert_eq!(
            t.text(&format!(
                "SELECT state FROM actions WHERE uuid = '{}'",
                uuids[0]
            )),
            "ONGOING",
            "the batch in flight committed"
        );
    }
}
