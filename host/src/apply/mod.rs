//! The applier: a tokio workflow engine that simulates, then executes an
//! action plan in parallel, durably.
//!
//! * An action runs when its parents allow it (`STRICT`, or Watcher's
//!   `ALWAYS` and `ANY`), within `max_workers` and the policy's pools, the
//!   critical path first. Handlers are called on the blocking pool; every
//!   call has a timeout; failures are retried with exponential backoff; once
//!   retries are spent, `on_failure` decides: continue, stop or rollback.
//! * Every state change is committed (with its event) before anything
//!   depends on it: an action is ONGOING in the store before its `execute`
//!   starts, and its parents' final states are committed before that (in
//!   the same transaction when the thread that ran the parent runs the
//!   child next: one commit per action along a chain). A killed applier is resumed: SUCCEEDED actions are not run
//!   again; an action found ONGOING runs again only if its type is
//!   idempotent, else its handler's post_condition decides, and an action
//!   that cannot be confirmed is FAILED with a message saying so.
//! * The applier holds a lease on its plan (owner, expiry, renewal), so two
//!   appliers never run one plan; cancellation comes from any process
//!   through the plan's state in the store.
//!
//! Invariant: the store is written only through compare-and-set
//! transitions; nothing runs twice silently.

use crate::action_types::{ActionTypeRegistry, HandlerMapper, template};
use crate::plan::makespan::pools_of;
use crate::plugins::{Handler, PluginCallError, PluginRegistry};
use crate::policy::{OnFailure, Policy};
use crate::store::apply::{ActionTransition, Lease};
use crate::store::plans::ActionRow;
use crate::store::{Store, StoreError};
use serde_json::{Value, json};
use sextant_plugin_api::ErrorKind;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

mod sched;
use sched::{Completion, Sched, Stop};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// The applier's page cache: its commits touch few pages (the actions they
/// change, the tails of the event table and its index).
const APPLIER_CACHE_KIB: u32 = 8 * 1024;
/// How often the applier renews its lease and looks for a cancel.
pub const POLL: Duration = Duration::from_millis(100);

/// Why a plan could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another applier holds the plan.
    #[error("action plan {plan} is being applied by {} (lease until {})", lease.owner, lease.expires_at)]
    LeaseHeld {
        /// The plan.
        plan: String,
        /// Its lease.
        lease: Lease,
    },
    /// The plan is not in a state that can be started or resumed.
    #[error("action plan {plan} is {state}: {why}")]
    NotRunnable {
        /// The plan.
        plan: String,
        /// Its state.
        state: String,
        /// What would make it runnable.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task failed.
    #[error("applier task failed: {0}")]
    Task(String),
}

/// How to apply a plan.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The policy (recovery, pools, execution rule, simulation).
    pub policy: Policy,
    /// Overrides the policy's execution rule.
    pub execution_rule: Option<String>,
    /// Actions running at once, at most.
    pub max_workers: usize,
    /// Who this applier is (for the lease).
    pub owner: String,
    /// The action mapper entry.
    pub mapper: String,
    /// Drivers for the mapper.
    pub drivers: Vec<String>,
    /// Per-driver configuration handed to handlers in their context
    /// (`{"sim": {"sim_db": …}}`).
    pub driver_config: Value,
}

/// The end of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlanOutcome {
    /// The plan.
    pub uuid: String,
    /// Its final state.
    pub state: String,
    /// Its status message.
    pub status_message: Option<String>,
    /// Problems found by the simulation, if it failed.
    pub simulation_problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Left out by Watcher's ANY rule: stays PENDING in the store.
    Ignored,
}

impl St {
    fn from_db(s: &str) -> St {
        match s {
            "SUCCEEDED" => St::Succeeded,
            "FAILED" => St::Failed,
            "SKIPPED" => St::Skipped,
            "CANCELLED" | "DELETED" => St::Cancelled,
            "ONGOING" => St::Running,
            _ => St::Pending,
        }
    }
    fn done(self) -> bool {
        !matches!(self, St::Pending | St::Running)
    }
    /// Its name in the store (an ignored action stays PENDING).
    fn db(self) -> &'static str {
        match self {
            St::Pending | St::Ignored => "PENDING",
            St::Running => "ONGOING",
            St::Succeeded => "SUCCEEDED",
            St::Failed => "FAILED",
            St::Skipped => "SKIPPED",
            St::Cancelled => "CANCELLED",
        }
    }
}

struct Node {
    row: ActionRow,
    parents: Vec<usize>,
    children: Vec<usize>,
    state: St,
    /// Watcher's task result was False: `execute` ran and failed.
    execute_failed: bool,
    pools: Vec<(usize, Option<String>)>,
    priority: f64,
}

/// Group commit of action transitions, led by whoever finds the store free.
///
/// A thread that commits a transition queues it; if the store is free, it
/// commits the whole queue in one transaction, otherwise it waits for the
/// thread that holds the store to do so. Every transition is committed
/// before its caller goes on; running actions share commits, and a lone
/// chain of actions commits in its own thread without a hand-off.
struct Committer {
    store: Arc<Mutex<Store>>,
    /// Requests no leader has taken yet.
    queue: Mutex<Vec<(Arc<Request>, Vec<ActionTransition>)>>,
}

/// A thread's transitions waiting in the group commit.
#[derive(Default)]
struct Request {
    state: Mutex<RequestState>,
    /// Signalled when its results are in, or when its thread is to lead.
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct RequestState {
    results: Option<Vec<Result<bool, StoreError>>>,
    /// The last leader saw it waiting: it leads the next group.
    lead: bool,
}

impl Committer {
    fn new(store: Arc<Mutex<Store>>) -> Self {
        Self {
            store,
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Commits `t` (with whatever else is queued); blocks.
    fn commit_blocking(&self, t: ActionTransition) -> Result<bool, StoreError> {
        self.commit_many(vec![t])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Commit("no result".into())))
    }

