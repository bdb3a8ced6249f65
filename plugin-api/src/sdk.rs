//! The plugin developer SDK: plain Rust traits over serde types, one per
//! plugin kind, and the glue that [`crate::export_plugin!`] wires to the ABI.
//!
//! Every entry point the host can call runs inside [`guard`], so a panic in
//! plugin code comes back to the host as `PANICKED` instead of ending it.

use crate::abi::{
    ActionHandlersV1, ActionMappersV1, ActionSpec, Capability, CollectorsV1, Edge, HandlerBox,
    HandlerObject, HandlerObject_TO, HostServices, LogLevel, PlannersV1, PlannersV2, PluginError,
    PluginRoot, PluginRootRef, PredictV1, PredictorBox, PredictorObject, PredictorObject_TO,
    ScheduleAbi, SolutionAbi, StrategiesV1, StructuredScheduleAbi,
};
use crate::manifest::Kind;
use crate::prediction::{ModelChange, PredictedModel};
use abi_stable::{
    StableAbi,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The traits plugin authors implement.
// ---------------------------------------------------------------------------

/// An action handler: one value per action, deserialised from the action's
/// input parameters.
///
/// ```
/// use sextant_plugin_api::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Hello { name: String }
///
/// impl ActionHandler for Hello {
///     fn execute(&self, _ctx: &Context) -> Result<Value, PluginError> {
///         Ok(json!({ "greeting": format!("Hello, {}!", self.name) }))
///     }
/// }
/// # let h = Hello { name: "ops".into() };
/// # assert_eq!(h.execute(&Context::detached()).unwrap()["greeting"], "Hello, ops!");
/// ```
pub trait ActionHandler: Send + Sync + 'static {
    /// Checks that the action can and should run. Return
    /// [`PluginError::skipped`] to skip it, any other error to fail it.
    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
    /// Runs the action; returns its outputs (a JSON object, or null).
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError>;
    /// Checks that the action had its effect.
    fn post_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
    /// Undoes the action. Declare the entry `.revertible()` when you
    /// implement it.
    fn revert(&self, _ctx: &Context) -> Result<(), PluginError> {
        Err(PluginError::unsupported("this action cannot be reverted"))
    }
    /// Called from another thread while `execute` runs, after
    /// [`Context::abort_signal`] has been raised. Declare the entry
    /// `.abortable()` when `execute` honours the signal.
    fn abort(&self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
}

/// How a handler's action changes the cluster model: what simulation uses
/// to predict a plan's effect, and to check each action's pre-condition
/// against the state its ancestors leave. Export the handler with
/// `predicting_handler` in [`crate::export_plugin!`].
///
/// Read and change `model` as the action would change the cloud. Return
/// [`PluginError::skipped`] when the action would have nothing to do,
/// [`PluginError::precondition_failed`] (naming what is wrong) when it
/// could not run in this state. A prediction that fails changes nothing:
/// the SDK rolls the model back.
///
/// ```
/// use sextant_plugin_api::prelude::*;
/// use sextant_plugin_api::prediction::PredictedModel;
///
/// #[derive(serde::Deserialize)]
/// struct Disable { host: String }
///
/// impl Predict for Disable {
///     fn predict(&self, model: &mut PredictedModel) -> Result<(), PluginError> {
///         let mut n = model
///             .node(&self.host)
///             .ok_or_else(|| PluginError::skipped(format!("no host {}", self.host)))?
///             .clone();
///         n.status = "disabled".into();
///         model.put_node(n);
///         Ok(())
///     }
/// }
/// ```
pub trait Predict {
    /// Applies the action's effect to `model`, or says why it cannot run.
    fn predict(&self, model: &mut PredictedModel) -> Result<(), PluginError>;
}

/// One action of a solution, as a strategy produces it and a planner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Identifier unique within the solution.
    pub id: String,
    /// The action type's name.
    pub action_type: String,
    /// The resource the action applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Input parameters (a JSON object).
    #[serde(default)]
    pub input_parameters: Value,
}

/// What a strategy returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// The unordered actions.
    pub actions: Vec<Action>,
    /// Efficacy indicators (reference section 5.1).
    #[serde(default)]
    pub efficacy_indicators: Value,
    /// Anything else the strategy wants to report.
    #[serde(default)]
    pub extra: Value,
}

/// The key of [`Solution::extra`] that says why a solution recommends what
/// it does; the host shows it to the operator with the audit (above all
/// when the solution is empty: "no node has host_outlet_temp"). A plain
/// JSON field: no ABI change, and older hosts ignore it.
pub const REASON_KEY: &str = "reason";

