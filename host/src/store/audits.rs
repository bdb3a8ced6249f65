//! Audit templates and audits in the store, with Watcher's state machine
//! (reference section 5.4).

use super::SqliteStore;
use super::columns::enum_col;
use super::{Event, Result, StoreError, append_event, json_col, new_uuid, now};
use crate::states::AuditType;
use crate::states::{AuditState, EventType};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

/// Watcher's audit transitions: from → allowed targets.
pub fn audit_transition_allowed(from: AuditState, to: AuditState) -> bool {
    from.may_become(to)
}

/// More columns an audit's transition sets in the same write.
#[derive(Clone, Debug, Default)]
pub struct AuditChanges {
    /// The host that runs it.
    pub hostname: Option<String>,
    /// CONTINUOUS: the next run (`Some(None)` clears it).
    pub next_run_time: Option<Option<String>>,
    /// CONTINUOUS: a new interval.
    pub interval: Option<String>,
    /// The solution a run found.
    pub solution: Option<AuditSolution>,
}

/// What a run of an audit found, stored with it.
#[derive(Clone, Debug)]
pub struct AuditSolution {
    /// The instantiated actions.
    pub actions: Value,
    /// The efficacy indicators.
    pub efficacy_indicators: Value,
    /// The strategy that found it (its row id).
    pub(in crate::store) strategy_id: i64,
}

impl AuditSolution {
    /// A solution found by `strategy`.
    pub fn new(actions: Value, efficacy_indicators: Value, strategy: &super::StrategyRow) -> Self {
        Self {
            actions,
            efficacy_indicators,
            strategy_id: strategy.id,
        }
    }
}

/// An audit template.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TemplateRow {
    #[serde(skip)]
    pub(in crate::store) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The goal's uuid.
    pub goal_uuid: String,
    /// The goal's name.
    pub goal_name: String,
    /// Whether the goal is no longer provided by any plugin.
    pub goal_vanished: bool,
    /// The strategy's uuid, if any.
    pub strategy_uuid: Option<String>,
    /// The strategy's name, if any.
    pub strategy_name: Option<String>,
    /// The audit scope.
    pub scope: Value,
    /// Default audit parameters.
    pub default_parameters: Value,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
    /// The scheduling policy of the audits made from it: a name, or a
    /// file's absolute path.
    pub policy: Option<String>,
    /// That policy's content as it was when set.
    pub policy_content: Option<Value>,
}

const TEMPLATE_COLS: &str = "t.id, t.uuid, t.name, t.description, g.uuid, g.name, g.deleted, \
    s.uuid, s.name, t.scope, t.default_parameters, t.created_at, t.updated_at, t.policy, \
    t.policy_content";
const TEMPLATE_FROM: &str = "audit_templates t JOIN goals g ON g.id = t.goal_id \
    LEFT JOIN strategies s ON s.id = t.strategy_id";

impl TemplateRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            uuid: r.get(1)?,
            name: r.get(2)?,
            description: r.get(3)?,
            goal_uuid: r.get(4)?,
            goal_name: r.get(5)?,
            goal_vanished: r.get::<_, i64>(6)? != 0,
            strategy_uuid: r.get(7)?,
            strategy_name: r.get(8)?,
            scope: json_col(r.get(9)?),
            default_parameters: json_col(r.get(10)?),
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
            policy: r.get(13)?,
            policy_content: r.get::<_, Option<String>>(14)?.map(json_col),
        })
    }
}

/// A new audit template, validated by the caller.
pub struct NewTemplate<'a> {
    /// Name (unique among templates not deleted).
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Goal uuid or name.
    pub goal: &'a str,
    /// Strategy uuid or name.
    pub strategy: Option<&'a str>,
    /// Scope.
    pub scope: Value,
    /// Default parameters.
    pub default_parameters: Value,
    /// Scheduling policy: a name, or a file's absolute path.
    pub policy: Option<String>,
    /// That policy's content ([`crate::policy::Policy::to_stored`]).
    pub policy_content: Option<String>,
}

