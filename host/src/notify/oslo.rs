//! Watcher's versioned notifications, as an oslo.messaging `messagingv2`
//! notifier sends them: the mapping from Sextant's events to Watcher's event
//! types and payload classes (with the versions Watcher's code emits), and
//! the `{"oslo.version": "2.0", "oslo.message": "…"}` envelope.
//!
//! One event gives zero, one or two notifications:
//! - an event of one of Watcher's types gives that notification; when it is
//!   a phase (`action.execution.start`, …) that also changed the object's
//!   state, Watcher's `<object>.update` comes first, as Watcher's `save()`
//!   sends it before the phase's notification;
//! - an event of a type Watcher does not have (`action.execution.retry`,
//!   `action.revert.*`) that changed an action's, plan's or audit's state
//!   gives `<object>.update` alone, so no state change is hidden from
//!   Watcher's consumers;
//! - anything else (a retry or a revert that changed nothing) gives
//!   nothing: Watcher's consumers know no such notification.
//!
//! Sextant's own facts ride only in fields Watcher's payloads do not have,
//! which oslo.versionedobjects ignores when it reads a primitive: an action's
//! `sextant_action_type_version` and `sextant_outputs`.

use crate::states::{EventType, ObjectState};
use crate::store::EventRow;
use crate::store::outbox::{ActionSubject, AuditSubject, CatalogSubject, PlanSubject, Subjects};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// An oslo.messaging notification priority (the routing key is
/// `<topic>.<priority in lower case>`, the message carries it in upper case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// `audit`
    Audit,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `sample`
    Sample,
}

impl Priority {
    /// Every priority, in the order oslo.messaging lists them.
    pub const ALL: [Priority; 7] = [
        Priority::Audit,
        Priority::Debug,
        Priority::Info,
        Priority::Warn,
        Priority::Error,
        Priority::Critical,
        Priority::Sample,
    ];

    /// Its place in [`Priority::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The routing key's suffix.
    pub fn lower(self) -> &'static str {
        match self {
            Priority::Audit => "audit",
            Priority::Debug => "debug",
            Priority::Info => "info",
            Priority::Warn => "warn",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Sample => "sample",
        }
    }

    /// As the message carries it.
    pub fn upper(self) -> &'static str {
        match self {
            Priority::Audit => "AUDIT",
            Priority::Debug => "DEBUG",
            Priority::Info => "INFO",
            Priority::Warn => "WARN",
            Priority::Error => "ERROR",
            Priority::Critical => "CRITICAL",
            Priority::Sample => "SAMPLE",
        }
    }

    /// Reads a priority in either case.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.lower().eq_ignore_ascii_case(s))
    }
}

/// The object a Watcher notification is about.
/// What an event is about (its event type says).
use crate::states::ObjectType as Object;

/// What a payload carries beyond its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extra {
    None,
    StateUpdate,
    Fault,
}

/// One of Watcher's notification kinds: its payload class and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kind {
    object: Object,
    class: &'static str,
    version: &'static str,
    extra: Extra,
    phase: bool,
}

/// Watcher's event types and their payload classes, with the versions of
/// Watcher's code (`watcher/notifications/{audit,action_plan,action}.py`).
const KINDS: &[(&str, Kind)] = {
    use Extra::*;
    use Object::*;
    const fn k(
        object: Object,
        class: &'static str,
        version: &'static str,
        extra: Extra,
        phase: bool,
    ) -> Kind {
        Kind {
            object,
            class,
            version,
            extra,
            phase,
        }
    }
    &[
        (
            "audit.create",
            k(Audit, "AuditCreatePayload", "1.2", None, false),
        ),
        (
            "audit.update",
            k(Audit, "AuditUpdatePayload", "1.2", StateUpdate, false),
        ),
        (
            "audit.delete",
            k(Audit, "AuditDeletePayload", "1.2", None, false),
        ),
        (
            "audit.strategy.start",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "audit.strategy.end",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "audit.strategy.error",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "audit.planner.start",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "audit.planner.end",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "audit.planner.error",
            k(Audit, "AuditActionPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.create",
            k(ActionPlan, "ActionPlanCreatePayload", "1.2", None, false),
        ),
        (
            "action_plan.update",
            k(
                ActionPlan,
                "ActionPlanUpdatePayload",
                "1.2",
                StateUpdate,
                false,
            ),
        ),
        (
            "action_plan.delete",
            k(ActionPlan, "ActionPlanDeletePayload", "1.2", None, false),
        ),
        (
            "action_plan.execution.start",
            k(ActionPlan, "ActionPlanActionPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.execution.end",
            k(ActionPlan, "ActionPlanActionPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.execution.error",
            k(ActionPlan, "ActionPlanActionPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.cancel.start",
            k(ActionPlan, "ActionPlanCancelPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.cancel.end",
            k(ActionPlan, "ActionPlanCancelPayload", "1.2", Fault, true),
        ),
        (
            "action_plan.cancel.error",
            k(ActionPlan, "ActionPlanCancelPayload", "1.2", Fault, true),
        ),
        (
            "action.create",
            k(Action, "ActionCreatePayload", "1.1", None, false),
        ),
        (
            "action.update",
            k(Action, "ActionUpdatePayload", "1.1", StateUpdate, false),
        ),
        (
            "action.delete",
            k(Action, "ActionDeletePayload", "1.1", None, false),
        ),
        (
            "action.execution.start",
            k(Action, "ActionExecutionPayload", "1.1", Fault, true),
        ),
        (
            "action.execution.end",
            k(Action, "ActionExecutionPayload", "1.1", Fault, true),
        ),
        (
            "action.execution.error",
            k(Action, "ActionExecutionPayload", "1.1", Fault, true),
        ),
        (
            "action.cancel.start",
            k(Action, "ActionCancelPayload", "1.1", Fault, true),
        ),
        (
            "action.cancel.end",
            k(Action, "ActionCancelPayload", "1.1", Fault, true),
        ),
        (
            "action.cancel.error",
            k(Action, "ActionCancelPayload", "1.1", Fault, true),
        ),
    ]
};

/// Watcher's event type of a Sextant event type, None for those Watcher
/// does not have (a retry, a revert): exhaustive, so a new event type has to
/// be mapped here.
fn watcher_event_type(t: EventType) -> Option<&'static str> {
    use EventType::*;
    match t {
        AuditCreate | AuditUpdate | AuditStrategyStart | AuditStrategyEnd | AuditStrategyError
        | PlanCreate | PlanUpdate | PlanDelete | PlanExecutionStart | PlanExecutionEnd
        | PlanExecutionError | PlanCancelStart | PlanCancelEnd | ActionCreate | ActionUpdate
        | ActionDelete | ActionExecutionStart | ActionExecutionEnd | ActionExecutionError
        | ActionCancelEnd => Some(t.as_str()),
        ActionExecutionRetry | ActionRevertEnd | ActionRevertError => None,
        // Flows and alternatives (docs/flows.md) are Sextant's own.
        ActionAlternativeStart
        | ActionAlternativeSettled
        | FlowFailed
        | FlowRollbackStart
        | FlowRollbackEnd
        | FlowAlternativeStart => None,
        // Which host claimed a plan is Sextant's own (docs/fleet.md).
        PlanClaimed => None,
    }
}

/// Whether an event is the error phase of what it is about.
fn is_error(t: EventType) -> bool {
    use EventType::*;
    match t {
        AuditStrategyError | PlanExecutionError | ActionExecutionError | ActionRevertError => true,
        AuditCreate
        | AuditUpdate
        | AuditStrategyStart
        | AuditStrategyEnd
        | PlanCreate
        | PlanUpdate
        | PlanDelete
        | PlanExecutionStart
        | PlanExecutionEnd
        | PlanCancelStart
        | PlanCancelEnd
        | PlanClaimed
        | ActionCreate
        | ActionUpdate
        | ActionDelete
        | ActionExecutionStart
        | ActionExecutionEnd
        | ActionExecutionRetry
        | ActionCancelEnd
        | ActionRevertEnd
        | ActionAlternativeStart
        | ActionAlternativeSettled
        | FlowFailed
        | FlowRollbackStart
        | FlowRollbackEnd
        | FlowAlternativeStart => false,
    }
}

/// Watcher's event type (as a constant) and kind of `event_type`.
fn kind(event_type: &str) -> Option<(&'static str, Kind)> {
    KINDS.iter().find(|(t, _)| *t == event_type).copied()
}

/// Whether Watcher has this event type.
pub fn is_watcher_event_type(event_type: &str) -> bool {
    kind(event_type).is_some()
}

/// Watcher's priority of an event type: ERROR for an `.error` phase, else
/// INFO.
pub fn default_priority(event_type: &str) -> Priority {
    if event_type.ends_with(".error") {
        Priority::Error
    } else {
        Priority::Info
    }
}

/// One notification made from an event. Its payload borrows the event and
/// the objects it is about and is serialized once, straight into the
/// envelope's text: no tree of JSON values is built.
pub struct Notification<'a> {
    /// The event it comes from.
    pub event_id: i64,
    /// Which of the event's notifications (0 or 1).
    pub part: u8,
    /// Watcher's event type.
    pub event_type: &'static str,
    /// Watcher's priority (before the sink's overrides).
    pub priority: Priority,
    /// The payload, an oslo.versionedobjects primitive.
    pub payload: Payload<'a>,
    /// The event's time as oslo.messaging writes it
    /// (`2016-10-18 09:52:05.219414`).
    pub timestamp: String,
}

impl Notification<'_> {
    /// The payload as a JSON value (for tests and tools: publishing
    /// serializes [`Notification::payload`] directly).
    pub fn payload_value(&self) -> Value {
        // Serializing borrowed strings and values cannot fail.
        serde_json::to_value(&self.payload).unwrap_or(Value::Null)
    }
}

/// An oslo.versionedobjects primitive of Watcher's namespace.
#[derive(serde::Serialize)]
struct Ovo<D> {
    #[serde(rename = "watcher_object.name")]
    name: &'static str,
    #[serde(rename = "watcher_object.namespace")]
    namespace: &'static str,
    #[serde(rename = "watcher_object.version")]
    version: &'static str,
    #[serde(rename = "watcher_object.data")]
    data: D,
}

fn ovo<D>(name: &'static str, version: &'static str, data: D) -> Ovo<D> {
    Ovo {
        name,
        namespace: "watcher",
        version,
        data,
    }
}

/// The fields of a payload's data, written in Watcher's order (a payload
/// extends another by writing the other's fields first).
trait Fields {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error>;
}

/// A JSON object of `T`'s fields.
struct Obj<T>(T);

impl<T: Fields> Serialize for Obj<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.0.fields(&mut m)?;
        m.end()
    }
}

