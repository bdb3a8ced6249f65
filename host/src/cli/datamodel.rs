//! `sextant datamodel show`: the cluster model the configured collector
//! builds now (Watcher's `optimize datamodel list`), what audits start
//! from: every node with its capacity, reservations, allocation ratios and
//! service state, and every instance.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliResult, Env};
use clap::Subcommand;
use sextant_plugin_api::model::ClusterModel;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DatamodelCommand {
    /// Collects the cluster model with the configured collector and prints
    /// it: a summary per node, or the whole model (--format json|yaml). A
    /// simulated cloud never seeded is refused (exit status 2: seed it
    /// with `sextant sim init --from FILE`); one seeded empty is an empty
    /// model.
    Show {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// The embedded simulated cloud's collector (the default).
const SIM_COLLECTOR: &str = "sim";

pub fn run(env: &Env, c: DatamodelCommand) -> CliResult {
    let DatamodelCommand::Show { format } = c;
    let src = env.model_source();
    if src.collector == SIM_COLLECTOR {
        // A cloud never seeded is refused as `sim show` refuses it, not
        // shown as a cloud with no node. Closed before the collector
        // opens it: the sim plugin links its own copy of SQLite, and two
        // copies holding one file open in one process can corrupt it.
        drop(super::sim::open_seeded(env)?);
    }
    let plugins = env.registry()?;
    let raw = plugins
        .collect(&src.collector, &src.config)
        .map_err(|e| anyhow::anyhow!("collector {}: {e}", src.collector))?;
    let model: ClusterModel = serde_json::from_value(raw).map_err(|e| {
        anyhow::anyhow!("collector {} returned an invalid model: {e}", src.collector)
    })?;
    if print_structured(format, &model)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "HOSTNAME",
        "STATUS",
        "STATE",
        "INSTANCES",
        "VCPUS (RESERVED, RATIO)",
        "MEMORY MB (RESERVED, RATIO)",
        "DISK GB (RESERVED, RATIO)",
    ]);
    for n in &model.nodes {
        let count = model
            .instances
            .iter()
            .filter(|i| i.host == n.hostname)
            .count();
        t.row(vec![
            n.hostname.clone(),
            n.status.clone(),
            n.state.clone(),
            count.to_string(),
            format!("{} ({}, {})", n.vcpus, n.vcpu_reserved, n.vcpu_ratio),
            format!(
                "{} ({}, {})",
                n.memory, n.memory_mb_reserved, n.memory_ratio
            ),
            format!("{} ({}, {})", n.disk, n.disk_gb_reserved, n.disk_ratio),
        ]);
    }
    out!("{}", t.render());
    outln!(
        "{} nodes, {} instances (collector {})",
        model.nodes.len(),
        model.instances.len(),
        src.collector
    );
    Ok(ExitCode::SUCCESS)
}
