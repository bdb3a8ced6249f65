//! Action plans and their actions in the store.
//!
//! A plan is written in one transaction with all its actions, its efficacy
//! indicators, and an event per object created. An action's parents are
//! stored as their row ids (schema migration 6) and read back as uuids.

use super::SqliteStore;
use super::columns::enum_col;
use super::{
    Event, Result, StoreError, UUID_LEN, append_event, json_col, new_uuid, new_uuids_sorted, now,
};
use crate::states::{ActionState, EventType, PlanState};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

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
    pub state: ActionState,
}

/// One action of a new plan, borrowed from whoever planned it: its
/// parameters already JSON text (serialized once, for the planner and for
/// the store alike), its parents as positions in [`NewPlan::rows`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NewPlanRow<'a> {
    /// Its name within the plan (the solution's id for it).
    pub name: &'a str,
    /// Its action type.
    pub action_type: &'a str,
    /// The action-type version it was instantiated with.
    pub action_type_version: &'a str,
    /// Its parameters, as JSON text (`null` for none, as a `Value::Null`).
    pub input_parameters_json: &'a str,
    /// Positions in [`NewPlan::rows`] of the actions it waits for; a position
    /// out of range names no action and is ignored, as an unknown parent
    /// name of a [`NewPlanAction`] is.
    pub parents: &'a [usize],
    /// Its initial state (PENDING unless imported otherwise).
    pub state: ActionState,
}

/// A new plan.
#[derive(Clone, Debug, Default)]
pub struct NewPlan<'a> {
    /// The audit that produced it.
    pub audit_uuid: Option<String>,
    /// The strategy that produced it.
    pub strategy_uuid: Option<String>,
    /// The planner that scheduled it.
    pub planner: Option<String>,
    /// RECOMMENDED, or SUCCEEDED when empty.
    pub state: PlanState,
    /// Global efficacy.
    pub global_efficacy: Value,
    /// Efficacy indicators: `[{name, description, unit, value}]`.
    pub efficacy_indicators: Value,
    /// The actions, in creation order.
    pub actions: Vec<NewPlanAction>,
    /// More actions, borrowed, created after `actions`: the cheaper way for
    /// large plans (no parameters cloned, none serialized twice).
    pub rows: Vec<NewPlanRow<'a>>,
    /// The policy, the planner's extras (pools, priorities) and the context
    /// references an imported plan declared (JSON pointers by action name), as
    /// `{"policy": …, "planner": …, "references": {"<name>": ["/key", …]}}`.
    pub extra: Value,
    /// Its flows and alternatives (docs/flows.md), as a `planners.v2`
    /// planner made them: written in the plan's transaction, exactly as
    /// [`super::StoreBackend::create_plan_with_structure`] writes an
    /// imported plan's. Empty for a flat plan (nothing written).
    pub structure: super::flows::PlanStructure,
}

/// Rows per multi-row `INSERT`: SQLite runs one statement per chunk instead
/// of one per row (7 parameters a row: far below SQLite's 32,766).
const CHUNK: usize = 64;

/// `INSERT INTO actions` of `rows` rows: `?1` the plan's id, `?2` the
/// creation time, then 8 parameters a row.
///
/// `OR FAIL`, not the default `OR ABORT`: a multi-row statement that may
/// abort runs in a statement transaction, whose journal copies every page
/// the statement touches. Nothing is lost: the statement runs inside the
/// plan's transaction, and any error rolls that whole transaction back.
fn actions_insert_sql(rows: usize) -> String {
    multi_row_insert(
        "INSERT OR FAIL INTO actions (id, uuid, action_plan_id, name, action_type, action_type_version, input_parameters, state, parents, created_at)",
        rows,
        |r| {
            let b = 3 + 8 * r;
            format!(
                "(?{},?{},?1,?{},?{},?{},?{},?{},?{},?2)",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            )
        },
    )
}

/// `head VALUES (…),(…),…`: one tuple a row, row `r`'s from `tuple(r)`.
fn multi_row_insert(head: &str, rows: usize, tuple: impl Fn(usize) -> String) -> String {
    let tuples: Vec<String> = (0..rows).map(tuple).collect();
    format!("{head} VALUES {}", tuples.join(","))
}

