//! Sextant's own metrics, as `sextant serve` exposes them (`GET /metrics`
//! on `metrics.listen` or `serve --metrics ADDR`; `docs/metrics.md`).
//!
//! The store is the record, so the metrics are read from it: a thread
//! tails the event table (as the notifier does) and observes each action's
//! and audit's duration when it ends (from its ONGOING event to its end
//! event), and counts plans and actions by state again when events came
//! (checked every [`REFRESH`]; an idle store costs one read of the
//! notification cursors). So the
//! metrics cover every applier writing to the database, `serve`'s own and
//! `action-plan start --wait` in other processes alike. Durations are
//! observed for what starts after `serve` started.
//!
//! Each notification sink's lag is read from its durable cursor in the
//! outbox at every round. The API's request latency is observed by the
//! API's own edge layer, through the [`ApiLatency`] handle (a family of
//! histograms shared without the lock).
//!
//! The HTTP listener is [`listener`]; this module only fills the registry.

pub mod listener;

use crate::states::{ActionState, EventType, ObjectState, ObjectType, PlanState};
use crate::store::{Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the counts by state are read from the store.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The states an action ends a run in.
const ENDS: [&str; 4] = ["SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"];

/// A `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// Watcher's state name.
    pub state: String,
}

/// The labels of an action's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action type.
    pub action_type: String,
    /// How it ended.
    pub state: String,
}

/// The labels of an audit's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    /// ONESHOT, CONTINUOUS or EVENT.
    pub audit_type: String,
    /// How the run ended.
    pub state: String,
}

/// The label of a notification sink's lag.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink's cursor key (its kind and address, never a password).
    pub sink: String,
}

/// The labels of an API request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// The HTTP method.
    pub method: String,
    /// The route's template (`/v1/audits/{id}`), never the raw path;
    /// `unmatched` for what no route answers.
    pub route: String,
    /// The HTTP status code.
    pub status: String,
}

/// The API's request latency histograms, by method, route template and
/// status: a handle the API observes into (cloning shares them).
pub type ApiLatency = Family<ApiRequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn duration_histogram() -> Histogram {
    // 10 ms to ~5.8 h.
    Histogram::new(exponential_buckets(0.01, 2.0, 22))
}

/// The metrics and their registry.
pub struct Metrics {
    registry: Registry,
    plans: Family<StateLabel, Gauge>,
    actions: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    running_actions: Gauge,
    action_duration: Family<ActionLabels, Histogram, fn() -> Histogram>,
    audit_duration: Family<AuditLabels, Histogram, fn() -> Histogram>,
    sink_lag: Family<SinkLabel, Gauge>,
    api_latency: ApiLatency,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sextant");
        let plans = Family::<StateLabel, Gauge>::default();
        let actions = Family::<StateLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        let running_actions = Gauge::default();
        let action_duration: Family<ActionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let audit_duration: Family<AuditLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "action_plans",
            "Action plans by state (deleted ones included)",
            plans.clone(),
        );
        registry.register(
            "actions",
            "Actions by state (deleted ones included)",
            actions.clone(),
        );
        registry.register(
            "applier_queue_depth",
            "Action plans queued for an applier (PENDING)",
            queue_depth.clone(),
        );
        registry.register(
            "applier_running_actions",
            "Actions running now (ONGOING)",
            running_actions.clone(),
        );
        registry.register_with_unit(
            "action_duration",
            "How long actions ran, from ONGOING to their end, per action type and end state",
            prometheus_client::registry::Unit::Seconds,
            action_duration.clone(),
        );
        registry.register_with_unit(
            "audit_duration",
            "How long audit runs took, from ONGOING to their end, per audit type and end state",
            prometheus_client::registry::Unit::Seconds,
            audit_duration.clone(),
        );
        let sink_lag = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "notification_sink_lag",
            "Events a delivering notification sink (webhook, amqp) has not delivered yet, from its cursor in the outbox",
            sink_lag.clone(),
        );
        let api_latency: ApiLatency = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "api_request_duration",
            "How long the API took to answer, per method, route template and status",
            prometheus_client::registry::Unit::Seconds,
            api_latency.clone(),
        );
        Self {
            registry,
            sink_lag,
            api_latency,
            plans,
            actions,
            queue_depth,
            running_actions,
            action_duration,
            audit_duration,
        }
    }
}