/// An audit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditRow {
    #[serde(skip)]
    pub(in crate::store) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// ONESHOT, CONTINUOUS or EVENT.
    pub audit_type: AuditType,
    /// Its state.
    pub state: AuditState,
    /// The goal's uuid.
    pub goal_uuid: String,
    /// The goal's name.
    pub goal_name: String,
    /// The strategy's uuid, if chosen.
    pub strategy_uuid: Option<String>,
    /// The strategy's name, if chosen.
    pub strategy_name: Option<String>,
    /// The template it was made from.
    pub audit_template_uuid: Option<String>,
    /// Parameters, validated, defaults filled in.
    pub parameters: Value,
    /// CONTINUOUS: seconds or a cron expression.
    pub interval: Option<String>,
    /// The scope.
    pub scope: Value,
    /// Start the plan automatically.
    pub auto_trigger: bool,
    /// CONTINUOUS: the next run.
    pub next_run_time: Option<String>,
    /// The host that ran it.
    pub hostname: Option<String>,
    /// CONTINUOUS: not before.
    pub start_time: Option<String>,
    /// CONTINUOUS: not after.
    pub end_time: Option<String>,
    /// Run even when a plan is ONGOING.
    pub force: bool,
    /// The scheduling policy its plans use: a name, or a file's absolute
    /// path.
    pub policy: Option<String>,
    /// That policy's content as it was when the audit was created (what
    /// its plans are made with).
    pub policy_content: Option<Value>,
    /// Why it is in its state.
    pub status_message: Option<String>,
    /// The actions of its solution, as instantiated.
    pub solution: Option<Value>,
    /// The efficacy indicators of its solution.
    pub efficacy_indicators: Value,
    /// The plan it produced.
    pub action_plan: Option<String>,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
}

const AUDIT_COLS: &str = "a.id, a.uuid, a.name, a.audit_type, a.state, g.uuid, g.name, s.uuid, s.name, \
    t.uuid, a.parameters, a.interval, a.scope, a.auto_trigger, a.next_run_time, a.hostname, \
    a.start_time, a.end_time, a.force, a.policy, a.status_message, a.solution, a.efficacy_indicators, \
    (SELECT p.uuid FROM action_plans p WHERE p.audit_id = a.id AND p.deleted = 0 ORDER BY p.id DESC LIMIT 1), \
    a.created_at, a.updated_at, a.policy_content";
const AUDIT_FROM: &str = "audits a JOIN goals g ON g.id = a.goal_id \
    LEFT JOIN strategies s ON s.id = a.strategy_id \
    LEFT JOIN audit_templates t ON t.id = a.audit_template_id";

impl AuditRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            uuid: r.get(1)?,
            name: r.get(2)?,
            audit_type: enum_col(r, 3, 0, "audits", "audit_type")?,
            state: enum_col(r, 4, 0, "audits", "state")?,
            goal_uuid: r.get(5)?,
            goal_name: r.get(6)?,
            strategy_uuid: r.get(7)?,
            strategy_name: r.get(8)?,
            audit_template_uuid: r.get(9)?,
            parameters: json_col(r.get(10)?),
            interval: r.get(11)?,
            scope: json_col(r.get(12)?),
            auto_trigger: r.get::<_, i64>(13)? != 0,
            next_run_time: r.get(14)?,
            hostname: r.get(15)?,
            start_time: r.get(16)?,
            end_time: r.get(17)?,
            force: r.get::<_, i64>(18)? != 0,
            policy: r.get(19)?,
            status_message: r.get(20)?,
            solution: r.get::<_, Option<String>>(21)?.map(json_col),
            efficacy_indicators: json_col(r.get(22)?),
            action_plan: r.get(23)?,
            created_at: r.get(24)?,
            updated_at: r.get(25)?,
            policy_content: r.get::<_, Option<String>>(26)?.map(json_col),
        })
    }
}