    /// Commits `ts` in one transaction (with whatever else is queued);
    /// blocks. One result per transition, in order.
    ///
    /// Whoever finds the store free leads: it commits every queued request
    /// in one transaction, hands each its results (waking only those
    /// threads), and wakes one thread still queued to lead the next group.
    /// Invariant: while the store is free, every request is either queued
    /// or has its results.
    fn commit_many(&self, ts: Vec<ActionTransition>) -> Vec<Result<bool, StoreError>> {
        let me = Arc::new(Request::default());
        lock(&self.queue).push((me.clone(), ts));
        loop {
            {
                let mut st = lock(&me.state);
                if let Some(r) = st.results.take() {
                    return r;
                }
                st.lead = false;
            }
            let store = match self.store.try_lock() {
                Ok(s) => Some(s),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let Some(mut store) = store else {
                // Another thread holds the store: it leaves our results, or
                // asks us to lead the next group. (The timeout covers a
                // holder outside the group commit, which asks no one.)
                let st = lock(&me.state);
                if st.results.is_none() && !st.lead {
                    let _ = me.wake.wait_timeout(st, Duration::from_millis(1));
                }
                continue;
            };
            let batch = std::mem::take(&mut *lock(&self.queue));
            let sizes: Vec<usize> = batch.iter().map(|(_, ts)| ts.len()).collect();
            let (requests, groups): (Vec<Arc<Request>>, Vec<Vec<ActionTransition>>) =
                batch.into_iter().unzip();
            let flat: Vec<ActionTransition> = groups.into_iter().flatten().collect();
            let mut results = match store.action_transitions(&flat) {
                Ok(rs) => rs,
                Err(e) => {
                    let why = e.to_string();
                    flat.iter()
                        .map(|_| Err(StoreError::Commit(why.clone())))
                        .collect()
                }
            }
            .into_iter();
            for (r, n) in requests.iter().zip(sizes) {
                lock(&r.state).results = Some(results.by_ref().take(n).collect());
            }
            drop(store);
            for r in &requests {
                if !Arc::ptr_eq(r, &me) {
                    r.wake.notify_one();
                }
            }
            // Queued while we committed: one of them leads next.
            let next = lock(&self.queue).first().map(|(r, _)| r.clone());
            if let Some(next) = next {
                lock(&next.state).lead = true;
                next.wake.notify_one();
            }
        }
    }
}

/// Locks a mutex, whether or not a panicking holder poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An action whose `execute` runs.
struct Running {
    handler: Arc<Handler>,
    /// When its timeout expires.
    deadline: Instant,
    /// Set by the watchdog when it expired.
    timed_out: Arc<std::sync::atomic::AtomicBool>,
    /// Tells the action's task that it expired.
    expired: Arc<tokio::sync::Notify>,
}

/// How often the watchdog looks for expired timeouts.
const WATCHDOG: Duration = Duration::from_millis(10);

/// Times out running actions: one task for the whole plan instead of a
/// timer (and a wake-up) per action. An expired action is flagged, its
/// handler asked to abort, and its task told.
async fn watchdog(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(WATCHDOG).await;
        let now = Instant::now();
        for r in lock(&shared.running).values() {
            if r.deadline <= now && !r.timed_out.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let _ = r.handler.abort();
                r.expired.notify_one();
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shared by the engine and its action tasks.
struct Shared {
    store: Arc<Mutex<Store>>,
    committer: Committer,
    /// Handler entry by (action type, version): the mapper's answer does
    /// not change during a run.
    entries: Mutex<HashMap<(String, String), Result<String, String>>>,
    plugins: Arc<PluginRegistry>,
    types: Arc<ActionTypeRegistry>,
    opts: ApplyOptions,
    plan_uuid: String,
    /// The end of every handler context (see [`context_tail`]).
    context_tail: String,
    /// The actions whose `execute` runs: for abort, and for the watchdog
    /// that times them out.
    running: Mutex<HashMap<String, Running>>,
    cancelling: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

/// Runs the store work of `f` on the blocking pool.
async fn db<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.db(f))
        .await
        .map_err(|e| StoreError::NotFound {
            kind: "store task",
            id: e.to_string(),
        })?
}

fn message_of(e: &PluginCallError) -> String {
    match e {
        PluginCallError::Plugin { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Everything an action needs before its handler can be created: its type,
/// the handler entry, and the handler's parameters (templates rendered with
/// the outputs of its ancestors).
fn prepare_handler(
    shared: &Shared,
    row: &ActionRow,
    ancestors_outputs: &Value,
) -> Result<(String, Value, bool), String> {
    let version = semver::Version::parse(&row.action_type_version).ok();
    let t = shared
        .types
        .get(&row.action_type, version.as_ref())
        .map_err(|e| e.to_string())?;
    let key = (t.name.clone(), t.version.to_string());
    let cached = shared
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let entry = match cached {
        Some(e) => e,
        None => {
            let mapper =
                HandlerMapper::new(&shared.plugins, &shared.opts.mapper, &shared.opts.drivers);
            let e = mapper.handler_for(t).map_err(|e| e.reason);
            shared
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, e.clone());
            e
        }
    }?;
    let params = template::render(&row.input_parameters, &json!({}), ancestors_outputs)
        .map_err(|e| format!("parameters: {e}"))?;
    let handler_params = match &t.with {
        Some(with) => template::render(with, &params, ancestors_outputs)?,
        None => params,
    };
    Ok((entry, handler_params, t.idempotent))
}

/// What a handler is told about its action, as the JSON text that crosses
/// the plugin boundary: built straight into a string, with the parts the
/// whole run shares serialized once (`Shared::context_tail`).
fn handler_context_json(shared: &Shared, row: &ActionRow) -> String {
    let version = semver::Version::parse(&row.action_type_version).ok();
    let duration = shared
        .types
        .get(&row.action_type, version.as_ref())
        .map(|t| t.estimated_duration.as_secs_f64())
        .unwrap_or(0.0);
    context_json(row, duration, &shared.context_tail)
}

fn context_json(row: &ActionRow, duration: f64, tail: &str) -> String {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"uuid":{},"name":{},"action_type":{},"action_type_version":{},"estimated_duration_seconds":{},{}}}"#,
        text(&row.uuid),
        text(&row.name),
        text(&row.action_type),
        text(&row.action_type_version),
        serde_json::Number::from_f64(duration).map_or_else(|| "0".to_string(), |n| n.to_string()),
        tail,
    )
}

/// [`handler_context_json`] as a value.
fn handler_context(shared: &Shared, row: &ActionRow) -> Value {
    serde_json::from_str(&handler_context_json(shared, row)).unwrap_or(Value::Null)
}

/// `"action_plan":…,"config":…`: the part of every handler context that
/// does not change during a run.
fn context_tail(plan_uuid: &str, driver_config: &Value) -> String {
    format!(
        r#""action_plan":{},"config":{}"#,
        serde_json::to_string(plan_uuid).unwrap_or_else(|_| "\"\"".into()),
        crate::json_text(driver_config)
    )
}

async fn create_handler(
    shared: &Arc<Shared>,
    entry: String,
    params: Value,
    ctx: Value,
) -> Result<Arc<Handler>, PluginCallError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.plugins.handler(&entry, &params, &ctx).map(Arc::new))
        .await
        .map_err(|e| PluginCallError::Host(e.to_string()))?
}

/// What `execute` came to, with its post_condition when it succeeded.
enum Executed {
    /// `execute` failed.
    Failed(PluginCallError),
    /// Its outputs do not match the action type's outputs schema.
    BadOutputs(String),
    /// `execute` succeeded; the post_condition's verdict.
    Done(Value, Result<(), PluginCallError>),
}

fn backoff(policy: &crate::policy::Recovery, attempt: u32) -> Duration {
    let secs = policy.backoff_initial.as_secs_f64() * policy.backoff_factor.powi(attempt as i32);
    Duration::from_secs_f64(secs.min(policy.backoff_max.as_secs_f64()))
}

/// A transition of an action of the plan being applied: its plan and name
/// are known, so it is one UPDATE with nothing read first.
fn row_transition(
    row: &ActionRow,
    from: &[&str],
    to: &str,
    message: Option<String>,
    outputs: Option<Value>,
    event_type: &str,
) -> ActionTransition {
    ActionTransition::new(&row.uuid, from, to, message, outputs, event_type)
        .known(&row.action_plan_uuid, &row.name)
}

