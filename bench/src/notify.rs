//! `sextant-bench notify`: the AMQP sink against a real RabbitMQ (the
//! harness's, `scripts/services/rabbitmq.sh`: `--amqp-url
//! $SEXTANT_TEST_AMQP_URL`).
//!
//! - **Throughput**: a plan of N nop actions is applied with no sink
//!   running; then the sink starts from the cursor it had before the plan
//!   and publishes the backlog, with publisher confirms, until its durable
//!   cursor reaches the last event: notifications per second.
//! - **Overhead**: the same plan applied with the sink off and with the
//!   sink on (publishing while the applier runs, as under `serve`, its
//!   connection up before the plan starts; with the sink off, the same
//!   sink published the plan's creation events and stopped before the
//!   plan), in pairs in the same run,
//!   every other pair sink-on first; the applier's microseconds per action
//!   with the sink on against off, as a ratio of medians (target at most
//!   1.1).
//!
//! - **CPU**: the process's CPU time (all threads) per notification while
//!   the backlog drains (the publisher, lapin's I/O thread), and per action
//!   while the plan is applied with the sink off and on: figures the
//!   machine's load does not change as it changes wall times.
//!
//! - **Where the CPU goes** while the plan runs: with `--broker-pid`, the
//!   broker's CPU time (its process and descendants) per action with the
//!   sink off and on; and, with the sink on, this process's split between
//!   the publisher's idle-class threads (`SCHED_IDLE`: the publisher and
//!   the AMQP client's threads) and the rest (the applier).
//!
//! Every run has its own topic; its queues are deleted afterwards.

use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use sextant::notify::{Notifier, Sink, oslo};
use sextant::store::Store;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::child::{median, own_cpu_seconds};
use crate::proc_cpu::{own_idle_class_cpu_seconds, tree_cpu_seconds};

/// The 1-, 5- and 15-minute load averages.
pub(crate) fn load_average() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

fn sink(url: &str, topic: &str) -> anyhow::Result<(Sink, String)> {
    let s: Sink = serde_json::from_value(json!({
        "type": "amqp", "url": url, "topic": topic, "host": "bench",
    }))?;
    let key = s
        .cursor_key()
        .ok_or_else(|| anyhow::anyhow!("an amqp sink has a cursor"))?;
    Ok((s, key))
}

fn nops(n: usize) -> Vec<(&'static str, Value, Vec<usize>)> {
    (0..n)
        .map(|_| ("nop", json!({"message": null}), vec![]))
        .collect()
}

/// The notifications the events after `after` give.
fn notifications_after(store: &Store, after: i64) -> anyhow::Result<usize> {
    let mut cursor = after;
    let mut count = 0;
    loop {
        let events = store.events_after(cursor, 5000)?;
        let Some(last) = events.last() else {
            return Ok(count);
        };
        cursor = last.id;
        let subjects = store.notification_subjects(&events)?;
        count += events
            .iter()
            .map(|e| oslo::notifications_of(e, &subjects).len())
            .sum::<usize>();
    }
}

