//! The loader: the one host module that names abi_stable types.
//!
//! It opens a library (`lib_header_from_path` + `init_root_module`, never
//! `RootModule::load_from_file`, which returns the first module loaded for
//! every later path), hands it the host services, negotiates capability
//! tables by name with a layout check each, and wraps every table in a safe
//! Rust type that speaks `&str`, `String` and [`PluginCallError`].
//!
//! Invariant: no abi_stable type leaves this module.

use super::PluginCallError;
use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibraryError, lib_header_from_path},
    std_types::{ROption, RResult, RSlice, RStr, RString},
};
use sextant_plugin_api::abi::{
    ActionHandlersV1, ActionMappersV1, ActionSpec, Capability, CollectorsV1, HandlerBox,
    HostServices, LogLevel, PlannersV1, PlannersV2, PluginRootRef, PredictV1, PredictorBox,
    StrategiesV1,
};
use sextant_plugin_api::sdk::{
    Action, FlowOnFailure, PlannedAlternative, PlannedFlow, Schedule, Solution, StructuredSchedule,
};
use sextant_plugin_api::{PluginError, manifest::Kind};
use std::path::Path;

/// Why a library could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// A one-line reason.
    pub summary: String,
    /// abi_stable's whole report (can be thousands of lines).
    pub detail: String,
}

/// A loaded library's root module.
#[derive(Clone, Copy)]
pub struct LoadedRoot {
    root: PluginRootRef,
}

impl std::fmt::Debug for LoadedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadedRoot")
    }
}

extern "C" fn host_log(level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
    let (target, message) = (target.as_str(), message.as_str());
    match level {
        LogLevel::ERROR => tracing::error!(plugin_target = target, "{message}"),
        LogLevel::WARN => tracing::warn!(plugin_target = target, "{message}"),
        LogLevel::INFO => tracing::info!(plugin_target = target, "{message}"),
        LogLevel::DEBUG => tracing::debug!(plugin_target = target, "{message}"),
        _ => tracing::trace!(plugin_target = target, "{message}"),
    }
}

extern "C" fn host_get_service(_name: RStr<'_>) -> ROption<Capability> {
    ROption::RNone
}

/// Keeps the `Error:` lines of abi_stable's layout report (with the
/// expected/found lines after them); the rest is the full type dump.
/// Condenses abi_stable's layout report (a dump of both type trees, often
/// thousands of lines) to its errors: `Type: error (expected X, found Y)`.
/// The type is the last "Layout of expected type" before each error.
fn layout_error_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut current_type = "";
    let mut out: Vec<String> = Vec::new();
    let value_after = |i: usize, label: &str| -> Option<&str> {
        let at = (i..lines.len().min(i + 8)).find(|&j| lines[j] == label)?;
        lines.get(at + 1).copied().filter(|v| !v.is_empty())
    };
    for (i, line) in lines.iter().enumerate() {
        if *line == "Layout of expected type:" {
            if let Some(t) = lines[i..lines.len().min(i + 4)]
                .iter()
                .find_map(|l| l.strip_prefix("type:"))
            {
                current_type = t;
            }
        } else if let Some(err) = line.strip_prefix("Error:") {
            let mut msg = format!("{current_type}: {}", err.trim());
            if let (Some(e), Some(f)) = (value_after(i, "Expected:"), value_after(i, "Found:")) {
                msg.push_str(&format!(" (host {e}, plugin {f})"));
            }
            if !out.contains(&msg) {
                out.push(msg);
            }
        }
    }
    out.truncate(4);
    out
}

