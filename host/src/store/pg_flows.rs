//! Flows and alternatives of a plan on PostgreSQL (`flows.rs` on SQLite):
//! the structure written with the plan in its one transaction, and each
//! choice the applier makes about it committed with its event.

use super::flows::{FlowChange, FlowRow, PlanStructure, ScopeMark, ScopeRow};
use super::pg::PgStore;
use super::pg_plans::insert_plan;
use super::pg_sql::{Sql, args, flag, int};
use super::plans::NewPlan;
use super::{Event, Result, StoreError, now};
use crate::states::EventType;
use postgres::Transaction;
use serde_json::Value;

type Tx<'a, 'b> = Sql<'a, Transaction<'b>>;

fn plan_id(db: &mut Tx<'_, '_>, plan_uuid: &str) -> Result<Option<i64>> {
    db.opt(
        "SELECT id FROM action_plans WHERE uuid = $1",
        args![plan_uuid],
    )?
    .map(|r| int(&r, 0))
    .transpose()
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
    let id = plan_id(db, plan)?.ok_or_else(|| StoreError::NotFound {
        kind: "action plan",
        id: plan.into(),
    })?;
    for f in &s.flows {
        let (of, rank, started) = f.stored_alternative();
        db.exec(
            "INSERT INTO plan_flows (action_plan_id, name, parent, on_failure, alternative_of, \
             rank, started) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![id, f.name, f.parent, f.on_failure, of, rank, started],
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
        let (primary, rank, started) = a.stored_primary();
        db.exec(
            "INSERT INTO plan_action_scopes (action_id, action_plan_id, flow, primary_name, rank, \
             started) VALUES ($1, $2, $3, $4, $5, $6)",
            args![int(&row, 0)?, id, a.flow, primary, rank, started],
        )?;
    }
    Ok(())
}

impl PgStore {
    /// Stores a plan with its flows and alternatives, in one transaction;
    /// returns its uuid.
    pub fn write_plan_with_structure(
        &mut self,
        p: &NewPlan<'_>,
        s: &PlanStructure,
    ) -> Result<String> {
        self.write(|db| {
            let uuid = insert_plan(db, p)?;
            if !s.is_empty() {
                insert_structure(db, &uuid, s)?;
            }
            Ok(uuid)
        })
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
                        name: r.get(0)?,
                        parent: r.get(1)?,
                        on_failure: db.enum_col(r, 2, 8, "plan_flows", "on_failure")?,
                        state: db.enum_col(r, 3, 8, "plan_flows", "state")?,
                        status_message: r.get(4)?,
                        alternative_of: match r.get::<Option<String>>(5)? {
                            Some(f) => Some((f, u32::try_from(int(r, 6)?).unwrap_or(0))),
                            None => None,
                        },
                        started: flag(r, 7)?,
                    })
                })
                .collect()
        })
    }

    /// The structure rows of a plan's actions.
    pub fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>> {
        self.read(|db| {
            db.rows(
                "SELECT a.uuid, a.name, s.flow, s.primary_name, s.rank, s.started, s.settled, \
                     s.reverted FROM plan_action_scopes s JOIN actions a ON a.id = s.action_id \
                     JOIN action_plans p ON p.id = s.action_plan_id WHERE p.uuid = $1 \
                     ORDER BY s.action_id",
                args![plan_uuid],
            )?
            .iter()
            .map(|r| {
                let primary: Option<String> = r.get(3)?;
                let rank = u32::try_from(int(r, 4)?).unwrap_or(0);
                Ok(ScopeRow {
                    action_uuid: r.get(0)?,
                    name: r.get(1)?,
                    flow: r.get(2)?,
                    primary: primary.map(|p| (p, rank)),
                    started: flag(r, 5)?,
                    settled: flag(r, 6)?,
                    reverted: flag(r, 7)?,
                })
            })
            .collect::<Result<_>>()
        })
    }

    /// Marks action `action` of plan `plan` with `mark`, sets its status
    /// message to `message` if any, and appends the event `event_type`, in
    /// one transaction; with `owner`, fenced by the plan's lease
    /// (`pg_lease::fence`).
    #[allow(clippy::too_many_arguments)]
    pub fn write_scope_mark(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        action: &str,
        mark: ScopeMark,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()> {
        self.write(|db| {
            super::pg_lease::fence(db, plan, owner)?;
            db.exec(
                &format!(
                    "UPDATE plan_action_scopes SET {} = 1 \
                     WHERE action_id = (SELECT id FROM actions WHERE uuid = $1)",
                    mark.column()
                ),
                args![action],
            )?;
            if let Some(message) = message {
                db.exec(
                    "UPDATE actions SET status_message = $1, updated_at = $2 WHERE uuid = $3",
                    args![message, now(), action],
                )?;
            }
            event(db, event_type, action, plan, payload)
        })
    }

    /// Changes flow `flow` of plan `plan` and appends the event
    /// `event_type`, in one transaction; false (nothing written) when the
    /// plan is not stored. With `owner`, fenced by the plan's lease
    /// (`pg_lease::fence`).
    pub fn write_flow_change(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        flow: &str,
        change: FlowChange<'_>,
        event_type: EventType,
        payload: Value,
    ) -> Result<bool> {
        self.write(|db| {
            let Some(id) = plan_id(db, plan)? else {
                return Ok(false);
            };
            super::pg_lease::fence(db, plan, owner)?;
            match change {
                FlowChange::State { to, message } => db.exec(
                    "UPDATE plan_flows SET state = $1, status_message = COALESCE($2, status_message), \
                     updated_at = $3 WHERE action_plan_id = $4 AND name = $5",
                    args![to, message, now(), id, flow],
                )?,
                FlowChange::Started => db.exec(
                    "UPDATE plan_flows SET started = 1, updated_at = $1 \
                     WHERE action_plan_id = $2 AND name = $3",
                    args![now(), id, flow],
                )?,
            };
            event(db, event_type, flow, plan, payload).map(|()| true)
        })
    }
}
