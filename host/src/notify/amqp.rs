//! The AMQP sink: Watcher's versioned notifications on an AMQP 0-9-1 bus
//! (RabbitMQ), as oslo.messaging's `messagingv2` notifier publishes them
//! (see [`super::oslo`]), with publisher confirms.
//!
//! Like oslo.messaging's rabbit driver it declares the topic exchange and,
//! for each routing key it publishes to, a queue of that name bound to it
//! ("to not miss notifications while nobody consumes them yet"), durable
//! only when the sink says `durable: true` (oslo.messaging's
//! `amqp_durable_queues`, false by default: both sides must agree, or the
//! broker refuses the second declaration). Messages are persistent.
//!
//! One connection and one confirming channel on the publisher's own thread
//! and runtime; a failed publish or a lost connection drops them, and the
//! next attempt reconnects and publishes again from the cursor, with the
//! same message ids.

use super::oslo::{self, Priority};
use super::outbox::Deliver;
use super::secret::SecretUrl;
use crate::store::{EventRow, Store};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// An AMQP sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpSettings {
    /// The broker (`amqp://USER:PASS@HOST:PORT/VHOST`, or `amqps://`).
    pub url: SecretUrl,
    /// The exchange (Watcher's `control_exchange`, `watcher`).
    pub exchange: String,
    /// The topic: routing keys are `<topic>.<priority>`.
    pub topic: String,
    /// Priorities of given event types, instead of Watcher's.
    pub priorities: BTreeMap<String, Priority>,
    /// Durable exchange and queues (oslo.messaging's `amqp_durable_queues`).
    pub durable: bool,
    /// The host in `publisher_id` (`infra-optim:<host>`).
    pub host: String,
    /// How long one batch may wait for the broker's confirms.
    pub timeout: Duration,
    /// Events published at once.
    pub batch: usize,
    /// PEM CA certificates that verify an `amqps://` broker, besides the
    /// system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl AmqpSettings {
    /// The cursor key: kind, address without password, exchange and topic.
    pub fn key(&self) -> String {
        format!(
            "amqp {} exchange={} topic={}",
            self.url, self.exchange, self.topic
        )
    }
}

struct Link {
    conn: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

/// One message of a batch: its priority (the routing key), its message id,
/// and where its body lies in the batch's bodies.
struct Outgoing {
    priority: Priority,
    id: String,
    body: std::ops::Range<usize>,
}

/// A batch's messages, their bodies in one buffer: kept between batches,
/// so building a batch allocates little once they have grown.
#[derive(Default)]
struct Batch {
    messages: Vec<Outgoing>,
    bodies: Vec<u8>,
    scratch: Vec<u8>,
}

/// The AMQP sink's publisher.
pub struct AmqpSink {
    settings: AmqpSettings,
    key: String,
    publisher_id: String,
    /// The routing key of each priority, by [`Priority::index`].
    routing_keys: Vec<String>,
    rt: tokio::runtime::Runtime,
    link: Option<Link>,
    origin: Option<String>,
    batch: Batch,
}

impl AmqpSink {
    /// A publisher for `settings` (it connects when it first publishes).
    pub fn new(settings: AmqpSettings) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            key: settings.key(),
            publisher_id: format!("infra-optim:{}", settings.host),
            routing_keys: Priority::ALL
                .iter()
                .map(|p| format!("{}.{}", settings.topic, p.lower()))
                .collect(),
            settings,
            rt,
            link: None,
            origin: None,
            batch: Batch::default(),
        })
    }

    /// Builds the messages of `events` into `self.batch`.
    fn build(&mut self, store: &Store, origin: &str, events: &[EventRow]) -> Result<(), String> {
        let subjects = store
            .notification_subjects(events)
            .map_err(|e| e.to_string())?;
        let b = &mut self.batch;
        b.messages.clear();
        b.bodies.clear();
        for e in events {
            for n in oslo::notifications_of(e, &subjects) {
                let priority = self
                    .settings
                    .priorities
                    .get(n.event_type)
                    .copied()
                    .unwrap_or(n.priority);
                let id = oslo::message_id(origin, n.event_id, n.part);
                let start = b.bodies.len();
                oslo::write_envelope(
                    &mut b.bodies,
                    &mut b.scratch,
                    &n,
                    priority,
                    &self.publisher_id,
                    &id,
                )
                .map_err(|e| format!("event {}: {e}", n.event_id))?;
                b.messages.push(Outgoing {
                    priority,
                    id,
                    body: start..b.bodies.len(),
                });
            }
        }
        Ok(())
    }
}

/// The URL the client connects to: an empty vhost (`amqp://h:5672/` or no
/// path) is RabbitMQ's default vhost `/`, as oslo.messaging and kombu read
/// a transport URL (the AMQP URI spec would make it the empty name).
pub fn connect_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let path_start = rest
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + 3 + i);
    let (head, tail) = url.split_at(path_start);
    let (path, query) = tail.split_at(tail.find(['?', '#']).unwrap_or(tail.len()));
    if path.is_empty() || path == "/" {
        format!("{head}/%2f{query}")
    } else {
        url.to_string()
    }
}

/// Why the sink could not reach the broker.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// The CA file could not be read.
    #[error("ca_file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The client failed (TLS, connection, AMQP).
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