fn summarize_library_error(e: &LibraryError) -> String {
    let text = e.to_string();
    let keep = layout_error_lines(&text);
    match e {
        LibraryError::IncompatibleVersionNumber {
            library_name,
            expected_version,
            actual_version,
        } => format!(
            "interface version mismatch for {library_name}: the host has {expected_version}, the plugin {actual_version}"
        ),
        LibraryError::AbiInstability(_) if !keep.is_empty() => {
            format!("layout mismatch: {}", keep.join("; "))
        }
        LibraryError::AbiInstability(_) => "layout mismatch".to_string(),
        LibraryError::InvalidAbiHeader(_) => {
            format!(
                "built with an incompatible abi_stable: {}",
                first_line(&text)
            )
        }
        _ => first_line(&text),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Opens the library at `path`, checks its layout against this host's
/// interface and calls its `init`. Runs the library's constructors: call
/// it only after the manifest was accepted.
pub fn load(path: &Path) -> Result<LoadedRoot, LoadFailure> {
    let fail = |e: LibraryError| LoadFailure {
        summary: summarize_library_error(&e),
        detail: e.to_string(),
    };
    let header = lib_header_from_path(path).map_err(fail)?;
    let root = header.init_root_module::<PluginRootRef>().map_err(fail)?;
    let services = HostServices {
        log: host_log,
        get_service: host_get_service,
    };
    match (root.init())(services) {
        RResult::ROk(()) => Ok(LoadedRoot { root }),
        RResult::RErr(e) => Err(LoadFailure {
            summary: format!("init failed: {e}"),
            detail: e.to_string(),
        }),
    }
}

impl LoadedRoot {
    /// The manifest JSON the loaded module reports.
    pub fn manifest_json(&self) -> &'static str {
        (self.root.manifest())().as_str()
    }

    fn capability<T: StableAbi + 'static>(&self, name: &str) -> Result<Option<&'static T>, String> {
        match (self.root.get_capability())(RStr::from_str(name)) {
            ROption::RNone => Ok(None),
            ROption::RSome(cap) => {
                check_layout_compatibility(<T as StableAbi>::LAYOUT, cap.layout).map_err(|e| {
                    let text = e.to_string();
                    tracing::debug!("layout report for capability {name}:\n{text}");
                    format!(
                        "capability {name}: layout mismatch: {}",
                        layout_error_lines(&text).join("; ")
                    )
                })?;
                // SAFETY: the plugin promised a `&'static T` under this name
                // and its layout was just checked against ours.
                Ok(Some(unsafe { &*(cap.table as *const T) }))
            }
        }
    }

    /// The capability table serving `kind`, checked.
    pub fn table(&self, kind: Kind) -> Result<Option<Table>, String> {
        Ok(match kind {
            Kind::ActionHandler => self
                .capability::<ActionHandlersV1>(kind.capability())?
                .map(Table::Handlers),
            Kind::Strategy => self
                .capability::<StrategiesV1>(kind.capability())?
                .map(Table::Strategies),
            Kind::Planner => self
                .capability::<PlannersV1>(kind.capability())?
                .map(Table::Planners),
            Kind::ActionMapper => self
                .capability::<ActionMappersV1>(kind.capability())?
                .map(Table::Mappers),
            Kind::Collector => self
                .capability::<CollectorsV1>(kind.capability())?
                .map(Table::Collectors),
        })
    }
}

impl LoadedRoot {
    /// The optional `predict.v1` table, checked: `None` when the plugin
    /// declares no handler effects (plugins built before it existed).
    pub fn predict_table(&self) -> Result<Option<PredictTable>, String> {
        Ok(self
            .capability::<PredictV1>(sextant_plugin_api::abi::capability::PREDICT_V1)?
            .map(PredictTable))
    }
}

impl LoadedRoot {
    /// The optional `planners.v2` table, checked: `None` when the plugin
    /// offers only `planners.v1` (built before v2 existed), whose planners
    /// then plan flat.
    pub fn planners_v2_table(&self) -> Result<Option<PlannersV2Table>, String> {
        Ok(self
            .capability::<PlannersV2>(sextant_plugin_api::abi::capability::PLANNERS_V2)?
            .map(PlannersV2Table))
    }
}

/// A checked `planners.v2` table.
#[derive(Clone, Copy)]
pub struct PlannersV2Table(&'static PlannersV2);

impl PlannersV2Table {
    /// Schedules actions (in their ABI envelope) with planner `name`: the
    /// DAG with its flows and alternatives. What the plugin returned is
    /// converted here, refused with a typed error naming the planner and
    /// the field when it cannot be (unknown `on_failure`, invalid JSON).
    pub fn schedule(
        &self,
        name: &str,
        specs: &[ActionSpec],
        context_json: &str,
    ) -> Result<StructuredSchedule, PluginCallError> {
        use sextant_plugin_api::abi::FlowFailure;
        let s = convert((self.0.schedule)(
            RStr::from_str(name),
            RSlice::from_slice(specs),
            RStr::from_str(context_json),
        ))?;
        let bad = |what: String| PluginCallError::host(format!("planner {name} returned {what}"));
        let extra = if s.extra_json.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(s.extra_json.as_str())
                .map_err(|e| bad(format!("invalid extra JSON: {e}")))?
        };
        let alternatives = s
            .alternatives
            .iter()
            .map(|a| {
                let params = if a.action.input_parameters_json.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(a.action.input_parameters_json.as_str()).map_err(|e| {
                        bad(format!(
                            "alternative {} with invalid input_parameters: {e}",
                            a.action.id
                        ))
                    })?
                };
                Ok(PlannedAlternative {
                    primary: a.primary as usize,
                    action: Action {
                        id: a.action.id.to_string(),
                        action_type: a.action.action_type.to_string(),
                        resource_id: a
                            .action
                            .resource_id
                            .as_ref()
                            .map(|r| r.to_string())
                            .into_option(),
                        input_parameters: params,
                    },
                })
            })
            .collect::<Result<Vec<_>, PluginCallError>>()?;
        let flows = s
            .flows
            .iter()
            .map(|f| {
                let on_failure = match f.on_failure {
                    FlowFailure::CONTINUE => FlowOnFailure::Continue,
                    FlowFailure::STOP => FlowOnFailure::Stop,
                    FlowFailure::ROLLBACK => FlowOnFailure::Rollback,
                    FlowFailure(other) => {
                        return Err(bad(format!(
                            "flow {} with an unknown on_failure ({other})",
                            f.name
                        )));
                    }
                };
                Ok(PlannedFlow {
                    name: f.name.to_string(),
                    parent: f.parent.as_ref().map(|p| p.to_string()).into_option(),
                    on_failure,
                    actions: f.actions.iter().map(|&i| i as usize).collect(),
                })
            })
            .collect::<Result<Vec<_>, PluginCallError>>()?;
        Ok(StructuredSchedule {
            schedule: Schedule {
                order: s.order.iter().map(|&i| i as usize).collect(),
                edges: s
                    .edges
                    .iter()
                    .map(|e| (e.parent as usize, e.child as usize))
                    .collect(),
                extra,
            },
            alternatives,
            flows,
        })
    }
}

