//! Action and plan transitions and the event log on PostgreSQL: the same
//! compare-and-set as SQLite's (`apply.rs`), several in one transaction (a
//! group commit), each with its event; an unknown state or event type read
//! back is [`StoreError::Unknown`].

use super::apply::ActionTransition;
use super::pg::{PgStore, pg_error};
use super::{EventRow, Result, StoreError, UnknownValue, json_col, now};
use crate::states::{ActionState, EventType, PlanState, UnknownName};
use std::path::PathBuf;
use std::str::FromStr;

/// `text`, read from `table`'s row `row` of the database at `location`, as
/// an enum `T`.
fn parse_enum<T: FromStr<Err = UnknownName>>(
    location: &str,
    text: &str,
    table: &'static str,
    row: i64,
    column: &'static str,
) -> Result<T> {
    text.parse().map_err(|name| StoreError::Unknown {
        path: PathBuf::from(location),
        value: UnknownValue {
            table,
            row,
            column,
            name,
        },
    })
}

/// The transitions of `batch`, in the caller's transaction.
fn apply_transitions(
    tx: &mut postgres::Transaction<'_>,
    batch: &[ActionTransition],
    location: &str,
) -> Result<Vec<Result<bool>>> {
    let err = |e| pg_error(location, e);
    let at = now();
    let update = tx
        .prepare(
            "UPDATE actions SET state = $1, status_message = COALESCE($2, status_message), \
             outputs = COALESCE($3, outputs), updated_at = $4, execute_failed = $7 \
             WHERE uuid = $5 AND state = $6 AND deleted = 0 RETURNING name",
        )
        .map_err(err)?;
    let read = tx
        .prepare(
            "SELECT x.state, p.uuid, x.id FROM actions x \
             JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.uuid = $1 AND x.deleted = 0 FOR UPDATE OF x",
        )
        .map_err(err)?;
    let event = tx
        .prepare(
            "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
             old_state, new_state, payload) VALUES ($1, $2, 'action', $3, $4, $5, $6, $7)",
        )
        .map_err(err)?;
    let mut results = Vec::with_capacity(batch.len());
    for t in batch {
        let outputs = t.outputs.as_ref().map(crate::json_text);
        let flag = i32::from(t.execute_failed);
        // With its plan and the one state it may be in, the UPDATE alone;
        // else (or when that did not apply) the state is read first.
        let known = match (&t.plan_uuid, t.from.as_slice()) {
            (Some(plan), [from]) => Some((*from, plan.clone())),
            _ => None,
        };
        let mut step = |old: ActionState| {
            tx.query_opt(
                &update,
                &[
                    &t.to.as_str(),
                    &t.message,
                    &outputs,
                    &at,
                    &t.action_uuid,
                    &old.as_str(),
                    &flag,
                ],
            )
            .map_err(err)
        };
        let mut applied = None;
        if let Some((from, plan)) = known
            && let Some(row) = step(from)?
        {
            applied = Some((from, plan, row.get::<_, String>(0)));
        }
        if applied.is_none() {
            let Some(row) = tx.query_opt(&read, &[&t.action_uuid]).map_err(err)? else {
                results.push(Err(StoreError::NotFound {
                    kind: "action",
                    id: t.action_uuid.clone(),
                }));
                continue;
            };
            let text: String = row.get(0);
            let state: ActionState = parse_enum(location, &text, "actions", row.get(2), "state")?;
            if !t.from.contains(&state) {
                results.push(Ok(false));
                continue;
            }
            let plan: String = row.get(1);
            match tx
                .query_opt(
                    &update,
                    &[
                        &t.to.as_str(),
                        &t.message,
                        &outputs,
                        &at,
                        &t.action_uuid,
                        &state.as_str(),
                        &flag,
                    ],
                )
                .map_err(err)?
            {
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
        let payload = serde_json::json!({"name": name, "status_message": t.message});
        tx.execute(
            &event,
            &[
                &at,
                &t.event_type.as_str(),
                &t.action_uuid,
                &plan,
                &old.as_str(),
                &t.to.as_str(),
                &payload.to_string(),
            ],
        )
        .map_err(err)?;
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
        let location = self.location().to_string();
        let mut tx = self
            .client()
            .transaction()
            .map_err(|e| pg_error(&location, e))?;
        let results = apply_transitions(&mut tx, batch, &location)?;
        tx.commit().map_err(|e| pg_error(&location, e))?;
        Ok(results)
    }

    /// A plan's state, by full uuid: cheap enough to poll.
    pub fn plan_state(&mut self, uuid: &str) -> Result<PlanState> {
        let location = self.location().to_string();
        let row = self
            .client()
            .query_opt(
                "SELECT id, state FROM action_plans WHERE uuid = $1 AND deleted = 0",
                &[&uuid],
            )
            .map_err(|e| pg_error(&location, e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: uuid.into(),
            })?;
        let text: String = row.get(1);
        parse_enum(&location, &text, "action_plans", row.get(0), "state")
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
        let location = self.location().to_string();
        let err = |e| pg_error(&location, e);
        let mut tx = self.client().transaction().map_err(err)?;
        let row = tx
            .query_opt(
                "SELECT id, state FROM action_plans WHERE uuid = $1 AND deleted = 0 FOR UPDATE",
                &[&plan_uuid],
            )
            .map_err(err)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: plan_uuid.into(),
            })?;
        let text: String = row.get(1);
        let current: PlanState = parse_enum(&location, &text, "action_plans", row.get(0), "state")?;
        if !from.contains(&current) {
            return Ok(false);
        }
        let at = now();
        let n = tx
            .execute(
                "UPDATE action_plans SET state = $1, status_message = COALESCE($2, status_message), \
                 updated_at = $3 WHERE uuid = $4 AND state = $5",
                &[&to.as_str(), &message, &at, &plan_uuid, &current.as_str()],
            )
            .map_err(err)?;
        if n == 1 {
            tx.execute(
                "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
                 old_state, new_state, payload) VALUES ($1, $2, 'action_plan', $3, $3, $4, $5, $6)",
                &[
                    &at,
                    &event_type.as_str(),
                    &plan_uuid,
                    &current.as_str(),
                    &to.as_str(),
                    &serde_json::json!({"status_message": message}).to_string(),
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n == 1)
    }

    /// Appends an event that changes no state (`action.execution.start`, …).
    pub fn note(
        &mut self,
        event_type: EventType,
        uuid: &str,
        plan: Option<&str>,
        payload: serde_json::Value,
    ) -> Result<()> {
        let location = self.location().to_string();
        let payload = if payload.is_null() {
            "{}".to_string()
        } else {
            crate::json_text(&payload)
        };
        self.client()
            .execute(
                "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
                 old_state, new_state, payload) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)",
                &[
                    &now(),
                    &event_type.as_str(),
                    &event_type.object_type().as_str(),
                    &uuid,
                    &plan,
                    &payload,
                ],
            )
            .map_err(|e| pg_error(&location, e))?;
        Ok(())
    }

    /// The id of the newest event, 0 when there is none.
    pub fn last_event_id(&mut self) -> Result<i64> {
        let location = self.location().to_string();
        Ok(self
            .client()
            .query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM events", &[])
            .map_err(|e| pg_error(&location, e))?
            .get(0))
    }

    /// The event log, oldest first, optionally of one action plan, after
    /// event id `after`.
    pub fn events(&mut self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>> {
        let location = self.location().to_string();
        let rows = self
            .client()
            .query(
                "SELECT id, at, event_type, object_type, object_uuid, action_plan_uuid, \
                 old_state, new_state, payload FROM events \
                 WHERE id > $1 AND ($2::text IS NULL OR action_plan_uuid = $2) ORDER BY id",
                &[&after, &plan],
            )
            .map_err(|e| pg_error(&location, e))?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let event_type: String = r.get(2);
                Ok(EventRow {
                    id,
                    at: r.get(1),
                    event_type: parse_enum(&location, &event_type, "events", id, "event_type")?,
                    object_type: r.get(3),
                    object_uuid: r.get(4),
                    action_plan_uuid: r.get(5),
                    old_state: r.get(6),
                    new_state: r.get(7),
                    payload: json_col(r.get(8)),
                })
            })
            .collect()
    }
}