/// Waits until `key`'s cursor reaches `last`; how long it took.
fn drained(db: &Path, key: &str, last: i64, limit: Duration) -> anyhow::Result<f64> {
    let store = Store::open(db)?;
    let t = Instant::now();
    loop {
        if store.sink_cursor(key)?.unwrap_or(0) >= last {
            return Ok(t.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            t.elapsed() < limit,
            "the sink {key} did not deliver up to event {last} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The messages waiting in the `<topic>.info` queue the sink declared
/// (none consumes it; a nop plan has no ERROR notification): what it
/// published so far.
fn queued(url: &str, topic: &str) -> anyhow::Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let n = rt.block_on(async {
        let conn = lapin::Connection::connect(
            &sextant::notify::amqp::connect_url(url),
            lapin::ConnectionProperties::default(),
        )
        .await?;
        let ch = conn.create_channel().await?;
        let q = ch
            .queue_declare(
                format!("{topic}.info").as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        // No queue yet: the sink has published nothing to it.
        let n = match q {
            Ok(q) => u64::from(q.message_count()),
            Err(e) if e.to_string().contains("NOT_FOUND") => 0,
            Err(e) => return Err(e),
        };
        let _ = conn.close(200, "bye".into()).await;
        Ok::<u64, lapin::Error>(n)
    })?;
    Ok(n)
}

/// Deletes the queues the sink declared for `topic`.
fn delete_queues(url: &str, topic: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let conn = lapin::Connection::connect(
            &sextant::notify::amqp::connect_url(url),
            lapin::ConnectionProperties::default(),
        )
        .await?;
        let ch = conn.create_channel().await?;
        for p in ["info", "error"] {
            let _ = ch
                .queue_delete(
                    format!("{topic}.{p}").as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
        let _ = conn.close(200, "bye".into()).await;
        Ok::<(), lapin::Error>(())
    })?;
    Ok(())
}

/// One plan's figures, per action: wall time, this process's CPU time,
/// the broker's, and this process's idle-class threads' (the publisher's).
struct Timed {
    us: f64,
    cpu_us: f64,
    broker_cpu_us: f64,
    publisher_cpu_us: f64,
}

pub fn run(
    env: &Env,
    url: &str,
    actions: usize,
    runs: usize,
    broker_pid: Option<u32>,
) -> CliResult {
    let broker_cpu = || broker_pid.map_or(f64::NAN, tree_cpu_seconds);
    let dir = tempfile::Builder::new()
        .prefix("sextant-bench-notify")
        .tempdir()?;
    let load_before = load_average();
    let tag = format!("bench_{}", std::process::id());
    let plan_actions = nops(actions);

    // Throughput: the backlog of a whole plan, published with confirms.
    let mut rates = Vec::new();
    let mut cpu_per_notification = Vec::new();
    let mut broker_per_notification = Vec::new();
    let mut delivered = 0usize;
    for r in 0..runs {
        let db = dir.path().join(format!("throughput-{r}.db"));
        let topic = format!("{tag}_t{r}");
        let (s, key) = sink(url, &topic)?;
        let before = {
            let mut store = Store::open(&db)?;
            store.register_sink_cursor(&key)?
        };
        let plan = crate::applier::store_plan(&db, &plan_actions)?;
        crate::applier::apply_plan(env, &db, &plan, 32)?;
        let store = Store::open(&db)?;
        let last = store.last_event_id()?;
        let count = notifications_after(&store, before)?;
        let (cpu, broker) = (own_cpu_seconds(), broker_cpu());
        let notifier = Notifier::start(db.clone().into(), std::slice::from_ref(&s), last);
        let secs = drained(&db, &key, last, Duration::from_secs(600))?;
        let per_notification = |x: f64| x * 1e6 / count.max(1) as f64;
        cpu_per_notification.push(per_notification(own_cpu_seconds() - cpu));
        broker_per_notification.push(per_notification(broker_cpu() - broker));
        drop(notifier);
        delete_queues(url, &topic)?;
        delivered = count;
        rates.push(count as f64 / secs);
    }

    // Overhead: the applier with the sink off and on, alternately.
    let (mut off, mut on, mut pairs, mut during, mut drain_after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (Vec::new(), Vec::new());
    let (mut broker_off, mut broker_on, mut publisher_on) = (Vec::new(), Vec::new(), Vec::new());
    // Every other pair runs the sink-on plan first: neither side always
    // gets the cooler caches or the quieter moment.
    for r in 0..runs {
        let per_action = |x: f64| x * 1e6 / actions as f64;
        // Both sides are prepared alike: the sink publishes the plan's own
        // creation events first, so it is up (connected, its queues
        // declared) and caught up before the applier starts, as under
        // `serve`; with the sink off it is then stopped before the plan
        // runs. The two sides then differ only in the publisher running
        // during the plan (the sink-off side used to apply its plan right
        // after storing it, without the broker's work on the creation
        // events before it).
        let one = |sink_on: bool| -> anyhow::Result<(Timed, f64, f64)> {
            let side = if sink_on { "on" } else { "off" };
            let db = dir.path().join(format!("{side}-{r}.db"));
            let topic = format!("{tag}_{side}{r}");
            let (s, key) = sink(url, &topic)?;
            Store::open(&db)?.register_sink_cursor(&key)?;
            let plan = crate::applier::store_plan(&db, &plan_actions)?;
            let first = Store::open(&db)?.last_event_id()?;
            let mut notifier = Some(Notifier::start(
                db.clone().into(),
                std::slice::from_ref(&s),
                first,
            ));
            drained(&db, &key, first, Duration::from_secs(600))?;
            let before = queued(url, &topic)?;
            if !sink_on {
                drop(notifier.take());
            }
            let (cpu, broker, publisher) = (
                own_cpu_seconds(),
                broker_cpu(),
                own_idle_class_cpu_seconds(),
            );
            let wall = crate::applier::apply_plan(env, &db, &plan, 32)?.secs;
            let timed = Timed {
                us: per_action(wall),
                cpu_us: per_action(own_cpu_seconds() - cpu),
                broker_cpu_us: per_action(broker_cpu() - broker),
                publisher_cpu_us: per_action(own_idle_class_cpu_seconds() - publisher),
            };
            let published = queued(url, &topic)?.saturating_sub(before) as f64;
            let drain = match notifier {
                Some(n) => {
                    let last = Store::open(&db)?.last_event_id()?;
                    let secs = drained(&db, &key, last, Duration::from_secs(600))?;
                    drop(n);
                    secs
                }
                None => 0.0,
            };
            delete_queues(url, &topic)?;
            Ok((timed, published, drain))
        };
        let ((a, _, _), (b, published, drain)) = if r % 2 == 0 {
            let a = one(false)?;
            (a, one(true)?)
        } else {
            let on_first = one(true)?;
            (one(false)?, on_first)
        };
        off.push(a.us);
        on.push(b.us);
        cpu_off.push(a.cpu_us);
        cpu_on.push(b.cpu_us);
        broker_off.push(a.broker_cpu_us);
        broker_on.push(b.broker_cpu_us);
        publisher_on.push(b.publisher_cpu_us);
        pairs.push(b.us / a.us);
        during.push(published);
        drain_after.push(drain);
    }
    let (off_us, on_us) = (median(off.clone()), median(on.clone()));
    let doc = json!({
        "benchmark": "notify",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "broker": "RabbitMQ (publisher confirms, persistent messages)",
        "actions": actions,
        "runs": runs,
        "throughput": {
            "what": "the notifications of a plan's events, published as a backlog from the durable cursor with confirms",
            "notifications": delivered,
            "median_notifications_per_second": median(rates.clone()),
            "runs_notifications_per_second": rates,
            "median_cpu_us_per_notification": median(cpu_per_notification.clone()),
            "runs_cpu_us_per_notification": cpu_per_notification,
            "median_broker_cpu_us_per_notification": broker_pid.map(|_| median(broker_per_notification.clone())),
            "runs_broker_cpu_us_per_notification": broker_pid.map(|_| broker_per_notification),
        },
        "applier_overhead": {
            "what": "the applier's microseconds per nop action (parallel, 32 workers), with the AMQP sink publishing while it runs against no sink",
            "median_us_per_action_sink_off": off_us,
            "median_us_per_action_sink_on": on_us,
            "ratio_of_medians": on_us / off_us,
            "median_of_paired_ratios": median(pairs),
            "runs_us_sink_off": off,
            "runs_us_sink_on": on,
            "median_notifications_published_while_the_plan_ran": median(during),
            "notifications_of_the_plan": delivered,
            "median_seconds_to_drain_after_the_plan": median(drain_after),
            "median_cpu_us_per_action_sink_off": median(cpu_off.clone()),
            "median_cpu_us_per_action_sink_on": median(cpu_on.clone()),
            "runs_cpu_us_per_action_sink_off": cpu_off,
            "runs_cpu_us_per_action_sink_on": cpu_on,
            "median_publisher_cpu_us_per_action_sink_on": median(publisher_on.clone()),
            "runs_publisher_cpu_us_per_action_sink_on": publisher_on,
            "median_broker_cpu_us_per_action_sink_off": broker_pid.map(|_| median(broker_off.clone())),
            "median_broker_cpu_us_per_action_sink_on": broker_pid.map(|_| median(broker_on.clone())),
            "runs_broker_cpu_us_per_action_sink_off": broker_pid.map(|_| broker_off),
            "runs_broker_cpu_us_per_action_sink_on": broker_pid.map(|_| broker_on),
            "target_ratio": 1.1,
        },
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