/// Commits one action transition (group commit) from async code.
async fn transition(
    shared: &Arc<Shared>,
    row: &ActionRow,
    from: &[&str],
    to: &str,
    message: Option<String>,
    outputs: Option<Value>,
    event_type: &str,
) -> Result<bool, StoreError> {
    let t = row_transition(row, from, to, message, outputs, event_type);
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.committer.commit_blocking(t))
        .await
        .map_err(|e| StoreError::Commit(e.to_string()))?
}

/// How one attempt at an action ended.
enum AttemptEnd {
    /// The action reached a final state. Its transition (None: the store
    /// already had the last word) is not committed yet: the thread commits
    /// it with the next action's ONGOING, or on its own.
    Finished {
        state: St,
        outputs: Option<Value>,
        transition: Option<Box<ActionTransition>>,
    },
    /// `execute` failed (or its outputs were wrong): retry, or fail.
    ExecuteFailed { why: String, from_execute: bool },
    /// The attempt timed out; the engine side has dealt with it.
    TimedOut,
}

/// Final states waiting for their commit, and what the scheduler learns
/// once they are committed.
#[derive(Default)]
struct Carry {
    transitions: Vec<Option<ActionTransition>>,
    completions: Vec<Completion>,
}

impl Carry {
    fn push(&mut self, c: Completion, t: Option<Box<ActionTransition>>) {
        self.completions.push(c);
        self.transitions.push(t.map(|t| *t));
    }

    /// Commits what is carried, with `own` (the next action's ONGOING) in
    /// the same transaction, then tells the scheduler. Returns whether
    /// `own` applied.
    fn commit_with(&mut self, run: &Run, own: Option<ActionTransition>) -> Option<bool> {
        let carried = self.transitions.len();
        let mut ts: Vec<ActionTransition> = Vec::with_capacity(carried + 1);
        let mut slots = Vec::with_capacity(carried);
        for t in self.transitions.drain(..) {
            slots.push(t.is_some());
            ts.extend(t);
        }
        let has_own = own.is_some();
        ts.extend(own);
        let mut results = if ts.is_empty() {
            Vec::new()
        } else {
            run.shared.committer.commit_many(ts)
        }
        .into_iter();
        let mut completions = std::mem::take(&mut self.completions);
        for (c, committed) in completions.iter_mut().zip(slots) {
            if committed && !matches!(results.next(), Some(Ok(true))) {
                // Changed meanwhile (or the commit failed): the store has
                // the last word.
                let uuid = lock(&run.sched).nodes[c.index].row.uuid.clone();
                match run.shared.db(|st| st.action(&uuid)) {
                    Ok(a) => {
                        c.state = St::from_db(&a.state);
                        c.outputs = a.outputs;
                    }
                    Err(_) => c.state = St::Failed,
                }
            }
        }
        let own_applied = has_own.then(|| matches!(results.next(), Some(Ok(true))));
        if !completions.is_empty() {
            run.complete(completions);
        }
        own_applied
    }
}

/// One attempt, on a blocking thread: create the handler, check
/// pre_condition, commit ONGOING (first attempt, with whatever the thread
/// carries), execute (registered with the watchdog), check the outputs,
/// run post_condition. The final state is returned, not committed.
#[allow(clippy::too_many_arguments)]
fn attempt_blocking(
    run: &Run,
    carry: &mut Carry,
    row: &ActionRow,
    entry: &str,
    params: &Value,
    ctx: &str,
    first: bool,
    timeout: Duration,
    link: &TaskLink,
) -> AttemptEnd {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = &run.shared;
    let uuid = row.uuid.as_str();
    let finished =
        |state: St, from: &[&str], msg: Option<String>, outputs: Option<Value>, ev: &str| {
            let t = row_transition(row, from, state.db(), msg, outputs.clone(), ev);
            AttemptEnd::Finished {
                state,
                outputs,
                transition: Some(Box::new(t)),
            }
        };
    let fail_pre = |why: String| {
        finished(
            St::Failed,
            &["PENDING", "ONGOING"],
            Some(format!("Action failed in pre_condition: {why}")),
            None,
            "action.execution.error",
        )
    };
    let h = match shared.plugins.handler_json(entry, params, ctx) {
        Ok(h) => Arc::new(h),
        Err(e) => return fail_pre(message_of(&e)),
    };
    // pre_condition runs again just before each attempt.
    match h.pre_condition() {
        Ok(()) => {}
        Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => {
            return finished(
                St::Skipped,
                &["PENDING", "ONGOING"],
                Some(format!(
                    "Action was skipped automatically: {}",
                    message_of(&e)
                )),
                None,
                "action.update",
            );
        }
        Err(e) => return fail_pre(message_of(&e)),
    }
    if shared.cancelling.load(SeqCst) {
        return finished(St::Cancelled, &["PENDING"], None, None, "action.cancel.end");
    }
    if first {
        let t = row_transition(
            row,
            &["PENDING"],
            "ONGOING",
            None,
            None,
            "action.execution.start",
        );
        if carry.commit_with(run, Some(t)) != Some(true) {
            // Skipped by hand, or cancelled, meanwhile.
            let now = shared.db(|st| st.action(uuid));
            let (state, outputs) = now
                .map(|a| (St::from_db(&a.state), a.outputs))
                .unwrap_or((St::Cancelled, None));
            return AttemptEnd::Finished {
                state,
                outputs,
                transition: None,
            };
        }
    }
    // The timeout runs from the start of `execute`.
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    lock(&shared.running).insert(
        uuid.to_string(),
        Running {
            handler: h.clone(),
            deadline: Instant::now() + timeout,
            timed_out: timed_out.clone(),
            expired: link.expired.clone(),
        },
    );
    let executed = match h.execute() {
        Err(e) => Executed::Failed(e),
        Ok(outputs) => {
            let version = semver::Version::parse(&row.action_type_version).ok();
            let problem = shared
                .types
                .get(&row.action_type, version.as_ref())
                .ok()
                .and_then(|t| {
                    t.outputs_validator()
                        .and_then(|v| v.validate(&outputs).err().map(|e| e.to_string()))
                });
            match problem {
                Some(why) => Executed::BadOutputs(why),
                None => Executed::Done(outputs, h.post_condition()),
            }
        }
    };
    lock(&shared.running).remove(uuid);
    if timed_out.load(SeqCst) {
        return AttemptEnd::TimedOut;
    }
    match executed {
        Executed::Done(outputs, post) => match post {
            Ok(()) => finished(
                St::Succeeded,
                &["ONGOING"],
                None,
                Some(outputs),
                "action.execution.end",
            ),
            Err(e) if e.kind() == Some(ErrorKind::UNSUPPORTED) => finished(
                St::Succeeded,
                &["ONGOING"],
                None,
                Some(outputs),
                "action.execution.end",
            ),
            Err(e) => finished(
                St::Failed,
                &["ONGOING"],
                Some(format!(
                    "Action failed in post_condition: {}",
                    message_of(&e)
                )),
                Some(outputs),
                "action.execution.error",
            ),
        },
        Executed::BadOutputs(why) => AttemptEnd::ExecuteFailed {
            why: format!("its outputs do not match the action type's outputs schema: {why}"),
            from_execute: false,
        },
        Executed::Failed(e)
            if e.kind() == Some(ErrorKind::ABORTED) && shared.cancelling.load(SeqCst) =>
        {
            finished(
                St::Cancelled,
                &["ONGOING"],
                Some("Action was aborted: its action plan was cancelled.".into()),
                None,
                "action.cancel.end",
            )
        }
        Executed::Failed(e) => AttemptEnd::ExecuteFailed {
            why: format!("The action {uuid} execution failed. {}", message_of(&e)),
            from_execute: true,
        },
    }
}

