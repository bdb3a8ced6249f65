//! `sextant db migrate` and `sextant db copy`: moving an installation's
//! store, and the simulated cloud beside it (docs/db-copy.md). A location is `sqlite:PATH`, a plain path, or a
//! `postgres://` URL; a password in it is never printed.

use super::output::{Format, Table, outln, print_structured};
use super::{CliError, CliResult, Env};
use crate::store::Location;
use crate::store::StoreError;
use crate::store::copy::{CopyError, CopyProgress, CopyReport, copy};
use crate::store::db_schema::{Migration, migrate};
use crate::store::location::StoreDirectory;
use clap::Subcommand;
use serde::Serialize;
use sextant_sim_store::SimLocation;
use sextant_sim_store::copy::{self as sim_copy, SimCopyError, SimCopyReport};
use std::io::IsTerminal;
use std::process::ExitCode;

/// `db` subcommands.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Migrates the schema of the database (`--db`: sqlite:PATH, a path, or
    /// postgres://USER@HOST:PORT/DB) to this Sextant's newest version and
    /// says from which version to which. A newer schema is refused.
    Migrate {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Copies every row of every table from one store into another, new
    /// one (SQLite to PostgreSQL or back), in one transaction, then checks
    /// each table's row count and checksum on both sides; then the same
    /// for the simulated cloud beside the store, if there is one.
    Copy {
        /// The store to copy: sqlite:PATH, a path, or postgres://… (at this
        /// Sextant's schema version; read, never written).
        #[arg(long, value_name = "LOCATION")]
        from: String,
        /// The store to fill: sqlite:PATH, a path, or postgres://… (created
        /// or migrated if needed; refused if it holds any row).
        #[arg(long, value_name = "LOCATION")]
        to: String,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs a `db` subcommand.
pub fn run(env: &Env, c: DbCommand) -> CliResult {
    match c {
        DbCommand::Migrate { format } => {
            env.ready_store_directory()?;
            migrate_command(&env.db, format)
        }
        DbCommand::Copy { from, to, format } => {
            let from = parse(&from, "--from")?;
            let to = parse(&to, "--to")?;
            // A new store only in a directory that exists.
            to.prepare_directory(StoreDirectory::Named)
                .map_err(super::directory_error)?;
            if let Some(elsewhere) = &env.config.sim.sim_db {
                tracing::warn!(
                    "the simulated cloud the config names (sim: sim_db {elsewhere}) is not beside the store: db copy does not move it"
                );
            }
            copy_command(&from, &to, format)
        }
    }
}

fn parse(text: &str, flag: &str) -> Result<Location, CliError> {
    Location::parse(text, flag).map_err(CliError::input)
}

fn migrate_command(location: &Location, format: Format) -> CliResult {
    let m: Migration = migrate(location).map_err(|e| match e {
        e @ StoreError::TooNew { .. } => CliError::input(e),
        e => CliError::from(e),
    })?;
    if !print_structured(format, &m)? {
        if m.from == m.to {
            outln!(
                "{}: at schema version {}, the newest: nothing to do",
                m.database,
                m.to
            );
        } else {
            outln!(
                "{}: migrated from schema version {} to {}",
                m.database,
                m.from,
                m.to
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The simulated cloud that lives with a store: `sim.db` beside its
/// SQLite file, or schema `sextant_sim` of its PostgreSQL database.
fn sim_beside(store: &Location) -> SimLocation {
    match store {
        Location::Sqlite(file) => SimLocation::Sqlite(sextant_sim_store::path_beside(file)),
        Location::Postgres(url) => SimLocation::Postgres(url.clone()),
    }
}

/// What becomes of the simulated cloud that lives with the source store.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum SimOutcome {
    /// Copied and verified.
    Copied(SimCopyReport),
    /// There is none beside the source: nothing to copy.
    Absent {
        /// Where it was looked for.
        from: String,
    },
    /// Both stores' clouds are one (two SQLite files in one directory
    /// share its `sim.db`): nothing to copy.
    Shared {
        /// The one cloud.
        at: String,
    },
}

/// A store's copy and its simulated cloud's.
#[derive(Debug, Serialize)]
struct CopyOutput {
    #[serde(flatten)]
    store: CopyReport,
    /// The simulated cloud beside the store.
    sim: SimOutcome,
}

/// Decides, before anything is written, whether the simulated cloud
/// beside `from` is copied beside `to`: a target cloud that holds anything
/// is refused (exit status 2) as a store that does is.
fn plan_sim_copy(from: &SimLocation, to: &SimLocation) -> Result<Option<SimOutcome>, CliError> {
    let failed = |e: SimCopyError| match e.is_input() {
        true => CliError::input(e),
        false => CliError::from(e),
    };
    if from == to {
        return Ok(Some(SimOutcome::Shared {
            at: from.to_string(),
        }));
    }
    if !sim_copy::exists(from).map_err(|e| failed(e.into()))? {
        return Ok(Some(SimOutcome::Absent {
            from: from.to_string(),
        }));
    }
    sim_copy::check_target(to).map_err(failed)?;
    Ok(None)
}

fn copy_command(from: &Location, to: &Location, format: Format) -> CliResult {
    let (from_sim, to_sim) = (sim_beside(from), sim_beside(to));
    let sim_decided = plan_sim_copy(&from_sim, &to_sim)?;
    let bar = (format == Format::Table && std::io::stdout().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {msg}  ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let result = copy(from, to, &mut |p| {
        if let Some(bar) = &bar {
            match p {
                CopyProgress::Total(n) => bar.set_length(n),
                CopyProgress::Copied(n) => bar.set_position(n),
                CopyProgress::Verifying => bar.set_message("verifying"),
            }
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result.map_err(|e: CopyError| match e.is_input() {
        true => CliError::input(e),
        false => CliError::from(e),
    })?;
    if !report.verified {
        if !print_structured(format, &report)? {
            print_table(&report);
        }
        return Err(verification_failed(&report));
    }
    // The store is copied and committed: now the cloud beside it, in a
    // transaction of its own (another file, or another schema).
    let sim = match sim_decided {
        Some(outcome) => outcome,
        None => SimOutcome::Copied(sim_copy::copy(&from_sim, &to_sim).map_err(|e| {
            let advice = format!(
                "the store was copied to {to} and verified, but the simulated cloud was not ({e}); \
                 the cloud at {to_sim} is as it was. To move it by hand (its clock and faults \
                 are not kept): sextant --db FROM sim show --format json > cloud.json, then \
                 sextant --db TO sim init --from cloud.json"
            );
            match e.is_input() {
                true => CliError::input(anyhow::anyhow!(advice)),
                false => CliError::from(anyhow::anyhow!(advice)),
            }
        })?),
    };
    let out = CopyOutput { store: report, sim };
    if !print_structured(format, &out)? {
        print_table(&out.store);
        print_sim(&out.sim);
    }
    Ok(ExitCode::SUCCESS)
}

fn verification_failed(report: &CopyReport) -> CliError {
    let differing: Vec<&str> = report
        .tables
        .iter()
        .filter(|t| !t.equal)
        .map(|t| t.table.as_str())
        .collect();
    CliError::from(anyhow::anyhow!(
        "verification failed: {} differ between {} and {}; the copy was rolled back ({} is as it was)",
        differing.join(", "),
        report.from,
        report.to,
        report.to
    ))
}

fn print_sim(sim: &SimOutcome) {
    match sim {
        SimOutcome::Copied(r) => {
            let mut t = checks_table();
            for c in &r.tables {
                t.row(check_row(
                    &format!("sim: {}", c.table),
                    (c.source_rows, c.target_rows),
                    (&c.source_checksum, &c.target_checksum),
                    c.equal,
                ));
            }
            outln!("{}", t.render());
            outln!(
                "copied the simulated cloud ({} rows) from {} to {}; every table verified",
                r.rows,
                r.from,
                r.to
            );
        }
        SimOutcome::Absent { from } => {
            outln!("no simulated cloud at {from}: nothing to copy besides the store");
        }
        SimOutcome::Shared { at } => {
            outln!("the simulated cloud at {at} is beside both stores: left as it is");
        }
    }
}

fn checks_table() -> Table {
    Table::new(&[
        "TABLE",
        "SOURCE ROWS",
        "TARGET ROWS",
        "SOURCE CHECKSUM",
        "TARGET CHECKSUM",
        "",
    ])
}

fn check_row(table: &str, rows: (u64, u64), sums: (&str, &str), equal: bool) -> Vec<String> {
    let short = |s: &str| s.chars().take(16).collect::<String>();
    vec![
        table.to_string(),
        rows.0.to_string(),
        rows.1.to_string(),
        short(sums.0),
        short(sums.1),
        if equal { "ok" } else { "DIFFERS" }.to_string(),
    ]
}

fn print_table(r: &CopyReport) {
    let mut t = checks_table();
    for c in &r.tables {
        t.row(check_row(
            &c.table,
            (c.source_rows, c.target_rows),
            (&c.source_checksum, &c.target_checksum),
            c.equal,
        ));
    }
    outln!("{}", t.render());
    if r.verified {
        outln!(
            "copied {} rows from {} to {} (schema version {}) in {:.2} s; every table verified",
            r.rows,
            r.from,
            r.to,
            r.schema_version,
            r.seconds
        );
    }
}
