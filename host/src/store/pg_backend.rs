//! The store's interface on PostgreSQL: [`StoreBackend`] for [`PgStore`],
//! each operation the inherent method of the `pg_*` file of its concern
//! (the SQLite backend's are in `backend.rs`).

use super::apply::{ActionTransition, Lease};
use super::audits::{AuditChanges, AuditRow, NewAudit, NewTemplate, TemplateRow};
use super::flows::{FlowChange, FlowRow, PlanStructure, ScopeMark, ScopeRow};
use super::ids::IdKind;
use super::lifecycle::TemplateChange;
use super::outbox::{SinkCursor, Subjects};
use super::pg::PgStore;
use super::plans::{ActionRow, NewPlan, PlanRow};
use super::sync::{DiscoveredGoal, DiscoveredStrategy, SyncReport};
use super::{EventRow, GoalRow, Result, StoreBackend, StrategyRow};
use crate::states::{ActionState, AuditState, EventType, PlanState};
use serde_json::Value;
use std::path::Path;

impl StoreBackend for PgStore {
    fn is_read_only(&self) -> bool {
        PgStore::is_read_only(self)
    }

    /// PostgreSQL's shared buffers are the server's: nothing to limit in
    /// this process.
    fn limit_cache(&self, _kib: u32) -> Result<()> {
        Ok(())
    }

    /// No WAL checkpoint is this process's business on PostgreSQL.
    fn wait_for_checkpoints(&self) {}

    fn file(&self) -> Option<&Path> {
        None
    }

    fn location(&self) -> String {
        PgStore::location(self).to_string()
    }

    fn schema_version(&self) -> Result<i64> {
        PgStore::schema_version(self)
    }

    fn goals(&self) -> Result<Vec<GoalRow>> {
        PgStore::goals(self)
    }

    fn goal(&self, id: &str) -> Result<GoalRow> {
        PgStore::goal(self, id)
    }

    fn strategies(&self, goal: Option<&str>) -> Result<Vec<StrategyRow>> {
        PgStore::strategies(self, goal)
    }

    fn strategy(&self, id: &str) -> Result<StrategyRow> {
        PgStore::strategy(self, id)
    }

    fn sync_action_descriptions(&mut self, types: &[(String, String)]) -> Result<usize> {
        PgStore::sync_action_descriptions(self, types)
    }

    fn action_description(&self, action_type: &str) -> Result<Option<String>> {
        PgStore::action_description(self, action_type)
    }

    fn last_event_id(&self) -> Result<i64> {
        PgStore::last_event_id(self)
    }

    fn state_counts(&self) -> Result<super::StateCounts> {
        PgStore::state_counts(self)
    }

    fn events(&self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>> {
        PgStore::events(self, plan, after)
    }

    fn events_page(&self, plan: Option<&str>, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        PgStore::events_page(self, plan, after, limit)
    }

    fn action_uuids_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<String>>> {
        PgStore::action_uuids_page(self, plan, after, limit, desc)
    }

    fn live_plans_using(
        &self,
        action_type: &str,
        version: &str,
    ) -> Result<Vec<(String, PlanState)>> {
        PgStore::live_plans_using(self, action_type, version)
    }

    fn acquire_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<std::result::Result<(), Lease>> {
        PgStore::acquire_lease(self, plan_uuid, owner, ttl)
    }

    fn take_over_lease(
        &mut self,
        plan_uuid: &str,
        old_owner: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        PgStore::take_over_lease(self, plan_uuid, old_owner, owner, ttl)
    }

    fn renew_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        PgStore::renew_lease(self, plan_uuid, owner, ttl)
    }

    fn release_lease(&mut self, plan_uuid: &str, owner: &str) -> Result<()> {
        PgStore::release_lease(self, plan_uuid, owner)
    }

    fn plan_lease_is_free(&self, plan_uuid: &str) -> Result<bool> {
        PgStore::plan_lease_is_free(self, plan_uuid)
    }

    fn lease(&self, plan_uuid: &str) -> Result<Option<Lease>> {
        PgStore::lease(self, plan_uuid)
    }

    fn plan_transition(
        &mut self,
        plan_uuid: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        PgStore::plan_transition(self, plan_uuid, from, to, message, event_type)
    }

    fn record_applied_with(
        &mut self,
        plan_uuid: &str,
        from: &[PlanState],
        applied_with: &Value,
        queue: bool,
    ) -> Result<bool> {
        PgStore::record_applied_with(self, plan_uuid, from, applied_with, queue)
    }

    fn action_transition(
        &mut self,
        action_uuid: &str,
        from: &[ActionState],
        to: ActionState,
        message: Option<&str>,
        outputs: Option<&Value>,
        event_type: EventType,
    ) -> Result<bool> {
        PgStore::action_transition(self, action_uuid, from, to, message, outputs, event_type)
    }

    fn action_transitions(&mut self, batch: &[ActionTransition]) -> Result<Vec<Result<bool>>> {
        PgStore::action_transitions(self, batch)
    }

    fn note(
        &mut self,
        event_type: EventType,
        uuid: &str,
        plan: Option<&str>,
        payload: Value,
    ) -> Result<()> {
        PgStore::note(self, event_type, uuid, plan, payload)
    }

    fn cancel_unstarted_plan(&mut self, p: &PlanRow) -> Result<bool> {
        PgStore::cancel_unstarted_plan(self, p)
    }

    fn templates(&self) -> Result<Vec<TemplateRow>> {
        PgStore::templates(self)
    }

    fn template(&self, id: &str) -> Result<TemplateRow> {
        PgStore::template(self, id)
    }

