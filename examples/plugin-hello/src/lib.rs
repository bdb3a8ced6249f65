//! A Sextant plugin with one action handler, `hello`, that greets someone.

use sextant_plugin_api::prelude::*;

#[derive(serde::Deserialize)]
struct Hello {
    name: String,
}

impl ActionHandler for Hello {
    fn execute(&self, _ctx: &Context) -> Result<Value, PluginError> {
        log_info(&format!("greeting {}", self.name));
        Ok(json!({ "greeting": format!("Hello, {}!", self.name) }))
    }
}

export_plugin! {
    handler Hello = Entry::new("hello", "0.1.0")
        .display_name("en", "Hello")
        .description("Greets someone by name; returns the greeting as output.")
        .parameters(r#"{"type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string", "minLength": 1}},
                        "additionalProperties": false}"#)
        .idempotent(),
}

#[cfg(test)]
mod tests;