impl Solution {
    /// This solution with `extra.reason` set (`extra` becomes an object if
    /// it was not one).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        if !self.extra.is_object() {
            self.extra = Value::Object(Default::default());
        }
        if let Value::Object(m) = &mut self.extra {
            m.insert(REASON_KEY.into(), Value::String(reason.into()));
        }
        self
    }

    /// The reason the strategy gave, if any.
    pub fn reason(&self) -> Option<&str> {
        self.extra.get(REASON_KEY).and_then(Value::as_str)
    }

    /// This solution with ranked candidates for one parameter of action
    /// `action_id`, best first, after the value the action has (see
    /// [`CANDIDATES_KEY`]): `extra.candidates.<action_id>.<parameter>`.
    /// An empty list adds nothing.
    pub fn with_candidates(
        mut self,
        action_id: &str,
        parameter: &str,
        values: impl IntoIterator<Item = Value>,
    ) -> Self {
        let values: Vec<Value> = values.into_iter().collect();
        if values.is_empty() {
            return self;
        }
        if !self.extra.is_object() {
            self.extra = Value::Object(Default::default());
        }
        if let Value::Object(m) = &mut self.extra {
            let all = m
                .entry(CANDIDATES_KEY)
                .or_insert_with(|| Value::Object(Default::default()));
            if !all.is_object() {
                *all = Value::Object(Default::default());
            }
            if let Value::Object(all) = all {
                let one = all
                    .entry(action_id)
                    .or_insert_with(|| Value::Object(Default::default()));
                if !one.is_object() {
                    *one = Value::Object(Default::default());
                }
                if let Value::Object(one) = one {
                    one.insert(parameter.into(), Value::Array(values));
                }
            }
        }
        self
    }

    /// The ranked candidates of parameter `parameter` of action
    /// `action_id`, best first (empty when the strategy gave none).
    pub fn candidates(&self, action_id: &str, parameter: &str) -> &[Value] {
        self.extra
            .get(CANDIDATES_KEY)
            .and_then(|c| c.get(action_id))
            .and_then(|c| c.get(parameter))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// The key of [`Solution::extra`] where a strategy passes ranked
/// candidates: for an action (by id) and one of its parameters, the next
/// best values after the one the action has, best first (a migration's
/// next-best destinations: `{"candidates": {"m3": {"destination_node":
/// ["compute-007", "compute-012"]}}}`). A plain JSON field: no ABI change.
/// The host hands them to the planner (context key `candidates`), which may
/// make alternatives of them (`planners.v2`); an older host ignores them.
pub const CANDIDATES_KEY: &str = "candidates";

/// What a planner returns: the creation order and the DAG's edges, both as
/// indexes into the actions it was given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Indexes of the actions in the order the plan creates them.
    pub order: Vec<usize>,
    /// `(parent, child)` pairs: `child` runs after `parent`.
    pub edges: Vec<(usize, usize)>,
    /// Anything else (concurrency pools, priorities).
    #[serde(default)]
    pub extra: Value,
}

/// A strategy: reads a cluster model and recommends actions.
pub trait Strategy: Default + Send + 'static {
    /// Runs the strategy; `parameters` have been validated against the
    /// entry's schema, defaults filled in.
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError>;

    /// Runs the strategy on the cluster model as JSON text, as it crosses
    /// the plugin boundary. The default parses it into a [`Value`] and calls
    /// [`Strategy::execute`]; a strategy that reads the model into its own
    /// types (say [`crate::model::ClusterModel`]) can override this and
    /// skip the `Value`: on 100,000 instances that is about half the time
    /// spent before the strategy's own work starts.
    fn execute_json(&self, model_json: &str, parameters: Value) -> Result<Solution, PluginError> {
        let model = if model_json.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(model_json).map_err(|e| {
                PluginError::invalid_input(format!("the cluster model is not valid JSON: {e}"))
            })?
        };
        self.execute(model, parameters)
    }
}

/// A planner: schedules a solution's actions into a DAG.
pub trait Planner: Default + Send + 'static {
    /// `context` carries the planner's configuration and what it may need of
    /// the cluster model.
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError>;

    /// The planner reads only `context["config"]`: the default
    /// [`Planner::schedule_refs`] then builds nothing else of the context
    /// (an instance → host map of every instance), see
    /// [`planner_config_only`].
    const READS_ONLY_CONFIG: bool = false;

    /// Schedules the actions as they crossed the plugin boundary: borrowed,
    /// parameters and context still JSON text. This is what the host calls.
    ///
    /// The default parses every action's parameters, then the context (only
    /// its config if [`Planner::READS_ONLY_CONFIG`]), and calls
    /// [`Planner::schedule`]. A planner that reads less still (only action
    /// types, say) overrides it to parse only that, and must return what
    /// `schedule` returns for the same input.
    fn schedule_refs(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<Schedule, PluginError> {
        let context = if Self::READS_ONLY_CONFIG {
            planner_config_only(context_json)?
        } else {
            parse_json_str("the planner context", context_json)?
        };
        self.schedule(ActionRef::to_actions(actions)?, context)
    }
}

/// What a failed flow does to itself (docs/flows.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowOnFailure {
    /// Its independent branches go on.
    Continue,
    /// Its actions that have not started are cancelled.
    Stop,
    /// As stop, then its succeeded revertible actions are reverted.
    Rollback,
}

/// An alternative a planner made for one action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAlternative {
    /// Index of the action it stands in for (the primary).
    pub primary: usize,
    /// The alternative: its own id (unique in the plan), type and complete
    /// parameters. It waits for the primary's parents; the primary's
    /// dependents wait for whichever of the group succeeded.
    pub action: Action,
}

/// A flow a planner made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFlow {
    /// Its name, unique in the plan.
    pub name: String,
    /// The flow it is nested in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// What its failure does.
    pub on_failure: FlowOnFailure,
    /// Its actions (indexes into the actions given).
    pub actions: Vec<usize>,
}

/// What a [`StructuredPlanner`] returns: the schedule, and the flows and
/// alternatives over it (both empty: a flat plan).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StructuredSchedule {
    /// The DAG, as a flat planner returns it.
    pub schedule: Schedule,
    /// Alternatives; a primary's are tried in the order listed.
    #[serde(default)]
    pub alternatives: Vec<PlannedAlternative>,
    /// Flows.
    #[serde(default)]
    pub flows: Vec<PlannedFlow>,
}