/// A new audit, validated by the caller.
pub struct NewAudit {
    /// Name.
    pub name: String,
    /// ONESHOT, CONTINUOUS or EVENT.
    pub audit_type: AuditType,
    /// Goal uuid or name.
    pub goal: String,
    /// Strategy uuid or name.
    pub strategy: Option<String>,
    /// Template uuid.
    pub template: Option<String>,
    /// Validated parameters.
    pub parameters: Value,
    /// CONTINUOUS interval.
    pub interval: Option<String>,
    /// Scope.
    pub scope: Value,
    /// Start its plans automatically.
    pub auto_trigger: bool,
    /// Not before.
    pub start_time: Option<String>,
    /// Not after.
    pub end_time: Option<String>,
    /// Run even when a plan is ONGOING.
    pub force: bool,
    /// Scheduling policy: a name, or a file's absolute path.
    pub policy: Option<String>,
    /// That policy's content ([`crate::policy::Policy::to_stored`]).
    pub policy_content: Option<String>,
}

impl SqliteStore {
    /// Every audit template not deleted (by goal or strategy, uuid or name).
    pub fn templates(&self) -> Result<Vec<TemplateRow>> {
        self.rows(
            &format!(
                "SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.deleted = 0 ORDER BY t.id"
            ),
            [],
            TemplateRow::from_row,
        )
    }

    /// A template by uuid, unique uuid prefix or name (see [`super::ids`]).
    pub fn template(&self, id: &str) -> Result<TemplateRow> {
        let uuid = self.resolve_id(super::ids::IdKind::AuditTemplate, id)?;
        self.conn()
            .query_row(
                &format!(
                    "SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.deleted = 0 AND t.uuid = ?1"
                ),
                [&uuid],
                TemplateRow::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
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
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit_templates (uuid, name, description, goal_id, strategy_id, scope, default_parameters, created_at, \
                 policy, policy_content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
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
        self.write(|tx| {
            tx.execute(
                "UPDATE audit_templates SET deleted = 1, deleted_at = ?1 WHERE id = ?2",
                params![now(), t.id],
            )
        })?;
        Ok(t)
    }

    /// Every audit not deleted.
    pub fn audits(&self) -> Result<Vec<AuditRow>> {
        self.rows(
            &format!("SELECT {AUDIT_COLS} FROM {AUDIT_FROM} WHERE a.deleted = 0 ORDER BY a.id"),
            [],
            AuditRow::from_row,
        )
    }

    /// An audit by uuid, unique uuid prefix or name (the latest of that name).
    pub fn audit(&self, id: &str) -> Result<AuditRow> {
        let uuid = self.resolve_id(super::ids::IdKind::Audit, id)?;
        self.conn()
            .query_row(
                &format!(
                    "SELECT {AUDIT_COLS} FROM {AUDIT_FROM} WHERE a.deleted = 0 AND a.uuid = ?1"
                ),
                [&uuid],
                AuditRow::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "audit",
                id: id.into(),
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
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audits (uuid, name, audit_type, state, parameters, interval, goal_id, strategy_id, \
                 audit_template_id, scope, auto_trigger, start_time, end_time, force, policy, created_at, \
                 policy_content) \
                 VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    uuid,
                    a.name,
                    a.audit_type,
                    a.parameters.to_string(),
                    a.interval,
                    goal.id,
                    strategy,
                    template,
                    a.scope.to_string(),
                    a.auto_trigger as i64,
                    a.start_time,
                    a.end_time,
                    a.force as i64,
                    a.policy,
                    now(),
                    a.policy_content
                ],
            )?;
            append_event(
                tx,
                &Event::state_change(EventType::AuditCreate, &uuid, None, "PENDING")
                    .with_payload(json!({"name": a.name, "audit_type": a.audit_type})),
            )
        })?;
        self.audit(&uuid)
    }

    /// [`super::StoreBackend::write_audit_move`] on SQLite.
    pub(super) fn write_audit_move(
        &mut self,
        current: &AuditRow,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        plan: Option<&super::plans::NewPlan>,
    ) -> Result<bool> {
        let deleting = to == AuditState::Deleted;
        self.write(|tx| {
            // Compare-and-set: another process may have moved it meanwhile.
            let n = tx.execute(
                "UPDATE audits SET state = ?1, status_message = COALESCE(?2, status_message), updated_at = ?3, \
                 deleted = ?4, deleted_at = CASE WHEN ?4 = 1 THEN ?3 ELSE deleted_at END \
                 WHERE id = ?5 AND state = ?6",
                params![to, message, now(), deleting as i64, current.id, current.state],
            )?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(h) = &extra.hostname {
                tx.execute(
                    "UPDATE audits SET hostname = ?1 WHERE id = ?2",
                    params![h, current.id],
                )?;
            }
            if let Some(next) = &extra.next_run_time {
                tx.execute(
                    "UPDATE audits SET next_run_time = ?1 WHERE id = ?2",
                    params![next, current.id],
                )?;
            }
            if let Some(i) = &extra.interval {
                tx.execute(
                    "UPDATE audits SET interval = ?1 WHERE id = ?2",
                    params![i, current.id],
                )?;
            }
            if let Some(sol) = &extra.solution {
                tx.execute(
                    "UPDATE audits SET solution = ?1, efficacy_indicators = ?2, strategy_id = ?3 WHERE id = ?4",
                    params![
                        sol.actions.to_string(),
                        sol.efficacy_indicators.to_string(),
                        sol.strategy_id,
                        current.id
                    ],
                )?;
            }
            if let Some(p) = plan {
                super::plans::insert_plan(tx, p)?;
            }
            if current.state != to {
                append_event(
                    tx,
                    &Event::state_change(
                        EventType::AuditUpdate,
                        &current.uuid,
                        Some(current.state.as_str()),
                        to.as_str(),
                    )
                    .with_payload(json!({"status_message": message})),
                )?;
            }
            Ok(true)
        })
    }
}