/// One run of a plan: what its engine task and the threads that run its
/// actions share.
struct Run {
    shared: Arc<Shared>,
    sched: Mutex<Sched>,
    /// Wakes the engine: a ready action wants a worker, something is to
    /// commit, or a worker slot was freed.
    wake: tokio::sync::Notify,
}

impl Run {
    /// Tells the scheduler about committed final states, and wakes the
    /// engine if there is work for it.
    fn complete(&self, completions: Vec<Completion>) {
        let policy = &self.shared.opts.policy;
        let mut s = lock(&self.sched);
        for c in completions {
            s.complete(c, |row| {
                match policy.recovery_for(&row.action_type).on_failure {
                    OnFailure::Continue => Stop::Continue,
                    OnFailure::Stop => {
                        Stop::Halt(format!("action {} failed (on_failure: stop)", row.name))
                    }
                    OnFailure::Rollback => {
                        Stop::Rollback(format!("action {} failed (on_failure: rollback)", row.name))
                    }
                }
            });
        }
        let wake = s.wants_workers() || !s.to_commit.is_empty() || !s.open();
        drop(s);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// What a worker task and its blocking thread share: the watchdog's
/// signal, and which attempt the thread is on.
struct TaskLink {
    expired: Arc<tokio::sync::Notify>,
    current: Mutex<(usize, u32)>,
}

/// Where a worker's blocking thread starts.
enum Start {
    /// An attempt at a reserved action.
    Attempt(usize, u32),
    /// The same, with its library's call permit held by the task.
    Permitted(usize, u32),
    /// A final state already committed by the worker task; then whatever
    /// is ready.
    Completed(Completion),
}

/// Why a blocking thread handed its worker slot back to its task.
enum ThreadEnd {
    /// Nothing is ready for it: the slot is free.
    Idle,
    /// An attempt failed: the task retries it or fails the action.
    Failed {
        index: usize,
        attempt: u32,
        why: String,
        from_execute: bool,
    },
    /// The action's plugin library has no call permit free: the task waits
    /// for one.
    NeedsPermit(usize, u32),
}

/// Runs actions on this blocking thread for as long as it has one: after
/// each, it takes a child the action was the last parent of, or the most
/// urgent ready action, and commits the finished action's final state with
/// the next one's ONGOING. A chain of actions never leaves the thread.
fn run_on_thread(run: &Run, link: &TaskLink, start: Start) -> ThreadEnd {
    let shared = &run.shared;
    let mut carry = Carry::default();
    // Started as `Permitted`: the task holds the first action's permit.
    let (mut job, mut permit_held) = match start {
        Start::Attempt(i, a) => (Some((i, a)), false),
        Start::Permitted(i, a) => (Some((i, a)), true),
        Start::Completed(c) => {
            run.complete(vec![c]);
            (None, false)
        }
    };
    loop {
        let (i, attempt) = match job.take() {
            Some(j) => j,
            None => {
                // Nothing chained: commit what is carried, then take the
                // next ready action or free the slot.
                carry.commit_with(run, None);
                let mut s = lock(&run.sched);
                match s.pop_ready() {
                    Some(i) => (i, 0),
                    None => {
                        s.running -= 1;
                        drop(s);
                        run.wake.notify_one();
                        return ThreadEnd::Idle;
                    }
                }
            }
        };
        *lock(&link.current) = (i, attempt);
        let (row, ancestors) = {
            let s = lock(&run.sched);
            (
                s.nodes[i].row.clone(),
                ancestor_outputs(&s.nodes, i, &shared.types),
            )
        };
        let recovery = shared.opts.policy.recovery_for(&row.action_type);
        let end = match prepare_handler(shared, &row, &ancestors) {
            Err(why) => {
                let t = row_transition(
                    &row,
                    &["PENDING", "ONGOING"],
                    "FAILED",
                    Some(format!("Action failed in pre_condition: {why}")),
                    None,
                    "action.execution.error",
                );

                AttemptEnd::Finished {
                    state: St::Failed,
                    outputs: None,
                    transition: Some(Box::new(t)),
                }
            }
            Ok((entry, params, _)) => {
                let library = shared
                    .plugins
                    .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                    .map(|e| e.library.clone());
                let permit = match (&library, std::mem::take(&mut permit_held)) {
                    (Some(l), false) => match l.permits.try_acquire() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            carry.commit_with(run, None);
                            return ThreadEnd::NeedsPermit(i, attempt);
                        }
                    },
                    _ => None,
                };
                let ctx = handler_context_json(shared, &row);
                let end = attempt_blocking(
                    run,
                    &mut carry,
                    &row,
                    &entry,
                    &params,
                    &ctx,
                    attempt == 0,
                    recovery.timeout,
                    link,
                );
                drop(permit);
                end
            }
        };
        match end {
            AttemptEnd::Finished {
                state,
                outputs,
                transition,
            } => {
                carry.push(
                    Completion {
                        index: i,
                        state,
                        execute_failed: false,
                        outputs,
                    },
                    transition,
                );
                let mut s = lock(&run.sched);
                s.executed(i, carry.completions.last().and_then(|c| c.outputs.as_ref()));
                job = s
                    .chain_after(i, state)
                    .or_else(|| s.pop_ready())
                    .map(|j| (j, 0));
            }
            AttemptEnd::ExecuteFailed { why, from_execute } => {
                carry.commit_with(run, None);
                return ThreadEnd::Failed {
                    index: i,
                    attempt,
                    why,
                    from_execute,
                };
            }
            AttemptEnd::TimedOut => {
                // The task went on when the watchdog fired; this thread
                // only leaves.
                carry.commit_with(run, None);
                return ThreadEnd::Failed {
                    index: i,
                    attempt,
                    why: String::new(),
                    from_execute: true,
                };
            }
        }
    }
}

