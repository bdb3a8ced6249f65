//! The closed sets of names the host stores and reasons about: the states of
//! audits, action plans and actions, execution rules, event types, and a
//! `serve` host's roles and services' status.
//!
//! Each is an enum with Watcher's spelling as its text (`Display`,
//! `FromStr`, serde). How they are written to and read from a database is
//! the store's business (`store/`); a name read back that is none of these
//! is an error naming where it was found, never a default.

use std::fmt;

/// A name that is none of the values of an enum of this module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    /// What was being read (`action state`, `event type`, …).
    pub what: &'static str,
    /// The text found.
    pub value: String,
}

/// An enum of names: `as_str`, `ALL`, `Display`, `FromStr`, serde as text.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its name, as stored and shown.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, value: s.to_string() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        // Unit tests compare rows with literals.
        #[cfg(test)]
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

named_enum! {
    /// An audit's state (Watcher's audit state machine).
    AuditState, "audit state" {
        /// Created, not run yet.
        Pending = "PENDING",
        /// Running (a CONTINUOUS audit stays ONGOING between runs).
        Ongoing = "ONGOING",
        /// Ran to the end.
        Succeeded = "SUCCEEDED",
        /// Failed.
        Failed = "FAILED",
        /// Cancelled.
        Cancelled = "CANCELLED",
        /// A CONTINUOUS audit paused by the operator.
        Suspended = "SUSPENDED",
        /// Soft-deleted.
        Deleted = "DELETED",
    }
}

named_enum! {
    /// An action plan's state.
    PlanState, "action plan state" {
        /// Stored, waiting for the operator.
        Recommended = "RECOMMENDED",
        /// Queued for an applier.
        Pending = "PENDING",
        /// Being applied.
        Ongoing = "ONGOING",
        /// Being cancelled by its applier.
        Cancelling = "CANCELLING",
        /// Applied.
        Succeeded = "SUCCEEDED",
        /// Failed.
        Failed = "FAILED",
        /// Cancelled.
        Cancelled = "CANCELLED",
        /// Replaced by a newer plan.
        Superseded = "SUPERSEDED",
        /// Soft-deleted.
        Deleted = "DELETED",
    }
}

named_enum! {
    /// An action's state.
    ActionState, "action state" {
        /// Not run yet.
        Pending = "PENDING",
        /// Running.
        Ongoing = "ONGOING",
        /// Ran and took effect.
        Succeeded = "SUCCEEDED",
        /// Failed.
        Failed = "FAILED",
        /// Not run, on purpose.
        Skipped = "SKIPPED",
        /// Not run: its plan was cancelled or stopped.
        Cancelled = "CANCELLED",
        /// Soft-deleted with its plan.
        Deleted = "DELETED",
    }
}

named_enum! {
    /// When an action may run, given its parents' outcomes.
    ExecutionRule, "execution rule" {
        /// Only after every parent SUCCEEDED.
        Strict = "STRICT",
        /// After every parent ended, whatever the outcome.
        Always = "ALWAYS",
        /// Watcher's ANY: the plan goes on past failures.
        Any = "ANY",
    }
}

