//! Goals and strategies synchronised with what the plugins declare, on
//! PostgreSQL, in one transaction, by the rules of `sync.rs` (Watcher's
//! Syncer: replace what changed, soft-delete what vanished, remap
//! references, cancel what can no longer run).

use super::pg::PgStore;
use super::pg_sql::{Sql, args, int};
use super::sync::{DiscoveredGoal, DiscoveredStrategy, SyncReport};
use super::{Event, Result, json_col, new_uuid, now};
use crate::states::{AuditState, EventType, PlanState};
use postgres::Transaction;
use serde_json::{Value, json};
use std::collections::HashMap;

type Tx<'a, 'b> = Sql<'a, Transaction<'b>>;

/// The advisory lock key a sync holds (any constant all hosts share).
const SYNC_LOCK: i64 = 0x5e87_a400_0002;

struct DbGoal {
    id: i64,
    name: String,
    display_name: String,
    display_names: Value,
    efficacy_specification: Value,
}

struct DbStrategy {
    id: i64,
    name: String,
    goal_id: i64,
    display_name: String,
    display_names: Value,
    parameters_spec: Value,
    version: String,
    plugin_file: String,
    planner: String,
}

fn db_goals(db: &mut Tx<'_, '_>) -> Result<Vec<DbGoal>> {
    Ok(db
        .rows(
            "SELECT id, name, display_name, display_names, efficacy_specification FROM goals \
             WHERE deleted = 0 ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| DbGoal {
            id: int(r, 0),
            name: r.get(1),
            display_name: r.get(2),
            display_names: json_col(r.get(3)),
            efficacy_specification: json_col(r.get(4)),
        })
        .collect())
}

fn db_strategies(db: &mut Tx<'_, '_>) -> Result<Vec<DbStrategy>> {
    Ok(db
        .rows(
            "SELECT id, name, goal_id, display_name, display_names, parameters_spec, version, \
             plugin_file, planner FROM strategies WHERE deleted = 0 ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| DbStrategy {
            id: int(r, 0),
            name: r.get(1),
            goal_id: int(r, 2),
            display_name: r.get(3),
            display_names: json_col(r.get(4)),
            parameters_spec: json_col(r.get(5)),
            version: r.get(6),
            plugin_file: r.get(7),
            planner: r.get(8),
        })
        .collect())
}

fn soft_delete(db: &mut Tx<'_, '_>, table: &str, id: i64) -> Result<()> {
    db.exec(
        &format!("UPDATE {table} SET deleted = 1, deleted_at = $1 WHERE id = $2"),
        args![now(), id],
    )?;
    Ok(())
}

/// Cancels the audits matching `filter` (on `$1`) that can still run;
/// returns the ids of all it selected.
fn cancel_audits(
    db: &mut Tx<'_, '_>,
    filter: &str,
    arg: i64,
    reason: &str,
    report: &mut SyncReport,
) -> Result<Vec<i64>> {
    let rows = db.rows(
        &format!(
            "SELECT id, uuid, state FROM audits WHERE deleted = 0 \
             AND state IN ('PENDING', 'ONGOING', 'SUSPENDED') AND {filter} ORDER BY id"
        ),
        args![arg],
    )?;
    let mut selected = Vec::with_capacity(rows.len());
    for r in &rows {
        let (id, uuid): (i64, String) = (int(r, 0), r.get(1));
        let state: AuditState = db.enum_col(r, 2, 0, "audits", "state")?;
        selected.push(id);
        let at = now();
        let n = db.exec(
            "UPDATE audits SET state = 'CANCELLED', status_message = $1, updated_at = $2 \
             WHERE id = $3 AND state = $4",
            args![reason, at, id, state],
        )?;
        if n == 0 {
            continue;
        }
        db.event(
            &Event::state_change(
                EventType::AuditUpdate,
                &uuid,
                Some(state.as_str()),
                "CANCELLED",
            )
            .with_payload(json!({"reason": reason})),
            &at,
        )?;
        report.audits_cancelled.push(uuid);
    }
    Ok(selected)
}

