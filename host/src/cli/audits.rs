//! `sextant audit-template …` and `sextant audit …`, with Watcher's fields
//! and checks (reference sections 7.2 and 8).

use super::action_types::parse_params;
use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::decide::{AuditContext, AuditRequest, DecideError, run_audit, trigger_audit};
use crate::states::AuditState;
use crate::states::AuditType;
use crate::store::StoreError;
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Creates an audit template: NAME GOAL.
    Create {
        /// The template's name (unique).
        name: String,
        /// The goal its audits pursue: a name or uuid.
        goal: String,
        /// The strategy its audits use: a name or uuid (default: the
        /// goal's first).
        #[arg(short, long)]
        strategy: Option<String>,
        /// What the template is for.
        #[arg(short, long, default_value = "")]
        description: String,
        /// The audit scope, a YAML or JSON file.
        #[arg(long)]
        scope: Option<PathBuf>,
        /// A default parameter, KEY=VALUE (repeatable); needs a strategy.
        #[arg(short = 'p', long = "default-parameter", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// The scheduling policy (name or file) of the audits made from it
        /// that give none.
        #[arg(long)]
        policy: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Every audit template (those whose goal vanished are flagged).
    List {
        /// Only the templates of this goal (name or uuid).
        #[arg(long)]
        goal: Option<String>,
        /// Only the templates of this strategy (name or uuid).
        #[arg(long)]
        strategy: Option<String>,
        #[command(flatten)]
        page: super::lists::PageArgs,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Changes a template's name, description or policy.
    Update {
        /// The template's uuid, unique uuid prefix or name.
        template: String,
        /// Its new name.
        #[arg(long)]
        name: Option<String>,
        /// Its new description.
        #[arg(short, long)]
        description: Option<String>,
        /// The scheduling policy (name or file) of the audits made from it.
        #[arg(long, conflicts_with = "no_policy")]
        policy: Option<String>,
        /// Removes its policy.
        #[arg(long)]
        no_policy: bool,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One template, by name or uuid.
    Show {
        /// The template's name or uuid.
        template: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Deletes templates (soft delete).
    Delete {
        /// Templates' names or uuids.
        #[arg(required = true)]
        templates: Vec<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Creates an audit; a ONESHOT audit runs at once, in this process.
    Create {
        /// ONESHOT, CONTINUOUS or EVENT.
        #[arg(short = 't', long = "type", default_value = "ONESHOT")]
        audit_type: String,
        /// The goal to pursue: a name or uuid (or the template's).
        #[arg(short, long)]
        goal: Option<String>,
        /// The strategy: a name or uuid (default: the goal's first, or the
        /// template's).
        #[arg(short, long)]
        strategy: Option<String>,
        /// An audit template (name or uuid) giving goal, strategy, scope
        /// and parameters.
        #[arg(short = 'a', long = "audit-template")]
        template: Option<String>,
        /// A parameter, KEY=VALUE (VALUE read as YAML); repeatable.
        #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// CONTINUOUS: seconds, or a cron expression.
        #[arg(short, long)]
        interval: Option<String>,
        /// The audit's name (default: generated from the goal).
        #[arg(long)]
        name: Option<String>,
        /// CONTINUOUS: when to start running it (RFC 3339 time).
        #[arg(long)]
        start_time: Option<String>,
        /// CONTINUOUS: when to stop running it (RFC 3339 time).
        #[arg(long)]
        end_time: Option<String>,
        /// Audit even when an action plan is ONGOING.
        #[arg(long)]
        force: bool,
        /// Queue each plan it makes for `sextant serve` to apply, one at a time.
        #[arg(long)]
        auto_trigger: bool,
        /// The scheduling policy of its plans (name or file).
        #[arg(long)]
        policy: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Every audit.
    List {
        /// Only the audits of this goal (name or uuid).
        #[arg(long)]
        goal: Option<String>,
        /// Only the audits of this strategy (name or uuid).
        #[arg(long)]
        strategy: Option<String>,
        #[command(flatten)]
        page: super::lists::PageArgs,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Suspends (--state SUSPENDED) or resumes (--state ONGOING) an audit,
    /// cancels it (--state CANCELLED), or changes a CONTINUOUS audit's
    /// interval.
    Update {
        /// The audit's uuid, unique uuid prefix or name.
        audit: String,
        /// SUSPENDED, ONGOING or CANCELLED.
        #[arg(long)]
        state: Option<String>,
        /// CONTINUOUS: seconds, or a cron expression.
        #[arg(short, long)]
        interval: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One audit, by name or uuid.
    Show {
        /// The audit's name or uuid.
        audit: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Runs an EVENT audit now (it must be PENDING or SUCCEEDED).
    Trigger {
        /// The audit's name or uuid.
        audit: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Cancels a PENDING or ONGOING audit.
    Cancel {
        /// The audit's name or uuid.
        audit: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Deletes finished audits (soft delete).
    Delete {
        /// Audits' names or uuids.
        #[arg(required = true)]
        audits: Vec<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn input_error(e: StoreError) -> CliError {
    super::lifecycle::store_input(e)
}

fn decide_error(e: DecideError) -> CliError {
    match e {
        DecideError::Invalid(m) => CliError::input(anyhow::anyhow!(m)),
        DecideError::Store(e) => input_error(e),
    }
}

fn matches(filter: &Option<String>, uuid: Option<&str>, name: Option<&str>) -> bool {
    filter
        .as_deref()
        .is_none_or(|f| Some(f) == uuid || Some(f) == name)
}

pub fn template(env: &Env, cmd: TemplateCommand) -> CliResult {
    if let TemplateCommand::Update {
        template,
        name,
        description,
        policy,
        no_policy,
        format,
    } = &cmd
    {
        return super::lifecycle::update_template(
            env,
            template,
            name.as_deref(),
            description.as_deref(),
            policy.as_deref(),
            *no_policy,
            *format,
        );
    }
    let (mut store, plugins, _) = env.open_store_synced()?;
    match cmd {
        TemplateCommand::Create {
            name,
            goal,
            strategy,
            description,
            scope,
            params,
            policy,
            format,
        } => {
            let given = parse_params(&params, None)?;
            let scope = match &scope {
                None => json!([]),
                Some(f) => {
                    let v: Value = crate::input::read_yaml(
                        f,
                        crate::input::MAX_DEFINITION_BYTES,
                        "an audit scope",
                    )
                    .map_err(CliError::input)?;
                    crate::decide::scope::check(&v)
                        .map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", f.display())))?;
                    v
                }
            };
            let types = std::cell::OnceCell::new();
            let vocab = || {
                crate::policy::Vocabulary::of(types.get_or_init(|| env.action_types()), &plugins)
            };
            let t = crate::ops::templates::create(
                &mut store,
                &crate::ops::templates::TemplateRequest {
                    name: &name,
                    goal: &goal,
                    strategy: strategy.as_deref(),
                    description: &description,
                    scope,
                    default_parameters: given,
                    policy: policy.as_deref(),
                },
                &vocab,
            )
            .map_err(super::op_error)?;
            if !print_structured(format, &t)? {
                outln!("created audit template {} ({})", t.name, t.uuid);
            }
        }
        TemplateCommand::List {
            goal,
            strategy,
            page,
            format,
        } => {
            let list: Vec<_> = store
                .templates()?
                .into_iter()
                .filter(|t| matches(&goal, Some(&t.goal_uuid), Some(&t.goal_name)))
                .filter(|t| {
                    matches(
                        &strategy,
                        t.strategy_uuid.as_deref(),
                        t.strategy_name.as_deref(),
                    )
                })
                .collect();
            let list = super::lists::page(list, super::lists::TEMPLATE_KEYS, &page)?;
            if !print_structured(format, &list)? {
                let mut table = Table::new(&["UUID", "NAME", "GOAL", "STRATEGY"]);
                for t in &list {
                    let goal = if t.goal_vanished {
                        format!("{} (GOAL VANISHED)", t.goal_name)
                    } else {
                        t.goal_name.clone()
                    };
                    table.row(vec![
                        t.uuid.clone(),
                        t.name.clone(),
                        goal,
                        t.strategy_name.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                out!("{}", table.render());
            }
        }
        TemplateCommand::Show { template, format } => {
            let t = store.template(&template).map_err(input_error)?;
            if !print_structured(format, &t)? {
                outln!("{}", serde_yaml_ng::to_string(&t)?);
            }
        }
        TemplateCommand::Update { .. } => unreachable!("handled above"),
        TemplateCommand::Delete { templates, format } => {
            let deleted =
                crate::ops::templates::delete(&mut store, &templates).map_err(super::op_error)?;
            if !print_structured(format, &deleted)? {
                for t in &deleted {
                    outln!("deleted audit template {} ({})", t.name, t.uuid);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(env: &Env, cmd: AuditCommand) -> CliResult {
    if let AuditCommand::Update {
        audit,
        state,
        interval,
        format,
    } = &cmd
    {
        return super::lifecycle::update_audit(
            env,
            audit,
            state.as_deref(),
            interval.as_deref(),
            *format,
        );
    }
    let types = env.action_types();
    let (mut store, plugins, _) = env.open_store_synced_with(&types)?;
    match cmd {
        AuditCommand::Create {
            audit_type,
            goal,
            strategy,
            template,
            params,
            interval,
            name,
            start_time,
            end_time,
            force,
            auto_trigger,
            policy,
            format,
        } => {
            let req = AuditRequest {
                audit_type,
                goal,
                strategy,
                template,
                parameters: parse_params(&params, None)?,
                interval,
                name,
                start_time,
                end_time,
                force,
                auto_trigger,
                policy,
            };
            let vocab = || crate::policy::Vocabulary::of(&types, &plugins);
            let a =
                crate::ops::audits::create(&mut store, &req, &vocab).map_err(super::op_error)?;
            let a = if a.audit_type == AuditType::Oneshot {
                let ctx = AuditContext {
                    plugins: &plugins,
                    types: &types,
                    model: env.model_source(),
                };
                run_audit(&mut store, &ctx, &a.uuid).map_err(decide_error)?
            } else {
                a
            };
            if !print_structured(format, &a)? {
                outln!("audit {} ({}): {}", a.name, a.uuid, a.state);
                if let Some(m) = &a.status_message {
                    outln!("  {m}");
                }
                if let Some(p) = &a.action_plan {
                    outln!("  action plan: {p}");
                }
            }
            if a.state == AuditState::Failed {
                return Ok(ExitCode::from(1));
            }
        }
        AuditCommand::List {
            goal,
            strategy,
            page,
            format,
        } => {
            let list: Vec<_> = store
                .audits()?
                .into_iter()
                .filter(|a| matches(&goal, Some(&a.goal_uuid), Some(&a.goal_name)))
                .filter(|a| {
                    matches(
                        &strategy,
                        a.strategy_uuid.as_deref(),
                        a.strategy_name.as_deref(),
                    )
                })
                .collect();
            let list = super::lists::page(list, super::lists::AUDIT_KEYS, &page)?;
            if !print_structured(format, &list)? {
                let mut t = Table::new(&[
                    "UUID",
                    "NAME",
                    "AUDIT TYPE",
                    "STATE",
                    "GOAL",
                    "STRATEGY",
                    "AUTO TRIGGER",
                ]);
                for a in &list {
                    t.row(vec![
                        a.uuid.clone(),
                        a.name.clone(),
                        a.audit_type.to_string(),
                        a.state.to_string(),
                        a.goal_name.clone(),
                        a.strategy_name.clone().unwrap_or_else(|| "-".into()),
                        a.auto_trigger.to_string(),
                    ]);
                }
                out!("{}", t.render());
            }
        }
        AuditCommand::Show { audit, format } => {
            let a = store.audit(&audit).map_err(input_error)?;
            if !print_structured(format, &a)? {
                outln!("{}", serde_yaml_ng::to_string(&a)?);
            }
        }
        AuditCommand::Trigger { audit, format } => {
            let ctx = AuditContext {
                plugins: &plugins,
                types: &types,
                model: env.model_source(),
            };
            let host = super::services::host_id(env, None)?;
            let a = trigger_audit(&mut store, &ctx, &audit, &host).map_err(decide_error)?;
            if !print_structured(format, &a)? {
                outln!("audit {} ({}): {}", a.name, a.uuid, a.state);
            }
            if a.state == AuditState::Failed {
                return Ok(ExitCode::from(1));
            }
        }
        AuditCommand::Cancel { audit, format } => {
            let a = crate::ops::audits::cancel(&mut store, &audit).map_err(super::op_error)?;
            if !print_structured(format, &a)? {
                outln!("audit {} ({}): {}", a.name, a.uuid, a.state);
            }
        }
        AuditCommand::Update { .. } => unreachable!("handled above"),
        AuditCommand::Delete { audits, format } => {
            // Every audit is checked before any is deleted.
            let deleted =
                crate::ops::audits::delete(&mut store, &audits).map_err(super::op_error)?;
            if format == Format::Table {
                for a in &deleted {
                    outln!("deleted audit {} ({})", a.name, a.uuid);
                }
            }
            print_structured(format, &deleted)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
