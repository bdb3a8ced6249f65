//! From an action type to the handler entry that runs it, through the
//! action-mapper plugin the config file chooses (`mapper:`, default
//! `default`, the built-in one in `plugins/core`).
//!
//! The default rule: a handler entry named exactly as the type's `handler`
//! (`nop`, `sleep`, `command`, `http`), else `<driver>.<handler>` for each
//! driver the config file lists (`drivers: [sim]` by default).

use super::dsl::ActionType;
use crate::plugins::PluginRegistry;
use serde_json::json;
use sextant_plugin_api::Kind;

/// Why no handler could be found.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("action type {action_type}: {reason}")]
pub struct MappingError {
    /// `name@version`.
    pub action_type: String,
    /// Why.
    pub reason: String,
}

/// Maps action types to loaded handler entries.
pub struct HandlerMapper<'p> {
    plugins: &'p PluginRegistry,
    mapper: String,
    drivers: Vec<String>,
}

impl<'p> HandlerMapper<'p> {
    /// A mapper using the mapper entry `mapper` and these drivers.
    pub fn new(plugins: &'p PluginRegistry, mapper: &str, drivers: &[String]) -> Self {
        Self {
            plugins,
            mapper: mapper.to_string(),
            drivers: drivers.to_vec(),
        }
    }

    /// The handler entry that runs actions of type `t`.
    pub fn handler_for(&self, t: &ActionType) -> Result<String, MappingError> {
        let fail = |reason: String| MappingError {
            action_type: t.id(),
            reason,
        };
        if self
            .plugins
            .find(Kind::ActionMapper, &self.mapper)
            .is_none()
        {
            return Err(fail(format!(
                "the action mapper {:?} is not loaded (set `mapper:` in the config file)",
                self.mapper
            )));
        }
        let handlers: Vec<&str> = self
            .plugins
            .of_kind(Kind::ActionHandler)
            .map(|e| e.manifest().name.as_str())
            .collect();
        let request = json!({
            "action_type": t.name,
            "version": t.version.to_string(),
            "handler": t.handler,
            "drivers": self.drivers,
            "handlers": handlers,
        });
        let name = self
            .plugins
            .map_action(&self.mapper, &request)
            .map_err(|e| fail(e.to_string()))?;
        if self.plugins.find(Kind::ActionHandler, &name).is_none() {
            return Err(fail(format!(
                "mapper {:?} chose handler {name:?}, which is not loaded",
                self.mapper
            )));
        }
        Ok(name)
    }
}
