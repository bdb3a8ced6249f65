//! `sextant action-type list | show | validate | register | unregister | run`.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env, user_lang};
use crate::action_types::dsl::DefinitionErrors;
use crate::action_types::registry::{self, Registered};
use crate::action_types::{
    ActionFactory, ActionType, ActionTypeRegistry, HandlerMapper, NewAction, template,
};
use crate::plugins::PluginRegistry;
use clap::Subcommand;
use serde_json::{Value, json};
use sextant_plugin_api::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ActionTypeCommand {
    /// Every registered action type, with the handler it maps to (types that
    /// map to no loaded handler are flagged).
    List {
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One action type: NAME (latest version) or NAME@VERSION.
    Show {
        /// NAME (the latest version) or NAME@VERSION.
        reference: String,
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Checks a definition file (exit 2 with file, line and column when not valid).
    Validate {
        /// The definition, a YAML file.
        file: PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Validates a definition and registers it (written atomically into the
    /// data directory).
    Register {
        /// The definition, a YAML file.
        file: PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Removes a registered type.
    Unregister {
        /// NAME (the latest version) or NAME@VERSION.
        reference: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Instantiates one action and runs it through its handler:
    /// pre_condition, execute, post_condition.
    Run {
        /// NAME (the latest version) or NAME@VERSION.
        reference: String,
        /// A parameter, KEY=VALUE (VALUE read as a YAML scalar); repeatable.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// All parameters as one JSON object.
        #[arg(long, value_name = "JSON")]
        params_json: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(env: &Env, cmd: ActionTypeCommand) -> CliResult {
    match cmd {
        ActionTypeCommand::List { lang, format } => list(env, &user_lang(lang), format),
        ActionTypeCommand::Show {
            reference,
            lang,
            format,
        } => show(env, &reference, &user_lang(lang), format),
        ActionTypeCommand::Validate { file, format } => validate(env, &file, format),
        ActionTypeCommand::Register { file, format } => register(env, &file, format),
        ActionTypeCommand::Unregister { reference, format } => unregister(env, &reference, format),
        ActionTypeCommand::Run {
            reference,
            params,
            params_json,
            format,
        } => run_action(env, &reference, &params, params_json.as_deref(), format),
    }
}

fn mapper<'p>(env: &Env, plugins: &'p PluginRegistry) -> HandlerMapper<'p> {
    HandlerMapper::new(plugins, &env.config.mapper, &env.config.drivers)
}

fn type_json(t: &ActionType, lang: &str, m: &HandlerMapper<'_>) -> Value {
    crate::ops::action_types::describe(t, lang, m)
}

fn list(env: &Env, lang: &str, format: Format) -> CliResult {
    let plugins = env.registry()?;
    let types = env.action_types();
    let m = mapper(env, &plugins);
    let items: Vec<Value> = types.all().map(|t| type_json(t, lang, &m)).collect();
    let doc = json!({
        "action_types": items,
        "invalid": types.invalid,
        "shadowed": types.shadowed,
        "refused": types.refused,
    });
    if print_structured(format, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["NAME", "VERSION", "HANDLER", "TARGET", "DISPLAY NAME"]);
    for v in &items {
        let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
        let handler = match v["handler_entry"].as_str() {
            Some(h) if h == v["handler"] => h.to_string(),
            Some(h) => format!("{} -> {h}", s("handler")),
            None => format!("{} (UNMAPPED: no loaded handler)", s("handler")),
        };
        t.row(vec![
            s("name"),
            s("version"),
            handler,
            s("target_resource_type"),
            s("display_name"),
        ]);
    }
    out!("{}", t.render());
    if !types.invalid.is_empty() {
        outln!("\nInvalid definitions (ignored):");
        for e in &types.invalid {
            outln!("  {e}");
        }
    }
    if !types.refused.is_empty() {
        outln!("\nRefused (not read):");
        for r in &types.refused {
            outln!("  {}", r.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(env: &Env, reference: &str, lang: &str, format: Format) -> CliResult {
    let plugins = env.registry()?;
    let types = env.action_types();
    let t = types.resolve(reference).map_err(CliError::input)?;
    let m = mapper(env, &plugins);
    let v = type_json(t, lang, &m);
    if print_structured(format, &v)? {
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} {}", t.name, t.version);
    outln!("  display name:  {}", t.display_name_in(lang));
    if !t.description.is_empty() {
        outln!("  description:   {}", t.description);
    }
    if let Some(r) = &t.target_resource_type {
        outln!("  target:        {r}");
    }
    match v["handler_entry"].as_str() {
        Some(h) => outln!("  handler:       {} -> {h}", t.handler),
        None => outln!(
            "  handler:       {} (UNMAPPED: {})",
            t.handler,
            v["mapping_error"].as_str().unwrap_or("")
        ),
    }
    outln!(
        "  flags:         idempotent={} revertible={} abortable={}",
        t.idempotent,
        t.revertible,
        t.abortable
    );
    outln!(
        "  est. duration: {}",
        humantime::format_duration(t.estimated_duration)
    );
    outln!("  source:        {}", t.source.display());
    if let Some(w) = &t.with {
        outln!("  with:");
        for line in serde_json::to_string_pretty(w)?.lines() {
            outln!("    {line}");
        }
    }
    outln!("  parameters:");
    for line in serde_json::to_string_pretty(&t.parameters)?.lines() {
        outln!("    {line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_errors(format: Format, file: &Path, errs: &DefinitionErrors) -> anyhow::Result<()> {
    let doc = json!({"file": file, "valid": false, "errors": errs.0});
    if !print_structured(format, &doc)? {
        for e in &errs.0 {
            eprintln!("{e}");
        }
    }
    Ok(())
}

fn validate(env: &Env, file: &Path, format: Format) -> CliResult {
    let plugins = env.registry()?;
    let m = mapper(env, &plugins);
    let result = ActionType::from_file(file).and_then(|t| {
        let entry = crate::ops::action_types::check_handler(&t, &plugins, &m)?;
        Ok((t, entry))
    });
    match result {
        Ok((t, entry)) => {
            let doc =
                json!({"file": file, "valid": true, "action_type": t.id(), "handler_entry": entry});
            if !print_structured(format, &doc)? {
                outln!("{}: valid: {} (handler {entry})", file.display(), t.id());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            print_errors(format, file, &errs)?;
            Ok(ExitCode::from(2))
        }
    }
}

fn register(env: &Env, file: &Path, format: Format) -> CliResult {
    let plugins = env.registry()?;
    let m = mapper(env, &plugins);
    let dirs = env.action_type_dirs();
    let types = ActionTypeRegistry::load(&dirs);
    let outcome = registry::register(&dirs, &types, file, |t| {
        crate::ops::action_types::check_handler(t, &plugins, &m).map(|_| ())
    });
    match outcome {
        Ok(r) => {
            let (path, new) = match &r {
                Registered::New(p) => (p, true),
                Registered::Unchanged(p) => (p, false),
            };
            let doc = json!({"file": file, "registered": path, "changed": new});
            if !print_structured(format, &doc)? {
                if new {
                    outln!("registered {} as {}", file.display(), path.display());
                } else {
                    outln!("already registered, unchanged: {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(registry::RegisterError::Invalid(errs)) => {
            print_errors(format, file, &errs)?;
            Ok(ExitCode::from(2))
        }
        Err(e @ registry::RegisterError::Io { .. }) => Err(e.into()),
        Err(e) => Err(CliError::input(e)),
    }
}

fn unregister(env: &Env, reference: &str, format: Format) -> CliResult {
    let dirs = env.action_type_dirs();
    let types = ActionTypeRegistry::load(&dirs);
    match registry::unregister(&dirs, &types, reference) {
        Ok(p) => {
            if !print_structured(format, &json!({"unregistered": reference, "removed": p}))? {
                outln!("unregistered {reference} ({} removed)", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ registry::RegisterError::Io { .. }) => Err(e.into()),
        Err(e) => Err(CliError::input(e)),
    }
}

/// Parses `KEY=VALUE` flags; VALUE is read as a YAML scalar (`3` is a
/// number, `true` a boolean, anything else a string).
pub fn parse_params(flags: &[String], json_text: Option<&str>) -> Result<Value, CliError> {
    let mut map = match json_text {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(CliError::input(anyhow::anyhow!(
                    "--params-json must be a JSON object"
                )));
            }
            Err(e) => return Err(CliError::input(anyhow::anyhow!("--params-json: {e}"))),
        },
    };
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(CliError::input(anyhow::anyhow!(
                "-p {f:?}: expected KEY=VALUE"
            )));
        };
        let value = if v.is_empty() {
            Value::String(String::new())
        } else {
            serde_yaml_ng::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()))
        };
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

fn run_action(
    env: &Env,
    reference: &str,
    flags: &[String],
    json_text: Option<&str>,
    format: Format,
) -> CliResult {
    let params = parse_params(flags, json_text)?;
    let plugins = env.registry()?;
    let types = env.action_types();
    let action = ActionFactory::new(&types)
        .instantiate(&NewAction::new(reference, params))
        .map_err(CliError::input)?;
    let t = types
        .get(
            &action.action_type,
            semver::Version::parse(&action.action_type_version)
                .ok()
                .as_ref(),
        )
        .map_err(CliError::input)?;
    let entry = mapper(env, &plugins)
        .handler_for(t)
        .map_err(CliError::input)?;
    let handler_params = match &t.with {
        Some(with) => template::render(with, &action.input_parameters, &json!({}))
            .map_err(|e| CliError::input(anyhow::anyhow!("action type {}: {e}", t.id())))?,
        None => action.input_parameters.clone(),
    };
    let context = json!({
        "action_type": t.name,
        "action_type_version": t.version.to_string(),
        "name": "cli",
        "estimated_duration_seconds": t.estimated_duration.as_secs_f64(),
        "config": env.driver_config(),
    });
    let outcome = (|| {
        let h = plugins.handler(&entry, &handler_params, &context)?;
        if let Err(e) = h.pre_condition() {
            if e.kind() == Some(ErrorKind::SKIPPED) {
                return Ok(("SKIPPED", Value::Null, e.to_string()));
            }
            return Ok(("FAILED", Value::Null, format!("pre_condition: {e}")));
        }
        let outputs = match h.execute() {
            Ok(o) => o,
            Err(e) => return Ok(("FAILED", Value::Null, format!("execute: {e}"))),
        };
        if let Some(v) = t.outputs_validator()
            && let Err(e) = v.validate(&outputs)
        {
            let message = format!("outputs do not match the outputs schema: {e}");
            return Ok(("FAILED", outputs, message));
        }
        match h.post_condition() {
            Err(e) if e.kind() != Some(ErrorKind::UNSUPPORTED) => {
                return Ok(("FAILED", outputs, format!("post_condition: {e}")));
            }
            _ => {}
        }
        Ok::<_, crate::plugins::PluginCallError>(("SUCCEEDED", outputs, String::new()))
    })();
    let (state, outputs, message) = outcome.map_err(|e| CliError::from(anyhow::anyhow!(e)))?;
    let doc = json!({
        "action_type": t.id(),
        "handler": entry,
        "input_parameters": action.input_parameters,
        "state": state,
        "outputs": outputs,
        "status_message": message,
    });
    if !print_structured(format, &doc)? {
        outln!("{} via {entry}: {state}", t.id());
        if !message.is_empty() {
            outln!("  {message}");
        }
        if !outputs.is_null() {
            outln!("  outputs: {}", serde_json::to_string_pretty(&outputs)?);
        }
    }
    Ok(if state == "FAILED" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