/// The `action.create` events of `rows` actions: `?1` the time, `?2` the
/// plan's uuid, then the action's uuid and state a row: the columns and
/// values [`super::append_event_at`] writes for one such event. `OR FAIL`
/// as in [`actions_insert_sql`].
fn events_insert_sql(rows: usize) -> String {
    multi_row_insert(
        "INSERT OR FAIL INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload)",
        rows,
        |r| {
            let b = 3 + 2 * r;
            format!(
                "(?1,'action.create','action',?{},?2,NULL,?{},'{{}}')",
                b,
                b + 1
            )
        },
    )
}

/// Writes the actions of a plan and their `action.create` events, `CHUNK`
/// rows a statement, in the caller's transaction.
fn insert_rows(
    tx: &Transaction<'_>,
    plan_id: i64,
    plan_uuid: &str,
    rows: &[NewPlanRow<'_>],
) -> rusqlite::Result<()> {
    let created = now();
    // Handed out in creation order (see new_uuids_sorted).
    let uuids = new_uuids_sorted(rows.len());
    let uuid = |i: usize| uuids.get(i * UUID_LEN..(i + 1) * UUID_LEN);
    // Row ids are handed out here, so parents can name them: the write
    // transaction holds the database's only write lock.
    let first_id: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM actions", [], |r| {
        r.get(0)
    })?;
    let id = |i: usize| first_id + i as i64;
    let mut parents = String::new();
    // The statements' text is built once per size (it is the cache's key).
    let full = (actions_insert_sql(CHUNK), events_insert_sql(CHUNK));
    let mut last: Option<(String, String)> = None;
    for (c, chunk) in rows.chunks(CHUNK).enumerate() {
        let first = c * CHUNK;
        let (actions_sql, events_sql) = if chunk.len() == CHUNK {
            (&full.0, &full.1)
        } else {
            let (a, e) = last.insert((
                actions_insert_sql(chunk.len()),
                events_insert_sql(chunk.len()),
            ));
            (&*a, &*e)
        };
        let mut st = tx.prepare_cached(actions_sql)?;
        st.raw_bind_parameter(1, plan_id)?;
        st.raw_bind_parameter(2, &created)?;
        for (r, a) in chunk.iter().enumerate() {
            parents.clear();
            parents.push('[');
            for &p in a.parents.iter().filter(|&&p| p < rows.len()) {
                if parents.len() > 1 {
                    parents.push(',');
                }
                write!(parents, "{}", id(p))
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            }
            parents.push(']');
            let b = 3 + 8 * r;
            st.raw_bind_parameter(b, id(first + r))?;
            st.raw_bind_parameter(b + 1, uuid(first + r).unwrap_or_default())?;
            st.raw_bind_parameter(b + 2, a.name)?;
            st.raw_bind_parameter(b + 3, a.action_type)?;
            st.raw_bind_parameter(b + 4, a.action_type_version)?;
            st.raw_bind_parameter(b + 5, a.input_parameters_json)?;
            st.raw_bind_parameter(b + 6, a.state)?;
            st.raw_bind_parameter(b + 7, parents.as_str())?;
        }
        st.raw_execute()?;
        let mut ev = tx.prepare_cached(events_sql)?;
        ev.raw_bind_parameter(1, &created)?;
        ev.raw_bind_parameter(2, plan_uuid)?;
        for (r, a) in chunk.iter().enumerate() {
            ev.raw_bind_parameter(3 + 2 * r, uuid(first + r).unwrap_or_default())?;
            ev.raw_bind_parameter(4 + 2 * r, a.state)?;
        }
        ev.raw_execute()?;
    }
    Ok(())
}