impl From<Schedule> for StructuredSchedule {
    fn from(schedule: Schedule) -> Self {
        Self {
            schedule,
            ..Default::default()
        }
    }
}

/// A planner that may return flows and alternatives (capability
/// `planners.v2`; export it with `structured_planner`). Its
/// [`Planner::schedule_refs`] is what hosts that know only `planners.v1`
/// get: the same DAG, flat.
pub trait StructuredPlanner: Planner {
    /// Schedules the actions as they crossed the boundary, with flows and
    /// alternatives. Its `schedule` must be what
    /// [`Planner::schedule_refs`] returns for the same input.
    fn schedule_structured(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<StructuredSchedule, PluginError>;
}

/// One action as a planner receives it from the host: borrowed, its
/// parameters still JSON text (see [`Planner::schedule_refs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionRef<'a> {
    /// Identifier unique within the solution.
    pub id: &'a str,
    /// The action type's name.
    pub action_type: &'a str,
    /// The resource the action applies to.
    pub resource_id: Option<&'a str>,
    /// Input parameters, as JSON text (empty for none).
    pub input_parameters_json: &'a str,
}

impl ActionRef<'_> {
    /// Every action with its parameters parsed, as [`Planner::schedule`]
    /// receives them.
    pub fn to_actions(refs: &[ActionRef<'_>]) -> Result<Vec<Action>, PluginError> {
        refs.iter().map(ActionRef::to_action).collect()
    }

    /// The action with its parameters parsed, as [`Planner::schedule`]
    /// receives it.
    pub fn to_action(&self) -> Result<Action, PluginError> {
        Ok(Action {
            id: self.id.to_string(),
            action_type: self.action_type.to_string(),
            resource_id: self.resource_id.map(str::to_string),
            input_parameters: self.input_parameters()?,
        })
    }

    /// Its parameters, parsed.
    pub fn input_parameters(&self) -> Result<Value, PluginError> {
        parse_json_str("input_parameters", self.input_parameters_json)
    }

    /// Checks that its parameters are valid JSON, as [`Self::to_action`]
    /// does, without building them.
    pub fn check_input_parameters(&self) -> Result<(), PluginError> {
        if self.input_parameters_json.is_empty() {
            return Ok(());
        }
        serde_json::from_str::<serde::de::IgnoredAny>(self.input_parameters_json)
            .map(drop)
            .map_err(|e| {
                PluginError::invalid_input(format!("input_parameters is not valid JSON: {e}"))
            })
    }
}

/// The planner context with only its `config` (`{"config": …}`, the key
/// left out when absent), for planners that read nothing else: the rest (an
/// instance → host map of every instance) is checked but not built.
/// `context["config"]` of the result is `context["config"]` of the whole.
pub fn planner_config_only(context_json: &str) -> Result<Value, PluginError> {
    #[derive(serde::Deserialize)]
    struct ConfigOnly {
        config: Option<Value>,
    }
    let object = context_json.trim_start().starts_with('{');
    match serde_json::from_str::<ConfigOnly>(context_json) {
        Ok(ConfigOnly { config }) if object => {
            let mut m = serde_json::Map::new();
            if let Some(c) = config {
                m.insert("config".into(), c);
            }
            Ok(Value::Object(m))
        }
        // Not an object with at most one "config" (empty, a duplicate key,
        // another shape, invalid JSON): the whole, as the default parses it.
        _ => parse_json_str("the planner context", context_json),
    }
}

/// An action mapper: names the handler entry that runs an action.
pub trait ActionMapper: Default + Send + 'static {
    /// `request` describes the action (its type, the handler its action type
    /// names, the configured drivers, the handler entries loaded).
    fn map(&self, request: Value) -> Result<String, PluginError>;
}

/// A collector: builds the cluster model.
pub trait Collector: Default + Send + 'static {
    /// Returns the cluster model as JSON.
    fn collect(&self, config: Value) -> Result<Value, PluginError>;
}

// ---------------------------------------------------------------------------
// Context and abort signal.
// ---------------------------------------------------------------------------

/// A cooperative abort flag that `execute` can wait on.
#[derive(Clone, Debug, Default)]
pub struct AbortSignal(Arc<(Mutex<bool>, Condvar)>);

impl AbortSignal {
    /// Raises the signal and wakes every waiter.
    pub fn raise(&self) {
        let (flag, cv) = &*self.0;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
    /// Whether the signal was raised.
    pub fn is_raised(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Sleeps for `duration` unless the signal is raised first. Returns
    /// `true` when the whole duration elapsed, `false` when aborted.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let (flag, cv) = &*self.0;
        let mut raised = flag.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if *raised {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            raised = cv
                .wait_timeout(raised, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// What a handler knows about the action it runs.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The host's description of the action (`action_type`, `name`, `uuid`,
    /// `action_plan`, …); fields may be absent.
    pub action: Value,
    abort: AbortSignal,
}

impl Context {
    /// A context with no action information, for tests.
    pub fn detached() -> Self {
        Self::default()
    }
    /// The abort signal of this action.
    pub fn abort_signal(&self) -> &AbortSignal {
        &self.abort
    }
    /// Whether the host asked this action to stop.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_raised()
    }
}

// ---------------------------------------------------------------------------
// Logging through the host.
// ---------------------------------------------------------------------------

static HOST: OnceLock<HostServices> = OnceLock::new();

/// Logs through the host's logger (to stderr before `init`).
pub fn log(level: LogLevel, message: &str) {
    match HOST.get() {
        Some(h) => (h.log)(level, RStr::from_str("plugin"), RStr::from_str(message)),
        None => eprintln!("[plugin] {message}"),
    }
}

/// Logs at info level through the host.
pub fn log_info(message: &str) {
    log(LogLevel::INFO, message)
}

/// Logs a warning through the host.
pub fn log_warn(message: &str) {
    log(LogLevel::WARN, message)
}

// ---------------------------------------------------------------------------
// The panic guard.
// ---------------------------------------------------------------------------

/// Runs `f`, turning a panic into `PluginError{PANICKED}`.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".to_string());
            RResult::RErr(PluginError::panicked(format!("plugin panicked: {msg}")))
        }
    }
}

