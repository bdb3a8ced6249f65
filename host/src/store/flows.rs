//! Flows and alternatives of a plan (docs/flows.md), persisted with it
//! (schema migration 10): the structure written with the plan in its one
//! transaction, and each choice the applier makes about it (an alternative
//! started or settled, a flow failed, rolling back, rolled back, an action
//! reverted by its flow) committed with its event before it is acted on.

use super::columns::enum_col;
use super::plans::{NewPlan, insert_plan};
use super::{Event, Result, SqliteStore, StoreError, append_event, now};
use crate::policy::OnFailure;
use crate::states::{EventType, FlowState};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

/// A flow as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFlow {
    /// Its name, unique in the plan.
    pub name: String,
    /// The flow it is nested in.
    pub parent: Option<String>,
    /// What its failure does.
    pub on_failure: OnFailure,
    /// The flow it is an alternative of, and its rank (from 1).
    pub alternative_of: Option<(String, u32)>,
}

/// Where an action of a structured plan stands.
#[derive(Clone, Debug, PartialEq)]
pub struct NewScope {
    /// The action's name.
    pub action: String,
    /// Its innermost flow.
    pub flow: Option<String>,
    /// The primary it is an alternative of (its own name for a primary that
    /// has alternatives), and its rank (0: the primary).
    pub primary: Option<(String, u32)>,
}

impl NewFlow {
    /// How its place among alternatives is stored: the flow it is an
    /// alternative of and its rank (none and 0 for a flow of its own), and
    /// whether it starts started (an alternative waits to be chosen).
    pub(super) fn stored_alternative(&self) -> (Option<&str>, u32, bool) {
        match &self.alternative_of {
            Some((of, rank)) => (Some(of.as_str()), *rank, false),
            None => (None, 0, true),
        }
    }
}

impl NewScope {
    /// How its place among alternatives is stored: its primary and rank
    /// (none and 0 outside a group), and whether it starts started (only a
    /// primary does: an alternative waits to be chosen).
    pub(super) fn stored_primary(&self) -> (Option<&str>, u32, bool) {
        let (primary, rank) = match &self.primary {
            Some((p, rank)) => (Some(p.as_str()), *rank),
            None => (None, 0),
        };
        (primary, rank, rank == 0)
    }
}

/// A choice the applier made about an action of a structured plan, marked
/// on its structure row (`plan_action_scopes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeMark {
    /// It is an alternative that was started.
    Started,
    /// It is a failed alternative whose effects were settled.
    Settled,
    /// Its flow's rollback reverted it (or tried to).
    Reverted,
}

impl ScopeMark {
    /// Its column in `plan_action_scopes`.
    pub(super) fn column(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Settled => "settled",
            Self::Reverted => "reverted",
        }
    }
}

/// A change to a flow of a plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlowChange<'a> {
    /// It is an alternative flow that was started.
    Started,
    /// It moves to state `to`; `message`, if any, becomes its status
    /// message.
    State {
        /// Its new state.
        to: FlowState,
        /// Why.
        message: Option<&'a str>,
    },
}

/// A plan's flows and alternatives, as declared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanStructure {
    /// The flows, enclosing ones first or not.
    pub flows: Vec<NewFlow>,
    /// The actions that are in a flow or in a group of alternatives.
    pub scopes: Vec<NewScope>,
}

