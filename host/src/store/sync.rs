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

/// A goal as stored (not deleted).
pub(super) struct DbGoal {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) display_name: String,
    pub(super) display_names: Value,
    pub(super) efficacy_specification: Value,
}

/// A strategy as stored (not deleted).
pub(super) struct DbStrategy {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) goal_id: i64,
    pub(super) display_name: String,
    pub(super) display_names: Value,
    pub(super) parameters_spec: Value,
    pub(super) version: String,
    pub(super) plugin_file: String,
    pub(super) planner: String,
}

/// A reference the Syncer follows: which rows point at a goal, a strategy
/// or an audit.
#[derive(Clone, Copy, Debug)]
pub(super) enum RefersTo {
    /// `goal_id`.
    Goal,
    /// `strategy_id`.
    Strategy,
    /// `audit_id` (plans only).
    Audit,
}

impl RefersTo {
    pub(super) fn column(self) -> &'static str {
        match self {
            RefersTo::Goal => "goal_id",
            RefersTo::Strategy => "strategy_id",
            RefersTo::Audit => "audit_id",
        }
    }
}

/// The tables whose references to goals and strategies are remapped when
/// one is replaced.
#[derive(Clone, Copy, Debug)]
pub(super) enum Referrer {
    /// `audit_templates` (its `updated_at` is set).
    Templates,
    /// `audits` (`updated_at` set for a goal, not for a strategy: Watcher's).
    Audits,
    /// `action_plans`.
    Plans,
}

impl Referrer {
    pub(super) fn table(self) -> &'static str {
        match self {
            Referrer::Templates => "audit_templates",
            Referrer::Audits => "audits",
            Referrer::Plans => "action_plans",
        }
    }
}

/// What the Syncer's rules read and write, inside the one transaction of a
/// synchronisation; each backend implements it with its statements only
/// (SQLite below, PostgreSQL in `pg_sync.rs`), the rules are [`sync_in`].
pub(super) trait SyncDb {
    /// The backend's error.
    type Error;
    /// The goals not deleted, by id.
    fn goals(&mut self) -> std::result::Result<Vec<DbGoal>, Self::Error>;
    /// The strategies not deleted, by id.
    fn strategies(&mut self) -> std::result::Result<Vec<DbStrategy>, Self::Error>;
    /// The id of the goal (not deleted) named `name`.
    fn goal_id(&mut self, name: &str) -> std::result::Result<Option<i64>, Self::Error>;
    /// Soft-deletes row `id` of `goals` or `strategies`.
    fn soft_delete(&mut self, table: &'static str, id: i64)
    -> std::result::Result<(), Self::Error>;
    /// Inserts a goal; its id.
    fn insert_goal(&mut self, g: &DiscoveredGoal) -> std::result::Result<i64, Self::Error>;
    /// Inserts a strategy of goal `goal_id`; its id.
    fn insert_strategy(
        &mut self,
        s: &DiscoveredStrategy,
        goal_id: i64,
    ) -> std::result::Result<i64, Self::Error>;
    /// Sets a strategy's version, plugin file and planner in place.
    fn refresh_strategy(
        &mut self,
        id: i64,
        s: &DiscoveredStrategy,
    ) -> std::result::Result<(), Self::Error>;
    /// Points `by`'s rows (not deleted) that refer to `old` at `new`;
    /// with `touch`, their `updated_at` is set.
    fn remap(
        &mut self,
        by: Referrer,
        refers: RefersTo,
        old: i64,
        new: i64,
        touch: bool,
    ) -> std::result::Result<(), Self::Error>;
    /// The audits (not deleted) that can still run (PENDING, ONGOING,
    /// SUSPENDED) and refer to `id`: id, uuid, state, by id.
    fn runnable_audits(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> std::result::Result<Vec<(i64, String, AuditState)>, Self::Error>;
    /// The plans (not deleted) that refer to `id`: id, uuid, state, by id.
    fn plans(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> std::result::Result<Vec<(i64, String, PlanState)>, Self::Error>;
    /// Compare-and-set of an audit from `from` to CANCELLED with
    /// `reason`, and its event; false when it was no longer `from`.
    fn cancel_audit(
        &mut self,
        id: i64,
        uuid: &str,
        from: AuditState,
        reason: &str,
    ) -> std::result::Result<bool, Self::Error>;
    /// The same for a plan.
    fn cancel_plan(
        &mut self,
        id: i64,
        uuid: &str,
        from: PlanState,
        reason: &str,
    ) -> std::result::Result<bool, Self::Error>;
    /// The audit templates (not deleted) of strategy `id`: uuid and name.
    fn templates(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> std::result::Result<Vec<(String, String)>, Self::Error>;
    /// Takes strategy `id` from the audit templates (not deleted) that use it.
    fn drop_template_strategy(&mut self, id: i64) -> std::result::Result<(), Self::Error>;
}

/// The audit event of a cancellation by the Syncer.
pub(super) fn audit_cancelled<'a>(uuid: &'a str, from: AuditState, reason: &str) -> Event<'a> {
    Event::state_change(
        EventType::AuditUpdate,
        uuid,
        Some(from.as_str()),
        "CANCELLED",
    )
    .with_payload(json!({"reason": reason}))
}

/// The plan event of a cancellation by the Syncer.
pub(super) fn plan_cancelled<'a>(uuid: &'a str, from: PlanState, reason: &str) -> Event<'a> {
    Event::state_change(
        EventType::PlanUpdate,
        uuid,
        Some(from.as_str()),
        "CANCELLED",
    )
    .in_plan(uuid)
    .with_payload(json!({"reason": reason}))
}

