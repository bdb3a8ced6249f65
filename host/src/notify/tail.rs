//! The sinks that only show what happens while Sextant runs: the log and a
//! JSON-lines file. A thread tails the event table from where the notifier
//! started and writes each new event to them; they keep no cursor.

use crate::states::ObjectState;
use crate::store::{EventRow, Store};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the tail writes.
pub enum Output {
    /// The log (info level).
    Log,
    /// A JSON-lines file.
    File(PathBuf),
}

/// Tails the events after `after` into `outputs` until `stop`, then makes
/// a last pass.
pub fn run(db: crate::store::Location, outputs: Vec<Output>, after: i64, stop: Arc<AtomicBool>) {
    let Ok(store) = Store::open(&db) else { return };
    let mut cursor = after;
    loop {
        let last_pass = stop.load(Ordering::SeqCst);
        if let Ok(events) = store.events(None, cursor) {
            for e in events {
                cursor = e.id;
                write(&outputs, &e);
            }
        }
        if last_pass {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write(outputs: &[Output], e: &EventRow) {
    for o in outputs {
        match o {
            Output::Log => tracing::info!(
                "event {} {} {} {}: {} -> {}",
                e.id,
                e.event_type,
                e.object_type,
                e.object_uuid,
                e.old_state.map_or("-", ObjectState::as_str),
                e.new_state.map_or("-", ObjectState::as_str)
            ),
            Output::File(path) => {
                let line = serde_json::to_string(e).unwrap_or_default();
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(err) = written {
                    tracing::warn!("notification file {}: {err}", path.display());
                }
            }
        }
    }
}
