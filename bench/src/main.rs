//! `sextant-bench`: the benchmarks, a binary of their own so that the
//! product binary carries none of them. Each subcommand prints one JSON
//! document of medians, with the in-process baseline measured in the same
//! run. `user-path` and `import` time the real `sextant` binary as child
//! processes (`--sextant`, default the `sextant` beside this executable).

use clap::{Parser, Subcommand};
use sextant::cli::{CliError, CliResult, Env};
use sextant::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

/// The same allocator as the `sextant` binary (host/src/main.rs), so that
/// the in-process baselines are measured as the commands would run them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`, set as the `sextant` binary sets it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Writes a line to standard output; an error (a closed pipe) is returned.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod api;
mod applier;
mod child;
mod fleet;
mod import;
mod notify;
mod openstack;
mod planners;
mod plugins;
mod proc_cpu;
mod prometheus;
mod releases;
mod strategies;
mod user_path;

/// Sextant's benchmarks: each prints JSON medians against a baseline
/// measured in the same run. Build with `--release` for figures.
#[derive(Parser, Debug)]
#[command(name = "sextant-bench", version, about)]
struct Cli {
    /// A plugin directory searched before all others (repeatable); passed
    /// on to the `sextant` children.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,

    /// The config file (default: $SEXTANT_CONFIG, else
    /// $XDG_CONFIG_HOME/sextant/config.yaml); passed on to the children.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// The `sextant` binary the user-path and import benchmarks run
    /// (default: the `sextant` beside this executable).
    #[arg(long, value_name = "FILE", global = true)]
    sextant: Option<PathBuf>,

    #[command(subcommand)]
    command: BenchCommand,
}

/// The `sextant` binary the children run, set once in [`main`].
static SEXTANT: OnceLock<PathBuf> = OnceLock::new();

/// The `sextant` binary the benchmarks run as children.
pub(crate) fn sextant_exe() -> anyhow::Result<PathBuf> {
    let exe = match SEXTANT.get() {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("sextant"),
    };
    anyhow::ensure!(
        exe.is_file(),
        "{}: no sextant binary there (build it, or pass --sextant FILE)",
        exe.display()
    );
    Ok(exe)
}