/// Cancels the audits referring to `id` that can still run, and the plans
/// of every audit selected; then the plans referring to `id` directly
/// (unless `id` is a goal: plans refer to strategies, not goals).
fn cancel_users<D: SyncDb>(
    db: &mut D,
    refers: RefersTo,
    id: i64,
    reason: &str,
    report: &mut SyncReport,
) -> std::result::Result<(), D::Error> {
    for (audit_id, uuid, state) in db.runnable_audits(refers, id)? {
        if db.cancel_audit(audit_id, &uuid, state, reason)? {
            report.audits_cancelled.push(uuid);
        }
        cancel_plans(db, RefersTo::Audit, audit_id, reason, report)?;
    }
    if !matches!(refers, RefersTo::Goal) {
        cancel_plans(db, refers, id, reason, report)?;
    }
    Ok(())
}

/// Cancels the plans referring to `id` that have not started; a running
/// one is left to its applier, with a warning.
fn cancel_plans<D: SyncDb>(
    db: &mut D,
    refers: RefersTo,
    id: i64,
    reason: &str,
    report: &mut SyncReport,
) -> std::result::Result<(), D::Error> {
    for (plan_id, uuid, state) in db.plans(refers, id)? {
        match state {
            PlanState::Recommended | PlanState::Pending => {}
            PlanState::Ongoing | PlanState::Cancelling => {
                tracing::warn!("action plan {uuid} is {state}: left to its applier ({reason})");
                continue;
            }
            _ => continue,
        }
        if db.cancel_plan(plan_id, &uuid, state, reason)? {
            report.plans_cancelled.push(uuid);
        }
    }
    Ok(())
}

