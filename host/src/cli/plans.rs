//! `sextant action-plan list | show | graph` and `sextant action list | show`.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::ops::plan_graph::{self, PlanGraph, resource};
use crate::store::StoreError;
use crate::store::plans::ActionRow;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ActionPlanCommand {
    /// Every action plan, or those of one audit.
    List {
        /// Only the plans of this audit (name or uuid).
        #[arg(long)]
        audit: Option<String>,
        #[command(flatten)]
        page: super::lists::PageArgs,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One plan with its actions (uuid or a unique uuid prefix).
    Show {
        /// The plan's uuid or a unique prefix of it.
        plan: String,
        /// Simulates the plan (nothing runs, nothing is stored) and prints
        /// its predicted effect: the problems `start` would find, nodes in
        /// use before and after, each node's use against its capacity, and
        /// what each action changes.
        #[arg(long)]
        predict: bool,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Creates a RECOMMENDED plan from a file of actions with parents by
    /// name (Watcher's applier vectors); prints its uuid. A key the format
    /// does not define is refused; a top-level execution_rule is the plan's
    /// own, applied unless `start --execution-rule` overrides it.
    Import {
        /// The file, YAML or JSON: `actions: [{id, action_type,
        /// input_parameters, parents, initial_state?}]`.
        file: std::path::PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Starts a plan: with --wait, runs it here until it ends; else queues it
    /// (PENDING) for `sextant serve`.
    Start {
        /// The plan's uuid or a unique prefix of it.
        plan: String,
        /// Run it here and return when it ends (else `sextant serve` runs
        /// it).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Cancels a plan; a running one is cancelled by its applier, wherever
    /// it runs.
    Cancel {
        /// The plan's uuid or a unique prefix of it.
        plan: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Deletes plans (soft delete, their actions with them): not a queued
    /// or running one (cancel it first).
    Delete {
        /// The plans' uuids, unique prefixes or names.
        plans: Vec<String>,
        /// Output format: a table for people, json or yaml for scripts (the
        /// deleted plans, as `action-plan list` shows them).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Makes a new RECOMMENDED plan of what a FAILED or CANCELLED plan left
    /// undone (its actions that neither succeeded nor were skipped, with
    /// the edges among them); prints its uuid.
    Retry {
        /// The FAILED or CANCELLED plan's uuid or a unique prefix of it.
        plan: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Resumes interrupted plans (or one), here, until they end. Without a
    /// plan, `--format json|yaml` prints the list of the plans resumed.
    Resume {
        /// The plan's uuid or a unique prefix of it (default: every
        /// interrupted or queued plan).
        plan: Option<String>,
        /// Accepted for symmetry with `start`: resume always waits.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// The plan's DAG, for Graphviz (dot) or Mermaid.
    Graph {
        /// The plan's uuid or a unique prefix of it.
        plan: String,
        /// Graphviz or Mermaid.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// The actions of a plan, in creation order.
    List {
        /// The plan's uuid or a unique prefix of it.
        #[arg(long = "plan")]
        plan: String,
        #[command(flatten)]
        page: super::lists::PageArgs,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One action (uuid, unique uuid prefix, or name with --plan).
    Show {
        /// The action's uuid.
        action: String,
        /// The plan whose action is named.
        #[arg(long = "plan")]
        plan: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Skips a PENDING action before it runs.
    Skip {
        /// The action's uuid.
        action: String,
        /// The plan whose action is named.
        #[arg(long = "plan")]
        plan: Option<String>,
        /// Why, recorded as its status message.
        #[arg(long)]
        reason: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
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

impl From<GraphFormat> for plan_graph::GraphFormat {
    fn from(f: GraphFormat) -> Self {
        match f {
            GraphFormat::Dot => plan_graph::GraphFormat::Dot,
            GraphFormat::Mermaid => plan_graph::GraphFormat::Mermaid,
        }
    }
}

fn input_error(e: StoreError) -> CliError {
    super::lifecycle::store_input(e)
}

/// A plan's predicted effect, for a terminal.
fn prediction_text(p: &crate::apply::Prediction) -> String {
    let mut out = format!("predicted effect of action plan {}\n", p.action_plan);
    if let Some(u) = p.nodes_in_use {
        out += &format!("  nodes in use: {} -> {}\n", u.before, u.after);
    }
    if !p.nodes.is_empty() {
        let mut t = Table::new(&[
            "HOSTNAME",
            "STATUS",
            "POWER",
            "INSTANCES",
            "VCPUS",
            "MEMORY MB",
            "DISK GB",
        ]);
        let change = |a: String, b: String| if a == b { a } else { format!("{a} -> {b}") };
        for n in &p.nodes {
            let (b, a) = (&n.before, &n.after);
            t.row(vec![
                n.hostname.clone(),
                change(b.status.clone(), a.status.clone()),
                change(b.power_state.clone(), a.power_state.clone()),
                change(b.instances.to_string(), a.instances.to_string()),
                format!(
                    "{}/{}",
                    change(b.used.vcpus.to_string(), a.used.vcpus.to_string()),
                    n.capacity.vcpus
                ),
                format!(
                    "{}/{}",
                    change(b.used.memory.to_string(), a.used.memory.to_string()),
                    n.capacity.memory
                ),
                format!(
                    "{}/{}",
                    change(b.used.disk.to_string(), a.used.disk.to_string()),
                    n.capacity.disk
                ),
            ]);
        }
        out += &t.render();
    }
    let mut t = Table::new(&["ACTION", "ACTION TYPE", "EFFECT", "CHANGES"]);
    for a in &p.actions {
        let what = if a.changes.is_empty() {
            a.message.clone().unwrap_or_default()
        } else {
            a.changes.join("; ")
        };
        t.row(vec![
            a.name.clone(),
            a.action_type.clone(),
            a.effect.to_string(),
            what,
        ]);
    }
    out += "\n";
    out += &t.render();
    for n in &p.notes {
        out += &format!("note: {n}\n");
    }
    if p.problems.is_empty() {
        out += "simulation: no problem found\n";
    } else {
        out += &format!("simulation failed ({} problems):\n", p.problems.len());
        for m in &p.problems {
            out += &format!("  {m}\n");
        }
    }
    out
}

/// The plan as text for a terminal: one line per action with its parents.
pub fn graph_text(actions: &[ActionRow]) -> String {
    let mut t = Table::new(&["NAME", "ACTION TYPE", "ON", "AFTER"]);
    let names = names_by_uuid(actions);
    for a in actions {
        t.row(vec![
            a.name.clone(),
            a.action_type.clone(),
            resource(a),
            parent_names(&names, a),
        ]);
    }
    t.render()
}

/// Action names by uuid, looked up once per plan (a scan per parent made
/// tables of large plans quadratic).
fn names_by_uuid(actions: &[ActionRow]) -> std::collections::HashMap<&str, &str> {
    actions
        .iter()
        .map(|a| (a.uuid.as_str(), a.name.as_str()))
        .collect()
}

/// A's parents by name (by uuid when the name is unknown).
fn parent_names(names: &std::collections::HashMap<&str, &str>, a: &ActionRow) -> String {
    a.parents
        .iter()
        .map(|p| names.get(p.as_str()).copied().unwrap_or(p.as_str()))
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
    /// else its own from its import file, else the policy's). Recorded
    /// with the plan.
    #[arg(long)]
    execution_rule: Option<String>,
    /// Actions running at once, at most (default: what the plan was
    /// started with, else 32).
    #[arg(long)]
    max_workers: Option<usize>,
    /// Output format: a table for people, json or yaml for scripts.
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
            notify: true,
            owner: None,
            worker_cap: None,
        }
    }
}

pub fn action_plan(env: &Env, cmd: ActionPlanCommand) -> CliResult {
    use super::apply::{cancel, resume, start};
    use super::import::import;
    let cmd = match cmd {
        ActionPlanCommand::Import { file, format } => return import(env, &file, format),
        ActionPlanCommand::Start { plan, wait, run } => {
            return start(env, &plan, wait, &run.flags(), run.format);
        }
        ActionPlanCommand::Cancel { plan, format } => return cancel(env, &plan, format),
        ActionPlanCommand::Delete { plans, format } => {
            return super::lifecycle::delete_plans(env, &plans, format);
        }
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
                        p.state.to_string(),
                        p.planner.clone().unwrap_or_else(|| "-".into()),
                        p.actions.to_string(),
                        p.updated_at.clone().unwrap_or_else(|| p.created_at.clone()),
                    ]);
                }
                out!("{}", t.render());
            }
        }
        ActionPlanCommand::Show {
            plan,
            predict: true,
            format,
        } => {
            let p = store.plan(&plan).map_err(input_error)?;
            drop(store);
            let prediction = super::apply::predict_now(env, &p.uuid)?;
            if !print_structured(format, &prediction)? {
                out!("{}", prediction_text(&prediction));
            }
        }
        ActionPlanCommand::Show { plan, format, .. } => {
            let p = store.plan(&plan).map_err(input_error)?;
            let actions = store.actions(&p.uuid)?;
            // Serialized from the rows, not through a Value of the plan
            // (which doubled the memory of a large plan's `show`).
            // The plan's fields, and its actions: one JSON type per field
            // across commands (`action_plan` is always a uuid, `actions`
            // always a list).
            #[derive(serde::Serialize)]
            struct Doc<'a> {
                #[serde(flatten)]
                plan: &'a crate::store::plans::PlanRow,
                actions: &'a [ActionRow],
            }
            let doc = Doc {
                plan: &p,
                actions: &actions,
            };
            if !print_structured(format, &doc)? {
                outln!("action plan {} ({})", p.uuid, p.state);
                if let Some(a) = &p.audit_uuid {
                    outln!("  audit:    {a}");
                }
                if let Some(s) = &p.strategy_name {
                    outln!("  strategy: {s}");
                }
                if let Some(pl) = &p.planner {
                    outln!("  planner:  {pl}");
                }
                for ind in &p.efficacy_indicators {
                    outln!("  {}: {}", ind["name"].as_str().unwrap_or(""), ind["value"]);
                }
                for g in p.global_efficacy.as_array().into_iter().flatten() {
                    outln!(
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
                let names = names_by_uuid(&actions);
                for a in &actions {
                    t.row(vec![
                        a.uuid.clone(),
                        a.name.clone(),
                        a.action_type.clone(),
                        resource(a),
                        a.state.to_string(),
                        parent_names(&names, a),
                        a.status_message.clone().unwrap_or_default(),
                    ]);
                }
                out!("{}", t.render());
            }
        }
        ActionPlanCommand::Graph { plan, format } => {
            let p = store.plan(&plan).map_err(input_error)?;
            out!("{}", PlanGraph::load(&store, &p.uuid)?.text(format.into()));
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
        format,
    } = &cmd
    {
        return super::apply::skip(env, action, plan.as_deref(), reason.as_deref(), *format);
    }
    let (store, _plugins, _) = env.open_store_synced()?;
    match cmd {
        ActionCommand::List { plan, page, format } => {
            let all = store.actions(&plan).map_err(input_error)?;
            let actions = super::lists::page(all.clone(), super::lists::ACTION_KEYS, &page)?;
            let scopes = super::flow_view::Scopes::new(match all.first() {
                Some(a) => store.action_scopes(&a.action_plan_uuid)?,
                None => Vec::new(),
            });
            if matches!(format, Format::Table)
                || !print_structured(format, &scopes.json(&actions)?)?
            {
                let mut t =
                    Table::new(&["UUID", "NAME", "ACTION TYPE", "STATE", "PARENTS", "MESSAGE"]);
                let names = names_by_uuid(&all);
                for a in &actions {
                    t.row(vec![
                        a.uuid.clone(),
                        scopes.name(a),
                        a.action_type.clone(),
                        a.state.to_string(),
                        parent_names(&names, a),
                        a.status_message.clone().unwrap_or_default(),
                    ]);
                }
                out!("{}", t.render());
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
                outln!("{}", serde_yaml_ng::to_string(&v)?);
            }
        }
        ActionCommand::Skip { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}
