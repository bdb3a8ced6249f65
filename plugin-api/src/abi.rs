//! The stable ABI: the frozen root module, the capability tables and the
//! typed envelope that crosses the boundary.
//!
//! Rules that keep old plugins loading in new hosts (see
//! `shared/reference/plugin-abi-notes.md` section 2.4):
//!
//! * [`PluginRoot`] is frozen forever: `manifest`, `init`, `get_capability`.
//! * A released capability table (`action_handlers.v1`, …) never changes.
//!   A new feature is a new table under a new name (`action_handlers.v2`).
//! * The envelope structs below are frozen for the whole major interface
//!   version. Domain payloads cross as JSON strings, so they evolve freely.
//!
//! Plugin authors never use this module: the SDK ([`crate::sdk`] and
//! [`crate::export_plugin!`]) builds all of it for them.

use abi_stable::{
    StableAbi,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    type_layout::TypeLayout,
};

/// The version of the plugin interface this build of the crate implements.
///
/// The host refuses a plugin whose manifest names another major version,
/// before it opens the file.
#[cfg(not(feature = "__test-interface-v2"))]
pub const INTERFACE_VERSION: &str = "1.0.0";
/// The version of the plugin interface this build of the crate implements.
#[cfg(feature = "__test-interface-v2")]
pub const INTERFACE_VERSION: &str = "2.0.0";

/// Name of the ELF section that carries the manifest JSON.
pub const MANIFEST_SECTION: &str = ".sextant_plugin";

/// Capability names, one table per plugin kind.
pub mod capability {
    /// [`super::ActionHandlersV1`]
    pub const ACTION_HANDLERS_V1: &str = "action_handlers.v1";
    /// [`super::StrategiesV1`]
    pub const STRATEGIES_V1: &str = "strategies.v1";
    /// [`super::PlannersV1`]
    pub const PLANNERS_V1: &str = "planners.v1";
    /// [`super::PlannersV2`]: planners that return flows and alternatives
    /// beside the DAG. A host asks for it first and falls back to
    /// `planners.v1` (plugins built before it existed plan flat).
    pub const PLANNERS_V2: &str = "planners.v2";
    /// [`super::ActionMappersV1`]
    pub const ACTION_MAPPERS_V1: &str = "action_mappers.v1";
    /// [`super::CollectorsV1`]
    pub const COLLECTORS_V1: &str = "collectors.v1";
    /// [`super::PredictV1`]: offered by plugins whose handlers declare
    /// their effect on the cluster model. Optional: a plugin without it
    /// loads, and its actions' effects are unknown to simulation.
    pub const PREDICT_V1: &str = "predict.v1";
}

/// The kind of a [`PluginError`]. An open set: a host must treat an unknown
/// value as [`ErrorKind::INTERNAL`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The input (parameters, model, config) was refused by the plugin.
    pub const INVALID_INPUT: Self = Self(1);
    /// A pre-condition does not hold: the action must not run.
    pub const PRECONDITION_FAILED: Self = Self(2);
    /// The pre-condition says the action has nothing to do (Watcher's `ActionSkipped`).
    pub const SKIPPED: Self = Self(3);
    /// The action ran and failed.
    pub const EXECUTION_FAILED: Self = Self(4);
    /// The action stopped because it was aborted.
    pub const ABORTED: Self = Self(5);
    /// The plugin does not support the operation (for example `revert`).
    pub const UNSUPPORTED: Self = Self(6);
    /// The plugin panicked; the SDK caught the panic.
    pub const PANICKED: Self = Self(7);
    /// The plugin has no entry with the name asked for.
    pub const UNKNOWN_ENTRY: Self = Self(8);
    /// Anything else.
    pub const INTERNAL: Self = Self(9);

    const NAMES: [(ErrorKind, &'static str); 9] = [
        (Self::INVALID_INPUT, "INVALID_INPUT"),
        (Self::PRECONDITION_FAILED, "PRECONDITION_FAILED"),
        (Self::SKIPPED, "SKIPPED"),
        (Self::EXECUTION_FAILED, "EXECUTION_FAILED"),
        (Self::ABORTED, "ABORTED"),
        (Self::UNSUPPORTED, "UNSUPPORTED"),
        (Self::PANICKED, "PANICKED"),
        (Self::UNKNOWN_ENTRY, "UNKNOWN_ENTRY"),
        (Self::INTERNAL, "INTERNAL"),
    ];

    /// The upper-case name of the kind (`INVALID_INPUT`, …); `INTERNAL` for
    /// a value this build does not know.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("INTERNAL")
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error every plugin entry point returns.
///
/// ```
/// use sextant_plugin_api::{ErrorKind, PluginError};
/// let e = PluginError::invalid_input("duration must be positive");
/// assert_eq!(e.kind(), ErrorKind::INVALID_INPUT);
/// assert_eq!(e.message(), "duration must be positive");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    kind: ErrorKind,
    message: RString,
    /// Optional structured details, as JSON text (empty when none).
    details: RString,
    /// A field only the layout-skew test fixture has, so that the host's
    /// layout check has something real to refuse.
    #[cfg(feature = "__test-layout-skew")]
    skew: u64,
}