/// Inserts a plan and its actions inside the caller's transaction; returns
/// the plan's uuid.
/// Refuses a plan two of whose actions have one name (names are unique
/// within a plan: checked here, not by an index), before anything is
/// written; on either backend.
pub(super) fn refuse_duplicate_names(p: &NewPlan<'_>) -> Result<()> {
    let mut names = std::collections::HashSet::with_capacity(p.actions.len() + p.rows.len());
    let given = p
        .actions
        .iter()
        .map(|a| a.name.as_str())
        .chain(p.rows.iter().map(|r| r.name));
    for name in given {
        if !names.insert(name) {
            return Err(StoreError::Refused {
                kind: "action plan",
                id: "(new)".into(),
                state: p.state.to_string(),
                what: format!("two actions of the plan are named {name:?}"),
            });
        }
    }
    Ok(())
}

pub(super) fn insert_plan(tx: &Transaction<'_>, p: &NewPlan<'_>) -> rusqlite::Result<String> {
    // Names are unique within a plan: checked here, not by an index (see
    // schema migration 5).
    let mut names = std::collections::HashSet::with_capacity(p.actions.len() + p.rows.len());
    let names_given = p
        .actions
        .iter()
        .map(|a| a.name.as_str())
        .chain(p.rows.iter().map(|r| r.name));
    for name in names_given {
        if !names.insert(name) {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
                Some(format!("two actions of the plan are named {name:?}")),
            ));
        }
    }
    drop(names);
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
        &Event::state_change(EventType::PlanCreate, &uuid, None, p.state.as_str())
            .in_plan(&uuid)
            .with_payload(json!({"audit": p.audit_uuid, "planner": p.planner})),
    )?;
    // The owned actions become rows too: parameters serialized once, parent
    // names resolved to positions (an unknown name is dropped, as before).
    let params: Vec<String> = p
        .actions
        .iter()
        .map(|a| a.input_parameters.to_string())
        .collect();
    let position: HashMap<&str, usize> = p
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let parents: Vec<Vec<usize>> = p
        .actions
        .iter()
        .map(|a| {
            a.parents
                .iter()
                .filter_map(|n| position.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    // Positions in `p.rows` come after the owned actions'.
    let offset = p.actions.len();
    let shifted: Vec<Vec<usize>> = if offset == 0 {
        Vec::new()
    } else {
        p.rows
            .iter()
            .map(|r| {
                r.parents
                    .iter()
                    .map(|&x| x.saturating_add(offset))
                    .collect()
            })
            .collect()
    };
    let mut rows: Vec<NewPlanRow<'_>> = Vec::with_capacity(offset + p.rows.len());
    rows.extend(
        p.actions
            .iter()
            .zip(&params)
            .zip(&parents)
            .map(|((a, j), ps)| NewPlanRow {
                name: &a.name,
                action_type: &a.action_type,
                action_type_version: &a.action_type_version,
                input_parameters_json: j,
                parents: ps,
                state: a.state,
            }),
    );
    if offset == 0 {
        rows.extend_from_slice(&p.rows);
    } else {
        rows.extend(
            p.rows
                .iter()
                .zip(&shifted)
                .map(|(r, ps)| NewPlanRow { parents: ps, ..*r }),
        );
    }
    insert_rows(tx, plan_id, &uuid, &rows)?;
    if !p.structure.is_empty() {
        super::flows::insert_structure(tx, &uuid, &p.structure)?;
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
    pub(in crate::store) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its state.
    pub state: PlanState,
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
    /// How many actions it has (`action_count` in JSON: `actions` is
    /// always the list of actions, wherever a command prints it).
    #[serde(rename = "action_count")]
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
    pub state: ActionState,
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
    /// Its FAILED state came from its `execute` (not from a pre_condition,
    /// post_condition or timeout before it started).
    #[serde(skip)]
    pub execute_failed: bool,
}

const PLAN_COLS: &str = "p.id, p.uuid, p.state, a.uuid, s.uuid, s.name, p.planner, p.global_efficacy, \
    p.status_message, (SELECT count(*) FROM actions x WHERE x.action_plan_id = p.id AND x.deleted = 0), \
    p.created_at, p.updated_at";
/// The action count in [`PLAN_COLS`].
const PLAN_ACTION_COUNT: &str =
    "(SELECT count(*) FROM actions x WHERE x.action_plan_id = p.id AND x.deleted = 0)";
const PLAN_FROM: &str = "action_plans p LEFT JOIN audits a ON a.id = p.audit_id \
    LEFT JOIN strategies s ON s.id = p.strategy_id";

pub(super) const ACTION_COLS: &str = "x.uuid, x.name, p.uuid, x.action_type, x.action_type_version, x.input_parameters, \
    x.state, x.parents, x.outputs, x.status_message, x.created_at, x.updated_at, x.id, \
    x.execute_failed";

impl SqliteStore {
    fn plan_from_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<PlanRow> {
        Ok(PlanRow {
            id: r.get(0)?,
            uuid: r.get(1)?,
            state: enum_col(r, 2, 0, "action_plans", "state")?,
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

    /// A plan by uuid or a unique uuid prefix (see [`super::ids`]).
    pub fn plan(&self, id: &str) -> Result<PlanRow> {
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, id)?;
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {PLAN_COLS} FROM {PLAN_FROM} WHERE p.deleted = 0 AND p.uuid = ?1"),
                [&uuid],
                |r| self.plan_from_row(r),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: id.into(),
            })?;
        self.with_indicators(row)
    }

    /// A plan's state, by full uuid: cheap enough to poll.
    pub fn plan_state(&self, uuid: &str) -> Result<PlanState> {
        self.conn()
            .prepare_cached("SELECT id, state FROM action_plans WHERE uuid = ?1 AND deleted = 0")
            .and_then(|mut st| {
                st.query_row([uuid], |r| enum_col(r, 1, 0, "action_plans", "state"))
                    .optional()
            })
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: uuid.into(),
            })
    }

    /// A plan's extras (`NewPlan::extra`, plus `applied_with` once it was
    /// started with explicit options), by full uuid; `null` when none.
    pub fn plan_extra(&self, uuid: &str) -> Result<Value> {
        let text: Option<Option<String>> = self
            .conn()
            .prepare_cached("SELECT policy FROM action_plans WHERE uuid = ?1 AND deleted = 0")
            .and_then(|mut st| st.query_row([uuid], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let text = text.ok_or_else(|| StoreError::NotFound {
            kind: "action plan",
            id: uuid.into(),
        })?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null))
    }

    /// The actions of a plan, in creation order.
    pub fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        self.actions_where(plan_uuid, "")
    }

    /// The actions of a plan that are FAILED, SKIPPED or CANCELLED, in
    /// creation order (what a run's end reports), read without the others.
    pub fn unfinished_actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        self.actions_where(
            plan_uuid,
            " AND x.state IN ('FAILED', 'SKIPPED', 'CANCELLED')",
        )
    }

    /// The actions of a plan, with `filter` (an `AND …` on `x`) added.
    fn actions_where(&self, plan_uuid: &str, filter: &str) -> Result<Vec<ActionRow>> {
        let plan = self.plan(plan_uuid)?;
        let mut read = self.rows(
            &format!(
                "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE x.action_plan_id = ?1 AND x.deleted = 0{filter} ORDER BY x.id"
            ),
            [plan.id],
            action_from_row,
        )?;
        self.with_parent_uuids(&mut read)?;
        Ok(read.into_iter().map(|r| r.row).collect())
    }

    /// Turns the parents' row ids of `read` into uuids: from the rows read
    /// when they are among them (parents are in the same plan), else one
    /// lookup each.
    pub(super) fn with_parent_uuids(&self, read: &mut [ReadAction]) -> Result<()> {
        let by_id: HashMap<i64, usize> = read.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        for i in 0..read.len() {
            for p in std::mem::take(&mut read[i].parent_ids) {
                let uuid = match by_id.get(&p) {
                    Some(&j) => Some(read[j].row.uuid.clone()),
                    None => self.action_uuid_by_id(p)?,
                };
                read[i].row.parents.extend(uuid);
            }
        }
        Ok(())
    }

    /// The uuid of the action with row id `id`, if there is one.
    fn action_uuid_by_id(&self, id: i64) -> Result<Option<String>> {
        self.conn()
            .prepare_cached("SELECT uuid FROM actions WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// An action by uuid, unique uuid prefix, or name (see [`super::ids`]).
    pub fn action(&self, id: &str) -> Result<ActionRow> {
        let uuid = self.resolve_action(id, None)?;
        let mut read = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                     WHERE x.uuid = ?1 AND x.deleted = 0"
                ),
                [&uuid],
                action_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action",
                id: id.into(),
            })?;
        for p in std::mem::take(&mut read.parent_ids) {
            read.row.parents.extend(self.action_uuid_by_id(p)?);
        }
        Ok(read.row)
    }

    /// Stores a plan (one transaction); returns it.
    pub fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<PlanRow> {
        refuse_duplicate_names(p)?;
        let uuid = self.write(|tx| insert_plan(tx, p))?;
        self.new_plan(&uuid, p.rows.len() + p.actions.len())
    }

    /// A plan just stored with `count` actions, read back without counting
    /// them again (the count's subquery reads every action row: 100,000 row
    /// lookups for a 100,000-action plan).
    pub(super) fn new_plan(&self, uuid: &str, count: usize) -> Result<PlanRow> {
        let cols = PLAN_COLS.replace(PLAN_ACTION_COUNT, "?2");
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {cols} FROM {PLAN_FROM} WHERE p.deleted = 0 AND p.uuid = ?1"),
                params![uuid, count],
                |r| self.plan_from_row(r),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: uuid.into(),
            })?;
        self.with_indicators(row)
    }
}

