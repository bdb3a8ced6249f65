//! `sextant sim init | show | generate`: the embedded simulated cloud.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env};
use crate::store::location::{StoreDirectory, prepare_directory};
use clap::builder::RangedU64ValueParser;
use clap::{Subcommand, ValueEnum};
use sextant_plugin_api::model::{ClusterModel, Instance, Metric, Node};
use sextant_sim_store::SimDb;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Seeds the simulated cloud from a snapshot (YAML or JSON), replacing it.
    Init {
        /// The snapshot (examples/clusters/*.yaml).
        #[arg(long = "from")]
        from: PathBuf,
        /// Simulated time scale: 0 makes actions take no time, 1 real time
        /// (at most 1000).
        #[arg(long, default_value_t = 1.0, value_parser = parse_time_scale)]
        time_scale: f64,
        /// Accept a snapshot with no node, instance, pool or volume (it
        /// empties the simulated cloud).
        #[arg(long)]
        allow_empty: bool,
        /// Faults to inject during this run (YAML or JSON: hosts that go
        /// down or fill up at a simulated time, actions that fail, random
        /// failures with a seed; see docs/sim-faults.md).
        #[arg(long)]
        faults: Option<PathBuf>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The simulated cloud now: a summary, or the snapshot (--format json|yaml).
    Show {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Writes a generated snapshot to stdout (for the large example cluster).
    Generate {
        /// Compute nodes (at most 100,000).
        #[arg(long, default_value_t = 100,
              value_parser = RangedU64ValueParser::<usize>::new().range(..=MAX_GENERATED_NODES))]
        nodes: usize,
        /// Instances, spread over the nodes (at most 1,000,000).
        #[arg(long, default_value_t = 1000,
              value_parser = RangedU64ValueParser::<usize>::new().range(..=MAX_GENERATED_INSTANCES))]
        instances: usize,
        /// The random seed: one seed, one snapshot.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The snapshot's format.
        #[arg(long, value_enum, default_value_t = SnapshotFormat::Yaml)]
        format: SnapshotFormat,
    },
}

/// The largest `--time-scale`: an action's simulated time is its estimated
/// duration (at most 366 days) times the scale.
pub const MAX_TIME_SCALE: f64 = 1000.0;

fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=MAX_TIME_SCALE).contains(&x) => Ok(x),
        _ => Err(format!(
            "{text:?} is not a time scale: a number from 0 to {MAX_TIME_SCALE}"
        )),
    }
}

/// Formats a snapshot can be written in.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SnapshotFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

