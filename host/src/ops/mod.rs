//! The operator's operations on what is stored, shared by the command line
//! (`cli/`) and the REST API (`api/`): each one checks the request as
//! Watcher's API does, changes the store in one transaction, and says why
//! when it refuses. Neither edge holds domain rules of its own: the CLI
//! turns an [`OpError`] into an exit status, the API into an HTTP status
//! with Watcher's error body.

pub mod action_types;
pub mod audits;
pub mod pages;
pub mod plan_graph;
pub mod plans;
pub mod plugins;
pub mod policies;
pub mod templates;

use crate::decide::DecideError;
use crate::store::StoreError;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The request is invalid (HTTP 400, exit status 2).
    #[error("{0}")]
    Invalid(String),
    /// One value of the request is invalid (HTTP 400, exit status 2):
    /// `field` as the API names it (`sort_key`); the CLI names its flag
    /// (`--sort-key`).
    #[error("{field} {value}: {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// What it names does not exist (HTTP 404, exit status 2).
    #[error("{0}")]
    NotFound(String),
    /// The object is not in a state that allows it (HTTP 409, exit
    /// status 2).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (HTTP 500, exit status 1).
    #[error(transparent)]
    Store(StoreError),
    /// Something else failed that the caller cannot fix (HTTP 500, exit
    /// status 1): a file that could not be written.
    #[error("{0}")]
    Internal(String),
}

impl OpError {
    /// Bad input the operator can fix (exit status 2), as opposed to a
    /// failure of the store.
    pub fn is_input(&self) -> bool {
        !matches!(self, OpError::Store(_) | OpError::Internal(_))
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            e @ StoreError::NotFound { .. } => OpError::NotFound(e.to_string()),
            e @ StoreError::Ambiguous { .. } => OpError::Invalid(e.to_string()),
            e @ (StoreError::Refused { .. } | StoreError::Transition { .. }) => {
                OpError::Conflict(e.to_string())
            }
            e => OpError::Store(e),
        }
    }
}

impl From<DecideError> for OpError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Invalid(m) => OpError::Invalid(m),
            DecideError::Store(e) => e.into(),
        }
    }
}

/// A goal's or strategy's display name in `lang` (`fr`, `fr_FR.UTF-8`,
/// `fr-CA`), from its translations, else `fallback` (English).
pub fn display_name(names: &serde_json::Value, fallback: &str, lang: &str) -> String {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_value(names.clone()).unwrap_or_default();
    sextant_plugin_api::manifest::pick_translation(&map, lang)
        .unwrap_or(fallback)
        .to_string()
}

fn invalid(msg: impl Into<String>) -> OpError {
    OpError::Invalid(msg.into())
}

fn field(field: &'static str, value: impl std::fmt::Display, why: impl Into<String>) -> OpError {
    OpError::Field {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}