/// A stored time's fields, when it is the store's own UTC form
/// (`2016-10-18T09:52:05.219Z`, RFC 3339 with `Z` and at most nine
/// fraction digits) of a valid date and time: the date and time of day
/// (`2016-10-18T09:52:05`) and the fraction's digits. Anything else (an
/// offset, a leap second, lower-case letters…) is None and goes through
/// chrono, so both ways give the same text.
fn utc_parts(t: &str) -> Option<(&str, &str)> {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let year = i32::try_from(year).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let rest = t.get(19..)?;
    let fraction = match rest.strip_prefix('.') {
        Some(f) => f.strip_suffix('Z')?,
        None if rest == "Z" => "",
        None => return None,
    };
    if rest.starts_with('.')
        && (fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    Some((t.get(..19)?, fraction))
}

/// A stored time (RFC 3339) as an oslo.versionedobjects DateTimeField
/// primitive: `2016-10-18T09:52:05Z` (the text itself if it is no time).
fn ovo_time(t: &str) -> String {
    if let Some((date_time, _)) = utc_parts(t) {
        return format!("{date_time}Z");
    }
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// A stored time as oslo.messaging's envelope `timestamp`
/// (`str(timeutils.utcnow())`: a space, microseconds, no zone).
pub fn envelope_time(t: &str) -> String {
    if let Some((date_time, fraction)) = utc_parts(t) {
        let mut out = String::with_capacity(26);
        out.push_str(&date_time[..10]);
        out.push(' ');
        out.push_str(&date_time[11..]);
        out.push('.');
        // Microseconds: the fraction cut or padded to six digits.
        out.push_str(fraction.get(..6).unwrap_or(fraction));
        for _ in fraction.len()..6 {
            out.push('0');
        }
        return out;
    }
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// A stored time as a DateTimeField primitive; null when absent.
struct OvoTime<'a>(Option<&'a str>);

impl Serialize for OvoTime<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(t) => match utc_parts(t) {
                // The common case, without an allocation.
                Some((date_time, _)) => {
                    let mut buf = [0u8; 20];
                    buf[..19].copy_from_slice(date_time.as_bytes());
                    buf[19] = b'Z';
                    s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
                }
                None => s.serialize_str(&ovo_time(t)),
            },
        }
    }
}

/// GoalPayload or StrategyPayload (1.0): a goal's efficacy specification
/// or a strategy's parameters spec.
struct Catalog<'a> {
    c: &'a CatalogSubject,
    spec_field: &'static str,
}

impl Fields for Catalog<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let c = self.c;
        m.serialize_entry("uuid", &c.uuid)?;
        m.serialize_entry("name", &c.name)?;
        m.serialize_entry("display_name", &c.display_name)?;
        m.serialize_entry(self.spec_field, &c.spec)?;
        m.serialize_entry("created_at", &OvoTime(Some(&c.created_at)))?;
        m.serialize_entry("updated_at", &OvoTime(c.updated_at.as_deref()))?;
        m.serialize_entry("deleted_at", &OvoTime(c.deleted_at.as_deref()))
    }
}

fn goal(c: Option<&CatalogSubject>) -> Option<Ovo<Obj<Catalog<'_>>>> {
    c.map(|c| {
        let spec_field = "efficacy_specification";
        ovo("GoalPayload", "1.0", Obj(Catalog { c, spec_field }))
    })
}

fn strategy(c: Option<&CatalogSubject>) -> Option<Ovo<Obj<Catalog<'_>>>> {
    c.map(|c| {
        let spec_field = "parameters_spec";
        ovo("StrategyPayload", "1.0", Obj(Catalog { c, spec_field }))
    })
}

/// TerseAuditPayload's fields (1.3).
struct TerseAudit<'a> {
    a: &'a AuditSubject,
    state: &'a str,
}

impl Fields for TerseAudit<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let a = self.a;
        m.serialize_entry("uuid", &a.uuid)?;
        m.serialize_entry("name", &a.name)?;
        m.serialize_entry("audit_type", &a.audit_type)?;
        m.serialize_entry("state", self.state)?;
        m.serialize_entry("parameters", &a.parameters)?;
        m.serialize_entry("interval", &a.interval)?;
        m.serialize_entry("scope", &a.scope)?;
        m.serialize_entry("goal_uuid", &a.goal_uuid)?;
        m.serialize_entry("strategy_uuid", &a.strategy_uuid)?;
        m.serialize_entry("auto_trigger", &a.auto_trigger)?;
        m.serialize_entry("next_run_time", &OvoTime(a.next_run_time.as_deref()))?;
        m.serialize_entry("created_at", &OvoTime(Some(&a.created_at)))?;
        m.serialize_entry("updated_at", &OvoTime(a.updated_at.as_deref()))?;
        m.serialize_entry("deleted_at", &OvoTime(a.deleted_at.as_deref()))?;
        m.serialize_entry("status_message", &a.status_message)
    }
}

