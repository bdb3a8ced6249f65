//! `command`: runs a program with an argv, no shell. Exit 0 is success; a
//! JSON object on stdout becomes the outputs (other text is returned as
//! `{"stdout": …}`); on failure the status message carries stderr.

use crate::params;
use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of stderr a failure message carries.
const STDERR_TAIL: usize = 2000;

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
}

fn yes() -> bool {
    true
}

fn tail(s: &str) -> &str {
    let s = s.trim();
    if s.len() <= STDERR_TAIL {
        return s;
    }
    let mut start = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl ActionHandler for CommandHandler {
    fn post_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        // Without a check, nothing can confirm what a command did: say so,
        // so that a resumed applier does not take an interrupted run for a
        // success.
        let Some(check) = self.post_check.as_ref().filter(|c| !c.is_empty()) else {
            return Err(PluginError::unsupported(
                "no post_check is configured: whether the command took effect is unknown",
            ));
        };
        let status = Command::new(&check[0])
            .args(&check[1..])
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| {
                PluginError::execution_failed(format!("cannot run post_check {:?}: {e}", check[0]))
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(PluginError::execution_failed(format!(
                "post_check {:?} exited with {status}",
                check[0]
            )))
        }
    }

    fn pre_condition(&self, _ctx: &Context) -> Result<(), PluginError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(PluginError::invalid_input("argv must name a program"));
        }
        params::duration(self.timeout.as_ref(), Duration::from_secs(300), "timeout")?;
        Ok(())
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        self.pre_condition(ctx)?;
        let timeout = params::duration(self.timeout.as_ref(), Duration::from_secs(300), "timeout")?;
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.inherit_env {
            cmd.env_clear();
        }
        cmd.envs(&self.env);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| {
            PluginError::execution_failed(format!("cannot start {:?}: {e}", self.argv[0]))
        })?;
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if ctx.is_aborted() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            ctx.abort_signal().sleep(Duration::from_millis(5));
        };
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        let Some(status) = status else {
            return Err(if ctx.is_aborted() {
                PluginError::aborted(format!("{:?} was killed: aborted", self.argv[0]))
            } else {
                PluginError::execution_failed(format!(
                    "{:?} timed out after {}s and was killed; stderr: {}",
                    self.argv[0],
                    timeout.as_secs_f64(),
                    tail(&stderr)
                ))
            });
        };
        if !status.success() {
            return Err(PluginError::execution_failed(format!(
                "{:?} exited with {}; stderr: {}",
                self.argv[0],
                status,
                tail(&stderr)
            )));
        }
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
    "post_check": {"type": "array", "items": {"type": "string"}}
  }
}"#;
