//! What `action list` adds for a plan with flows and alternatives
//! (docs/flows.md): each structured action's flow and, for an alternative,
//! the action it stands in for and its rank. A flat plan's list is
//! unchanged.

use crate::states::{EventType, FlowState};
use crate::store::flows::ScopeRow;
use crate::store::plans::ActionRow;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Scopes by action uuid.
pub struct Scopes(HashMap<String, ScopeRow>);

impl Scopes {
    /// Indexes a plan's scopes.
    pub fn new(rows: Vec<ScopeRow>) -> Self {
        Scopes(
            rows.into_iter()
                .map(|s| (s.action_uuid.clone(), s))
                .collect(),
        )
    }

    /// The actions as JSON, with `flow`, `alternative_of` and `alternative`
    /// on the structured ones.
    pub fn json(&self, actions: &[ActionRow]) -> Result<Value, serde_json::Error> {
        let mut v = serde_json::to_value(actions)?;
        if self.0.is_empty() {
            return Ok(v);
        }
        for item in v.as_array_mut().into_iter().flatten() {
            let Some(s) = item["uuid"].as_str().and_then(|u| self.0.get(u)) else {
                continue;
            };
            item["flow"] = json!(s.flow);
            if let Some((p, r)) = &s.primary {
                item["alternative_of"] = json!(p);
                item["alternative"] = json!(r);
            }
        }
        Ok(v)
    }

    /// The name as a table shows it: `mv-b (alternative 1 of mv) [flow f]`.
    pub fn name(&self, a: &ActionRow) -> String {
        let Some(s) = self.0.get(&a.uuid) else {
            return a.name.clone();
        };
        let mut out = a.name.clone();
        if let Some((p, r)) = &s.primary
            && *r > 0
        {
            out.push_str(&format!(" (alternative {r} of {p})"));
        }
        if let Some(f) = &s.flow {
            out.push_str(&format!(" [flow {f}]"));
        }
        out
    }
}

/// What the history table says of a flow or alternative event (they change
/// no action state): the switch, the settling, the flow's failure.
pub fn event_detail(event_type: EventType, payload: &Value) -> String {
    let s = |k: &str| payload[k].as_str().unwrap_or("").to_string();
    match event_type {
        EventType::ActionAlternativeStart => format!(
            "{} -> {} (alternative {} of {})",
            s("from"),
            s("to"),
            payload["alternative"],
            s("primary")
        ),
        EventType::ActionAlternativeSettled => match payload["reverted"].as_bool() {
            Some(true) => "reverted".into(),
            _ => "not reverted".into(),
        },
        EventType::FlowFailed => format!(
            "{}: {} (on_failure: {})",
            FlowState::Failed,
            s("why"),
            s("on_failure")
        ),
        EventType::FlowRollbackStart => FlowState::RollingBack.to_string(),
        EventType::FlowRollbackEnd => FlowState::RolledBack.to_string(),
        _ => String::new(),
    }
}