named_enum! {
    /// What an event says happened (Watcher's notification names).
    EventType, "event type" {
        /// An audit was created.
        AuditCreate = "audit.create",
        /// An audit changed (its state, or a skipped run).
        AuditUpdate = "audit.update",
        /// An audit's strategy started.
        AuditStrategyStart = "audit.strategy.start",
        /// An audit's strategy ended.
        AuditStrategyEnd = "audit.strategy.end",
        /// An audit's strategy failed.
        AuditStrategyError = "audit.strategy.error",
        /// A plan was created.
        PlanCreate = "action_plan.create",
        /// A plan changed state.
        PlanUpdate = "action_plan.update",
        /// A plan was deleted.
        PlanDelete = "action_plan.delete",
        /// A plan's applier started.
        PlanExecutionStart = "action_plan.execution.start",
        /// A plan's applier ended it.
        PlanExecutionEnd = "action_plan.execution.end",
        /// A plan's applier failed it.
        PlanExecutionError = "action_plan.execution.error",
        /// A plan's cancellation started.
        PlanCancelStart = "action_plan.cancel.start",
        /// A plan's cancellation ended.
        PlanCancelEnd = "action_plan.cancel.end",
        /// A host claimed a plan to apply it (queued, or resumed after its
        /// previous holder's lease expired): payload `host`, `owner`,
        /// `resumed`, `previous_owner` (docs/fleet.md).
        PlanClaimed = "action_plan.claimed",
        /// An action was created.
        ActionCreate = "action.create",
        /// An action changed state.
        ActionUpdate = "action.update",
        /// An action was deleted with its plan.
        ActionDelete = "action.delete",
        /// An action started executing.
        ActionExecutionStart = "action.execution.start",
        /// An action ended executing.
        ActionExecutionEnd = "action.execution.end",
        /// An action failed.
        ActionExecutionError = "action.execution.error",
        /// An action failed and runs again.
        ActionExecutionRetry = "action.execution.retry",
        /// An action was cancelled.
        ActionCancelEnd = "action.cancel.end",
        /// An action was reverted in a rollback.
        ActionRevertEnd = "action.revert.end",
        /// An action's revert failed in a rollback.
        ActionRevertError = "action.revert.error",
        /// An alternative of a failed action was started (docs/flows.md).
        ActionAlternativeStart = "action.alternative.start",
        /// A failed alternative's effects were settled before the next
        /// one started.
        ActionAlternativeSettled = "action.alternative.settled",
        /// A flow failed: one of its actions failed for good.
        FlowFailed = "flow.failed",
        /// A flow's rollback started.
        FlowRollbackStart = "flow.rollback.start",
        /// A flow's rollback ended.
        FlowRollbackEnd = "flow.rollback.end",
        /// An alternative flow of a failed flow was started.
        FlowAlternativeStart = "flow.alternative.start",
    }
}

named_enum! {
    /// What a `serve` host does (`serve --roles`, docs/fleet.md).
    Role, "role" {
        /// The decision engine: CONTINUOUS audits.
        Decision = "decision",
        /// The applier: queued and interrupted plans.
        Applier = "applier",
    }
}

impl Role {
    /// Its service's name in Watcher's `services` table.
    pub const fn service_name(self) -> &'static str {
        match self {
            Role::Decision => "watcher-decision-engine",
            Role::Applier => "watcher-applier",
        }
    }
}

named_enum! {
    /// An audit's type (Watcher's `audit_type`).
    AuditType, "audit type" {
        /// Runs once, when created.
        Oneshot = "ONESHOT",
        /// Runs every interval (or cron tick) between its start and end.
        Continuous = "CONTINUOUS",
        /// Runs each time it is triggered (a webhook, an alert).
        Event = "EVENT",
    }
}

named_enum! {
    /// What a host that does not run the decision engine asks of one
    /// (`serve --roles applier` serving the API; docs/fleet.md).
    AuditRequestKind, "audit request kind" {
        /// Run a ONESHOT audit.
        Run = "run",
        /// Trigger an EVENT audit.
        Trigger = "trigger",
    }
}

named_enum! {
    /// A service's liveness, worked out on read as Watcher's: its heartbeat
    /// within the down time, or not.
    ServiceStatus, "service status" {
        /// Its heartbeat is within the down time.
        Active = "ACTIVE",
        /// It is not.
        Failed = "FAILED",
    }
}

named_enum! {
    /// A flow's state (docs/flows.md).
    FlowState, "flow state" {
        /// No action of it failed for good (yet).
        Pending = "PENDING",
        /// One of its actions failed for good; its `on_failure` applied.
        Failed = "FAILED",
        /// Its succeeded revertible actions are being reverted.
        RollingBack = "ROLLING_BACK",
        /// Its rollback is over.
        RolledBack = "ROLLED_BACK",
    }
}

