//! Test support for plugin authors (feature `testing`): call your action
//! handlers as the host does, in a plain `cargo test` of your plugin crate,
//! without building or loading the `.so`.
//!
//! [`test_plugin!`](crate::test_plugin) gives the plugin that your crate's
//! [`export_plugin!`](crate::export_plugin) defines. Each handler is then
//! created the way the host creates it: by entry name, through the plugin's
//! `action_handlers.v1` capability, from the parameters and the context as
//! JSON text, and every call runs inside the same panic guard as in a real
//! host: a panic comes back as an error of kind `PANICKED`, and the handler
//! is poisoned (the host never calls it again; neither does this module).
//!
//! What the host checks before it ever calls your plugin is checked here
//! too, so a test cannot pass on something a host would never do: the
//! parameters must match the entry's `parameters` JSON Schema from the
//! manifest, the context holds only the fields a host sends, and `revert` /
//! `abort` are refused unless the entry is declared `.revertible()` /
//! `.abortable()`.
//!
//! In your plugin's `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! sextant-plugin-api = { path = "../../plugin-api", features = ["testing"] }
//! ```
//!
//! Then, in the crate that calls `export_plugin!` at its root:
//!
//! ```
//! use sextant_plugin_api::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Hello { name: String }
//!
//! impl ActionHandler for Hello {
//!     fn execute(&self, _ctx: &Context) -> Result<Value, PluginError> {
//!         if self.name == "boom" {
//!             panic!("no greeting for boom");
//!         }
//!         Ok(json!({ "greeting": format!("Hello, {}!", self.name) }))
//!     }
//! }
//!
//! export_plugin! {
//!     handler Hello = Entry::new("hello", "0.1.0")
//!         .parameters(r#"{"type": "object", "required": ["name"],
//!                         "properties": {"name": {"type": "string", "minLength": 1}}}"#),
//! }
//!
//! # fn main() -> Result<(), PluginError> {
//! let plugin = sextant_plugin_api::test_plugin!();
//!
//! // pre_condition, execute, post_condition, as the applier runs an action.
//! let hello = plugin.handler("hello", json!({"name": "ops"}))?;
//! assert_eq!(hello.run()?, json!({"greeting": "Hello, ops!"}));
//!
//! // Parameters are checked against the entry's schema first.
//! let e = plugin.handler("hello", json!({"name": ""})).err().unwrap();
//! assert_eq!(e.kind(), ErrorKind::INVALID_INPUT);
//! assert!(e.message().contains("/name"), "{e}");
//!
//! // A panic comes back as PANICKED, and poisons the handler.
//! let boom = plugin.handler("hello", json!({"name": "boom"}))?;
//! assert_eq!(boom.execute().unwrap_err().kind(), ErrorKind::PANICKED);
//! assert!(boom.is_poisoned());
//!
//! // The context is what the applier sends; override any of its fields.
//! let h = plugin.handler_with_context("hello", json!({"name": "ops"}),
//!                                     json!({"name": "greet_ops"}))?;
//! assert_eq!(h.context()["name"], "greet_ops");
//! assert_eq!(h.context()["action_type"], "hello");
//! # Ok(())
//! # }
//! ```

use crate::abi::HandlerBox;
use crate::abi::capability::ACTION_HANDLERS_V1;
use crate::manifest::{Kind, Manifest, ManifestEntry};
use crate::sdk::{self, PluginDef};
use crate::{ErrorKind, PluginError};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

/// The plugin that this crate's [`export_plugin!`](crate::export_plugin)
/// defines, as a [`Plugin`](crate::testing::Plugin). Use it in the crate
/// (or a module of it) whose root calls `export_plugin!`.
#[macro_export]
// `crate` on purpose: the plugin crate that calls the macro.
#[allow(clippy::crate_in_macro_def)]
macro_rules! test_plugin {
    () => {
        $crate::testing::Plugin::load(crate::__sextant_plugin_def())
    };
}

/// The fields of the context a host sends a handler (the applier sends all
/// of them; `sextant action-type run` sends no `uuid` or `action_plan`).
pub const CONTEXT_FIELDS: [&str; 7] = [
    "uuid",
    "name",
    "action_type",
    "action_type_version",
    "estimated_duration_seconds",
    "action_plan",
    "config",
];

