//! Goals and strategies synchronised with what the plugins declare, on
//! PostgreSQL, in one transaction: the statements of the Syncer's rules,
//! which are `sync.rs`'s [`sync_in`] (Watcher's Syncer: replace what
//! changed, soft-delete what vanished, remap references, cancel what can no
//! longer run).

use super::pg::PgStore;
use super::pg_sql::{Sql, args, int};
use super::sync::{
    DbGoal, DbStrategy, DiscoveredGoal, DiscoveredStrategy, Referrer, RefersTo, SyncDb, SyncReport,
    audit_cancelled, plan_cancelled, sync_in,
};
use super::{Result, StoreError, json_col, new_uuid, now};
use crate::states::{AuditState, PlanState};
use postgres::Transaction;
use serde_json::json;

/// The advisory lock key a sync holds (any constant all hosts share).
const SYNC_LOCK: i64 = 0x5e87_a400_0002;

impl PgStore {
    /// Synchronises goals and strategies with those the plugins declare,
    /// in one transaction.
    pub fn sync_goals_and_strategies(
        &mut self,
        goals: &[DiscoveredGoal],
        strategies: &[DiscoveredStrategy],
    ) -> Result<SyncReport> {
        self.write(|db| {
            // One sync at a time: two hosts starting at once would both
            // create what is new.
            db.exec("SELECT pg_advisory_xact_lock($1)", args![SYNC_LOCK])?;
            sync_in(&mut PgSync(db), goals, strategies)
        })
    }
}

/// The Syncer's statements on PostgreSQL.
struct PgSync<'a, 'b, 'c>(&'a mut Sql<'b, Transaction<'c>>);

