//! `sextant notifications status`: each delivering sink's cursor in the
//! outbox (the events table) and how far behind it is.

use super::output::{Format, Table, outln, print_structured};
use super::{CliResult, Env};
use clap::Subcommand;
use serde::Serialize;

/// `notifications` subcommands.
#[derive(Subcommand, Debug)]
pub enum NotificationsCommand {
    /// Each delivering sink (webhook, amqp) of the config and of the
    /// database: the last event it delivered and how many wait.
    Status {
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// One sink's line.
#[derive(Debug, Serialize)]
struct SinkStatus {
    /// Kind and address (never a password), exchange and topic.
    sink: String,
    /// Whether the config file lists it (a cursor outlives its sink).
    configured: bool,
    /// The last event it delivered; null before its publisher first ran.
    last_event_id: Option<i64>,
    /// The newest event in the store.
    newest_event_id: i64,
    /// Events not yet delivered.
    lag: i64,
    /// When the cursor last moved.
    updated_at: Option<String>,
}

/// Runs a `notifications` subcommand.
pub fn run(env: &Env, c: NotificationsCommand) -> CliResult {
    match c {
        NotificationsCommand::Status { format } => status(env, format),
    }
}

fn status(env: &Env, format: Format) -> CliResult {
    let store = env.open_store()?;
    let newest = store.last_event_id()?;
    let cursors = store.sink_cursors()?;
    let configured: Vec<String> = env
        .config
        .notifications
        .iter()
        .filter_map(crate::notify::Sink::cursor_key)
        .collect();
    let mut lines = Vec::new();
    for key in &configured {
        if lines.iter().any(|l: &SinkStatus| &l.sink == key) {
            continue;
        }
        let c = cursors.iter().find(|c| &c.sink == key);
        lines.push(SinkStatus {
            sink: key.clone(),
            configured: true,
            last_event_id: c.map(|c| c.last_event_id),
            newest_event_id: newest,
            lag: match c {
                Some(c) => store.events_count_after(c.last_event_id)?,
                None => 0,
            },
            updated_at: c.map(|c| c.updated_at.clone()),
        });
    }
    for c in cursors.iter().filter(|c| !configured.contains(&c.sink)) {
        lines.push(SinkStatus {
            sink: c.sink.clone(),
            configured: false,
            last_event_id: Some(c.last_event_id),
            newest_event_id: newest,
            lag: store.events_count_after(c.last_event_id)?,
            updated_at: Some(c.updated_at.clone()),
        });
    }
    if print_structured(format, &lines)? {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        outln!("no delivering sink (webhook, amqp) is configured or has a cursor");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "SINK",
        "CONFIGURED",
        "DELIVERED TO",
        "NEWEST",
        "LAG",
        "UPDATED",
    ]);
    for l in &lines {
        t.row(vec![
            l.sink.clone(),
            if l.configured { "yes" } else { "no" }.into(),
            l.last_event_id
                .map_or_else(|| "-".into(), |i| i.to_string()),
            l.newest_event_id.to_string(),
            l.lag.to_string(),
            l.updated_at.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    outln!("{}", t.render());
    Ok(std::process::ExitCode::SUCCESS)
}