impl Metrics {
    /// The text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The handle the API observes its request latency into.
    pub fn api_latency(&self) -> ApiLatency {
        self.api_latency.clone()
    }

    /// Sets each sink's lag from its cursor: the events after it. A cursor
    /// gone from the store (never, today) keeps its last value.
    pub fn refresh_sink_lag(&self, store: &Store) -> Result<(), StoreError> {
        for c in store.sink_cursors()? {
            let lag = store.events_count_after(c.last_event_id)?;
            self.sink_lag
                .get_or_create(&SinkLabel { sink: c.sink })
                .set(lag);
        }
        Ok(())
    }

    /// Sets the counts by state from the store.
    pub fn refresh_counts(&self, store: &Store) -> Result<(), StoreError> {
        let counts = store.state_counts()?;
        for &s in PlanState::ALL {
            self.plans
                .get_or_create(&StateLabel {
                    state: s.as_str().into(),
                })
                .set(counts.plans_in(s));
        }
        for &s in ActionState::ALL {
            self.actions
                .get_or_create(&StateLabel {
                    state: s.as_str().into(),
                })
                .set(counts.actions_in(s));
        }
        self.queue_depth.set(counts.plans_in(PlanState::Pending));
        self.running_actions
            .set(counts.actions_in(ActionState::Ongoing));
        Ok(())
    }
}

/// When each running action and audit went ONGOING, from the events.
#[derive(Default)]
struct Starts {
    actions: HashMap<String, SystemTime>,
    audits: HashMap<String, SystemTime>,
}

fn parse_at(at: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(at)
        .or_else(|_| humantime::parse_rfc3339_weak(at))
        .ok()
}

impl Starts {
    /// Observes the durations the events end. An action runs from its
    /// ONGOING event to its end (a run interrupted back to PENDING is not
    /// counted; a resumed one counts from its last start); an audit run
    /// from its `audit.strategy.start` event to its next state change, or
    /// for a CONTINUOUS audit (no state change between runs) to the
    /// strategy's end (`audit.strategy.end`: SUCCEEDED, `.error`: FAILED).
    fn observe(&mut self, m: &Metrics, store: &Store, events: &[crate::store::EventRow]) {
        for e in events {
            let Some(at) = parse_at(&e.at) else {
                continue;
            };
            let since = |start: SystemTime| {
                at.duration_since(start)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
            };
            match (e.object_type, e.new_state.map(ObjectState::as_str)) {
                (ObjectType::Audit, _) if e.event_type == EventType::AuditStrategyStart => {
                    self.audits.insert(e.object_uuid.clone(), at);
                }
                (ObjectType::Audit, to) => {
                    // A run ends with the audit's next state change, or, for
                    // a CONTINUOUS audit (which stays ONGOING without an
                    // event), with its strategy's end.
                    let strategy_ended = match e.event_type {
                        EventType::AuditStrategyEnd => Some("SUCCEEDED"),
                        EventType::AuditStrategyError => Some("FAILED"),
                        _ => None,
                    };
                    if to.is_none() && strategy_ended.is_none() {
                        continue;
                    }
                    if !self.audits.contains_key(&e.object_uuid) {
                        continue;
                    }
                    let Ok(audit) = store.audit(&e.object_uuid) else {
                        continue;
                    };
                    let audit_type = audit.audit_type;
                    let state = match (to, strategy_ended) {
                        (Some(to), _) => to,
                        (None, Some(end)) if audit_type == crate::states::AuditType::Continuous => {
                            end
                        }
                        _ => continue,
                    };
                    let Some(start) = self.audits.remove(&e.object_uuid) else {
                        continue;
                    };
                    m.audit_duration
                        .get_or_create(&AuditLabels {
                            audit_type: audit_type.to_string(),
                            state: state.into(),
                        })
                        .observe(since(start));
                }
                (ObjectType::Action, Some("ONGOING")) => {
                    self.actions.insert(e.object_uuid.clone(), at);
                }
                (ObjectType::Action, Some(to)) => {
                    let Some(start) = self.actions.remove(&e.object_uuid) else {
                        continue;
                    };
                    if !ENDS.contains(&to) {
                        continue;
                    }
                    let Ok(action) = store.action(&e.object_uuid) else {
                        continue;
                    };
                    let action_type = action.action_type;
                    m.action_duration
                        .get_or_create(&ActionLabels {
                            action_type,
                            state: to.into(),
                        })
                        .observe(since(start));
                }
                _ => {}
            }
        }
    }
}