// ---------------------------------------------------------------------------
// The plugin definition that export_plugin! builds.
// ---------------------------------------------------------------------------

type HandlerCtor = fn(&str) -> Result<Box<dyn ActionHandler>, PluginError>;
type PredictFn = fn(&str, &mut PredictedModel) -> Result<(), PluginError>;
type StrategyFn = fn(&str, Value) -> Result<Solution, PluginError>;
type PlannerFn = fn(&[ActionRef<'_>], &str) -> Result<Schedule, PluginError>;
type StructuredPlannerFn = fn(&[ActionRef<'_>], &str) -> Result<StructuredSchedule, PluginError>;
type MapperFn = fn(Value) -> Result<String, PluginError>;
type CollectorFn = fn(Value) -> Result<Value, PluginError>;

/// How to run one entry; built by [`crate::export_plugin!`].
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum EntryFn {
    /// A handler's constructor, and its prediction when it declares one.
    Handler(HandlerCtor, Option<PredictFn>),
    Strategy(StrategyFn),
    /// A planner, and its structured schedule when it has one.
    Planner(PlannerFn, Option<StructuredPlannerFn>),
    Mapper(MapperFn),
    Collector(CollectorFn),
}

impl EntryFn {
    fn kind(&self) -> Kind {
        match self {
            EntryFn::Handler(..) => Kind::ActionHandler,
            EntryFn::Strategy(_) => Kind::Strategy,
            EntryFn::Planner(..) => Kind::Planner,
            EntryFn::Mapper(_) => Kind::ActionMapper,
            EntryFn::Collector(_) => Kind::Collector,
        }
    }
}

fn make_handler<H: ActionHandler + DeserializeOwned>(
    params: &str,
) -> Result<Box<dyn ActionHandler>, PluginError> {
    let h: H = serde_json::from_str(params)
        .map_err(|e| PluginError::invalid_input(format!("invalid input parameters: {e}")))?;
    Ok(Box::new(h))
}
fn run_predict<H: Predict + DeserializeOwned>(
    params: &str,
    model: &mut PredictedModel,
) -> Result<(), PluginError> {
    let h: H = serde_json::from_str(params)
        .map_err(|e| PluginError::invalid_input(format!("invalid input parameters: {e}")))?;
    h.predict(model)
}
fn run_strategy<S: Strategy>(m: &str, p: Value) -> Result<Solution, PluginError> {
    S::default().execute_json(m, p)
}
fn run_planner<P: Planner>(a: &[ActionRef<'_>], c: &str) -> Result<Schedule, PluginError> {
    P::default().schedule_refs(a, c)
}
fn run_structured_planner<P: StructuredPlanner>(
    a: &[ActionRef<'_>],
    c: &str,
) -> Result<StructuredSchedule, PluginError> {
    P::default().schedule_structured(a, c)
}
fn run_mapper<M: ActionMapper>(r: Value) -> Result<String, PluginError> {
    M::default().map(r)
}
fn run_collector<C: Collector>(c: Value) -> Result<Value, PluginError> {
    C::default().collect(c)
}

/// Constructors used by [`crate::export_plugin!`].
#[doc(hidden)]
pub const fn handler_fn<H: ActionHandler + DeserializeOwned>() -> EntryFn {
    EntryFn::Handler(make_handler::<H>, None)
}
#[doc(hidden)]
pub const fn predicting_handler_fn<H: ActionHandler + Predict + DeserializeOwned>() -> EntryFn {
    EntryFn::Handler(make_handler::<H>, Some(run_predict::<H>))
}
#[doc(hidden)]
pub const fn strategy_fn<S: Strategy>() -> EntryFn {
    EntryFn::Strategy(run_strategy::<S>)
}
#[doc(hidden)]
pub const fn planner_fn<P: Planner>() -> EntryFn {
    EntryFn::Planner(run_planner::<P>, None)
}
#[doc(hidden)]
pub const fn structured_planner_fn<P: StructuredPlanner>() -> EntryFn {
    EntryFn::Planner(run_planner::<P>, Some(run_structured_planner::<P>))
}
#[doc(hidden)]
pub const fn mapper_fn<M: ActionMapper>() -> EntryFn {
    EntryFn::Mapper(run_mapper::<M>)
}
#[doc(hidden)]
pub const fn collector_fn<C: Collector>() -> EntryFn {
    EntryFn::Collector(run_collector::<C>)
}

/// A plugin's definition: its manifest bytes and its entries.
#[doc(hidden)]
pub struct PluginDef {
    pub manifest: &'static [u8],
    pub entries: &'static [(&'static str, EntryFn)],
}

static PLUGIN: OnceLock<&'static PluginDef> = OnceLock::new();

fn plugin() -> Result<&'static PluginDef, PluginError> {
    PLUGIN
        .get()
        .copied()
        .ok_or_else(|| PluginError::internal("plugin root module was not initialised"))
}

fn find(kind: Kind, name: RStr<'_>) -> Result<EntryFn, PluginError> {
    plugin()?
        .entries
        .iter()
        .find(|(n, f)| *n == name.as_str() && f.kind() == kind)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            PluginError::new(
                crate::ErrorKind::UNKNOWN_ENTRY,
                format!("this plugin has no {kind} named {:?}", name.as_str()),
            )
        })
}

fn parse_json(what: &str, text: RStr<'_>) -> Result<Value, PluginError> {
    parse_json_str(what, text.as_str())
}

fn parse_json_str(what: &str, text: &str) -> Result<Value, PluginError> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text)
        .map_err(|e| PluginError::invalid_input(format!("{what} is not valid JSON: {e}")))
}