impl SyncDb for PgSync<'_, '_, '_> {
    type Error = StoreError;

    fn goals(&mut self) -> Result<Vec<DbGoal>> {
        self.0
            .rows(
                "SELECT id, name, display_name, display_names, efficacy_specification FROM goals \
                 WHERE deleted = 0 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(DbGoal {
                    id: int(r, 0)?,
                    name: r.get(1)?,
                    display_name: r.get(2)?,
                    display_names: json_col(r.get(3)?),
                    efficacy_specification: json_col(r.get(4)?),
                })
            })
            .collect::<Result<_>>()
    }

    fn strategies(&mut self) -> Result<Vec<DbStrategy>> {
        self.0
            .rows(
                "SELECT id, name, goal_id, display_name, display_names, parameters_spec, version, \
                 plugin_file, planner FROM strategies WHERE deleted = 0 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(DbStrategy {
                    id: int(r, 0)?,
                    name: r.get(1)?,
                    goal_id: int(r, 2)?,
                    display_name: r.get(3)?,
                    display_names: json_col(r.get(4)?),
                    parameters_spec: json_col(r.get(5)?),
                    version: r.get(6)?,
                    plugin_file: r.get(7)?,
                    planner: r.get(8)?,
                })
            })
            .collect::<Result<_>>()
    }

    fn goal_id(&mut self, name: &str) -> Result<Option<i64>> {
        self.0
            .opt(
                "SELECT id FROM goals WHERE deleted = 0 AND name = $1 ORDER BY id LIMIT 1",
                args![name],
            )?
            .map(|r| int(&r, 0))
            .transpose()
    }

    fn soft_delete(&mut self, table: &'static str, id: i64) -> Result<()> {
        self.0.exec(
            &format!("UPDATE {table} SET deleted = 1, deleted_at = $1 WHERE id = $2"),
            args![now(), id],
        )?;
        Ok(())
    }

    fn insert_goal(&mut self, g: &DiscoveredGoal) -> Result<i64> {
        int(
            &self.0.one(
                "INSERT INTO goals (uuid, name, display_name, display_names, \
                 efficacy_specification, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                args![
                    new_uuid(),
                    g.name,
                    g.display_name(),
                    json!(g.display_names).to_string(),
                    g.efficacy_specification.to_string(),
                    now()
                ],
            )?,
            0,
        )
    }

    fn insert_strategy(&mut self, s: &DiscoveredStrategy, goal_id: i64) -> Result<i64> {
        int(
            &self.0.one(
                "INSERT INTO strategies (uuid, name, display_name, display_names, goal_id, \
                 parameters_spec, version, plugin_file, planner, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                args![
                    new_uuid(),
                    s.name,
                    s.display_name(),
                    json!(s.display_names).to_string(),
                    goal_id,
                    s.parameters_spec.to_string(),
                    s.version,
                    s.plugin_file,
                    s.planner,
                    now()
                ],
            )?,
            0,
        )
    }

    fn refresh_strategy(&mut self, id: i64, s: &DiscoveredStrategy) -> Result<()> {
        self.0.exec(
            "UPDATE strategies SET version = $1, plugin_file = $2, planner = $3, \
             updated_at = $4 WHERE id = $5",
            args![s.version, s.plugin_file, s.planner, now(), id],
        )?;
        Ok(())
    }

    fn remap(
        &mut self,
        by: Referrer,
        refers: RefersTo,
        old: i64,
        new: i64,
        touch: bool,
    ) -> Result<()> {
        let (table, column) = (by.table(), refers.column());
        if touch {
            self.0.exec(
                &format!(
                    "UPDATE {table} SET {column} = $1, updated_at = $2 \
                     WHERE {column} = $3 AND deleted = 0"
                ),
                args![new, now(), old],
            )?;
        } else {
            self.0.exec(
                &format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2 AND deleted = 0"),
                args![new, old],
            )?;
        }
        Ok(())
    }

    fn runnable_audits(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> Result<Vec<(i64, String, AuditState)>> {
        let rows = self.0.rows(
            &format!(
                "SELECT id, uuid, state FROM audits WHERE deleted = 0 \
                 AND state IN ('PENDING', 'ONGOING', 'SUSPENDED') AND {} = $1 ORDER BY id",
                refers.column()
            ),
            args![id],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    int(r, 0)?,
                    r.get(1)?,
                    self.0.enum_col(r, 2, 0, "audits", "state")?,
                ))
            })
            .collect()
    }

    fn plans(&mut self, refers: RefersTo, id: i64) -> Result<Vec<(i64, String, PlanState)>> {
        let rows = self.0.rows(
            &format!(
                "SELECT id, uuid, state FROM action_plans WHERE deleted = 0 AND {} = $1 ORDER BY id",
                refers.column()
            ),
            args![id],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    int(r, 0)?,
                    r.get(1)?,
                    self.0.enum_col(r, 2, 0, "action_plans", "state")?,
                ))
            })
            .collect()
    }

    fn cancel_audit(
        &mut self,
        id: i64,
        uuid: &str,
        from: AuditState,
        reason: &str,
    ) -> Result<bool> {
        let at = now();
        let n = self.0.exec(
            "UPDATE audits SET state = 'CANCELLED', status_message = $1, updated_at = $2 \
             WHERE id = $3 AND state = $4",
            args![reason, at, id, from],
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.0.event(&audit_cancelled(uuid, from, reason), &at)?;
        Ok(true)
    }

    fn cancel_plan(&mut self, id: i64, uuid: &str, from: PlanState, reason: &str) -> Result<bool> {
        let at = now();
        let n = self.0.exec(
            "UPDATE action_plans SET state = 'CANCELLED', status_message = $1, updated_at = $2 \
             WHERE id = $3 AND state = $4",
            args![reason, at, id, from],
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.0.event(&plan_cancelled(uuid, from, reason), &at)?;
        Ok(true)
    }

    fn templates(&mut self, refers: RefersTo, id: i64) -> Result<Vec<(String, String)>> {
        self.0
            .rows(
                &format!(
                    "SELECT uuid, name FROM audit_templates WHERE {} = $1 AND deleted = 0 \
                     ORDER BY id",
                    refers.column()
                ),
                args![id],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    fn drop_template_strategy(&mut self, id: i64) -> Result<()> {
        self.0.exec(
            "UPDATE audit_templates SET strategy_id = NULL, updated_at = $1 \
             WHERE strategy_id = $2 AND deleted = 0",
            args![now(), id],
        )?;
        Ok(())
    }
}