named_enum! {
    /// The kind of object an event is about.
    ObjectType, "object type" {
        /// An audit.
        Audit = "audit",
        /// An action plan.
        ActionPlan = "action_plan",
        /// An action.
        Action = "action",
        /// A flow of a plan (its name is the object).
        Flow = "flow",
    }
}

/// The state of an object an event is about, of the state type of its
/// kind ([`ObjectType`]): an event's old and new states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectState {
    /// An audit's.
    Audit(AuditState),
    /// An action plan's.
    ActionPlan(PlanState),
    /// An action's.
    Action(ActionState),
    /// A flow's.
    Flow(FlowState),
}

impl ObjectState {
    /// `text` as the state of an object of kind `kind`.
    pub fn parse(kind: ObjectType, text: &str) -> Result<Self, UnknownName> {
        Ok(match kind {
            ObjectType::Audit => ObjectState::Audit(text.parse()?),
            ObjectType::ActionPlan => ObjectState::ActionPlan(text.parse()?),
            ObjectType::Action => ObjectState::Action(text.parse()?),
            ObjectType::Flow => ObjectState::Flow(text.parse()?),
        })
    }

    /// Its name, as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            ObjectState::Audit(s) => s.as_str(),
            ObjectState::ActionPlan(s) => s.as_str(),
            ObjectState::Action(s) => s.as_str(),
            ObjectState::Flow(s) => s.as_str(),
        }
    }

    /// Every state an object of kind `kind` can be in, in declaration order.
    pub fn all_of(kind: ObjectType) -> Vec<ObjectState> {
        fn each<S: Copy>(all: &[S], state: fn(S) -> ObjectState) -> Vec<ObjectState> {
            all.iter().map(|s| state(*s)).collect()
        }
        match kind {
            ObjectType::Audit => each(AuditState::ALL, ObjectState::Audit),
            ObjectType::ActionPlan => each(PlanState::ALL, ObjectState::ActionPlan),
            ObjectType::Action => each(ActionState::ALL, ObjectState::Action),
            ObjectType::Flow => each(FlowState::ALL, ObjectState::Flow),
        }
    }

    /// The kind of object it is the state of.
    pub const fn object_type(self) -> ObjectType {
        match self {
            ObjectState::Audit(_) => ObjectType::Audit,
            ObjectState::ActionPlan(_) => ObjectType::ActionPlan,
            ObjectState::Action(_) => ObjectType::Action,
            ObjectState::Flow(_) => ObjectType::Flow,
        }
    }
}

impl fmt::Display for ObjectState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ObjectState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// Unit tests compare rows with literals.
#[cfg(test)]
impl PartialEq<&str> for ObjectState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl EventType {
    /// The kind of object events of this type are about.
    pub const fn object_type(self) -> ObjectType {
        use EventType::*;
        match self {
            AuditCreate | AuditUpdate | AuditStrategyStart | AuditStrategyEnd
            | AuditStrategyError => ObjectType::Audit,
            PlanCreate | PlanUpdate | PlanDelete | PlanExecutionStart | PlanExecutionEnd
            | PlanExecutionError | PlanCancelStart | PlanCancelEnd | PlanClaimed => {
                ObjectType::ActionPlan
            }
            ActionCreate
            | ActionUpdate
            | ActionDelete
            | ActionExecutionStart
            | ActionExecutionEnd
            | ActionExecutionError
            | ActionExecutionRetry
            | ActionCancelEnd
            | ActionRevertEnd
            | ActionRevertError
            | ActionAlternativeStart
            | ActionAlternativeSettled => ObjectType::Action,
            FlowFailed | FlowRollbackStart | FlowRollbackEnd | FlowAlternativeStart => {
                ObjectType::Flow
            }
        }
    }
}

impl AuditState {
    /// Watcher's audit transitions (reference section 5.4).
    pub fn may_become(self, to: AuditState) -> bool {
        use AuditState::*;
        matches!(
            (self, to),
            (Pending, Ongoing)
                | (Pending, Cancelled)
                | (Ongoing, Failed)
                | (Ongoing, Succeeded)
                | (Ongoing, Cancelled)
                | (Ongoing, Suspended)
                | (Failed, Deleted)
                | (Succeeded, Deleted)
                | (Cancelled, Deleted)
                | (Suspended, Ongoing)
                | (Suspended, Deleted)
        )
    }
}

