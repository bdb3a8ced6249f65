//! `sextant demo`: the main job on the embedded simulated cloud, start to
//! finish: seed the cloud, audit it for server consolidation, show the
//! efficacy and the plan, apply it, and compare the cloud before and after.

use super::apply::{RunFlags, apply_now_with};
use super::output::{Format, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::decide::{AuditContext, AuditRequest, prepare_audit, run_audit};
use crate::states::{ActionState, PlanState};
use crate::store::location::StoreDirectory;
use serde_json::json;
use sextant_plugin_api::model::ClusterModel;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

fn in_use(m: &ClusterModel) -> usize {
    m.instances
        .iter()
        .map(|i| i.host.as_str())
        .collect::<HashSet<_>>()
        .len()
}

fn over_capacity(m: &ClusterModel) -> Vec<String> {
    m.check().warnings
}

/// The demo's own state (`<data dir>/demo/`, its simulated cloud beside
/// it), so it never touches yours, not even a simulated cloud configured
/// with `sim: {sim_db}`, unless `--db` names a database.
fn demo_env(env: &Env) -> Env {
    let mut config = env.config.clone();
    let db = match env.db_directory {
        StoreDirectory::Named => env.db.clone(),
        StoreDirectory::Own => {
            config.sim = Default::default();
            crate::store::Location::Sqlite(
                crate::config::data_dir().join("demo").join("sextant.db"),
            )
        }
    };
    Env {
        config,
        plugin_dirs: env.plugin_dirs.clone(),
        db,
        db_directory: env.db_directory,
    }
}

/// The default cluster: `examples/clusters/small.yaml` of the installation
/// (see [`crate::installation`]).
fn default_cluster() -> Option<PathBuf> {
    crate::installation::example_cluster("small.yaml")
}

pub fn run(env: &Env, cluster: Option<PathBuf>, format: Format) -> CliResult {
    let env = demo_env(env);
    let cluster = match cluster.or_else(default_cluster) {
        Some(c) => c,
        None => {
            return Err(CliError::input(anyhow::anyhow!(
                "no cluster given and the installation's examples/clusters/small.yaml not found \
                 (searched EXE_DIR/../share/sextant, then the source tree above the executable): \
                 use --cluster FILE"
            )));
        }
    };
    let talk = format == Format::Table;
    // 1. Seed the simulated cloud (actions take no simulated time).
    let model = super::sim::read_snapshot(&cluster)?;
    // Closed at once: the sim plugin links its own copy of SQLite, and two
    // copies holding one database file open in one process can corrupt it
    // (each drops the other's POSIX locks when it closes the file).
    env.open_sim()?.init(&model, 0.0)?;
    let before = in_use(&model);
    if talk {
        outln!(
            "Seeded the simulated cloud from {}: {} nodes, {} instances, {before} nodes in use.",
            cluster.display(),
            model.nodes.len(),
            model.instances.len()
        );
    }
    // 2. Audit it for server consolidation.
    let types = env.action_types();
    let (mut store, plugins, _) = env.open_store_synced_with(&types)?;
    let req = AuditRequest {
        audit_type: "ONESHOT".into(),
        goal: Some("server_consolidation".into()),
        strategy: Some("basic".into()),
        policy: Some("default".into()),
        parameters: json!({}),
        ..Default::default()
    };
    let vocab = crate::policy::Vocabulary::of(&types, &plugins);
    let new =
        prepare_audit(&store, &req, &vocab).map_err(|e| CliError::input(anyhow::anyhow!(e)))?;
    let audit = store.create_audit(&new)?;
    let ctx = AuditContext {
        plugins: &plugins,
        types: &types,
        model: env.model_source(),
    };
    let audit = run_audit(&mut store, &ctx, &audit.uuid).map_err(|e| anyhow::anyhow!(e))?;
    let Some(plan) = audit.action_plan.clone() else {
        return Err(anyhow::anyhow!(
            "the audit produced no plan: {}",
            audit.status_message.unwrap_or_default()
        )
        .into());
    };
    if talk {
        outln!(
            "\nAudit {} ({}): {}",
            audit.name,
            audit.state,
            audit.status_message.clone().unwrap_or_default()
        );
        outln!("Efficacy indicators:");
        for i in audit.efficacy_indicators.as_array().into_iter().flatten() {
            outln!("  {:<30} {}", i["name"].as_str().unwrap_or(""), i["value"]);
        }
        for g in store
            .plan(&plan)?
            .global_efficacy
            .as_array()
            .into_iter()
            .flatten()
        {
            outln!(
                "  {:<30} {}{} (global efficacy)",
                g["name"].as_str().unwrap_or(""),
                g["value"],
                g["unit"].as_str().unwrap_or("")
            );
        }
        let actions = store.actions(&plan)?;
        outln!("\nAction plan {plan} (rules planner, policy default):");
        out!("{}", super::plans::graph_text(&actions));
    }
    drop(store);
    // 3. Apply it.
    let outcome = apply_now_with(
        &env,
        &plan,
        &RunFlags {
            policy: None,
            execution_rule: None,
            max_workers: None,
            quiet: false,
            stop: None,
            notify: true,
            owner: None,
            worker_cap: None,
        },
        types,
    )?;
    // 4. Before and after.
    let after_model = env.open_sim()?.model()?;
    let after = in_use(&after_model);
    let store = env.open_store()?;
    let migrations = store
        .actions(&plan)?
        .iter()
        .filter(|a| a.action_type == "migrate" && a.state == ActionState::Succeeded)
        .count();
    let overloaded = over_capacity(&after_model);
    let doc = json!({
        "cluster": cluster,
        "audit": audit.uuid,
        "action_plan": plan,
        "efficacy_indicators": audit.efficacy_indicators,
        "global_efficacy": store.plan(&plan)?.global_efficacy,
        "nodes_in_use_before": before,
        "nodes_in_use_after": after,
        "nodes_released": before.saturating_sub(after),
        "migrations": migrations,
        "plan_state": outcome.state,
        "nodes_over_capacity": overloaded,
    });
    if !print_structured(format, &doc)? {
        outln!("\nApplied: action plan {}.", outcome.state);
        outln!(
            "Nodes in use: {before} -> {after} ({} released), {migrations} migrations.",
            before.saturating_sub(after)
        );
        if !overloaded.is_empty() {
            outln!("Over capacity: {}", overloaded.join("; "));
        }
    }
    Ok(if outcome.state == PlanState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_never_seeds_a_configured_simulated_cloud_unless_db_is_given() {
        let mut config = crate::config::Config::default();
        config.sim.sim_db = Some("/srv/lab/sim.db".into());
        let mut env = Env {
            config,
            plugin_dirs: Vec::new(),
            db: crate::store::Location::Sqlite("/srv/lab/sextant.db".into()),
            db_directory: StoreDirectory::Own,
        };
        let own = demo_env(&env).sim_db();
        assert_eq!(
            own.file(),
            Some(
                crate::config::data_dir()
                    .join("demo")
                    .join("sim.db")
                    .as_path()
            )
        );
        env.db_directory = StoreDirectory::Named;
        let given = demo_env(&env).sim_db();
        assert_eq!(given.file(), Some(std::path::Path::new("/srv/lab/sim.db")));
    }
}