/// TerseActionPlanPayload's fields (1.2).
struct TersePlan<'a> {
    p: &'a PlanSubject,
    state: &'a str,
}

impl Fields for TersePlan<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let p = self.p;
        m.serialize_entry("uuid", &p.uuid)?;
        m.serialize_entry("state", self.state)?;
        m.serialize_entry("global_efficacy", &p.global_efficacy)?;
        m.serialize_entry("audit_uuid", &p.audit_uuid)?;
        m.serialize_entry("strategy_uuid", &p.strategy_uuid)?;
        m.serialize_entry("status_message", &p.status_message)?;
        m.serialize_entry("created_at", &OvoTime(Some(&p.created_at)))?;
        m.serialize_entry("updated_at", &OvoTime(p.updated_at.as_deref()))?;
        m.serialize_entry("deleted_at", &OvoTime(p.deleted_at.as_deref()))
    }
}

/// An audit's payload fields: the terse ones, its goal and strategy.
struct AuditData<'a> {
    terse: TerseAudit<'a>,
    s: &'a Subjects,
}

impl Fields for AuditData<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        self.terse.fields(m)?;
        let a = self.terse.a;
        m.serialize_entry("goal", &goal(self.s.goals.get(&a.goal_uuid)))?;
        let st = a
            .strategy_uuid
            .as_ref()
            .and_then(|u| self.s.strategies.get(u));
        m.serialize_entry("strategy", &strategy(st))
    }
}

/// A plan's payload fields: the terse ones, its audit and strategy.
struct PlanData<'a> {
    terse: TersePlan<'a>,
    s: &'a Subjects,
}

impl Fields for PlanData<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        self.terse.fields(m)?;
        let p = self.terse.p;
        let audit = p.audit_uuid.as_ref().and_then(|u| self.s.audits.get(u));
        let audit = audit.map(|a| {
            let state = &a.state;
            ovo("TerseAuditPayload", "1.3", Obj(TerseAudit { a, state }))
        });
        m.serialize_entry("audit", &audit)?;
        let st = p
            .strategy_uuid
            .as_ref()
            .and_then(|u| self.s.strategies.get(u));
        m.serialize_entry("strategy", &strategy(st))
    }
}

/// An action's payload fields, with Sextant's extras (fields no Watcher
/// payload has) last.
struct ActionData<'a> {
    a: &'a ActionSubject,
    state: &'a str,
    s: &'a Subjects,
}

impl Fields for ActionData<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let a = self.a;
        m.serialize_entry("uuid", &a.uuid)?;
        m.serialize_entry("action_type", &a.action_type)?;
        m.serialize_entry("input_parameters", &a.input_parameters)?;
        m.serialize_entry("state", self.state)?;
        m.serialize_entry("parents", &a.parents)?;
        let plan = self.s.plans.get(&a.action_plan_uuid).map(|p| {
            let state = &p.state;
            ovo("TerseActionPlanPayload", "1.2", Obj(TersePlan { p, state }))
        });
        m.serialize_entry("action_plan", &plan)?;
        m.serialize_entry("status_message", &a.status_message)?;
        m.serialize_entry("created_at", &OvoTime(Some(&a.created_at)))?;
        m.serialize_entry("updated_at", &OvoTime(a.updated_at.as_deref()))?;
        m.serialize_entry("deleted_at", &OvoTime(a.deleted_at.as_deref()))?;
        m.serialize_entry("sextant_action_type_version", &a.action_type_version)?;
        if let Some(o) = &a.outputs {
            m.serialize_entry("sextant_outputs", o)?;
        }
        Ok(())
    }
}

/// The event's status message: its payload's, else its object's.
fn event_message(e: &EventRow) -> Option<&str> {
    e.payload
        .get("status_message")
        .or_else(|| e.payload.get("error"))
        .and_then(Value::as_str)
}

/// ExceptionPayload's fields (1.0).
struct Fault<'a> {
    module_name: &'static str,
    function_name: &'static str,
    exception: &'static str,
    exception_message: &'a str,
}

impl Fields for Fault<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("module_name", self.module_name)?;
        m.serialize_entry("function_name", self.function_name)?;
        m.serialize_entry("exception", self.exception)?;
        m.serialize_entry("exception_message", self.exception_message)
    }
}

/// ExceptionPayload 1.0 for an `.error` phase, else None (null).
fn fault<'a>(
    e: &'a EventRow,
    object: Object,
    fallback: Option<&'a str>,
) -> Option<Ovo<Obj<Fault<'a>>>> {
    if !is_error(e.event_type) {
        return None;
    }
    let (module_name, exception) = match object {
        Object::Audit => ("sextant.decide", "AuditError"),
        Object::ActionPlan => ("sextant.apply", "ActionPlanExecutionFailure"),
        Object::Action => ("sextant.apply", "ActionExecutionFailure"),
        // No Watcher kind is about a flow (`kind` never gives one).
        Object::Flow => return None,
    };
    let fault = Fault {
        module_name,
        function_name: e.event_type.as_str(),
        exception,
        exception_message: event_message(e).or(fallback).unwrap_or_default(),
    };
    Some(ovo("ExceptionPayload", "1.0", Obj(fault)))
}

/// The `<Object>StateUpdatePayload`'s fields (1.1).
struct StateUpdate<'a> {
    old_state: Option<&'a str>,
    state: Option<&'a str>,
    status_message: Option<&'a str>,
}

impl Fields for StateUpdate<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("old_state", &self.old_state)?;
        m.serialize_entry("state", &self.state)?;
        m.serialize_entry("status_message", &self.status_message)
    }
}

fn state_update<'a>(
    object: Object,
    e: &'a EventRow,
    status_message: Option<&'a str>,
) -> Option<Ovo<Obj<StateUpdate<'a>>>> {
    let class = match object {
        Object::Audit => "AuditStateUpdatePayload",
        Object::ActionPlan => "ActionPlanStateUpdatePayload",
        Object::Action => "ActionStateUpdatePayload",
        // No Watcher kind is about a flow (`kind` never gives one).
        Object::Flow => return None,
    };
    let update = StateUpdate {
        old_state: e.old_state.map(ObjectState::as_str),
        state: e.new_state.map(ObjectState::as_str),
        status_message: event_message(e).or(status_message),
    };
    Some(ovo(class, "1.1", Obj(update)))
}

/// What a payload is about.
enum ObjectData<'a> {
    Audit(AuditData<'a>),
    Plan(PlanData<'a>),
    Action(ActionData<'a>),
}

/// What a payload carries after its object's fields.
enum ExtraData<'a> {
    None,
    StateUpdate(Option<Ovo<Obj<StateUpdate<'a>>>>),
    Fault(Option<Ovo<Obj<Fault<'a>>>>),
}

/// A notification's payload: an oslo.versionedobjects primitive of one of
/// Watcher's payload classes, serialized without building a JSON tree.
pub struct Payload<'a> {
    class: &'static str,
    version: &'static str,
    object: ObjectData<'a>,
    extra: ExtraData<'a>,
}

impl Fields for &Payload<'_> {
    fn fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match &self.object {
            ObjectData::Audit(d) => d.fields(m)?,
            ObjectData::Plan(d) => d.fields(m)?,
            ObjectData::Action(d) => d.fields(m)?,
        }
        match &self.extra {
            ExtraData::None => Ok(()),
            ExtraData::StateUpdate(u) => m.serialize_entry("state_update", u),
            ExtraData::Fault(f) => m.serialize_entry("fault", f),
        }
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ovo(self.class, self.version, Obj(self)).serialize(s)
    }
}

