//! `sextant plan --input FILE`: stateless planning, in the format of
//! Watcher's planner vectors.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::plan::{PlanError, plan, read_input};
use std::path::Path;
use std::process::ExitCode;

pub fn run(env: &Env, input: &Path, format: Format, save: bool) -> CliResult {
    let text = crate::input::read_text(input, crate::input::MAX_DATA_BYTES, "a plan input")
        .map_err(CliError::input)?;
    let req = read_input(&text)
        .map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", input.display())))?;
    drop(text);
    let specs = req.actions;
    let plugins = env.registry()?;
    let types = env.action_types();
    if plugins
        .find(sextant_plugin_api::Kind::Planner, &req.planner)
        .is_none()
    {
        let known: Vec<&str> = plugins
            .of_kind(sextant_plugin_api::Kind::Planner)
            .map(|e| e.manifest().name.as_str())
            .collect();
        return Err(CliError::input(anyhow::anyhow!(
            "{}: no planner named {:?} is loaded (loaded: {})",
            input.display(),
            req.planner,
            known.join(", ")
        )));
    }
    // `config: {policy: NAME|FILE}` takes the planner's config from a policy.
    let config = match req.config.get("policy").and_then(|p| p.as_str()) {
        Some(name) => {
            if req.config.as_object().is_some_and(|m| m.len() > 1) {
                return Err(CliError::input(anyhow::anyhow!(
                    "{}: config: give either a policy or planner settings, not both",
                    input.display()
                )));
            }
            let vocab = crate::policy::Vocabulary::of(&types, &plugins);
            crate::policy::load_checked(name, &vocab)
                .map_err(CliError::input)?
                .planner_config()
        }
        None => req.config.clone(),
    };
    let durations = crate::plan::durations(&types);
    let mut planned = plan(
        &plugins,
        &req.planner,
        &config,
        &req.instance_hosts,
        &durations,
        &specs,
    )
    .map_err(|e| match e {
        e @ (PlanError::Refused { .. } | PlanError::InvalidOutput { .. }) => CliError::input(e),
        e => CliError::from(e),
    })?;
    // A planners.v2 planner's alternatives become actions of the plan, and
    // its flows and alternatives are stored with it as an import's are.
    let mut specs = specs;
    let structure = std::mem::take(&mut planned.structure).apply(&mut planned, &mut specs);
    // The store stays open until the plan is printed: the WAL checkpoint
    // that its commit asked for runs on the store's thread meanwhile, and
    // closing the store (which waits for it) comes last.
    let (saved, _store) = if save {
        let (mut store, _) = env.open_store_synced_to(&plugins, &types)?;
        let plan = store.create_plan(&crate::store::plans::NewPlan {
            planner: Some(req.planner.clone()),
            state: planned.action_plan_state,
            rows: planned.rows(&specs, |_| "", crate::states::ActionState::Pending),
            extra: serde_json::json!({"planner": planned.extra}),
            structure,
            ..Default::default()
        })?;
        (Some(plan.uuid), Some(store))
    } else {
        (None, None)
    };
    if !print_structured(format, &planned.view(&specs, saved.as_deref()))? {
        let mut t = Table::new(&["ID", "ACTION TYPE", "PARENTS"]);
        for (k, &i) in planned.order.iter().enumerate() {
            let parents: Vec<&str> = planned
                .parents(k)
                .iter()
                .map(|&p| specs[planned.order[p]].id.as_str())
                .collect();
            t.row(vec![
                specs[i].id.to_string(),
                specs[i].action_type.to_string(),
                parents.join(", "),
            ]);
        }
        out!("{}", t.render());
        outln!("action plan state: {}", planned.action_plan_state);
        if let Some(u) = &saved {
            outln!("saved as action plan {u}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
