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

/// The transitions of `batch`, in the caller's transaction.
fn apply_transitions(
    db: &mut Sql<'_, postgres::Transaction<'_>>,
    batch: &[ActionTransition],
) -> Result<Vec<Result<bool>>> {
    let at = now();
    let update = "UPDATE actions SET state = $1, status_message = COALESCE($2, status_message), \
         outputs = COALESCE($3, outputs), updated_at = $4, execute_failed = $7 \
         WHERE uuid = $5 AND state = $6 AND deleted = 0 RETURNING name";
    let read = "SELECT x.state, p.uuid, x.id FROM actions x \
         JOIN action_plans p ON p.id = x.action_plan_id \
         WHERE x.uuid = $1 AND x.deleted = 0 FOR UPDATE OF x";
    let event = "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
         old_state, new_state, payload) VALUES ($1, $2, 'action', $3, $4, $5, $6, $7)";
    let mut results = Vec::with_capacity(batch.len());
    for t in batch {
        let outputs = t.outputs.as_ref().map(crate::json_text);
        let step = |db: &mut Sql<'_, postgres::Transaction<'_>>, old: ActionState| {
            db.opt(
                update,
                args![
                    t.to,
                    t.message,
                    outputs,
                    at,
                    t.action_uuid,
                    old,
                    t.execute_failed
                ],
            )
        };
        // With its plan and the one state it may be in, the UPDATE alone;
        // else (or when that did not apply) the state is read first.
        let mut applied = None;
        if let (Some(plan), [from]) = (&t.plan_uuid, t.from.as_slice())
            && let Some(row) = step(db, *from)?
        {
            applied = Some((*from, plan.clone(), row.get::<_, String>(0)));
        }
        if applied.is_none() {
            let Some(row) = db.opt(read, args![t.action_uuid])? else {
                results.push(Err(StoreError::NotFound {
                    kind: "action",
                    id: t.action_uuid.clone(),
                }));
                continue;
            };
            let state: ActionState = db.enum_col(&row, 0, 2, "actions", "state")?;
            if !t.from.contains(&state) {
                results.push(Ok(false));
                continue;
            }
            let plan: String = row.get(1);
            match step(db, state)? {
                Some(row) => applied = Some((state, plan, row.get::<_, String>(0))),
                None => {
                    results.push(Ok(false));
                    continue;
                }
            }
        }
        let Some((old, plan, name)) = applied else {
            continue;
        };
        let payload = json!({"name": name, "status_message": t.message}).to_string();
        db.exec(
            event,
            args![at, t.event_type, t.action_uuid, plan, old, t.to, payload],
        )?;
        results.push(Ok(true));
    }
    Ok(results)
}

impl PgStore {
    /// Applies several action transitions in one transaction (a group
    /// commit): each is a compare-and-set with its event; the result says,
    /// for each, whether it applied, or that its action does not exist. An
    /// unknown state read back fails the whole batch, writing nothing.
    ///
    /// One statement per row (an UPDATE, then its event's INSERT), not one
    /// statement over arrays for the whole batch: measured on this
    /// project's 2-core VM under load, a data-modifying CTE over unnest()ed
    /// arrays cost the server more than the round trips it saves
    /// (docs/fleet.md).
    pub fn action_transitions(&mut self, batch: &[ActionTransition]) -> Result<Vec<Result<bool>>> {
        self.write(|db| apply_transitions(db, batch))
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
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, plan_uuid)?;
        self.write(|db| {
            let Some(current) = locked_plan_state(db, &uuid)? else {
                return Err(StoreError::NotFound {
                    kind: "action plan",
                    id: plan_uuid.into(),
                });
            };
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
    /// also moves it to PENDING with its event (see `StoreBackend`).
    pub fn record_applied_with(
        &mut self,
        plan_uuid: &str,
        from: &[PlanState],
        applied_with: &Value,
        queue: bool,
    ) -> Result<bool> {
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, plan_uuid)?;
        self.write(|db| {
            let Some(row) = db.opt(
                "SELECT id, state, policy FROM action_plans WHERE uuid = $1 AND deleted = 0 \
                 FOR UPDATE",
                args![uuid],
            )?
            else {
                return Err(StoreError::NotFound {
                    kind: "action plan",
                    id: plan_uuid.into(),
                });
            };
            let current: PlanState = db.enum_col(&row, 1, 0, "action_plans", "state")?;
            if !from.contains(&current) {
                return Ok(false);
            }
            // As SQLite's json_set: the key set in the object (a policy
            // that is not an object is left as it is).
            let mut extra: Value = row
                .get::<_, Option<String>>(2)
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_else(|| json!({}));
            if let Some(m) = extra.as_object_mut() {
                m.insert("applied_with".into(), applied_with.clone());
            }
            let at = now();
            db.exec(
                "UPDATE action_plans SET policy = $1, updated_at = $2 WHERE id = $3",
                args![extra.to_string(), at, int(&row, 0)],
            )?;
            if queue {
                db.exec(
                    "UPDATE action_plans SET state = 'PENDING' WHERE id = $1",
                    args![int(&row, 0)],
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
                .map(|r| (int(r, 1), r.get::<_, String>(0)))
                .collect::<std::collections::BTreeMap<i64, String>>()
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

/// The state of plan `uuid` (not deleted), its row locked until the
/// transaction ends.
fn locked_plan_state(
    db: &mut Sql<'_, postgres::Transaction<'_>>,
    uuid: &str,
) -> Result<Option<PlanState>> {
    match db.opt(
        "SELECT id, state FROM action_plans WHERE uuid = $1 AND deleted = 0 FOR UPDATE",
        args![uuid],
    )? {
        Some(row) => Ok(Some(db.enum_col(&row, 1, 0, "action_plans", "state")?)),
        None => Ok(None),
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
        an_unknown_state_read_back_fails_the_whole_batch_writing_nothing
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
            matches!(&r, Err(StoreError::Unknown { value, .. }) if value.table == "actions" && value.column == "state" && value.name.value == "BOGUS"),
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