// --- root module functions ---

extern "C" fn root_manifest() -> RStr<'static> {
    match PLUGIN.get() {
        Some(def) => RStr::from_str(std::str::from_utf8(def.manifest).unwrap_or("")),
        None => RStr::from_str(""),
    }
}

extern "C" fn root_init(host: HostServices) -> RResult<(), PluginError> {
    guard(|| {
        if HOST.set(host).is_ok() {
            std::panic::set_hook(Box::new(|info| {
                log(LogLevel::ERROR, &format!("panic in plugin: {info}"));
            }));
        }
        Ok(())
    })
}

macro_rules! capability_table {
    ($ty:ty, $table:expr) => {{
        static TABLE: $ty = $table;
        Capability {
            layout: <$ty as StableAbi>::LAYOUT,
            table: &TABLE as *const $ty as *const (),
        }
    }};
}

extern "C" fn root_get_capability(name: RStr<'_>) -> ROption<Capability> {
    use crate::abi::capability::*;
    let Ok(def) = plugin() else {
        return ROption::RNone;
    };
    let offers = |k: Kind| def.entries.iter().any(|(_, f)| f.kind() == k);
    let cap = match name.as_str() {
        ACTION_HANDLERS_V1 if offers(Kind::ActionHandler) => capability_table!(
            ActionHandlersV1,
            ActionHandlersV1 {
                create: handler_create
            }
        ),
        STRATEGIES_V1 if offers(Kind::Strategy) => capability_table!(
            StrategiesV1,
            StrategiesV1 {
                execute: strategy_execute
            }
        ),
        PLANNERS_V1 if offers(Kind::Planner) => capability_table!(
            PlannersV1,
            PlannersV1 {
                schedule: planner_schedule
            }
        ),
        PLANNERS_V2 if offers(Kind::Planner) && !cfg!(feature = "__test-planners-v1-only") => {
            capability_table!(
                PlannersV2,
                PlannersV2 {
                    schedule: planner_schedule_v2
                }
            )
        }
        ACTION_MAPPERS_V1 if offers(Kind::ActionMapper) => {
            capability_table!(ActionMappersV1, ActionMappersV1 { map: mapper_map })
        }
        COLLECTORS_V1 if offers(Kind::Collector) => capability_table!(
            CollectorsV1,
            CollectorsV1 {
                collect: collector_collect
            }
        ),
        PREDICT_V1
            if def
                .entries
                .iter()
                .any(|(_, f)| matches!(f, EntryFn::Handler(_, Some(_)))) =>
        {
            capability_table!(
                PredictV1,
                PredictV1 {
                    open: predictor_open
                }
            )
        }
        _ => return ROption::RNone,
    };
    ROption::RSome(cap)
}

/// Builds the root module; called by the code [`crate::export_plugin!`]
/// generates, once per library.
#[doc(hidden)]
pub fn root_module(def: &'static PluginDef) -> PluginRootRef {
    // A second call with another definition cannot happen: one library has
    // one root module, and abi_stable calls its constructor once.
    let _ = PLUGIN.set(def);
    PluginRoot {
        manifest: root_manifest,
        init: root_init,
        get_capability: root_get_capability,
    }
    .leak_into_prefix()
}

// --- action handlers ---

struct HandlerAdapter {
    inner: Option<Box<dyn ActionHandler>>,
    ctx: Context,
}

impl HandlerAdapter {
    fn call<T>(
        &self,
        f: impl FnOnce(&dyn ActionHandler, &Context) -> Result<T, PluginError>,
    ) -> RResult<T, PluginError> {
        guard(|| match &self.inner {
            Some(h) => f(h.as_ref(), &self.ctx),
            None => Err(PluginError::internal("handler already dropped")),
        })
    }
}

impl HandlerObject for HandlerAdapter {
    fn pre_condition(&self) -> RResult<(), PluginError> {
        self.call(|h, c| h.pre_condition(c))
    }
    fn execute(&self) -> RResult<RString, PluginError> {
        self.call(|h, c| {
            let out = h.execute(c)?;
            Ok(RString::from(serde_json::to_string(&out)?))
        })
    }
    fn post_condition(&self) -> RResult<(), PluginError> {
        self.call(|h, c| h.post_condition(c))
    }
    fn revert(&self) -> RResult<(), PluginError> {
        self.call(|h, c| h.revert(c))
    }
    fn abort(&self) -> RResult<(), PluginError> {
        self.ctx.abort.raise();
        self.call(|h, c| h.abort(c))
    }
}

