//! Action plans and their actions in the store.
//!
//! A plan is written in one transaction with all its actions (parents as
//! uuids), its efficacy indicators, and an event per object created.

use super::{
    Event, Result, Store, StoreError, append_event, append_event_at, json_col, new_uuid, now,
};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// One action of a new plan.
#[derive(Clone, Debug)]
pub struct NewPlanAction {
    /// Its name within the plan (the solution's id for it).
    pub name: String,
    /// Its action type.
    pub action_type: String,
    /// The action-type version it was instantiated with.
    pub action_type_version: String,
    /// Its parameters.
    pub input_parameters: Value,
    /// Names of the actions it waits for.
    pub parents: Vec<String>,
    /// Its initial state (PENDING unless imported otherwise).
    pub state: String,
}

/// A new plan.
#[derive(Clone, Debug, Default)]
pub struct NewPlan {
    /// The audit that produced it.
    pub audit_uuid: Option<String>,
    /// The strategy that produced it.
    pub strategy_uuid: Option<String>,
    /// The planner that scheduled it.
    pub planner: Option<String>,
    /// RECOMMENDED, or SUCCEEDED when empty.
    pub state: String,
    /// Global efficacy.
    pub global_efficacy: Value,
    /// Efficacy indicators: `[{name, description, unit, value}]`.
    pub efficacy_indicators: Value,
    /// The actions, in creation order.
    pub actions: Vec<NewPlanAction>,
    /// The policy and the planner's extras (pools, priorities), as
    /// `{"policy": …, "planner": …}`.
    pub extra: Value,
}

/// Inserts a plan and its actions inside the caller's transaction; returns
/// the plan's uuid.
pub fn insert_plan(tx: &Transaction<'_>, p: &NewPlan) -> rusqlite::Result<String> {
    let uuid = new_uuid();
    let audit_id: Option<i64> = match &p.audit_uuid {
        Some(a) => tx
            .query_row("SELECT id FROM audits WHERE uuid = ?1", [a], |r| r.get(0))
            .optional()?,
        None => None,
    };
    let strategy_id: Option<i64> = match &p.strategy_uuid {
        Some(s) => tx
            .query_row("SELECT id FROM strategies WHERE uuid = ?1", [s], |r| {
                r.get(0)
            })
            .optional()?,
        None => None,
    };
    let policy = if p.extra.is_null() {
        None
    } else {
        Some(p.extra.to_string())
    };
    tx.execute(
        "INSERT INTO action_plans (uuid, audit_id, strategy_id, state, global_efficacy, planner, policy, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            uuid,
            audit_id,
            strategy_id,
            p.state,
            if p.global_efficacy.is_null() { "[]".to_string() } else { p.global_efficacy.to_string() },
            p.planner,
            policy,
            now()
        ],
    )?;
    let plan_id = tx.last_insert_rowid();
    append_event(
        tx,
        &Event::state_change("action_plan.create", "action_plan", &uuid, None, &p.state)
            .in_plan(&uuid)
            .with_payload(json!({"audit": p.audit_uuid, "planner": p.planner})),
    )?;
    let uuids: HashMap<&str, String> = p
        .actions
        .iter()
        .map(|a| (a.name.as_str(), new_uuid()))
        .collect();
    let mut st = tx.prepare_cached(
        "INSERT INTO actions (uuid, action_plan_id, name, action_type, action_type_version, input_parameters, state, parents, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let created = now();
    for a in &p.actions {
        let parents: Vec<&String> = a
            .parents
            .iter()
            .filter_map(|n| uuids.get(n.as_str()))
            .collect();
        let au = &uuids[a.name.as_str()];
        st.execute(params![
            au,
            plan_id,
            a.name,
            a.action_type,
            a.action_type_version,
            a.input_parameters.to_string(),
            a.state,
            serde_json::to_string(&parents).unwrap_or_else(|_| "[]".into()),
            created
        ])?;
        append_event_at(
            tx,
            &Event::state_change("action.create", "action", au, None, &a.state).in_plan(&uuid),
            &created,
        )?;
    }
    if let Some(list) = p.efficacy_indicators.as_array() {
        for ind in list {
            tx.execute(
                "INSERT INTO efficacy_indicators (uuid, action_plan_id, name, description, unit, value, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new_uuid(),
                    plan_id,
                    ind["name"].as_str().unwrap_or(""),
                    ind["description"].as_str().unwrap_or(""),
                    ind["unit"].as_str(),
                    ind["value"].as_f64(),
                    now()
                ],
            )?;
        }
    }
    Ok(uuid)
}

/// An action plan.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlanRow {
    #[serde(skip)]
    pub(crate) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its state.
    pub state: String,
    /// The audit that produced it.
    pub audit_uuid: Option<String>,
    /// The strategy that produced it.
    pub strategy_uuid: Option<String>,
    /// The strategy's name.
    pub strategy_name: Option<String>,
    /// The planner that scheduled it.
    pub planner: Option<String>,
    /// Global efficacy.
    pub global_efficacy: Value,
    /// Efficacy indicators.
    pub efficacy_indicators: Vec<Value>,
    /// Why it is in its state.
    pub status_message: Option<String>,
    /// How many actions it has.
    pub actions: i64,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
}

