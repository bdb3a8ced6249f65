//! Notification sinks: the log, a JSON-lines file, webhooks and an AMQP bus.
//!
//! The store's event table is the source of truth and the outbox:
//! - the log and the file show what happens while Sextant runs: a thread
//!   tails the events from the notifier's start ([`tail`]);
//! - a webhook ([`webhook`]) and an AMQP bus ([`amqp`], Watcher's versioned
//!   notifications as oslo.messaging sends them, [`oslo`]) each keep a
//!   durable cursor in the store: their publisher ([`outbox`]) delivers the
//!   events after it, in order, at least once, and moves it only past what
//!   was confirmed. An endpoint that is down or slow never slows the engine
//!   (which only appends events) and loses nothing: when it comes back, the
//!   backlog drains. `sextant notifications status` shows each cursor's lag.
//!
//! A webhook's settings are bounded: `timeout` as every duration (see
//! [`crate::duration`]), at most [`MAX_WEBHOOK_RETRIES`] retries and
//! batches of at most [`MAX_WEBHOOK_QUEUE`] events.

pub mod amqp;
pub mod oslo;
pub mod outbox;
pub mod secret;
pub mod tail;
pub mod webhook;

use crate::duration::BoundedDuration;
use crate::store::Store;
use oslo::Priority;
use secret::SecretUrl;
use serde::Deserializer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The most retries a webhook may ask for.
pub const MAX_WEBHOOK_RETRIES: u32 = 100;

/// The most events a webhook reads from the store at once.
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
    /// Each event POSTed as JSON to a URL, from the outbox.
    Webhook {
        /// The URL (plain HTTP).
        url: SecretUrl,
        /// Retries after a failed POST (at most [`MAX_WEBHOOK_RETRIES`]).
        retries: u32,
        /// Timeout of one POST: seconds or humantime text.
        timeout: BoundedDuration,
        /// Events read from the store at once (at most
        /// [`MAX_WEBHOOK_QUEUE`]).
        queue: usize,
    },
    /// Watcher's versioned notifications on an AMQP bus, from the outbox.
    Amqp {
        /// `amqp://USER:PASS@HOST:PORT/VHOST` (or `amqps://`).
        url: SecretUrl,
        /// The topic exchange (`watcher`).
        exchange: String,
        /// The topic: routing keys are `<topic>.<priority>`
        /// (`notifications`).
        topic: String,
        /// Priorities of given event types, instead of Watcher's (INFO, and
        /// ERROR for an `.error` phase).
        priorities: BTreeMap<String, Priority>,
        /// Durable exchange and queues, as oslo.messaging's
        /// `amqp_durable_queues` (false).
        durable: bool,
        /// The host in `publisher_id` `infra-optim:<host>` (this machine's
        /// name).
        host: Option<String>,
        /// How long one batch may wait for the broker's confirms.
        timeout: BoundedDuration,
        /// With `amqps://`: PEM CA certificates that verify the broker, in
        /// addition to the system's (relative to the config file).
        ca_file: Option<PathBuf>,
    },
}

impl Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.lower())
    }
}

/// The events an AMQP sink publishes at once.
const AMQP_BATCH: usize = 1000;

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
    #[serde(default)]
    exchange: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    priorities: Option<BTreeMap<String, String>>,
    #[serde(default)]
    durable: Option<bool>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// An AMQP sink's url, checked: `amqp://` or `amqps://`, as the client
/// reads it. The message never shows the password.
fn amqp_url(url: &str) -> Result<SecretUrl, String> {
    let secret = SecretUrl::new(url);
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(format!(
            "an amqp sink's url {secret} must start with amqp:// or amqps://"
        ));
    }
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(_) => Ok(secret),
        Err(e) => Err(format!(
            "an amqp sink's url {secret} is not an AMQP URL: {}",
            secret.redact(&e)
        )),
    }
}

fn amqp_priorities(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, Priority>, String> {
    raw.into_iter()
        .map(|(event_type, p)| {
            if !oslo::is_watcher_event_type(&event_type) {
                return Err(format!(
                    "priorities: unknown event type {event_type:?}: expected one of Watcher's \
                     (audit.update, action_plan.execution.end, action.execution.error, …)"
                ));
            }
            let priority = Priority::parse(&p).ok_or_else(|| {
                format!(
                    "priorities: {event_type}: unknown priority {p:?}: expected one of {}",
                    Priority::ALL.map(Priority::lower).join(", ")
                )
            })?;
            Ok((event_type, priority))
        })
        .collect()
}

fn amqp_name(field: &str, v: Option<String>, default: &str) -> Result<String, String> {
    let v = v.unwrap_or_else(|| default.to_string());
    if v.is_empty() || v.len() > 200 || v.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "an amqp sink's {field} {v:?} must be 1 to 200 characters, without spaces"
        ));
    }
    Ok(v)
}

