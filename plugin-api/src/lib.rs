//! `sextant-plugin-api`: the stable ABI between Sextant and its plugins, and
//! the SDK plugin authors write against.
//!
//! A plugin is a `cdylib` that exports entries of five kinds (action
//! handlers, strategies, planners, action mappers, collectors). Its author
//! implements plain Rust traits ([`ActionHandler`], [`Strategy`], …) over
//! serde types and lists the entries in [`export_plugin!`]; the macro embeds
//! a JSON manifest in the ELF section `.sextant_plugin` (so the host can
//! read it without running plugin code) and generates the frozen root
//! module, whose capability tables the host looks up by name
//! (`action_handlers.v1`, …). Every entry point runs inside a panic guard.
//!
//! This crate and the host's loader module are the only places that name
//! `abi_stable` types; plugin authors never do.
//!
//! A complete plugin with one handler:
//!
//! ```ignore
//! use sextant_plugin_api::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Hello { name: String }
//!
//! impl ActionHandler for Hello {
//!     fn execute(&self, _ctx: &Context) -> Result<Value, PluginError> {
//!         Ok(json!({ "greeting": format!("Hello, {}!", self.name) }))
//!     }
//! }
//!
//! export_plugin! {
//!     handler Hello = Entry::new("hello", "0.1.0")
//!         .description("Greets someone.")
//!         .parameters(r#"{"type":"object","required":["name"],
//!                         "properties":{"name":{"type":"string"}}}"#),
//! }
//! ```
#![allow(non_local_definitions)]
#![warn(missing_docs)]

pub mod abi;
pub mod manifest;
pub mod model;
pub mod prediction;
pub mod sdk;
#[cfg(feature = "testing")]
pub mod testing;

pub use abi::{ErrorKind, INTERFACE_VERSION, MANIFEST_SECTION, PluginError};
pub use manifest::{Entry, GoalDecl, Kind, Manifest, ManifestEntry};
pub use sdk::{
    AbortSignal, Action, ActionHandler, ActionMapper, ActionRef, CANDIDATES_KEY, Collector,
    Context, FlowOnFailure, PlannedAlternative, PlannedFlow, Planner, Predict, Schedule, Solution,
    Strategy, StructuredPlanner, StructuredSchedule,
};

/// What a plugin author imports.
pub mod prelude {
    pub use crate::export_plugin;
    pub use crate::manifest::{Entry, GoalDecl};
    pub use crate::sdk::{
        AbortSignal, Action, ActionHandler, ActionMapper, ActionRef, Collector, Context,
        FlowOnFailure, PlannedAlternative, PlannedFlow, Planner, Predict, Schedule, Solution,
        Strategy, StructuredPlanner, StructuredSchedule, log_info, log_warn,
    };
    pub use crate::{ErrorKind, PluginError};
    pub use serde_json::{Value, json};
}

/// Re-exports for the code [`export_plugin!`] generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}

