//! What the applier writes, on PostgreSQL (`apply.rs` on SQLite): action
//! and plan transitions, each a compare-and-set with its event (several in
//! one transaction for a group commit), notes, manual skips and
//! cancellation. An unknown state read back is [`StoreError::Unknown`].

use super::apply::ActionTransition;
use super::pg::PgStore;
use super::pg_sql::{Sql, args, int};
use super::plans::PlanRow;
use super::{Event, Result, StoreError, now};
use crate::states::{ActionState, EventType, PlanState};
use serde_json::{Value, json};

/// `sextant_action_transitions` (schema 16, `pg_schema.rs`; fenced by the
/// lease since schema 19): the whole batch in one statement, so one round
/// trip.
const TRANSITIONS: &str = "SELECT sextant_action_transitions(\
     $1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::INTEGER[], $7::TEXT[], \
     $8::TEXT[], $9::TEXT, $10::TEXT[], $11::TEXT[])";

/// The SQLSTATE the function raises on an action state it was not told of
/// (the state as its message, the row id as its detail).
const UNKNOWN_STATE: &str = "SXUNK";

/// The transitions of `batch`, in one call of the server's function: the
/// statement is atomic, so the batch is applied whole or not at all.
fn apply_transitions(
    db: &mut Sql<'_, postgres::Client>,
    batch: &[ActionTransition],
) -> Result<Vec<Result<bool>>> {
    let n = batch.len();
    let mut uuids = Vec::with_capacity(n);
    let mut froms = Vec::with_capacity(n);
    let mut tos = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut failed = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut plans = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    for t in batch {
        uuids.push(t.action_uuid.as_str());
        let from: Vec<&str> = t.from.iter().map(|s| s.as_str()).collect();
        froms.push(from.join(","));
        tos.push(t.to.as_str());
        messages.push(t.message.as_deref());
        outputs.push(t.outputs.as_ref().map(crate::json_text));
        failed.push(i32::from(t.execute_failed));
        events.push(t.event_type.as_str());
        plans.push(t.plan_uuid.as_deref());
        owners.push(t.lease_owner.as_deref());
    }
    let known: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
    let at = now();
    let st = db.prepare(TRANSITIONS)?;
    let row =
        db.c.query_one(
            &st,
            &[
                &uuids, &froms, &tos, &messages, &outputs, &failed, &events, &plans, &at, &known,
                &owners,
            ],
        )
        .map_err(|e| match e.as_db_error() {
            Some(d) if d.code().code() == UNKNOWN_STATE => {
                super::pg_sql::parse_enum::<ActionState>(
                    db.location,
                    d.message(),
                    "actions",
                    d.detail().and_then(|r| r.parse().ok()).unwrap_or(-1),
                    "state",
                )
                .err()
                .unwrap_or_else(|| db.err(e))
            }
            _ => db.err(e),
        })?;
    let codes: Vec<i32> = row.get(0);
    if codes.len() != n {
        return Err(StoreError::Commit(format!(
            "database {}: {} results for {n} action transitions",
            db.location,
            codes.len()
        )));
    }
    let mut results = Vec::with_capacity(n);
    for (t, code) in batch.iter().zip(codes) {
        results.push(match code {
            1 => Ok(true),
            0 => Ok(false),
            // Refused by the lease fence (schema 19): the plan named, read
            // when the caller did not give it (a refusal is rare).
            -2 => Err(StoreError::LeaseLost {
                plan: match &t.plan_uuid {
                    Some(p) => p.clone(),
                    None => plan_of_action(db, &t.action_uuid)?,
                },
                owner: t.lease_owner.clone().unwrap_or_default(),
            }),
            _ => Err(StoreError::NotFound {
                kind: "action",
                id: t.action_uuid.clone(),
            }),
        });
    }
    Ok(results)
}

/// The uuid of action `uuid`'s plan ("" when it is gone).
fn plan_of_action(db: &mut Sql<'_, postgres::Client>, uuid: &str) -> Result<String> {
    match db.opt(
        "SELECT p.uuid FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
         WHERE x.uuid = $1",
        args![uuid],
    )? {
        Some(r) => r.get(0),
        None => Ok(String::new()),
    }
}

