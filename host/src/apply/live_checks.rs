//! Simulation's live checks: the `pre_condition` of each action whose
//! effect was not predicted and that starts the plan, run against the cloud
//! before anything executes.
//!
//! Each check has its action's timeout (the policy's `recovery.timeout`),
//! from the moment it starts: creating the handler and its `pre_condition`
//! both count. An expired check is a problem naming its action; its handler
//! is asked to abort, and if the call still does not return, its thread is
//! left behind (it records nothing when it does return) and a new thread
//! takes the next checks. A stop ([`StopSignal`]) ends the batch at once:
//! the running handlers are asked to abort and no result is kept.
//!
//! A handler whose check passed is kept for the action's first attempt
//! (`Shared::prechecked`), so checking a root costs no second handler.
//! The checks run on one thread, or two for many checks (a round trip to
//! the blocking pool per check cost more than the checks themselves);
//! problems keep the plan's order.

use super::shared::PRECHECKED_MAX;
use super::*;

/// One action's live check.
pub(super) struct LiveCheck {
    /// The action's uuid.
    pub(super) uuid: String,
    /// The action's name.
    pub(super) name: String,
    /// Its action type.
    pub(super) action_type: String,
    /// Its handler entry.
    pub(super) entry: String,
    /// Its rendered parameters.
    pub(super) params: Value,
    /// Its handler context.
    pub(super) context: String,
    /// Its timeout.
    pub(super) timeout: Duration,
}

impl LiveCheck {
    /// `action NAME (TYPE)`, as problems name it.
    fn label(&self) -> String {
        format!("action {} ({})", self.name, self.action_type)
    }
}

/// How the batch ended.
#[derive(Debug, PartialEq)]
pub(super) enum ChecksEnd {
    /// Every check finished or timed out: the problems found, in order.
    Done(Vec<String>),
    /// A stop was asked for: nothing is known.
    Stopped,
}

/// How often the supervisor looks at deadlines and the stop signal.
const TICK: Duration = Duration::from_millis(10);

/// Checks at or above this count share two threads.
const TWO_THREADS_FROM: usize = 256;

/// A check a thread is running.
struct Current {
    index: usize,
    deadline: Instant,
    handler: Option<Arc<Handler>>,
}

/// What the threads and the supervisor share.
#[derive(Default)]
struct Progress {
    /// Per check: `None` until it finished (`Some(None)`: it passed).
    results: Vec<Option<Option<String>>>,
    finished: usize,
    /// Per thread: the check it runs, if any.
    current: Vec<Option<Current>>,
    /// Per thread: left behind on a timeout; it records nothing more.
    abandoned: Vec<bool>,
}

struct Batch {
    shared: Arc<Shared>,
    checks: Vec<LiveCheck>,
    next: std::sync::atomic::AtomicUsize,
    progress: Mutex<Progress>,
    /// Told when the last check finished.
    all_done: tokio::sync::Notify,
    stop: StopSignal,
    /// The supervisor returned early: the threads take nothing more.
    ended: std::sync::atomic::AtomicBool,
}

impl Batch {
    /// One thread's loop: takes the next check until none is left, the
    /// batch stops, or the supervisor leaves this thread behind.
    fn work(&self, slot: usize) {
        loop {
            if self.stop.is_stopping() || self.ended.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let k = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(c) = self.checks.get(k) else {
                return;
            };
            {
                let mut p = lock(&self.progress);
                if p.abandoned[slot] {
                    return;
                }
                p.current[slot] = Some(Current {
                    index: k,
                    deadline: Instant::now() + c.timeout,
                    handler: None,
                });
            }
            let result = match self
                .shared
                .plugins
                .handler_json(&c.entry, &c.params, &c.context)
            {
                Err(e) => Some(format!("{}: {}", c.label(), message_of(&e))),
                Ok(h) => {
                    let h = Arc::new(h);
                    {
                        let mut p = lock(&self.progress);
                        if p.abandoned[slot] {
                            return;
                        }
                        if let Some(cur) = p.current[slot].as_mut() {
                            cur.handler = Some(h.clone());
                        }
                    }
                    match h.pre_condition() {
                        Ok(()) => {
                            self.keep(&c.uuid, h);
                            None
                        }
                        Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => None,
                        Err(e) => Some(format!("{}: pre_condition: {}", c.label(), message_of(&e))),
                    }
                }
            };
            let mut p = lock(&self.progress);
            if p.abandoned[slot] {
                return;
            }
            p.current[slot] = None;
            p.results[k] = Some(result);
            p.finished += 1;
            if p.finished == self.checks.len() {
                self.all_done.notify_one();
            }
        }
    }
}

