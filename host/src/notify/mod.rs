//! Notification sinks: the log, a JSON-lines file, and webhooks.
//!
//! The store's event table is the source of truth: a notifier thread tails
//! it and hands each new event to the sinks. Webhooks are posted from a
//! bounded queue by their own thread, with retries, so a slow or dead
//! endpoint never slows the engine and loses no event from the store (when
//! the queue is full, the webhook misses the event; the store keeps it).
//!
//! A webhook's settings are bounded: `timeout` as every duration (see
//! [`crate::duration`]), at most [`MAX_WEBHOOK_RETRIES`] retries and a
//! queue of at most [`MAX_WEBHOOK_QUEUE`] events, allocated as events
//! arrive (not up front).

use crate::duration::BoundedDuration;
use crate::store::{EventRow, Store};
use serde::Deserializer;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// The most retries a webhook may ask for.
pub const MAX_WEBHOOK_RETRIES: u32 = 100;

/// The most events a webhook's queue may hold.
pub const MAX_WEBHOOK_QUEUE: usize = 100_000;

/// One sink, as the config file's `notifications:` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    deny_unknown_fields,
    try_from = "RawSink"
)]
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
        /// Retries after a failed POST (at most [`MAX_WEBHOOK_RETRIES`]).
        retries: u32,
        /// Timeout of one POST: seconds or humantime text.
        timeout: BoundedDuration,
        /// Events the queue holds before it drops new ones (at most
        /// [`MAX_WEBHOOK_QUEUE`]).
        queue: usize,
    },
}

/// A sink as written: one flat mapping, so that serde_yaml_ng reports a
/// bad value at its own line and column (an internally tagged enum buffers
/// the mapping and loses them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "some_retries")]
    retries: Option<u32>,
    #[serde(default)]
    timeout: Option<BoundedDuration>,
    #[serde(default, deserialize_with = "some_queue")]
    queue: Option<usize>,
}

impl TryFrom<RawSink> for Sink {
    type Error = String;

    fn try_from(r: RawSink) -> Result<Self, String> {
        let webhook_only =
            r.url.is_some() || r.retries.is_some() || r.timeout.is_some() || r.queue.is_some();
        match r.kind.as_str() {
            "log" if r.path.is_none() && !webhook_only => Ok(Sink::Log),
            "jsonl" if !webhook_only => match r.path {
                Some(path) => Ok(Sink::Jsonl { path }),
                None => Err("a jsonl sink needs a path".into()),
            },
            "webhook" if r.path.is_none() => match r.url {
                Some(url) => Ok(Sink::Webhook {
                    url,
                    retries: r.retries.unwrap_or(3),
                    timeout: r.timeout.unwrap_or(BoundedDuration(Duration::from_secs(5))),
                    queue: r.queue.unwrap_or(1000),
                }),
                None => Err("a webhook sink needs a url".into()),
            },
            "log" | "jsonl" | "webhook" => Err(format!(
                "a {} sink takes only {}",
                r.kind,
                match r.kind.as_str() {
                    "log" => "type",
                    "jsonl" => "type and path",
                    _ => "type, url, retries, timeout and queue",
                }
            )),
            other => Err(format!(
                "unknown sink type {other:?}: expected log, jsonl or webhook"
            )),
        }
    }
}

fn some_retries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    retries(d).map(Some)
}

fn some_queue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    queue(d).map(Some)
}

fn retries<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n > MAX_WEBHOOK_RETRIES {
        return Err(serde::de::Error::custom(format!(
            "retries {n} is more than the most accepted, {MAX_WEBHOOK_RETRIES}"
        )));
    }
    Ok(n)
}

fn queue<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 || n > MAX_WEBHOOK_QUEUE {
        return Err(serde::de::Error::custom(format!(
            "queue {n} must be between 1 and {MAX_WEBHOOK_QUEUE} events"
        )));
    }
    Ok(n)
}

/// A webhook's queue: a channel that grows as events arrive, bounded by
/// counting what is in it (a `sync_channel` allocates its whole capacity
/// up front).
struct HookQueue {
    tx: Sender<EventRow>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl HookQueue {
    /// Queues `e`; false when the queue is full or the worker is gone.
    fn offer(&self, e: EventRow) -> bool {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        if self.tx.send(e).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        true
    }
}

enum Output {
    Log,
    File(PathBuf),
    Hook(HookQueue, String),
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

fn webhook_worker(url: String, retries: u32, timeout: Duration, queue: usize) -> HookQueue {
    let (tx, rx) = std::sync::mpsc::channel::<EventRow>();
    let queued = Arc::new(AtomicUsize::new(0));
    let in_worker = queued.clone();
    std::thread::spawn(move || {
        for event in rx {
            in_worker.fetch_sub(1, Ordering::SeqCst);
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
    HookQueue {
        tx,
        queued,
        capacity: queue.clamp(1, MAX_WEBHOOK_QUEUE),
    }
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
                        timeout.0.max(Duration::from_millis(100)),
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
            Output::Hook(queue, url) => {
                if !queue.offer(e.clone()) {
                    tracing::warn!(
                        "webhook {url}: queue full, event {} left to the store",
                        e.id
                    )
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(yaml: &str) -> Result<Sink, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn webhook_queue_is_bounded() {
        // serde_yaml_ng places a refused value at the start of its mapping:
        // the sink's entry, with the field named in the message.
        let e = crate::config::Config::parse(
            "notifications:\n  - {type: log}\n  - type: webhook\n    url: http://x\n    queue: 1000000000\n",
            std::path::Path::new("c.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml: line 3 column 5"), "{e}");
        assert!(
            e.contains("queue 1000000000") && e.contains("100000"),
            "{e}"
        );
        assert!(sink("type: webhook\nurl: http://x\nqueue: 0\n").is_err());
        let e = sink("type: webhook\nurl: http://x\nretries: 4000000000\n").unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
        for t in [".inf", "1e300", "-1", ".nan"] {
            let e = sink(&format!("type: webhook\nurl: http://x\ntimeout: {t}\n")).unwrap_err();
            assert!(e.location().is_some(), "{t}: {e}");
        }
        let ok = sink("type: webhook\nurl: http://x\ntimeout: 2s\nqueue: 100000\n").expect("valid");
        assert!(matches!(ok, Sink::Webhook { queue: 100_000, .. }));

        // The queue refuses past its capacity while nothing drains it.
        let (tx, _rx) = std::sync::mpsc::channel();
        let q = HookQueue {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: 2,
        };
        let event = || EventRow {
            id: 1,
            at: String::new(),
            event_type: "t".into(),
            object_type: "o".into(),
            object_uuid: "u".into(),
            action_plan_uuid: None,
            old_state: None,
            new_state: None,
            payload: serde_json::Value::Null,
        };
        assert!(q.offer(event()) && q.offer(event()));
        assert!(!q.offer(event()));
    }
}
