//! The `sextant` command line: argument parsing, logging set-up, exit
//! statuses, and one module per command group.
//!
//! Exit statuses: 0 success, 1 runtime failure, 2 bad usage or bad input
//! (with a message naming the file, field or id at fault).
//!
//! Standard output is written only through [`output::out!`] and
//! [`output::outln!`] (a closed pipe ends the command quietly); an error is
//! printed once, here in [`main`].

#![deny(clippy::print_stdout)]

mod action_types;
pub(crate) mod apply;
mod audits;
pub(crate) mod datamodel;
mod db;
mod decide;
mod demo;
pub(crate) mod flow_view;
mod heartbeat;
mod help_markdown;
pub(crate) mod import;
pub(crate) mod import_flows;
mod lifecycle;
mod lists;
mod notifications;
pub mod output;
mod plan;
pub(crate) mod plans;
mod plugins;
mod policies;
mod serve;
mod services;
mod shell_docs;
pub(crate) mod sim;
pub(crate) mod sim_faults;

/// For the `sextant-bench` crate only (bench/): the strategy benchmark
/// reads the example cluster and generates large ones as `sim` does.
#[doc(hidden)]
pub use sim::{generate as generate_cluster, read_snapshot};

use crate::action_types::{ActionTypeDirs, ActionTypeRegistry};
use crate::config::{Config, data_dir};
use crate::plugins::{PluginRegistry, SearchPath};
use crate::store::location::StoreDirectory;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Sextant audits a pool of infrastructure against a goal, plans the actions
/// that reach it, and applies them, through plugins.
#[derive(Parser, Debug)]
#[command(name = "sextant", version, about, propagate_version = true)]
pub struct Cli {
    /// A plugin directory searched before all others (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,

    /// The database: a SQLite file (a path, or sqlite:PATH; made if
    /// missing, in a directory that must exist) or a PostgreSQL database
    /// (postgres://USER@HOST:PORT/DB). Default: $SEXTANT_DB, else the
    /// config's `database:`, else $XDG_DATA_HOME/sextant/sextant.db.
    #[arg(long, value_name = "DB", global = true)]
    db: Option<String>,