/// The running collection: a thread that tails the store; stops when
/// dropped.
pub struct Collector {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Starts filling `metrics` from the store at `db`, with the events
    /// after `after`.
    pub fn start(db: crate::store::Location, metrics: Arc<Mutex<Metrics>>, after: i64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let store = match Store::open(&db) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("metrics: cannot read the store: {e}");
                    return;
                }
            };
            let mut cursor = after;
            let mut starts = Starts::default();
            // Every state change appends an event in its transaction: the
            // counts are read again only when events came.
            let mut changed = true;
            while !flag.load(Ordering::SeqCst) {
                let began = Instant::now();
                if let Ok(m) = metrics.lock() {
                    if let Ok(events) = store.events(None, cursor) {
                        if let Some(last) = events.last() {
                            cursor = last.id;
                            changed = true;
                        }
                        starts.observe(&m, &store, &events);
                    }
                    if changed {
                        match m.refresh_counts(&store) {
                            Ok(()) => changed = false,
                            Err(e) => tracing::warn!("metrics: counting plans and actions: {e}"),
                        }
                    }
                    // Cursors move without new events (a backlog draining):
                    // read at every round.
                    if let Err(e) = m.refresh_sink_lag(&store) {
                        tracing::warn!("metrics: reading the notification cursors: {e}");
                    }
                }
                let until = began + REFRESH;
                while !flag.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse() {
        let t = parse_at(&crate::store::now()).expect("the store's own format");
        assert!(t <= SystemTime::now());
    }

    #[test]
    fn the_exposition_names_every_metric() {
        let m = Metrics::default();
        m.action_duration
            .get_or_create(&ActionLabels {
                action_type: "migrate".into(),
                state: "SUCCEEDED".into(),
            })
            .observe(1.5);
        m.audit_duration
            .get_or_create(&AuditLabels {
                audit_type: "ONESHOT".into(),
                state: "FAILED".into(),
            })
            .observe(0.2);
        m.sink_lag
            .get_or_create(&SinkLabel {
                sink: "webhook http://h/e".into(),
            })
            .set(3);
        m.api_latency()
            .get_or_create(&ApiRequestLabels {
                method: "GET".into(),
                route: "/v1/audits/{id}".into(),
                status: "404".into(),
            })
            .observe(0.003);
        let text = m.encode();
        for name in [
            "sextant_action_duration_seconds_bucket{",
            "action_type=\"migrate\"",
            "# TYPE sextant_applier_queue_depth gauge",
            "# TYPE sextant_applier_running_actions gauge",
            "# TYPE sextant_audit_duration_seconds histogram",
            "# TYPE sextant_notification_sink_lag gauge",
            "# TYPE sextant_api_request_duration_seconds histogram",
            "route=\"/v1/audits/{id}\"",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
    }
}