fn main() -> ExitCode {
    // SAFETY: sets an option; any value is valid for mimalloc.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("SEXTANT_LOG")
                .ok()
                .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
                .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    if let Some(p) = cli.sextant {
        let _ = SEXTANT.set(p);
    }
    let result = Config::load(cli.config.as_deref())
        .map_err(CliError::input)
        .and_then(|config| {
            let (db, db_directory) = sextant::cli::database(None, &config)?;
            let env = Env {
                config,
                plugin_dirs: cli.plugin_dirs,
                db,
                db_directory,
            };
            run(&env, cli.command)
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", sextant::cli::error_message(&e.error));
            ExitCode::from(e.status)
        }
    }
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Discover-and-load time for N plugins, and the per-call overhead of
    /// the plugin boundary against an in-process trait call.
    Plugins {
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Directory counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
        counts: Vec<usize>,
        /// Calls per run for the per-call figures.
        #[arg(long, default_value_t = 10_000_000)]
        calls: u64,
        /// The plugin file to copy (default: the loaded `nop` handler's).
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// The applier's overhead per action (nop, durable state), parallel and
    /// as a chain, and the makespan of a random DAG of sleeps.
    Applier {
        /// Plan sizes (actions).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        sizes: Vec<usize>,
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The REST API under load while its serve applies a plan: requests
    /// per second and p50/p99 at each client count for an action list, the
    /// goal list and audit creation, and the applier's time per action
    /// with and without that traffic (targets: list p99 < 50 ms at 64
    /// clients; at most 1.2 times).
    Api {
        /// Actions of the listed plan and of each applied plan.
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
        /// Concurrent clients.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Seconds of load per endpoint and client count.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Runs; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Run on PostgreSQL: the server's URL (postgres://USER@HOST:PORT/DB,
        /// e.g. the harness's $SEXTANT_TEST_PG_URL); each run creates a
        /// database of its own there and drops it. Default: SQLite.
        #[arg(long, value_name = "URL")]
        pg: Option<String>,
        /// The nice value of the benchmark's client threads (0 to 19): they
        /// generate the load and share the CPUs with the server; a higher
        /// value leaves the CPUs to the server's applier and API first.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
        client_nice: i32,
        /// At most this many requests a second from all the clients
        /// together (a diagnostic: the applier's loss against the rate the
        /// API serves; latency counts from each send). Default: back to back.
        #[arg(long, value_parser = positive_rate)]
        rate: Option<f64>,
    },
    /// The basic consolidation on the medium example and a generated large
    /// cluster, against the lower bound and a first-fit baseline.
    Strategies {
        /// Compute nodes of the generated large cluster.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Instances of the generated large cluster.
        #[arg(long, default_value_t = 100_000)]
        instances: usize,
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Planning and storing N actions with each planner, and the makespan
    /// each planner's plan allows for a consolidation solution.
    Planners {
        /// Solution sizes.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        sizes: Vec<usize>,
        /// Planners to measure.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "weight,workload_stabilization,node_resource_consolidation,rules"
        )]
        planners: Vec<String>,
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Run one case, PLANNER:N, in this process (used by the benchmark
        /// itself, so each case has its own peak memory).
        #[arg(long, hide = true)]
        case: Option<String>,
    },
    /// The user's path: `plan --input`, `action-plan import`, `start
    /// --wait`, `show` and `action list` as child processes, against the
    /// same work in process (a ratio; the target is at most 1.5).
    UserPath {
        /// Migrations planned by `plan --input` (the weight planner).
        #[arg(long, default_value_t = 100_000)]
        plan_actions: usize,
        /// Independent nop actions imported and applied.
        #[arg(long, default_value_t = 10_000)]
        apply_actions: usize,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Host releases achieved by a consolidation of the simulated medium
    /// cluster when a share of the migrations fail, with planner-made
    /// alternatives against without them, and the simulated makespan.
    Releases {
        /// Shares of the migrations that fail (injected, seeded).
        #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2")]
        rates: Vec<f64>,
        /// Fault seeds; the figures are medians over them.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
        seeds: Vec<u64>,
        /// Share of each host's capacity the consolidation leaves free
        /// (the basic strategy's `fallback_room`).
        #[arg(long, default_value_t = 0.2)]
        room: f64,
        /// Alternatives per migration the policy asks for.
        #[arg(long, default_value_t = 3)]
        per_action: u32,
    },
    /// The AMQP sink against a real RabbitMQ: notifications per second
    /// published with confirms, and the applier's overhead per action with
    /// the sink on against off (a ratio; the target is at most 1.1).
    Notify {
        /// The broker, e.g. $SEXTANT_TEST_AMQP_URL of scripts/services/up.sh
        /// rabbitmq.
        #[arg(long, value_name = "URL")]
        amqp_url: String,
        /// Nop actions per plan.
        #[arg(long, default_value_t = 5000)]
        actions: usize,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The broker's process (e.g. $SEXTANT_TEST_RABBITMQ_PID): its CPU
        /// time, with its descendants', per action while each plan runs.
        #[arg(long, value_name = "PID")]
        broker_pid: Option<u32>,
    },
    /// Filling a model's four usage metrics from a real Prometheus with the
    /// batched queries, against Watcher's one query per instance and metric.
    Prometheus {
        /// The Prometheus, with its remote-write receiver on, e.g.
        /// $SEXTANT_TEST_PROMETHEUS_URL of scripts/services/up.sh prometheus.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Hosts of the model.
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        /// Instances of the model.
        #[arg(long, default_value_t = 10_000)]
        instances: usize,
        /// Runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Issue 14's benchmark, on PostgreSQL and SQLite side by side: each
    /// database's commit floor, the applier's overhead per nop action
    /// through one and three real `serve` hosts, planning and storing N
    /// actions, and three hosts draining a backlog of sleeps against one.
    Fleet {
        /// The PostgreSQL server, a URL whose user may create databases
        /// (default: $SEXTANT_TEST_PG_URL of scripts/services/up.sh
        /// postgres); each case gets a database of its own, dropped after.
        #[arg(long, value_name = "URL")]
        pg: Option<String>,
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
        backends: Vec<String>,
        /// Plan sizes (nop actions) of the applier cases.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        sizes: Vec<usize>,
        /// Actions planned and stored (weight planner).
        #[arg(long, default_value_t = 100_000)]
        plan_actions: usize,
        /// Rows per group commit of the floor.
        #[arg(long, default_value_t = 100)]
        group: usize,
        /// Plans of ten one-second sleeps drained by one and by three hosts
        /// (0: skip that case).
        #[arg(long, default_value_t = 30)]
        drain_plans: usize,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The OpenStack driver against the harness's real Nova and Placement
    /// (scripts/services: postgres rabbitmq keystone nova watcher_bench):
    /// collecting the model against Watcher 17.0.0's NovaModelBuilder at
    /// three hosts and after adding hosts (time, API requests), and the
    /// applier's overhead per live migration beyond Nova's own time.
    Openstack {
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Servers booted at the harness's three hosts.
        #[arg(long, default_value_t = 6)]
        servers_small: usize,
        /// nova-compute processes (one node each) added for the large size;
        /// 0 measures three hosts only.
        #[arg(long, default_value_t = 20)]
        grow: usize,
        /// Servers booted once the hosts were added.
        #[arg(long, default_value_t = 200)]
        servers_large: usize,
        /// Live migrations in the applier's chain (0: not measured).
        #[arg(long, default_value_t = 4)]
        migrations: usize,
    },
    /// `action-plan import` of N actions with random DAG edges (each
    /// waiting for up to two of the previous thousand), with and without
    /// references, against the same actions with no edges: wall time and
    /// peak memory of the command in a child process.
    Import {
        /// Action counts.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,200000")]
        sizes: Vec<usize>,
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn run(env: &Env, cmd: BenchCommand) -> CliResult {
    match cmd {
        BenchCommand::Plugins {
            runs,
            counts,
            calls,
            plugin,
        } => crate::plugins::run(env, runs.max(1), &counts, calls.max(1), plugin),
        BenchCommand::UserPath {
            plan_actions,
            apply_actions,
            runs,
        } => crate::user_path::run(env, plan_actions, apply_actions, runs),
        BenchCommand::Openstack {
            runs,
            servers_small,
            grow,
            servers_large,
            migrations,
        } => crate::openstack::run(
            env,
            crate::openstack::Args {
                runs,
                servers_small,
                grow,
                servers_large,
                migrations,
            },
        ),
        BenchCommand::Import { sizes, runs } => crate::import::run(env, &sizes, runs),
        BenchCommand::Releases {
            rates,
            seeds,
            room,
            per_action,
        } => crate::releases::run(env, &rates, &seeds, room, per_action),
        BenchCommand::Notify {
            amqp_url,
            actions,
            runs,
            broker_pid,
        } => crate::notify::run(env, &amqp_url, actions.max(1), runs.max(1), broker_pid),
        BenchCommand::Prometheus {
            url,
            hosts,
            instances,
            runs,
        } => crate::prometheus::run(&url, hosts.max(1), instances.max(1), runs),
        BenchCommand::Fleet {
            pg,
            backends,
            sizes,
            plan_actions,
            group,
            drain_plans,
            runs,
        } => {
            let pg = match pg.or_else(|| std::env::var("SEXTANT_TEST_PG_URL").ok()) {
                Some(url) => url,
                None if backends.iter().all(|b| b != "postgres") => String::new(),
                None => {
                    return Err(CliError::input(anyhow::anyhow!(
                        "fleet: no PostgreSQL server: pass --pg URL or set SEXTANT_TEST_PG_URL \
                         (scripts/services/up.sh postgres), or --backends sqlite"
                    )));
                }
            };
            crate::fleet::run(
                env,
                &crate::fleet::FleetArgs {
                    pg,
                    sizes,
                    plan_actions,
                    group,
                    drain_plans,
                    runs,
                    backends,
                },
            )
        }
        BenchCommand::Applier { sizes, runs } => crate::applier::run(env, &sizes, runs),
        BenchCommand::Api {
            actions,
            clients,
            seconds,
            runs,
            pg,
            client_nice,
            rate,
        } => crate::api::run(
            env,
            &crate::api::Load {
                actions,
                clients: &clients,
                secs: seconds,
                client_nice,
                rate,
            },
            runs,
            pg.as_deref(),
        ),
        BenchCommand::Strategies {
            nodes,
            instances,
            runs,
        } => crate::strategies::run(env, nodes, instances, runs),
        BenchCommand::Planners {
            sizes,
            planners,
            runs,
            case,
        } => match case {
            Some(c) => {
                let (p, n) = c.split_once(':').ok_or_else(|| {
                    CliError::input(anyhow::anyhow!("--case is PLANNER:N, not {c:?}"))
                })?;
                let n: usize = n
                    .parse()
                    .map_err(|e| CliError::input(anyhow::anyhow!("--case {c:?}: {e}")))?;
                crate::planners::case(env, p, n, runs)
            }
            None => crate::planners::run(env, &sizes, &planners, runs),
        },
    }
}

/// A request rate: a finite number above zero.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{text}: a rate is a number of requests a second above 0"
        )),
    }
}

#[cfg(test)]
mod rate_tests {
    use super::positive_rate;

    #[test]
    fn a_rate_is_a_finite_number_above_zero() {
        assert_eq!(positive_rate("250"), Ok(250.0));
        for bad in ["0", "-5", "inf", "NaN", "fast"] {
            assert!(positive_rate(bad).is_err(), "{bad}");
        }
    }
}