/// Cancels the plans matching `filter` (on `$1`) not yet running.
fn cancel_plans(
    db: &mut Tx<'_, '_>,
    filter: &str,
    arg: i64,
    reason: &str,
    report: &mut SyncReport,
) -> Result<()> {
    let rows = db.rows(
        &format!(
            "SELECT id, uuid, state FROM action_plans WHERE deleted = 0 AND {filter} ORDER BY id"
        ),
        args![arg],
    )?;
    for r in &rows {
        let (id, uuid): (i64, String) = (int(r, 0), r.get(1));
        let state: PlanState = db.enum_col(r, 2, 0, "action_plans", "state")?;
        match state {
            PlanState::Recommended | PlanState::Pending => {}
            PlanState::Ongoing | PlanState::Cancelling => {
                tracing::warn!("action plan {uuid} is {state}: left to its applier ({reason})");
                continue;
            }
            _ => continue,
        }
        let at = now();
        let n = db.exec(
            "UPDATE action_plans SET state = 'CANCELLED', status_message = $1, updated_at = $2 \
             WHERE id = $3 AND state = $4",
            args![reason, at, id, state],
        )?;
        if n == 0 {
            continue;
        }
        db.event(
            &Event::state_change(
                EventType::PlanUpdate,
                &uuid,
                Some(state.as_str()),
                "CANCELLED",
            )
            .in_plan(&uuid)
            .with_payload(json!({"reason": reason})),
            &at,
        )?;
        report.plans_cancelled.push(uuid);
    }
    Ok(())
}

fn insert_goal(db: &mut Tx<'_, '_>, g: &DiscoveredGoal) -> Result<i64> {
    Ok(int(
        &db.one(
            "INSERT INTO goals (uuid, name, display_name, display_names, efficacy_specification, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
    ))
}

fn insert_strategy(db: &mut Tx<'_, '_>, s: &DiscoveredStrategy, goal_id: i64) -> Result<i64> {
    Ok(int(
        &db.one(
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
    ))
}

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
            sync_in(db, goals, strategies)
        })
    }
}