impl PluginError {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
            details: RString::new(),
            #[cfg(feature = "__test-layout-skew")]
            skew: 0,
        }
    }
    /// Attaches structured details (any serialisable value, stored as JSON).
    pub fn with_details(mut self, details: &serde_json::Value) -> Self {
        self.details = RString::from(details.to_string());
        self
    }
    /// [`ErrorKind::INVALID_INPUT`]
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }
    /// [`ErrorKind::PRECONDITION_FAILED`]
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PRECONDITION_FAILED, message)
    }
    /// [`ErrorKind::SKIPPED`]: returned by `pre_condition` to skip the action.
    pub fn skipped(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SKIPPED, message)
    }
    /// [`ErrorKind::EXECUTION_FAILED`]
    pub fn execution_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::EXECUTION_FAILED, message)
    }
    /// [`ErrorKind::ABORTED`]
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ABORTED, message)
    }
    /// [`ErrorKind::UNSUPPORTED`]
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message)
    }
    /// [`ErrorKind::PANICKED`]
    pub fn panicked(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PANICKED, message)
    }
    /// [`ErrorKind::INTERNAL`]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The human message.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
    /// The structured details, if any.
    pub fn details(&self) -> Option<serde_json::Value> {
        if self.details.is_empty() {
            None
        } else {
            serde_json::from_str(self.details.as_str()).ok()
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<serde_json::Error> for PluginError {
    fn from(e: serde_json::Error) -> Self {
        Self::invalid_input(e.to_string())
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        Self::execution_failed(e.to_string())
    }
}

/// One action of a solution, as strategies produce and planners receive it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ActionSpec {
    /// Identifier unique within the solution.
    pub id: RString,
    /// The action type's name (`migrate`, …).
    pub action_type: RString,
    /// The resource the action applies to, when there is one.
    pub resource_id: ROption<RString>,
    /// The action's input parameters, as a JSON object.
    pub input_parameters_json: RString,
}

impl ActionSpec {
    /// One action from plain Rust strings (`input_parameters_json` is the
    /// parameters object's JSON text), so that callers need not name
    /// abi_stable's types.
    pub fn new(
        id: impl Into<String>,
        action_type: impl Into<String>,
        resource_id: Option<String>,
        input_parameters_json: String,
    ) -> Self {
        Self {
            id: RString::from(id.into()),
            action_type: RString::from(action_type.into()),
            resource_id: resource_id.map(RString::from).into(),
            input_parameters_json: RString::from(input_parameters_json),
        }
    }
}

/// A dependency between two actions of a schedule: `child` runs after `parent`.
/// Both are indexes into the actions given to the planner.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Edge {
    /// Index of the action that runs first.
    pub parent: u32,
    /// Index of the action that waits for it.
    pub child: u32,
}

/// What a strategy returns.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SolutionAbi {
    /// The unordered actions.
    pub actions: RVec<ActionSpec>,
    /// Efficacy indicators, as a JSON value.
    pub efficacy_indicators_json: RString,
    /// Anything else, as a JSON value (may be empty).
    pub extra_json: RString,
}

/// What a planner returns.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ScheduleAbi {
    /// The order in which the plan's actions are created (indexes).
    pub order: RVec<u32>,
    /// The DAG's edges.
    pub edges: RVec<Edge>,
    /// Anything else (pools, priorities), as a JSON value (may be empty).
    pub extra_json: RString,
}