/// The payload of one notification of `kind` for event `e`; None when the
/// object is not in the store (nothing to describe).
fn payload<'a>(kind: &Kind, e: &'a EventRow, s: &'a Subjects) -> Option<Payload<'a>> {
    let state_of = |current: &'a str| -> &'a str { e.new_state.map_or(current, |s| s.as_str()) };
    let (object, status_message) = match kind.object {
        Object::Audit => {
            let a = s.audits.get(&e.object_uuid)?;
            let terse = TerseAudit {
                a,
                state: state_of(&a.state),
            };
            (
                ObjectData::Audit(AuditData { terse, s }),
                a.status_message.as_deref(),
            )
        }
        Object::ActionPlan => {
            let p = s.plans.get(&e.object_uuid)?;
            let terse = TersePlan {
                p,
                state: state_of(&p.state),
            };
            (
                ObjectData::Plan(PlanData { terse, s }),
                p.status_message.as_deref(),
            )
        }
        Object::Action => {
            let a = s.actions.get(&e.object_uuid)?;
            let data = ActionData {
                a,
                state: state_of(&a.state),
                s,
            };
            (ObjectData::Action(data), a.status_message.as_deref())
        }
        Object::Flow => return None,
    };
    let extra = match kind.extra {
        Extra::None => ExtraData::None,
        Extra::StateUpdate => ExtraData::StateUpdate(state_update(kind.object, e, status_message)),
        Extra::Fault => ExtraData::Fault(fault(e, kind.object, status_message)),
    };
    Some(Payload {
        class: kind.class,
        version: kind.version,
        object,
        extra,
    })
}

/// Watcher's `<object>.update` event type.
fn update_type(object: Object) -> Option<&'static str> {
    match object {
        Object::Audit => Some("audit.update"),
        Object::ActionPlan => Some("action_plan.update"),
        Object::Action => Some("action.update"),
        Object::Flow => None,
    }
}

/// The notifications of one event (see the module's doc).
pub fn notifications_of<'a>(e: &'a EventRow, s: &'a Subjects) -> Vec<Notification<'a>> {
    let object = e.event_type.object_type();
    let changed = e.new_state.is_some() && e.new_state != e.old_state;
    let timestamp = envelope_time(&e.at);
    let mut out = Vec::new();
    let mut push = |event_type: Option<&'static str>| {
        let Some((event_type, k)) = event_type.and_then(kind) else {
            return;
        };
        if let Some(payload) = payload(&k, e, s) {
            out.push(Notification {
                event_id: e.id,
                part: u8::try_from(out.len()).unwrap_or(u8::MAX),
                event_type,
                priority: default_priority(event_type),
                payload,
                timestamp: timestamp.clone(),
            });
        }
    };
    let watcher_type = watcher_event_type(e.event_type);
    match watcher_type.and_then(kind) {
        Some((_, k)) if k.object == object => {
            if k.phase && changed {
                push(update_type(object));
            }
            push(watcher_type);
        }
        _ if changed => push(update_type(object)),
        _ => {}
    }
    out
}

/// The stable message id of an event's notification: a version 8 UUID
/// holding the database's origin (7 bytes), the part, and the event id, so
/// a redelivered notification carries the same id and consumers can drop
/// duplicates.
pub fn message_id(origin: &str, event_id: i64, part: u8) -> String {
    let mut b = [0u8; 16];
    for (i, slot) in b.iter_mut().take(7).enumerate() {
        *slot = origin
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    b[7] = part;
    b[8..].copy_from_slice(&event_id.to_be_bytes());
    uuid::Uuid::new_v8(b).to_string()
}

/// The event id a message id carries (the inverse of [`message_id`], for
/// consumers and tests).
pub fn event_id_of(message_id: &str) -> Option<i64> {
    let u = uuid::Uuid::parse_str(message_id).ok()?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&u.as_bytes()[8..]);
    // The UUID variant bits overwrite the top two bits of byte 8.
    id[0] &= 0x3f;
    Some(i64::from_be_bytes(id))
}

/// oslo.messaging's message, in the order its keys are written: borrowed
/// from the notification, serialized once.
#[derive(serde::Serialize)]
struct Message<'a> {
    message_id: &'a str,
    publisher_id: &'a str,
    event_type: &'a str,
    priority: &'static str,
    payload: &'a Payload<'a>,
    timestamp: &'a str,
    #[serde(rename = "_unique_id")]
    unique_id: &'a str,
    // The request context, flattened as oslo.messaging's pack_context
    // does: the applier acts for no user.
    #[serde(rename = "_context_request_id")]
    request_id: &'a str,
    #[serde(rename = "_context_global_request_id")]
    global_request_id: Option<&'a str>,
    #[serde(rename = "_context_user_id")]
    user_id: Option<&'a str>,
    #[serde(rename = "_context_project_id")]
    project_id: Option<&'a str>,
    #[serde(rename = "_context_roles")]
    roles: [&'a str; 0],
    #[serde(rename = "_context_is_admin")]
    is_admin: bool,
    #[serde(rename = "_context_read_only")]
    read_only: bool,
    #[serde(rename = "_context_show_deleted")]
    show_deleted: bool,
}

/// The start of oslo.messaging's v2 envelope, up to the message's text.
const ENVELOPE_HEAD: &[u8] = br#"{"oslo.version":"2.0","oslo.message":"#;

/// Appends to `out` the body oslo.messaging's `messagingv2` driver
/// publishes, `{"oslo.version": "2.0", "oslo.message": "<the message as
/// JSON text>"}` (compact), writing the message into `scratch` first (both
/// buffers are the caller's, kept between notifications: building a body
/// then allocates nothing once they have grown).
pub fn write_envelope(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    n: &Notification<'_>,
    priority: Priority,
    publisher_id: &str,
    message_id: &str,
) -> serde_json::Result<()> {
    let unique: String = message_id.chars().filter(|c| *c != '-').collect();
    let request_id = format!("req-{message_id}");
    let message = Message {
        message_id,
        publisher_id,
        event_type: n.event_type,
        priority: priority.upper(),
        payload: &n.payload,
        timestamp: &n.timestamp,
        unique_id: &unique,
        request_id: &request_id,
        global_request_id: None,
        user_id: None,
        project_id: None,
        roles: [],
        is_admin: true,
        read_only: false,
        show_deleted: false,
    };
    scratch.clear();
    serde_json::to_writer(&mut *scratch, &message)?;
    let text = std::str::from_utf8(scratch).map_err(serde::ser::Error::custom)?;
    out.extend_from_slice(ENVELOPE_HEAD);
    // The message's text as a JSON string: quoted and escaped.
    serde_json::to_writer(&mut *out, text)?;
    out.push(b'}');
    Ok(())
}

