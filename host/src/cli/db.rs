//! `sextant db migrate` and `sextant db copy`: moving an installation's
//! store (docs/db-copy.md). A location is `sqlite:PATH`, a plain path, or a
//! `postgres://` URL; a password in it is never printed.

use super::output::{Format, Table, outln, print_structured};
use super::{CliError, CliResult, Env};
use crate::store::Location;
use crate::store::StoreError;
use crate::store::copy::{CopyError, CopyProgress, CopyReport, copy};
use crate::store::db_schema::{Migration, migrate};
use clap::Subcommand;
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
    /// each table's row count and checksum on both sides.
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
        DbCommand::Migrate { format } => migrate_command(&env.db, format),
        DbCommand::Copy { from, to, format } => {
            let from = parse(&from, "--from")?;
            let to = parse(&to, "--to")?;
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

fn copy_command(from: &Location, to: &Location, format: Format) -> CliResult {
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
    if !print_structured(format, &report)? {
        print_table(&report);
    }
    if report.verified {
        return Ok(ExitCode::SUCCESS);
    }
    let differing: Vec<&str> = report
        .tables
        .iter()
        .filter(|t| !t.equal)
        .map(|t| t.table.as_str())
        .collect();
    Err(CliError::from(anyhow::anyhow!(
        "verification failed: {} differ between {} and {}; the copy was rolled back ({} is as it was)",
        differing.join(", "),
        report.from,
        report.to,
        report.to
    )))
}

fn print_table(r: &CopyReport) {
    let mut t = Table::new(&[
        "TABLE",
        "SOURCE ROWS",
        "TARGET ROWS",
        "SOURCE CHECKSUM",
        "TARGET CHECKSUM",
        "",
    ]);
    let short = |s: &str| s.chars().take(16).collect::<String>();
    for c in &r.tables {
        t.row(vec![
            c.table.clone(),
            c.source_rows.to_string(),
            c.target_rows.to_string(),
            short(&c.source_checksum),
            short(&c.target_checksum),
            if c.equal { "ok" } else { "DIFFERS" }.to_string(),
        ]);
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