/// Your plugin, loaded as a host loads it but without the `.so`.
pub struct Plugin {
    manifest: Manifest,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("entries", &self.manifest.entries.len())
            .finish()
    }
}

impl Plugin {
    /// Loads the plugin `def`. Use [`test_plugin!`](crate::test_plugin),
    /// which passes the definition `export_plugin!` wrote.
    ///
    /// Panics if the manifest does not parse, which would be a bug of this
    /// SDK, never of the plugin.
    #[doc(hidden)]
    pub fn load(def: &'static PluginDef) -> Self {
        // What the host's loader does once it has opened the library: build
        // the root module, then read the manifest it serves (the same bytes
        // as the `.sextant_plugin` section the host vets the file by).
        let root = sdk::root_module(def);
        let text = (root.manifest())().as_str();
        let manifest = match Manifest::parse(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("export_plugin! wrote a manifest that does not parse: {e}"),
        };
        Self { manifest }
    }

    /// The plugin's manifest: its entries, their schemas and flags.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The action handler entry `name`, if the plugin has one.
    pub fn handler_entry(&self, name: &str) -> Option<&ManifestEntry> {
        self.manifest
            .entries
            .iter()
            .find(|e| e.kind == Kind::ActionHandler && e.name == name)
    }

    /// Creates handler `entry` for one action with `params` (the action's
    /// input parameters, as the host passes them) and the context the
    /// applier sends (see [`Plugin::handler_with_context`]).
    pub fn handler(&self, entry: &str, params: Value) -> Result<TestHandler, PluginError> {
        self.handler_with_context(entry, params, json!({}))
    }

    /// Creates handler `entry` with `params` and a context: the one the
    /// applier sends, with the fields of `context` (an object, of
    /// [`CONTEXT_FIELDS`] only) put over it. The defaults: `uuid` and
    /// `action_plan` fixed UUIDs, `name` and `action_type` the entry's
    /// name, `action_type_version` its version,
    /// `estimated_duration_seconds` 0, `config` `{}`.
    ///
    /// Fails with `INVALID_INPUT` when `params` break the entry's
    /// parameters schema (naming where) or the context has a field no host
    /// sends, `UNKNOWN_ENTRY` when there is no such handler, and with
    /// whatever the plugin returns when it refuses the parameters.
    pub fn handler_with_context(
        &self,
        entry: &str,
        params: Value,
        context: Value,
    ) -> Result<TestHandler, PluginError> {
        let Some(manifest_entry) = self.handler_entry(entry) else {
            return Err(PluginError::new(
                ErrorKind::UNKNOWN_ENTRY,
                format!("this plugin has no action handler named {entry:?}"),
            ));
        };
        check_parameters(manifest_entry, &params)?;
        let context = host_context(manifest_entry, context)?;
        if sdk::root_get_capability_for_tests(ACTION_HANDLERS_V1).is_none() {
            return Err(PluginError::internal(format!(
                "the plugin offers no {ACTION_HANDLERS_V1} capability"
            )));
        }
        // As the host: parameters and context cross as JSON text.
        let params_json = serde_json::to_string(&params)?;
        let context_json = serde_json::to_string(&context)?;
        let handler = sdk::handler_create_for_tests(entry, &params_json, &context_json)?;
        Ok(TestHandler {
            handler,
            entry: manifest_entry.clone(),
            context,
            poisoned: AtomicBool::new(false),
        })
    }
}

fn check_parameters(entry: &ManifestEntry, params: &Value) -> Result<(), PluginError> {
    let schema = &entry.parameters;
    if schema.is_null() || schema.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(());
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(PluginError::internal(format!(
            "the parameters schema of entry {} is not valid JSON Schema: {e}",
            entry.name
        )));
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| {
            PluginError::internal(format!(
                "the parameters schema of entry {} does not compile: {e}",
                entry.name
            ))
        })?;
    let errors: Vec<String> = validator
        .iter_errors(params)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at {at}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PluginError::invalid_input(format!(
            "the parameters break the schema of entry {}: {}",
            entry.name,
            errors.join("; ")
        )))
    }
}

