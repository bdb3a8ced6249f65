//! `sextant service list`: the `serve` hosts of this database and their
//! roles, as Watcher's services table lists them (docs/fleet.md); and how
//! a host's id and roles are resolved.

use super::output::{Format, Table, out, print_structured};
use super::{CliError, CliResult, Env};
use crate::store::fleet::Role;
use clap::Subcommand;
use std::process::ExitCode;

/// `service` subcommands.
#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Every service (a `serve` host's decision engine or applier), ACTIVE
    /// or FAILED from its last heartbeat on the database's clock.
    List {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs a `service` subcommand.
pub fn run(env: &Env, cmd: ServiceCommand) -> CliResult {
    match cmd {
        ServiceCommand::List { format } => {
            let mut store = env.open_store()?;
            let rows = store.services(env.service_down_time())?;
            if !print_structured(format, &rows)? {
                let mut t =
                    Table::new(&["ID", "NAME", "HOST", "STATUS", "LAST SEEN UP", "MESSAGE"]);
                for r in &rows {
                    t.row(vec![
                        r.id.to_string(),
                        r.name.clone(),
                        r.host.clone(),
                        r.status.to_string(),
                        r.last_seen_up.clone(),
                        r.status_message.clone().unwrap_or_default(),
                    ]);
                }
                out!("{}", t.render());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The longest host id.
const MAX_HOST_ID: usize = 255;

/// This host's id: `flag` (`serve --host-id`), else `SEXTANT_HOST_ID`, else
/// the config's `host_id`, else the hostname. Bad input (empty, too long,
/// spaces or control characters) names where it came from.
pub fn host_id(env: &Env, flag: Option<&str>) -> Result<String, CliError> {
    let (id, from) = if let Some(f) = flag {
        (f.to_string(), "--host-id")
    } else if let Some(v) = std::env::var("SEXTANT_HOST_ID")
        .ok()
        .filter(|v| !v.is_empty())
    {
        (v, "SEXTANT_HOST_ID")
    } else if let Some(c) = &env.config.host_id {
        (c.clone(), "config host_id")
    } else {
        return Ok(hostname());
    };
    if id.is_empty()
        || id.len() > MAX_HOST_ID
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CliError::input(anyhow::anyhow!(
            "{from} {id:?} is not a host id: 1 to {MAX_HOST_ID} characters, no spaces or control characters"
        )));
    }
    Ok(id)
}

/// The roles `serve` runs: `flag` (`--roles`), else the config's, else
/// both; none at all is bad input.
pub fn roles(env: &Env, flag: Option<&[Role]>) -> Result<Vec<Role>, CliError> {
    let (mut roles, from) = match (flag, &env.config.roles) {
        (Some(r), _) => (r.to_vec(), "--roles"),
        (None, Some(r)) => (r.clone(), "config roles"),
        (None, None) => (Role::ALL.to_vec(), ""),
    };
    roles.sort_by_key(|r| Role::ALL.iter().position(|a| a == r));
    roles.dedup();
    if roles.is_empty() {
        return Err(CliError::input(anyhow::anyhow!(
            "{from} names no role: give decision, applier or both"
        )));
    }
    Ok(roles)
}

/// The machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

impl Env {
    /// How old a heartbeat may be before its service is FAILED.
    pub fn service_down_time(&self) -> std::time::Duration {
        self.config
            .service_down_time
            .unwrap_or(crate::config::DEFAULT_SERVICE_DOWN_TIME)
    }
}