/// The body of [`write_envelope`] as a string.
pub fn envelope(
    n: &Notification<'_>,
    priority: Priority,
    publisher_id: &str,
    message_id: &str,
) -> serde_json::Result<String> {
    let mut out = Vec::new();
    write_envelope(
        &mut out,
        &mut Vec::new(),
        n,
        priority,
        publisher_id,
        message_id,
    )?;
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    /// The notifications as the sink built them before it serialized
    /// payloads directly (session 8: a tree of JSON values per payload):
    /// kept as the reference that the payloads published have not changed.
    /// The envelope around them is checked against the facts instead
    /// ([`oslo_v2_body`]), not against a copy of the code that writes it.
    mod reference {
        #![allow(dead_code)]
        use super::super::{
            EventRow, Extra, Kind, Object, Priority, Subjects, default_priority, is_error, kind,
            watcher_event_type,
        };
        use crate::store::outbox::{ActionSubject, AuditSubject, CatalogSubject, PlanSubject};
        use serde_json::{Map, Value, json};

        /// One notification made from an event.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Notification {
            /// The event it comes from.
            pub event_id: i64,
            /// Which of the event's notifications (0 or 1).
            pub part: u8,
            /// Watcher's event type.
            pub event_type: String,
            /// Watcher's priority (before the sink's overrides).
            pub priority: Priority,
            /// The payload, an oslo.versionedobjects primitive.
            pub payload: Value,
            /// The event's time as oslo.messaging writes it
            /// (`2016-10-18 09:52:05.219414`).
            pub timestamp: String,
        }

        /// An oslo.versionedobjects primitive of Watcher's namespace.
        fn ovo(class: &str, version: &str, data: Map<String, Value>) -> Value {
            json!({
                "watcher_object.name": class,
                "watcher_object.namespace": "watcher",
                "watcher_object.version": version,
                "watcher_object.data": data,
            })
        }

        /// A stored time (RFC 3339) as an oslo.versionedobjects DateTimeField
        /// primitive: `2016-10-18T09:52:05Z`.
        pub(super) fn ovo_time(t: &str) -> Value {
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(d) => Value::String(
                    d.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string(),
                ),
                Err(_) => Value::String(t.to_string()),
            }
        }

        fn ovo_time_opt(t: Option<&String>) -> Value {
            t.map_or(Value::Null, |t| ovo_time(t))
        }

        /// A stored time as oslo.messaging's envelope `timestamp`
        /// (`str(timeutils.utcnow())`: a space, microseconds, no zone).
        pub(super) fn envelope_time(t: &str) -> String {
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(d) => d
                    .with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string(),
                Err(_) => t.to_string(),
            }
        }

        fn opt_str(s: Option<&String>) -> Value {
            s.map_or(Value::Null, |s| Value::String(s.clone()))
        }

        fn catalog(c: &CatalogSubject, class: &str, spec_field: &str) -> Value {
            let mut d = Map::new();
            d.insert("uuid".into(), json!(c.uuid));
            d.insert("name".into(), json!(c.name));
            d.insert("display_name".into(), json!(c.display_name));
            d.insert(spec_field.into(), c.spec.clone());
            d.insert("created_at".into(), ovo_time(&c.created_at));
            d.insert("updated_at".into(), ovo_time_opt(c.updated_at.as_ref()));
            d.insert("deleted_at".into(), ovo_time_opt(c.deleted_at.as_ref()));
            ovo(class, "1.0", d)
        }

        /// TerseAuditPayload's fields (1.3).
        fn terse_audit_data(a: &AuditSubject, state: &str) -> Map<String, Value> {
            let mut d = Map::new();
            d.insert("uuid".into(), json!(a.uuid));
            d.insert("name".into(), json!(a.name));
            d.insert("audit_type".into(), json!(a.audit_type));
            d.insert("state".into(), json!(state));
            d.insert("parameters".into(), a.parameters.clone());
            d.insert("interval".into(), opt_str(a.interval.as_ref()));
            d.insert("scope".into(), a.scope.clone());
            d.insert("goal_uuid".into(), json!(a.goal_uuid));
            d.insert("strategy_uuid".into(), opt_str(a.strategy_uuid.as_ref()));
            d.insert("auto_trigger".into(), json!(a.auto_trigger));
            d.insert(
                "next_run_time".into(),
                ovo_time_opt(a.next_run_time.as_ref()),
            );
            d.insert("created_at".into(), ovo_time(&a.created_at));
            d.insert("updated_at".into(), ovo_time_opt(a.updated_at.as_ref()));
            d.insert("deleted_at".into(), ovo_time_opt(a.deleted_at.as_ref()));
            d.insert("status_message".into(), opt_str(a.status_message.as_ref()));
            d
        }

        /// TerseActionPlanPayload's fields (1.2).
        fn terse_plan_data(p: &PlanSubject, state: &str) -> Map<String, Value> {
            let mut d = Map::new();
            d.insert("uuid".into(), json!(p.uuid));
            d.insert("state".into(), json!(state));
            d.insert("global_efficacy".into(), p.global_efficacy.clone());
            d.insert("audit_uuid".into(), opt_str(p.audit_uuid.as_ref()));
            d.insert("strategy_uuid".into(), opt_str(p.strategy_uuid.as_ref()));
            d.insert("status_message".into(), opt_str(p.status_message.as_ref()));
            d.insert("created_at".into(), ovo_time(&p.created_at));
            d.insert("updated_at".into(), ovo_time_opt(p.updated_at.as_ref()));
            d.insert("deleted_at".into(), ovo_time_opt(p.deleted_at.as_ref()));
            d
        }

        fn audit_data(a: &AuditSubject, state: &str, s: &Subjects) -> Map<String, Value> {
            let mut d = terse_audit_data(a, state);
            d.insert(
                "goal".into(),
                s.goals.get(&a.goal_uuid).map_or(Value::Null, |g| {
                    catalog(g, "GoalPayload", "efficacy_specification")
                }),
            );
            d.insert(
                "strategy".into(),
                a.strategy_uuid
                    .as_ref()
                    .and_then(|u| s.strategies.get(u))
                    .map_or(Value::Null, |st| {
                        catalog(st, "StrategyPayload", "parameters_spec")
                    }),
            );
            d
        }

        fn plan_data(p: &PlanSubject, state: &str, s: &Subjects) -> Map<String, Value> {
            let mut d = terse_plan_data(p, state);
            d.insert(
                "audit".into(),
                p.audit_uuid
                    .as_ref()
                    .and_then(|u| s.audits.get(u))
                    .map_or(Value::Null, |a| {
                        ovo("TerseAuditPayload", "1.3", terse_audit_data(a, &a.state))
                    }),
            );
            d.insert(
                "strategy".into(),
                p.strategy_uuid
                    .as_ref()
                    .and_then(|u| s.strategies.get(u))
                    .map_or(Value::Null, |st| {
                        catalog(st, "StrategyPayload", "parameters_spec")
                    }),
            );
            d
        }

        fn action_data(a: &ActionSubject, state: &str, s: &Subjects) -> Map<String, Value> {
            let mut d = Map::new();
            d.insert("uuid".into(), json!(a.uuid));
            d.insert("action_type".into(), json!(a.action_type));
            d.insert("input_parameters".into(), a.input_parameters.clone());
            d.insert("state".into(), json!(state));
            d.insert("parents".into(), json!(a.parents));
            d.insert(
                "action_plan".into(),
                s.plans.get(&a.action_plan_uuid).map_or(Value::Null, |p| {
                    ovo(
                        "TerseActionPlanPayload",
                        "1.2",
                        terse_plan_data(p, &p.state),
                    )
                }),
            );
            d.insert("status_message".into(), opt_str(a.status_message.as_ref()));
            d.insert("created_at".into(), ovo_time(&a.created_at));
            d.insert("updated_at".into(), ovo_time_opt(a.updated_at.as_ref()));
            d.insert("deleted_at".into(), ovo_time_opt(a.deleted_at.as_ref()));
            // Sextant's extras: fields no Watcher payload has.
            d.insert(
                "sextant_action_type_version".into(),
                json!(a.action_type_version),
            );
            if let Some(o) = &a.outputs {
                d.insert("sextant_outputs".into(), o.clone());
            }
            d
        }

        /// The event's status message: its payload's, else its object's.
        fn event_message(e: &EventRow) -> Option<String> {
            e.payload
                .get("status_message")
                .or_else(|| e.payload.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }

        /// ExceptionPayload 1.0 for an `.error` phase, else null.
        fn fault(e: &EventRow, object: Object, fallback: Option<&String>) -> Value {
            if !is_error(e.event_type) {
                return Value::Null;
            }
            let message = event_message(e)
                .or_else(|| fallback.cloned())
                .unwrap_or_default();
            let (module, exception) = match object {
                Object::Audit => ("sextant.decide", "AuditError"),
                Object::ActionPlan => ("sextant.apply", "ActionPlanExecutionFailure"),
                Object::Action => ("sextant.apply", "ActionExecutionFailure"),
                // No Watcher kind is about a flow (`kind` never gives one).
                Object::Flow => return Value::Null,
            };
            let mut d = Map::new();
            d.insert("module_name".into(), json!(module));
            d.insert("function_name".into(), json!(e.event_type));
            d.insert("exception".into(), json!(exception));
            d.insert("exception_message".into(), json!(message));
            ovo("ExceptionPayload", "1.0", d)
        }

        fn state_update(object: Object, e: &EventRow, status_message: Option<&String>) -> Value {
            let class = match object {
                Object::Audit => "AuditStateUpdatePayload",
                Object::ActionPlan => "ActionPlanStateUpdatePayload",
                Object::Action => "ActionStateUpdatePayload",
                // No Watcher kind is about a flow (`kind` never gives one).
                Object::Flow => return Value::Null,
            };
            let mut d = Map::new();
            d.insert("old_state".into(), json!(e.old_state));
            d.insert("state".into(), json!(e.new_state));
            d.insert(
                "status_message".into(),
                event_message(e).map_or_else(|| opt_str(status_message), Value::String),
            );
            ovo(class, "1.1", d)
        }

        /// The payload of one notification of `kind` for event `e`; None when the
        /// object is not in the store (nothing to describe).
        fn payload(kind: &Kind, class: &str, e: &EventRow, s: &Subjects) -> Option<Value> {
            let state_of = |current: &str| {
                e.new_state
                    .map_or_else(|| current.to_string(), |s| s.to_string())
            };
            let (mut d, status_message) = match kind.object {
                Object::Audit => {
                    let a = s.audits.get(&e.object_uuid)?;
                    (
                        audit_data(a, &state_of(&a.state), s),
                        a.status_message.clone(),
                    )
                }
                Object::ActionPlan => {
                    let p = s.plans.get(&e.object_uuid)?;
                    (
                        plan_data(p, &state_of(&p.state), s),
                        p.status_message.clone(),
                    )
                }
                Object::Action => {
                    let a = s.actions.get(&e.object_uuid)?;
                    (
                        action_data(a, &state_of(&a.state), s),
                        a.status_message.clone(),
                    )
                }
                Object::Flow => return None,
            };
            match kind.extra {
                Extra::None => {}
                Extra::StateUpdate => {
                    d.insert(
                        "state_update".into(),
                        state_update(kind.object, e, status_message.as_ref()),
                    );
                }
                Extra::Fault => {
                    d.insert(
                        "fault".into(),
                        fault(e, kind.object, status_message.as_ref()),
                    );
                }
            }
            Some(ovo(class, kind.version, d))
        }

        /// The notifications of one event (see the module's doc).
        pub fn notifications_of(e: &EventRow, s: &Subjects) -> Vec<Notification> {
            let object = e.event_type.object_type();
            let changed = e.new_state.is_some() && e.new_state != e.old_state;
            let update_type = format!("{}.update", object.as_str());
            let timestamp = envelope_time(&e.at);
            let mut out = Vec::new();
            let push = |event_type: &str, out: &mut Vec<Notification>| {
                let Some((_, k)) = kind(event_type) else {
                    return;
                };
                if let Some(p) = payload(&k, k.class, e, s) {
                    out.push(Notification {
                        event_id: e.id,
                        part: u8::try_from(out.len()).unwrap_or(u8::MAX),
                        event_type: event_type.to_string(),
                        priority: default_priority(event_type),
                        payload: p,
                        timestamp: timestamp.clone(),
                    });
                }
            };
            let watcher_type = watcher_event_type(e.event_type);
            match watcher_type.and_then(kind).map(|(_, k)| k) {
                Some(k) if k.object == object => {
                    if k.phase && changed {
                        push(&update_type, &mut out);
                    }
                    if let Some(t) = watcher_type {
                        push(t, &mut out);
                    }
                }
                _ if changed => push(&update_type, &mut out),
                _ => {}
            }
            out
        }
    }

    fn subjects() -> Subjects {
        let mut s = Subjects::default();
        s.goals.insert(
            "g".into(),
            CatalogSubject {
                uuid: "g".into(),
                name: "server_consolidation".into(),
                display_name: "Server Consolidation".into(),
                spec: json!([]),
                created_at: "2016-10-18T09:52:05.123Z".into(),
                ..Default::default()
            },
        );
        s.strategies.insert(
            "st".into(),
            CatalogSubject {
                uuid: "st".into(),
                name: "basic".into(),
                display_name: "Basic".into(),
                spec: json!({}),
                created_at: "2016-10-18T09:52:05.123Z".into(),
                ..Default::default()
            },
        );
        s.audits.insert(
            "au".into(),
            AuditSubject {
                uuid: "au".into(),
                name: "a1".into(),
                audit_type: "ONESHOT".into(),
                state: "SUCCEEDED".into(),
                parameters: json!({}),
                scope: json!([]),
                goal_uuid: "g".into(),
                strategy_uuid: Some("st".into()),
                created_at: "2016-10-18T09:52:05.123Z".into(),
                ..Default::default()
            },
        );
        s.plans.insert(
            "p".into(),
            PlanSubject {
                uuid: "p".into(),
                state: "SUCCEEDED".into(),
                global_efficacy: json!([]),
                created_at: "2016-10-18T09:52:05.123Z".into(),
                audit_uuid: Some("au".into()),
                strategy_uuid: Some("st".into()),
                ..Default::default()
            },
        );
        s.actions.insert(
            "a".into(),
            ActionSubject {
                uuid: "a".into(),
                action_type: "nop".into(),
                action_type_version: "1.0.0".into(),
                input_parameters: json!({"message": "hi"}),
                state: "SUCCEEDED".into(),
                parents: vec!["b".into()],
                outputs: Some(json!({"ok": true})),
                created_at: "2016-10-18T09:52:05.123Z".into(),
                action_plan_uuid: "p".into(),
                ..Default::default()
            },
        );
        s
    }

    fn event(t: &str, object: &str, uuid: &str, old: Option<&str>, new: Option<&str>) -> EventRow {
        let object_type = object.parse().expect("a known object type");
        let state = |s: &str| ObjectState::parse(object_type, s).expect("a known state");
        EventRow {
            id: 42,
            at: "2017-01-01T00:00:00.250Z".into(),
            event_type: t.parse().expect("a known event type"),
            object_type,
            object_uuid: uuid.into(),
            action_plan_uuid: Some("p".into()),
            old_state: old.map(state),
            new_state: new.map(state),
            payload: json!({"status_message": null}),
        }
    }

    fn payloads(n: &[Notification<'_>]) -> Vec<Value> {
        n.iter().map(Notification::payload_value).collect()
    }

    fn data(v: &Value) -> &Map<String, Value> {
        v["watcher_object.data"].as_object().expect("data")
    }

    #[test]
    fn an_execution_start_that_changes_state_is_an_update_then_the_phase() {
        let s = subjects();
        let e = event(
            "action.execution.start",
            "action",
            "a",
            Some("PENDING"),
            Some("ONGOING"),
        );
        let n = notifications_of(&e, &s);
        let p = payloads(&n);
        let types: Vec<&str> = n.iter().map(|n| n.event_type).collect();
        assert_eq!(types, ["action.update", "action.execution.start"]);
        assert_eq!(p[0]["watcher_object.name"], "ActionUpdatePayload");
        assert_eq!(p[0]["watcher_object.version"], "1.1");
        assert_eq!(p[0]["watcher_object.namespace"], "watcher");
        let d = data(&p[0]);
        assert_eq!(d["state"], "ONGOING", "the state at the event, not now");
        let su = data(&d["state_update"]);
        assert_eq!(su["old_state"], "PENDING");
        assert_eq!(su["state"], "ONGOING");
        assert_eq!(
            d["state_update"]["watcher_object.name"],
            "ActionStateUpdatePayload"
        );
        assert_eq!(d["parents"], json!(["b"]));
        assert_eq!(d["created_at"], "2016-10-18T09:52:05Z");
        assert_eq!(d["updated_at"], Value::Null);
        assert_eq!(d["sextant_action_type_version"], "1.0.0");
        assert_eq!(d["sextant_outputs"], json!({"ok": true}));
        let ap = &d["action_plan"];
        assert_eq!(ap["watcher_object.name"], "TerseActionPlanPayload");
        assert_eq!(ap["watcher_object.version"], "1.2");
        assert_eq!(data(ap)["audit_uuid"], "au");
        assert_eq!(data(ap)["strategy_uuid"], "st");
        assert_eq!(p[1]["watcher_object.name"], "ActionExecutionPayload");
        assert_eq!(data(&p[1])["fault"], Value::Null);
        assert_eq!(n[1].priority, Priority::Info);
        assert_eq!((n[0].part, n[1].part), (0, 1));
        assert_eq!(n[0].timestamp, "2017-01-01 00:00:00.250000");
    }

    #[test]
    fn an_error_phase_is_error_with_a_fault() {
        let s = subjects();
        let mut e = event(
            "action.execution.error",
            "action",
            "a",
            Some("ONGOING"),
            Some("FAILED"),
        );
        e.payload = json!({"status_message": "boom"});
        let n = notifications_of(&e, &s);
        let p = payloads(&n);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].priority, Priority::Info);
        assert_eq!(n[1].priority, Priority::Error);
        let f = &data(&p[1])["fault"];
        assert_eq!(f["watcher_object.name"], "ExceptionPayload");
        assert_eq!(f["watcher_object.version"], "1.0");
        assert_eq!(data(f)["exception_message"], "boom");
        assert_eq!(data(&data(&p[0])["state_update"])["status_message"], "boom");
    }

    #[test]
    fn plans_and_audits_carry_their_nested_objects() {
        let s = subjects();
        let e = event(
            "action_plan.update",
            "action_plan",
            "p",
            Some("RECOMMENDED"),
            Some("PENDING"),
        );
        let n = notifications_of(&e, &s);
        let p = payloads(&n);
        assert_eq!(n.len(), 1);
        assert_eq!(p[0]["watcher_object.name"], "ActionPlanUpdatePayload");
        assert_eq!(p[0]["watcher_object.version"], "1.2");
        let d = data(&p[0]);
        assert_eq!(d["state"], "PENDING");
        assert_eq!(d["audit"]["watcher_object.name"], "TerseAuditPayload");
        assert_eq!(d["audit"]["watcher_object.version"], "1.3");
        assert_eq!(d["strategy"]["watcher_object.name"], "StrategyPayload");
        assert_eq!(
            d["state_update"]["watcher_object.name"],
            "ActionPlanStateUpdatePayload"
        );

        let e = event("audit.strategy.end", "audit", "au", None, None);
        let n = notifications_of(&e, &s);
        let p = payloads(&n);
        assert_eq!(
            n.len(),
            1,
            "a phase without a state change is the phase alone"
        );
        assert_eq!(p[0]["watcher_object.name"], "AuditActionPayload");
        let d = data(&p[0]);
        assert_eq!(d["goal"]["watcher_object.name"], "GoalPayload");
        assert_eq!(d["goal_uuid"], "g");
        assert_eq!(d["state"], "SUCCEEDED");
    }

    #[test]
    fn sextant_only_types_show_only_their_state_change() {
        let s = subjects();
        let e = event(
            "action.revert.end",
            "action",
            "a",
            Some("FAILED"),
            Some("SUCCEEDED"),
        );
        let n = notifications_of(&e, &s);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event_type, "action.update");
        let e = event("action.execution.retry", "action", "a", None, None);
        assert!(notifications_of(&e, &s).is_empty());
        let e = event(
            "action.update",
            "action",
            "gone",
            Some("PENDING"),
            Some("ONGOING"),
        );
        assert!(
            notifications_of(&e, &s).is_empty(),
            "no object, nothing to describe"
        );
    }

    /// The body oslo.messaging's `messagingv2` driver publishes, as
    /// watcher-service-facts.md 2.2 gives it: `{"oslo.version": "2.0",
    /// "oslo.message": "<the message as JSON text>"}`, the message's keys
    /// in the order oslo.messaging writes them, `_unique_id` the message
    /// id's hex, and the request context of no user (the applier's)
    /// flattened as `_context_<key>`.
    fn oslo_v2_body(
        payload: Value,
        event_type: &str,
        priority: &str,
        publisher_id: &str,
        message_id: &str,
        timestamp: &str,
    ) -> String {
        let message = json!({
            "message_id": message_id,
            "publisher_id": publisher_id,
            "event_type": event_type,
            "priority": priority,
            "payload": payload,
            "timestamp": timestamp,
            "_unique_id": message_id.replace('-', ""),
            "_context_request_id": format!("req-{message_id}"),
            "_context_global_request_id": null,
            "_context_user_id": null,
            "_context_project_id": null,
            "_context_roles": [],
            "_context_is_admin": true,
            "_context_read_only": false,
            "_context_show_deleted": false,
        });
        json!({"oslo.version": "2.0", "oslo.message": message.to_string()}).to_string()
    }

    #[test]
    fn message_ids_are_stable_and_carry_the_event() {
        let a = message_id("0123456789abcdef", 42, 0);
        assert_eq!(a, message_id("0123456789abcdef", 42, 0));
        assert_ne!(a, message_id("0123456789abcdef", 42, 1));
        assert_ne!(a, message_id("fedcba9876543210", 42, 0));
        assert_eq!(event_id_of(&a), Some(42));
        assert_eq!(event_id_of(&message_id("00", 1 << 40, 1)), Some(1 << 40));
    }

    #[test]
    fn the_envelope_is_oslo_messagingv2() {
        let s = subjects();
        let e = event(
            "action.update",
            "action",
            "a",
            Some("PENDING"),
            Some("ONGOING"),
        );
        let n = &notifications_of(&e, &s)[0];
        let id = message_id("0123456789abcdef", e.id, n.part);
        let body = envelope(n, Priority::Info, "infra-optim:node0", &id).expect("an envelope");
        let outer: Value = serde_json::from_str(&body).expect("json");
        let outer = outer.as_object().expect("object");
        assert_eq!(outer.len(), 2);
        assert_eq!(outer["oslo.version"], "2.0");
        let inner: Value =
            serde_json::from_str(outer["oslo.message"].as_str().expect("a string")).expect("json");
        assert_eq!(inner["message_id"], id);
        assert_eq!(inner["publisher_id"], "infra-optim:node0");
        assert_eq!(inner["event_type"], "action.update");
        assert_eq!(inner["priority"], "INFO");
        assert_eq!(inner["timestamp"], "2017-01-01 00:00:00.250000");
        assert_eq!(
            inner["payload"]["watcher_object.name"],
            "ActionUpdatePayload"
        );
        assert_eq!(inner["_unique_id"].as_str().map(str::len), Some(32));
        assert_eq!(inner["_context_roles"], json!([]));
        // Every key of oslo.messaging's message, in its order, with the
        // context of no user: the same text a Value tree gave.
        assert_eq!(
            body,
            oslo_v2_body(
                n.payload_value(),
                "action.update",
                "INFO",
                "infra-optim:node0",
                &id,
                "2017-01-01 00:00:00.250000"
            )
        );
    }

    #[test]
    fn stored_times_are_written_as_chrono_wrote_them() {
        let mut inputs: Vec<String> = [
            "2016-10-18T09:52:05Z",
            "2016-10-18T09:52:05.1Z",
            "2016-10-18T09:52:05.123Z",
            "2016-10-18T09:52:05.123456Z",
            "2016-10-18T09:52:05.1234567Z",
            "2016-10-18T09:52:05.123456789Z",
            "2016-10-18T09:52:05.1234567891Z",
            "2016-10-18T09:52:05.Z",
            "2016-10-18T09:52:05.12aZ",
            "2016-10-18T09:52:05.123+02:00",
            "2016-10-18T23:52:05-05:30",
            "2016-10-18T09:52:05.123+00:00",
            "2016-10-18t09:52:05z",
            "2016-10-18 09:52:05Z",
            "2016-02-29T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-00-10T00:00:00Z",
            "2016-04-31T00:00:00Z",
            "2016-10-18T24:00:00Z",
            "2016-10-18T23:60:00Z",
            "2016-10-18T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "+2016-10-18T09:52:05Z",
            "2016-10-18T09:52:05",
            "2016-10-18T09:52:05ZZ",
            "2016-1a-18T09:52:05Z",
            "2016-10-18T09:52",
            "",
            "not a time",
            "2016-10-18T09:52:05.123Z\u{e9}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push(crate::store::now());
        for t in &inputs {
            assert_eq!(Value::String(ovo_time(t)), reference::ovo_time(t), "{t:?}");
            assert_eq!(
                serde_json::to_value(OvoTime(Some(t))).expect("a time"),
                reference::ovo_time(t),
                "{t:?}"
            );
            assert_eq!(envelope_time(t), reference::envelope_time(t), "{t:?}");
        }
        assert_eq!(
            serde_json::to_value(OvoTime(None)).expect("null"),
            Value::Null
        );
    }

    /// Subjects whose every optional field is set, with text JSON must
    /// escape (quotes, backslashes, control characters, non-ASCII).
    fn rich_subjects() -> Subjects {
        let mut s = subjects();
        let odd = "a \"quoted\" \\ back\tslash\n\u{1}\u{7f} \u{e9}\u{1f600}";
        for g in s.goals.values_mut().chain(s.strategies.values_mut()) {
            g.display_name = odd.into();
            g.spec = json!([{"name": odd, "unit": null, "n": 1.5}]);
            g.updated_at = Some("2016-10-18T10:00:00+02:00".into());
            g.deleted_at = Some("not a time".into());
        }
        for a in s.audits.values_mut() {
            a.name = odd.into();
            a.parameters = json!({"granularity": 300, "nested": {"z": [1, "two"], "a": true}});
            a.interval = Some("3600".into());
            a.scope = json!([{"compute": [{"host_aggregates": [{"id": "*"}]}]}]);
            a.auto_trigger = true;
            a.next_run_time = Some("2016-10-18T11:00:00.5Z".into());
            a.updated_at = Some("2016-10-18T10:00:00.000001Z".into());
            a.deleted_at = Some("2016-10-18T10:00:00Z".into());
            a.status_message = Some(odd.into());
        }
        for p in s.plans.values_mut() {
            p.global_efficacy =
                json!([{"name": "released_nodes_ratio", "value": 50.0, "unit": "%"}]);
            p.status_message = Some(odd.into());
            p.updated_at = Some("2016-10-18T10:00:00.123456789Z".into());
            p.deleted_at = Some("2016-10-18T10:00:00Z".into());
        }
        for a in s.actions.values_mut() {
            a.input_parameters = json!({"resource_id": odd, "migration_type": "live", "n": -3});
            a.parents = vec!["x".into(), odd.into()];
            a.outputs = Some(json!({"host": odd, "list": [null, false]}));
            a.status_message = Some(odd.into());
            a.updated_at = Some("2016-10-18T10:00:00.1Z".into());
            a.deleted_at = Some("2016-10-18T10:00:00Z".into());
        }
        s
    }

    #[test]
    fn envelopes_are_byte_identical_to_the_value_trees_they_were_built_from() {
        let poor = {
            let mut s = subjects();
            for a in s.actions.values_mut() {
                a.outputs = None;
            }
            // A plan without its audit and strategy, an audit without its goal.
            s.goals.clear();
            s.strategies.clear();
            s
        };
        let mut checked = 0;
        for s in [subjects(), rich_subjects(), poor, Subjects::default()] {
            for &t in EventType::ALL {
                let (object, uuid) = match t.object_type() {
                    Object::Audit => ("audit", "au"),
                    Object::ActionPlan => ("action_plan", "p"),
                    Object::Action => ("action", "a"),
                    Object::Flow => ("flow", "f"),
                };
                let states = [
                    (None, None),
                    (Some("PENDING"), Some("ONGOING")),
                    (Some("ONGOING"), Some("ONGOING")),
                    (None, Some("FAILED")),
                ];
                let payloads = [
                    json!({"status_message": null}),
                    json!({"status_message": "it \"failed\"\n"}),
                    json!({"error": "boom \u{e9}"}),
                    json!({}),
                ];
                for (old, new) in states {
                    // A flow is never ONGOING: no event can say it is.
                    let kind = t.object_type();
                    if [old, new]
                        .into_iter()
                        .flatten()
                        .any(|s| ObjectState::parse(kind, s).is_err())
                    {
                        continue;
                    }
                    for payload in &payloads {
                        let mut e = event(t.as_str(), object, uuid, old, new);
                        e.payload = payload.clone();
                        let n = notifications_of(&e, &s);
                        let r = reference::notifications_of(&e, &s);
                        assert_eq!(n.len(), r.len(), "{t} {old:?} {new:?} {payload}");
                        for (n, r) in n.iter().zip(&r) {
                            assert_eq!(
                                (n.event_id, n.part, n.event_type, n.priority, &n.timestamp),
                                (
                                    r.event_id,
                                    r.part,
                                    r.event_type.as_str(),
                                    r.priority,
                                    &r.timestamp
                                )
                            );
                            let id = message_id("0123456789abcdef", e.id, n.part);
                            // Watcher's priority (facts 2.3: ERROR for an
                            // error phase, else INFO), and a sink's override.
                            let watchers = if r.event_type.ends_with(".error") {
                                "ERROR"
                            } else {
                                "INFO"
                            };
                            for (priority, upper) in
                                [(n.priority, watchers), (Priority::Critical, "CRITICAL")]
                            {
                                let publisher = "infra-optim:n\u{e9}";
                                let body =
                                    envelope(n, priority, publisher, &id).expect("an envelope");
                                let want = oslo_v2_body(
                                    r.payload.clone(),
                                    &r.event_type,
                                    upper,
                                    publisher,
                                    &id,
                                    &r.timestamp,
                                );
                                assert_eq!(body, want, "{t} {old:?} {new:?} {payload}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 300, "{checked} notifications compared");
    }

    #[test]
    fn a_priority_s_index_is_its_place_in_all() {
        for (i, p) in Priority::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
    }

    #[test]
    fn every_event_type_maps_to_a_watcher_kind_of_its_object_or_to_none() {
        for &t in EventType::ALL {
            let watcher = watcher_event_type(t);
            match t {
                EventType::ActionExecutionRetry
                | EventType::ActionRevertEnd
                | EventType::ActionRevertError
                | EventType::ActionAlternativeStart
                | EventType::ActionAlternativeSettled
                | EventType::FlowFailed
                | EventType::FlowRollbackStart
                | EventType::FlowRollbackEnd
                | EventType::FlowAlternativeStart
                | EventType::PlanClaimed => assert_eq!(watcher, None, "{t}"),
                _ => {
                    let k = watcher
                        .and_then(kind)
                        .map(|(_, k)| k)
                        .unwrap_or_else(|| panic!("{t}: no kind"));
                    assert_eq!(k.object.as_str(), t.object_type().as_str(), "{t}");
                }
            }
            assert_eq!(is_error(t), t.as_str().ends_with(".error"), "{t}");
        }
    }

    #[test]
    fn every_watcher_type_has_its_code_version() {
        for (t, k) in KINDS {
            let want = match k.object {
                Object::Action => "1.1",
                _ => "1.2",
            };
            assert_eq!(k.version, want, "{t}");
            assert_eq!(
                default_priority(t) == Priority::Error,
                t.ends_with(".error")
            );
        }
        assert_eq!(Priority::parse("ERROR"), Some(Priority::Error));
        assert_eq!(Priority::parse("nope"), None);
    }
}