impl SqliteStore {
    /// Records a skipped run of a CONTINUOUS audit: its status message and
    /// next run time, with an `audit.update` event (its state unchanged,
    /// `skipped: true`, the plan in the way and its state), in one
    /// transaction. Nothing is written, and false returned, if the audit
    /// is no longer in the state `audit` holds (another process moved it).
    pub fn record_skipped_run(
        &mut self,
        audit: &AuditRow,
        message: &str,
        next_run_time: Option<&str>,
        blocking_plan: (&str, &str),
    ) -> Result<bool> {
        let (plan, plan_state) = blocking_plan;
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE audits SET status_message = ?1, next_run_time = ?2, updated_at = ?3 \
                 WHERE id = ?4 AND state = ?5 AND deleted = 0",
                params![message, next_run_time, now(), audit.id, audit.state],
            )?;
            if n == 1 {
                append_event(
                    tx,
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
                )?;
            }
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(an_audit_moved_meanwhile_is_refused_and_nothing_is_written);

    fn an_audit_moved_meanwhile_is_refused_and_nothing_is_written(mut s: TestStore) {
        s.exec(
            "INSERT INTO goals (uuid, name, display_name, created_at) \
             VALUES ('g', 'dummy', 'Dummy', 't')",
        );
        let a = s
            .create_audit(&NewAudit {
                name: "a".into(),
                audit_type: AuditType::Oneshot,
                goal: "dummy".into(),
                strategy: None,
                template: None,
                parameters: json!({}),
                interval: None,
                scope: json!([]),
                auto_trigger: false,
                start_time: None,
                end_time: None,
                force: false,
                policy: None,
                policy_content: None,
            })
            .expect("audit");
        // Another process's move, as the compare-and-set sees it: the row
        // is no longer in the state read, so the UPDATE changes nothing.
        s.race_updates_where("audits", "NEW.status_message = 'race'");
        let events = s.events(None, 0).expect("events").len();
        let e = s
            .transition_audit(
                &a.uuid,
                AuditState::Ongoing,
                Some("race"),
                &AuditChanges {
                    hostname: Some("h".into()),
                    ..Default::default()
                },
            )
            .expect_err("refused");
        assert!(matches!(e, StoreError::Transition { .. }), "{e}");
        assert!(e.to_string().contains("changed meanwhile"), "{e}");
        let after = s.audit(&a.uuid).expect("audit");
        assert_eq!((after.state, after.hostname), (AuditState::Pending, None));
        assert_eq!(s.events(None, 0).expect("events").len(), events);
    }
}