fn sync_in(
    db: &mut Tx<'_, '_>,
    goals: &[DiscoveredGoal],
    strategies: &[DiscoveredStrategy],
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let mut goal_map: HashMap<i64, i64> = HashMap::new();
    let mut strategy_map: HashMap<i64, i64> = HashMap::new();

    // Goals: create new ones, replace changed ones.
    let existing = db_goals(db)?;
    for g in goals {
        let same: Vec<&DbGoal> = existing.iter().filter(|e| e.name == g.name).collect();
        let identical = same.iter().any(|e| {
            e.display_name == g.display_name()
                && e.display_names == json!(g.display_names)
                && e.efficacy_specification == g.efficacy_specification
        });
        if identical {
            continue;
        }
        for e in &same {
            soft_delete(db, "goals", e.id)?;
        }
        let new_id = insert_goal(db, g)?;
        for e in &same {
            goal_map.insert(e.id, new_id);
        }
        report.goals_created.push(g.name.clone());
    }

    // Strategies: create new ones, replace changed ones (or those whose
    // goal was replaced); refresh version and file in place.
    let existing = db_strategies(db)?;
    for s in strategies {
        let goal_id = db
            .opt(
                "SELECT id FROM goals WHERE deleted = 0 AND name = $1 ORDER BY id LIMIT 1",
                args![s.goal],
            )?
            .map(|r| int(&r, 0));
        let Some(goal_id) = goal_id else {
            tracing::warn!("strategy {}: goal {} is not declared", s.name, s.goal);
            continue;
        };
        let same: Vec<&DbStrategy> = existing.iter().filter(|e| e.name == s.name).collect();
        if let Some(e) = same.iter().find(|e| {
            e.goal_id == goal_id
                && !goal_map.contains_key(&e.goal_id)
                && e.display_name == s.display_name()
                && e.display_names == json!(s.display_names)
                && e.parameters_spec == s.parameters_spec
        }) {
            if e.version != s.version || e.plugin_file != s.plugin_file || e.planner != s.planner {
                db.exec(
                    "UPDATE strategies SET version = $1, plugin_file = $2, planner = $3, \
                     updated_at = $4 WHERE id = $5",
                    args![s.version, s.plugin_file, s.planner, now(), e.id],
                )?;
            }
            continue;
        }
        for e in &same {
            soft_delete(db, "strategies", e.id)?;
        }
        let new_id = insert_strategy(db, s, goal_id)?;
        for e in &same {
            strategy_map.insert(e.id, new_id);
        }
        report.strategies_created.push(s.name.clone());
    }

    // Remap references to replaced goals.
    for (old, new) in &goal_map {
        db.exec(
            "UPDATE audit_templates SET goal_id = $1, updated_at = $2 \
             WHERE goal_id = $3 AND deleted = 0",
            args![new, now(), old],
        )?;
        db.exec(
            "UPDATE audits SET goal_id = $1, updated_at = $2 WHERE goal_id = $3 AND deleted = 0",
            args![new, now(), old],
        )?;
    }
    // Remap references to replaced strategies; cancel what used them.
    for (old, new) in &strategy_map {
        db.exec(
            "UPDATE audit_templates SET strategy_id = $1, updated_at = $2 \
             WHERE strategy_id = $3 AND deleted = 0",
            args![new, now(), old],
        )?;
        let reason = "its strategy changed";
        let audits = cancel_audits(db, "strategy_id = $1", *old, reason, &mut report)?;
        for a in audits {
            cancel_plans(db, "audit_id = $1", a, reason, &mut report)?;
        }
        cancel_plans(db, "strategy_id = $1", *old, reason, &mut report)?;
        db.exec(
            "UPDATE audits SET strategy_id = $1 WHERE strategy_id = $2 AND deleted = 0",
            args![new, old],
        )?;
        db.exec(
            "UPDATE action_plans SET strategy_id = $1 WHERE strategy_id = $2 AND deleted = 0",
            args![new, old],
        )?;
    }

    // Strategies no longer declared.
    for e in db_strategies(db)? {
        if strategies.iter().any(|s| s.name == e.name) {
            continue;
        }
        soft_delete(db, "strategies", e.id)?;
        report.strategies_deleted.push(e.name.clone());
        let templates: Vec<String> = db
            .rows(
                "SELECT uuid FROM audit_templates WHERE strategy_id = $1 AND deleted = 0 ORDER BY id",
                args![e.id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        db.exec(
            "UPDATE audit_templates SET strategy_id = NULL, updated_at = $1 \
             WHERE strategy_id = $2 AND deleted = 0",
            args![now(), e.id],
        )?;
        report.templates_strategy_removed.extend(templates);
        let reason = format!(
            "its strategy {} is no longer provided by any plugin",
            e.name
        );
        let audits = cancel_audits(db, "strategy_id = $1", e.id, &reason, &mut report)?;
        for a in audits {
            cancel_plans(db, "audit_id = $1", a, &reason, &mut report)?;
        }
        cancel_plans(db, "strategy_id = $1", e.id, &reason, &mut report)?;
    }

    // Goals no longer declared.
    for e in db_goals(db)? {
        if goals.iter().any(|g| g.name == e.name) {
            continue;
        }
        soft_delete(db, "goals", e.id)?;
        report.goals_deleted.push(e.name.clone());
        let templates = db.rows(
            "SELECT uuid, name FROM audit_templates WHERE goal_id = $1 AND deleted = 0 ORDER BY id",
            args![e.id],
        )?;
        for r in &templates {
            let (uuid, name): (String, String) = (r.get(0), r.get(1));
            tracing::warn!(
                "audit template {name} ({uuid}) refers to goal {}, which no plugin provides any more",
                e.name
            );
            report.templates_without_goal.push(uuid);
        }
        let reason = format!("its goal {} is no longer provided by any plugin", e.name);
        let audits = cancel_audits(db, "goal_id = $1", e.id, &reason, &mut report)?;
        for a in audits {
            cancel_plans(db, "audit_id = $1", a, &reason, &mut report)?;
        }
    }
    Ok(report)
}
