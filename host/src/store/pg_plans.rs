//! Plans and their actions on PostgreSQL: a plan stored in one transaction
//! with all its actions and an event per object created (multi-row
//! inserts, 64 rows a statement), and a plan's actions read back with
//! their parents as uuids, as on SQLite (`plans.rs`).

use super::pg::{PgStore, pg_error};
use super::plans::{ActionRow, NewPlan};
use super::{
    Result, StoreError, UUID_LEN, UnknownValue, json_col, new_uuid, new_uuids_sorted, now,
};
use crate::states::ActionState;
use postgres::types::ToSql;
use std::collections::HashMap;
use std::path::PathBuf;

/// Rows per multi-row statement.
const CHUNK: usize = 64;

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

impl PgStore {
    /// Stores a plan and its actions in one transaction; returns its uuid.
    pub fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<String> {
        // Never dropped silently: a planner-made structure needs the flows
        // tables, which this backend does not write yet.
        if !p.structure.is_empty() {
            return Err(StoreError::Refused {
                kind: "action plan",
                id: "(new)".into(),
                state: p.state.to_string(),
                what: "its flows and alternatives: the PostgreSQL backend does not store them yet"
                    .into(),
            });
        }
        let rows = rows_of(p);
        let mut names = std::collections::HashSet::with_capacity(rows.len());
        for r in &rows {
            if !names.insert(r.name) {
                return Err(StoreError::Refused {
                    kind: "action plan",
                    id: "(new)".into(),
                    state: p.state.to_string(),
                    what: format!("two actions of the plan are named {:?}", r.name),
                });
            }
        }
        drop(names);
        let location = self.location().to_string();
        let err = |e| pg_error(&location, e);
        let uuid = new_uuid();
        let created = now();
        let mut tx = self.client().transaction().map_err(err)?;
        let audit_id: Option<i64> = match &p.audit_uuid {
            Some(a) => tx
                .query_opt("SELECT id FROM audits WHERE uuid = $1", &[a])
                .map_err(err)?
                .map(|r| r.get(0)),
            None => None,
        };
        let strategy_id: Option<i64> = match &p.strategy_uuid {
            Some(s) => tx
                .query_opt("SELECT id FROM strategies WHERE uuid = $1", &[s])
                .map_err(err)?
                .map(|r| r.get(0)),
            None => None,
        };
        let policy = (!p.extra.is_null()).then(|| p.extra.to_string());
        let efficacy = if p.global_efficacy.is_null() {
            "[]".to_string()
        } else {
            p.global_efficacy.to_string()
        };
        let plan_id: i64 = tx
            .query_one(
                "INSERT INTO action_plans (uuid, audit_id, strategy_id, state, global_efficacy, \
                 planner, policy, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &uuid,
                    &audit_id,
                    &strategy_id,
                    &p.state.as_str(),
                    &efficacy,
                    &p.planner,
                    &policy,
                    &created,
                ],
            )
            .map_err(err)?
            .get(0);
        tx.execute(
            "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
             old_state, new_state, payload) VALUES ($1, 'action_plan.create', 'action_plan', $2, $2, \
             NULL, $3, $4)",
            &[
                &created,
                &uuid,
                &p.state.as_str(),
                &serde_json::json!({"audit": p.audit_uuid, "planner": p.planner}).to_string(),
            ],
        )
        .map_err(err)?;
        // Ids from the table's sequence, so that parents can name them.
        let n = rows.len() as i64;
        let ids: Vec<i64> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('actions', 'id')) FROM generate_series(1, $1::bigint)",
                &[&n],
            )
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
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
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let uuid_of: Vec<&str> = (0..rows.len()).map(action_uuid).collect();
        let params_of: Vec<&str> = rows
            .iter()
            .map(|r| r.input_parameters_json.as_ref())
            .collect();
        for (c, chunk) in rows.chunks(CHUNK).enumerate() {
            let first = c * CHUNK;
            let mut actions_sql = String::from(
                "INSERT INTO actions (id, uuid, action_plan_id, name, action_type, \
                 action_type_version, input_parameters, state, parents, created_at) VALUES ",
            );
            let mut events_sql = String::from(
                "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
                 old_state, new_state, payload) VALUES ",
            );
            let mut a: Vec<&(dyn ToSql + Sync)> = vec![&plan_id, &created];
            let mut e: Vec<&(dyn ToSql + Sync)> = vec![&created, &uuid];
            for (k, r) in chunk.iter().enumerate() {
                let i = first + k;
                let b = a.len();
                if k > 0 {
                    actions_sql.push(',');
                    events_sql.push(',');
                }
                actions_sql.push_str(&format!(
                    "(${},${},$1,${},${},${},${},${},${},$2)",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                ));
                a.push(&ids[i]);
                a.push(&uuid_of[i]);
                a.push(&r.name);
                a.push(&r.action_type);
                a.push(&r.action_type_version);
                a.push(&params_of[i]);
                a.push(&states[i]);
                a.push(&parents[i]);
                let eb = e.len();
                events_sql.push_str(&format!(
                    "($1,'action.create','action',${},$2,NULL,${},'{{}}')",
                    eb + 1,
                    eb + 2
                ));
                e.push(&uuid_of[i]);
                e.push(&states[i]);
            }
            tx.execute(actions_sql.as_str(), &a).map_err(err)?;
            tx.execute(events_sql.as_str(), &e).map_err(err)?;
        }
        if let Some(list) = p.efficacy_indicators.as_array() {
            for ind in list {
                tx.execute(
                    "INSERT INTO efficacy_indicators (uuid, action_plan_id, name, description, unit, \
                     value, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &new_uuid(),
                        &plan_id,
                        &ind["name"].as_str().unwrap_or(""),
                        &ind["description"].as_str().unwrap_or(""),
                        &ind["unit"].as_str(),
                        &ind["value"].as_f64(),
                        &created,
                    ],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(uuid)
    }
}