impl TryFrom<RawSink> for Sink {
    type Error = String;

    fn try_from(r: RawSink) -> Result<Self, String> {
        let webhook_only = r.retries.is_some() || r.queue.is_some();
        let amqp_only = r.exchange.is_some()
            || r.topic.is_some()
            || r.priorities.is_some()
            || r.durable.is_some()
            || r.host.is_some()
            || r.ca_file.is_some();
        let url_or_timeout = r.url.is_some() || r.timeout.is_some();
        match r.kind.as_str() {
            "log" if r.path.is_none() && !webhook_only && !amqp_only && !url_or_timeout => {
                Ok(Sink::Log)
            }
            "jsonl" if !webhook_only && !amqp_only && !url_or_timeout => match r.path {
                Some(path) => Ok(Sink::Jsonl { path }),
                None => Err("a jsonl sink needs a path".into()),
            },
            "webhook" if r.path.is_none() && !amqp_only => match r.url {
                Some(url) => Ok(Sink::Webhook {
                    url: SecretUrl::new(&url),
                    retries: r.retries.unwrap_or(3),
                    timeout: r.timeout.unwrap_or(BoundedDuration(Duration::from_secs(5))),
                    queue: r.queue.unwrap_or(1000),
                }),
                None => Err("a webhook sink needs a url".into()),
            },
            "amqp" if r.path.is_none() && !webhook_only => match r.url {
                Some(url) if r.ca_file.is_some() && !url.starts_with("amqps://") => Err(format!(
                    "an amqp sink's ca_file verifies a TLS broker: its url {} must start with amqps://",
                    SecretUrl::new(&url)
                )),
                Some(url) => Ok(Sink::Amqp {
                    url: amqp_url(&url)?,
                    exchange: amqp_name("exchange", r.exchange, "watcher")?,
                    topic: amqp_name("topic", r.topic, "notifications")?,
                    priorities: amqp_priorities(r.priorities.unwrap_or_default())?,
                    durable: r.durable.unwrap_or(false),
                    host: r.host.map(|h| amqp_name("host", Some(h), "")).transpose()?,
                    timeout: r
                        .timeout
                        .unwrap_or(BoundedDuration(Duration::from_secs(30))),
                    ca_file: r.ca_file,
                }),
                None => Err("an amqp sink needs a url".into()),
            },
            "log" | "jsonl" | "webhook" | "amqp" => Err(format!(
                "a {} sink takes only {}",
                r.kind,
                match r.kind.as_str() {
                    "log" => "type",
                    "jsonl" => "type and path",
                    "webhook" => "type, url, retries, timeout and queue",
                    _ =>
                        "type, url, exchange, topic, priorities, durable, host, timeout and ca_file",
                }
            )),
            other => Err(format!(
                "unknown sink type {other:?}: expected log, jsonl, webhook or amqp"
            )),
        }
    }
}

impl Sink {
    /// The key of a delivering sink's cursor (None for the log and the
    /// file, which keep none).
    pub fn cursor_key(&self) -> Option<String> {
        match self {
            Sink::Log | Sink::Jsonl { .. } => None,
            Sink::Webhook { url, .. } => Some(format!("webhook {url}")),
            Sink::Amqp { .. } => self.amqp_settings().map(|s| s.key()),
        }
    }

    fn amqp_settings(&self) -> Option<amqp::AmqpSettings> {
        match self {
            Sink::Amqp {
                url,
                exchange,
                topic,
                priorities,
                durable,
                host,
                timeout,
                ca_file,
            } => Some(amqp::AmqpSettings {
                url: url.clone(),
                exchange: exchange.clone(),
                topic: topic.clone(),
                priorities: priorities.clone(),
                durable: *durable,
                host: host.clone().unwrap_or_else(hostname),
                timeout: timeout.0.max(Duration::from_millis(100)),
                batch: AMQP_BATCH,
                ca_file: ca_file.clone(),
            }),
            _ => None,
        }
    }
}

/// This machine's name (Watcher's `CONF.host` default).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
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