    /// The config file (default: $SEXTANT_CONFIG, else
    /// $XDG_CONFIG_HOME/sextant/config.yaml).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// More log output (-v info, -vv debug, -vvv trace); SEXTANT_LOG takes
    /// a tracing filter too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Discovered plugins: list, show, check.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Action types (YAML): list, show, validate, register, unregister, run.
    #[command(subcommand, name = "action-type")]
    ActionType(action_types::ActionTypeCommand),
    /// The main job on the simulated cloud, start to finish: seed it, audit
    /// it for server consolidation, plan, apply, and compare before/after.
    Demo {
        /// The cluster snapshot (default: examples/clusters/small.yaml).
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Synchronises goals and strategies with the strategy plugins (also
    /// done by every command that reads them).
    Sync {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Scheduling and error-recovery policies: list, show, validate.
    #[command(subcommand)]
    Policy(policies::PolicyCommand),
    /// Goals, as the strategy plugins declare them.
    #[command(subcommand)]
    Goal(decide::GoalCommand),
    /// Strategies, from the strategy plugins.
    #[command(subcommand)]
    Strategy(decide::StrategyCommand),
    /// Audit templates: create, list, show, update, delete.
    #[command(subcommand, name = "audit-template")]
    AuditTemplate(audits::TemplateCommand),
    /// Audits: create (a ONESHOT audit runs at once), list, show, update,
    /// cancel, delete.
    #[command(subcommand)]
    Audit(audits::AuditCommand),
    /// The simulated cloud: init, show, generate.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// The cluster model the configured collector sees now.
    #[command(subcommand)]
    Datamodel(datamodel::DatamodelCommand),
    /// Plans a solution statelessly: `planner`, `config`, `solution` and
    /// `instance_hosts` in a YAML or JSON file (Watcher's planner vectors).
    Plan {
        /// The input file.
        #[arg(long)]
        input: std::path::PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
        /// Also store the plan (RECOMMENDED) and print its uuid.
        #[arg(long)]
        save: bool,
    },
    /// Action plans: import, list, show, graph, start, cancel, resume,
    /// delete, retry.
    #[command(subcommand, name = "action-plan")]
    ActionPlan(plans::ActionPlanCommand),
    /// Actions of plans: list, show, skip.
    #[command(subcommand)]
    Action(plans::ActionCommand),
    /// The event log: every state change of audits, plans and actions.
    #[command(args_conflicts_with_subcommands = true)]
    History {
        /// Purges old events.
        #[command(subcommand)]
        purge: Option<HistoryCommand>,
        /// Only the events of one action plan.
        #[arg(long)]
        plan: Option<String>,
        /// Keep printing new events as they come.
        #[arg(long)]
        follow: bool,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Notification sinks: the delivery status of webhooks and AMQP buses.
    #[command(subcommand)]
    Notifications(notifications::NotificationsCommand),
    /// The store's database: migrate its schema, copy it into another
    /// (SQLite, PostgreSQL) to move an installation.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// The service: runs CONTINUOUS audits, applies queued and interrupted
    /// plans, and feeds the notification sinks.
    Serve {
        /// Stop after this long: seconds or a duration like 90s, 2m (at most
        /// 366 days; default: run until killed).
        #[arg(long, value_name = "SECONDS", value_parser = parse_duration_arg)]
        exit_after: Option<std::time::Duration>,
        /// Serves Watcher's REST API v1 on this address (HOST:PORT),
        /// overriding the config's `api: {listen}`.
        #[arg(long, value_name = "ADDR")]
        api: Option<std::net::SocketAddr>,
        /// Expose Sextant's own Prometheus metrics (GET /metrics) on this
        /// address, e.g. 127.0.0.1:9464 (overrides the config's
        /// metrics.listen).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// This host's id among the hosts sharing the database (default:
        /// $SEXTANT_HOST_ID, else the config's host_id, else the hostname).
        #[arg(long, value_name = "ID")]
        host_id: Option<String>,
        /// What this host runs, comma-separated: decision (CONTINUOUS
        /// audits), applier (queued and interrupted plans); default: the
        /// config's roles, else both.
        #[arg(long, value_name = "ROLES", value_delimiter = ',')]
        roles: Option<Vec<crate::store::fleet::Role>>,
    },
    /// The services of the `serve` hosts sharing this database: list.
    #[command(subcommand)]
    Service(services::ServiceCommand),
    /// Prints the shell completion script for SHELL (bash, zsh, fish, ...).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the man page, sextant(1), as roff.
    Man,
    /// Prints docs/cli.md: every command's help, rendered from these
    /// definitions.
    #[command(hide = true, name = "help-markdown")]
    HelpMarkdown,
}

/// A duration flag, through the one bounded parser ([`crate::duration`]).
fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_text(text).map_err(|e| e.to_string())
}

/// `history` subcommands.
#[derive(Subcommand, Debug)]
enum HistoryCommand {
    /// Deletes the events older than a time, except those of plans and
    /// audits that have not ended; prints how many.
    Purge {
        /// An RFC 3339 time, or a duration before now (30d, 12h).
        #[arg(long)]
        before: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
}

/// An error with the exit status it calls for.
#[derive(Debug)]
pub struct CliError {
    /// 1 (runtime) or 2 (bad usage or input).
    pub status: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl CliError {
    /// Bad usage or bad input: exit status 2.
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: 2,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        Self {
            status: 1,
            error: e.into(),
        }
    }
}

/// An operation's refusal (`ops`): bad input (exit status 2), or a
/// failure of the store (1).
pub fn op_error(e: crate::ops::OpError) -> CliError {
    if let crate::ops::OpError::Field { field, value, why } = &e {
        return CliError::input(anyhow::anyhow!(
            "--{} {value}: {why}",
            field.replace('_', "-")
        ));
    }
    if e.is_input() {
        CliError::input(e)
    } else {
        CliError::from(e)
    }
}

/// A store's directory that is not ready: one the operator named that does
/// not exist is bad input (2); Sextant's own that cannot be made, a
/// runtime failure (1).
pub fn directory_error(e: crate::store::location::DirectoryError) -> CliError {
    match e {
        e @ crate::store::location::DirectoryError::Missing { .. } => CliError::input(e),
        e => CliError::from(e),
    }
}

/// What a command returns: the exit status on success paths that are not 0
/// (`plugins check` of a bad file), or an error.
pub type CliResult = Result<ExitCode, CliError>;

/// What every command may need: the config and the plugin search path.
#[derive(Clone)]
pub struct Env {
    /// The parsed config file.
    pub config: Config,
    /// `--plugin-dir` flags.
    pub plugin_dirs: Vec<PathBuf>,
    /// The database.
    pub db: crate::store::Location,
    /// Whose directory the database is in: Sextant's own (the default
    /// location, made on first use) or one the operator named (it must
    /// exist). See `store::location`'s create-vs-open rule.
    pub db_directory: StoreDirectory,
}

impl Env {
    /// The plugin search path of this invocation.
    pub fn search_path(&self) -> SearchPath {
        SearchPath::from_env(&self.plugin_dirs, &self.config.plugin_dirs)
    }

    /// Discovers and loads the plugins; an explicit `--plugin-dir` that does
    /// not exist is bad input.
    pub fn registry(&self) -> Result<PluginRegistry, CliError> {
        for d in &self.plugin_dirs {
            if !d.is_dir() {
                return Err(CliError::input(anyhow::anyhow!(
                    "--plugin-dir {}: no such directory",
                    d.display()
                )));
            }
        }
        Ok(PluginRegistry::discover(&self.search_path()))
    }

    /// The action-type directories of this invocation.
    pub fn action_type_dirs(&self) -> ActionTypeDirs {
        let env = std::env::var("SEXTANT_ACTION_TYPE_PATH").ok();
        let exe = std::env::current_exe().ok();
        let mut dirs = ActionTypeDirs::new(
            env.as_deref(),
            &self.config.action_type_dirs,
            &data_dir(),
            exe.as_deref(),
        );
        dirs.allow_shadowing_builtin = self.config.allow_shadowing_builtin_types;
        dirs
    }

    /// Readies the store's directory by the create-vs-open rule: made
    /// when it is Sextant's own, else it must exist (exit status 2 naming
    /// it when it does not; nothing is made).
    pub fn ready_store_directory(&self) -> Result<(), CliError> {
        self.db
            .prepare_directory(self.db_directory)
            .map_err(directory_error)
    }

    /// Opens the store (its directory readied first, see
    /// [`Env::ready_store_directory`]). Every command opens its store
    /// here; `serve`'s later connections open the one it started with.
    pub fn open_store(&self) -> Result<crate::store::Store, CliError> {
        self.ready_store_directory()?;
        Ok(crate::store::Store::open(&self.db)?)
    }

    /// Whose directory the simulated cloud is in: Sextant's own only when
    /// it is beside the store there (no `sim: {sim_db}` in the config).
    pub fn sim_directory(&self) -> StoreDirectory {
        match self.config.sim.sim_db {
            None => self.db_directory,
            Some(_) => StoreDirectory::Named,
        }
    }

    /// Opens the simulated cloud, its directory readied by the same rule
    /// as the store's.
    pub fn open_sim(&self) -> Result<sextant_sim_store::SimDb, CliError> {
        let at = self.sim_db();
        if let Some(file) = at.file() {
            crate::store::location::prepare_directory(file, self.sim_directory())
                .map_err(directory_error)?;
        }
        Ok(sextant_sim_store::SimDb::open(at)?)
    }

    /// Opens the store, discovers the plugins, and synchronises goals and
    /// strategies, as every command that reads them does first.
    pub fn open_store_synced(
        &self,
    ) -> Result<
        (
            crate::store::Store,
            PluginRegistry,
            crate::store::sync::SyncReport,
        ),
        CliError,
    > {
        self.open_store_synced_with(&self.action_types())
    }

    /// As [`Env::open_store_synced`], with the action types the command
    /// already read (read twice, each refused file was reported twice).
    pub fn open_store_synced_with(
        &self,
        types: &ActionTypeRegistry,
    ) -> Result<
        (
            crate::store::Store,
            PluginRegistry,
            crate::store::sync::SyncReport,
        ),
        CliError,
    > {
        let plugins = self.registry()?;
        let (store, report) = self.open_store_synced_to(&plugins, types)?;
        Ok((store, plugins, report))
    }

    /// The store, synchronised with plugins and action types the command
    /// already loaded.
    pub fn open_store_synced_to(
        &self,
        plugins: &PluginRegistry,
        types: &ActionTypeRegistry,
    ) -> Result<(crate::store::Store, crate::store::sync::SyncReport), CliError> {
        let mut store = self.open_store()?;
        let report = crate::store::sync::sync_with_plugins(&mut store, plugins)?;
        // Action descriptions, as Watcher's applier syncs them at start.
        let mut latest: std::collections::BTreeMap<String, String> = Default::default();
        for t in types.all() {
            latest.insert(t.name.clone(), t.description.clone());
        }
        store.sync_action_descriptions(&latest.into_iter().collect::<Vec<_>>())?;
        Ok((store, report))
    }

    /// The cluster model's source for audits: the configured collector,
    /// with the simulated cloud beside the database.
    pub fn model_source(&self) -> crate::decide::ModelSource {
        crate::decide::ModelSource {
            collector: self.config.collector.clone(),
            config: serde_json::json!({"sim_db": self.sim_db().connection_text()}),
            metrics: self.config.metrics.clone(),
        }
    }

    /// Configuration handed to handlers in their context, per driver. It
    /// holds the simulated cloud's URL with its password, if any: the
    /// context is handed to handlers in memory and never stored (events
    /// and plans hold none of it).
    pub fn driver_config(&self) -> serde_json::Value {
        serde_json::json!({"sim": {"sim_db": self.sim_db().connection_text()}})
    }

    /// Where the simulated cloud is: `sim: {sim_db: …}` in the config (a
    /// relative file relative to the config's directory), else where the
    /// store is: the same PostgreSQL database (shared by every host), or
    /// `sim.db` beside the SQLite file.
    pub fn sim_db(&self) -> sextant_sim_store::SimLocation {
        use sextant_sim_store::SimLocation;
        if let Some(text) = &self.config.sim.sim_db {
            return match (SimLocation::parse(text.expose()), &self.config.source) {
                (SimLocation::Sqlite(p), Some(file)) => SimLocation::Sqlite(
                    crate::config::resolve_dir(&p, file.parent().unwrap_or(Path::new("."))),
                ),
                (l, _) => l,
            };
        }
        match &self.db {
            crate::store::Location::Sqlite(file) => {
                SimLocation::Sqlite(sextant_sim_store::path_beside(file))
            }
            crate::store::Location::Postgres(url) => SimLocation::Postgres(url.clone()),
        }
    }

    /// Reads every action type.
    pub fn action_types(&self) -> ActionTypeRegistry {
        ActionTypeRegistry::load(&self.action_type_dirs())
    }
}

/// The user's language: `--lang`, else `LANG`, else English.
pub fn user_lang(explicit: Option<String>) -> String {
    explicit
        .or_else(|| std::env::var("LANG").ok())
        .filter(|l| !l.is_empty() && l != "C" && l != "POSIX")
        .unwrap_or_else(|| "en".to_string())
}

/// Crates whose trace-level events carry credentials: logged at debug at
/// most, even under `-vvv` or `SEXTANT_LOG=trace`. lapin writes the AMQP
/// `Connection.StartOk` frame, with the password, at trace; ureq (through
/// `ureq_proto`) dumps every byte it sends and receives at trace, "NOT
/// REDACTED" as its documentation says: `Authorization` and
/// `X-Auth-Token` headers, Keystone's password in a token request. (At
/// debug ureq logs only headers it knows to be harmless; tokio-postgres
/// logs statements and their parameters at debug and only its polling at
/// trace, and never the password it authenticates with; rustls logs no
/// secret.)
const NEVER_TRACED: [&str; 4] = ["lapin", "amq_protocol", "ureq", "ureq_proto"];

fn init_logging(verbose: u8, service: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // A service says what it does: start, plans applied, their ends.
        0 if service => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut filter = std::env::var("SEXTANT_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Their trace prints credentials (see NEVER_TRACED): never above
    // debug, whatever was asked.
    for quiet in NEVER_TRACED {
        if let Ok(d) = format!("{quiet}=debug").parse() {
            filter = filter.add_directive(d);
        }
    }
    // `try_init` also routes the crates that log through `log` (ureq,
    // tokio-postgres, rustls) into this subscriber and its filter
    // (tracing-subscriber's `tracing-log` feature).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .try_init();
}

/// Colour in log lines only when standard error is a terminal and
/// `NO_COLOR` is unset or empty (no escape codes in a redirected log).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An error's message and its causes, each said once: a cause whose text
/// the message already holds (an error that prints its source, then the
/// source itself) is left out.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs the command line; what `main` calls. The one place an error is
/// printed.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, matches!(cli.command, Command::Serve { .. }));
    match run(cli) {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e.error) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e.error));
            ExitCode::from(e.status)
        }
    }
}

