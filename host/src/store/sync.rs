//! Synchronisation of goals and strategies with what the strategy plugins
//! declare, following Watcher's Syncer (reference section 5.5), in one
//! transaction.
//!
//! * A discovered goal or strategy that is new is created; one that changed
//!   (display name, efficacy specification, parameter schema, or its goal)
//!   replaces the old row, which is soft-deleted; references are remapped.
//! * A goal or strategy no longer declared is soft-deleted. Audit templates
//!   whose goal vanished are reported (and flagged by `audit-template list`);
//!   those whose strategy vanished lose it.
//! * Audits and plans whose strategy changed or vanished, or whose goal
//!   vanished, are CANCELLED. Unlike Watcher, only those that can still run
//!   are: PENDING, ONGOING and SUSPENDED audits, RECOMMENDED and PENDING
//!   plans. A finished audit keeps its state; a running plan is left to its
//!   applier, with a warning.

use super::columns::enum_col;
use super::{Event, Result, SqliteStore, Store, append_event, json_col, new_uuid, now};
use crate::plugins::PluginRegistry;
use crate::states::{AuditState, EventType, PlanState};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Value, json};
use sextant_plugin_api::Kind;
use std::collections::{BTreeMap, HashMap};

/// A goal as the plugins declare it.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveredGoal {
    /// The goal's id.
    pub name: String,
    /// Display names by language.
    pub display_names: BTreeMap<String, String>,
    /// The efficacy specification.
    pub efficacy_specification: Value,
}

impl DiscoveredGoal {
    pub(super) fn display_name(&self) -> String {
        sextant_plugin_api::manifest::pick_translation(&self.display_names, "en")
            .unwrap_or(&self.name)
            .to_string()
    }
}

/// A strategy as a plugin declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveredStrategy {
    /// Its name.
    pub name: String,
    /// The goal it achieves.
    pub goal: String,
    /// Display names by language.
    pub display_names: BTreeMap<String, String>,
    /// JSON Schema of its parameters.
    pub parameters_spec: Value,
    /// The entry's version.
    pub version: String,
    /// The plugin file.
    pub plugin_file: String,
    /// The planner its solutions are scheduled with.
    pub planner: String,
}

impl DiscoveredStrategy {
    pub(super) fn display_name(&self) -> String {
        sextant_plugin_api::manifest::pick_translation(&self.display_names, "en")
            .unwrap_or(&self.name)
            .to_string()
    }
}

/// Reads goals and strategies from the loaded strategy entries. When two
/// strategies declare one goal differently, the first in path order wins.
pub fn discover(plugins: &PluginRegistry) -> (Vec<DiscoveredGoal>, Vec<DiscoveredStrategy>) {
    let mut goals: Vec<DiscoveredGoal> = Vec::new();
    let mut strategies = Vec::new();
    for e in plugins.of_kind(Kind::Strategy) {
        let m = e.manifest();
        let Some(g) = &m.goal else { continue };
        let goal = DiscoveredGoal {
            name: g.name.clone(),
            display_names: g.display_name.clone(),
            efficacy_specification: g.efficacy_specification.clone(),
        };
        match goals.iter().find(|x| x.name == goal.name) {
            Some(first) if *first != goal => tracing::warn!(
                "strategy {} declares goal {} differently from an earlier strategy: using the first declaration",
                m.name,
                goal.name
            ),
            Some(_) => {}
            None => goals.push(goal),
        }
        strategies.push(DiscoveredStrategy {
            name: m.name.clone(),
            goal: g.name.clone(),
            display_names: m.display_name.clone(),
            parameters_spec: m.parameters.clone(),
            version: m.version.clone(),
            plugin_file: e.library.path.display().to_string(),
            planner: m.planner.clone().unwrap_or_else(|| "weight".into()),
        });
    }
    (goals, strategies)
}

/// What a synchronisation changed.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SyncReport {
    /// Goals created (new or changed).
    pub goals_created: Vec<String>,
    /// Goals soft-deleted because no plugin declares them any more.
    pub goals_deleted: Vec<String>,
    /// Strategies created (new or changed).
    pub strategies_created: Vec<String>,
    /// Strategies soft-deleted because no plugin declares them any more.
    pub strategies_deleted: Vec<String>,
    /// Audit templates whose goal vanished (uuids).
    pub templates_without_goal: Vec<String>,
    /// Audit templates that lost their vanished strategy (uuids).
    pub templates_strategy_removed: Vec<String>,
    /// Audits cancelled (uuids).
    pub audits_cancelled: Vec<String>,
    /// Action plans cancelled (uuids).
    pub plans_cancelled: Vec<String>,
}