fn host_context(entry: &ManifestEntry, overrides: Value) -> Result<Value, PluginError> {
    let Value::Object(overrides) = overrides else {
        return Err(PluginError::invalid_input(
            "the context must be a JSON object",
        ));
    };
    let mut context = json!({
        "uuid": "00000000-0000-4000-8000-000000000001",
        "name": entry.name,
        "action_type": entry.name,
        "action_type_version": entry.version,
        "estimated_duration_seconds": 0,
        "action_plan": "00000000-0000-4000-8000-000000000000",
        "config": {},
    });
    for (k, v) in overrides {
        if !CONTEXT_FIELDS.contains(&k.as_str()) {
            return Err(PluginError::invalid_input(format!(
                "the context has a field {k:?}, which no host sends; it has {}",
                CONTEXT_FIELDS.join(", ")
            )));
        }
        context[k] = v;
    }
    Ok(context)
}

/// One action's handler, created as the host creates it. `Sync`: call
/// [`TestHandler::abort`] from another thread while `execute` runs.
pub struct TestHandler {
    handler: HandlerBox,
    entry: ManifestEntry,
    context: Value,
    poisoned: AtomicBool,
}

impl std::fmt::Debug for TestHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHandler")
            .field("entry", &self.entry.name)
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

impl TestHandler {
    /// The context the handler was created with, as the host sent it.
    pub fn context(&self) -> &Value {
        &self.context
    }

