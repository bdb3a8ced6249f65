//! `sextant policy list | show | validate`: the scheduling and
//! error-recovery policies, checked against the installed action types and
//! planners as `audit create --policy` checks them.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::policy::Vocabulary;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The named policies of the policy directories (SEXTANT_POLICY_PATH,
    /// then the installation's), each checked.
    List {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One policy (a name or a file) as it is used: every key, with the
    /// defaults filled in.
    Show {
        /// A policy name (looked up in the policy directories) or a file.
        policy: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Checks a policy file: syntax, keys, values, and that every action
    /// type, parameter and planner it names exists (exit status 2 if not).
    Validate {
        /// The policy file.
        file: PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn vocabulary(env: &Env) -> Result<Vocabulary, CliError> {
    let plugins = env.registry()?;
    Ok(Vocabulary::of(&env.action_types(), &plugins))
}

pub fn run(env: &Env, cmd: PolicyCommand) -> CliResult {
    let vocab = vocabulary(env)?;
    match cmd {
        PolicyCommand::List { format } => {
            let list = crate::ops::policies::list(&vocab, true);
            if !print_structured(format, &list)? {
                let mut t = Table::new(&["NAME", "PLANNER", "FILE", "DESCRIPTION"]);
                for p in &list {
                    let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                    let description = match p["error"].as_str() {
                        Some(e) => format!("INVALID: {e}"),
                        None => text("description"),
                    };
                    t.row(vec![
                        text("name"),
                        p["planner"].as_str().unwrap_or("-").to_string(),
                        text("file"),
                        description,
                    ]);
                }
                out!("{}", t.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show { policy, format } => {
            let p = crate::policy::load_checked(&policy, &vocab).map_err(CliError::input)?;
            let format = if format == Format::Table {
                Format::Yaml
            } else {
                format
            };
            print_structured(format, &p)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Validate { file, format } => {
            match crate::policy::check_file(&file, &vocab) {
                Ok(p) => {
                    let doc = json!({"file": file, "valid": true, "policy": p.name, "planner": p.planner});
                    if !print_structured(format, &doc)? {
                        outln!(
                            "{}: valid: policy {} (planner {})",
                            file.display(),
                            p.name,
                            p.planner
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let doc = json!({"file": file, "valid": false, "errors": [crate::ops::policies::error_json(&e)]});
                    if !print_structured(format, &doc)? {
                        eprintln!("{e}");
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