/// A worker slot's task: starts a blocking thread that runs actions, and
/// handles what the thread hands back: retries with backoff, timeouts
/// (without waiting for a handler that may never return), final failures.
async fn worker(run: Arc<Run>, mut start: Start) -> Result<(), ApplyError> {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = run.shared.clone();
    loop {
        // The permit of the action the thread starts with, when the thread
        // found none free.
        let library = match &start {
            Start::Permitted(i, _) => {
                let row = lock(&run.sched).nodes[*i].row.clone();
                prepare_handler(&shared, &row, &json!({}))
                    .ok()
                    .and_then(|(entry, _, _)| {
                        shared
                            .plugins
                            .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                            .map(|e| e.library.clone())
                    })
            }
            Start::Attempt(..) | Start::Completed(_) => None,
        };
        let _permit = match &library {
            Some(l) => l.permits.acquire().await.ok(),
            None => None,
        };
        let link = Arc::new(TaskLink {
            expired: Arc::new(tokio::sync::Notify::new()),
            current: Mutex::new(match &start {
                Start::Attempt(i, a) | Start::Permitted(i, a) => (*i, *a),
                Start::Completed(c) => (c.index, 0),
            }),
        });
        let mut join = {
            let (r, l) = (run.clone(), link.clone());
            tokio::task::spawn_blocking(move || run_on_thread(&r, &l, start))
        };
        let end = tokio::select! {
            r = &mut join => r.map_err(|e| ApplyError::Task(e.to_string()))?,
            // The watchdog timed the current action out (and asked it to
            // abort): go on without the thread.
            _ = link.expired.notified() => {
                let (index, attempt) = *lock(&link.current);
                ThreadEnd::Failed { index, attempt, why: String::new(), from_execute: true }
            }
        };
        let (index, attempt, why, from_execute) = match end {
            ThreadEnd::Idle => return Ok(()),
            ThreadEnd::NeedsPermit(i, a) => {
                start = Start::Permitted(i, a);
                continue;
            }
            ThreadEnd::Failed {
                index,
                attempt,
                why,
                from_execute,
            } => (index, attempt, why, from_execute),
        };
        let row = lock(&run.sched).nodes[index].row.clone();
        let uuid = row.uuid.clone();
        let recovery = shared.opts.policy.recovery_for(&row.action_type);
        let why = if why.is_empty() {
            format!(
                "The action {uuid} execution failed: timed out after {}s.",
                recovery.timeout.as_secs_f64()
            )
        } else {
            why
        };
        if attempt < recovery.retries && !shared.cancelling.load(SeqCst) {
            let delay = backoff(&recovery, attempt);
            let u = uuid.clone();
            let plan = shared.plan_uuid.clone();
            let note = json!({"attempt": attempt + 1, "of": recovery.retries, "error": why, "retry_in_seconds": delay.as_secs_f64()});
            let _ = db(&shared, move |st| {
                st.note("action.execution.retry", "action", &u, &plan, note)
            })
            .await;
            tokio::time::sleep(delay).await;
            start = Start::Attempt(index, attempt + 1);
            continue;
        }
        let msg = format!("Action failed in execute: {why}");
        let failed = transition(
            &shared,
            &row,
            &["ONGOING"],
            "FAILED",
            Some(msg),
            None,
            "action.execution.error",
        )
        .await;
        let mut c = Completion {
            index,
            state: St::Failed,
            execute_failed: from_execute,
            outputs: None,
        };
        if matches!(failed, Ok(false)) {
            // A timed-out attempt finished and settled the action first:
            // the store has the last word.
            let u = uuid.clone();
            if let Ok(a) = db(&shared, move |st| st.action(&u)).await {
                c.state = St::from_db(&a.state);
                c.execute_failed = false;
                c.outputs = a.outputs;
            }
        }
        start = Start::Completed(c);
    }
}

/// The applier for one plan.
pub struct Applier {
    shared: Arc<Shared>,
}

impl Applier {
    /// An applier over a store and the loaded plugins and action types.
    pub fn new(
        store: Store,
        plugins: Arc<PluginRegistry>,
        types: Arc<ActionTypeRegistry>,
        plan_uuid: &str,
        opts: ApplyOptions,
    ) -> Self {
        let store = Arc::new(Mutex::new(store));
        Self {
            shared: Arc::new(Shared {
                committer: Committer::new(store.clone()),
                store,
                entries: Mutex::new(HashMap::new()),
                plugins,
                types,
                context_tail: context_tail(plan_uuid, &opts.driver_config),
                opts,
                plan_uuid: plan_uuid.to_string(),
                running: Mutex::new(HashMap::new()),
                cancelling: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Simulates the pending actions: each maps to a loaded handler, its
    /// parameters are valid against its recorded action-type version, its
    /// templates name only ancestors, and, for the actions that start the
    /// plan (no parents), the pre_condition holds against the targets now.
    /// Every problem at once.
    async fn simulate(&self, nodes: &[Node]) -> Vec<String> {
        let shared = &self.shared;
        let mut problems = Vec::new();
        let names: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.row.name.as_str(), i))
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            if n.state != St::Pending {
                continue;
            }
            let row = &n.row;
            let label = format!("action {} ({})", row.name, row.action_type);
            let version = semver::Version::parse(&row.action_type_version).ok();
            let t = match shared.types.get(&row.action_type, version.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            // Templates may only name ancestors; their outputs are unknown yet.
            let refs = referenced_actions(&row.input_parameters);
            let ancestors = if refs.is_empty() {
                HashSet::new()
            } else {
                ancestors_of(nodes, i)
            };
            let mut has_refs = false;
            for r in refs {
                has_refs = true;
                match names.get(r.as_str()) {
                    Some(j) if ancestors.contains(j) => {}
                    _ => problems.push(format!("{label}: its parameters use the outputs of {r}, which is not one of its ancestors")),
                }
            }
            if let Err(e) = crate::action_types::ActionFactory::new(&shared.types).instantiate(
                &crate::action_types::NewAction::new(
                    format!("{}@{}", t.name, t.version),
                    row.input_parameters.clone(),
                ),
            ) && !has_refs
            {
                problems.push(format!("{label}: {e}"));
                continue;
            }
            if has_refs
                || t.with
                    .as_ref()
                    .is_some_and(|w| !referenced_actions(w).is_empty())
            {
                continue; // pre_condition needs outputs that do not exist yet
            }
            // An action with parents is checked against a state its ancestors
            // will have changed: its pre_condition runs just before it does.
            if !n.parents.is_empty() {
                continue;
            }
            let (entry, params, _) = match prepare_handler(shared, row, &json!({})) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            match create_handler(shared, entry, params, handler_context(shared, row)).await {
                Err(e) => problems.push(format!("{label}: {}", message_of(&e))),
                Ok(h) => match h.blocking(|h| h.pre_condition()).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => {}
                    Err(e) => problems.push(format!("{label}: pre_condition: {}", message_of(&e))),
                },
            }
        }
        problems
    }

    /// Applies the plan: takes the lease, resumes what was interrupted,
    /// simulates, runs, and returns the final state.
    pub async fn run(self) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let plan_uuid = shared.plan_uuid.clone();
        let owner = shared.opts.owner.clone();
        {
            let (p, o) = (plan_uuid.clone(), owner.clone());
            if let Err(lease) = db(&shared, move |s| s.acquire_lease(&p, &o, LEASE_TTL)).await? {
                // A holder on this host whose process is gone cannot run the
                // plan: its lease is taken over at once instead of waiting
                // for it to expire.
                let (p, o, old) = (plan_uuid.clone(), owner.clone(), lease.owner.clone());
                let taken = owner_is_dead(&lease.owner)
                    && db(&shared, move |s| s.take_over_lease(&p, &old, &o, LEASE_TTL)).await?;
                if !taken {
                    return Err(ApplyError::LeaseHeld {
                        plan: plan_uuid,
                        lease,
                    });
                }
                tracing::warn!(
                    "took over action plan {plan_uuid} from {}, which is not running any more",
                    lease.owner
                );
            }
        }
        let result = self.run_leased().await;
        let (p, o) = (plan_uuid.clone(), owner.clone());
        let _ = db(&shared, move |s| s.release_lease(&p, &o)).await;
        result
    }