impl SqliteStore {
    /// The oldest plan of audit `audit_uuid` that is still queued or
    /// running (PENDING, ONGOING or CANCELLING), with its state.
    pub fn running_plan_of_audit(&self, audit_uuid: &str) -> Result<Option<(String, PlanState)>> {
        self.conn()
            .query_row(
                "SELECT p.uuid, p.state, p.id FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                 WHERE a.uuid = ?1 AND p.deleted = 0 AND p.state IN ('PENDING', 'ONGOING', 'CANCELLING') \
                 ORDER BY p.id LIMIT 1",
                [audit_uuid],
                |r| Ok((r.get(0)?, enum_col(r, 1, 2, "action_plans", "state")?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The uuid of a plan that is ONGOING, if any.
    pub fn ongoing_plan(&self) -> Result<Option<String>> {
        self.conn()
            .query_row(
                "SELECT uuid FROM action_plans WHERE deleted = 0 AND state = 'ONGOING' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Cancels the RECOMMENDED plans of audit `audit_uuid` (a new run of a
    /// CONTINUOUS audit supersedes them), each a compare-and-set on
    /// RECOMMENDED with its event and `message`, in one transaction;
    /// returns their uuids.
    pub fn cancel_recommended_plans_of_audit(
        &mut self,
        audit_uuid: &str,
        message: &str,
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            let mut st = tx.prepare(
                "SELECT p.id, p.uuid FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                 WHERE a.uuid = ?1 AND p.deleted = 0 AND p.state = 'RECOMMENDED'",
            )?;
            let plans: Vec<(i64, String)> = st
                .query_map([audit_uuid], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut cancelled = Vec::with_capacity(plans.len());
            for (id, uuid) in plans {
                let n = tx.execute(
                    "UPDATE action_plans SET state = ?1, status_message = ?2, updated_at = ?3 \
                     WHERE id = ?4 AND state = ?5",
                    params![
                        PlanState::Cancelled,
                        message,
                        now(),
                        id,
                        PlanState::Recommended
                    ],
                )?;
                if n == 1 {
                    append_event(
                        tx,
                        &Event::state_change(
                            EventType::PlanUpdate,
                            &uuid,
                            Some(PlanState::Recommended.as_str()),
                            PlanState::Cancelled.as_str(),
                        )
                        .in_plan(&uuid),
                    )?;
                    cancelled.push(uuid);
                }
            }
            Ok(cancelled)
        })
    }
}

/// An action as read, before its parents' ids become uuids.
pub(super) struct ReadAction {
    row: ActionRow,
    /// Its row id.
    id: i64,
    /// Its parents' row ids, in order.
    parent_ids: Vec<i64>,
}

impl ReadAction {
    /// The action, once its parents are uuids.
    pub(super) fn into_row(self) -> ActionRow {
        self.row
    }
}

pub(super) fn action_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReadAction> {
    let text: String = r.get(7)?;
    // Row ids since schema migration 6, which converted every stored list.
    let parent_ids: Vec<i64> = serde_json::from_str(&text).unwrap_or_default();
    let row = ActionRow {
        uuid: r.get(0)?,
        name: r.get(1)?,
        action_plan_uuid: r.get(2)?,
        action_type: r.get(3)?,
        action_type_version: r.get(4)?,
        input_parameters: json_col(r.get(5)?),
        state: enum_col(r, 6, 12, "actions", "state")?,
        parents: Vec::with_capacity(parent_ids.len()),
        outputs: r.get::<_, Option<String>>(8)?.map(json_col),
        status_message: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        execute_failed: r.get::<_, i64>(13)? != 0,
    };
    Ok(ReadAction {
        row,
        id: r.get(12)?,
        parent_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        rows_and_owned_actions_store_the_same_columns_and_events,
        a_failing_row_leaves_no_plan,
        two_actions_of_one_name_are_refused_and_nothing_is_stored,
        tabs_newlines_backslashes_and_nulls_in_texts_are_stored_as_given,
    );

    /// PostgreSQL stores a plan's actions through `COPY`'s text format,
    /// where a tab, a newline, a carriage return and a backslash are
    /// escapes and `\N` is NULL: each must come back as it was written.
    fn tabs_newlines_backslashes_and_nulls_in_texts_are_stored_as_given(mut store: TestStore) {
        let names: Vec<String> = [
            "tab\there",
            "line\nbreak",
            "cr\rhere",
            "back\\slash",
            "\\N",
            "ünïcødé ✓",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let params: Vec<String> = vec![
            json!({"m": "a\tb\nc\\d\re"}).to_string(),
            r#"{"path":"C:\\x\\y"}"#.to_string(),
            r#"{"n":null}"#.to_string(),
            r#"{"s":"\\N"}"#.to_string(),
            "{}".to_string(),
            json!({"u": "ü✓"}).to_string(),
        ];
        let plan = store
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: names
                    .iter()
                    .zip(&params)
                    .map(|(name, json)| NewPlanRow {
                        name,
                        action_type: "nop\tx",
                        action_type_version: "1.0.0\\",
                        input_parameters_json: json,
                        parents: &[],
                        state: crate::states::ActionState::Pending,
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let rows = store.actions(&plan.uuid).expect("actions");
        assert_eq!(rows.len(), names.len());
        for ((r, name), json) in rows.iter().zip(&names).zip(&params) {
            assert_eq!(&r.name, name);
            assert_eq!(r.action_type, "nop\tx");
            assert_eq!(r.action_type_version, "1.0.0\\");
            assert_eq!(r.input_parameters.to_string(), *json, "{name:?}");
        }
        let created = store
            .events(Some(&plan.uuid), 0)
            .expect("events")
            .into_iter()
            .filter(|e| e.event_type == "action.create")
            .count();
        assert_eq!(created, names.len());
    }

    fn rows_and_owned_actions_store_the_same_columns_and_events(mut store: TestStore) {
        // More than one chunk, and a last chunk of another size.
        let n = CHUNK * 2 + 3;
        let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let params: Vec<String> = (0..n).map(|i| format!(r#"{{"z":{i},"a":"x"}}"#)).collect();
        let parents: Vec<Vec<usize>> = (0..n)
            .map(|i| match i {
                0 => vec![],
                // Out of range: ignored, as an unknown parent name is.
                1 => vec![0, n + 5],
                _ => vec![i - 1, i - 2],
            })
            .collect();
        let plan = store
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                actions: vec![NewPlanAction {
                    name: "owned".into(),
                    action_type: "nop".into(),
                    action_type_version: "1.0.0".into(),
                    input_parameters: json!({"message": "hi \"there\""}),
                    parents: vec!["nobody".into()],
                    state: crate::states::ActionState::Skipped,
                }],
                rows: (0..n)
                    .map(|i| NewPlanRow {
                        name: &names[i],
                        action_type: "migrate",
                        action_type_version: "2.0.0",
                        input_parameters_json: &params[i],
                        parents: &parents[i],
                        state: crate::states::ActionState::Pending,
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        assert_eq!(plan.actions, n as i64 + 1);
        // The count given back without a recount is the stored one.
        assert_eq!(store.plan(&plan.uuid).expect("plan").actions, plan.actions);
        let rows = store.actions(&plan.uuid).expect("actions");
        assert_eq!(rows[0].name, "owned");
        assert_eq!(rows[0].state, "SKIPPED");
        assert_eq!(rows[0].input_parameters, json!({"message": "hi \"there\""}));
        assert!(rows[0].parents.is_empty());
        for i in 0..n {
            let r = &rows[i + 1];
            assert_eq!(r.name, names[i]);
            assert_eq!(r.action_type, "migrate");
            assert_eq!(r.action_type_version, "2.0.0");
            assert_eq!(r.state, "PENDING");
            // Key order as written.
            assert_eq!(r.input_parameters.to_string(), params[i]);
            let want: Vec<String> = parents[i]
                .iter()
                .filter(|&&p| p < n)
                .map(|&p| rows[p + 1].uuid.clone())
                .collect();
            assert_eq!(r.parents, want, "action {i}");
        }
        let events = store.events(Some(&plan.uuid), 0).expect("events");
        let created: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == "action.create")
            .collect();
        assert_eq!(created.len(), n + 1);
        for (e, r) in created.iter().zip(&rows) {
            assert_eq!(e.object_type, "action");
            assert_eq!(e.object_uuid, r.uuid);
            assert_eq!(e.old_state, None);
            assert_eq!(e.new_state.map(|s| s.as_str()), Some(r.state.as_str()));
            assert_eq!(e.at, r.created_at);
        }
    }

    fn named_rows(names: &[String]) -> Vec<NewPlanRow<'_>> {
        names
            .iter()
            .map(|name| NewPlanRow {
                name,
                action_type: "nop",
                input_parameters_json: "{}",
                state: crate::states::ActionState::Pending,
                ..Default::default()
            })
            .collect()
    }

    fn a_failing_row_leaves_no_plan(mut store: TestStore) {
        // A row of the second chunk fails after a whole chunk went in.
        store.exec(store.pick(
            "CREATE TRIGGER boom BEFORE INSERT ON actions WHEN NEW.name = 'boom' \
             BEGIN SELECT RAISE(FAIL, 'boom'); END;",
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.name = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER boom BEFORE INSERT ON actions FOR EACH ROW EXECUTE FUNCTION boom();",
        ));
        // More rows than a chunk on either backend.
        let mut names: Vec<String> = (0..1000).map(|i| format!("a{i}")).collect();
        names.push("boom".into());
        let e = store
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: named_rows(&names),
                ..Default::default()
            })
            .expect_err("refused");
        assert!(e.to_string().contains("boom"), "{e}");
        assert!(store.plans(None).expect("plans").is_empty());
        assert!(store.events(None, 0).expect("events").is_empty());
        assert_eq!(store.int("SELECT count(*) FROM actions"), Some(0));
    }

    fn two_actions_of_one_name_are_refused_and_nothing_is_stored(mut store: TestStore) {
        let mut names: Vec<String> = (0..CHUNK + 3).map(|i| format!("a{i}")).collect();
        names.push("a7".into());
        let e = store
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: named_rows(&names),
                ..Default::default()
            })
            .expect_err("refused");
        assert!(
            e.to_string()
                .contains("two actions of the plan are named \"a7\""),
            "{e}"
        );
        assert!(matches!(e, StoreError::Refused { .. }), "{e:?}");
        assert!(store.plans(None).expect("plans").is_empty());
        // The same names in two plans are fine.
        for _ in 0..2 {
            store
                .create_plan(&NewPlan {
                    state: crate::states::PlanState::Recommended,
                    rows: named_rows(&names[..3]),
                    ..Default::default()
                })
                .expect("plan");
        }
    }
}
