//! Action types as the operator sees them (`action-type list | show`,
//! `GET /v1/action_types`): the definition, and the handler entry the
//! configured mapper resolves it to, or why none.

use crate::action_types::{ActionType, HandlerMapper};
use serde_json::Value;

/// An action type with `handler_entry` and `mapping_error`.
pub fn describe(t: &ActionType, lang: &str, m: &HandlerMapper<'_>) -> Value {
    let mut v = t.to_json(lang);
    let (entry, error) = match m.handler_for(t) {
        Ok(h) => (Value::String(h), Value::Null),
        Err(e) => (Value::Null, Value::String(e.reason)),
    };
    v["handler_entry"] = entry;
    v["mapping_error"] = error;
    v
}