async fn connect(s: &AmqpSettings) -> Result<Link, ConnectError> {
    let url = connect_url(s.url.expose());
    let properties =
        ConnectionProperties::default().with_connection_name("sextant notifications".into());
    let conn = match &s.ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|source| ConnectError::CaFile {
                path: path.clone(),
                source,
            })?;
            let tls = lapin::tcp::OwnedTLSConfig {
                identity: None,
                cert_chain: Some(pem),
            };
            Connection::connect_with_config(
                &url,
                properties,
                tls,
                lapin::runtime::default_runtime()?,
            )
            .await?
        }
        None => Connection::connect(&url, properties).await?,
    };
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .exchange_declare(
            s.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: s.durable,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(Link {
        conn,
        channel,
        declared: HashSet::new(),
    })
}

async fn publish(
    s: &AmqpSettings,
    link: &mut Link,
    routing_keys: &[String],
    batch: &Batch,
) -> Result<(), String> {
    let key_of = |m: &Outgoing| {
        routing_keys
            .get(m.priority.index())
            .map_or("", String::as_str)
    };
    for m in &batch.messages {
        let key = key_of(m);
        if link.declared.contains(key) {
            continue;
        }
        link.channel
            .queue_declare(
                key.into(),
                QueueDeclareOptions {
                    durable: s.durable,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("declaring queue {key}: {e}"))?;
        link.channel
            .queue_bind(
                key.into(),
                s.exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("binding queue {key}: {e}"))?;
        link.declared.insert(key.to_string());
    }
    // Every publish is started before any is awaited: each one's frames
    // are queued, in order, when it is first polled (lapin takes the
    // delivery tag and pushes the frames before its first await), and the
    // I/O thread then writes them together instead of one round trip each.
    let publishes = batch.messages.iter().map(|m| {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_message_id(m.id.as_str().into());
        link.channel.basic_publish(
            s.exchange.as_str().into(),
            key_of(m).into(),
            BasicPublishOptions::default(),
            batch.bodies.get(m.body.clone()).unwrap_or_default(),
            props,
        )
    });
    let confirms = in_order(publishes.collect()).await;
    let confirms = confirms
        .into_iter()
        .collect::<lapin::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    for (c, m) in confirms.into_iter().zip(&batch.messages) {
        let id = &m.id;
        match c.await.map_err(|e| e.to_string())? {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(_)) => return Err(format!("message {id} was returned")),
            Confirmation::Nack(_) => return Err(format!("the broker refused message {id}")),
            Confirmation::NotRequested => return Err("the channel confirms nothing".into()),
        }
    }
    Ok(())
}

/// Awaits `futures`, polling them in their order (the first poll of each
/// comes in that order too); their outputs in the same order.
async fn in_order<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

impl Deliver for AmqpSink {
    fn key(&self) -> &str {
        &self.key
    }

    fn batch(&self) -> usize {
        self.settings.batch
    }

    fn deliver(
        &mut self,
        store: &Store,
        events: &[EventRow],
        _stop: &AtomicBool,
    ) -> Result<usize, (usize, String)> {
        let origin = match &self.origin {
            Some(o) => o.clone(),
            None => {
                let o = store
                    .notification_origin()
                    .map_err(|e| (0, e.to_string()))?;
                self.origin = Some(o.clone());
                o
            }
        };
        let built = std::time::Instant::now();
        self.build(store, &origin, events).map_err(|e| (0, e))?;
        tracing::debug!(
            "notification sink {}: {} notifications of {} events built in {:?}",
            self.key,
            self.batch.messages.len(),
            events.len(),
            built.elapsed()
        );
        if self.batch.messages.is_empty() {
            return Ok(events.len());
        }
        let settings = &self.settings;
        let (routing_keys, batch) = (&self.routing_keys, &self.batch);
        let mut link = self.link.take();
        let result = self.rt.block_on(async {
            let attempt = async {
                if link.is_none() {
                    link = Some(connect(settings).await.map_err(|e| e.to_string())?);
                }
                match link.as_mut() {
                    Some(l) => publish(settings, l, routing_keys, batch).await,
                    None => Err("not connected".to_string()),
                }
            };
            match tokio::time::timeout(settings.timeout, attempt).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no confirm within {}",
                    humantime::format_duration(settings.timeout)
                )),
            }
        });
        match result {
            Ok(()) => {
                self.link = link;
                Ok(events.len())
            }
            Err(why) => {
                // Whatever went wrong, start again on a new connection.
                if let Some(l) = link {
                    let _ = self.rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(1), l.conn.close(0, "".into()))
                            .await
                    });
                }
                Err((0, self.settings.url.redact(&why)))
            }
        }
    }
}

impl Drop for AmqpSink {
    fn drop(&mut self) {
        if let Some(l) = self.link.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), l.conn.close(200, "bye".into())).await
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_vhost_is_the_default_one() {
        assert_eq!(connect_url("amqp://u:p@h:5672/"), "amqp://u:p@h:5672/%2f");
        assert_eq!(connect_url("amqp://u:p@h:5672"), "amqp://u:p@h:5672/%2f");
        assert_eq!(
            connect_url("amqps://h?heartbeat=5"),
            "amqps://h/%2f?heartbeat=5"
        );
        assert_eq!(connect_url("amqp://h/watcher"), "amqp://h/watcher");
        assert_eq!(connect_url("amqp://h/%2f"), "amqp://h/%2f");
    }
}
