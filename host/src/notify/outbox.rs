//! The publisher of one delivering sink: reads the events after the sink's
//! durable cursor, in id order, hands them to the sink, and advances the
//! cursor only past what the sink confirmed. It runs on its own thread with
//! its own database connection, so an endpoint that is down or slow delays
//! only its own deliveries: the applier only appends events.
//!
//! A failed delivery is retried with a backoff (200 ms doubling to 10 s),
//! from the cursor: at least once, never skipping an event.

use crate::store::{EventRow, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often an idle publisher looks for new events.
const POLL: Duration = Duration::from_millis(50);

/// How long a publisher that caught up (it read fewer events than a batch)
/// lets new events gather before it reads again: while the engine runs,
/// events come in bursts, and one read, one mapping of their subjects and
/// one wait for the endpoint's confirms then serve many events instead of
/// a few (fewer wakeups and round trips, less CPU per notification taken
/// from the engine's threads). It bounds the latency it adds.
const LINGER: Duration = Duration::from_millis(100);

/// How often a publisher saves its cursor while it delivers: each save is
/// a write transaction, which the engine's commits would wait behind. It
/// is saved at once when it catches up, and before the publisher stops;
/// a crash in between delivers the unsaved part again (at least once).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The publisher thread's nice value (Linux: a thread's own priority).
const NICE: i32 = 10;

/// The first wait after a failed delivery; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long a stopping publisher goes on delivering what was committed
/// before the stop (it stops at once on a failure: the cursor keeps the
/// rest for the next run).
pub const DRAIN: Duration = Duration::from_secs(30);

/// A sink that delivers events from the outbox.
pub trait Deliver: Send {
    /// The sink's cursor key: its kind and address, never a password.
    fn key(&self) -> &str;

    /// The most events handed over at once.
    fn batch(&self) -> usize;

    /// Delivers `events` in order. `Ok(n)`: the first `n` were confirmed
    /// (all of them, unless the sink stops early); `Err((n, why))`: the
    /// first `n` were confirmed, then delivery failed. A sink that waits
    /// between retries gives up when `stop` is set.
    fn deliver(
        &mut self,
        store: &Store,
        events: &[EventRow],
        stop: &AtomicBool,
    ) -> Result<usize, (usize, String)>;
}

/// Sleeps `d`, waking early when `stop` is set; true when stopped.
pub fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    stop.load(Ordering::SeqCst)
}

/// The cursor as last saved.
struct Saved {
    cursor: i64,
    at: Instant,
}

impl Saved {
    /// Saves `cursor` if it moved. A cursor that cannot be saved is tried
    /// again at the next save; meanwhile a restart delivers those events
    /// again (at least once).
    fn save(&mut self, store: &mut Store, key: &str, cursor: i64) {
        if cursor <= self.cursor {
            return;
        }
        match store.advance_sink_cursor(key, cursor) {
            Ok(()) => {
                self.cursor = cursor;
                self.at = Instant::now();
            }
            Err(e) => tracing::warn!("notification sink {key}: cursor not saved: {e}"),
        }
    }
}

/// Puts the calling thread (and the threads it starts later, such as the
/// AMQP client's I/O thread) in Linux's idle scheduling class: it runs on
/// a CPU no other thread of the machine wants, and a waking engine or API
/// thread takes that CPU at once. Nice alone (10) still left it about a
/// tenth of a contended core and late preemption, which the applier paid
/// for on two cores. It is never starved outright (the class keeps a
/// small share), so a backlog still drains on a busy machine, only later;
/// `sextant notifications status` shows the lag.
fn run_when_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads `param` during the call; pid
    // 0 is the calling thread; SCHED_IDLE takes priority 0.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `sink`'s publisher until `stop`, then delivers what was committed