    fn create_template(&mut self, t: &NewTemplate<'_>) -> Result<TemplateRow> {
        PgStore::create_template(self, t)
    }

    fn delete_template(&mut self, id: &str) -> Result<TemplateRow> {
        PgStore::delete_template(self, id)
    }

    fn audits(&self) -> Result<Vec<AuditRow>> {
        PgStore::audits(self)
    }

    fn audit(&self, id: &str) -> Result<AuditRow> {
        PgStore::audit(self, id)
    }

    fn create_audit(&mut self, a: &NewAudit) -> Result<AuditRow> {
        PgStore::create_audit(self, a)
    }

    fn write_audit_move(
        &mut self,
        current: &AuditRow,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        plan: Option<&super::plans::NewPlan>,
    ) -> Result<bool> {
        PgStore::write_audit_move(self, current, to, message, extra, plan)
    }

    fn record_skipped_run(
        &mut self,
        audit: &AuditRow,
        message: &str,
        next_run_time: Option<&str>,
        blocking_plan: (&str, &str),
    ) -> Result<bool> {
        PgStore::record_skipped_run(self, audit, message, next_run_time, blocking_plan)
    }

    fn resolve_id(&self, kind: IdKind, id: &str) -> Result<String> {
        PgStore::resolve_id(self, kind, id)
    }

    fn resolve_action(&self, id: &str, plan: Option<&str>) -> Result<String> {
        PgStore::resolve_action(self, id, plan)
    }

    fn delete_plan(&mut self, id: &str) -> Result<PlanRow> {
        PgStore::delete_plan(self, id)
    }

    fn retry_plan(&mut self, id: &str) -> Result<PlanRow> {
        super::lifecycle::retry_plan(self, id)
    }

    fn write_template_change(
        &mut self,
        t: &TemplateRow,
        change: &TemplateChange<'_>,
    ) -> Result<()> {
        PgStore::write_template_change(self, t, change)
    }

    fn purge_events(&mut self, before: &str) -> Result<usize> {
        PgStore::purge_events(self, before)
    }

    fn plans(&self, audit: Option<&str>) -> Result<Vec<PlanRow>> {
        PgStore::plans(self, audit)
    }

    fn plan(&self, id: &str) -> Result<PlanRow> {
        PgStore::plan(self, id)
    }

    fn plan_state(&self, uuid: &str) -> Result<PlanState> {
        PgStore::plan_state(self, uuid)
    }

    fn plan_extra(&self, uuid: &str) -> Result<Value> {
        PgStore::plan_extra(self, uuid)
    }

    fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        PgStore::actions(self, plan_uuid)
    }

    fn unfinished_actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>> {
        PgStore::unfinished_actions(self, plan_uuid)
    }

    fn action(&self, id: &str) -> Result<ActionRow> {
        PgStore::action(self, id)
    }

    fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<PlanRow> {
        PgStore::create_plan(self, p)
    }

    fn running_plan_of_audit(&self, audit_uuid: &str) -> Result<Option<(String, PlanState)>> {
        PgStore::running_plan_of_audit(self, audit_uuid)
    }

    fn ongoing_plan(&self) -> Result<Option<String>> {
        PgStore::ongoing_plan(self)
    }

    fn cancel_recommended_plans_of_audit(
        &mut self,
        audit_uuid: &str,
        message: &str,
    ) -> Result<Vec<String>> {
        PgStore::cancel_recommended_plans_of_audit(self, audit_uuid, message)
    }

    fn sync_goals_and_strategies(
        &mut self,
        goals: &[DiscoveredGoal],
        strategies: &[DiscoveredStrategy],
    ) -> Result<SyncReport> {
        PgStore::sync_goals_and_strategies(self, goals, strategies)
    }

    fn write_plan_with_structure(&mut self, p: &NewPlan<'_>, s: &PlanStructure) -> Result<String> {
        PgStore::write_plan_with_structure(self, p, s)
    }

    fn plan_flows(&self, plan_uuid: &str) -> Result<Vec<FlowRow>> {
        PgStore::plan_flows(self, plan_uuid)
    }

    fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>> {
        PgStore::action_scopes(self, plan_uuid)
    }

    fn write_scope_mark(
        &mut self,
        plan: &str,
        action: &str,
        mark: ScopeMark,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()> {
        PgStore::write_scope_mark(self, plan, action, mark, message, event_type, payload)
    }

    fn write_flow_change(
        &mut self,
        plan: &str,
        flow: &str,
        change: FlowChange<'_>,
        event_type: EventType,
        payload: Value,
    ) -> Result<bool> {
        PgStore::write_flow_change(self, plan, flow, change, event_type, payload)
    }

    fn notification_origin(&self) -> Result<String> {
        PgStore::notification_origin(self)
    }

    fn register_sink_cursor(&mut self, sink: &str) -> Result<i64> {
        PgStore::register_sink_cursor(self, sink)
    }

    fn sink_cursor(&self, sink: &str) -> Result<Option<i64>> {
        PgStore::sink_cursor(self, sink)
    }

    fn advance_sink_cursor(&mut self, sink: &str, to: i64) -> Result<()> {
        PgStore::advance_sink_cursor(self, sink, to)
    }

    fn sink_cursors(&self) -> Result<Vec<SinkCursor>> {
        PgStore::sink_cursors(self)
    }

    fn events_count_after(&self, after: i64) -> Result<i64> {
        PgStore::events_count_after(self, after)
    }

    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        PgStore::events_after(self, after, limit)
    }

    fn notification_subjects(&self, events: &[EventRow]) -> Result<Subjects> {
        PgStore::notification_subjects(self, events)
    }
}