impl PlanState {
    /// Ended: nothing more happens to it.
    pub fn is_terminal(self) -> bool {
        use PlanState::*;
        matches!(self, Succeeded | Failed | Cancelled | Superseded | Deleted)
    }

    /// Queued or being applied (PENDING, ONGOING or CANCELLING).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            PlanState::Pending | PlanState::Ongoing | PlanState::Cancelling
        )
    }
}

/// A new action is PENDING.
impl Default for ActionState {
    fn default() -> Self {
        ActionState::Pending
    }
}

/// A new plan is RECOMMENDED.
impl Default for PlanState {
    fn default() -> Self {
        PlanState::Recommended
    }
}

impl ActionState {
    /// Ended: it will not run (again) in this plan.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ActionState::Pending | ActionState::Ongoing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_state_is_read_as_its_object_s_kind_of_state() {
        for t in ObjectType::ALL {
            assert_eq!(t.as_str().parse::<ObjectType>(), Ok(*t));
            let states = ObjectState::all_of(*t);
            assert!(!states.is_empty(), "{t}");
            for s in states {
                assert_eq!(s.object_type(), *t);
                assert_eq!(ObjectState::parse(*t, s.as_str()), Ok(s));
            }
        }
        assert_eq!(
            ObjectState::all_of(ObjectType::Flow).len(),
            FlowState::ALL.len()
        );
        let read = |kind, text| ObjectState::parse(kind, text);
        assert_eq!(
            read(ObjectType::ActionPlan, "SUPERSEDED"),
            Ok(ObjectState::ActionPlan(PlanState::Superseded))
        );
        assert_eq!(
            read(ObjectType::Action, "SKIPPED"),
            Ok(ObjectState::Action(ActionState::Skipped))
        );
        assert_eq!(
            read(ObjectType::Flow, "ROLLED_BACK"),
            Ok(ObjectState::Flow(FlowState::RolledBack))
        );
        let audit = read(ObjectType::Audit, "SUSPENDED").expect("an audit state");
        assert_eq!(
            (audit.as_str(), audit.object_type()),
            ("SUSPENDED", ObjectType::Audit)
        );
        // A plan's state is not an audit's, nor an action's.
        let e = read(ObjectType::Audit, "RECOMMENDED").expect_err("not an audit state");
        assert_eq!(e.to_string(), "unknown audit state \"RECOMMENDED\"");
        assert!(read(ObjectType::Action, "SUPERSEDED").is_err());
        assert!("plan".parse::<ObjectType>().is_err());
    }

    #[test]
    fn every_name_reads_back_and_an_unknown_one_is_an_error() {
        for s in ActionState::ALL {
            assert_eq!(s.as_str().parse::<ActionState>(), Ok(*s));
        }
        for s in PlanState::ALL {
            assert_eq!(s.as_str().parse::<PlanState>(), Ok(*s));
        }
        for s in AuditState::ALL {
            assert_eq!(s.as_str().parse::<AuditState>(), Ok(*s));
        }
        for s in FlowState::ALL {
            assert_eq!(s.as_str().parse::<FlowState>(), Ok(*s));
        }
        assert!("rolled_back".parse::<FlowState>().is_err());
        for s in EventType::ALL {
            assert_eq!(s.as_str().parse::<EventType>(), Ok(*s));
            assert!(s.as_str().starts_with(s.object_type().as_str()), "{s}");
        }
        assert_eq!(
            "pending".parse::<ActionState>(),
            Err(UnknownName {
                what: "action state",
                value: "pending".into()
            })
        );
        assert!("RUNNING".parse::<PlanState>().is_err());
        assert_eq!(
            serde_json::to_string(&ExecutionRule::Any).ok().as_deref(),
            Some("\"ANY\"")
        );
        assert!(serde_json::from_str::<ExecutionRule>("\"SOME\"").is_err());
    }
}