/// The Syncer's rules (module docs), over either backend, inside one
/// transaction.
pub(super) fn sync_in<D: SyncDb>(
    db: &mut D,
    goals: &[DiscoveredGoal],
    strategies: &[DiscoveredStrategy],
) -> std::result::Result<SyncReport, D::Error> {
    let mut report = SyncReport::default();
    let mut goal_map: HashMap<i64, i64> = HashMap::new();
    let mut strategy_map: HashMap<i64, i64> = HashMap::new();

    // Goals: create new ones, replace changed ones.
    let existing = db.goals()?;
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
            db.soft_delete("goals", e.id)?;
        }
        let new_id = db.insert_goal(g)?;
        for e in &same {
            goal_map.insert(e.id, new_id);
        }
        report.goals_created.push(g.name.clone());
    }

    // Strategies: create new ones, replace changed ones (or those whose
    // goal was replaced); refresh version and file in place.
    let existing = db.strategies()?;
    for s in strategies {
        let Some(goal_id) = db.goal_id(&s.goal)? else {
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
                db.refresh_strategy(e.id, s)?;
            }
            continue;
        }
        for e in &same {
            db.soft_delete("strategies", e.id)?;
        }
        let new_id = db.insert_strategy(s, goal_id)?;
        for e in &same {
            strategy_map.insert(e.id, new_id);
        }
        report.strategies_created.push(s.name.clone());
    }

    // Remap references to replaced goals.
    for (&old, &new) in &goal_map {
        db.remap(Referrer::Templates, RefersTo::Goal, old, new, true)?;
        db.remap(Referrer::Audits, RefersTo::Goal, old, new, true)?;
    }
    // Remap references to replaced strategies; cancel what used them.
    for (&old, &new) in &strategy_map {
        db.remap(Referrer::Templates, RefersTo::Strategy, old, new, true)?;
        cancel_users(
            db,
            RefersTo::Strategy,
            old,
            "its strategy changed",
            &mut report,
        )?;
        db.remap(Referrer::Audits, RefersTo::Strategy, old, new, false)?;
        db.remap(Referrer::Plans, RefersTo::Strategy, old, new, false)?;
    }

    // Strategies no longer declared.
    for e in db.strategies()? {
        if strategies.iter().any(|s| s.name == e.name) {
            continue;
        }
        db.soft_delete("strategies", e.id)?;
        report.strategies_deleted.push(e.name.clone());
        let templates = db.templates(RefersTo::Strategy, e.id)?;
        db.drop_template_strategy(e.id)?;
        report
            .templates_strategy_removed
            .extend(templates.into_iter().map(|(uuid, _)| uuid));
        let reason = format!(
            "its strategy {} is no longer provided by any plugin",
            e.name
        );
        cancel_users(db, RefersTo::Strategy, e.id, &reason, &mut report)?;
    }

    // Goals no longer declared.
    for e in db.goals()? {
        if goals.iter().any(|g| g.name == e.name) {
            continue;
        }
        db.soft_delete("goals", e.id)?;
        report.goals_deleted.push(e.name.clone());
        for (uuid, name) in db.templates(RefersTo::Goal, e.id)? {
            tracing::warn!(
                "audit template {name} ({uuid}) refers to goal {}, which no plugin provides any more",
                e.name
            );
            report.templates_without_goal.push(uuid);
        }
        let reason = format!("its goal {} is no longer provided by any plugin", e.name);
        cancel_users(db, RefersTo::Goal, e.id, &reason, &mut report)?;
    }
    Ok(report)
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
        self.write(|tx| sync_in(&mut SqliteSync(tx), goals, strategies))
    }
}

/// The Syncer's statements on SQLite.
struct SqliteSync<'a, 'b>(&'a Transaction<'b>);

impl SyncDb for SqliteSync<'_, '_> {
    type Error = rusqlite::Error;

