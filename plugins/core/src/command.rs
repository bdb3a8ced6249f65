//! `command`: runs a program with an argv, no shell. Exit 0 is success; a
//! JSON object on stdout becomes the outputs (other text is returned as
//! `{"stdout": …}`); on failure the status message carries stderr.
//!
//! The program runs in a process group of its own ([`crate::process_group`]):
//! a timeout, an abort or a stdout past `max_output` kills the whole group,
//! and what the program leaves running in its group when it exits is killed
//! too.

use crate::params;
use crate::process_group::{self, Ending, Finished};
use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// How much of stderr a failure message carries.
const STDERR_TAIL: usize = 2000;

/// The default `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandHandler {
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default = "yes")]
    inherit_env: bool,
    /// An argv whose exit status 0 confirms the command took effect (used
    /// when an interrupted action is resumed).
    #[serde(default)]
    post_check: Option<Vec<String>>,
    /// The most bytes of stdout kept; beyond it the action fails.
    #[serde(default)]
    max_output: Option<Value>,
}

fn yes() -> bool {
    true
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let s = text.trim();
    if s.len() <= STDERR_TAIL {
        return s.to_string();
    }
    let mut start = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

impl CommandHandler {
    fn timeout(&self) -> Result<Duration, PluginError> {
        params::duration(self.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout")
    }

    fn command(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if !self.inherit_env {
            cmd.env_clear();
        }
        cmd.envs(&self.env);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

impl ActionHandler for CommandHandler {
    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        // Without a check, nothing can confirm what a command did: say so,
        // so that a resumed applier does not take an interrupted run for a
        // success.
        let Some(check) = self.post_check.as_ref().filter(|c| !c.is_empty()) else {
            return Err(PluginError::unsupported(
                "no post_check is configured: whether the command took effect is unknown",
            ));
        };
        let timeout = self.timeout()?;
        let run = process_group::run(&mut self.command(check), timeout, None, ctx.abort_signal())
            .map_err(|e| {
            PluginError::execution_failed(format!("cannot run post_check {:?}: {e}", check[0]))
        })?;
        match run.ending {
            Ending::Exited(status) if status.success() => Ok(()),
            Ending::Exited(status) => Err(PluginError::execution_failed(format!(
                "post_check {:?} exited with {status}",
                check[0]
            ))),
            // Its stdout is discarded, so it cannot overflow.
            Ending::OutputTooLarge | Ending::TimedOut => {
                Err(PluginError::execution_failed(format!(
                    "post_check {:?} timed out after {}s; its process group was killed",
                    check[0],
                    timeout.as_secs_f64()
                )))
            }
            Ending::Aborted => Err(PluginError::aborted(format!(
                "post_check {:?} was killed: aborted",
                check[0]
            ))),
        }
    }

    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(PluginError::invalid_input("argv must name a program"));
        }
        self.timeout()?;
        params::max_output(self.max_output.as_ref())?;
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        self.pre_condition(ctx)?;
        let timeout = self.timeout()?;
        let max_output = params::max_output(self.max_output.as_ref())?;
        let program = &self.argv[0];
        let Finished {
            ending,
            stdout,
            stderr_tail,
            pipes_left_open,
        } = process_group::run(
            &mut self.command(&self.argv),
            timeout,
            Some(max_output),
            ctx.abort_signal(),
        )
        .map_err(|e| PluginError::execution_failed(format!("cannot run {program:?}: {e}")))?;
        if pipes_left_open {
            log_warn(&format!(
                "{program:?}: a process that left its process group still held its output \
                 {}s after the group was killed; the output read until then is used",
                process_group::PIPE_GRACE.as_secs()
            ));
        }
        let stderr = tail(&stderr_tail);
        match ending {
            Ending::Exited(status) if status.success() => {}
            Ending::Exited(status) => {
                return Err(PluginError::execution_failed(format!(
                    "{program:?} exited with {status}; stderr: {stderr}"
                )));
            }
            Ending::Aborted => {
                return Err(PluginError::aborted(format!(
                    "{program:?} was killed: aborted"
                )));
            }
            Ending::TimedOut => {
                return Err(PluginError::execution_failed(format!(
                    "{program:?} timed out after {}s; its process group was killed; stderr: {stderr}",
                    timeout.as_secs_f64()
                )));
            }
            Ending::OutputTooLarge => {
                return Err(PluginError::execution_failed(format!(
                    "{program:?} wrote more than max_output ({max_output} bytes) to stdout; \
                     its process group was killed"
                )));
            }
        }
        let stdout = String::from_utf8_lossy(&stdout);
        Ok(match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "stdout": stdout }),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["argv"],
  "additionalProperties": false,
  "properties": {
    "argv": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "cwd": {"type": "string", "minLength": 1},
    "timeout": {"type": ["number", "string"]},
    "inherit_env": {"type": "boolean", "default": true},
    "post_check": {"type": "array", "items": {"type": "string"}},
    "max_output": {"type": ["integer", "string"]}
  }
}"#;
