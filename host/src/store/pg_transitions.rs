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
