//! The store's interface: what the rest of the host calls, whatever the
//! database. [`Store`] is a handle on one backend ([`StoreBackend`]): SQLite
//! (`SqliteStore`, the rest of `store/`) or PostgreSQL (`PgStore`, the
//! `pg*.rs` files). A backend owns its transactions: every operation here that writes
//! is one transaction, and every state change in it is a compare-and-set
//! with its event (see the module's invariants).
//!
//! Nothing in these signatures names a database crate: states and event
//! types are the enums of [`crate::states`], rows are plain structs, and
//! errors are [`StoreError`].

use super::StoreError;
use super::apply::{ActionTransition, Lease};
use super::audits::audit_transition_allowed;
use super::audits::{AuditChanges, AuditRow, NewAudit, NewTemplate, TemplateRow};
use super::flows::{FlowChange, FlowRow, PlanStructure, ScopeMark, ScopeRow};
use super::ids::IdKind;
use super::lifecycle::TemplateChange;
use super::location::Location;
use super::outbox::{SinkCursor, Subjects};
use super::pg::PgStore;
use super::plans::{ActionRow, NewPlan, PlanRow};
use super::sync::{DiscoveredGoal, DiscoveredStrategy, SyncReport};
use super::{EventRow, GoalRow, Result, SqliteStore, StrategyRow};
use crate::states::{ActionState, AuditState, EventType, FlowState, PlanState};
use serde_json::Value;
use std::path::Path;

/// An open store: one backend behind the store's interface.
pub struct Store(Box<dyn StoreBackend>);

impl Store {
    /// Opens the store at `at` and migrates it: a SQLite file (created if
    /// needed, see `SqliteStore::open`) or a PostgreSQL database (see
    /// `PgStore::open`). Every command and every connection of `serve`
    /// opens its store here.
    pub fn open(at: impl Into<Location>) -> Result<Self> {
        Ok(match at.into() {
            Location::Sqlite(path) => Self(Box::new(SqliteStore::open(&path)?)),
            Location::Postgres(url) => Self(Box::new(PgStore::open(&url)?)),
        })
    }

