//! `sextant sync`, `sextant goal list | show`, `sextant strategy list | show`:
//! the goals and strategies the strategy plugins declare, as synchronised
//! into the store.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env, user_lang};
use crate::store::{GoalRow, StoreError, StrategyRow};
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum GoalCommand {
    /// Every goal.
    List {
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One goal, by name or uuid, with its efficacy specification.
    Show {
        /// The goal's name or uuid.
        goal: String,
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum StrategyCommand {
    /// Every strategy, or those of one goal.
    List {
        /// A goal's name or uuid.
        #[arg(long)]
        goal: Option<String>,
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One strategy, by name or uuid, with its parameter schema.
    Show {
        /// The strategy's name or uuid.
        strategy: String,
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn translated(names: &Value, fallback: &str, lang: &str) -> String {
    crate::ops::display_name(names, fallback, lang)
}

fn not_found(e: StoreError) -> CliError {
    match e {
        e @ StoreError::NotFound { .. } => CliError::input(e),
        e => e.into(),
    }
}

fn goal_json(g: &GoalRow, lang: &str) -> Value {
    let mut v = json!(g);
    v["display_name"] = json!(translated(&g.display_names, &g.display_name, lang));
    v
}

fn strategy_json(s: &StrategyRow, lang: &str) -> Value {
    let mut v = json!(s);
    v["display_name"] = json!(translated(&s.display_names, &s.display_name, lang));
    v
}

pub fn sync(env: &Env, format: Format) -> CliResult {
    let (_store, _plugins, report) = env.open_store_synced()?;
    if !print_structured(format, &report)? {
        if report.is_empty() {
            outln!("goals and strategies are in sync with the plugins");
        } else {
            let line = |what: &str, v: &[String]| {
                if !v.is_empty() {
                    outln!("{what}: {}", v.join(", "));
                }
            };
            line("goals created", &report.goals_created);
            line("goals deleted", &report.goals_deleted);
            line("strategies created", &report.strategies_created);
            line("strategies deleted", &report.strategies_deleted);
            line(
                "audit templates whose goal vanished",
                &report.templates_without_goal,
            );
            line(
                "audit templates that lost their strategy",
                &report.templates_strategy_removed,
            );
            line("audits cancelled", &report.audits_cancelled);
            line("action plans cancelled", &report.plans_cancelled);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn goal(env: &Env, cmd: GoalCommand) -> CliResult {
    let (store, _plugins, _) = env.open_store_synced()?;
    match cmd {
        GoalCommand::List { lang, format } => {
            let lang = user_lang(lang);
            let goals: Vec<Value> = store.goals()?.iter().map(|g| goal_json(g, &lang)).collect();
            if !print_structured(format, &goals)? {
                let mut t = Table::new(&["UUID", "NAME", "DISPLAY NAME"]);
                for g in &goals {
                    let s = |k: &str| g[k].as_str().unwrap_or("").to_string();
                    t.row(vec![s("uuid"), s("name"), s("display_name")]);
                }
                out!("{}", t.render());
            }
        }
        GoalCommand::Show { goal, lang, format } => {
            let lang = user_lang(lang);
            let g = store.goal(&goal).map_err(not_found)?;
            let v = goal_json(&g, &lang);
            if !print_structured(format, &v)? {
                outln!("{} ({})", g.name, v["display_name"].as_str().unwrap_or(""));
                outln!("  uuid: {}", g.uuid);
                outln!("  efficacy specification:");
                for line in serde_json::to_string_pretty(&g.efficacy_specification)?.lines() {
                    outln!("    {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn strategy(env: &Env, cmd: StrategyCommand) -> CliResult {
    let (store, _plugins, _) = env.open_store_synced()?;
    match cmd {
        StrategyCommand::List { goal, lang, format } => {
            let lang = user_lang(lang);
            let list = store.strategies(goal.as_deref()).map_err(not_found)?;
            let items: Vec<Value> = list.iter().map(|s| strategy_json(s, &lang)).collect();
            if !print_structured(format, &items)? {
                let mut t = Table::new(&["UUID", "NAME", "DISPLAY NAME", "GOAL"]);
                for s in &items {
                    let f = |k: &str| s[k].as_str().unwrap_or("").to_string();
                    t.row(vec![
                        f("uuid"),
                        f("name"),
                        f("display_name"),
                        f("goal_name"),
                    ]);
                }
                out!("{}", t.render());
            }
        }
        StrategyCommand::Show {
            strategy,
            lang,
            format,
        } => {
            let lang = user_lang(lang);
            let s = store.strategy(&strategy).map_err(not_found)?;
            let v = strategy_json(&s, &lang);
            if !print_structured(format, &v)? {
                outln!("{} ({})", s.name, v["display_name"].as_str().unwrap_or(""));
                outln!("  uuid:    {}", s.uuid);
                outln!("  goal:    {}", s.goal_name);
                outln!("  version: {}", s.version);
                outln!("  plugin:  {}", s.plugin_file);
                outln!("  parameters:");
                for line in serde_json::to_string_pretty(&s.parameters_spec)?.lines() {
                    outln!("    {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