/// What a failed flow does to itself ([`FlowAbi::on_failure`]). An open
/// set: a host refuses a value it does not know, naming the flow.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowFailure(pub u8);

impl FlowFailure {
    /// The flow's independent branches go on.
    pub const CONTINUE: Self = Self(1);
    /// The flow's actions that have not started are cancelled.
    pub const STOP: Self = Self(2);
    /// As stop, then the flow's succeeded revertible actions are reverted.
    pub const ROLLBACK: Self = Self(3);
}

/// One alternative a planner made: an action tried in place of action
/// `primary` (an index into the actions given) when that one fails for
/// good. A primary's alternatives are tried in the order they are listed.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct AlternativeAbi {
    /// Index of the action it stands in for.
    pub primary: u32,
    /// The alternative: its own id (unique in the plan), its action type,
    /// its complete parameters. It waits for the primary's parents.
    pub action: ActionSpec,
}

/// One flow a planner made: a named group of actions with its own failure
/// scope (docs/flows.md).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FlowAbi {
    /// Its name, unique in the plan.
    pub name: RString,
    /// The flow it is nested in, if any.
    pub parent: ROption<RString>,
    /// What its failure does.
    pub on_failure: FlowFailure,
    /// Its actions (indexes into the actions given; their alternatives
    /// belong to their primary's flow).
    pub actions: RVec<u32>,
}

/// What a `planners.v2` planner returns: the DAG, as [`ScheduleAbi`], and
/// the flows and alternatives over it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct StructuredScheduleAbi {
    /// The order in which the plan's actions are created (indexes).
    pub order: RVec<u32>,
    /// The DAG's edges.
    pub edges: RVec<Edge>,
    /// Alternatives, each of one action.
    pub alternatives: RVec<AlternativeAbi>,
    /// Flows.
    pub flows: RVec<FlowAbi>,
    /// Anything else (pools, priorities), as a JSON value (may be empty).
    pub extra_json: RString,
}

/// A capability table offered by a plugin: its layout, so that the host can
/// check it before use, and a pointer to the table itself.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct Capability {
    /// The layout of the table's type, as the plugin was built.
    #[sabi(unsafe_opaque_field)]
    pub layout: &'static TypeLayout,
    /// The table (a `&'static` to the type the name promises).
    pub table: *const (),
}

// SAFETY: the table is an immutable `'static` value of a `Sync` type.
unsafe impl Send for Capability {}
// SAFETY: as above.
unsafe impl Sync for Capability {}

/// Log levels for [`HostServices::log`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Errors.
    pub const ERROR: Self = Self(1);
    /// Warnings.
    pub const WARN: Self = Self(2);
    /// Information.
    pub const INFO: Self = Self(3);
    /// Debugging.
    pub const DEBUG: Self = Self(4);
    /// Tracing.
    pub const TRACE: Self = Self(5);
}

/// What the host offers every plugin, handed over at `init`. Frozen: further
/// services come through `get_service(name)`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostServices {
    /// Writes one log record through the host's logger.
    pub log: extern "C" fn(level: LogLevel, target: RStr<'_>, message: RStr<'_>),
    /// Looks up a further service table by name.
    pub get_service: extern "C" fn(name: RStr<'_>) -> ROption<Capability>,
}