/// The database this invocation uses: `--db`, else `SEXTANT_DB`, else the
/// config's `database:`, else `sextant.db` in the data directory; and
/// whose directory it is in (named by any of the three, or Sextant's
/// own). A text that names no database is bad input, named with where it
/// came from (and no password).
pub fn database(
    flag: Option<&str>,
    config: &Config,
) -> Result<(crate::store::Location, StoreDirectory), CliError> {
    use crate::store::Location;
    let env = std::env::var("SEXTANT_DB").ok().filter(|v| !v.is_empty());
    let config_source = match &config.source {
        Some(file) => format!("{}: database:", file.display()),
        None => "config database:".to_string(),
    };
    let named = [
        (flag, "--db".to_string(), false),
        (env.as_deref(), "SEXTANT_DB".to_string(), false),
        (
            config
                .database
                .as_ref()
                .map(crate::config::SecretUrl::expose),
            config_source,
            true,
        ),
    ]
    .into_iter()
    .find_map(|(text, source, in_config)| text.map(|t| (t, source, in_config)));
    match named {
        Some((text, source, in_config)) => {
            let location = Location::parse(text, &source).map_err(CliError::input)?;
            // A relative file in the config is relative to the config's
            // directory, as its other paths are.
            let location = match (location, &config.source) {
                (Location::Sqlite(p), Some(file)) if in_config => Location::Sqlite(
                    crate::config::resolve_dir(&p, file.parent().unwrap_or(Path::new("."))),
                ),
                (l, _) => l,
            };
            Ok((location, StoreDirectory::Named))
        }
        None => Ok((
            Location::Sqlite(crate::config::data_dir().join("sextant.db")),
            StoreDirectory::Own,
        )),
    }
}

