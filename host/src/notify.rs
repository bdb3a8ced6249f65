//! Notification sinks: the log, a JSON-lines file, and webhooks.
//!
//! The store's event table is the source of truth: a notifier thread tails
//! it and hands each new event to the sinks. Webhooks are posted from a
//! bounded queue by their own thread, with retries, so a slow or dead
//! endpoint never slows the engine and loses no event from the store (when
//! the queue is full, the webhook misses the event; the store keeps it).

use crate::store::{EventRow, Store};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

/// One sink, as the config file's `notifications:` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Sink {
    /// Each event as a log line (info level).
    Log,
    /// Each event as one JSON line appended to a file.
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// Each event POSTed as JSON to a URL.
    Webhook {
        /// The URL (plain HTTP).
        url: String,
        /// Retries after a failed POST.
        #[serde(default = "three")]
        retries: u32,
        /// Timeout of one POST, seconds.
        #[serde(default = "five")]
        timeout: f64,
        /// Events the queue holds before it drops new ones.
        #[serde(default = "thousand")]
        queue: usize,
    },
}

fn three() -> u32 {
    3
}
fn five() -> f64 {
    5.0
}
fn thousand() -> usize {
    1000
}

enum Output {
    Log,
    File(PathBuf),
    Hook(SyncSender<EventRow>, String),
}

/// A running notifier; stops (after a last pass) when dropped or stopped.
pub struct Notifier {
    stop: Arc<AtomicBool>,
    tail: Option<std::thread::JoinHandle<()>>,
}

fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .map_err(|e| e.to_string())?;
    let resp = agent.run(req).map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

fn webhook_worker(
    url: String,
    retries: u32,
    timeout: Duration,
    queue: usize,
) -> SyncSender<EventRow> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<EventRow>(queue.max(1));
    std::thread::spawn(move || {
        for event in rx {
            let body = serde_json::to_string(&event).unwrap_or_default();
            let mut delay = Duration::from_millis(200);
            for attempt in 0..=retries {
                match post(&url, &body, timeout) {
                    Ok(()) => break,
                    Err(e) if attempt == retries => {
                        tracing::warn!("webhook {url}: event {} not delivered: {e}", event.id);
                    }
                    Err(_) => {
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
    });
    tx
}

impl Notifier {
    /// Starts tailing the store's events after event `after`.
    pub fn start(db: PathBuf, sinks: &[Sink], after: i64) -> Option<Self> {
        if sinks.is_empty() {
            return None;
        }
        let outputs: Vec<Output> = sinks
            .iter()
            .map(|s| match s {
                Sink::Log => Output::Log,
                Sink::Jsonl { path } => Output::File(path.clone()),
                Sink::Webhook {
                    url,
                    retries,
                    timeout,
                    queue,
                } => Output::Hook(
                    webhook_worker(
                        url.clone(),
                        *retries,
                        Duration::from_secs_f64(timeout.max(0.1)),
                        *queue,
                    ),
                    url.clone(),
                ),
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tail = std::thread::spawn(move || {
            let Ok(store) = Store::open(&db) else { return };
            let mut cursor = after;
            loop {
                let last_pass = flag.load(Ordering::SeqCst);
                if let Ok(events) = store.events(None, cursor) {
                    for e in events {
                        cursor = e.id;
                        deliver(&outputs, e);
                    }
                }
                if last_pass {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Some(Self {
            stop,
            tail: Some(tail),
        })
    }

    /// Delivers what is left, then stops.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.tail.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.finish();
    }
}

fn deliver(outputs: &[Output], e: EventRow) {
    for o in outputs {
        match o {
            Output::Log => tracing::info!(
                "event {} {} {} {}: {} -> {}",
                e.id,
                e.event_type,
                e.object_type,
                e.object_uuid,
                e.old_state.as_deref().unwrap_or("-"),
                e.new_state.as_deref().unwrap_or("-")
            ),
            Output::File(path) => {
                let line = serde_json::to_string(&e).unwrap_or_default();
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(err) = written {
                    tracing::warn!("notification file {}: {err}", path.display());
                }
            }
            Output::Hook(tx, url) => match tx.try_send(e.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(
                        "webhook {url}: queue full, event {} left to the store",
                        e.id
                    )
                }
                Err(TrySendError::Disconnected(_)) => {}
            },
        }
    }
}

/// The id of the newest event (to notify only what comes after).
pub fn last_event_id(store: &Store) -> i64 {
    store
        .conn()
        .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
        .unwrap_or(0)
}