impl Drop for HandlerAdapter {
    fn drop(&mut self) {
        // A panic in the author's destructor must not cross the boundary.
        let inner = self.inner.take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(inner)));
    }
}

extern "C" fn handler_create(
    name: RStr<'_>,
    params_json: RStr<'_>,
    context_json: RStr<'_>,
) -> RResult<HandlerBox, PluginError> {
    guard(|| {
        let EntryFn::Handler(ctor, _) = find(Kind::ActionHandler, name)? else {
            unreachable!("find checks the kind")
        };
        let params = if params_json.is_empty() {
            "{}"
        } else {
            params_json.as_str()
        };
        let inner = ctor(params)?;
        let ctx = Context {
            action: parse_json("the action context", context_json)?,
            abort: AbortSignal::default(),
        };
        let adapter = HandlerAdapter {
            inner: Some(inner),
            ctx,
        };
        Ok(HandlerObject_TO::from_value(adapter, TD_Opaque))
    })
}

// --- predictions ---

struct PredictorAdapter {
    model: PredictedModel,
}

impl PredictorObject for PredictorAdapter {
    fn apply(&mut self, name: RStr<'_>, params_json: RStr<'_>) -> RResult<RString, PluginError> {
        let model = &mut self.model;
        let r = guard(|| {
            let EntryFn::Handler(_, predict) = find(Kind::ActionHandler, name)? else {
                unreachable!("find checks the kind")
            };
            let predict = predict.ok_or_else(|| {
                PluginError::unsupported(format!(
                    "handler {} does not declare its effect",
                    name.as_str()
                ))
            })?;
            let params = if params_json.is_empty() {
                "{}"
            } else {
                params_json.as_str()
            };
            predict(params, model)?;
            let changes = model.take_changes();
            serde_json::to_string(&changes)
                .map(RString::from)
                .map_err(|e| PluginError::internal(e.to_string()))
        });
        if r.is_err() {
            // Refused (or panicked): the action changes nothing.
            let _ = catch_unwind(AssertUnwindSafe(|| self.model.rollback()));
        }
        r
    }

    fn observe(&mut self, changes_json: RStr<'_>) -> RResult<(), PluginError> {
        let model = &mut self.model;
        guard(|| {
            let changes: Vec<ModelChange> = serde_json::from_str(changes_json.as_str())
                .map_err(|e| PluginError::invalid_input(format!("model changes: {e}")))?;
            for c in changes {
                model.apply(c);
            }
            Ok(())
        })
    }
}

extern "C" fn predictor_open(model_json: RStr<'_>) -> RResult<PredictorBox, PluginError> {
    guard(|| {
        let model = serde_json::from_str(model_json.as_str()).map_err(|e| {
            PluginError::invalid_input(format!("the cluster model is not valid: {e}"))
        })?;
        let adapter = PredictorAdapter {
            model: PredictedModel::new(model),
        };
        Ok(PredictorObject_TO::from_value(adapter, TD_Opaque))
    })
}

/// [`handler_create`] with `&str`s, for [`crate::testing`].
#[cfg(feature = "testing")]
pub(crate) fn handler_create_for_tests(
    name: &str,
    params_json: &str,
    context_json: &str,
) -> Result<HandlerBox, PluginError> {
    handler_create(
        RStr::from_str(name),
        RStr::from_str(params_json),
        RStr::from_str(context_json),
    )
    .into_result()
}

/// Whether the root module offers capability `name`, for [`crate::testing`].
#[cfg(feature = "testing")]
pub(crate) fn root_get_capability_for_tests(name: &str) -> Option<()> {
    root_get_capability(RStr::from_str(name))
        .into_option()
        .map(drop)
}

// --- strategies, planners, mappers, collectors ---

/// Converts an SDK action to the ABI envelope.
#[doc(hidden)]
pub fn action_to_spec(a: &Action) -> Result<ActionSpec, PluginError> {
    Ok(ActionSpec {
        id: a.id.as_str().into(),
        action_type: a.action_type.as_str().into(),
        resource_id: a.resource_id.as_deref().map(RString::from).into(),
        input_parameters_json: serde_json::to_string(&a.input_parameters)
            .map_err(|e| PluginError::internal(e.to_string()))?
            .into(),
    })
}

fn json_string(v: &Value) -> Result<RString, PluginError> {
    if v.is_null() {
        return Ok(RString::new());
    }
    serde_json::to_string(v)
        .map(RString::from)
        .map_err(|e| PluginError::internal(e.to_string()))
}

extern "C" fn strategy_execute(
    name: RStr<'_>,
    model_json: RStr<'_>,
    params_json: RStr<'_>,
) -> RResult<SolutionAbi, PluginError> {
    guard(|| {
        let EntryFn::Strategy(f) = find(Kind::Strategy, name)? else {
            unreachable!("find checks the kind")
        };
        let sol = f(
            model_json.as_str(),
            parse_json("the parameters", params_json)?,
        )?;
        Ok(SolutionAbi {
            actions: sol
                .actions
                .iter()
                .map(action_to_spec)
                .collect::<Result<RVec<_>, _>>()?,
            efficacy_indicators_json: json_string(&sol.efficacy_indicators)?,
            extra_json: json_string(&sol.extra)?,
        })
    })
}