impl Batch {
    /// Keeps a handler whose check passed for the action's first attempt,
    /// within the bound.
    fn keep(&self, uuid: &str, h: Arc<Handler>) {
        let mut kept = lock(&self.shared.prechecked);
        if kept.len() < PRECHECKED_MAX {
            kept.insert(uuid.to_string(), h);
        }
    }
}

/// Starts a thread on the batch in a new slot.
fn spawn_worker(batch: &Arc<Batch>) -> std::io::Result<()> {
    let slot = {
        let mut p = lock(&batch.progress);
        p.current.push(None);
        p.abandoned.push(false);
        p.current.len() - 1
    };
    let b = batch.clone();
    std::thread::Builder::new()
        .name("sextant-sim-check".into())
        .spawn(move || b.work(slot))
        .map(drop)
}

/// Runs the checks (see the module documentation).
pub(super) async fn run_live_checks(shared: Arc<Shared>, checks: Vec<LiveCheck>) -> ChecksEnd {
    let stop = shared.opts.stop.clone();
    if checks.is_empty() {
        return ChecksEnd::Done(Vec::new());
    }
    let threads = if checks.len() < TWO_THREADS_FROM {
        1
    } else {
        2
    };
    let n = checks.len();
    let batch = Arc::new(Batch {
        shared,
        checks,
        next: Default::default(),
        progress: Mutex::new(Progress {
            results: (0..n).map(|_| None).collect(),
            ..Progress::default()
        }),
        all_done: tokio::sync::Notify::new(),
        stop,
        ended: Default::default(),
    });
    for _ in 0..threads {
        if let Err(e) = spawn_worker(&batch) {
            return ChecksEnd::Done(vec![format!("pre_conditions: no thread to run them: {e}")]);
        }
    }
    loop {
        tokio::select! {
            _ = batch.all_done.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if batch.stop.is_stopping() {
            batch.ended.store(true, std::sync::atomic::Ordering::SeqCst);
            let p = lock(&batch.progress);
            for h in p
                .current
                .iter()
                .flatten()
                .filter_map(|c| c.handler.as_ref())
            {
                let _ = h.abort();
            }
            return ChecksEnd::Stopped;
        }
        let now = Instant::now();
        let mut replace = 0;
        {
            let mut p = lock(&batch.progress);
            if p.finished == n {
                let problems = p.results.iter_mut().filter_map(|r| r.take().flatten());
                return ChecksEnd::Done(problems.collect());
            }
            for slot in 0..p.current.len() {
                let expired = p.current[slot]
                    .as_ref()
                    .is_some_and(|c| c.deadline <= now && !p.abandoned[slot]);
                if !expired {
                    continue;
                }
                let Some(c) = p.current[slot].take() else {
                    continue;
                };
                if let Some(h) = &c.handler {
                    let _ = h.abort();
                }
                let check = &batch.checks[c.index];
                p.results[c.index] = Some(Some(format!(
                    "{}: pre_condition timed out after {}",
                    check.label(),
                    humantime::format_duration(check.timeout)
                )));
                p.finished += 1;
                p.abandoned[slot] = true;
                replace += 1;
            }
        }
        for _ in 0..replace {
            if let Err(e) = spawn_worker(&batch) {
                // The threads left run nothing more; what finished is kept.
                batch.ended.store(true, std::sync::atomic::Ordering::SeqCst);
                let mut p = lock(&batch.progress);
                let mut problems: Vec<String> = p
                    .results
                    .iter_mut()
                    .filter_map(|r| r.take().flatten())
                    .collect();
                problems.push(format!(
                    "pre_conditions: no thread to run the remaining checks: {e}"
                ));
                return ChecksEnd::Done(problems);
            }
        }
    }
}
