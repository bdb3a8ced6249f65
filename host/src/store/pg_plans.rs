//! Plans and their actions on PostgreSQL (`plans.rs` on SQLite): a plan
//! stored in one transaction with all its actions and an event per object
//! created (multi-row inserts, 1,000 rows a statement), plans and actions
//! read back (parents as uuids), and the plan queries of the decision
//! engine.

use super::copy_pg::{copy_text, io_error};
use super::pg::PgStore;
use super::pg_sql::{PgRow, Sql, args, flag, int};
use super::plans::{ActionRow, NewPlan, PlanRow};
use super::{Event, Result, StoreError, UUID_LEN, json_col, new_uuid, new_uuids_sorted, now};
use crate::states::{ActionState, EventType, PlanState};
use postgres::Transaction;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Bytes of `COPY` data gathered before they are handed to the driver.
const COPY_BUFFER: usize = 1 << 20;

/// One action to insert, whichever form the plan gave it in.
struct Row<'a> {
    name: &'a str,
    action_type: &'a str,
    action_type_version: &'a str,
    input_parameters_json: std::borrow::Cow<'a, str>,
    parents: Vec<usize>,
    state: ActionState,
}

/// The plan's actions in creation order: the owned ones (parents by name,
/// an unknown name dropped), then the borrowed rows (parents by position,
/// out of range dropped).
fn rows_of<'a>(p: &'a NewPlan<'_>) -> Vec<Row<'a>> {
    let position: HashMap<&str, usize> = p
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let offset = p.actions.len();
    let total = offset + p.rows.len();
    let mut rows: Vec<Row<'a>> = p
        .actions
        .iter()
        .map(|a| Row {
            name: &a.name,
            action_type: &a.action_type,
            action_type_version: &a.action_type_version,
            input_parameters_json: a.input_parameters.to_string().into(),
            parents: a
                .parents
                .iter()
                .filter_map(|n| position.get(n.as_str()).copied())
                .collect(),
            state: a.state,
        })
        .collect();
    rows.extend(p.rows.iter().map(|r| {
        Row {
            name: r.name,
            action_type: r.action_type,
            action_type_version: r.action_type_version,
            input_parameters_json: r.input_parameters_json.into(),
            parents: r
                .parents
                .iter()
                .map(|&x| x.saturating_add(offset))
                .filter(|&x| x < total)
                .collect(),
            state: r.state,
        }
    }));
    rows
}