/// The running sinks; they stop (after delivering what is left) when
/// dropped or stopped.
pub struct Notifier {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Notifier {
    /// Starts the sinks: the log and the file tail the events after event
    /// `after`; a webhook and an AMQP bus deliver from their cursors.
    pub fn start(db: crate::store::Location, sinks: &[Sink], after: i64) -> Option<Self> {
        if sinks.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut tailed = Vec::new();
        let mut delivering: Vec<Box<dyn outbox::Deliver>> = Vec::new();
        for s in sinks {
            let deliver: Box<dyn outbox::Deliver> = match s {
                Sink::Log => {
                    tailed.push(tail::Output::Log);
                    continue;
                }
                Sink::Jsonl { path } => {
                    tailed.push(tail::Output::File(path.clone()));
                    continue;
                }
                Sink::Webhook {
                    url,
                    retries,
                    timeout,
                    queue,
                } => Box::new(webhook::WebhookSink::new(
                    url.expose(),
                    *retries,
                    timeout.0,
                    *queue,
                )),
                Sink::Amqp { url, .. } => {
                    let Some(settings) = s.amqp_settings() else {
                        continue;
                    };
                    match amqp::AmqpSink::new(settings) {
                        Ok(a) => Box::new(a),
                        Err(e) => {
                            tracing::warn!("notification sink amqp {url}: {e}");
                            continue;
                        }
                    }
                }
            };
            delivering.push(deliver);
        }
        // A new sink's cursor starts at the newest event: it is made here,
        // before the caller goes on to write events, so none written from
        // now on is skipped by a publisher thread that starts late. (The
        // publisher registers again, which keeps an existing cursor, and
        // retries if this one failed.)
        if !delivering.is_empty() {
            match Store::open(&db) {
                Ok(mut store) => {
                    for d in &delivering {
                        if let Err(e) = store.register_sink_cursor(d.key()) {
                            tracing::warn!("notification sink {}: {e}", d.key());
                        }
                    }
                }
                Err(e) => tracing::warn!("notification sinks: {e}"),
            }
        }
        for deliver in delivering {
            let (db, flag) = (db.clone(), stop.clone());
            // Named, to tell it from the engine's threads in `top -H` or a
            // profile.
            let spawned = std::thread::Builder::new()
                .name("sextant-notify".into())
                .spawn(move || outbox::run(db, deliver, flag));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::warn!("notification sink publisher not started: {e}"),
            }
        }
        if !tailed.is_empty() {
            let (db, flag) = (db.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                tail::run(db, tailed, after, flag)
            }));
        }
        Some(Self { stop, threads })
    }

    /// Delivers what is left, then stops.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The id of the newest event (to notify only what comes after).
pub fn last_event_id(store: &Store) -> i64 {
    store.last_event_id().unwrap_or(0)
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
    }

    #[test]
    fn an_amqp_sink_is_checked_and_hides_its_password() {
        let ok = sink("type: amqp\nurl: amqp://watcher:pw-XYZ@127.0.0.1:5672/vh\n").expect("valid");
        let key = ok.cursor_key().expect("a cursor");
        assert_eq!(
            key,
            "amqp amqp://watcher:***@127.0.0.1:5672/vh exchange=watcher topic=notifications"
        );
        assert!(!format!("{ok:?}").contains("pw-XYZ"));
        assert!(!serde_json::to_string(&ok).expect("json").contains("pw-XYZ"));
        let Sink::Amqp {
            exchange,
            topic,
            durable,
            timeout,
            ..
        } = &ok
        else {
            panic!("{ok:?}")
        };
        assert_eq!(
            (exchange.as_str(), topic.as_str(), *durable),
            ("watcher", "notifications", false)
        );
        assert_eq!(timeout.0, Duration::from_secs(30));
        let ok = sink(
            "type: amqp\nurl: amqps://u:p@h/\nexchange: x\ntopic: t\ndurable: true\nhost: node0\n\
             priorities: {action.execution.error: critical}\n",
        )
        .expect("valid");
        let Sink::Amqp {
            priorities, host, ..
        } = &ok
        else {
            panic!("{ok:?}")
        };
        assert_eq!(
            priorities.get("action.execution.error"),
            Some(&Priority::Critical)
        );
        assert_eq!(host.as_deref(), Some("node0"));

        let e = sink("type: amqp\nurl: http://u:pw-XYZ@h/\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("url") && !e.contains("pw-XYZ"), "{e}");
        let e = sink("type: amqp\nurl: amqp://u:p@h/\npriorities: {action.nope: info}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("action.nope"), "{e}");
        let e = sink("type: amqp\nurl: amqp://u:p@h/\npriorities: {action.update: loud}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loud") && e.contains("critical"), "{e}");
        let e = sink("type: amqp\n").unwrap_err().to_string();
        assert!(e.contains("needs a url"), "{e}");
        let e = sink("type: amqp\nurl: amqp://u:pw-XYZ@h/\nca_file: ca.pem\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("amqps://") && e.contains("ca_file") && !e.contains("pw-XYZ"),
            "{e}"
        );
        let e = sink("type: webhook\nurl: http://h/\nca_file: ca.pem\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes only"), "{e}");
        let e = sink("type: amqp\nurl: amqp://h/\nqueue: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes only"), "{e}");
        let e = sink("type: webhook\nurl: http://h/\ntopic: t\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes only"), "{e}");
        let e = sink("type: amqp\nurl: amqp://h/\nexchange: \"a b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exchange"), "{e}");
    }
}
