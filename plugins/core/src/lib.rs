//! `sextant_core`: the built-in generic plugins that need no cloud.
//!
//! * `nop` logs a message; its flags make it skip or fail on purpose, as
//!   Watcher's `Nop` does (reference section 1.2), which makes it the action
//!   the applier's tests are written with.
//! * `sleep` waits for `duration` seconds (at most 7 days). Unlike
//!   Watcher's, it honours fractional seconds (Watcher truncates with
//!   `int()`) and it is abortable: an abort ends the wait at once.
//! * `command` runs a program (argv, env, working directory, timeout; no
//!   shell) in a process group of its own, with its stdout bounded, and
//!   `http` sends a request, with its response bounded and redirects to
//!   another origin refused: the generic handlers that YAML-only action
//!   types bind to.
//! * `default`, the action mapper: the handler entry named as the action
//!   type's `handler`, else `<driver>.<handler>`.

mod command;
mod http;
mod mapper;
mod orphan_guard;
mod params;
mod process_group;
mod redirect;

use command::CommandHandler;
use http::HttpHandler;
use mapper::DefaultMapper;
use serde::Deserialize;
use sextant_plugin_api::prelude::*;

/// Watcher's `Nop`: logs `message`; the flags force a skip or a failure.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nop {
    message: Option<String>,
    #[serde(default)]
    skip_pre_condition: bool,
    #[serde(default)]
    fail_pre_condition: bool,
    #[serde(default)]
    fail_execute: bool,
    #[serde(default)]
    fail_post_condition: bool,
}

impl ActionHandler for Nop {
    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        if self.skip_pre_condition {
            return Err(PluginError::skipped("Skipped in pre_condition"));
        }
        if self.fail_pre_condition {
            return Err(PluginError::precondition_failed("Failed in pre_condition"));
        }
        Ok(())
    }

    fn execute(&self, _ctx: &Context) -> Result<Value, PluginError> {
        log_info(&format!(
            "Executing action NOP message: {}",
            self.message.as_deref().unwrap_or("None")
        ));
        if self.fail_execute {
            return Err(PluginError::execution_failed("Failed in execute"));
        }
        Ok(json!({ "message": self.message }))
    }

    fn post_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        if self.fail_post_condition {
            return Err(PluginError::execution_failed("Failed in post_condition"));
        }
        Ok(())
    }

    fn revert(&self, _ctx: &Context) -> Result<(), PluginError> {
        log_info("Revert action NOP");
        Ok(())
    }
}

/// Watcher's `Sleep`, with fractional seconds and a working abort.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sleep {
    duration: f64,
}

impl ActionHandler for Sleep {
    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        params::seconds(self.duration, "duration").map(drop)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let duration = params::seconds(self.duration, "duration")?;
        log_info(&format!("Sleeping for {} seconds", self.duration));
        if ctx.abort_signal().sleep(duration) {
            Ok(json!({ "slept": self.duration }))
        } else {
            Err(PluginError::aborted("sleep aborted"))
        }
    }

    fn revert(&self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
}

const NOP_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "message": {"type": ["string", "null"]},
    "skip_pre_condition": {"type": "boolean", "default": false},
    "fail_pre_condition": {"type": "boolean", "default": false},
    "fail_execute": {"type": "boolean", "default": false},
    "fail_post_condition": {"type": "boolean", "default": false}
  },
  "required": ["message"],
  "additionalProperties": false
}"#;

const SLEEP_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {"duration": {"type": "number", "minimum": 0, "maximum": 604800}},
  "required": ["duration"],
  "additionalProperties": false
}"#;

export_plugin! {
    handler Nop = Entry::new("nop", "1.0.0")
        .display_name("en", "Nop")
        .display_name("fr", "Aucune opération")
        .description("Logging a NOP message")
        .parameters(NOP_SCHEMA)
        .revertible()
        .abortable()
        .idempotent(),
    handler Sleep = Entry::new("sleep", "1.0.0")
        .display_name("en", "Sleep")
        .display_name("fr", "Attendre")
        .description("Wait for a given interval in seconds.")
        .parameters(SLEEP_SCHEMA)
        .revertible()
        .abortable()
        .idempotent(),
    handler CommandHandler = Entry::new("command", "1.0.0")
        .display_name("en", "Run a command")
        .display_name("fr", "Exécuter une commande")
        .description("Runs a program with an argv (no shell). Exit 0 is success; a JSON object on stdout becomes the outputs.")
        .parameters(command::SCHEMA)
        .abortable(),
    handler HttpHandler = Entry::new("http", "1.0.0")
        .display_name("en", "Send an HTTP request")
        .display_name("fr", "Envoyer une requête HTTP")
        .description("Sends one HTTP request; a status outside expected_status fails the action; a JSON object body becomes the outputs.")
        .parameters(http::SCHEMA),
    mapper DefaultMapper = Entry::new("default", "1.0.0")
        .display_name("en", "Default action mapper")
        .description("Maps an action type to the handler entry its `handler` names, else to <driver>.<handler> for the configured drivers."),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_sleep_duration_is_refused_naming_it_not_panicking() {
        for duration in [1e300, 604_800.5, -1.0, f64::NAN] {
            let e = Sleep { duration }
                .execute(&Context::detached())
                .expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::INVALID_INPUT, "{duration}");
            assert!(e.message().contains("duration"), "{}", e.message());
        }
    }
}