/// Stores plan `p` in the caller's transaction; returns its uuid.
pub(super) fn insert_plan(db: &mut Sql<'_, Transaction<'_>>, p: &NewPlan<'_>) -> Result<String> {
    super::plans::refuse_duplicate_names(p)?;
    let rows = rows_of(p);
    let uuid = new_uuid();
    let created = now();
    let audit_id: Option<i64> = match &p.audit_uuid {
        Some(a) => db
            .opt("SELECT id FROM audits WHERE uuid = $1", args![a])?
            .map(|r| int(&r, 0))
            .transpose()?,
        None => None,
    };
    let strategy_id: Option<i64> = match &p.strategy_uuid {
        Some(s) => db
            .opt("SELECT id FROM strategies WHERE uuid = $1", args![s])?
            .map(|r| int(&r, 0))
            .transpose()?,
        None => None,
    };
    let policy = (!p.extra.is_null()).then(|| p.extra.to_string());
    let efficacy = if p.global_efficacy.is_null() {
        "[]".to_string()
    } else {
        p.global_efficacy.to_string()
    };
    let plan_id = int(
        &db.one(
            "INSERT INTO action_plans (uuid, audit_id, strategy_id, state, global_efficacy, \
             planner, policy, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            args![
                uuid,
                audit_id,
                strategy_id,
                p.state,
                efficacy,
                p.planner,
                policy,
                created
            ],
        )?,
        0,
    )?;
    db.event(
        &Event::state_change(EventType::PlanCreate, &uuid, None, p.state.as_str())
            .in_plan(&uuid)
            .with_payload(json!({"audit": p.audit_uuid, "planner": p.planner})),
        &created,
    )?;
    // Ids from the table's sequence, so that parents can name them.
    let ids: Vec<i64> = db
        .rows(
            "SELECT nextval(pg_get_serial_sequence('actions', 'id')) \
             FROM generate_series(1, $1::bigint)",
            args![rows.len()],
        )?
        .iter()
        .map(|r| int(r, 0))
        .collect::<Result<_>>()?;
    let uuids = new_uuids_sorted(rows.len());
    let action_uuid = |i: usize| {
        uuids
            .get(i * UUID_LEN..(i + 1) * UUID_LEN)
            .unwrap_or_default()
    };
    let parents: Vec<String> = rows
        .iter()
        .map(|r| {
            let ids: Vec<String> = r.parents.iter().map(|&p| ids[p].to_string()).collect();
            format!("[{}]", ids.join(","))
        })
        .collect();
    // The actions and their creation events through COPY (text format):
    // one stream each, parsed by the server without a statement's
    // parameters (a plan of 100,000 actions as 1,000-row multi-row inserts
    // spent most of its time binding and planning them).
    let plan_id_text = plan_id.to_string();
    copy_in(
        db,
        "COPY actions (id, uuid, action_plan_id, name, action_type, action_type_version, \
         input_parameters, state, parents, created_at) FROM STDIN",
        rows.len(),
        |i, out| {
            let r = &rows[i];
            let id = ids[i].to_string();
            let cells = [
                id.as_str(),
                action_uuid(i),
                &plan_id_text,
                r.name,
                r.action_type,
                r.action_type_version,
                &r.input_parameters_json,
                r.state.as_str(),
                &parents[i],
                &created,
            ];
            copy_line(&cells, out);
        },
    )?;
    // The plan is this transaction's until it commits: its events are in
    // commit order without migration 17's lock and second id per row (a
    // plan of 100,000 actions spent 0.6 s in that trigger).
    db.exec(
        "SELECT set_config('sextant.events_ordered', 'on', true)",
        args![],
    )?;
    copy_in(
        db,
        "COPY events (at, event_type, object_type, object_uuid, action_plan_uuid, \
         old_state, new_state, payload) FROM STDIN",
        rows.len(),
        |i, out| {
            copy_text(&created, out);
            out.extend_from_slice(b"\taction.create\taction\t");
            copy_text(action_uuid(i), out);
            out.push(b'\t');
            copy_text(&uuid, out);
            out.extend_from_slice(b"\t\\N\t");
            copy_text(rows[i].state.as_str(), out);
            out.extend_from_slice(b"\t{}\n");
        },
    )?;
    db.exec(
        "SELECT set_config('sextant.events_ordered', 'off', true)",
        args![],
    )?;
    if let Some(list) = p.efficacy_indicators.as_array() {
        for ind in list {
            db.exec(
                "INSERT INTO efficacy_indicators (uuid, action_plan_id, name, description, unit, \
                 value, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args![
                    new_uuid(),
                    plan_id,
                    ind["name"].as_str().unwrap_or(""),
                    ind["description"].as_str().unwrap_or(""),
                    ind["unit"].as_str(),
                    ind["value"].as_f64(),
                    created
                ],
            )?;
        }
    }
    // A planners.v2 planner's flows and alternatives, in the same transaction.
    if !p.structure.is_empty() {
        super::pg_flows::insert_structure(db, &uuid, &p.structure)?;
    }
    Ok(uuid)
}

/// `cells` as one line of `COPY`'s text format (none of them NULL).
fn copy_line(cells: &[&str], out: &mut Vec<u8>) {
    for (k, c) in cells.iter().enumerate() {
        if k > 0 {
            out.push(b'\t');
        }
        copy_text(c, out);
    }
    out.push(b'\n');
}

/// Runs `sql`, a `COPY … FROM STDIN` in text format, in the caller's
/// transaction, with the `n` lines `line(i, out)` appends to `out`; the
/// server's error (a constraint, a bad value) fails it.
fn copy_in(
    db: &mut Sql<'_, Transaction<'_>>,
    sql: &str,
    n: usize,
    mut line: impl FnMut(usize, &mut Vec<u8>),
) -> Result<()> {
    use std::io::Write;
    let location = db.location;
    let mut writer =
        db.c.copy_in(sql)
            .map_err(|e| super::pg::pg_error(location, e))?;
    let mut buf = Vec::with_capacity(COPY_BUFFER + 4096);
    for i in 0..n {
        line(i, &mut buf);
        if buf.len() >= COPY_BUFFER {
            writer.write_all(&buf).map_err(|e| io_error(location, e))?;
            buf.clear();
        }
    }
    writer.write_all(&buf).map_err(|e| io_error(location, e))?;
    writer
        .finish()
        .map_err(|e| super::pg::pg_error(location, e))?;
    Ok(())
}