impl PgStore {
    /// Applies several action transitions in one transaction (a group
    /// commit): each is a compare-and-set with its event; the result says,
    /// for each, whether it applied, or that its action does not exist. An
    /// unknown state read back fails the whole batch, writing nothing.
    ///
    /// One call of the server's `sextant_action_transitions` (schema 16):
    /// one round trip for the whole batch, where one statement per row
    /// cost two or three round trips per transition. (A data-modifying CTE
    /// over unnest()ed arrays was tried in session 9 and cost the server
    /// more than the round trips it saved: docs/fleet.md.)
    pub fn action_transitions(&mut self, batch: &[ActionTransition]) -> Result<Vec<Result<bool>>> {
        self.read(|db| apply_transitions(db, batch))
    }

    /// Moves an action from one of `from` to `to`, with its event.
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

    /// A plan's state, by full uuid: cheap enough to poll.
    pub fn plan_state(&self, uuid: &str) -> Result<PlanState> {
        self.read(|db| {
            let row = db
                .opt(
                    "SELECT id, state FROM action_plans WHERE uuid = $1 AND deleted = 0",
                    args![uuid],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "action plan",
                    id: uuid.into(),
                })?;
            db.enum_col(&row, 1, 0, "action_plans", "state")
        })
    }

    /// Moves a plan from one of `from` to `to`, with its event, in one
    /// transaction (the row locked while it is read); false when it was in
    /// another state.
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

    /// [`Self::plan_transition`]; with `owner`, only while that owner
    /// holds the plan's lease (checked under the plan row's lock), else
    /// [`StoreError::LeaseLost`] and nothing written.
    pub(super) fn plan_transition_as(
        &mut self,
        plan_uuid: &str,
        owner: Option<&str>,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, plan_uuid)?;
        self.write(|db| {
            let Some(row) = db.opt(
                "SELECT id, state, lease_owner FROM action_plans WHERE uuid = $1 AND deleted = 0 \
                 FOR UPDATE",
                args![uuid],
            )?
            else {
                return Err(StoreError::NotFound {
                    kind: "action plan",
                    id: plan_uuid.into(),
                });
            };
            if let Some(owner) = owner {
                let holder: Option<String> = row.get(2)?;
                if holder.as_deref() != Some(owner) {
                    return Err(StoreError::LeaseLost {
                        plan: uuid.clone(),
                        owner: owner.into(),
                    });
                }
            }
            let current: PlanState = db.enum_col(&row, 1, 0, "action_plans", "state")?;
            if !from.contains(&current) {
                return Ok(false);
            }
            let at = now();
            let n = db.exec(
                "UPDATE action_plans SET state = $1, status_message = COALESCE($2, status_message), \
                 updated_at = $3 WHERE uuid = $4 AND state = $5",
                args![to, message, at, uuid, current],
            )?;
            if n == 1 {
                db.event(
                    &Event::state_change(event_type, &uuid, Some(current.as_str()), to.as_str())
                        .in_plan(&uuid)
                        .with_payload(json!({"status_message": message})),
                    &at,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Records how a plan is to be applied in its extras; with `queue`,
    /// also moves it to PENDING with its event (see `StoreBackend`). With
    /// `owner`, fenced by the plan's lease as [`Self::plan_transition_as`]:
    /// its owner read under the row's lock, which a claim's update waits
    /// for.
    pub fn record_applied_with(
        &mut self,
        plan_uuid: &str,
        owner: Option<&str>,
        from: &[PlanState],
        applied_with: &Value,
        queue: bool,
    ) -> Result<bool> {
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, plan_uuid)?;
        self.write(|db| {
            let Some(row) = db.opt(
                "SELECT id, state, policy, lease_owner FROM action_plans \
                 WHERE uuid = $1 AND deleted = 0 FOR UPDATE",
                args![uuid],
            )?
            else {
                return Err(StoreError::NotFound {
                    kind: "action plan",
                    id: plan_uuid.into(),
                });
            };
            if let Some(owner) = owner
                && row.get::<Option<String>>(3)?.as_deref() != Some(owner)
            {
                return Err(StoreError::LeaseLost {
                    plan: uuid.clone(),
                    owner: owner.into(),
                });
            }
            let current: PlanState = db.enum_col(&row, 1, 0, "action_plans", "state")?;
            if !from.contains(&current) {
                return Ok(false);
            }
            // As SQLite's json_set: the key set in the object (a policy
            // that is not an object is left as it is).
            let mut extra: Value = row
                .get::<Option<String>>(2)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_else(|| json!({}));
            if let Some(m) = extra.as_object_mut() {
                m.insert("applied_with".into(), applied_with.clone());
            }
            let at = now();
            db.exec(
                "UPDATE action_plans SET policy = $1, updated_at = $2 WHERE id = $3",
                args![extra.to_string(), at, int(&row, 0)?],
            )?;
            if queue {
                db.exec(
                    "UPDATE action_plans SET state = 'PENDING' WHERE id = $1",
                    args![int(&row, 0)?],
                )?;
                db.event(
                    &Event::state_change(
                        EventType::PlanUpdate,
                        &uuid,
                        Some(current.as_str()),
                        PlanState::Pending.as_str(),
                    )
                    .in_plan(&uuid)
                    .with_payload(json!({"status_message": null})),
                    &at,
                )?;
            }
            Ok(true)
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
        self.read(|db| {
            let mut e = Event::note(event_type, uuid, payload);
            e.action_plan_uuid = plan;
            db.event(&e, &now())
        })
    }

    /// [`Self::note`] of plan `plan` by its applier, fenced by the plan's
    /// lease (`pg_lease::fence`): written only while `owner` holds it, else
    /// [`StoreError::LeaseLost`] and nothing written.
    pub fn leased_note(
        &mut self,
        plan: &str,
        owner: &str,
        event_type: EventType,
        uuid: &str,
        payload: Value,
    ) -> Result<()> {
        self.write(|db| {
            super::pg_lease::fence(db, plan, Some(owner))?;
            let mut e = Event::note(event_type, uuid, payload);
            e.action_plan_uuid = Some(plan);
            db.event(&e, &now())
        })
    }

    /// [`super::StoreBackend::cancel_unstarted_plan`] on PostgreSQL.
    pub fn cancel_unstarted_plan(&mut self, p: &PlanRow) -> Result<bool> {
        self.write(|db| {
            let at = now();
            let n = db.exec(
                "UPDATE action_plans SET state = 'CANCELLED', updated_at = $1 \
                         WHERE uuid = $2 AND state = $3",
                args![at, p.uuid, p.state],
            )?;
            if n == 0 {
                // Moved meanwhile (an applier took it): nothing written.
                return Ok(false);
            }
            db.event(
                &Event::state_change(
                    EventType::PlanUpdate,
                    &p.uuid,
                    Some(p.state.as_str()),
                    "CANCELLED",
                )
                .in_plan(&p.uuid),
                &at,
            )?;
            let ids: Vec<String> = db
                .rows(
                    "UPDATE actions SET state = 'CANCELLED', updated_at = $1 \
                             WHERE action_plan_id = $2 AND state = 'PENDING' AND deleted = 0 \
                             RETURNING uuid, id",
                    args![at, p.id],
                )?
                .iter()
                .map(|r| Ok((int(r, 1)?, r.get::<String>(0)?)))
                .collect::<Result<std::collections::BTreeMap<i64, String>>>()?
                .into_values()
                .collect();
            for id in ids {
                db.event(
                    &Event::state_change(
                        EventType::ActionUpdate,
                        &id,
                        Some("PENDING"),
                        "CANCELLED",
                    )
                    .in_plan(&p.uuid),
                    &at,
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

    /// Action `i`'s transition as the applier builds it (plan and name
    /// known, one `from` state).
    fn known(
        plan: &str,
        uuids: &[String],
        i: usize,
        from: ActionState,
        to: ActionState,
    ) -> ActionTransition {
        ActionTransition::new(&uuids[i], &[from], to, None, None, EventType::ActionUpdate)
            .known(plan, &format!("a{i}"))
    }

    /// The store's events: (object, old state, new state, payload text),
    /// in id order.
    fn events(t: &TestStore) -> Vec<(String, String, String, String)> {
        let n = t.int(
            "SELECT count(*) FROM events WHERE object_type = 'action' AND old_state IS NOT NULL",
        );
        (0..n.unwrap_or(0))
            .map(|k| {
                let q = |col: &str| {
                    t.text(&format!(
                        "SELECT {col} FROM events WHERE object_type = 'action' AND old_state IS NOT NULL \
                         ORDER BY id LIMIT 1 OFFSET {k}"
                    ))
                };
                (
                    q("object_uuid"),
                    q("old_state"),
                    q("new_state"),
                    q("payload"),
                )
            })
            .collect()
    }

    fn states(t: &TestStore, plan: &str) -> Vec<ActionState> {
        t.actions(plan)
            .expect("actions")
            .iter()
            .map(|a| a.state)
            .collect()
    }

    on_both_backends!(
        a_mixed_batch_says_for_each_transition_applied_refused_or_not_found,
        an_unknown_state_read_back_fails_the_whole_batch_writing_nothing,
        an_event_payload_is_the_text_serde_writes_whatever_the_message_holds,
        a_batch_moves_one_action_twice_in_order_and_reads_several_from_states,
        a_large_batch_of_distinct_actions_gives_the_results_and_events_of_one_at_a_time,
        a_large_batch_with_an_unknown_state_read_back_writes_nothing
    );

    fn a_mixed_batch_says_for_each_transition_applied_refused_or_not_found(mut t: TestStore) {
        let (plan, uuids) = t.plan_of_nops(3);
        let mut missing = known(&plan, &uuids, 0, ActionState::Pending, ActionState::Ongoing);
        missing.action_uuid = "no-such-action".into();
        let batch = vec![
            known(&plan, &uuids, 2, ActionState::Pending, ActionState::Ongoing),
            // Refused: a1 is PENDING.
            known(
                &plan,
                &uuids,
                1,
                ActionState::Ongoing,
                ActionState::Succeeded,
            ),
            missing,
            known(&plan, &uuids, 0, ActionState::Pending, ActionState::Skipped),
        ];
        let r = t.action_transitions(&batch).expect("batch");
        assert!(matches!(r[0], Ok(true)), "{r:?}");
        assert!(matches!(r[1], Ok(false)), "{r:?}");
        assert!(
            matches!(&r[2], Err(StoreError::NotFound { kind: "action", id }) if id == "no-such-action"),
            "{r:?}"
        );
        assert!(matches!(r[3], Ok(true)), "{r:?}");
        assert_eq!(
            states(&t, &plan),
            [
                ActionState::Skipped,
                ActionState::Pending,
                ActionState::Ongoing
            ]
        );
        let e = events(&t);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            (e[0].0.as_str(), e[0].2.as_str()),
            (uuids[2].as_str(), "ONGOING")
        );
        assert_eq!(
            (e[1].0.as_str(), e[1].2.as_str()),
            (uuids[0].as_str(), "SKIPPED")
        );
    }

    fn an_unknown_state_read_back_fails_the_whole_batch_writing_nothing(mut t: TestStore) {
        let (plan, uuids) = t.plan_of_nops(2);
        t.exec(&format!(
            "UPDATE actions SET state = 'BOGUS' WHERE uuid = '{}'",
            uuids[1]
        ));
        let batch = vec![
            known(&plan, &uuids, 0, ActionState::Pending, ActionState::Ongoing),
            known(&plan, &uuids, 1, ActionState::Pending, ActionState::Ongoing),
        ];
        let r = t.action_transitions(&batch);
        assert!(
            matches!(&r, Err(StoreError::Unknown { value, .. }) if value.table == "actions" && value.column == "state" && value.name.value == "BOGUS" && Some(value.row) == t.int(&format!("SELECT id FROM actions WHERE uuid = '{}'", uuids[1]))),
            "{r:?}"
        );
        assert_eq!(
            t.text(&format!(
                "SELECT state FROM actions WHERE uuid = '{}'",
                uuids[0]
            )),
            "PENDING"
        );
        assert!(events(&t).is_empty());
    }

    fn an_event_payload_is_the_text_serde_writes_whatever_the_message_holds(mut t: TestStore) {
        // The server builds PostgreSQL's payload (schema 16), Rust SQLite's:
        // the stored text must be the same bytes on both.
        let (plan, uuids) = t.plan_of_nops(2);
        let message = "tab\t \"quoted\" back\\slash\nline \u{1}\u{1f} \u{7f} é ✓ </script> 😀";
        let mut with_message = known(&plan, &uuids, 0, ActionState::Pending, ActionState::Failed);
        with_message.message = Some(message.into());
        let batch = vec![
            with_message,
            known(&plan, &uuids, 1, ActionState::Pending, ActionState::Ongoing),
        ];
        let r = t.action_transitions(&batch).expect("batch");
        assert!(r.iter().all(|r| matches!(r, Ok(true))), "{r:?}");
        let e = events(&t);
        assert_eq!(
            e[0].3,
            serde_json::to_string(&json!({"name": "a0", "status_message": message})).expect("json")
        );
        assert_eq!(e[1].3, r#"{"name":"a1","status_message":null}"#);
        assert_eq!(
            t.text(&format!(
                "SELECT status_message FROM actions WHERE uuid = '{}'",
                uuids[0]
            )),
            message
        );
    }

    fn a_batch_moves_one_action_twice_in_order_and_reads_several_from_states(mut t: TestStore) {
        let (plan, uuids) = t.plan_of_nops(2);
        // Plan unknown and two possible states: read first, then moved.
        let unknown_plan = ActionTransition::new(
            &uuids[1],
            &[ActionState::Ongoing, ActionState::Pending],
            ActionState::Cancelled,
            None,
            None,
            EventType::ActionUpdate,
        );
        let batch = vec![
            known(&plan, &uuids, 0, ActionState::Pending, ActionState::Ongoing),
            known(
                &plan,
                &uuids,
                0,
                ActionState::Ongoing,
                ActionState::Succeeded,
            )
            .in_execute(),
            // Refused: the first two moved it on.
            known(&plan, &uuids, 0, ActionState::Pending, ActionState::Ongoing),
            unknown_plan,
        ];
        let r = t.action_transitions(&batch).expect("batch");
        let applied: Vec<bool> = r.into_iter().map(|r| r.expect("found")).collect();
        assert_eq!(applied, [true, true, false, true]);
        assert_eq!(
            states(&t, &plan),
            [ActionState::Succeeded, ActionState::Cancelled]
        );
        let e = events(&t);
        let moves: Vec<(&str, &str)> = e.iter().map(|e| (e.1.as_str(), e.2.as_str())).collect();
        assert_eq!(
            moves,
            [
                ("PENDING", "ONGOING"),
                ("ONGOING", "SUCCEEDED"),
                ("PENDING", "CANCELLED")
            ]
        );
        assert_eq!(
            t.int(&format!(
                "SELECT execute_failed FROM actions WHERE uuid = '{}'",
                uuids[0]
            )),
            Some(1)
        );
        assert_eq!(
            t.text(&format!(
                "SELECT action_plan_uuid FROM events WHERE object_uuid = '{}' AND new_state = 'CANCELLED'",
                uuids[1]
            )),
            plan
        );
    }

    /// Schema 18 applies a batch of eight or more distinct actions, each
    /// with its plan and one from-state, as set operations on PostgreSQL:
    /// the results, rows and events must be those of applying it one
    /// transition at a time (SQLite's, and schema 16's loop).
    fn a_large_batch_of_distinct_actions_gives_the_results_and_events_of_one_at_a_time(
        mut t: TestStore,
    ) {
        let (plan, uuids) = t.plan_of_nops(12);
        let mut batch: Vec<ActionTransition> = (0..9)
            .map(|i| known(&plan, &uuids, i, ActionState::Pending, ActionState::Ongoing))
            .collect();
        batch[3].message = Some("said \"hi\"\n".into());
        batch[3].outputs = Some(json!({"k": 1, "s": "é"}));
        batch[5] = batch[5].clone().in_execute();
        // Refused: a9 is PENDING.
        batch.push(known(
            &plan,
            &uuids,
            9,
            ActionState::Ongoing,
            ActionState::Succeeded,
        ));
        let mut missing = known(
            &plan,
            &uuids,
            11,
            ActionState::Pending,
            ActionState::Ongoing,
        );
        missing.action_uuid = "no-such-action".into();
        batch.push(missing);
        let mut failed = known(&plan, &uuids, 10, ActionState::Pending, ActionState::Failed);
        failed.message = Some("boom".into());
        batch.push(failed);
        let r = t.action_transitions(&batch).expect("batch");
        assert_eq!(r.len(), 12);
        assert!(r[..9].iter().all(|r| matches!(r, Ok(true))), "{r:?}");
        assert!(matches!(r[9], Ok(false)), "{r:?}");
        assert!(
            matches!(&r[10], Err(StoreError::NotFound { kind: "action", id }) if id == "no-such-action"),
            "{r:?}"
        );
        assert!(matches!(r[11], Ok(true)), "{r:?}");
        let mut want = vec![ActionState::Ongoing; 9];
        want.extend([
            ActionState::Pending,
            ActionState::Failed,
            ActionState::Pending,
        ]);
        assert_eq!(states(&t, &plan), want);
        let e = events(&t);
        let order: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
        let mut want: Vec<&str> = uuids[..9].iter().map(String::as_str).collect();
        want.push(&uuids[10]);
        assert_eq!(order, want, "events in the batch's order");
        assert_eq!(
            e[3].3,
            serde_json::to_string(&json!({"name": "a3", "status_message": "said \"hi\"\n"}))
                .expect("json")
        );
        assert_eq!(e[9].3, r#"{"name":"a10","status_message":"boom"}"#);
        assert_eq!((e[9].1.as_str(), e[9].2.as_str()), ("PENDING", "FAILED"));
        let row = |col: &str, i: usize| {
            t.text(&format!(
                "SELECT {col} FROM actions WHERE uuid = '{}'",
                uuids[i]
            ))
        };
        assert_eq!(
            row("outputs", 3),
            crate::json_text(&json!({"k": 1, "s": "é"}))
        );
        assert_eq!(row("status_message", 3), "said \"hi\"\n");
        assert_eq!(
            t.int(&format!(
                "SELECT execute_failed FROM actions WHERE uuid = '{}'",
                uuids[5]
            )),
            Some(1)
        );
    }

    fn a_large_batch_with_an_unknown_state_read_back_writes_nothing(mut t: TestStore) {
        let (plan, uuids) = t.plan_of_nops(10);
        t.exec(&format!(
            "UPDATE actions SET state = 'BOGUS' WHERE uuid = '{}'",
            uuids[7]
        ));
        let batch: Vec<ActionTransition> = (0..10)
            .map(|i| known(&plan, &uuids, i, ActionState::Pending, ActionState::Ongoing))
            .collect();
        let r = t.action_transitions(&batch);
        assert!(
            matches!(&r, Err(StoreError::Unknown { value, .. }) if value.table == "actions" && value.column == "state" && value.name.value == "BOGUS" && Some(value.row) == t.int(&format!("SELECT id FROM actions WHERE uuid = '{}'", uuids[7]))),
            "{r:?}"
        );
        assert_eq!(
            t.int("SELECT count(*) FROM actions WHERE state = 'PENDING'"),
            Some(9)
        );
        assert!(events(&t).is_empty());
    }

    #[test]
    fn the_actions_table_leaves_room_in_its_pages_for_in_place_updates() {
        let t = TestStore::postgres();
        assert_eq!(
            t.text(
                "SELECT array_to_string(reloptions, ',') FROM pg_class \
                 WHERE relname = 'actions' AND relkind = 'r'"
            ),
            "fillfactor=70"
        );
    }
}