/// before the stop (for at most [`DRAIN`], and not past a failure).
pub fn run(db: crate::store::Location, mut sink: Box<dyn Deliver>, stop: Arc<AtomicBool>) {
    let key = sink.key().to_string();
    // The engine's threads come first: on a busy machine the publisher
    // takes the CPU they leave (a backlog drains later; a plan is never
    // slowed by its notifications).
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!("notification sink {key}: priority unchanged: {e}");
    }
    if let Err(e) = run_when_idle() {
        tracing::debug!("notification sink {key}: scheduling class unchanged: {e}");
    }
    let mut backoff = FIRST_BACKOFF;
    // Opening and registering are retried as deliveries are: a database
    // briefly locked must not end the publisher.
    let (mut store, mut cursor) = loop {
        match Store::open(&db).and_then(|mut s| s.register_sink_cursor(&key).map(|c| (s, c))) {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!("notification sink {key}: {e}");
                if nap(backoff, &stop) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    backoff = FIRST_BACKOFF;
    let mut saved = Saved {
        cursor,
        at: Instant::now(),
    };
    let mut drain: Option<(i64, Instant)> = None;
    loop {
        if drain.is_none() && stop.load(Ordering::SeqCst) {
            let newest = store.last_event_id().unwrap_or(cursor);
            drain = Some((newest, Instant::now() + DRAIN));
        }
        if let Some((target, until)) = drain
            && (cursor >= target || Instant::now() >= until)
        {
            saved.save(&mut store, &key, cursor);
            return;
        }
        let events = match store.events_after(cursor, sink.batch()) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("notification sink {key}: {e}");
                if drain.is_some() {
                    saved.save(&mut store, &key, cursor);
                    return;
                }
                nap(backoff, &stop);
                continue;
            }
        };
        if events.is_empty() {
            // Caught up: the cursor is saved now.
            saved.save(&mut store, &key, cursor);
            if drain.is_some() {
                return;
            }
            nap(POLL, &stop);
            continue;
        }
        let started = Instant::now();
        let (done, failure) = match sink.deliver(&store, &events, &stop) {
            Ok(n) => (n, None),
            Err((n, why)) => (n, Some(why)),
        };
        tracing::debug!(
            "notification sink {key}: {done} of {} events after {cursor} delivered in {:?}",
            events.len(),
            started.elapsed()
        );
        if let Some(last) = done.checked_sub(1).and_then(|i| events.get(i)) {
            cursor = last.id;
            if saved.at.elapsed() >= SAVE_EVERY {
                saved.save(&mut store, &key, cursor);
            }
        }
        match failure {
            None => {
                backoff = FIRST_BACKOFF;
                // Caught up when it read: let a batch gather (a stopping
                // publisher drains at once).
                if events.len() < sink.batch() && drain.is_none() {
                    nap(LINGER, &stop);
                }
            }
            Some(why) => {
                tracing::warn!(
                    "notification sink {key}: delivery after event {cursor} failed: {why}; retrying in {}",
                    humantime::format_duration(backoff)
                );
                // Stopping: what failed waits for the next run, from the
                // cursor (a stopping command does not wait on a dead
                // endpoint).
                if drain.is_some() || nap(backoff, &stop) {
                    saved.save(&mut store, &key, cursor);
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The calling thread's scheduling class.
    fn policy() -> i32 {
        // SAFETY: reads the calling thread's policy; no pointer is passed.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn a_publisher_thread_and_the_threads_it_starts_run_in_the_idle_class() {
        let (own, child) = std::thread::spawn(|| {
            super::run_when_idle().expect("SCHED_IDLE needs no privilege");
            let child = std::thread::spawn(policy).join().expect("child thread");
            (policy(), child)
        })
        .join()
        .expect("publisher thread");
        assert_eq!(own, libc::SCHED_IDLE);
        assert_eq!(
            child,
            libc::SCHED_IDLE,
            "an I/O thread it starts inherits it"
        );
        assert_ne!(policy(), libc::SCHED_IDLE, "other threads are left alone");
    }
}
