//! Flows and alternatives of a plan on PostgreSQL (`flows.rs` on SQLite):
//! the structure written with the plan in its one transaction, and each
//! choice the applier makes about it committed with its event.

use super::flows::{FlowRow, PlanStructure, ScopeRow};
use super::pg::PgStore;
use super::pg_plans::insert_plan;
use super::pg_sql::{Sql, args, flag, int};
use super::plans::{NewPlan, PlanRow};
use super::{Event, Result, StoreError, now};
use crate::states::{EventType, FlowState};
use postgres::Transaction;
use serde_json::Value;

type Tx<'a, 'b> = Sql<'a, Transaction<'b>>;

fn plan_id(db: &mut Tx<'_, '_>, plan_uuid: &str) -> Result<i64> {
    match db.opt(
        "SELECT id FROM action_plans WHERE uuid = $1",
        args![plan_uuid],
    )? {
        Some(r) => Ok(int(&r, 0)),
        None => Err(StoreError::NotFound {
            kind: "action plan",
            id: plan_uuid.into(),
        }),
    }
}

fn event(
    db: &mut Tx<'_, '_>,
    event_type: EventType,
    object: &str,
    plan: &str,
    payload: Value,
) -> Result<()> {
    db.event(
        &Event {
            event_type,
            object_uuid: object,
            action_plan_uuid: Some(plan),
            old_state: None,
            new_state: None,
            payload,
        },
        &now(),
    )
}

pub(super) fn insert_structure(db: &mut Tx<'_, '_>, plan: &str, s: &PlanStructure) -> Result<()> {
    let id = plan_id(db, plan)?;
    for f in &s.flows {
        let (of, rank) = match &f.alternative_of {
            Some((of, r)) => (Some(of.as_str()), *r),
            None => (None, 0),
        };
        db.exec(
            "INSERT INTO plan_flows (action_plan_id, name, parent, on_failure, alternative_of, \
             rank, started) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![id, f.name, f.parent, f.on_failure, of, rank, of.is_none()],
        )?;
    }
    for a in &s.scopes {
        let Some(row) = db.opt(
            "SELECT id FROM actions WHERE action_plan_id = $1 AND name = $2",
            args![id, a.action],
        )?
        else {
            return Err(StoreError::NotFound {
                kind: "action",
                id: a.action.clone(),
            });
        };
        let (primary, rank) = match &a.primary {
            Some((p, r)) => (Some(p.as_str()), *r),
            None => (None, 0),
        };
        db.exec(
            "INSERT INTO plan_action_scopes (action_id, action_plan_id, flow, primary_name, rank, \
             started) VALUES ($1, $2, $3, $4, $5, $6)",
            args![int(&row, 0), id, a.flow, primary, rank, rank == 0],
        )?;
    }
    Ok(())
}

impl PgStore {
    /// Creates a plan with its flows and alternatives, in one transaction.
    pub fn create_plan_with_structure(
        &mut self,
        p: &NewPlan<'_>,
        s: &PlanStructure,
    ) -> Result<PlanRow> {
        let uuid = self.write(|db| {
            let uuid = insert_plan(db, p)?;
            if !s.is_empty() {
                insert_structure(db, &uuid, s)?;
            }
            Ok(uuid)
        })?;
        self.plan(&uuid)
    }