pub fn run(env: &Env, cmd: SimCommand) -> CliResult {
    match cmd {
        SimCommand::Init {
            from,
            time_scale,
            allow_empty,
            faults,
            format,
        } => init(
            env,
            &from,
            time_scale,
            allow_empty,
            faults.as_deref(),
            format,
        ),
        SimCommand::Show { format } => show(env, format),
        SimCommand::Generate {
            nodes,
            instances,
            seed,
            format,
        } => {
            let m = generate(nodes, instances, seed);
            let out = super::output::stdout();
            match format {
                SnapshotFormat::Yaml => serde_yaml_ng::to_writer(out, &m)?,
                SnapshotFormat::Json => serde_json::to_writer(out, &m)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a snapshot file (at most
/// [`MAX_DATA_BYTES`](crate::input::MAX_DATA_BYTES)); errors name the file,
/// line and column, or the contradicting entries.
pub fn read_snapshot(path: &Path) -> Result<ClusterModel, CliError> {
    let model: ClusterModel =
        crate::input::read_yaml(path, crate::input::MAX_DATA_BYTES, "a snapshot")
            .map_err(CliError::input)?;
    let check = model.check();
    for w in &check.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    if !check.errors.is_empty() {
        return Err(CliError::input(anyhow::anyhow!(
            "{}: the snapshot contradicts itself:\n  {}",
            path.display(),
            check.errors.join("\n  ")
        )));
    }
    Ok(model)
}

fn init(
    env: &Env,
    from: &Path,
    time_scale: f64,
    allow_empty: bool,
    faults: Option<&Path>,
    format: Format,
) -> CliResult {
    // `time_scale` is bounded by its parser. Everything is checked before the cloud is touched.
    let model = read_snapshot(from)?;
    if model.is_empty() && !allow_empty {
        return Err(CliError::input(anyhow::anyhow!(
            "{}: the snapshot has no node, instance, storage pool or volume: pass --allow-empty to empty the simulated cloud",
            from.display()
        )));
    }
    let faults = match faults {
        Some(f) => super::sim_faults::read(f, &model)?,
        None => sextant_sim_store::faults::Faults::default(),
    };
    let path = env.sim_db();
    let mut db = env.open_sim()?;
    db.init_with_faults(&model, time_scale, &faults)?;
    let doc = serde_json::json!({
        "sim_db": path,
        "nodes": model.nodes.len(),
        "instances": model.instances.len(),
        "storage_pools": model.storage_pools.len(),
        "volumes": model.volumes.len(),
        "time_scale": time_scale,
        "faults": faults,
    });
    if !print_structured(format, &doc)? {
        outln!(
            "seeded the simulated cloud {} from {}: {} nodes, {} instances, {} pools, {} volumes (time scale {time_scale})",
            path,
            from.display(),
            model.nodes.len(),
            model.instances.len(),
            model.storage_pools.len(),
            model.volumes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The simulated cloud, refused when it was never seeded (exit status 2,
/// saying how to seed it; nothing is written): what `sim show` and
/// `datamodel show` read. Whether it was is the cloud's own record
/// (`SimDb::is_initialised`), on either backend: a `sim.db` made by
/// another command (a `sim.*` handler opening it) was not seeded. A cloud
/// seeded empty (`--allow-empty`), or seeded and since emptied, is not
/// refused.
pub(super) fn open_seeded(env: &Env) -> Result<SimDb, CliError> {
    let path = env.sim_db();
    let never_seeded = || {
        CliError::input(anyhow::anyhow!(
            "the simulated cloud {path} was never seeded: run `sextant sim init --from FILE`"
        ))
    };
    if let Some(file) = path.file()
        && !file.exists()
    {
        // A directory the config names that does not exist is said as
        // such (checked, never made: `show` writes nothing).
        if env.sim_directory() == StoreDirectory::Named {
            prepare_directory(file, StoreDirectory::Named).map_err(super::directory_error)?;
        }
        return Err(never_seeded());
    }
    let db = env.open_sim()?;
    if !db.is_initialised()? {
        return Err(never_seeded());
    }
    Ok(db)
}

fn show(env: &Env, format: Format) -> CliResult {
    let db = open_seeded(env)?;
    let model = db.model()?;
    if print_structured(format, &model)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut used: HashMap<&str, (u64, u64, u64, usize)> = HashMap::new();
    for i in &model.instances {
        let u = used.entry(i.host.as_str()).or_default();
        u.0 += i.vcpus;
        u.1 += i.memory;
        u.2 += i.disk;
        u.3 += 1;
    }
    let mut t = Table::new(&[
        "HOSTNAME",
        "STATUS",
        "STATE",
        "POWER",
        "INSTANCES",
        "VCPUS",
        "MEMORY MB",
        "DISK GB",
    ]);
    for n in &model.nodes {
        let (cv, cm, cd) = n.capacity();
        let u = used.get(n.hostname.as_str()).copied().unwrap_or_default();
        t.row(vec![
            n.hostname.clone(),
            n.status.clone(),
            n.state.clone(),
            n.power_state.clone(),
            u.3.to_string(),
            format!("{}/{}", u.0, cv),
            format!("{}/{}", u.1, cm),
            format!("{}/{}", u.2, cd),
        ]);
    }
    out!("{}", t.render());
    let in_use = model
        .nodes
        .iter()
        .filter(|n| used.contains_key(n.hostname.as_str()))
        .count();
    outln!(
        "\n{} nodes ({in_use} in use), {} instances, {} storage pools, {} volumes; time scale {}; simulated clock {}s",
        model.nodes.len(),
        model.instances.len(),
        model.storage_pools.len(),
        model.volumes.len(),
        db.time_scale()?,
        db.clock()?
    );
    let faults = db.faults()?;
    if !faults.is_empty() {
        outln!(
            "injected faults: {}",
            serde_json::to_string(&faults).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A small deterministic generator (xorshift64*): the same seed gives the
/// same cluster on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The most nodes `sim generate` makes: ten times the large example
/// cluster. The model is built in memory before it is written, and one
/// larger than `sim init` reads back
/// ([`MAX_DATA_BYTES`](crate::input::MAX_DATA_BYTES)) is of no use.
pub const MAX_GENERATED_NODES: u64 = 100_000;
/// The most instances `sim generate` makes (see [`MAX_GENERATED_NODES`]).
pub const MAX_GENERATED_INSTANCES: u64 = 1_000_000;

/// Generates a cluster of `nodes` hosts and `instances` servers, placed at
/// random where they fit, with CPU metrics.
pub fn generate(nodes: usize, instances: usize, seed: u64) -> ClusterModel {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let node_shapes = [
        (32u64, 131_072u64, 1000u64),
        (48, 196_608, 1500),
        (64, 262_144, 2000),
    ];
    let flavors = [
        (1u64, 2048u64, 20u64),
        (2, 4096, 40),
        (4, 8192, 80),
        (8, 16384, 160),
    ];
    let width = nodes.to_string().len().max(3);
    let mut model = ClusterModel::default();
    for n in 0..nodes {
        let (vcpus, memory, disk) = node_shapes[rng.below(3) as usize];
        model.nodes.push(Node {
            uuid: rng.uuid(),
            hostname: format!("compute-{:0width$}", n + 1),
            vcpus,
            memory,
            disk,
            vcpu_reserved: 0,
            memory_mb_reserved: 0,
            disk_gb_reserved: 0,
            vcpu_ratio: 1.0,
            memory_ratio: 1.0,
            disk_ratio: 1.0,
            status: "enabled".into(),
            disabled_reason: None,
            state: "up".into(),
            power_state: "on".into(),
            availability_zone: Some(format!("az{}", n % 2 + 1)),
            aggregates: Vec::new(),
            metrics: BTreeMap::new(),
        });
    }
    let mut used: Vec<(u64, u64, u64)> = vec![(0, 0, 0); nodes];
    let iwidth = instances.to_string().len().max(4);
    for i in 0..instances {
        let flavor = rng.below(4) as usize;
        let (vcpus, memory, disk) = flavors[flavor];
        if nodes == 0 {
            break;
        }
        let start = rng.below(nodes as u64) as usize;
        let Some(host) = (0..nodes).map(|k| (start + k) % nodes).find(|&h| {
            let n = &model.nodes[h];
            used[h].0 + vcpus <= n.vcpus
                && used[h].1 + memory <= n.memory
                && used[h].2 + disk <= n.disk
        }) else {
            // The smallest flavor fits nowhere: nothing will any more (room
            // only shrinks), so stop rather than scan every node for each
            // instance left.
            if flavor == 0 {
                break;
            }
            continue;
        };
        used[host].0 += vcpus;
        used[host].1 += memory;
        used[host].2 += disk;
        let cpu = rng.below(1000) as f64 / 10.0;
        model.instances.push(Instance {
            uuid: rng.uuid(),
            name: format!("vm-{:0iwidth$}", i + 1),
            host: model.nodes[host].hostname.clone(),
            vcpus,
            memory,
            disk,
            state: "active".into(),
            project_id: format!("project-{}", rng.below(10) + 1),
            metadata: BTreeMap::new(),
            locked: false,
            watcher_exclude: false,
            metrics: BTreeMap::from([
                ("instance_cpu_usage".to_string(), Metric::Value(cpu)),
                (
                    "instance_ram_usage".to_string(),
                    Metric::Value((memory / 2) as f64),
                ),
            ]),
        });
    }
    for (h, n) in model.nodes.iter_mut().enumerate() {
        let load = used[h].0 as f64 / n.vcpus as f64 * 100.0 * 0.6;
        n.metrics.insert(
            "host_cpu_usage".into(),
            Metric::Value((load * 10.0).round() / 10.0),
        );
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let a = generate(20, 150, 7);
        assert_eq!(a, generate(20, 150, 7));
        assert_ne!(a, generate(20, 150, 8));
        assert_eq!(a.nodes.len(), 20);
        assert_eq!(a.instances.len(), 150);
        let c = a.check();
        assert!(c.errors.is_empty() && c.warnings.is_empty(), "{c:?}");
    }
}