    async fn run_leased(&self) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let plan_uuid = shared.plan_uuid.clone();
        let p = {
            let u = plan_uuid.clone();
            db(&shared, move |s| s.plan(&u)).await?
        };
        let resuming = p.state == "ONGOING" || p.state == "CANCELLING";
        match p.state.as_str() {
            "RECOMMENDED" | "PENDING" | "ONGOING" | "CANCELLING" => {}
            other => {
                return Err(ApplyError::NotRunnable {
                    plan: plan_uuid,
                    state: other.into(),
                    why: "only RECOMMENDED, PENDING or interrupted (ONGOING, CANCELLING) plans run"
                        .into(),
                });
            }
        }
        // A small page cache, before the plan is read into it: each commit
        // ends with a scan of the cache (see `Store::limit_cache`).
        let _ = db(&shared, |s| s.limit_cache(APPLIER_CACHE_KIB)).await;
        let rows = {
            let u = plan_uuid.clone();
            db(&shared, move |s| s.actions(&u)).await?
        };
        let mut nodes = self.build_nodes(rows, &p);
        // Interrupted actions first: nothing runs twice silently.
        if resuming {
            self.recover_interrupted(&mut nodes).await?;
        }
        let execution_rule = shared
            .opts
            .execution_rule
            .clone()
            .unwrap_or_else(|| shared.opts.policy.execution_rule.clone())
            .to_uppercase();
        if p.state != "CANCELLING" {
            let u = plan_uuid.clone();
            db(&shared, move |s| {
                s.plan_transition(
                    &u,
                    &["RECOMMENDED", "PENDING"],
                    "ONGOING",
                    None,
                    "action_plan.execution.start",
                )
            })
            .await?;
        }
        if shared.opts.policy.simulate && p.state != "CANCELLING" {
            let problems = self.simulate(&nodes).await;
            if !problems.is_empty() {
                let msg = format!(
                    "Simulation failed; nothing was executed: {}",
                    problems.join("; ")
                );
                let u = plan_uuid.clone();
                let m = msg.clone();
                db(&shared, move |s| {
                    s.plan_transition(
                        &u,
                        &["ONGOING"],
                        "FAILED",
                        Some(&m),
                        "action_plan.execution.error",
                    )
                })
                .await?;
                return Ok(PlanOutcome {
                    uuid: plan_uuid,
                    state: "FAILED".into(),
                    status_message: Some(msg),
                    simulation_problems: problems,
                });
            }
        }
        self.execute(nodes, &execution_rule).await
    }

    fn build_nodes(&self, rows: Vec<ActionRow>, plan: &crate::store::plans::PlanRow) -> Vec<Node> {
        let index: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.uuid.clone(), i))
            .collect();
        let extra = plan_extra(&self.shared, &plan.uuid);
        let limits = &self.shared.opts.policy.limits;
        let mut nodes: Vec<Node> = rows
            .into_iter()
            .map(|row| {
                let parents = row
                    .parents
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect();
                let pools = pools_of(&row.action_type, &row.input_parameters, limits);
                let priority = extra["planner"]["priorities"][&row.name]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let state = St::from_db(&row.state);
                let execute_failed = state == St::Failed
                    && row
                        .status_message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Action failed in execute"));
                Node {
                    row,
                    parents,
                    children: Vec::new(),
                    state,
                    execute_failed,
                    pools,
                    priority,
                }
            })
            .collect();
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        self.critical_path_first(&mut nodes);
        nodes
    }

    /// Priorities for the actions the planner gave none (imported plans,
    /// Watcher's planners): the longest path from the action to the end of
    /// the plan, in estimated durations, so the critical path starts first.
    fn critical_path_first(&self, nodes: &mut [Node]) {
        if !nodes.iter().any(|n| n.priority.is_nan()) {
            return;
        }
        let duration = |row: &ActionRow| {
            let version = semver::Version::parse(&row.action_type_version).ok();
            self.shared
                .types
                .get(&row.action_type, version.as_ref())
                .map(|t| t.estimated_duration.as_secs_f64())
                .unwrap_or(0.0)
                .max(1e-3)
        };
        // Children before parents: a reverse topological order (Kahn).
        let mut waiting: Vec<usize> = nodes.iter().map(|n| n.children.len()).collect();
        let mut stack: Vec<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
        let mut level = vec![0.0f64; nodes.len()];
        while let Some(i) = stack.pop() {
            let below = nodes[i]
                .children
                .iter()
                .map(|&c| level[c])
                .fold(0.0, f64::max);
            level[i] = duration(&nodes[i].row) + below;
            for p in nodes[i].parents.clone() {
                waiting[p] -= 1;
                if waiting[p] == 0 {
                    stack.push(p);
                }
            }
        }
        for (n, l) in nodes.iter_mut().zip(level) {
            if n.priority.is_nan() {
                n.priority = l;
            }
        }
    }

    /// Actions found ONGOING after a crash: idempotent ones run again; the
    /// others are SUCCEEDED only if their post_condition confirms them.
    async fn recover_interrupted(&self, nodes: &mut [Node]) -> Result<(), ApplyError> {
        let shared = self.shared.clone();
        for n in nodes.iter_mut().filter(|n| n.state == St::Running) {
            let row = n.row.clone();
            let prep = prepare_handler(&shared, &row, &json!({}));
            let idempotent = prep.as_ref().map(|p| p.2).unwrap_or(false);
            let u = row.uuid.clone();
            if idempotent {
                db(&shared, move |s| {
                    s.action_transition(
                        &u,
                        &["ONGOING"],
                        "PENDING",
                        Some("Interrupted while ONGOING; its action type is idempotent, so it runs again."),
                        None,
                        "action.update",
                    )
                })
                .await?;
                n.state = St::Pending;
                continue;
            }
            let verdict = match prep {
                Err(e) => Err(e),
                Ok((entry, params, _)) => {
                    match create_handler(&shared, entry, params, handler_context(&shared, &row))
                        .await
                    {
                        Err(e) => Err(message_of(&e)),
                        Ok(h) => h
                            .blocking(|h| h.post_condition())
                            .await
                            .map_err(|e| message_of(&e)),
                    }
                }
            };
            let (state, msg) = match verdict {
                Ok(()) => (
                    "SUCCEEDED",
                    "Interrupted while ONGOING; its post_condition confirms it took effect."
                        .to_string(),
                ),
                Err(why) => (
                    "FAILED",
                    format!(
                        "Interrupted while ONGOING (the applier stopped) and not idempotent: it may or may not have run, \
                         and its post_condition cannot tell ({why}). Check the resource; it was not run again."
                    ),
                ),
            };
            db(&shared, move |s| {
                s.action_transition(&u, &["ONGOING"], state, Some(&msg), None, "action.update")
            })
            .await?;
            n.state = St::from_db(state);
        }
        Ok(())
    }

    async fn execute(&self, nodes: Vec<Node>, rule: &str) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let plan_uuid = shared.plan_uuid.clone();
        let limits = shared.opts.policy.limits.iter().map(|l| l.max).collect();
        let mut sched = Sched::new(
            nodes,
            limits,
            sched::Rule::parse(rule),
            shared.opts.max_workers,
        );
        sched.settle_initial();
        let run = Arc::new(Run {
            shared: shared.clone(),
            sched: Mutex::new(sched),
            wake: tokio::sync::Notify::new(),
        });
        let mut tasks: JoinSet<Result<(), ApplyError>> = JoinSet::new();
        let _watchdog = AbortOnDrop(tokio::spawn(watchdog(shared.clone())));
        let mut last_poll = Instant::now() - POLL;
        let mut last_renew = Instant::now();
        loop {
            // CANCELLED decided in memory (STRICT) go to the store.
            let decided = std::mem::take(&mut lock(&run.sched).to_commit);
            commit_all(&shared, decided).await?;
            // Renew the lease and look for a cancel from another process.
            if last_renew.elapsed() > LEASE_TTL / 3 {
                let (p, o) = (plan_uuid.clone(), shared.opts.owner.clone());
                if !db(&shared, move |s| s.renew_lease(&p, &o, LEASE_TTL)).await? {
                    tracing::error!("lost the lease on action plan {plan_uuid}: stopping");
                    let mut s = lock(&run.sched);
                    if s.stopping.is_none() {
                        s.stopping = Some("the applier lost its lease".into());
                    }
                }
                last_renew = Instant::now();
            }
            if last_poll.elapsed() >= POLL {
                last_poll = Instant::now();
                let u = plan_uuid.clone();
                // Just the state: `plan()` also counts the plan's actions,
                // a scan of 100,000 rows ten times a second.
                let state = db(&shared, move |s| s.plan_state(&u)).await?;
                if state == "CANCELLING" && !lock(&run.sched).cancelled {
                    shared
                        .cancelling
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    // Cancelled: the pending actions are CANCELLED.
                    let cancelled = {
                        let mut s = lock(&run.sched);
                        s.cancelled = true;
                        s.cancel_pending(None, "action.cancel.end")
                    };
                    if shared.opts.policy.abort_on_cancel {
                        let handlers: Vec<Arc<Handler>> = lock(&shared.running)
                            .values()
                            .map(|r| r.handler.clone())
                            .collect();
                        for h in handlers {
                            if h.library()
                                .manifest
                                .entries
                                .iter()
                                .any(|e| e.name == h.entry() && e.abortable)
                            {
                                let _ = h.abort();
                            }
                        }
                    }
                    commit_all(&shared, cancelled).await?;
                }
            }
            // Start what fits: workers, pools, the critical path first.
            let (starts, idle) = {
                let mut s = lock(&run.sched);
                let mut starts = Vec::new();
                while s.running < s.max_workers {
                    let Some(i) = s.pop_ready() else { break };
                    s.running += 1;
                    starts.push(i);
                }
                (starts, s.running == 0 && s.to_commit.is_empty())
            };
            for i in starts {
                tasks.spawn(worker(run.clone(), Start::Attempt(i, 0)));
            }
            if idle {
                break;
            }
            // Wait for a worker to need the engine, or for the next poll.
            tokio::select! {
                _ = run.wake.notified() => {}
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    joined.map_err(|e| ApplyError::Task(e.to_string()))??;
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        // Reap the workers (all idle now).
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| ApplyError::Task(e.to_string()))??;
        }
        let (nodes, completed_order, stopping, rollback, cancel_started, never_started) = {
            let mut s = lock(&run.sched);
            // Cancelled: what became ready meanwhile never starts. Stopped:
            // what never started is CANCELLED.
            let mut never_started = Vec::new();
            if s.cancelled {
                never_started.extend(s.cancel_pending(None, "action.cancel.end"));
            }
            if let Some(why) = s.stopping.clone() {
                let msg = format!("Cancelled: the plan stopped because {why}.");
                never_started.extend(s.cancel_pending(Some(msg), "action.update"));
            }
            (
                std::mem::take(&mut s.nodes),
                std::mem::take(&mut s.completed_order),
                s.stopping.take(),
                s.rollback,
                s.cancelled,
                never_started,
            )
        };
        commit_all(&shared, never_started).await?;
        if rollback {
            self.rollback(&nodes, &completed_order).await?;
        }
        self.finish(&nodes, cancel_started, stopping.as_deref())
            .await
    }

    /// Reverts the succeeded revertible actions, in reverse completion order
    /// (a reverse topological order).
    async fn rollback(&self, nodes: &[Node], completed: &[usize]) -> Result<(), ApplyError> {
        let shared = self.shared.clone();
        for &i in completed.iter().rev() {
            let n = &nodes[i];
            if n.state != St::Succeeded {
                continue;
            }
            let Ok((entry, params, _)) =
                prepare_handler(&shared, &n.row, &ancestor_outputs(nodes, i, &shared.types))
            else {
                continue;
            };
            let version = semver::Version::parse(&n.row.action_type_version).ok();
            let revertible_type = shared
                .types
                .get(&n.row.action_type, version.as_ref())
                .map(|t| t.revertible)
                .unwrap_or(false);
            let revertible_handler = shared
                .plugins
                .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                .is_some_and(|e| e.manifest().revertible);
            if !(revertible_type && revertible_handler) {
                continue;
            }
            let (u, plan) = (n.row.uuid.clone(), shared.plan_uuid.clone());
            let result = match create_handler(
                &shared,
                entry,
                params,
                handler_context(&shared, &n.row),
            )
            .await
            {
                Ok(h) => h.blocking(|h| h.revert()).await.map_err(|e| message_of(&e)),
                Err(e) => Err(message_of(&e)),
            };
            let (event, msg) = match result {
                Ok(()) => (
                    "action.revert.end",
                    "Reverted: the plan rolled back after a failure.".to_string(),
                ),
                Err(e) => (
                    "action.revert.error",
                    format!("Revert failed during rollback: {e}"),
                ),
            };
            db(&shared, move |s| {
                s.note(event, "action", &u, &plan, json!({"status_message": msg}))?;
                s.write(|tx| {
                    tx.execute(
                        "UPDATE actions SET status_message = ?1, updated_at = ?2 WHERE uuid = ?3",
                        rusqlite::params![msg, crate::store::now(), u],
                    )
                })
                .map(|_| ())
            })
            .await?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        nodes: &[Node],
        cancelled: bool,
        stopped: Option<&str>,
    ) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let u = shared.plan_uuid.clone();
        let any_failed = nodes.iter().any(|n| n.state == St::Failed);
        let any_skipped = nodes.iter().any(|n| n.state == St::Skipped);
        let (state, event, msg): (&str, &str, Option<String>) = if cancelled {
            ("CANCELLED", "action_plan.cancel.end", None)
        } else if any_failed {
            (
                "FAILED",
                "action_plan.execution.error",
                stopped.map(|s| format!("Stopped: {s}.")),
            )
        } else {
            (
                "SUCCEEDED",
                "action_plan.execution.end",
                any_skipped.then(|| "One or more actions were skipped.".to_string()),
            )
        };
        let m = msg.clone();
        let uu = u.clone();
        db(&shared, move |s| {
            s.plan_transition(&uu, &["ONGOING", "CANCELLING"], state, m.as_deref(), event)
        })
        .await?;
        Ok(PlanOutcome {
            uuid: u,
            state: state.into(),
            status_message: msg,
            simulation_problems: Vec::new(),
        })
    }
}