    /// Whether a call panicked: the host then never calls it again, and
    /// every later call here fails with `PANICKED` without entering it.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&HandlerBox) -> abi_stable::std_types::RResult<T, PluginError>,
    ) -> Result<T, PluginError> {
        if self.is_poisoned() {
            return Err(PluginError::panicked(format!(
                "handler {} panicked earlier: it is poisoned, a host never calls it again",
                self.entry.name
            )));
        }
        let r = f(&self.handler).into_result();
        if matches!(&r, Err(e) if e.kind() == ErrorKind::PANICKED) {
            self.poisoned.store(true, Ordering::Release);
        }
        r
    }

    /// `pre_condition`: `Err` of kind `SKIPPED` means the action is skipped.
    pub fn pre_condition(&self) -> Result<(), PluginError> {
        self.call(|h| h.pre_condition())
    }

    /// `execute`: the outputs, parsed from the JSON text that crossed the
    /// boundary.
    pub fn execute(&self) -> Result<Value, PluginError> {
        let text = self.call(|h| h.execute())?;
        serde_json::from_str(text.as_str()).map_err(|e| {
            PluginError::internal(format!(
                "handler {} returned invalid JSON: {e}",
                self.entry.name
            ))
        })
    }

    /// `post_condition`
    pub fn post_condition(&self) -> Result<(), PluginError> {
        self.call(|h| h.post_condition())
    }

    /// `pre_condition`, `execute`, `post_condition`, in the order the
    /// applier calls them, stopping at the first error; the outputs.
    pub fn run(&self) -> Result<Value, PluginError> {
        self.pre_condition()?;
        let outputs = self.execute()?;
        self.post_condition()?;
        Ok(outputs)
    }

    /// `revert`. Refused (`UNSUPPORTED`) unless the entry is declared
    /// `.revertible()`: a host never reverts any other.
    pub fn revert(&self) -> Result<(), PluginError> {
        if !self.entry.revertible {
            return Err(PluginError::unsupported(format!(
                "entry {} is not declared .revertible(): a host never calls its revert",
                self.entry.name
            )));
        }
        self.call(|h| h.revert())
    }

    /// `abort`: raises the context's abort signal, then calls the handler's
    /// `abort`, as the host does from another thread while `execute` runs.
    /// Refused (`UNSUPPORTED`) unless the entry is declared `.abortable()`:
    /// a host never aborts any other.
    pub fn abort(&self) -> Result<(), PluginError> {
        if !self.entry.abortable {
            return Err(PluginError::unsupported(format!(
                "entry {} is not declared .abortable(): a host never calls its abort",
                self.entry.name
            )));
        }
        self.call(|h| h.abort())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// How often the handler was entered to panic.
    static PANICS: AtomicUsize = AtomicUsize::new(0);

    #[derive(serde::Deserialize)]
    struct Probe {
        what: String,
    }

    impl ActionHandler for Probe {
        fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
            match self.what.as_str() {
                "skip" => Err(PluginError::skipped("nothing to do")),
                _ => Ok(()),
            }
        }
        fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
            match self.what.as_str() {
                "panic" => {
                    PANICS.fetch_add(1, Ordering::SeqCst);
                    panic!("probe panicked")
                }
                "wait" => {
                    if ctx.abort_signal().sleep(Duration::from_secs(30)) {
                        Ok(json!({"waited": true}))
                    } else {
                        Err(PluginError::aborted("aborted"))
                    }
                }
                _ => Ok(json!({"context": ctx.action})),
            }
        }
        fn revert(&self, _ctx: &Context) -> Result<(), PluginError> {
            Ok(())
        }
    }

    crate::export_plugin! {
        handler Probe = Entry::new("probe", "2.0.0")
            .parameters(r#"{"type": "object"}"#),
        handler Probe = Entry::new("probe_abortable", "1.0.0").abortable().revertible(),
    }

    // What test_plugin!() expands to in a crate whose root calls
    // export_plugin!; here the macro is called in this module.
    fn plugin() -> Plugin {
        Plugin::load(__sextant_plugin_def())
    }

    #[test]
    fn a_handler_that_panicked_is_poisoned_and_never_entered_again() {
        let h = plugin().handler("probe", json!({"what": "panic"})).unwrap();
        let before = PANICS.load(Ordering::SeqCst);
        let e = h.execute().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PANICKED);
        assert!(e.message().contains("probe panicked"), "{e}");
        assert!(h.is_poisoned());
        let e = h.run().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PANICKED);
        assert!(e.message().contains("poisoned"), "{e}");
        // Entered once: the second call never reached the handler.
        assert_eq!(PANICS.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn the_handler_gets_the_context_the_applier_sends() {
        let h = plugin()
            .handler_with_context(
                "probe",
                json!({"what": "echo"}),
                json!({"config": {"sim": {"time_scale": 0}}}),
            )
            .unwrap();
        let out = h.run().unwrap();
        let ctx = &out["context"];
        for field in CONTEXT_FIELDS {
            assert!(!ctx[field].is_null(), "{field} missing from {ctx}");
        }
        assert_eq!(ctx["action_type"], "probe");
        assert_eq!(ctx["action_type_version"], "2.0.0");
        assert_eq!(ctx["config"], json!({"sim": {"time_scale": 0}}));
    }

    #[test]
    fn a_context_field_no_host_sends_is_refused() {
        let e = plugin()
            .handler_with_context("probe", json!({"what": "x"}), json!({"parameters": {}}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::INVALID_INPUT);
        assert!(e.message().contains("\"parameters\""), "{e}");
    }

    #[test]
    fn parameters_the_handler_cannot_deserialize_are_refused_by_it() {
        // The schema takes any object; the handler's Deserialize does not.
        let e = plugin().handler("probe", json!({"who": "x"})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::INVALID_INPUT);
        assert!(e.message().contains("what"), "{e}");
    }

    #[test]
    fn an_unknown_entry_is_refused() {
        let e = plugin().handler("nope", json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UNKNOWN_ENTRY);
        assert!(e.message().contains("nope"), "{e}");
    }

    #[test]
    fn a_skipping_pre_condition_stops_run_before_execute() {
        let h = plugin().handler("probe", json!({"what": "skip"})).unwrap();
        assert_eq!(h.run().unwrap_err().kind(), ErrorKind::SKIPPED);
    }

    #[test]
    fn revert_and_abort_are_refused_unless_the_entry_declares_them() {
        let plugin = plugin();
        let h = plugin.handler("probe", json!({"what": "x"})).unwrap();
        assert_eq!(h.revert().unwrap_err().kind(), ErrorKind::UNSUPPORTED);
        assert_eq!(h.abort().unwrap_err().kind(), ErrorKind::UNSUPPORTED);
        let h = plugin
            .handler("probe_abortable", json!({"what": "x"}))
            .unwrap();
        assert!(h.revert().is_ok());
    }

    #[test]
    fn abort_from_another_thread_stops_a_running_execute() {
        let h = plugin()
            .handler("probe_abortable", json!({"what": "wait"}))
            .unwrap();
        let started = std::time::Instant::now();
        let outcome = std::thread::scope(|s| {
            let running = s.spawn(|| h.execute());
            std::thread::sleep(Duration::from_millis(50));
            h.abort().unwrap();
            running.join().unwrap()
        });
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::ABORTED);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
