//! What an operator does to stored objects after they are made, on
//! PostgreSQL (`lifecycle.rs` on SQLite, which also holds the rules):
//! writing a plan's deletion, a change to an audit template, purging old
//! events. Each is one transaction; a refusal writes nothing.

use super::audits::TemplateRow;
use super::lifecycle::TemplateChange;
use super::pg::PgStore;
use super::pg_sql::args;
use super::plans::PlanRow;
use super::{Event, Result, now};
use crate::states::EventType;

impl PgStore {
    /// Compare-and-set of plan `p` from its state (as read) to DELETED at
    /// `at`, with its actions and efficacy indicators, and their events.
    pub fn write_plan_delete(&mut self, p: &PlanRow, at: &str) -> Result<bool> {
        self.write(|db| {
            // Compare-and-set: an applier elsewhere may have moved it.
            let n = db.exec(
                "UPDATE action_plans SET state = 'DELETED', deleted = 1, deleted_at = $1, \
                 updated_at = $1 WHERE id = $2 AND state = $3 AND deleted = 0",
                args![at, p.id, p.state],
            )?;
            if n == 0 {
                return Ok(false);
            }
            db.event(
                &Event::state_change(
                    EventType::PlanDelete,
                    &p.uuid,
                    Some(p.state.as_str()),
                    "DELETED",
                )
                .in_plan(&p.uuid),
                at,
            )?;
            db.exec(
                "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
                 old_state, new_state, payload) \
                 SELECT $1, 'action.delete', 'action', uuid, $2, state, 'DELETED', '{}' FROM actions \
                 WHERE action_plan_id = $3 AND deleted = 0 ORDER BY id",
                args![at, p.uuid, p.id],
            )?;
            db.exec(
                "UPDATE actions SET state = 'DELETED', deleted = 1, deleted_at = $1, updated_at = $1 \
                 WHERE action_plan_id = $2 AND deleted = 0",
                args![at, p.id],
            )?;
            db.exec(
                "UPDATE efficacy_indicators SET deleted = 1, deleted_at = $1 \
                 WHERE action_plan_id = $2 AND deleted = 0",
                args![at, p.id],
            )?;
            Ok(true)
        })
    }

    /// Writes `change` to template `t` (as read), with its `updated_at`.
    pub fn write_template_change(
        &mut self,
        t: &TemplateRow,
        change: &TemplateChange<'_>,
    ) -> Result<()> {
        let (set_policy, policy, content) = change.policy_columns();
        self.write(|db| {
            db.exec(
                "UPDATE audit_templates SET name = COALESCE($1, name), \
                 description = COALESCE($2, description), \
                 policy = CASE WHEN $3 THEN $4 ELSE policy END, \
                 policy_content = CASE WHEN $3 THEN $5 ELSE policy_content END, updated_at = $6 \
                 WHERE id = $7",
                args![
                    change.name,
                    change.description,
                    set_policy,
                    policy,
                    content,
                    now(),
                    t.id
                ],
            )
        })?;
        Ok(())
    }

    /// Deletes the events older than `before`, except those of plans and
    /// audits not ended, and the newest event of all.
    pub fn purge_events(&mut self, before: &str) -> Result<usize> {
        let n = self.write(|db| {
            db.exec(
                "DELETE FROM events WHERE at < $1 \
                 AND id < (SELECT max(id) FROM events) \
                 AND (action_plan_uuid IS NULL OR action_plan_uuid NOT IN \
                      (SELECT uuid FROM action_plans WHERE deleted = 0 \
                       AND state IN ('RECOMMENDED', 'PENDING', 'ONGOING', 'CANCELLING'))) \
                 AND NOT (object_type = 'audit' AND object_uuid IN \
                      (SELECT uuid FROM audits WHERE deleted = 0 \
                       AND state IN ('PENDING', 'ONGOING', 'SUSPENDED')))",
                args![before],
            )
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