extern "C" fn planner_schedule(
    name: RStr<'_>,
    actions: RSlice<'_, ActionSpec>,
    context_json: RStr<'_>,
) -> RResult<ScheduleAbi, PluginError> {
    guard(|| {
        let EntryFn::Planner(f, _) = find(Kind::Planner, name)? else {
            unreachable!("find checks the kind")
        };
        let actions = action_refs(&actions);
        let s = f(&actions, context_json.as_str())?;
        let (order, edges) = schedule_abi(&s)?;
        Ok(ScheduleAbi {
            order,
            edges,
            extra_json: json_string(&s.extra)?,
        })
    })
}

fn action_refs<'a>(actions: &'a RSlice<'_, ActionSpec>) -> Vec<ActionRef<'a>> {
    actions
        .iter()
        .map(|s| ActionRef {
            id: s.id.as_str(),
            action_type: s.action_type.as_str(),
            resource_id: s.resource_id.as_ref().map(|r| r.as_str()).into_option(),
            input_parameters_json: s.input_parameters_json.as_str(),
        })
        .collect()
}

fn index_abi(i: usize) -> Result<u32, PluginError> {
    u32::try_from(i).map_err(|_| PluginError::internal("action index exceeds u32"))
}

fn schedule_abi(s: &Schedule) -> Result<(RVec<u32>, RVec<Edge>), PluginError> {
    let order = s
        .order
        .iter()
        .map(|&i| index_abi(i))
        .collect::<Result<_, _>>()?;
    let edges = s
        .edges
        .iter()
        .map(|&(p, c)| {
            Ok(Edge {
                parent: index_abi(p)?,
                child: index_abi(c)?,
            })
        })
        .collect::<Result<_, PluginError>>()?;
    Ok((order, edges))
}

