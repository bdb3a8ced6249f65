//! Audit templates and audits on PostgreSQL (`audits.rs` on SQLite), with
//! Watcher's state machine: every move a compare-and-set with its event.

use super::audits::{AuditChanges, AuditRow, NewAudit, NewTemplate, TemplateRow};
use super::pg::PgStore;
use super::pg_sql::{PgRow, Sql, args, flag, int};
use super::plans::NewPlan;
use super::{Event, Result, StoreError, json_col, new_uuid, now};
use crate::states::{AuditState, EventType};
use serde_json::json;

const TEMPLATE_COLS: &str = "t.id, t.uuid, t.name, t.description, g.uuid, g.name, g.deleted, \
    s.uuid, s.name, t.scope, t.default_parameters, t.created_at, t.updated_at, t.policy, \
    t.policy_content";
const TEMPLATE_FROM: &str = "audit_templates t JOIN goals g ON g.id = t.goal_id \
    LEFT JOIN strategies s ON s.id = t.strategy_id";

fn template_from_row(r: &PgRow) -> Result<TemplateRow> {
    Ok(TemplateRow {
        id: int(r, 0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        goal_uuid: r.get(4)?,
        goal_name: r.get(5)?,
        goal_vanished: flag(r, 6)?,
        strategy_uuid: r.get(7)?,
        strategy_name: r.get(8)?,
        scope: json_col(r.get(9)?),
        default_parameters: json_col(r.get(10)?),
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        policy: r.get(13)?,
        policy_content: r.get::<Option<String>>(14)?.map(json_col),
    })
}

const AUDIT_COLS: &str = "a.id, a.uuid, a.name, a.audit_type, a.state, g.uuid, g.name, s.uuid, s.name, \
    t.uuid, a.parameters, a.\"interval\", a.scope, a.auto_trigger, a.next_run_time, a.hostname, \
    a.start_time, a.end_time, a.force, a.policy, a.status_message, a.solution, a.efficacy_indicators, \
    (SELECT p.uuid FROM action_plans p WHERE p.audit_id = a.id AND p.deleted = 0 ORDER BY p.id DESC LIMIT 1), \
    a.created_at, a.updated_at, a.policy_content";
const AUDIT_FROM: &str = "audits a JOIN goals g ON g.id = a.goal_id \
    LEFT JOIN strategies s ON s.id = a.strategy_id \
    LEFT JOIN audit_templates t ON t.id = a.audit_template_id";

fn audit_from_row<C: postgres::GenericClient>(db: &Sql<'_, C>, r: &PgRow) -> Result<AuditRow> {
    Ok(AuditRow {
        id: int(r, 0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        audit_type: db.enum_col(r, 3, 0, "audits", "audit_type")?,
        state: db.enum_col(r, 4, 0, "audits", "state")?,
        goal_uuid: r.get(5)?,
        goal_name: r.get(6)?,
        strategy_uuid: r.get(7)?,
        strategy_name: r.get(8)?,
        audit_template_uuid: r.get(9)?,
        parameters: json_col(r.get(10)?),
        interval: r.get(11)?,
        scope: json_col(r.get(12)?),
        auto_trigger: flag(r, 13)?,
        next_run_time: r.get(14)?,
        hostname: r.get(15)?,
        start_time: r.get(16)?,
        end_time: r.get(17)?,
        force: flag(r, 18)?,
        policy: r.get(19)?,
        status_message: r.get(20)?,
        solution: r.get::<Option<String>>(21)?.map(json_col),
        efficacy_indicators: json_col(r.get(22)?),
        action_plan: r.get(23)?,
        created_at: r.get(24)?,
        updated_at: r.get(25)?,
        policy_content: r.get::<Option<String>>(26)?.map(json_col),
    })
}

impl PgStore {
    /// Every audit template not deleted.
    pub fn templates(&self) -> Result<Vec<TemplateRow>> {
        self.read(|db| {
            db.rows(
                &format!(
                    "SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.deleted = 0 ORDER BY t.id"
                ),
                &[],
            )?
            .iter()
            .map(template_from_row)
            .collect::<Result<_>>()
        })
    }

    /// A template by uuid, unique uuid prefix or name.
    pub fn template(&self, id: &str) -> Result<TemplateRow> {
        let uuid = self.resolve_id(super::ids::IdKind::AuditTemplate, id)?;
        self.read(|db| {
            db.opt(
                &format!(
                    "SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.deleted = 0 AND t.uuid = $1"
                ),
                args![uuid],
            )
        })?
        .map(|r| template_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "audit template",
            id: id.into(),
        })
    }

    /// Creates a template; returns it.
    pub fn create_template(&mut self, t: &NewTemplate<'_>) -> Result<TemplateRow> {
        let goal = self.goal(t.goal)?;
        let strategy = match t.strategy {
            Some(s) => Some(self.strategy(s)?.id),
            None => None,
        };
        let uuid = new_uuid();
        self.write(|db| {
            db.exec(
                "INSERT INTO audit_templates (uuid, name, description, goal_id, strategy_id, scope, \
                 default_parameters, created_at, policy, policy_content) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                args![
                    uuid,
                    t.name,
                    t.description,
                    goal.id,
                    strategy,
                    t.scope.to_string(),
                    t.default_parameters.to_string(),
                    now(),
                    t.policy,
                    t.policy_content
                ],
            )
        })?;
        self.template(&uuid)
    }

    /// Soft-deletes a template.
    pub fn delete_template(&mut self, id: &str) -> Result<TemplateRow> {
        let t = self.template(id)?;
        self.write(|db| {
            db.exec(
                "UPDATE audit_templates SET deleted = 1, deleted_at = $1 WHERE id = $2",
                args![now(), t.id],
            )
        })?;
        Ok(t)
    }

    /// Every audit not deleted.
    pub fn audits(&self) -> Result<Vec<AuditRow>> {
        self.read(|db| {
            let rows = db.rows(
                &format!("SELECT {AUDIT_COLS} FROM {AUDIT_FROM} WHERE a.deleted = 0 ORDER BY a.id"),
                &[],
            )?;
            rows.iter().map(|r| audit_from_row(db, r)).collect()
        })
    }

    /// An audit by uuid, unique uuid prefix or name.
    pub fn audit(&self, id: &str) -> Result<AuditRow> {
        let uuid = self.resolve_id(super::ids::IdKind::Audit, id)?;
        self.read(|db| {
            let row = db
                .opt(
                    &format!(
                        "SELECT {AUDIT_COLS} FROM {AUDIT_FROM} WHERE a.deleted = 0 AND a.uuid = $1"
                    ),
                    args![uuid],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "audit",
                    id: id.into(),
                })?;
            audit_from_row(db, &row)
        })
    }

    /// Creates an audit in state PENDING, with its event.
    pub fn create_audit(&mut self, a: &NewAudit) -> Result<AuditRow> {
        let goal = self.goal(&a.goal)?;
        let strategy = match &a.strategy {
            Some(s) => Some(self.strategy(s)?.id),
            None => None,
        };
        let template = match &a.template {
            Some(t) => Some(self.template(t)?.id),
            None => None,
        };
        let uuid = new_uuid();
        self.write(|db| {
            let at = now();
            db.exec(
                "INSERT INTO audits (uuid, name, audit_type, state, parameters, \"interval\", goal_id, \
                 strategy_id, audit_template_id, scope, auto_trigger, start_time, end_time, force, \
                 policy, created_at, policy_content) \
                 VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                args![
                    uuid,
                    a.name,
                    a.audit_type,
                    a.parameters.to_string(),
                    a.interval,
                    goal.id,
                    strategy,
                    template,
                    a.scope.to_string(),
                    a.auto_trigger,
                    a.start_time,
                    a.end_time,
                    a.force,
                    a.policy,
                    at,
                    a.policy_content
                ],
            )?;
            db.event(
                &Event::state_change(EventType::AuditCreate, &uuid, None, "PENDING")
                    .with_payload(json!({"name": a.name, "audit_type": a.audit_type})),
                &at,
            )
        })?;
        self.audit(&uuid)
    }

    /// [`super::StoreBackend::write_audit_move`] on PostgreSQL.
    pub fn write_audit_move(
        &mut self,
        current: &AuditRow,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        plan: Option<&NewPlan<'_>>,
    ) -> Result<bool> {
        let deleting = to == AuditState::Deleted;
        self.write(|db| {
            let at = now();
            // Compare-and-set: another process may have moved it meanwhile.
            let n = db.exec(
                "UPDATE audits SET state = $1, status_message = COALESCE($2, status_message), \
                 updated_at = $3, deleted = $4, \
                 deleted_at = CASE WHEN $4 = 1 THEN $3 ELSE deleted_at END \
                 WHERE id = $5 AND state = $6",
                args![to, message, at, deleting, current.id, current.state],
            )?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(h) = &extra.hostname {
                db.exec(
                    "UPDATE audits SET hostname = $1 WHERE id = $2",
                    args![h, current.id],
                )?;
            }
            if let Some(next) = &extra.next_run_time {
                db.exec(
                    "UPDATE audits SET next_run_time = $1 WHERE id = $2",
                    args![next, current.id],
                )?;
            }
            if let Some(i) = &extra.interval {
                db.exec(
                    "UPDATE audits SET \"interval\" = $1 WHERE id = $2",
                    args![i, current.id],
                )?;
            }
            if let Some(sol) = &extra.solution {
                db.exec(
                    "UPDATE audits SET solution = $1, efficacy_indicators = $2, strategy_id = $3 \
                     WHERE id = $4",
                    args![
                        sol.actions.to_string(),
                        sol.efficacy_indicators.to_string(),
                        sol.strategy_id,
                        current.id
                    ],
                )?;
            }
            if let Some(p) = plan {
                super::pg_plans::insert_plan(db, p)?;
            }
            if current.state != to {
                db.event(
                    &Event::state_change(
                        EventType::AuditUpdate,
                        &current.uuid,
                        Some(current.state.as_str()),
                        to.as_str(),
                    )
                    .with_payload(json!({"status_message": message})),
                    &at,
                )?;
            }
            Ok(true)
        })
    }

    /// Records a skipped run of a CONTINUOUS audit (see `StoreBackend`).
    pub fn record_skipped_run(
        &mut self,
        audit: &AuditRow,
        message: &str,
        next_run_time: Option<&str>,
        blocking_plan: (&str, &str),
    ) -> Result<bool> {
        let (plan, plan_state) = blocking_plan;
        self.write(|db| {
            let at = now();
            let n = db.exec(
                "UPDATE audits SET status_message = $1, next_run_time = $2, updated_at = $3 \
                 WHERE id = $4 AND state = $5 AND deleted = 0",
                args![message, next_run_time, at, audit.id, audit.state],
            )?;
            if n == 1 {
                db.event(
                    &Event::state_change(
                        EventType::AuditUpdate,
                        &audit.uuid,
                        Some(audit.state.as_str()),
                        audit.state.as_str(),
                    )
                    .with_payload(json!({
                        "status_message": message,
                        "skipped": true,
                        "action_plan": plan,
                        "action_plan_state": plan_state,
                        "next_run_time": next_run_time,
                    })),
                    &at,
                )?;
            }
            Ok(n == 1)
        })
    }
}