    fn goals(&mut self) -> rusqlite::Result<Vec<DbGoal>> {
        let mut st = self.0.prepare(
            "SELECT id, name, display_name, display_names, efficacy_specification FROM goals \
             WHERE deleted = 0 ORDER BY id",
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

    fn strategies(&mut self) -> rusqlite::Result<Vec<DbStrategy>> {
        let mut st = self.0.prepare(
            "SELECT id, name, goal_id, display_name, display_names, parameters_spec, version, \
             plugin_file, planner FROM strategies WHERE deleted = 0 ORDER BY id",
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

    fn goal_id(&mut self, name: &str) -> rusqlite::Result<Option<i64>> {
        self.0
            .query_row(
                "SELECT id FROM goals WHERE deleted = 0 AND name = ?1 ORDER BY id LIMIT 1",
                [name],
                |r| r.get(0),
            )
            .optional()
    }

    fn soft_delete(&mut self, table: &'static str, id: i64) -> rusqlite::Result<()> {
        self.0.execute(
            &format!("UPDATE {table} SET deleted = 1, deleted_at = ?1 WHERE id = ?2"),
            params![now(), id],
        )?;
        Ok(())
    }

    fn insert_goal(&mut self, g: &DiscoveredGoal) -> rusqlite::Result<i64> {
        self.0.execute(
            "INSERT INTO goals (uuid, name, display_name, display_names, efficacy_specification, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                new_uuid(),
                g.name,
                g.display_name(),
                json!(g.display_names).to_string(),
                g.efficacy_specification.to_string(),
                now()
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn insert_strategy(&mut self, s: &DiscoveredStrategy, goal_id: i64) -> rusqlite::Result<i64> {
        self.0.execute(
            "INSERT INTO strategies (uuid, name, display_name, display_names, goal_id, \
             parameters_spec, version, plugin_file, planner, created_at) \
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
        Ok(self.0.last_insert_rowid())
    }

    fn refresh_strategy(&mut self, id: i64, s: &DiscoveredStrategy) -> rusqlite::Result<()> {
        self.0.execute(
            "UPDATE strategies SET version = ?1, plugin_file = ?2, planner = ?3, updated_at = ?4 \
             WHERE id = ?5",
            params![s.version, s.plugin_file, s.planner, now(), id],
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
    ) -> rusqlite::Result<()> {
        let (table, column) = (by.table(), refers.column());
        if touch {
            self.0.execute(
                &format!(
                    "UPDATE {table} SET {column} = ?1, updated_at = ?2 \
                     WHERE {column} = ?3 AND deleted = 0"
                ),
                params![new, now(), old],
            )?;
        } else {
            self.0.execute(
                &format!("UPDATE {table} SET {column} = ?1 WHERE {column} = ?2 AND deleted = 0"),
                params![new, old],
            )?;
        }
        Ok(())
    }

    fn runnable_audits(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> rusqlite::Result<Vec<(i64, String, AuditState)>> {
        let mut st = self.0.prepare(&format!(
            "SELECT id, uuid, state FROM audits WHERE deleted = 0 \
             AND state IN ('PENDING', 'ONGOING', 'SUSPENDED') AND {} = ?1 ORDER BY id",
            refers.column()
        ))?;
        st.query_map([id], |r| {
            Ok((r.get(0)?, r.get(1)?, enum_col(r, 2, 0, "audits", "state")?))
        })?
        .collect()
    }

    fn plans(
        &mut self,
        refers: RefersTo,
        id: i64,
    ) -> rusqlite::Result<Vec<(i64, String, PlanState)>> {
        let mut st = self.0.prepare(&format!(
            "SELECT id, uuid, state FROM action_plans WHERE deleted = 0 AND {} = ?1 ORDER BY id",
            refers.column()
        ))?;
        st.query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                enum_col(r, 2, 0, "action_plans", "state")?,
            ))
        })?
        .collect()
    }

    fn cancel_audit(
        &mut self,
        id: i64,
        uuid: &str,
        from: AuditState,
        reason: &str,
    ) -> rusqlite::Result<bool> {
        let n = self.0.execute(
            "UPDATE audits SET state = 'CANCELLED', status_message = ?1, updated_at = ?2 \
             WHERE id = ?3 AND state = ?4",
            params![reason, now(), id, from],
        )?;
        if n == 0 {
            return Ok(false);
        }
        append_event(self.0, &audit_cancelled(uuid, from, reason))?;
        Ok(true)
    }

    fn cancel_plan(
        &mut self,
        id: i64,
        uuid: &str,
        from: PlanState,
        reason: &str,
    ) -> rusqlite::Result<bool> {
        let n = self.0.execute(
            "UPDATE action_plans SET state = 'CANCELLED', status_message = ?1, updated_at = ?2 \
             WHERE id = ?3 AND state = ?4",
            params![reason, now(), id, from],
        )?;
        if n == 0 {
            return Ok(false);
        }
        append_event(self.0, &plan_cancelled(uuid, from, reason))?;
        Ok(true)
    }

    fn templates(&mut self, refers: RefersTo, id: i64) -> rusqlite::Result<Vec<(String, String)>> {
        let mut st = self.0.prepare(&format!(
            "SELECT uuid, name FROM audit_templates WHERE {} = ?1 AND deleted = 0 ORDER BY id",
            refers.column()
        ))?;
        st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    fn drop_template_strategy(&mut self, id: i64) -> rusqlite::Result<()> {
        self.0.execute(
            "UPDATE audit_templates SET strategy_id = NULL, updated_at = ?1 \
             WHERE strategy_id = ?2 AND deleted = 0",
            params![now(), id],
        )?;
        Ok(())
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