/// Exports a plugin's entries: writes the manifest section and the root
/// module. Use it once per plugin crate, at the crate root.
///
/// Each line is `KIND TYPE = ENTRY`, where `KIND` is one of `handler`,
/// `predicting_handler`, `strategy`, `planner`, `structured_planner` (a
/// [`StructuredPlanner`]: it offers flows and alternatives through
/// `planners.v2`, and its flat schedule through `planners.v1`), `mapper`, `collector`,
/// `TYPE` implements the matching trait ([`ActionHandler`] + `Deserialize`
/// for handlers, and [`Predict`] too for a `predicting_handler`, which
/// declares its effect on the cluster model; the others + `Default`), and
/// `ENTRY` is a `const` [`Entry`]. A plugin with a `predicting_handler`
/// offers the `predict.v1` table.
///
/// ```ignore
/// export_plugin! {
///     handler Sleep = Entry::new("sleep", "1.0.0").abortable(),
///     strategy Dummy = Entry::new("dummy", "1.0.0").goal(GoalDecl::new("dummy")),
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    ( $( $kind:ident $ty:ty = $entry:expr ),* $(,)? ) => {
        /// This crate's plugin, for `sextant_plugin_api::test_plugin!` (a
        /// copy of what the block below exports, without the manifest
        /// section, so it is never linked into the plugin unless used).
        #[doc(hidden)]
        #[allow(dead_code)]
        pub(crate) fn __sextant_plugin_def() -> &'static $crate::sdk::PluginDef {
            const ENTRIES: &[$crate::manifest::Entry] = &[
                $( $crate::export_plugin!(@with_kind $kind, $entry) ),*
            ];
            const LEN: usize = $crate::manifest::encoded_len(ENTRIES, cfg!(panic = "unwind"));
            static MANIFEST: [u8; LEN] =
                $crate::manifest::encode::<LEN>(ENTRIES, cfg!(panic = "unwind"));
            static DEF: $crate::sdk::PluginDef = $crate::sdk::PluginDef {
                manifest: &MANIFEST,
                entries: &[
                    $( (
                        $crate::export_plugin!(@with_kind $kind, $entry).name(),
                        $crate::export_plugin!(@fn $kind, $ty),
                    ) ),*
                ],
            };
            &DEF
        }

        const _: () = {
            const __SEXTANT_ENTRIES: &[$crate::manifest::Entry] = &[
                $( $crate::export_plugin!(@with_kind $kind, $entry) ),*
            ];
            const __SEXTANT_LEN: usize =
                $crate::manifest::encoded_len(__SEXTANT_ENTRIES, cfg!(panic = "unwind"));
            #[used]
            #[unsafe(link_section = ".sextant_plugin")]
            static __SEXTANT_MANIFEST: [u8; __SEXTANT_LEN] =
                $crate::manifest::encode::<__SEXTANT_LEN>(__SEXTANT_ENTRIES, cfg!(panic = "unwind"));

            static __SEXTANT_PLUGIN: $crate::sdk::PluginDef = $crate::sdk::PluginDef {
                manifest: &__SEXTANT_MANIFEST,
                entries: &[
                    $( (
                        $crate::export_plugin!(@with_kind $kind, $entry).name(),
                        $crate::export_plugin!(@fn $kind, $ty),
                    ) ),*
                ],
            };

            fn __sextant_root_module() -> $crate::abi::PluginRootRef {
                $crate::sdk::root_module(&__SEXTANT_PLUGIN)
            }

            /// The abi_stable library header (what `#[export_root_module]`
            /// generates), written out so plugin crates need no direct
            /// abi_stable dependency.
            #[unsafe(no_mangle)]
            pub static _1as_0lib_1header_0root_bmodule_bloader:
                $crate::__private::abi_stable::library::LibHeader = {
                extern "C" fn __sextant_erased_module()
                    -> $crate::__private::abi_stable::library::RootModuleResult
                {
                    $crate::__private::abi_stable::library::__call_root_module_loader(
                        __sextant_root_module,
                    )
                }
                unsafe {
                    $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                        $crate::abi::PluginRootRef,
                    >(
                        __sextant_erased_module,
                        $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
    (@with_kind handler, $e:expr) => { $e.with_kind($crate::manifest::Kind::ActionHandler) };
    (@with_kind predicting_handler, $e:expr) => { $e.with_kind($crate::manifest::Kind::ActionHandler) };
    (@with_kind strategy, $e:expr) => { $e.with_kind($crate::manifest::Kind::Strategy) };
    (@with_kind planner, $e:expr) => { $e.with_kind($crate::manifest::Kind::Planner) };
    (@with_kind structured_planner, $e:expr) => { $e.with_kind($crate::manifest::Kind::Planner) };
    (@with_kind mapper, $e:expr) => { $e.with_kind($crate::manifest::Kind::ActionMapper) };
    (@with_kind collector, $e:expr) => { $e.with_kind($crate::manifest::Kind::Collector) };
    (@fn handler, $t:ty) => { $crate::sdk::handler_fn::<$t>() };
    (@fn predicting_handler, $t:ty) => { $crate::sdk::predicting_handler_fn::<$t>() };
    (@fn strategy, $t:ty) => { $crate::sdk::strategy_fn::<$t>() };
    (@fn planner, $t:ty) => { $crate::sdk::planner_fn::<$t>() };
    (@fn structured_planner, $t:ty) => { $crate::sdk::structured_planner_fn::<$t>() };
    (@fn mapper, $t:ty) => { $crate::sdk::mapper_fn::<$t>() };
    (@fn collector, $t:ty) => { $crate::sdk::collector_fn::<$t>() };
}
