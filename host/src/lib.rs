//! `sextant`: the plugin host. It discovers and loads plugins, audits a
//! cluster model, plans actions into a DAG and applies them. The `sextant`
//! binary is a thin layer over [`cli`].
//!
//! Modules follow the pipeline: [`plugins`] (discover and load),
//! [`action_types`] (define and instantiate actions), [`decide`] (audits),
//! [`plan`] (planners), [`apply`] (the applier), over [`store`] (the
//! state); [`ops`] is what the operator's two edges share, [`cli`] the
//! command line and [`api`] the REST API. docs/architecture.md is the map,
//! with the dependency rules `layering` checks.

pub mod action_types;
pub mod api;
pub mod apply;
pub mod cli;
pub mod config;
pub mod datasource;
pub mod decide;
pub mod duration;
pub mod input;
pub mod installation;
#[cfg(test)]
mod layering;
pub mod notify;
pub mod ops;
#[cfg(test)]
mod parser_fuzz;
pub mod plan;
pub mod plugins;
pub mod policy;
pub mod states;
pub mod store;
pub mod suggest;
pub mod telemetry;
pub mod trust;

/// A JSON value as compact text, written straight into a buffer: about
/// three times faster than `Value`'s `Display`, which goes through a
/// `fmt::Formatter` a token at a time (a hot path: every handler's
/// parameters and context cross the plugin boundary as text).
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}