/// A checked `predict.v1` table.
#[derive(Clone, Copy)]
pub struct PredictTable(&'static PredictV1);

impl PredictTable {
    /// Opens a prediction over a cluster model (JSON).
    pub fn open(&self, model_json: &str) -> Result<RawPredictor, PluginCallError> {
        convert((self.0.open)(RStr::from_str(model_json))).map(RawPredictor)
    }
}

/// A prediction in progress in a plugin: its copy of the cluster model.
pub struct RawPredictor(PredictorBox);

impl RawPredictor {
    /// Predicts one action of handler entry `name`: the changes, as a JSON
    /// array of `ModelChange`.
    pub fn apply(&mut self, name: &str, params_json: &str) -> Result<String, PluginCallError> {
        convert(
            self.0
                .apply(RStr::from_str(name), RStr::from_str(params_json)),
        )
        .map(String::from)
    }

    /// Applies changes predicted by another plugin.
    pub fn observe(&mut self, changes_json: &str) -> Result<(), PluginCallError> {
        convert(self.0.observe(RStr::from_str(changes_json)))
    }
}

/// A checked capability table.
#[derive(Clone, Copy)]
pub enum Table {
    /// `action_handlers.v1`
    Handlers(&'static ActionHandlersV1),
    /// `strategies.v1`
    Strategies(&'static StrategiesV1),
    /// `planners.v1`
    Planners(&'static PlannersV1),
    /// `action_mappers.v1`
    Mappers(&'static ActionMappersV1),
    /// `collectors.v1`
    Collectors(&'static CollectorsV1),
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Table::Handlers(_) => "Table::Handlers",
            Table::Strategies(_) => "Table::Strategies",
            Table::Planners(_) => "Table::Planners",
            Table::Mappers(_) => "Table::Mappers",
            Table::Collectors(_) => "Table::Collectors",
        })
    }
}

fn convert<T>(r: RResult<T, PluginError>) -> Result<T, PluginCallError> {
    r.into_result().map_err(PluginCallError::from_plugin)
}

fn wrong_table(kind: &str) -> PluginCallError {
    PluginCallError::host(format!("the plugin offers no {kind} table"))
}

impl Table {
    /// Creates the handler object of entry `name` for one action.
    pub fn create_handler(
        &self,
        name: &str,
        params_json: &str,
        context_json: &str,
    ) -> Result<RawHandler, PluginCallError> {
        let Table::Handlers(t) = self else {
            return Err(wrong_table("action handler"));
        };
        convert((t.create)(
            RStr::from_str(name),
            RStr::from_str(params_json),
            RStr::from_str(context_json),
        ))
        .map(RawHandler)
    }

    /// Runs strategy `name`.
    pub fn run_strategy(
        &self,
        name: &str,
        model_json: &str,
        params_json: &str,
    ) -> Result<Solution, PluginCallError> {
        let Table::Strategies(t) = self else {
            return Err(wrong_table("strategy"));
        };
        let s = convert((t.execute)(
            RStr::from_str(name),
            RStr::from_str(model_json),
            RStr::from_str(params_json),
        ))?;
        let json = |r: &RString, what: &str| -> Result<serde_json::Value, PluginCallError> {
            if r.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_str(r.as_str()).map_err(|e| {
                PluginCallError::host(format!("strategy {name} returned invalid {what}: {e}"))
            })
        };
        let actions = s
            .actions
            .iter()
            .map(|a| {
                Ok(Action {
                    id: a.id.to_string(),
                    action_type: a.action_type.to_string(),
                    resource_id: a.resource_id.as_ref().map(|r| r.to_string()).into_option(),
                    input_parameters: json(&a.input_parameters_json, "input_parameters")?,
                })
            })
            .collect::<Result<Vec<_>, PluginCallError>>()?;
        Ok(Solution {
            actions,
            efficacy_indicators: json(&s.efficacy_indicators_json, "efficacy indicators")?,
            extra: json(&s.extra_json, "extra")?,
        })
    }

    /// Schedules `actions` with planner `name`.
    pub fn schedule(
        &self,
        name: &str,
        actions: &[Action],
        context_json: &str,
    ) -> Result<Schedule, PluginCallError> {
        if !matches!(self, Table::Planners(_)) {
            return Err(wrong_table("planner"));
        }
        let specs = actions
            .iter()
            .map(sextant_plugin_api::sdk::action_to_spec)
            .collect::<Result<Vec<ActionSpec>, _>>()
            .map_err(PluginCallError::from_plugin)?;
        self.schedule_specs(name, &specs, context_json)
    }

    /// Schedules actions already in their ABI envelope (parameters as JSON
    /// text) with planner `name`.
    pub fn schedule_specs(
        &self,
        name: &str,
        specs: &[ActionSpec],
        context_json: &str,
    ) -> Result<Schedule, PluginCallError> {
        let Table::Planners(t) = self else {
            return Err(wrong_table("planner"));
        };
        let s = convert((t.schedule)(
            RStr::from_str(name),
            RSlice::from_slice(specs),
            RStr::from_str(context_json),
        ))?;
        let extra = if s.extra_json.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(s.extra_json.as_str()).map_err(|e| {
                PluginCallError::host(format!("planner {name} returned invalid extra JSON: {e}"))
            })?
        };
        Ok(Schedule {
            order: s.order.iter().map(|&i| i as usize).collect(),
            edges: s
                .edges
                .iter()
                .map(|e| (e.parent as usize, e.child as usize))
                .collect(),
            extra,
        })
    }

    /// Maps an action with mapper `name`; returns the handler entry's name.
    pub fn map_action(&self, name: &str, request_json: &str) -> Result<String, PluginCallError> {
        let Table::Mappers(t) = self else {
            return Err(wrong_table("action mapper"));
        };
        convert((t.map)(RStr::from_str(name), RStr::from_str(request_json))).map(String::from)
    }

    /// Collects a cluster model with collector `name`.
    pub fn collect(&self, name: &str, config_json: &str) -> Result<String, PluginCallError> {
        let Table::Collectors(t) = self else {
            return Err(wrong_table("collector"));
        };
        convert((t.collect)(
            RStr::from_str(name),
            RStr::from_str(config_json),
        ))
        .map(String::from)
    }
}

/// A handler object created in a plugin for one action.
pub struct RawHandler(HandlerBox);

impl RawHandler {
    /// `pre_condition`
    pub fn pre_condition(&self) -> Result<(), PluginCallError> {
        convert(self.0.pre_condition())
    }
    /// `execute`: the outputs as JSON text.
    pub fn execute(&self) -> Result<String, PluginCallError> {
        convert(self.0.execute()).map(String::from)
    }
    /// `post_condition`
    pub fn post_condition(&self) -> Result<(), PluginCallError> {
        convert(self.0.post_condition())
    }
    /// `revert`
    pub fn revert(&self) -> Result<(), PluginCallError> {
        convert(self.0.revert())
    }
    /// `abort`
    pub fn abort(&self) -> Result<(), PluginCallError> {
        convert(self.0.abort())
    }
}

/// Direct root-module calls, for the boundary benchmark.
pub mod bench_probe {
    use super::*;

    /// One call across the boundary that does nothing but return: the
    /// handler's `pre_condition` (nop's checks two booleans).
    #[inline(never)]
    pub fn pre_condition_ok(h: &RawHandler) -> bool {
        h.0.pre_condition().is_ok()
    }
}