impl PlanStructure {
    /// Whether the plan is flat.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.scopes.is_empty()
    }

    /// Refuses a structure that places an action plan `p` does not have,
    /// naming the first such action, before anything is written.
    pub(super) fn refuse_unknown_actions(&self, p: &NewPlan<'_>) -> Result<()> {
        if self.scopes.is_empty() {
            return Ok(());
        }
        let names: std::collections::HashSet<&str> = p
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .chain(p.rows.iter().map(|r| r.name))
            .collect();
        match self
            .scopes
            .iter()
            .find(|s| !names.contains(s.action.as_str()))
        {
            Some(s) => Err(StoreError::NotFound {
                kind: "action",
                id: s.action.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A flow as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FlowRow {
    /// Its name.
    pub name: String,
    /// The flow it is nested in.
    pub parent: Option<String>,
    /// What its failure does.
    pub on_failure: OnFailure,
    /// Its state.
    pub state: FlowState,
    /// Why it failed and what was done.
    pub status_message: Option<String>,
    /// The flow it is an alternative of, and its rank (from 1).
    pub alternative_of: Option<(String, u32)>,
    /// False for an alternative flow not started yet.
    pub started: bool,
}

/// An action's place in the structure, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeRow {
    /// The action's uuid.
    pub action_uuid: String,
    /// Its name.
    pub name: String,
    /// Its innermost flow.
    pub flow: Option<String>,
    /// The primary it is an alternative of, and its rank.
    pub primary: Option<(String, u32)>,
    /// False for an alternative not started yet.
    pub started: bool,
    /// Its failure was settled (reverted if need be) before the next
    /// alternative started.
    pub settled: bool,
    /// Its flow's rollback reverted it.
    pub reverted: bool,
}

fn plan_id(tx: &Transaction<'_>, plan_uuid: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT id FROM action_plans WHERE uuid = ?1",
        [plan_uuid],
        |r| r.get(0),
    )
    .optional()
}

fn event(
    tx: &Transaction<'_>,
    event_type: EventType,
    object: &str,
    plan: &str,
    payload: Value,
) -> rusqlite::Result<()> {
    append_event(
        tx,
        &Event {
            event_type,
            object_uuid: object,
            action_plan_uuid: Some(plan),
            old_state: None,
            new_state: None,
            payload,
        },
    )
}

impl SqliteStore {
    /// Stores a plan with its flows and alternatives, in one transaction;
    /// returns its uuid (the rules are
    /// [`super::StoreBackend::create_plan_with_structure`]'s).
    pub fn write_plan_with_structure(
        &mut self,
        p: &NewPlan<'_>,
        s: &PlanStructure,
    ) -> Result<String> {
        self.write(|tx| {
            let uuid = insert_plan(tx, p)?;
            if !s.is_empty() {
                insert_structure(tx, &uuid, s)?;
            }
            Ok(uuid)
        })
    }

    /// A plan's flows, by name.
    pub fn plan_flows(&self, plan_uuid: &str) -> Result<Vec<FlowRow>> {
        let mut st = self
            .conn()
            .prepare_cached(
                "SELECT f.name, f.parent, f.on_failure, f.state, f.status_message, f.alternative_of, f.rank, f.started, f.action_plan_id \
                 FROM plan_flows f JOIN action_plans p ON p.id = f.action_plan_id WHERE p.uuid = ?1 ORDER BY f.name",
            )
            .map_err(|e| self.err(e))?;
        st.query_map([plan_uuid], |r| {
            Ok(FlowRow {
                name: r.get(0)?,
                parent: r.get(1)?,
                on_failure: enum_col(r, 2, 8, "plan_flows", "on_failure")?,
                state: enum_col(r, 3, 8, "plan_flows", "state")?,
                status_message: r.get(4)?,
                alternative_of: r
                    .get::<_, Option<String>>(5)?
                    .map(|f| (f, r.get::<_, u32>(6).unwrap_or(0))),
                started: r.get::<_, i64>(7)? != 0,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
    }

    /// The structure rows of a plan's actions (none for a flat plan).
    pub fn action_scopes(&self, plan_uuid: &str) -> Result<Vec<ScopeRow>> {
        let mut st = self
            .conn()
            .prepare_cached(
                "SELECT a.uuid, a.name, s.flow, s.primary_name, s.rank, s.started, s.settled, s.reverted \
                 FROM plan_action_scopes s JOIN actions a ON a.id = s.action_id \
                 JOIN action_plans p ON p.id = s.action_plan_id WHERE p.uuid = ?1 ORDER BY s.action_id",
            )
            .map_err(|e| self.err(e))?;
        st.query_map([plan_uuid], |r| {
            let primary: Option<String> = r.get(3)?;
            let rank: u32 = r.get(4)?;
            Ok(ScopeRow {
                action_uuid: r.get(0)?,
                name: r.get(1)?,
                flow: r.get(2)?,
                primary: primary.map(|p| (p, rank)),
                started: r.get::<_, i64>(5)? != 0,
                settled: r.get::<_, i64>(6)? != 0,
                reverted: r.get::<_, i64>(7)? != 0,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
    }

    /// Marks action `action` of plan `plan` with `mark`, sets its status
    /// message to `message` if any, and appends the event `event_type`
    /// (the action as its object), in one transaction; with `owner`, fenced
    /// by the plan's lease (`apply::fence`).
    #[allow(clippy::too_many_arguments)]
    pub fn write_scope_mark(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        action: &str,
        mark: ScopeMark,
        message: Option<&str>,
        event_type: EventType,
        payload: Value,
    ) -> Result<()> {
        self.write(|tx| {
            if let Err(lost) = super::apply::fence(tx, plan, owner)? {
                return Ok(Err(lost));
            }
            tx.execute(
                &format!(
                    "UPDATE plan_action_scopes SET {} = 1 WHERE action_id = (SELECT id FROM actions WHERE uuid = ?1)",
                    mark.column()
                ),
                [action],
            )?;
            if let Some(message) = message {
                tx.execute(
                    "UPDATE actions SET status_message = ?1, updated_at = ?2 WHERE uuid = ?3",
                    params![message, now(), action],
                )?;
            }
            event(tx, event_type, action, plan, payload).map(Ok)
        })?
    }

    /// Changes flow `flow` of plan `plan` and appends the event
    /// `event_type` (object type `flow`, the flow's name as the object), in
    /// one transaction; false (nothing written) when the plan is not
    /// stored. With `owner`, fenced by the plan's lease (`apply::fence`).
    pub fn write_flow_change(
        &mut self,
        plan: &str,
        owner: Option<&str>,
        flow: &str,
        change: FlowChange<'_>,
        event_type: EventType,
        payload: Value,
    ) -> Result<bool> {
        self.write(|tx| {
            let Some(id) = plan_id(tx, plan)? else {
                return Ok(Ok(false));
            };
            if let Err(lost) = super::apply::fence(tx, plan, owner)? {
                return Ok(Err(lost));
            }
            match change {
                FlowChange::State { to, message } => tx.execute(
                    "UPDATE plan_flows SET state = ?1, status_message = COALESCE(?2, status_message), updated_at = ?3 \
                     WHERE action_plan_id = ?4 AND name = ?5",
                    params![to, message, now(), id, flow],
                )?,
                FlowChange::Started => tx.execute(
                    "UPDATE plan_flows SET started = 1, updated_at = ?1 WHERE action_plan_id = ?2 AND name = ?3",
                    params![now(), id, flow],
                )?,
            };
            event(tx, event_type, flow, plan, payload).map(|()| Ok(true))
        })?
    }
}

pub(super) fn insert_structure(
    tx: &Transaction<'_>,
    plan: &str,
    s: &PlanStructure,
) -> rusqlite::Result<()> {
    let id = plan_id(tx, plan)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    let mut st = tx.prepare(
        "INSERT INTO plan_flows (action_plan_id, name, parent, on_failure, alternative_of, rank, started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for f in &s.flows {
        let (of, rank, started) = f.stored_alternative();
        st.execute(params![
            id,
            f.name,
            f.parent,
            f.on_failure,
            of,
            rank,
            started
        ])?;
    }
    let mut find = tx.prepare("SELECT id FROM actions WHERE action_plan_id = ?1 AND name = ?2")?;
    let mut ins = tx.prepare(
        "INSERT INTO plan_action_scopes (action_id, action_plan_id, flow, primary_name, rank, started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for a in &s.scopes {
        let Some(action_id): Option<i64> = find
            .query_row(params![id, a.action], |r| r.get(0))
            .optional()?
        else {
            return Err(rusqlite::Error::QueryReturnedNoRows);
        };
        let (primary, rank, started) = a.stored_primary();
        ins.execute(params![action_id, id, a.flow, primary, rank, started])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::{ActionState, PlanState};
    use crate::store::plans::NewPlanRow;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        a_structure_is_stored_with_its_plan_and_choices_are_recorded_with_events,
        an_unknown_flow_state_or_on_failure_read_back_is_an_error_naming_where,
        a_structure_naming_an_action_not_in_the_plan_is_refused_naming_it_storing_nothing,
        a_flow_of_an_unknown_plan_is_not_found_naming_the_plan_writing_nothing,
        flow_decisions_by_an_owner_that_lost_the_lease_are_refused_and_write_nothing,
    );

    /// Every flow decision of an applier (an alternative started, one
    /// settled, a rollback's revert, a flow's state, a flow alternative
    /// started) is fenced by the plan's lease: by the owner that lost it,
    /// each is refused naming the plan and the owner, and nothing is
    /// written (no mark, no message, no flow change, no event); by the
    /// holder, each is written with its event.
    fn flow_decisions_by_an_owner_that_lost_the_lease_are_refused_and_write_nothing(
        mut s: TestStore,
    ) {
        const OLD: &str = "host-a:1:old";
        const NEW: &str = "host-b:2:new";
        let ttl = std::time::Duration::from_secs(15);
        let plan = s
            .create_plan_with_structure(&one_action_plan(), &one_flow_around("a"))
            .expect("plan")
            .uuid;
        assert!(s.acquire_lease(&plan, OLD, ttl).expect("acquire").is_ok());
        assert!(s.take_over_lease(&plan, OLD, NEW, ttl).expect("take over"));
        let a = s.action_scopes(&plan).expect("scopes")[0]
            .action_uuid
            .clone();
        let held = |s: &TestStore| {
            format!(
                "{:?} | {:?} | {:?} | {}",
                s.plan_flows(&plan).expect("flows"),
                s.action_scopes(&plan).expect("scopes"),
                s.action(&a).expect("action").status_message,
                s.last_event_id().expect("last event"),
            )
        };
        let decide = |s: &mut TestStore, owner: &str| {
            let o = Some(owner);
            let json = serde_json::json!({});
            vec![
                s.start_alternative(&plan, o, &a, "instead", json.clone()),
                s.settle_alternative(&plan, o, &a, json.clone()),
                s.flow_reverted(&plan, o, &a, true, "Reverted"),
                s.flow_transition(
                    &plan,
                    o,
                    "f",
                    FlowState::RollingBack,
                    Some("a failed"),
                    EventType::FlowRollbackStart,
                    json.clone(),
                ),
                s.start_flow_alternative(&plan, o, "f", json),
            ]
        };
        let before = held(&s);
        for r in decide(&mut s, OLD) {
            assert!(
                matches!(&r, Err(StoreError::LeaseLost { plan: p, owner }) if *p == plan && owner == OLD),
                "{r:?}"
            );
        }
        assert_eq!(held(&s), before);
        let events = s.last_event_id().expect("last event");
        for r in decide(&mut s, NEW) {
            assert!(r.is_ok(), "{r:?}");
        }
        let scope = &s.action_scopes(&plan).expect("scopes")[0];
        assert!(
            scope.started && scope.settled && scope.reverted,
            "{scope:?}"
        );
        let f = &s.plan_flows(&plan).expect("flows")[0];
        assert!(f.state == FlowState::RollingBack && f.started, "{f:?}");
        assert_eq!(
            s.events(Some(&plan), events).expect("events").len(),
            5,
            "one event each"
        );
    }

    fn one_action_plan() -> NewPlan<'static> {
        NewPlan {
            state: PlanState::Recommended,
            rows: vec![NewPlanRow {
                name: "a",
                action_type: "nop",
                action_type_version: "1.0.0",
                input_parameters_json: "{}",
                parents: &[],
                state: ActionState::Pending,
            }],
            ..Default::default()
        }
    }

    /// Flow `f` (rolled back on failure) around the one action `action`.
    fn one_flow_around(action: &str) -> PlanStructure {
        PlanStructure {
            flows: vec![NewFlow {
                name: "f".into(),
                parent: None,
                on_failure: OnFailure::Rollback,
                alternative_of: None,
            }],
            scopes: vec![NewScope {
                action: action.into(),
                flow: Some("f".into()),
                primary: None,
            }],
        }
    }

    fn a_structure_naming_an_action_not_in_the_plan_is_refused_naming_it_storing_nothing(
        mut s: TestStore,
    ) {
        let events = s.last_event_id().expect("last event");
        let e = s
            .create_plan_with_structure(&one_action_plan(), &one_flow_around("ghost"))
            .expect_err("refused");
        match &e {
            super::super::StoreError::NotFound { kind, id } => {
                assert_eq!((*kind, id.as_str()), ("action", "ghost"))
            }
            other => panic!("not a NotFound naming the action: {other}"),
        }
        assert!(e.to_string().contains("ghost"), "{e}");
        for table in [
            "action_plans",
            "actions",
            "plan_flows",
            "plan_action_scopes",
        ] {
            assert_eq!(
                s.int(&format!("SELECT count(*) FROM {table}")),
                Some(0),
                "{table}"
            );
        }
        assert_eq!(s.last_event_id().expect("last event"), events);
    }

    fn a_flow_of_an_unknown_plan_is_not_found_naming_the_plan_writing_nothing(mut s: TestStore) {
        let ghost = "00000000-0000-4000-8000-000000000000";
        let events = s.last_event_id().expect("last event");
        for e in [
            s.flow_transition(
                ghost,
                None,
                "f",
                FlowState::Failed,
                Some("failed"),
                EventType::FlowRollbackStart,
                serde_json::json!({}),
            )
            .expect_err("no such plan"),
            s.start_flow_alternative(ghost, None, "f", serde_json::json!({}))
                .expect_err("no such plan"),
        ] {
            match &e {
                super::super::StoreError::NotFound { kind, id } => {
                    assert_eq!((*kind, id.as_str()), ("action plan", ghost))
                }
                other => panic!("not a NotFound naming the plan: {other}"),
            }
        }
        assert_eq!(s.last_event_id().expect("last event"), events);
    }

    fn a_structure_is_stored_with_its_plan_and_choices_are_recorded_with_events(mut s: TestStore) {
        let rows: Vec<NewPlanRow<'_>> = ["a", "a-b", "c"]
            .iter()
            .map(|n| NewPlanRow {
                name: n,
                action_type: "nop",
                action_type_version: "1.0.0",
                input_parameters_json: "{}",
                parents: &[],
                state: ActionState::Pending,
            })
            .collect();
        let structure = PlanStructure {
            flows: vec![
                NewFlow {
                    name: "outer".into(),
                    parent: None,
                    on_failure: OnFailure::Continue,
                    alternative_of: None,
                },
                NewFlow {
                    name: "inner".into(),
                    parent: Some("outer".into()),
                    on_failure: OnFailure::Rollback,
                    alternative_of: None,
                },
                NewFlow {
                    name: "inner-b".into(),
                    parent: Some("outer".into()),
                    on_failure: OnFailure::Rollback,
                    alternative_of: Some(("inner".into(), 1)),
                },
            ],
            scopes: vec![
                NewScope {
                    action: "a".into(),
                    flow: Some("inner".into()),
                    primary: Some(("a".into(), 0)),
                },
                NewScope {
                    action: "a-b".into(),
                    flow: Some("inner".into()),
                    primary: Some(("a".into(), 1)),
                },
            ],
        };
        let plan = s
            .create_plan_with_structure(
                &NewPlan {
                    state: PlanState::Recommended,
                    rows,
                    ..Default::default()
                },
                &structure,
            )
            .expect("plan");
        let flows = s.plan_flows(&plan.uuid).expect("flows");
        assert_eq!(flows.len(), 3);
        let b = flows.iter().find(|f| f.name == "inner-b").expect("inner-b");
        assert_eq!(b.alternative_of, Some(("inner".into(), 1)));
        assert!(!b.started);
        s.start_flow_alternative(&plan.uuid, None, "inner-b", serde_json::json!({}))
            .expect("start flow");
        assert!(
            s.plan_flows(&plan.uuid)
                .expect("flows")
                .iter()
                .any(|f| f.name == "inner-b" && f.started)
        );
        let inner = flows.iter().find(|f| f.name == "inner").expect("inner");
        assert_eq!(
            (inner.parent.as_deref(), inner.on_failure, inner.state),
            (Some("outer"), OnFailure::Rollback, FlowState::Pending)
        );
        let scopes = s.action_scopes(&plan.uuid).expect("scopes");
        assert_eq!(scopes.len(), 2, "c is flat: no row");
        assert!(scopes[0].started && !scopes[1].started);
        assert_eq!(scopes[1].primary, Some(("a".into(), 1)));
        let (a, b) = (scopes[0].action_uuid.clone(), scopes[1].action_uuid.clone());
        s.start_alternative(&plan.uuid, None, &b, "instead of a", serde_json::json!({}))
            .expect("start");
        s.settle_alternative(&plan.uuid, None, &a, serde_json::json!({"reverted": false}))
            .expect("settle");
        s.flow_transition(
            &plan.uuid,
            None,
            "inner",
            FlowState::RollingBack,
            Some("a failed"),
            EventType::FlowRollbackStart,
            serde_json::json!({}),
        )
        .expect("flow");
        s.flow_reverted(&plan.uuid, None, &a, true, "Reverted")
            .expect("reverted");
        let scopes = s.action_scopes(&plan.uuid).expect("scopes");
        assert!(scopes[1].started && scopes[0].settled && scopes[0].reverted);
        let inner = s
            .plan_flows(&plan.uuid)
            .expect("flows")
            .into_iter()
            .find(|f| f.name == "inner")
            .expect("inner");
        assert_eq!(inner.state, FlowState::RollingBack);
        assert_eq!(inner.status_message.as_deref(), Some("a failed"));
        let events: Vec<EventType> = s
            .events(Some(&plan.uuid), 0)
            .expect("events")
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        for e in [
            EventType::ActionAlternativeStart,
            EventType::ActionAlternativeSettled,
            EventType::FlowRollbackStart,
            EventType::ActionRevertEnd,
            EventType::FlowAlternativeStart,
        ] {
            assert!(events.contains(&e), "{e}: {events:?}");
        }
    }

    fn an_unknown_flow_state_or_on_failure_read_back_is_an_error_naming_where(mut s: TestStore) {
        let plan = s
            .create_plan_with_structure(&one_action_plan(), &one_flow_around("a"))
            .expect("plan");
        let plan_id = s.int("SELECT id FROM action_plans").expect("id");
        for (column, bad, what) in [
            ("state", "PAUSED", "flow state"),
            ("on_failure", "retry", "on_failure"),
        ] {
            let good = s.text(&format!("SELECT {column} FROM plan_flows"));
            s.exec(&format!("UPDATE plan_flows SET {column} = '{bad}'"));
            let e = s.plan_flows(&plan.uuid).expect_err("refused");
            let msg = e.to_string();
            match e {
                super::super::StoreError::Unknown { value, .. } => assert_eq!(
                    value,
                    super::super::UnknownValue {
                        table: "plan_flows",
                        row: plan_id,
                        column,
                        name: crate::states::UnknownName {
                            what,
                            value: bad.into()
                        }
                    }
                ),
                other => panic!("not an unknown value: {other}"),
            }
            assert!(
                msg.contains("table plan_flows") && msg.contains(bad),
                "{msg}"
            );
            // Reading changed nothing.
            assert_eq!(s.text(&format!("SELECT {column} FROM plan_flows")), bad);
            s.exec(&format!("UPDATE plan_flows SET {column} = '{good}'"));
        }
        assert_eq!(s.plan_flows(&plan.uuid).expect("flows").len(), 1);
    }
}
