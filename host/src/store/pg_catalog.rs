//! Goals, strategies and action type descriptions on PostgreSQL (their
//! SQLite twins are in `mod.rs`).

use super::pg::PgStore;
use super::pg_sql::{PgRow, args, int};
use super::{GoalRow, Result, StoreError, StrategyRow, json_col, now};

const GOAL_COLS: &str =
    "id, uuid, name, display_name, display_names, efficacy_specification, created_at, updated_at";

fn goal_from_row(r: &PgRow) -> Result<GoalRow> {
    Ok(GoalRow {
        id: int(r, 0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        display_name: r.get(3)?,
        display_names: json_col(r.get(4)?),
        efficacy_specification: json_col(r.get(5)?),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const STRATEGY_COLS: &str = "s.id, s.uuid, s.name, s.display_name, s.display_names, g.uuid, g.name, \
     s.parameters_spec, s.version, s.plugin_file, s.created_at, s.updated_at, s.planner";

fn strategy_from_row(r: &PgRow) -> Result<StrategyRow> {
    Ok(StrategyRow {
        id: int(r, 0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        display_name: r.get(3)?,
        display_names: json_col(r.get(4)?),
        goal_uuid: r.get(5)?,
        goal_name: r.get(6)?,
        parameters_spec: json_col(r.get(7)?),
        version: r.get(8)?,
        plugin_file: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        planner: r.get(12)?,
    })
}

impl PgStore {
    /// Every goal not deleted.
    pub fn goals(&self) -> Result<Vec<GoalRow>> {
        self.read(|db| {
            db.rows(
                &format!("SELECT {GOAL_COLS} FROM goals WHERE deleted = 0 ORDER BY id"),
                &[],
            )?
            .iter()
            .map(goal_from_row)
            .collect::<Result<_>>()
        })
    }

    /// A goal by uuid or name.
    pub fn goal(&self, id: &str) -> Result<GoalRow> {
        self.read(|db| {
            db.opt(
                &format!(
                    "SELECT {GOAL_COLS} FROM goals WHERE deleted = 0 AND (uuid = $1 OR name = $1) \
                     ORDER BY id LIMIT 1"
                ),
                args![id],
            )
        })?
        .map(|r| goal_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "goal",
            id: id.into(),
        })
    }

    /// Every strategy not deleted, optionally of one goal (uuid or name).
    pub fn strategies(&self, goal: Option<&str>) -> Result<Vec<StrategyRow>> {
        let goal_id = match goal {
            Some(g) => Some(self.goal(g)?.id),
            None => None,
        };
        self.read(|db| {
            db
                .rows(
                    &format!(
                        "SELECT {STRATEGY_COLS} FROM strategies s JOIN goals g ON g.id = s.goal_id \
                         WHERE s.deleted = 0 AND ($1::bigint IS NULL OR s.goal_id = $1) ORDER BY s.id"
                    ),
                    args![goal_id],
                )?
                .iter()
                .map(strategy_from_row)
                .collect::<Result<_>>()
        })
    }

    /// A strategy by uuid or name.
    pub fn strategy(&self, id: &str) -> Result<StrategyRow> {
        self.read(|db| {
            db.opt(
                &format!(
                    "SELECT {STRATEGY_COLS} FROM strategies s JOIN goals g ON g.id = s.goal_id \
                     WHERE s.deleted = 0 AND (s.uuid = $1 OR s.name = $1) ORDER BY s.id LIMIT 1"
                ),
                args![id],
            )
        })?
        .map(|r| strategy_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "strategy",
            id: id.into(),
        })
    }

    /// Records each action type's description, updating those that
    /// changed; one transaction, nothing written when none changed.
    pub fn sync_action_descriptions(&mut self, types: &[(String, String)]) -> Result<usize> {
        let recorded: std::collections::HashMap<String, String> = self
            .read(|db| {
                db.rows(
                    "SELECT action_type, description FROM action_descriptions",
                    &[],
                )
            })?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<Result<_>>()?;
        let changed: Vec<&(String, String)> = types
            .iter()
            .filter(|(t, d)| recorded.get(t) != Some(d))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        self.write(|db| {
            let mut n = 0;
            for (t, d) in changed {
                n += db.exec(
                    "INSERT INTO action_descriptions (action_type, description, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (action_type) DO UPDATE \
                     SET description = excluded.description, updated_at = excluded.created_at \
                     WHERE action_descriptions.description <> excluded.description",
                    args![t, d, now()],
                )?;
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// An action type's recorded description.
    pub fn action_description(&self, action_type: &str) -> Result<Option<String>> {
        self.read(|db| {
            db.opt(
                "SELECT description FROM action_descriptions WHERE action_type = $1",
                args![action_type],
            )
        })?
        .map(|r| r.get(0))
        .transpose()
    }
}