/// An action of a plan.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ActionRow {
    /// Its uuid.
    pub uuid: String,
    /// Its name within the plan.
    pub name: String,
    /// The plan's uuid.
    pub action_plan_uuid: String,
    /// Its action type.
    pub action_type: String,
    /// The action-type version it was instantiated with.
    pub action_type_version: String,
    /// Its parameters.
    pub input_parameters: Value,
    /// Its state.
    pub state: String,
    /// Uuids of the actions it waits for.
    pub parents: Vec<String>,
    /// What `execute` returned.
    pub outputs: Option<Value>,
    /// Why it is in its state.
    pub status_message: Option<String>,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
}

const PLAN_COLS: &str = "p.id, p.uuid, p.state, a.uuid, s.uuid, s.name, p.planner, p.global_efficacy, \
    p.status_message, (SELECT count(*) FROM actions x WHERE x.action_plan_id = p.id AND x.deleted = 0), \
    p.created_at, p.updated_at";
const PLAN_FROM: &str = "action_plans p LEFT JOIN audits a ON a.id = p.audit_id \
    LEFT JOIN strategies s ON s.id = p.strategy_id";

const ACTION_COLS: &str = "x.uuid, x.name, p.uuid, x.action_type, x.action_type_version, x.input_parameters, \
    x.state, x.parents, x.outputs, x.status_message, x.created_at, x.updated_at";

impl Store {
    fn plan_from_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<PlanRow> {
        Ok(PlanRow {
            id: r.get(0)?,
            uuid: r.get(1)?,
            state: r.get(2)?,
            audit_uuid: r.get(3)?,
            strategy_uuid: r.get(4)?,
            strategy_name: r.get(5)?,
            planner: r.get(6)?,
            global_efficacy: json_col(r.get(7)?),
            efficacy_indicators: Vec::new(),
            status_message: r.get(8)?,
            actions: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
        })
    }

    fn with_indicators(&self, mut p: PlanRow) -> Result<PlanRow> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT name, description, unit, value FROM efficacy_indicators \
                 WHERE action_plan_id = ?1 AND deleted = 0 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        p.efficacy_indicators = st
            .query_map([p.id], |r| {
                Ok(json!({
                    "name": r.get::<_, String>(0)?,
                    "description": r.get::<_, String>(1)?,
                    "unit": r.get::<_, Option<String>>(2)?,
                    "value": r.get::<_, Option<f64>>(3)?,
                }))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))?;
        Ok(p)
    }

    /// Every plan not deleted, optionally of one audit (uuid or name).
    pub fn plans(&self, audit: Option<&str>) -> Result<Vec<PlanRow>> {
        let audit_id = match audit {
            Some(a) => Some(self.audit(a)?.id),
            None => None,
        };
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {PLAN_COLS} FROM {PLAN_FROM} WHERE p.deleted = 0 AND (?1 IS NULL OR p.audit_id = ?1) ORDER BY p.id"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<PlanRow> = st
            .query_map(params![audit_id], |r| self.plan_from_row(r))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|p| self.with_indicators(p)).collect()
    }

    /// A plan by uuid (or a unique uuid prefix).
    pub fn plan(&self, id: &str) -> Result<PlanRow> {
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {PLAN_COLS} FROM {PLAN_FROM} WHERE p.deleted = 0 AND p.uuid LIKE ?1 || '%' ORDER BY p.id LIMIT 2"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<PlanRow> = if id.is_empty() {
            Vec::new()
        } else {
            st.query_map([id], |r| self.plan_from_row(r))
                .and_then(Iterator::collect)
                .map_err(|e| self.err(e))?
        };
        match rows.len() {
            1 => self.with_indicators(rows.into_iter().next().ok_or_else(|| {
                StoreError::NotFound {
                    kind: "action plan",
                    id: id.into(),
                }
            })?),
            0 => Err(StoreError::NotFound {
                kind: "action plan",
                id: id.into(),
            }),
            _ => Err(StoreError::NotFound {
                kind: "action plan (the prefix is ambiguous)",
                id: id.into(),
            }),
        }
    }

    /// A plan's state, by full uuid: cheap enough to poll.
    pub fn plan_state(&self, uuid: &str) -> Result<String> {
        self.conn()
            .prepare_cached("SELECT state FROM action_plans WHERE uuid = ?1 AND deleted = 0")
            .and_then(|mut st| st.query_row([uuid], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: uuid.into(),
            })
    }

    /// The actions of a plan, in creation order.
    pub fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        let plan = self.plan(plan_uuid)?;
        self.rows(
            &format!(
                "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE x.action_plan_id = ?1 AND x.deleted = 0 ORDER BY x.id"
            ),
            [plan.id],
            action_from_row,
        )
    }

    /// An action by uuid.
    pub fn action(&self, uuid: &str) -> Result<ActionRow> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                     WHERE x.uuid = ?1 AND x.deleted = 0"
                ),
                [uuid],
                action_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action",
                id: uuid.into(),
            })
    }

    /// Stores a plan (one transaction); returns it.
    pub fn create_plan(&mut self, p: &NewPlan) -> Result<PlanRow> {
        let uuid = self.write(|tx| insert_plan(tx, p))?;
        self.plan(&uuid)
    }
}

fn action_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
    let parents: Vec<String> = serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default();
    Ok(ActionRow {
        uuid: r.get(0)?,
        name: r.get(1)?,
        action_plan_uuid: r.get(2)?,
        action_type: r.get(3)?,
        action_type_version: r.get(4)?,
        input_parameters: json_col(r.get(5)?),
        state: r.get(6)?,
        parents,
        outputs: r.get::<_, Option<String>>(8)?.map(json_col),
        status_message: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}