    /// A plan's flows, by name.
    pub fn plan_flows(&self, plan_uuid: &str) -> Result<Vec<FlowRow>> {
        self.read(|db| {
            let rows = db.rows(
                "SELECT f.name, f.parent, f.on_failure, f.state, f.status_message, \
                 f.alternative_of, f.rank, f.started, f.action_plan_id \
                 FROM plan_flows f JOIN action_plans p ON p.id = f.action_plan_id \
                 WHERE p.uuid = $1 ORDER BY f.name COLLATE \"C\"",
                args![plan_uuid],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(FlowRow {
                        name: r.get(0),
                        parent: r.get(1),
                        on_failure: db.enum_col(r, 2, 8, "plan_flows", "on_failure")?,
                        state: db.enum_col(r, 3, 8, "plan_flows", "state")?,
                        status_message: r.get(4),
                        alternative_of: r
                            .get::<_, Option<String>>(5)
                            .map(|f| (f, u32::try_from(int(r, 6)).unwrap_or(0))),
                        started: flag(r, 7),
                    })
                })
                .collect()
        })
    }

    /// The structure rows of a plan's actions.
    pub fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>> {
        self.read(|db| {
            Ok(db
                .rows(
                    "SELECT a.uuid, a.name, s.flow, s.primary_name, s.rank, s.started, s.settled, \
                     s.reverted FROM plan_action_scopes s JOIN actions a ON a.id = s.action_id \
                     JOIN action_plans p ON p.id = s.action_plan_id WHERE p.uuid = $1 \
                     ORDER BY s.action_id",
                    args![plan_uuid],
                )?
                .iter()
                .map(|r| {
                    let primary: Option<String> = r.get(3);
                    let rank = u32::try_from(int(r, 4)).unwrap_or(0);
                    ScopeRow {
                        action_uuid: r.get(0),
                        name: r.get(1),
                        flow: r.get(2),
                        primary: primary.map(|p| (p, rank)),
                        started: flag(r, 5),
                        settled: flag(r, 6),
                        reverted: flag(r, 7),
                    }
                })
                .collect())
        })
    }

    /// Starts alternative `to`, with `action.alternative.start`.
    pub fn start_alternative(
        &mut self,
        plan: &str,
        to: &str,
        message: &str,
        payload: Value,
    ) -> Result<()> {
        self.write(|db| {
            db.exec(
                "UPDATE plan_action_scopes SET started = 1 \
                 WHERE action_id = (SELECT id FROM actions WHERE uuid = $1)",
                args![to],
            )?;
            db.exec(
                "UPDATE actions SET status_message = $1, updated_at = $2 WHERE uuid = $3",
                args![message, now(), to],
            )?;
            event(db, EventType::ActionAlternativeStart, to, plan, payload)
        })
    }

    /// Records that a failed alternative's effects are settled.
    pub fn settle_alternative(&mut self, plan: &str, action: &str, payload: Value) -> Result<()> {
        self.write(|db| {
            db.exec(
                "UPDATE plan_action_scopes SET settled = 1 \
                 WHERE action_id = (SELECT id FROM actions WHERE uuid = $1)",
                args![action],
            )?;
            event(
                db,
                EventType::ActionAlternativeSettled,
                action,
                plan,
                payload,
            )
        })
    }

    /// Moves a flow to `to`, with its event.
    pub fn flow_transition(
        &mut self,
        plan: &str,
        flow: &str,
        to: FlowState,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()> {
        self.write(|db| {
            let id = plan_id(db, plan)?;
            db.exec(
                "UPDATE plan_flows SET state = $1, status_message = COALESCE($2, status_message), \
                 updated_at = $3 WHERE action_plan_id = $4 AND name = $5",
                args![to, message, now(), id, flow],
            )?;
            event(db, event_type, flow, plan, payload)
        })
    }

    /// Starts alternative flow `to`, with `flow.alternative.start`.
    pub fn start_flow_alternative(&mut self, plan: &str, to: &str, payload: Value) -> Result<()> {
        self.write(|db| {
            let id = plan_id(db, plan)?;
            db.exec(
                "UPDATE plan_flows SET started = 1, updated_at = $1 \
                 WHERE action_plan_id = $2 AND name = $3",
                args![now(), id, to],
            )?;
            event(db, EventType::FlowAlternativeStart, to, plan, payload)
        })
    }

    /// Records that a flow's rollback reverted an action (or tried to).
    pub fn flow_reverted(
        &mut self,
        plan: &str,
        action: &str,
        ok: bool,
        message: &str,
    ) -> Result<()> {
        self.write(|db| {
            db.exec(
                "UPDATE plan_action_scopes SET reverted = 1 \
                 WHERE action_id = (SELECT id FROM actions WHERE uuid = $1)",
                args![action],
            )?;
            db.exec(
                "UPDATE actions SET status_message = $1, updated_at = $2 WHERE uuid = $3",
                args![message, now(), action],
            )?;
            event(
                db,
                if ok {
                    EventType::ActionRevertEnd
                } else {
                    EventType::ActionRevertError
                },
                action,
                plan,
                serde_json::json!({"status_message": message}),
            )
        })
    }
}