    /// A store over `backend`.
    pub fn from_backend(backend: Box<dyn StoreBackend>) -> Self {
        Self(backend)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn StoreBackend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

/// What a store backend does. Each method is one operation of the host on
/// its state; those that write are one transaction each.
pub trait StoreBackend: Send + super::fleet::FleetStore {
    /// Whether the database was opened read-only (it cannot be written).
    fn is_read_only(&self) -> bool;

    /// Limits this connection's page cache to `kib` KiB and frees what is
    /// over it.
    ///
    /// For many small commits after a big read or write (an applier after
    /// loading or storing a plan): every commit whose inserts split a page
    /// makes SQLite scan the whole page cache when the transaction ends (the
    /// split renumbers a page through a temporary page number beyond the end
    /// of the database, and the end of the transaction drops every cached
    /// page past the end). A 64 MB cache full of a 100,000-action plan made
    /// that scan the largest single cost of an applier commit.
    fn limit_cache(&self, kib: u32) -> Result<()>;

    /// Waits until the WAL checkpoint that commits asked for, if any, is
    /// done (see `checkpoint.rs`: commits never checkpoint themselves).
    fn wait_for_checkpoints(&self);

    /// The database file, for a backend that has one (SQLite).
    fn file(&self) -> Option<&Path>;

    /// Where the database is, as messages show it: a file's path, or a
    /// URL without its password.
    fn location(&self) -> String;

    /// The schema version.
    fn schema_version(&self) -> Result<i64>;

    /// Every goal not deleted.
    fn goals(&self) -> Result<Vec<GoalRow>>;

    /// A goal by uuid or name.
    fn goal(&self, id: &str) -> Result<GoalRow>;

    /// Every strategy not deleted, optionally of one goal (uuid or name).
    fn strategies(&self, goal: Option<&str>) -> Result<Vec<StrategyRow>>;

    /// A strategy by uuid or name.
    fn strategy(&self, id: &str) -> Result<StrategyRow>;

    /// Records each action type's description (Watcher's
    /// `action_descriptions`), updating those that changed; one transaction.
    /// Writes nothing when every description is already recorded.
    fn sync_action_descriptions(&mut self, types: &[(String, String)]) -> Result<usize>;

    /// An action type's recorded description.
    fn action_description(&self, action_type: &str) -> Result<Option<String>>;

    /// The id of the newest event, 0 when there is none.
    fn last_event_id(&self) -> Result<i64>;

    /// How many plans and actions are in each state.
    fn state_counts(&self) -> Result<super::StateCounts>;

    /// The event log, oldest first, optionally of one action plan, after
    /// event id `after`.
    fn events(&self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>>;

    /// Up to `limit` events after event id `after`, oldest first,
    /// optionally of one action plan: a page of the log read without the
    /// rest (`store/pages.rs`).
    fn events_page(&self, plan: Option<&str>, after: i64, limit: usize) -> Result<Vec<EventRow>>;

    /// The uuids of up to `limit` actions not deleted, of one plan (its
    /// uuid) or of every plan, in creation order (reversed with `desc`),
    /// after the action `after` (its uuid); `None` when `after` names no
    /// action of the list (`store/pages.rs`).
    fn action_uuids_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<String>>>;

    /// As [`StoreBackend::action_uuids_page`], the actions themselves, read
    /// in one query (not one lookup per action).
    fn actions_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<ActionRow>>>;

    /// The plans not ended (RECOMMENDED, PENDING, ONGOING, CANCELLING) with
    /// an action of `action_type` at `version`: (plan uuid, its state)
    /// (`store/action_type_uses.rs`).
    fn live_plans_using(
        &self,
        action_type: &str,
        version: &str,
    ) -> Result<Vec<(String, PlanState)>>;

    /// Takes the lease on a plan for `ttl`, unless another owner holds an
    /// unexpired one (returned as the error's lease).
    fn acquire_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<std::result::Result<(), Lease>>;

    /// Takes over a lease from `old_owner` (known to be dead); false when
    /// someone else took it first.
    fn take_over_lease(
        &mut self,
        plan_uuid: &str,
        old_owner: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Renews a lease this owner holds; false when it lost it.
    fn renew_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Gives a lease back.
    fn release_lease(&mut self, plan_uuid: &str, owner: &str) -> Result<()>;

    /// Whether no applier holds the plan: it has no lease, or its lease
    /// expired.
    fn plan_lease_is_free(&self, plan_uuid: &str) -> Result<bool>;

    /// The lease on a plan, if any (even expired).
    fn lease(&self, plan_uuid: &str) -> Result<Option<Lease>>;

    /// Moves a plan from one of `from` to `to`, with its event; false when
    /// it was in another state.
    fn plan_transition(
        &mut self,
        plan_uuid: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool>;

    /// [`StoreBackend::plan_transition`] by a plan's applier, fenced by
    /// its lease: applied only while `owner` holds the plan's lease (in the
    /// same transaction), else nothing is written and the answer is
    /// [`StoreError::LeaseLost`].
    fn leased_plan_transition(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool>;

    /// Records how a plan is to be applied (`applied_with`: the policy,
    /// execution rule and worker count it was started with) in its
    /// extras; with `queue`, also moves it to PENDING with its event. One
    /// transaction; false (nothing written) when the plan is in none of
    /// `from`. With `owner` (a `serve` applier's, at its start), fenced by
    /// the plan's lease as [`StoreBackend::leased_plan_transition`].
    fn record_applied_with(
        &mut self,
        plan_uuid: &str,
        owner: Option<&str>,
        from: &[PlanState],
        applied_with: &Value,
        queue: bool,
    ) -> Result<bool>;

    /// Moves an action from one of `from` to `to` (with outputs and a
    /// message), with its event; false when it was in another state.
    fn action_transition(
        &mut self,
        action_uuid: &str,
        from: &[ActionState],
        to: ActionState,
        message: Option<&str>,
        outputs: Option<&Value>,
        event_type: EventType,
    ) -> Result<bool>;

    /// Applies several action transitions in one transaction (a group
    /// commit): each is a compare-and-set with its event, as
    /// [`StoreBackend::action_transition`]; the result says, for each, whether it
    /// applied, or that its action does not exist.
    fn action_transitions(&mut self, batch: &[ActionTransition]) -> Result<Vec<Result<bool>>>;

    /// Appends an event that changes no state (`action.execution.start`, …).
    fn note(
        &mut self,
        event_type: EventType,
        uuid: &str,
        plan: Option<&str>,
        payload: Value,
    ) -> Result<()>;

    /// [`StoreBackend::note`] of plan `plan` by its applier (a retry's
    /// `action.execution.retry`), fenced by the plan's lease: written only
    /// while `owner` holds it (in the same transaction), else
    /// [`StoreError::LeaseLost`] and nothing written.
    fn leased_note(
        &mut self,
        plan: &str,
        owner: &str,
        event_type: EventType,
        uuid: &str,
        payload: Value,
    ) -> Result<()>;

    /// Cancels a plan from the command line: RECOMMENDED or PENDING become
    /// CANCELLED with their PENDING actions; ONGOING becomes CANCELLING (its
    /// applier, in whatever process, finishes the job). The rule is here,
    /// once; the backends write ([`StoreBackend::cancel_unstarted_plan`],
    /// [`StoreBackend::plan_transition`]).
    fn cancel_plan(&mut self, plan_uuid: &str) -> Result<PlanState> {
        let p = self.plan(plan_uuid)?;
        match p.state {
            PlanState::Recommended | PlanState::Pending => {
                if !self.cancel_unstarted_plan(&p)? {
                    return Err(StoreError::Transition {
                        kind: "action plan",
                        id: p.uuid.clone(),
                        from: format!("{} (changed meanwhile)", p.state),
                        to: PlanState::Cancelled.to_string(),
                    });
                }
                Ok(PlanState::Cancelled)
            }
            PlanState::Ongoing => {
                self.plan_transition(
                    &p.uuid,
                    &[PlanState::Ongoing],
                    PlanState::Cancelling,
                    None,
                    EventType::PlanCancelStart,
                )?;
                Ok(PlanState::Cancelling)
            }
            other => Err(StoreError::Transition {
                kind: "action plan",
                id: p.uuid.clone(),
                from: other.to_string(),
                to: "CANCELLED".into(),
            }),
        }
    }

    /// Compare-and-set of plan `p` from its state (as read) to CANCELLED
    /// with its PENDING actions, and their events, in one transaction;
    /// false when the plan moved meanwhile (nothing written).
    fn cancel_unstarted_plan(&mut self, p: &PlanRow) -> Result<bool>;

    /// Skips a PENDING action by hand, before it runs.
    fn skip_action(&mut self, action_uuid: &str, reason: Option<&str>) -> Result<()> {
        let a = self.action(action_uuid)?;
        let p = self.plan(&a.action_plan_uuid)?;
        if !matches!(
            p.state,
            PlanState::Recommended | PlanState::Pending | PlanState::Ongoing
        ) || a.state != ActionState::Pending
        {
            return Err(StoreError::Transition {
                kind: "action",
                id: a.uuid,
                from: format!("{} (plan {})", a.state, p.state),
                to: "SKIPPED".into(),
            });
        }
        let msg = match reason {
            Some(r) => format!("Action skipped by user. Reason: {r}"),
            None => "Action skipped by user.".into(),
        };
        if !self.action_transition(
            &a.uuid,
            &[ActionState::Pending],
            ActionState::Skipped,
            Some(&msg),
            None,
            EventType::ActionUpdate,
        )? {
            return Err(StoreError::Transition {
                kind: "action",
                id: a.uuid,
                from: "not PENDING any more".into(),
                to: "SKIPPED".into(),
            });
        }
        Ok(())
    }

    /// Every audit template not deleted (by goal or strategy, uuid or name).
    fn templates(&self) -> Result<Vec<TemplateRow>>;

    /// A template by uuid, unique uuid prefix or name (see [`super::ids`]).
    fn template(&self, id: &str) -> Result<TemplateRow>;

    /// Creates a template; returns it.
    fn create_template(&mut self, t: &NewTemplate<'_>) -> Result<TemplateRow>;

    /// Soft-deletes a template.
    fn delete_template(&mut self, id: &str) -> Result<TemplateRow>;

    /// Every audit not deleted.
    fn audits(&self) -> Result<Vec<AuditRow>>;

    /// An audit by uuid, unique uuid prefix or name (the latest of that name).
    fn audit(&self, id: &str) -> Result<AuditRow>;

    /// Creates an audit in state PENDING, with its event.
    fn create_audit(&mut self, a: &NewAudit) -> Result<AuditRow>;

    /// Moves an audit to `to` if Watcher's state machine allows it from its
    /// current state; with the event, in one transaction. `extra` sets more
    /// columns in the same write.
    fn transition_audit(
        &mut self,
        uuid: &str,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
    ) -> Result<AuditRow> {
        self.move_audit_with_plan(uuid, to, message, extra, audit_transition_allowed, None)
    }

    /// As [`StoreBackend::transition_audit`], with the decision engine's own rule
    /// for which moves are allowed (it re-runs EVENT audits from SUCCEEDED,
    /// and keeps CONTINUOUS ones ONGOING between runs).
    fn move_audit(
        &mut self,
        uuid: &str,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        allowed: fn(AuditState, AuditState) -> bool,
    ) -> Result<AuditRow> {
        self.move_audit_with_plan(uuid, to, message, extra, allowed, None)
    }

    /// As [`StoreBackend::move_audit`], storing `plan` (produced by this audit) in
    /// the same transaction. The rules are here, once; the backends write
    /// ([`StoreBackend::write_audit_move`]).
    fn move_audit_with_plan(
        &mut self,
        uuid: &str,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        allowed: fn(AuditState, AuditState) -> bool,
        plan: Option<&super::plans::NewPlan>,
    ) -> Result<AuditRow> {
        if let Some(p) = plan {
            super::plans::refuse_duplicate_names(p)?;
        }
        let current = self.audit(uuid)?;
        if !allowed(current.state, to) {
            return Err(StoreError::Transition {
                kind: "audit",
                id: current.uuid,
                from: current.state.to_string(),
                to: to.to_string(),
            });
        }
        if !self.write_audit_move(&current, to, message, extra, plan)? {
            return Err(StoreError::Transition {
                kind: "audit",
                id: current.uuid,
                from: format!("{} (changed meanwhile)", current.state),
                to: to.to_string(),
            });
        }
        if to == AuditState::Deleted {
            return Ok(AuditRow {
                state: to,
                ..current
            });
        }
        self.audit(&current.uuid)
    }

    /// Compare-and-set of audit `current` from its state (as read) to `to`
    /// (DELETED soft-deletes it), with `message`, the `extra` columns,
    /// `plan` stored and the `audit.update` event, in one transaction;
    /// false when the audit moved meanwhile (nothing written).
    fn write_audit_move(
        &mut self,
        current: &AuditRow,
        to: AuditState,
        message: Option<&str>,
        extra: &AuditChanges,
        plan: Option<&super::plans::NewPlan>,
    ) -> Result<bool>;

    /// Records a skipped run of a CONTINUOUS audit: its status message and
    /// next run time, with an `audit.update` event (its state unchanged,
    /// `skipped: true`, the plan in the way and its state), in one
    /// transaction. Nothing is written, and false returned, if the audit
    /// is no longer in the state `audit` holds (another process moved it).
    fn record_skipped_run(
        &mut self,
        audit: &AuditRow,
        message: &str,
        next_run_time: Option<&str>,
        blocking_plan: (&str, &str),
    ) -> Result<bool>;

    /// The uuid of the `kind` object `id` names (see the module's rules).
    fn resolve_id(&self, kind: IdKind, id: &str) -> Result<String>;

    /// The uuid of the action `id` names; with `plan` (itself resolved),
    /// a name is looked up among that plan's actions only.
    fn resolve_action(&self, id: &str, plan: Option<&str>) -> Result<String>;

    /// Soft-deletes a plan as Watcher does: the plan and its actions become
    /// DELETED (`deleted = 1`), with an `action_plan.delete` event and an
    /// `action.delete` event per action, and no list shows them again.
    /// Refused for a plan that is queued, running or being cancelled, or
    /// that moved meanwhile (nothing written). The rules are here, once;
    /// the backends write ([`StoreBackend::write_plan_delete`]).
    fn delete_plan(&mut self, id: &str) -> Result<PlanRow> {
        let p = self.plan(id)?;
        if let Some(refusal) = super::lifecycle::delete_refusal(&p) {
            return Err(refusal);
        }
        let at = super::now();
        if !self.write_plan_delete(&p, &at)? {
            return Err(StoreError::Refused {
                kind: "action plan",
                id: p.uuid,
                state: p.state.to_string(),
                what: "its state changed meanwhile; look at it again (`sextant action-plan show`)"
                    .into(),
            });
        }
        Ok(PlanRow {
            state: PlanState::Deleted,
            updated_at: Some(at),
            ..p
        })
    }

    /// Compare-and-set of plan `p` from its state (as read) to DELETED at
    /// `at` (`deleted = 1`), its actions and efficacy indicators
    /// soft-deleted with it, with the `action_plan.delete` event and an
    /// `action.delete` event per action, in one transaction; false when
    /// the plan moved meanwhile (nothing written).
    fn write_plan_delete(&mut self, p: &PlanRow, at: &str) -> Result<bool>;

    /// A new RECOMMENDED plan of the actions a FAILED or CANCELLED plan did
    /// not finish (neither SUCCEEDED nor SKIPPED): their types, versions
    /// and parameters, and the edges among them (edges to finished actions
    /// are dropped: those parents are done). It belongs to the same audit
    /// and strategy, has the same planner, and keeps the plan's extras (its
    /// policy, the options it was started with, its declared references),
    /// plus `retry_of`: the old plan's uuid. The old plan is not changed.
    /// Written once over the trait (`lifecycle::retry_plan`).
    fn retry_plan(&mut self, id: &str) -> Result<PlanRow> {
        super::lifecycle::retry_plan(self, id)
    }

    /// The audit templates named `name`, compared as a name only (a uuid
    /// or a prefix of one is not a name); an unreadable store is an error,
    /// never "no template has it". Creation and rename refuse a taken name
    /// with it.
    fn templates_named(&self, name: &str) -> Result<Vec<TemplateRow>> {
        Ok(self
            .templates()?
            .into_iter()
            .filter(|t| t.name == name)
            .collect())
    }

    /// Changes an audit template (Watcher's `PATCH /v1/audit_templates`);
    /// returns it as changed. A new name that another template has is
    /// refused, with nothing written; so is any change when the templates
    /// cannot be read (the error, not a name taken for free). The name is
    /// compared as a name only: one that merely looks like another
    /// template's uuid prefix is free. The rule is here, once; the
    /// backends write ([`StoreBackend::write_template_change`]).
    fn update_template(&mut self, id: &str, change: &TemplateChange<'_>) -> Result<TemplateRow> {
        let t = self.template(id)?;
        if let Some(name) = change.name
            && name != t.name
        {
            let holders: Vec<String> = self
                .templates_named(name)?
                .into_iter()
                .filter(|o| o.uuid != t.uuid)
                .map(|o| o.uuid)
                .collect();
            if !holders.is_empty() {
                return Err(StoreError::Refused {
                    kind: "audit template",
                    id: t.uuid,
                    state: "not renamed".into(),
                    what: format!(
                        "another audit template ({}) is named {name:?}; choose another name",
                        holders.join(", ")
                    ),
                });
            }
        }
        self.write_template_change(&t, change)?;
        self.template(&t.uuid)
    }

    /// Writes `change` to template `t` (as read) with its `updated_at`,
    /// in one statement: the name, description and policy it names, the
    /// others kept.
    fn write_template_change(&mut self, t: &TemplateRow, change: &TemplateChange<'_>)
    -> Result<()>;

    /// Deletes the events older than `before` (RFC 3339 UTC, as events are
    /// stamped), except those of plans not ended (RECOMMENDED, PENDING,
    /// ONGOING, CANCELLING) and of audits not ended (PENDING, ONGOING,
    /// SUSPENDED), and except the newest event of all: event ids must never
    /// be handed out again, or a follower (`history --follow`, the
    /// notification sinks) that read up to it would miss what comes next.
    /// Returns how many were deleted.
    fn purge_events(&mut self, before: &str) -> Result<usize>;

    /// Every plan not deleted, optionally of one audit (uuid or name).
    fn plans(&self, audit: Option<&str>) -> Result<Vec<PlanRow>>;

    /// A plan by uuid or a unique uuid prefix (see [`super::ids`]).
    fn plan(&self, id: &str) -> Result<PlanRow>;

    /// A plan's state, by full uuid: cheap enough to poll.
    fn plan_state(&self, uuid: &str) -> Result<PlanState>;

    /// A plan's extras (`NewPlan::extra`, plus `applied_with` once it was
    /// started with explicit options), by full uuid; `null` when none.
    fn plan_extra(&self, uuid: &str) -> Result<Value>;

    /// The actions of a plan, in creation order.
    fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>>;

    /// The actions of a plan that are FAILED, SKIPPED or CANCELLED, in
    /// creation order (what a run's end reports), read without the others.
    fn unfinished_actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>>;

    /// An action by uuid, unique uuid prefix, or name (see [`super::ids`]).
    fn action(&self, id: &str) -> Result<ActionRow>;

    /// Stores a plan (one transaction); returns it.
    fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<PlanRow>;

    /// The oldest plan of audit `audit_uuid` that is still queued or
    /// running (PENDING, ONGOING or CANCELLING), with its state.
    fn running_plan_of_audit(&self, audit_uuid: &str) -> Result<Option<(String, PlanState)>>;

    /// The uuid of a plan that is ONGOING, if any.
    fn ongoing_plan(&self) -> Result<Option<String>>;

    /// Cancels the RECOMMENDED plans of audit `audit_uuid` (a new run of a
    /// CONTINUOUS audit supersedes them), each a compare-and-set on
    /// RECOMMENDED with its event and `message`, in one transaction;
    /// returns their uuids.
    fn cancel_recommended_plans_of_audit(
        &mut self,
        audit_uuid: &str,
        message: &str,
    ) -> Result<Vec<String>>;

    /// Synchronises goals and strategies with those the plugins declare
    /// (Watcher's Syncer), in one transaction.
    fn sync_goals_and_strategies(
        &mut self,
        goals: &[DiscoveredGoal],
        strategies: &[DiscoveredStrategy],
    ) -> Result<SyncReport>;

    /// Creates a plan with its flows and alternatives (docs/flows.md), in
    /// one transaction. Refused, with nothing written, when two of its
    /// actions have one name or its structure places an action it does not
    /// have. The rules are here, once; the backends write
    /// ([`StoreBackend::write_plan_with_structure`]).
    fn create_plan_with_structure(
        &mut self,
        p: &NewPlan<'_>,
        s: &PlanStructure,
    ) -> Result<PlanRow> {
        super::plans::refuse_duplicate_names(p)?;
        s.refuse_unknown_actions(p)?;
        let uuid = self.write_plan_with_structure(p, s)?;
        self.plan(&uuid)
    }

    /// Stores plan `p` and its structure `s` (none for a flat plan), in one
    /// transaction; returns the plan's uuid.
    fn write_plan_with_structure(&mut self, p: &NewPlan<'_>, s: &PlanStructure) -> Result<String>;

    /// A plan's flows, by name (none for a flat plan).
    fn plan_flows(&self, plan_uuid: &str) -> Result<Vec<FlowRow>>;

    /// The structure rows of a plan's actions (none for a flat plan).
    fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>>;

    /// Starts alternative `to` after the one before it failed for good: its
    /// status message says why, with `action.alternative.start`; one
    /// transaction. Each choice about a plan's structure is decided here,
    /// once (which mark, which event, what payload); the backends write
    /// ([`StoreBackend::write_scope_mark`], [`StoreBackend::write_flow_change`]).
    /// Each of these writes takes an `owner`: the lease owner of the
    /// applier that writes it, which fences it by the plan's lease (only
    /// while that owner holds it, in the same transaction, else
    /// [`StoreError::LeaseLost`] and nothing written); `None`, no check.
    fn start_alternative(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        to: &str,
        message: &str,
        payload: Value,
    ) -> Result<()> {
        self.write_scope_mark(
            plan,
            owner,
            to,
            ScopeMark::Started,
            Some(message),
            EventType::ActionAlternativeStart,
            payload,
        )
    }

    /// Records that a failed alternative's effects are settled, with
    /// `action.alternative.settled`.
    fn settle_alternative(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        action: &str,
        payload: Value,
    ) -> Result<()> {
        self.write_scope_mark(
            plan,
            owner,
            action,
            ScopeMark::Settled,
            None,
            EventType::ActionAlternativeSettled,
            payload,
        )
    }

    /// Records that a flow's rollback reverted an action (or tried to): its
    /// status message, its `reverted` mark and `action.revert.end` (or
    /// `.error`), in one transaction.
    fn flow_reverted(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        action: &str,
        ok: bool,
        message: &str,
    ) -> Result<()> {
        let event_type = if ok {
            EventType::ActionRevertEnd
        } else {
            EventType::ActionRevertError
        };
        self.write_scope_mark(
            plan,
            owner,
            action,
            ScopeMark::Reverted,
            Some(message),
            event_type,
            serde_json::json!({"status_message": message}),
        )
    }

    /// Marks action `action` of plan `plan` with `mark`, sets its status
    /// message to `message` if any, and appends the event `event_type`
    /// (the action as its object, with `payload`), in one transaction;
    /// fenced by `owner`'s lease as [`StoreBackend::start_alternative`].
    #[allow(clippy::too_many_arguments)]
    fn write_scope_mark(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        action: &str,
        mark: ScopeMark,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()>;

    /// Moves a flow to `to`, with its event (object type `flow`).
    #[allow(clippy::too_many_arguments)]
    fn flow_transition(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        flow: &str,
        to: FlowState,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()> {
        let change = FlowChange::State { to, message };
        if !self.write_flow_change(plan, owner, flow, change, event_type, payload)? {
            return Err(no_such_plan(plan));
        }
        Ok(())
    }

    /// Starts alternative flow `to`, with `flow.alternative.start`.
    fn start_flow_alternative(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        to: &str,
        payload: Value,
    ) -> Result<()> {
        let (change, event_type) = (FlowChange::Started, EventType::FlowAlternativeStart);
        if !self.write_flow_change(plan, owner, to, change, event_type, payload)? {
            return Err(no_such_plan(plan));
        }
        Ok(())
    }

    /// Changes flow `flow` of plan `plan` and appends the event
    /// `event_type` (object type `flow`, the flow's name as the object,
    /// with `payload`), in one transaction; false (nothing written) when
    /// the plan is not stored. Fenced by `owner`'s lease as
    /// [`StoreBackend::start_alternative`].
    fn write_flow_change(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        flow: &str,
        change: FlowChange<'_>,
        event_type: EventType,
        payload: Value,
    ) -> Result<bool>;

    /// This database's notification origin: 16 hex digits drawn once and
    /// kept (with an event's id, a notification's stable message id).
    fn notification_origin(&self) -> Result<String>;

    /// The cursor of delivering sink `sink`, created at the newest event
    /// when the sink is new; one transaction.
    fn register_sink_cursor(&mut self, sink: &str) -> Result<i64>;

    /// The cursor of `sink`, if it has one.
    fn sink_cursor(&self, sink: &str) -> Result<Option<i64>>;

    /// Moves `sink`'s cursor forward to `to` (never back).
    fn advance_sink_cursor(&mut self, sink: &str, to: i64) -> Result<()>;

    /// Every sink's cursor, by key.
    fn sink_cursors(&self) -> Result<Vec<SinkCursor>>;

    /// The number of events after event id `after`.
    fn events_count_after(&self, after: i64) -> Result<i64>;

    /// At most `limit` events after event id `after`, in id order.
    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>>;

    /// The actions, plans, audits, goals and strategies `events` are about
    /// (deleted ones too).
    fn notification_subjects(&self, events: &[EventRow]) -> Result<Subjects>;
}

/// The error of a write to plan `uuid`, which is not stored.
fn no_such_plan(uuid: &str) -> StoreError {
    StoreError::NotFound {
        kind: "action plan",
        id: uuid.into(),
    }
}

/// `forward_to_inherent!(Backend)`, inside `impl StoreBackend for
/// Backend`: every operation both backends implement as an inherent method
/// of the same name and signature (`SqliteStore` in the plain files of
/// `store/`, `PgStore` in the `pg_*` files), forwarded to it. The list is
/// written once, here; what a backend does otherwise (its `file`,
/// `location`, page cache and checkpoints) is written by hand beside the
/// call, and the rules are the trait's provided methods.
///
/// A signature that is not the trait's fails to compile; so does an
/// operation missing from the list (not implemented) or listed twice. An
/// inherent method missing would make its forward call itself: denied
/// (`unconditional_recursion`). The names in the signatures are resolved
/// where the macro is called (`backend.rs`, `pg_backend.rs`).
macro_rules! forward_to_inherent {
    ($backend:ty) => {
        $crate::store::backend::forward_to_inherent!(@forward $backend;
        reads {
            fn is_read_only(&self) -> bool;
            fn schema_version(&self) -> Result<i64>;
            fn goals(&self) -> Result<Vec<GoalRow>>;
            fn goal(&self, id: &str) -> Result<GoalRow>;
            fn strategies(&self, goal: Option<&str>) -> Result<Vec<StrategyRow>>;
            fn strategy(&self, id: &str) -> Result<StrategyRow>;
            fn action_description(&self, action_type: &str) -> Result<Option<String>>;
            fn last_event_id(&self) -> Result<i64>;
            fn state_counts(&self) -> Result<super::StateCounts>;
            fn events(&self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>>;
            fn events_page(
                &self,
                plan: Option<&str>,
                after: i64,
                limit: usize,
            ) -> Result<Vec<EventRow>>;
            fn action_uuids_page(
                &self,
                plan: Option<&str>,
                after: Option<&str>,
                limit: usize,
                desc: bool,
            ) -> Result<Option<Vec<String>>>;
            fn actions_page(
                &self,
                plan: Option<&str>,
                after: Option<&str>,
                limit: usize,
                desc: bool,
            ) -> Result<Option<Vec<ActionRow>>>;
            fn live_plans_using(
                &self,
                action_type: &str,
                version: &str,
            ) -> Result<Vec<(String, PlanState)>>;
            fn plan_lease_is_free(&self, plan_uuid: &str) -> Result<bool>;
            fn lease(&self, plan_uuid: &str) -> Result<Option<Lease>>;
            fn templates(&self) -> Result<Vec<TemplateRow>>;
            fn template(&self, id: &str) -> Result<TemplateRow>;
            fn audits(&self) -> Result<Vec<AuditRow>>;
            fn audit(&self, id: &str) -> Result<AuditRow>;
            fn resolve_id(&self, kind: IdKind, id: &str) -> Result<String>;
            fn resolve_action(&self, id: &str, plan: Option<&str>) -> Result<String>;
            fn plans(&self, audit: Option<&str>) -> Result<Vec<PlanRow>>;
            fn plan(&self, id: &str) -> Result<PlanRow>;
            fn plan_state(&self, uuid: &str) -> Result<PlanState>;
            fn plan_extra(&self, uuid: &str) -> Result<Value>;
            fn actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>>;
            fn unfinished_actions(&self, plan_uuid: &str) -> Result<Vec<ActionRow>>;
            fn action(&self, id: &str) -> Result<ActionRow>;
            fn running_plan_of_audit(
                &self,
                audit_uuid: &str,
            ) -> Result<Option<(String, PlanState)>>;
            fn ongoing_plan(&self) -> Result<Option<String>>;
            fn plan_flows(&self, plan_uuid: &str) -> Result<Vec<FlowRow>>;
            fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>>;
            fn notification_origin(&self) -> Result<String>;
            fn sink_cursor(&self, sink: &str) -> Result<Option<i64>>;
            fn sink_cursors(&self) -> Result<Vec<SinkCursor>>;
            fn events_count_after(&self, after: i64) -> Result<i64>;
            fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>>;
            fn notification_subjects(&self, events: &[EventRow]) -> Result<Subjects>;
        }
        writes {
            fn sync_action_descriptions(&mut self, types: &[(String, String)]) -> Result<usize>;
            fn acquire_lease(
                &mut self,
                plan_uuid: &str,
                owner: &str,
                ttl: std::time::Duration,
            ) -> Result<std::result::Result<(), Lease>>;
            fn take_over_lease(
                &mut self,
                plan_uuid: &str,
                old_owner: &str,
                owner: &str,
                ttl: std::time::Duration,
            ) -> Result<bool>;
            fn renew_lease(
                &mut self,
                plan_uuid: &str,
                owner: &str,
                ttl: std::time::Duration,
            ) -> Result<bool>;
            fn release_lease(&mut self, plan_uuid: &str, owner: &str) -> Result<()>;
            fn plan_transition(
                &mut self,
                plan_uuid: &str,
                from: &[PlanState],
                to: PlanState,
                message: Option<&str>,
                event_type: EventType,
            ) -> Result<bool>;
            fn leased_plan_transition(
                &mut self,
                plan_uuid: &str,
                owner: &str,
                from: &[PlanState],
                to: PlanState,
                message: Option<&str>,
                event_type: EventType,
            ) -> Result<bool>;
            fn record_applied_with(
                &mut self,
                plan_uuid: &str,
                owner: Option<&str>,
                from: &[PlanState],
                applied_with: &Value,
                queue: bool,
            ) -> Result<bool>;
            fn action_transition(
                &mut self,
                action_uuid: &str,
                from: &[ActionState],
                to: ActionState,
                message: Option<&str>,
                outputs: Option<&Value>,
                event_type: EventType,
            ) -> Result<bool>;
            fn action_transitions(
                &mut self,
                batch: &[ActionTransition],
            ) -> Result<Vec<Result<bool>>>;
            fn note(
                &mut self,
                event_type: EventType,
                uuid: &str,
                plan: Option<&str>,
                payload: Value,
            ) -> Result<()>;
            fn leased_note(
                &mut self,
                plan: &str,
                owner: &str,
                event_type: EventType,
                uuid: &str,
                payload: Value,
            ) -> Result<()>;
            fn cancel_unstarted_plan(&mut self, p: &PlanRow) -> Result<bool>;
            fn create_template(&mut self, t: &NewTemplate<'_>) -> Result<TemplateRow>;
            fn delete_template(&mut self, id: &str) -> Result<TemplateRow>;
            fn create_audit(&mut self, a: &NewAudit) -> Result<AuditRow>;
            fn write_audit_move(
                &mut self,
                current: &AuditRow,
                to: AuditState,
                message: Option<&str>,
                extra: &AuditChanges,
                plan: Option<&super::plans::NewPlan>,
            ) -> Result<bool>;
            fn record_skipped_run(
                &mut self,
                audit: &AuditRow,
                message: &str,
                next_run_time: Option<&str>,
                blocking_plan: (&str, &str),
            ) -> Result<bool>;
            fn write_plan_delete(&mut self, p: &PlanRow, at: &str) -> Result<bool>;
            fn write_template_change(
                &mut self,
                t: &TemplateRow,
                change: &TemplateChange<'_>,
            ) -> Result<()>;
            fn purge_events(&mut self, before: &str) -> Result<usize>;
            fn create_plan(&mut self, p: &NewPlan<'_>) -> Result<PlanRow>;
            fn cancel_recommended_plans_of_audit(
                &mut self,
                audit_uuid: &str,
                message: &str,
            ) -> Result<Vec<String>>;
            fn sync_goals_and_strategies(
                &mut self,
                goals: &[DiscoveredGoal],
                strategies: &[DiscoveredStrategy],
            ) -> Result<SyncReport>;
            fn write_plan_with_structure(
                &mut self,
                p: &NewPlan<'_>,
                s: &PlanStructure,
            ) -> Result<String>;
            fn write_scope_mark(
                &mut self,
                plan: &str,
                owner: Option<&str>,
                action: &str,
                mark: ScopeMark,
                message: Option<&str>,
                event_type: EventType,
                payload: Value,
            ) -> Result<()>;
            fn write_flow_change(
                &mut self,
                plan: &str,
                owner: Option<&str>,
                flow: &str,
                change: FlowChange<'_>,
                event_type: EventType,
                payload: Value,
            ) -> Result<bool>;
            fn register_sink_cursor(&mut self, sink: &str) -> Result<i64>;
            fn advance_sink_cursor(&mut self, sink: &str, to: i64) -> Result<()>;
        });
    };
    // The forwards of the list above, `&self` and `&mut self` apart.
    (@forward $backend:ty;
        reads { $(fn $read:ident(&self $(, $ra:ident: $rt:ty)* $(,)?) -> $rr:ty;)* }
        writes { $(fn $write:ident(&mut self $(, $wa:ident: $wt:ty)* $(,)?) -> $wr:ty;)* }
    ) => {
        $(
            #[deny(unconditional_recursion)]
            fn $read(&self $(, $ra: $rt)*) -> $rr {
                <$backend>::$read(self $(, $ra)*)
            }
        )*
        $(
            #[deny(unconditional_recursion)]
            fn $write(&mut self $(, $wa: $wt)*) -> $wr {
                <$backend>::$write(self $(, $wa)*)
            }
        )*
    };
}
pub(super) use forward_to_inherent;

impl StoreBackend for SqliteStore {
    fn limit_cache(&self, kib: u32) -> Result<()> {
        SqliteStore::limit_cache(self, kib)
    }

    fn wait_for_checkpoints(&self) {
        SqliteStore::wait_for_checkpoints(self)
    }

    fn file(&self) -> Option<&Path> {
        Some(SqliteStore::path(self))
    }

    fn location(&self) -> String {
        SqliteStore::path(self).display().to_string()
    }

    forward_to_inherent!(SqliteStore);
}