const PLAN_ACTION_COUNT: &str =
    "(SELECT count(*) FROM actions x WHERE x.action_plan_id = p.id AND x.deleted = 0)";
const PLAN_FROM: &str = "action_plans p LEFT JOIN audits a ON a.id = p.audit_id \
    LEFT JOIN strategies s ON s.id = p.strategy_id";

/// The plan columns, with `count` for the number of actions.
fn plan_cols(count: &str) -> String {
    format!(
        "p.id, p.uuid, p.state, a.uuid, s.uuid, s.name, p.planner, p.global_efficacy, \
         p.status_message, {count}, p.created_at, p.updated_at"
    )
}

pub(super) const ACTION_COLS: &str = "x.uuid, x.name, p.uuid, x.action_type, x.action_type_version, \
    x.input_parameters, x.state, x.parents, x.outputs, x.status_message, x.created_at, \
    x.updated_at, x.id, x.execute_failed";

fn plan_from_row<C: postgres::GenericClient>(db: &Sql<'_, C>, r: &PgRow) -> Result<PlanRow> {
    Ok(PlanRow {
        id: int(r, 0)?,
        uuid: r.get(1)?,
        state: db.enum_col(r, 2, 0, "action_plans", "state")?,
        audit_uuid: r.get(3)?,
        strategy_uuid: r.get(4)?,
        strategy_name: r.get(5)?,
        planner: r.get(6)?,
        global_efficacy: json_col(r.get(7)?),
        efficacy_indicators: Vec::new(),
        status_message: r.get(8)?,
        actions: int(r, 9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

fn with_indicators<C: postgres::GenericClient>(
    db: &mut Sql<'_, C>,
    mut p: PlanRow,
) -> Result<PlanRow> {
    p.efficacy_indicators = db
        .rows(
            "SELECT name, description, unit, value FROM efficacy_indicators \
             WHERE action_plan_id = $1 AND deleted = 0 ORDER BY id",
            args![p.id],
        )?
        .iter()
        .map(|r| {
            Ok(json!({
                "name": r.get::<String>(0)?,
                "description": r.get::<String>(1)?,
                "unit": r.get::<Option<String>>(2)?,
                "value": r.get::<Option<f64>>(3)?,
            }))
        })
        .collect::<Result<_>>()?;
    Ok(p)
}

/// An action read, with its parents' row ids.
pub(super) struct ReadAction {
    pub(super) row: ActionRow,
    id: i64,
    parent_ids: Vec<i64>,
}

pub(super) fn action_from_row<C: postgres::GenericClient>(
    db: &Sql<'_, C>,
    r: &PgRow,
) -> Result<ReadAction> {
    let text: String = r.get(7)?;
    let parent_ids: Vec<i64> = serde_json::from_str(&text).unwrap_or_default();
    Ok(ReadAction {
        row: ActionRow {
            uuid: r.get(0)?,
            name: r.get(1)?,
            action_plan_uuid: r.get(2)?,
            action_type: r.get(3)?,
            action_type_version: r.get(4)?,
            input_parameters: json_col(r.get(5)?),
            state: db.enum_col(r, 6, 12, "actions", "state")?,
            parents: Vec::with_capacity(parent_ids.len()),
            outputs: r.get::<Option<String>>(8)?.map(json_col),
            status_message: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            execute_failed: flag(r, 13)?,
        },
        id: int(r, 12)?,
        parent_ids,
    })
}

/// Sets the parents' uuids of actions `read`: those among them from the
/// rows read, the others looked up.
pub(super) fn with_parent_uuids<C: postgres::GenericClient>(
    db: &mut Sql<'_, C>,
    read: &mut [ReadAction],
) -> Result<()> {
    let by_id: HashMap<i64, usize> = read.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for i in 0..read.len() {
        for p in std::mem::take(&mut read[i].parent_ids) {
            let uuid = match by_id.get(&p) {
                Some(&j) => Some(read[j].row.uuid.clone()),
                None => action_uuid_by_id(db, p)?,
            };
            read[i].row.parents.extend(uuid);
        }
    }
    Ok(())
}

fn action_uuid_by_id<C: postgres::GenericClient>(
    db: &mut Sql<'_, C>,
    id: i64,
) -> Result<Option<String>> {
    db.opt("SELECT uuid FROM actions WHERE id = $1", args![id])?
        .map(|r| r.get(0))
        .transpose()
}

impl PgStore {
    /// Stores a plan (one transaction); returns it.
    pub fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<PlanRow> {
        let uuid = self.write(|db| insert_plan(db, p))?;
        self.new_plan(&uuid, p.rows.len() + p.actions.len())
    }

    /// A plan just stored, with its action count known.
    pub(super) fn new_plan(&self, uuid: &str, count: usize) -> Result<PlanRow> {
        let cols = plan_cols("$2::bigint");
        self.read(|db| {
            let row = db
                .opt(
                    &format!("SELECT {cols} FROM {PLAN_FROM} WHERE p.deleted = 0 AND p.uuid = $1"),
                    args![uuid, count],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "action plan",
                    id: uuid.into(),
                })?;
            let plan = plan_from_row(db, &row)?;
            with_indicators(db, plan)
        })
    }

    /// Every plan not deleted, optionally of one audit (uuid or name).
    pub fn plans(&self, audit: Option<&str>) -> Result<Vec<PlanRow>> {
        let audit_id = match audit {
            Some(a) => Some(self.audit(a)?.id),
            None => None,
        };
        let cols = plan_cols(PLAN_ACTION_COUNT);
        self.read(|db| {
            let rows = db.rows(
                &format!(
                    "SELECT {cols} FROM {PLAN_FROM} WHERE p.deleted = 0 \
                     AND ($1::bigint IS NULL OR p.audit_id = $1) ORDER BY p.id"
                ),
                args![audit_id],
            )?;
            let plans = rows
                .iter()
                .map(|r| plan_from_row(db, r))
                .collect::<Result<Vec<_>>>()?;
            plans.into_iter().map(|p| with_indicators(db, p)).collect()
        })
    }

    /// A plan by uuid or a unique uuid prefix.
    pub fn plan(&self, id: &str) -> Result<PlanRow> {
        let uuid = self.resolve_id(super::ids::IdKind::ActionPlan, id)?;
        let cols = plan_cols(PLAN_ACTION_COUNT);
        self.read(|db| {
            let row = db
                .opt(
                    &format!("SELECT {cols} FROM {PLAN_FROM} WHERE p.deleted = 0 AND p.uuid = $1"),
                    args![uuid],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "action plan",
                    id: id.into(),
                })?;
            let plan = plan_from_row(db, &row)?;
            with_indicators(db, plan)
        })
    }

    /// A plan's extras, by full uuid; `null` when none.
    pub fn plan_extra(&self, uuid: &str) -> Result<Value> {
        let row = self.read(|db| {
            db.opt(
                "SELECT policy FROM action_plans WHERE uuid = $1 AND deleted = 0",
                args![uuid],
            )
        })?;
        let text: Option<String> = row
            .ok_or_else(|| StoreError::NotFound {
                kind: "action plan",
                id: uuid.into(),
            })?
            .get(0)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null))
    }

    /// The actions of a plan, in creation order.
    pub fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        self.actions_where(plan_uuid, "")
    }

    /// The actions of a plan that are FAILED, SKIPPED or CANCELLED.
    pub fn unfinished_actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        self.actions_where(
            plan_uuid,
            " AND x.state IN ('FAILED', 'SKIPPED', 'CANCELLED')",
        )
    }

    fn actions_where(&self, plan_uuid: &str, filter: &str) -> Result<Vec<ActionRow>> {
        let plan = self.plan(plan_uuid)?;
        self.read(|db| {
            let rows = db.rows(
                &format!(
                    "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                     WHERE x.action_plan_id = $1 AND x.deleted = 0{filter} ORDER BY x.id"
                ),
                args![plan.id],
            )?;
            let mut read = rows
                .iter()
                .map(|r| action_from_row(db, r))
                .collect::<Result<Vec<_>>>()?;
            with_parent_uuids(db, &mut read)?;
            Ok(read.into_iter().map(|r| r.row).collect())
        })
    }

    /// An action by uuid, unique uuid prefix, or name.
    pub fn action(&self, id: &str) -> Result<ActionRow> {
        let uuid = self.resolve_action(id, None)?;
        self.read(|db| {
            let row = db
                .opt(
                    &format!(
                        "SELECT {ACTION_COLS} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                         WHERE x.uuid = $1 AND x.deleted = 0"
                    ),
                    args![uuid],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "action",
                    id: id.into(),
                })?;
            let mut read = action_from_row(db, &row)?;
            for p in std::mem::take(&mut read.parent_ids) {
                read.row.parents.extend(action_uuid_by_id(db, p)?);
            }
            Ok(read.row)
        })
    }

    /// The oldest plan of an audit still queued or running, with its state.
    pub fn running_plan_of_audit(&self, audit_uuid: &str) -> Result<Option<(String, PlanState)>> {
        self.read(|db| {
            let Some(r) = db.opt(
                "SELECT p.uuid, p.state, p.id FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                 WHERE a.uuid = $1 AND p.deleted = 0 AND p.state IN ('PENDING', 'ONGOING', 'CANCELLING') \
                 ORDER BY p.id LIMIT 1",
                args![audit_uuid],
            )?
            else {
                return Ok(None);
            };
            Ok(Some((r.get(0)?, db.enum_col(&r, 1, 2, "action_plans", "state")?)))
        })
    }

    /// The uuid of a plan that is ONGOING, if any.
    pub fn ongoing_plan(&self) -> Result<Option<String>> {
        self.read(|db| {
            db.opt(
                "SELECT uuid FROM action_plans WHERE deleted = 0 AND state = 'ONGOING' \
                     ORDER BY id LIMIT 1",
                &[],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
    }

    /// Cancels the RECOMMENDED plans of an audit; returns their uuids.
    pub fn cancel_recommended_plans_of_audit(
        &mut self,
        audit_uuid: &str,
        message: &str,
    ) -> Result<Vec<String>> {
        self.write(|db| {
            let plans: Vec<(i64, String)> = db
                .rows(
                    "SELECT p.id, p.uuid FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                     WHERE a.uuid = $1 AND p.deleted = 0 AND p.state = 'RECOMMENDED' ORDER BY p.id",
                    args![audit_uuid],
                )?
                .iter()
                .map(|r| Ok((int(r, 0)?, r.get(1)?)))
                .collect::<Result<_>>()?;
            let mut cancelled = Vec::with_capacity(plans.len());
            for (id, uuid) in plans {
                let at = now();
                let n = db.exec(
                    "UPDATE action_plans SET state = $1, status_message = $2, updated_at = $3 \
                     WHERE id = $4 AND state = $5",
                    args![
                        PlanState::Cancelled,
                        message,
                        at,
                        id,
                        PlanState::Recommended
                    ],
                )?;
                if n == 1 {
                    db.event(
                        &Event::state_change(
                            EventType::PlanUpdate,
                            &uuid,
                            Some(PlanState::Recommended.as_str()),
                            PlanState::Cancelled.as_str(),
                        )
                        .in_plan(&uuid),
                        &at,
                    )?;
                    cancelled.push(uuid);
                }
            }
            Ok(cancelled)
        })
    }

    /// The plans not ended with an action of `action_type` at `version`.
    pub fn live_plans_using(
        &self,
        action_type: &str,
        version: &str,
    ) -> Result<Vec<(String, PlanState)>> {
        self.read(|db| {
            let rows = db.rows(
                "SELECT DISTINCT p.uuid, p.state, p.id FROM actions x \
                 JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE x.action_type = $1 AND x.action_type_version = $2 AND x.deleted = 0 \
                 AND p.state IN ('RECOMMENDED', 'PENDING', 'ONGOING', 'CANCELLING') ORDER BY p.id",
                args![action_type, version],
            )?;
            rows.iter()
                .map(|r| Ok((r.get(0)?, db.enum_col(r, 1, 2, "action_plans", "state")?)))
                .collect()
        })
    }
}