/// This applier's owner id: `host:pid:random`.
pub fn owner_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &crate::store::new_uuid()[..8]
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether an owner id names a process of this host that no longer runs.
fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    host == hostname()
        && pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// Commits transitions decided by the engine, in one transaction.
async fn commit_all(shared: &Arc<Shared>, ts: Vec<ActionTransition>) -> Result<(), ApplyError> {
    if ts.is_empty() {
        return Ok(());
    }
    let s = shared.clone();
    let results = tokio::task::spawn_blocking(move || s.committer.commit_many(ts))
        .await
        .map_err(|e| ApplyError::Task(e.to_string()))?;
    for r in results {
        r?;
    }
    Ok(())
}

fn plan_extra(shared: &Shared, plan_uuid: &str) -> Value {
    shared
        .db(|s| {
            s.conn()
                .query_row(
                    "SELECT policy FROM action_plans WHERE uuid = ?1",
                    [plan_uuid],
                    |r| r.get::<_, Option<String>>(0),
                )
                .map_err(|e| s.err(e))
        })
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn ancestors_of(nodes: &[Node], i: usize) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = nodes[i].parents.clone();
    while let Some(p) = stack.pop() {
        if seen.insert(p) {
            stack.extend(nodes[p].parents.iter().copied());
        }
    }
    seen
}