/// A structured schedule in its ABI envelope.
#[doc(hidden)]
pub fn structured_schedule_abi(
    s: &StructuredSchedule,
) -> Result<StructuredScheduleAbi, PluginError> {
    use crate::abi::{AlternativeAbi, FlowAbi, FlowFailure};
    let (order, edges) = schedule_abi(&s.schedule)?;
    Ok(StructuredScheduleAbi {
        order,
        edges,
        alternatives: s
            .alternatives
            .iter()
            .map(|a| {
                Ok(AlternativeAbi {
                    primary: index_abi(a.primary)?,
                    action: action_to_spec(&a.action)?,
                })
            })
            .collect::<Result<_, PluginError>>()?,
        flows: s
            .flows
            .iter()
            .map(|f| {
                Ok(FlowAbi {
                    name: f.name.as_str().into(),
                    parent: f.parent.as_deref().map(RString::from).into(),
                    on_failure: match f.on_failure {
                        FlowOnFailure::Continue => FlowFailure::CONTINUE,
                        FlowOnFailure::Stop => FlowFailure::STOP,
                        FlowOnFailure::Rollback => FlowFailure::ROLLBACK,
                    },
                    actions: f
                        .actions
                        .iter()
                        .map(|&i| index_abi(i))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, PluginError>>()?,
        extra_json: json_string(&s.schedule.extra)?,
    })
}

/// `planners.v2`: a structured planner's flows and alternatives; any other
/// planner's flat schedule, as `planners.v1` returns it.
extern "C" fn planner_schedule_v2(
    name: RStr<'_>,
    actions: RSlice<'_, ActionSpec>,
    context_json: RStr<'_>,
) -> RResult<StructuredScheduleAbi, PluginError> {
    guard(|| {
        let EntryFn::Planner(flat, structured) = find(Kind::Planner, name)? else {
            unreachable!("find checks the kind")
        };
        let actions = action_refs(&actions);
        let s = match structured {
            Some(f) => f(&actions, context_json.as_str())?,
            None => StructuredSchedule::from(flat(&actions, context_json.as_str())?),
        };
        structured_schedule_abi(&s)
    })
}

extern "C" fn mapper_map(name: RStr<'_>, request_json: RStr<'_>) -> RResult<RString, PluginError> {
    guard(|| {
        let EntryFn::Mapper(f) = find(Kind::ActionMapper, name)? else {
            unreachable!("find checks the kind")
        };
        Ok(RString::from(f(parse_json("the request", request_json)?)?))
    })
}

extern "C" fn collector_collect(
    name: RStr<'_>,
    config_json: RStr<'_>,
) -> RResult<RString, PluginError> {
    guard(|| {
        let EntryFn::Collector(f) = find(Kind::Collector, name)? else {
            unreachable!("find checks the kind")
        };
        let model = f(parse_json("the collector config", config_json)?)?;
        Ok(RString::from(
            serde_json::to_string(&model).map_err(|e| PluginError::internal(e.to_string()))?,
        ))
    })
}

/// Keeps `RBox` in scope for the generated trait-object type.
#[allow(dead_code)]
type _Keep = RBox<()>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_config_only_reads_config_as_the_whole_context_does() {
        for ctx in [
            r#"{"config":{"weights":{"nop":1}},"instance_hosts":{"vm":"h1"},"durations":{}}"#,
            r#"{"instance_hosts":{}}"#,
            r#"{"config":null}"#,
            r#"{"config":1,"config":{"a":2}}"#,
            r#"[{"a":1}]"#,
            "",
        ] {
            let whole = parse_json_str("c", ctx).expect("json");
            let only = planner_config_only(ctx).expect("json");
            assert_eq!(only["config"], whole["config"], "{ctx}");
        }
        assert!(planner_config_only("{").is_err());
    }

    #[test]
    fn an_action_ref_checks_its_parameters_as_to_action_parses_them() {
        let a = |j| ActionRef {
            id: "a",
            action_type: "nop",
            resource_id: None,
            input_parameters_json: j,
        };
        for j in ["", "{}", r#"{"x":[1,null]}"#] {
            assert!(a(j).check_input_parameters().is_ok());
            assert!(a(j).to_action().is_ok());
        }
        for j in ["{", r#"{"x":}"#] {
            assert!(a(j).check_input_parameters().is_err());
            assert!(a(j).to_action().is_err());
        }
    }

    #[cfg_attr(feature = "testing", allow(dead_code))]
    #[derive(Deserialize)]
    struct Disable {
        host: String,
        #[serde(default)]
        fail: bool,
    }
    impl ActionHandler for Disable {
        fn execute(&self, _: &Context) -> Result<Value, PluginError> {
            Ok(Value::Null)
        }
    }
    impl Predict for Disable {
        fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
            let mut n = m
                .node(&self.host)
                .ok_or_else(|| PluginError::skipped("no such host"))?
                .clone();
            if n.status == "disabled" {
                return Err(PluginError::skipped("already disabled"));
            }
            n.status = "disabled".into();
            m.put_node(n);
            if self.fail {
                return Err(PluginError::precondition_failed("refused after writing"));
            }
            Ok(())
        }
    }
    #[cfg_attr(feature = "testing", allow(dead_code))]
    #[derive(Deserialize)]
    struct Plain {}
    impl ActionHandler for Plain {
        fn execute(&self, _: &Context) -> Result<Value, PluginError> {
            Ok(Value::Null)
        }
    }
    #[cfg_attr(feature = "testing", allow(dead_code))]
    static PREDICTING: PluginDef = PluginDef {
        manifest: b"{}",
        entries: &[
            ("disable", predicting_handler_fn::<Disable>()),
            ("plain", handler_fn::<Plain>()),
        ],
    };

    // The SDK's plugin is one per process (set once by `root_module`): this
    // test installs its own, so it runs in the workspace's test run, not in
    // the `testing` feature's, whose tests install theirs.
    #[cfg(not(feature = "testing"))]
    #[test]
    fn a_predictor_applies_rolls_back_refusals_and_observes_other_changes() {
        let _ = root_module(&PREDICTING);
        let ROption::RSome(cap) =
            root_get_capability(RStr::from_str(crate::abi::capability::PREDICT_V1))
        else {
            panic!("a plugin with a predicting handler offers predict.v1");
        };
        // SAFETY: the SDK's own table, of this very type.
        let table = unsafe { &*(cap.table as *const PredictV1) };
        let model = r#"{"nodes": [
            {"uuid": "n1", "hostname": "h1", "vcpus": 1, "memory": 1, "disk": 1},
            {"uuid": "n2", "hostname": "h2", "vcpus": 1, "memory": 1, "disk": 1}]}"#;
        let mut p = (table.open)(RStr::from_str(model))
            .into_result()
            .expect("open");
        let apply = |p: &mut PredictorBox, params: &str| {
            p.apply(RStr::from_str("disable"), RStr::from_str(params))
                .into_result()
        };
        let refused = apply(&mut p, r#"{"host": "h2", "fail": true}"#).expect_err("refused");
        assert_eq!(refused.kind(), crate::ErrorKind::PRECONDITION_FAILED);
        // The refused prediction's write was rolled back: h2 is still enabled.
        let text = apply(&mut p, r#"{"host": "h2"}"#).expect("disable h2");
        let changes: Vec<ModelChange> = serde_json::from_str(&text).expect("changes");
        assert!(
            matches!(&changes[..], [ModelChange::Node(n)] if n.hostname == "h2" && n.status == "disabled")
        );
        let again = apply(&mut p, r#"{"host": "h2"}"#).expect_err("skipped");
        assert_eq!(again.kind(), crate::ErrorKind::SKIPPED);
        // Changes from elsewhere are seen.
        let mut n1: crate::model::Node = serde_json::from_str(
            r#"{"uuid": "n1", "hostname": "h1", "vcpus": 1, "memory": 1, "disk": 1, "status": "disabled"}"#,
        )
        .expect("node");
        n1.disabled_reason = Some("elsewhere".into());
        let seen = serde_json::to_string(&[ModelChange::Node(n1)]).expect("json");
        assert!(p.observe(RStr::from_str(&seen)).into_result().is_ok());
        let h1 = apply(&mut p, r#"{"host": "h1"}"#).expect_err("skipped");
        assert_eq!(h1.message(), "already disabled");
        // A handler that declares no effect.
        let plain = p
            .apply(RStr::from_str("plain"), RStr::from_str("{}"))
            .into_result()
            .expect_err("no effect declared");
        assert_eq!(plain.kind(), crate::ErrorKind::UNSUPPORTED);
        assert!(plain.message().contains("plain"), "{}", plain.message());
    }

    #[test]
    fn guard_turns_panics_into_errors() {
        let r: RResult<(), PluginError> = guard(|| panic!("boom {}", 42));
        match r {
            RResult::RErr(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::PANICKED);
                assert!(e.message().contains("boom 42"), "{}", e.message());
            }
            RResult::ROk(()) => panic!("expected an error"),
        }
    }

    #[test]
    fn abort_signal_interrupts_sleep() {
        let s = AbortSignal::default();
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        s.raise();
        assert!(!t.join().expect("thread"));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(AbortSignal::default().sleep(Duration::from_millis(1)));
    }
}