impl SyncReport {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

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

fn db_goals(tx: &Transaction<'_>) -> rusqlite::Result<Vec<DbGoal>> {
    let mut st = tx.prepare(
        "SELECT id, name, display_name, display_names, efficacy_specification FROM goals WHERE deleted = 0 ORDER BY id",
    )?;
    st.query_map([], |r| {
        Ok(DbGoal {
            id: r.get(0)?,
            name: r.get(1)?,
            display_name: r.get(2)?,
            display_names: json_col(r.get(3)?),
            efficacy_specification: json_col(r.get(4)?),
        })
    })?
    .collect()
}

fn db_strategies(tx: &Transaction<'_>) -> rusqlite::Result<Vec<DbStrategy>> {
    let mut st = tx.prepare(
        "SELECT id, name, goal_id, display_name, display_names, parameters_spec, version, plugin_file, planner \
         FROM strategies WHERE deleted = 0 ORDER BY id",
    )?;
    st.query_map([], |r| {
        Ok(DbStrategy {
            id: r.get(0)?,
            name: r.get(1)?,
            goal_id: r.get(2)?,
            display_name: r.get(3)?,
            display_names: json_col(r.get(4)?),
            parameters_spec: json_col(r.get(5)?),
            version: r.get(6)?,
            plugin_file: r.get(7)?,
            planner: r.get(8)?,
        })
    })?
    .collect()
}

fn soft_delete(tx: &Transaction<'_>, table: &str, id: i64) -> rusqlite::Result<()> {
    tx.execute(
        &format!("UPDATE {table} SET deleted = 1, deleted_at = ?1 WHERE id = ?2"),
        params![now(), id],
    )?;
    Ok(())
}

/// Cancels the audits selected by `filter` (an SQL condition on `audits`)
/// that can still run, with their events; returns their ids and uuids.
fn cancel_audits(
    tx: &Transaction<'_>,
    filter: &str,
    arg: i64,
    reason: &str,
    report: &mut SyncReport,
) -> rusqlite::Result<Vec<i64>> {
    let mut st = tx.prepare(&format!(
        "SELECT id, uuid, state FROM audits WHERE deleted = 0 \
         AND state IN ('PENDING', 'ONGOING', 'SUSPENDED') AND {filter}"
    ))?;
    let rows: Vec<(i64, String, AuditState)> = st
        .query_map([arg], |r| {
            Ok((r.get(0)?, r.get(1)?, enum_col(r, 2, 0, "audits", "state")?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, uuid, state) in &rows {
        // Compare-and-set, as every state change.
        let n = tx.execute(
            "UPDATE audits SET state = 'CANCELLED', status_message = ?1, updated_at = ?2 \
             WHERE id = ?3 AND state = ?4",
            params![reason, now(), id, state],
        )?;
        if n == 0 {
            continue;
        }
        append_event(
            tx,
            &Event::state_change(
                EventType::AuditUpdate,
                uuid,
                Some(state.as_str()),
                "CANCELLED",
            )
            .with_payload(json!({"reason": reason})),
        )?;
        report.audits_cancelled.push(uuid.clone());
    }
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Cancels the plans selected by `filter` (an SQL condition on
/// `action_plans`) that have not started, with their events.
fn cancel_plans(
    tx: &Transaction<'_>,
    filter: &str,
    arg: i64,
    reason: &str,
    report: &mut SyncReport,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare(&format!(
        "SELECT id, uuid, state FROM action_plans WHERE deleted = 0 AND {filter}"
    ))?;
    let rows: Vec<(i64, String, PlanState)> = st
        .query_map([arg], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                enum_col(r, 2, 0, "action_plans", "state")?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, uuid, state) in rows {
        match state {
            PlanState::Recommended | PlanState::Pending => {}
            PlanState::Ongoing | PlanState::Cancelling => {
                tracing::warn!("action plan {uuid} is {state}: left to its applier ({reason})");
                continue;
            }
            _ => continue,
        }
        let n = tx.execute(
            "UPDATE action_plans SET state = 'CANCELLED', status_message = ?1, updated_at = ?2 \
             WHERE id = ?3 AND state = ?4",
            params![reason, now(), id, state],
        )?;
        if n == 0 {
            continue;
        }
        append_event(
            tx,
            &Event::state_change(
                EventType::PlanUpdate,
                &uuid,
                Some(state.as_str()),
                "CANCELLED",
            )
            .in_plan(&uuid)
            .with_payload(json!({"reason": reason})),
        )?;
        report.plans_cancelled.push(uuid);
    }
    Ok(())
}

fn insert_goal(tx: &Transaction<'_>, g: &DiscoveredGoal) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO goals (uuid, name, display_name, display_names, efficacy_specification, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new_uuid(),
            g.name,
            g.display_name(),
            json!(g.display_names).to_string(),
            g.efficacy_specification.to_string(),
            now()
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn insert_strategy(
    tx: &Transaction<'_>,
    s: &DiscoveredStrategy,
    goal_id: i64,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO strategies (uuid, name, display_name, display_names, goal_id, parameters_spec, version, plugin_file, planner, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
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
    )?;
    Ok(tx.last_insert_rowid())
}

/// Synchronises the store with the discovered goals and strategies.
pub fn sync(
    store: &mut Store,
    goals: &[DiscoveredGoal],
    strategies: &[DiscoveredStrategy],
) -> Result<SyncReport> {
    store.sync_goals_and_strategies(goals, strategies)
}

impl SqliteStore {
    /// [`super::StoreBackend::sync_goals_and_strategies`] on SQLite.
    pub(super) fn sync_goals_and_strategies(
        &mut self,
        goals: &[DiscoveredGoal],
        strategies: &[DiscoveredStrategy],
    ) -> Result<SyncReport> {
        self.write(|tx| {
        let mut report = SyncReport::default();
        let mut goal_map: HashMap<i64, i64> = HashMap::new();
        let mut strategy_map: HashMap<i64, i64> = HashMap::new();

        // Goals: create new ones, replace changed ones.
        let existing = db_goals(tx)?;
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
                soft_delete(tx, "goals", e.id)?;
            }
            let new_id = insert_goal(tx, g)?;
            for e in &same {
                goal_map.insert(e.id, new_id);
            }
            report.goals_created.push(g.name.clone());
        }

        // Strategies: create new ones, replace changed ones (or those whose
        // goal was replaced); refresh version and file in place.
        let existing = db_strategies(tx)?;
        for s in strategies {
            let goal_id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM goals WHERE deleted = 0 AND name = ?1",
                    [&s.goal],
                    |r| r.get(0),
                )
                .optional()?;
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
                    tx.execute(
                        "UPDATE strategies SET version = ?1, plugin_file = ?2, planner = ?3, updated_at = ?4 WHERE id = ?5",
                        params![s.version, s.plugin_file, s.planner, now(), e.id],
                    )?;
                }
                continue;
            }
            for e in &same {
                soft_delete(tx, "strategies", e.id)?;
            }
            let new_id = insert_strategy(tx, s, goal_id)?;
            for e in &same {
                strategy_map.insert(e.id, new_id);
            }
            report.strategies_created.push(s.name.clone());
        }

        // Remap references to replaced goals.
        for (old, new) in &goal_map {
            tx.execute(
                "UPDATE audit_templates SET goal_id = ?1, updated_at = ?2 WHERE goal_id = ?3 AND deleted = 0",
                params![new, now(), old],
            )?;
            tx.execute(
                "UPDATE audits SET goal_id = ?1, updated_at = ?2 WHERE goal_id = ?3 AND deleted = 0",
                params![new, now(), old],
            )?;
        }
        // Remap references to replaced strategies; cancel what used them.
        for (old, new) in &strategy_map {
            tx.execute(
                "UPDATE audit_templates SET strategy_id = ?1, updated_at = ?2 WHERE strategy_id = ?3 AND deleted = 0",
                params![new, now(), old],
            )?;
            let reason = "its strategy changed";
            let audits = cancel_audits(tx, "strategy_id = ?1", *old, reason, &mut report)?;
            for a in audits {
                cancel_plans(tx, "audit_id = ?1", a, reason, &mut report)?;
            }
            cancel_plans(tx, "strategy_id = ?1", *old, reason, &mut report)?;
            tx.execute(
                "UPDATE audits SET strategy_id = ?1 WHERE strategy_id = ?2 AND deleted = 0",
                params![new, old],
            )?;
            tx.execute(
                "UPDATE action_plans SET strategy_id = ?1 WHERE strategy_id = ?2 AND deleted = 0",
                params![new, old],
            )?;
        }

        // Strategies no longer declared.
        for e in db_strategies(tx)? {
            if strategies.iter().any(|s| s.name == e.name) {
                continue;
            }
            soft_delete(tx, "strategies", e.id)?;
            report.strategies_deleted.push(e.name.clone());
            let mut st = tx.prepare(
                "SELECT uuid FROM audit_templates WHERE strategy_id = ?1 AND deleted = 0",
            )?;
            let templates: Vec<String> = st
                .query_map([e.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tx.execute(
                "UPDATE audit_templates SET strategy_id = NULL, updated_at = ?1 WHERE strategy_id = ?2 AND deleted = 0",
                params![now(), e.id],
            )?;
            report.templates_strategy_removed.extend(templates);
            let reason = format!("its strategy {} is no longer provided by any plugin", e.name);
            let audits = cancel_audits(tx, "strategy_id = ?1", e.id, &reason, &mut report)?;
            for a in audits {
                cancel_plans(tx, "audit_id = ?1", a, &reason, &mut report)?;
            }
            cancel_plans(tx, "strategy_id = ?1", e.id, &reason, &mut report)?;
        }

        // Goals no longer declared.
        for e in db_goals(tx)? {
            if goals.iter().any(|g| g.name == e.name) {
                continue;
            }
            soft_delete(tx, "goals", e.id)?;
            report.goals_deleted.push(e.name.clone());
            let mut st =
                tx.prepare("SELECT uuid, name FROM audit_templates WHERE goal_id = ?1 AND deleted = 0")?;
            let templates: Vec<(String, String)> = st
                .query_map([e.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (uuid, name) in templates {
                tracing::warn!(
                    "audit template {name} ({uuid}) refers to goal {}, which no plugin provides any more",
                    e.name
                );
                report.templates_without_goal.push(uuid);
            }
            let reason = format!("its goal {} is no longer provided by any plugin", e.name);
            let audits = cancel_audits(tx, "goal_id = ?1", e.id, &reason, &mut report)?;
            for a in audits {
                cancel_plans(tx, "audit_id = ?1", a, &reason, &mut report)?;
            }
        }
        Ok(report)
    })
    }
}

/// Discovers from the plugins and synchronises.
pub fn sync_with_plugins(store: &mut Store, plugins: &PluginRegistry) -> Result<SyncReport> {
    let (goals, strategies) = discover(plugins);
    let report = sync(store, &goals, &strategies)?;
    if !report.is_empty() {
        tracing::info!("synchronised goals and strategies: {report:?}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(name: &str, display: &str) -> DiscoveredGoal {
        DiscoveredGoal {
            name: name.into(),
            display_names: BTreeMap::from([("en".to_string(), display.to_string())]),
            efficacy_specification: json!([]),
        }
    }

    fn strategy(name: &str, goal: &str, max: f64) -> DiscoveredStrategy {
        DiscoveredStrategy {
            name: name.into(),
            goal: goal.into(),
            display_names: BTreeMap::from([("en".to_string(), format!("{name} strategy"))]),
            parameters_spec: json!({"type": "object", "properties": {"p": {"type": "number", "maximum": max}}}),
            version: "1.0.0".into(),
            plugin_file: "/x.so".into(),
            planner: "weight".into(),
        }
    }

    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        sync_creates_replaces_and_deletes_like_watcher,
        version_and_file_changes_update_in_place,
    );

    fn id(s: &TestStore, sql: &str) -> i64 {
        s.int(sql).expect(sql)
    }

    fn sync_creates_replaces_and_deletes_like_watcher(mut s: TestStore) {
        let r = s
            .sync_goals_and_strategies(
                &[goal("dummy", "Dummy goal")],
                &[strategy("dummy", "dummy", 10.2)],
            )
            .expect("sync");
        assert_eq!(r.goals_created, vec!["dummy"]);
        assert_eq!(r.strategies_created, vec!["dummy"]);
        // Idempotent.
        let r = s
            .sync_goals_and_strategies(
                &[goal("dummy", "Dummy goal")],
                &[strategy("dummy", "dummy", 10.2)],
            )
            .expect("sync");
        assert!(r.is_empty(), "{r:?}");

        // A template, an audit and a plan using the strategy.
        let sid = id(&s, "SELECT id FROM strategies WHERE deleted = 0");
        let gid = id(&s, "SELECT id FROM goals WHERE deleted = 0");
        s.exec(&format!(
            "INSERT INTO audit_templates (uuid, name, goal_id, strategy_id, created_at) VALUES ('t1', 'at1', {gid}, {sid}, 'now');
             INSERT INTO audits (uuid, name, audit_type, state, goal_id, strategy_id, created_at) VALUES ('a1', 'a1', 'CONTINUOUS', 'ONGOING', {gid}, {sid}, 'now');
             INSERT INTO audits (uuid, name, audit_type, state, goal_id, strategy_id, created_at) VALUES ('a2', 'a2', 'ONESHOT', 'SUCCEEDED', {gid}, {sid}, 'now');
             INSERT INTO action_plans (uuid, audit_id, strategy_id, state, created_at) VALUES ('p1', (SELECT id FROM audits WHERE uuid='a1'), {sid}, 'RECOMMENDED', 'now');
             INSERT INTO action_plans (uuid, audit_id, strategy_id, state, created_at) VALUES ('p2', (SELECT id FROM audits WHERE uuid='a2'), {sid}, 'SUCCEEDED', 'now');"
        ));

        // The schema changes: the strategy is replaced, users remapped and
        // the runnable ones cancelled.
        let r = s
            .sync_goals_and_strategies(
                &[goal("dummy", "Dummy goal")],
                &[strategy("dummy", "dummy", 20.0)],
            )
            .expect("sync");
        assert_eq!(r.strategies_created, vec!["dummy"]);
        assert_eq!(r.audits_cancelled, vec!["a1"]);
        assert_eq!(r.plans_cancelled, vec!["p1"]);
        let new_sid = id(&s, "SELECT id FROM strategies WHERE deleted = 0");
        assert_ne!(new_sid, sid);
        assert_eq!(id(&s, "SELECT strategy_id FROM audit_templates"), new_sid);
        assert_eq!(
            s.text("SELECT state FROM audits WHERE uuid = 'a2'"),
            "SUCCEEDED"
        );
        assert_eq!(
            s.text("SELECT state FROM action_plans WHERE uuid = 'p2'"),
            "SUCCEEDED"
        );
        assert_eq!(
            id(&s, "SELECT count(*) FROM strategies WHERE deleted = 1"),
            1
        );
        assert_eq!(
            id(
                &s,
                "SELECT count(*) FROM events WHERE object_uuid IN ('a1', 'p1')"
            ),
            2
        );

        // The display name of the goal changes: goal replaced, references
        // remapped, strategy re-created under the new goal.
        let r = s
            .sync_goals_and_strategies(
                &[goal("dummy", "Dummy")],
                &[strategy("dummy", "dummy", 20.0)],
            )
            .expect("sync");
        assert_eq!(r.goals_created, vec!["dummy"]);
        assert_eq!(r.strategies_created, vec!["dummy"]);
        let new_gid = id(&s, "SELECT id FROM goals WHERE deleted = 0");
        assert_eq!(id(&s, "SELECT goal_id FROM audit_templates"), new_gid);

        // The plugin goes away: both soft-deleted; the template loses its
        // strategy and is reported for its goal.
        let r = s.sync_goals_and_strategies(&[], &[]).expect("sync");
        assert_eq!(r.goals_deleted, vec!["dummy"]);
        assert_eq!(r.strategies_deleted, vec!["dummy"]);
        assert_eq!(r.templates_strategy_removed, vec!["t1"]);
        assert_eq!(r.templates_without_goal, vec!["t1"]);
        assert!(s.int("SELECT strategy_id FROM audit_templates").is_none());
        assert!(s.goals().expect("goals").is_empty());
        assert!(s.strategies(None).expect("strategies").is_empty());
    }

    fn version_and_file_changes_update_in_place(mut s: TestStore) {
        s.sync_goals_and_strategies(&[goal("g", "G")], &[strategy("x", "g", 1.0)])
            .expect("sync");
        let uuid = s.strategy("x").expect("x").uuid;
        let mut moved = strategy("x", "g", 1.0);
        moved.version = "1.0.1".into();
        moved.plugin_file = "/y.so".into();
        let r = s
            .sync_goals_and_strategies(&[goal("g", "G")], &[moved])
            .expect("sync");
        assert!(r.is_empty());
        let x = s.strategy("x").expect("x");
        assert_eq!(
            (x.uuid, x.version.as_str(), x.plugin_file.as_str()),
            (uuid, "1.0.1", "/y.so")
        );
    }
}