/// The root module every plugin exports. Frozen forever.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(panic))]
pub struct PluginRoot {
    /// The manifest JSON, the same bytes as the `.sextant_plugin` section.
    pub manifest: extern "C" fn() -> RStr<'static>,
    /// Called once by the host before anything else.
    pub init: extern "C" fn(host: HostServices) -> RResult<(), PluginError>,
    /// Returns the capability table of that name, if the plugin offers it.
    #[sabi(last_prefix_field)]
    pub get_capability: extern "C" fn(name: RStr<'_>) -> ROption<Capability>,
}

impl RootModule for PluginRootRef {
    abi_stable::declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "sextant_plugin";
    const NAME: &'static str = "sextant_plugin";
    const VERSION_STRINGS: VersionStrings = interface_version_strings();
}

const fn interface_version_strings() -> VersionStrings {
    #[cfg(not(feature = "__test-interface-v2"))]
    {
        VersionStrings::new("1.0.0")
    }
    #[cfg(feature = "__test-interface-v2")]
    {
        VersionStrings::new("2.0.0")
    }
}

/// The crate's own version, for diagnostics.
pub const SDK_VERSION_STRINGS: VersionStrings = package_version_strings!();

/// One action being handled: created per action with its parameters.
#[sabi_trait]
pub trait HandlerObject: Send + Sync {
    /// Checks that the action can and should run; `SKIPPED` skips it.
    fn pre_condition(&self) -> RResult<(), PluginError>;
    /// Runs the action; returns its outputs as a JSON object.
    fn execute(&self) -> RResult<RString, PluginError>;
    /// Checks that the action had its effect.
    fn post_condition(&self) -> RResult<(), PluginError>;
    /// Undoes the action.
    fn revert(&self) -> RResult<(), PluginError>;
    /// Asks a running `execute` to stop. Called from another thread.
    #[sabi(last_prefix_field)]
    fn abort(&self) -> RResult<(), PluginError>;
}

/// An owned handler object.
pub type HandlerBox = HandlerObject_TO<'static, RBox<()>>;

/// Capability `action_handlers.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct ActionHandlersV1 {
    /// Creates the handler object of entry `name` for one action.
    pub create: extern "C" fn(
        name: RStr<'_>,
        params_json: RStr<'_>,
        context_json: RStr<'_>,
    ) -> RResult<HandlerBox, PluginError>,
}

/// Capability `strategies.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct StrategiesV1 {
    /// Runs strategy `name` on a cluster model with audit parameters.
    pub execute: extern "C" fn(
        name: RStr<'_>,
        model_json: RStr<'_>,
        params_json: RStr<'_>,
    ) -> RResult<SolutionAbi, PluginError>,
}

/// Capability `planners.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct PlannersV1 {
    /// Schedules `actions` with planner `name`.
    pub schedule: extern "C" fn(
        name: RStr<'_>,
        actions: RSlice<'_, ActionSpec>,
        context_json: RStr<'_>,
    ) -> RResult<ScheduleAbi, PluginError>,
}

/// Capability `planners.v2`: as `planners.v1`, returning flows and
/// alternatives too. Frozen like every released table.
#[repr(C)]
#[derive(StableAbi)]
pub struct PlannersV2 {
    /// Schedules `actions` with planner `name`.
    pub schedule: extern "C" fn(
        name: RStr<'_>,
        actions: RSlice<'_, ActionSpec>,
        context_json: RStr<'_>,
    ) -> RResult<StructuredScheduleAbi, PluginError>,
}

/// Capability `action_mappers.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct ActionMappersV1 {
    /// Maps one action (JSON) to the name of the handler entry that runs it.
    pub map: extern "C" fn(name: RStr<'_>, request_json: RStr<'_>) -> RResult<RString, PluginError>,
}

/// Capability `collectors.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct CollectorsV1 {
    /// Builds a cluster model (JSON) from collector `name`'s config.
    pub collect:
        extern "C" fn(name: RStr<'_>, config_json: RStr<'_>) -> RResult<RString, PluginError>,
}

/// A prediction in progress: one copy of the cluster model, changed by the
/// actions predicted so far.
#[sabi_trait]
pub trait PredictorObject: Send {
    /// Predicts one action of handler entry `name` with its parameters
    /// (JSON): on success the model reflects it and the changes come back
    /// as a JSON array of [`crate::prediction::ModelChange`]. Errors:
    /// `PRECONDITION_FAILED` (the action could not run in the predicted
    /// state), `SKIPPED` (it would have nothing to do), `INVALID_INPUT`,
    /// `UNSUPPORTED` (the entry does not declare its effect). A failed
    /// prediction changes nothing.
    fn apply(&mut self, name: RStr<'_>, params_json: RStr<'_>) -> RResult<RString, PluginError>;
    /// Applies changes predicted elsewhere (a JSON array of
    /// [`crate::prediction::ModelChange`]).
    #[sabi(last_prefix_field)]
    fn observe(&mut self, changes_json: RStr<'_>) -> RResult<(), PluginError>;
}

/// An owned predictor.
pub type PredictorBox = PredictorObject_TO<'static, RBox<()>>;

/// Capability `predict.v1`.
#[repr(C)]
#[derive(StableAbi)]
pub struct PredictV1 {
    /// Opens a prediction over a cluster model (JSON).
    pub open: extern "C" fn(model_json: RStr<'_>) -> RResult<PredictorBox, PluginError>,
}