/// `{name: {"outputs": …}}` of the ancestors an action's templates name
/// (only those: a long chain does not copy every output into each action).
fn ancestor_outputs(nodes: &[Node], i: usize, types: &ActionTypeRegistry) -> Value {
    let row = &nodes[i].row;
    let mut refs = referenced_actions(&row.input_parameters);
    let version = semver::Version::parse(&row.action_type_version).ok();
    if let Ok(t) = types.get(&row.action_type, version.as_ref())
        && let Some(w) = &t.with
    {
        refs.extend(referenced_actions(w));
    }
    let mut m = serde_json::Map::new();
    if refs.is_empty() {
        return Value::Object(m);
    }
    let ancestors = ancestors_of(nodes, i);
    for a in ancestors {
        if refs.contains(&nodes[a].row.name) {
            m.insert(
                nodes[a].row.name.clone(),
                json!({"outputs": nodes[a].row.outputs.clone().unwrap_or(Value::Null)}),
            );
        }
    }
    Value::Object(m)
}

/// The action names a value's templates refer to (`actions.<name>.…`).
pub fn referenced_actions(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(i) = rest.find("actions.") {
                    let after = &rest[i + "actions.".len()..];
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                        .collect();
                    if !name.is_empty() && s.contains("{{") {
                        out.push(name);
                    }
                    rest = after;
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out.sort();
    out.dedup();
    out
}

/// A PENDING `nop` action of plan `p`, uuid `u-<name>`, for tests.
#[cfg(test)]
fn test_row(name: &str) -> ActionRow {
    ActionRow {
        uuid: format!("u-{name}"),
        name: name.into(),
        action_plan_uuid: "p".into(),
        action_type: "nop".into(),
        action_type_version: "1.0.0".into(),
        input_parameters: json!({}),
        state: "PENDING".into(),
        parents: Vec::new(),
        outputs: None,
        status_message: None,
        created_at: String::new(),
        updated_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans::{NewPlan, NewPlanAction};

    fn store_with_plan(n: usize) -> (tempfile::TempDir, Store, Vec<String>, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("open");
        let plan = store
            .create_plan(&NewPlan {
                state: "RECOMMENDED".into(),
                actions: (0..n)
                    .map(|i| NewPlanAction {
                        name: format!("a{i}"),
                        action_type: "nop".into(),
                        action_type_version: "1.0.0".into(),
                        input_parameters: json!({}),
                        parents: vec![],
                        state: "PENDING".into(),
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let uuids = store
            .actions(&plan.uuid)
            .expect("actions")
            .into_iter()
            .map(|a| a.uuid)
            .collect();
        (dir, store, uuids, plan.uuid)
    }

    #[test]
    fn a_handler_context_is_valid_json_whatever_its_names_hold() {
        let mut row = test_row("odd \"name\" \\ with\nbreaks");
        row.uuid = "u-1".into();
        let tail = context_tail("plan-\"x\"", &json!({"sim": {"sim_db": "/a b/c.db"}}));
        let v: Value = serde_json::from_str(&context_json(&row, 1.5, &tail)).expect("json");
        assert_eq!(
            v,
            json!({
                "uuid": "u-1",
                "name": row.name,
                "action_type": "nop",
                "action_type_version": "1.0.0",
                "action_plan": "plan-\"x\"",
                "estimated_duration_seconds": 1.5,
                "config": {"sim": {"sim_db": "/a b/c.db"}},
            })
        );
    }

    #[test]
    fn group_commits_from_many_threads_commit_every_transition_once() {
        let (_dir, store, uuids, plan) = store_with_plan(400);
        let committer = Arc::new(Committer::new(Arc::new(Mutex::new(store))));
        let threads: Vec<_> = uuids
            .chunks(25)
            .enumerate()
            .map(|(k, chunk)| {
                let (c, chunk, plan) = (committer.clone(), chunk.to_vec(), plan.clone());
                std::thread::spawn(move || {
                    for (j, u) in chunk.iter().enumerate() {
                        // A third of the threads name the plan and the action (a
                        // plain UPDATE), a third the plan only (UPDATE …
                        // RETURNING); the others read the state first.
                        let t = |from: &str, to: &str| {
                            let mut t = ActionTransition::new(u, &[from], to, None, None, "x");
                            t.plan_uuid = (k % 3 != 0).then(|| plan.clone());
                            t.name = (k % 3 == 2).then(|| format!("a{}", k * 25 + j));
                            c.commit_blocking(t)
                        };
                        assert_eq!(t("PENDING", "ONGOING").ok(), Some(true));
                        assert_eq!(t("ONGOING", "SUCCEEDED").ok(), Some(true));
                        // A compare-and-set that no longer holds changes nothing.
                        assert_eq!(t("ONGOING", "FAILED").ok(), Some(false));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread panicked");
        }
        let store = lock(&committer.store);
        let states: Vec<String> = store
            .conn()
            .prepare("SELECT state FROM actions")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("states");
        assert_eq!(states.len(), 400);
        assert!(states.iter().all(|s| s == "SUCCEEDED"), "{states:?}");
        let events: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM events WHERE event_type = 'x'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(events, 800, "one event per applied transition");
        let complete: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM events WHERE event_type = 'x' AND action_plan_uuid = ?1 \
                 AND ((old_state = 'PENDING' AND new_state = 'ONGOING') \
                   OR (old_state = 'ONGOING' AND new_state = 'SUCCEEDED'))",
                [&plan],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(complete, 800, "every event names its plan and both states");
        let missing = Committer::new(Arc::new(Mutex::new(store_with_plan(1).1))).commit_blocking(
            ActionTransition::new("no-such-action", &["PENDING"], "ONGOING", None, None, "x"),
        );
        assert!(
            matches!(missing, Err(StoreError::NotFound { .. })),
            "{missing:?}"
        );
    }
}