fn run(cli: Cli) -> CliResult {
    // Generated from the command line alone: no config, store or plugins.
    match cli.command {
        Command::Completions { shell } => return shell_docs::completions(shell),
        Command::Man => return shell_docs::man(),
        _ => {}
    }
    let config = Config::load(cli.config.as_deref()).map_err(CliError::input)?;
    let (db, db_directory) = database(cli.db.as_deref(), &config)?;
    let env = Env {
        config,
        plugin_dirs: cli.plugin_dirs,
        db,
        db_directory,
    };
    match cli.command {
        Command::Plugins(c) => plugins::run(&env, c),
        Command::ActionType(c) => action_types::run(&env, c),
        Command::Sync { format } => decide::sync(&env, format),
        Command::Demo { cluster, format } => demo::run(&env, cluster, format),
        Command::Policy(c) => policies::run(&env, c),
        Command::Goal(c) => decide::goal(&env, c),
        Command::Strategy(c) => decide::strategy(&env, c),
        Command::AuditTemplate(c) => audits::template(&env, c),
        Command::Audit(c) => audits::audit(&env, c),
        Command::Sim(c) => sim::run(&env, c),
        Command::Datamodel(c) => datamodel::run(&env, c),
        Command::Serve {
            exit_after,
            api,
            metrics,
            host_id,
            roles,
        } => serve::serve(
            &env,
            serve::ServeFlags {
                exit_after,
                api,
                metrics,
                host_id,
                roles,
            },
        ),
        Command::Service(c) => services::run(&env, c),
        Command::Notifications(c) => notifications::run(&env, c),
        Command::Db(c) => db::run(&env, c),
        Command::Plan {
            input,
            format,
            save,
        } => plan::run(&env, &input, format, save),
        Command::ActionPlan(c) => plans::action_plan(&env, c),
        Command::History {
            purge: Some(HistoryCommand::Purge { before, format }),
            ..
        } => lifecycle::purge_history(&env, &before, format),
        Command::History {
            purge: None,
            plan,
            follow,
            format,
        } => apply::history(&env, plan.as_deref(), follow, format),
        Command::Action(c) => plans::action(&env, c),
        Command::Completions { .. } | Command::Man => unreachable!("handled above"),
        Command::HelpMarkdown => {
            output::out!("{}", help_markdown::render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading plan.json: {0}")]
    struct SaysItsSource(#[source] std::io::Error);

    #[test]
    fn an_error_message_says_each_cause_once() {
        let e = anyhow::Error::new(SaysItsSource(std::io::Error::other("disk on fire")))
            .context("import");
        // `{:#}` said "disk on fire" twice.
        assert_eq!(
            format!("{e:#}"),
            "import: reading plan.json: disk on fire: disk on fire"
        );
        assert_eq!(error_message(&e), "import: reading plan.json: disk on fire");
        // A cause the message does not hold is kept.
        let e = anyhow::Error::new(std::io::Error::other("disk on fire")).context("import");
        assert_eq!(error_message(&e), "import: disk on fire");
    }
}