impl PgStore {
    /// The actions of a plan (by full uuid), in creation order, with their
    /// parents as uuids.
    pub fn actions(&mut self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        let location = self.location().to_string();
        let err = |e| pg_error(&location, e);
        let rows = self
            .client()
            .query(
                "SELECT x.uuid, x.name, p.uuid, x.action_type, x.action_type_version, \
                 x.input_parameters, x.state, x.parents, x.outputs, x.status_message, \
                 x.created_at, x.updated_at, x.id, x.execute_failed \
                 FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE p.uuid = $1 AND p.deleted = 0 AND x.deleted = 0 ORDER BY x.id",
                &[&plan_uuid],
            )
            .map_err(err)?;
        let mut read = Vec::with_capacity(rows.len());
        let mut uuid_by_id: HashMap<i64, String> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get(12);
            let text: String = r.get(6);
            let state: ActionState = text.parse().map_err(|name| StoreError::Unknown {
                path: PathBuf::from(&location),
                value: UnknownValue {
                    table: "actions",
                    row: id,
                    column: "state",
                    name,
                },
            })?;
            let parents: Vec<i64> =
                serde_json::from_str(&r.get::<_, String>(7)).unwrap_or_default();
            uuid_by_id.insert(id, r.get(0));
            read.push((
                ActionRow {
                    uuid: r.get(0),
                    name: r.get(1),
                    action_plan_uuid: r.get(2),
                    action_type: r.get(3),
                    action_type_version: r.get(4),
                    input_parameters: json_col(r.get(5)),
                    state,
                    parents: Vec::with_capacity(parents.len()),
                    outputs: r.get::<_, Option<String>>(8).map(json_col),
                    status_message: r.get(9),
                    created_at: r.get(10),
                    updated_at: r.get(11),
                    execute_failed: r.get::<_, i32>(13) != 0,
                },
                parents,
            ));
        }
        // Parents are in the same plan: their uuids come from the rows read.
        Ok(read
            .into_iter()
            .map(|(mut row, parents)| {
                row.parents = parents
                    .iter()
                    .filter_map(|p| uuid_by_id.get(p).cloned())
                    .collect();
                row
            })
            .collect())
    }
}
