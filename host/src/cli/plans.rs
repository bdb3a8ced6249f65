//! `sextant action-plan list | show | graph` and `sextant action list | show`.

use super::output::{Format, Table, print_structured};
use super::{CliError, CliResult, Env};
use crate::store::StoreError;
use crate::store::plans::ActionRow;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ActionPlanCommand {
    /// Every action plan, or those of one audit.
    List {
        #[arg(long)]
        audit: Option<String>,
        #[command(flatten)]
        page: super::lists::PageArgs,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One plan with its actions (uuid or a unique uuid prefix).
    Show {
        plan: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Creates a RECOMMENDED plan from a file of actions with parents by
    /// name (Watcher's applier vectors); prints its uuid.
    Import {
        file: std::path::PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Starts a plan: with --wait, runs it here until it ends; else queues it
    /// (PENDING) for `sextant serve`.
    Start {
        plan: String,
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Cancels a plan; a running one is cancelled by its applier, wherever
    /// it runs.
    Cancel { plan: String },
    /// Deletes plans (soft delete, their actions with them): not a queued
    /// or running one (cancel it first).
    Delete { plans: Vec<String> },
    /// Makes a new RECOMMENDED plan of what a FAILED or CANCELLED plan left
    /// undone (its actions that neither succeeded nor were skipped, with
    /// the edges among them); prints its uuid.
    Retry {
        plan: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Resumes interrupted plans (or one), here, until they end.
    Resume {
        plan: Option<String>,
        /// Accepted for symmetry with `start`: resume always waits.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// The plan's DAG, for Graphviz (dot) or Mermaid.
    Graph {
        plan: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// The actions of a plan, in creation order.
    List {
        #[arg(long = "plan")]
        plan: String,
        #[command(flatten)]
        page: super::lists::PageArgs,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One action (uuid, unique uuid prefix, or name with --plan).
    Show {
        action: String,
        /// The plan whose action is named.
        #[arg(long = "plan")]
        plan: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Skips a PENDING action before it runs.
    Skip {
        action: String,
        /// The plan whose action is named.
        #[arg(long = "plan")]
        plan: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Graph output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

fn input_error(e: StoreError) -> CliError {
    super::lifecycle::store_input(e)
}

/// What an action acts on, for labels: `source -> destination` for moves,
/// else its resource name or id.
fn resource(a: &ActionRow) -> String {
    let p = &a.input_parameters;
    if let Some(src) = p["source_node"].as_str() {
        let dst = p["destination_node"].as_str().unwrap_or("?");
        return format!("{src} -> {dst}");
    }
    p["resource_name"]
        .as_str()
        .or_else(|| p["resource_id"].as_str())
        .map(String::from)
        .unwrap_or_default()
}

/// The plan as text for a terminal: one line per action with its parents.
pub fn graph_text(actions: &[ActionRow]) -> String {
    let mut t = Table::new(&["NAME", "ACTION TYPE", "ON", "AFTER"]);
    for a in actions {
        t.row(vec![
            a.name.clone(),
            a.action_type.clone(),
            resource(a),
            parent_names(actions, a),
        ]);
    }
    t.render()
}

/// Renders a plan's DAG.
pub fn graph(actions: &[ActionRow], format: GraphFormat) -> String {
    let index: std::collections::HashMap<&str, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid.as_str(), i))
        .collect();
    let label = |a: &ActionRow| {
        let r = resource(a);
        let text = if r.is_empty() {
            format!("{}: {}", a.name, a.action_type)
        } else {
            format!("{}: {} {}", a.name, a.action_type, r)
        };
        text.replace('"', "'").replace("->", "→")
    };
    let mut out = String::new();
    match format {
        GraphFormat::Dot => {
            out.push_str("digraph action_plan {\n  rankdir=LR;\n  node [shape=box];\n");
            for (i, a) in actions.iter().enumerate() {
                out.push_str(&format!("  a{i} [label=\"{}\\n{}\"];\n", label(a), a.state));
            }
            for (i, a) in actions.iter().enumerate() {
                for p in &a.parents {
                    if let Some(j) = index.get(p.as_str()) {
                        out.push_str(&format!("  a{j} -> a{i};\n"));
                    }
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, a) in actions.iter().enumerate() {
                out.push_str(&format!("  a{i}[\"{}<br/>{}\"]\n", label(a), a.state));
            }
            for (i, a) in actions.iter().enumerate() {
                for p in &a.parents {
                    if let Some(j) = index.get(p.as_str()) {
                        out.push_str(&format!("  a{j} --> a{i}\n"));
                    }
                }
            }
        }
    }
    out
}

fn parent_names(actions: &[ActionRow], a: &ActionRow) -> String {
    a.parents
        .iter()
        .map(|p| {
            actions
                .iter()
                .find(|x| &x.uuid == p)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| p.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How `start` and `resume` run a plan.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The policy (name or file); default: the one the plan was started
    /// with, else the plan's, else `default`. Recorded with the plan.
    #[arg(long)]
    policy: Option<String>,
    /// STRICT, ALWAYS or ANY (default: what the plan was started with,
    /// else the policy's). Recorded with the plan.
    #[arg(long)]
    execution_rule: Option<String>,
    /// Actions running at once, at most (default: what the plan was
    /// started with, else 32).
    #[arg(long)]
    max_workers: Option<usize>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

impl RunArgs {
    fn flags(&self) -> super::apply::RunFlags<'_> {
        super::apply::RunFlags {
            policy: self.policy.as_deref(),
            execution_rule: self.execution_rule.as_deref(),
            max_workers: self.max_workers,
            quiet: false,
            stop: None,
        }
    }
}

pub fn action_plan(env: &Env, cmd: ActionPlanCommand) -> CliResult {
    use super::apply::{cancel, import, resume, start};
    let cmd = match cmd {
        ActionPlanCommand::Import { file, format } => return import(env, &file, format),
        ActionPlanCommand::Start { plan, wait, run } => {
            return start(env, &plan, wait, &run.flags(), run.format);
        }
        ActionPlanCommand::Cancel { plan } => return cancel(env, &plan),
        ActionPlanCommand::Delete { plans } => return super::lifecycle::delete_plans(env, &plans),
        ActionPlanCommand::Retry { plan, format } => {
            return super::lifecycle::retry_plan(env, &plan, format);
        }
        ActionPlanCommand::Resume { plan, wait: _, run } => {
            return resume(env, plan.as_deref(), &run.flags(), run.format);
        }
        other => other,
    };
    let (store, _plugins, _) = env.open_store_synced()?;
    match cmd {
        ActionPlanCommand::List {
            audit,
            page,
            format,
        } => {
            let plans = store.plans(audit.as_deref()).map_err(input_error)?;
            let plans = super::lists::page(plans, super::lists::PLAN_KEYS, &page)?;
            if !print_structured(format, &plans)? {
                let mut t =
                    Table::new(&["UUID", "AUDIT", "STATE", "PLANNER", "ACTIONS", "UPDATED AT"]);
                for p in &plans {
                    t.row(vec![
                        p.uuid.clone(),
                        p.audit_uuid.clone().unwrap_or_else(|| "-".into()),
                        p.state.clone(),
                        p.planner.clone().unwrap_or_else(|| "-".into()),
                        p.actions.to_string(),
                        p.updated_at.clone().unwrap_or_else(|| p.created_at.clone()),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        ActionPlanCommand::Show { plan, format } => {
            let p = store.plan(&plan).map_err(input_error)?;
            let actions = store.actions(&p.uuid)?;
            let doc = json!({"action_plan": p, "actions": actions});
            if !print_structured(format, &doc)? {
                println!("action plan {} ({})", p.uuid, p.state);
                if let Some(a) = &p.audit_uuid {
                    println!("  audit:    {a}");
                }
                if let Some(s) = &p.strategy_name {
                    println!("  strategy: {s}");
                }
                if let Some(pl) = &p.planner {
                    println!("  planner:  {pl}");
                }
                for ind in &p.efficacy_indicators {
                    println!("  {}: {}", ind["name"].as_str().unwrap_or(""), ind["value"]);
                }
                for g in p.global_efficacy.as_array().into_iter().flatten() {
                    println!(
                        "  global efficacy {}: {}{}",
                        g["name"].as_str().unwrap_or(""),
                        g["value"],
                        g["unit"].as_str().unwrap_or("")
                    );
                }
                let mut t = Table::new(&[
                    "UUID",
                    "NAME",
                    "ACTION TYPE",
                    "RESOURCE",
                    "STATE",
                    "PARENTS",
                    "MESSAGE",
                ]);
                for a in &actions {
                    t.row(vec![
                        a.uuid.clone(),
                        a.name.clone(),
                        a.action_type.clone(),
                        resource(a),
                        a.state.clone(),
                        parent_names(&actions, a),
                        a.status_message.clone().unwrap_or_default(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        ActionPlanCommand::Graph { plan, format } => {
            let p = store.plan(&plan).map_err(input_error)?;
            print!("{}", graph(&store.actions(&p.uuid)?, format));
        }
        _ => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn action(env: &Env, cmd: ActionCommand) -> CliResult {
    if let ActionCommand::Skip {
        action,
        plan,
        reason,
    } = &cmd
    {
        return super::apply::skip(env, action, plan.as_deref(), reason.as_deref());
    }
    let (store, _plugins, _) = env.open_store_synced()?;
    match cmd {
        ActionCommand::List { plan, page, format } => {
            let all = store.actions(&plan).map_err(input_error)?;
            let actions = super::lists::page(all.clone(), super::lists::ACTION_KEYS, &page)?;
            if !print_structured(format, &actions)? {
                let mut t =
                    Table::new(&["UUID", "NAME", "ACTION TYPE", "STATE", "PARENTS", "MESSAGE"]);
                for a in &actions {
                    t.row(vec![
                        a.uuid.clone(),
                        a.name.clone(),
                        a.action_type.clone(),
                        a.state.clone(),
                        parent_names(&all, a),
                        a.status_message.clone().unwrap_or_default(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        ActionCommand::Show {
            action,
            plan,
            format,
        } => {
            let uuid = store
                .resolve_action(&action, plan.as_deref())
                .map_err(input_error)?;
            let a = store.action(&uuid).map_err(input_error)?;
            let mut v = serde_json::to_value(&a)?;
            v["description"] = json!(store.action_description(&a.action_type)?);
            if !print_structured(format, &v)? {
                println!("{}", serde_yaml_ng::to_string(&v)?);
            }
        }
        ActionCommand::Skip { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(uuid: &str, name: &str, parents: &[&str]) -> ActionRow {
        ActionRow {
            uuid: uuid.into(),
            name: name.into(),
            action_plan_uuid: "p".into(),
            action_type: "migrate".into(),
            action_type_version: "1.0.0".into(),
            input_parameters: json!({"resource_id": "vm-1"}),
            state: "PENDING".into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            outputs: None,
            status_message: None,
            created_at: "t".into(),
            updated_at: None,
        }
    }

    #[test]
    fn graphs_label_type_and_resource() {
        let a = vec![action("u1", "m1", &[]), action("u2", "m2", &["u1"])];
        let dot = graph(&a, GraphFormat::Dot);
        assert!(
            dot.contains("a0 [label=\"m1: migrate vm-1\\nPENDING\"]"),
            "{dot}"
        );
        assert!(dot.contains("a0 -> a1;"), "{dot}");
        let mut moved = action("u3", "m3", &[]);
        moved.input_parameters = json!({"source_node": "h1", "destination_node": "h2"});
        assert!(graph(&[moved], GraphFormat::Dot).contains("m3: migrate h1 → h2"));
        let mm = graph(&a, GraphFormat::Mermaid);
        assert!(mm.starts_with("flowchart LR"), "{mm}");
        assert!(mm.contains("a0 --> a1"), "{mm}");
    }
}
