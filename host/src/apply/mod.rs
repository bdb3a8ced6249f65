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
//!   appliers never run one plan, and every write it makes for the plan is
//!   fenced by that lease: refused once another applier claimed the plan,
//!   which stops this one (`lease.rs`). Cancellation comes from any process
//!   through the plan's state in the store.
//!
//! Invariant: the store is written only through compare-and-set
//! transitions; nothing runs twice silently.
//!
//! One file per job:
//!
//! | file | job |
//! |---|---|
//! | `engine.rs` | `Applier`: entry point, main loop, the plan's end |
//! | `nodes.rs` | the plan in memory: DAG nodes, pools, priorities |
//! | `sched.rs` | the scheduling state: what is ready, pools, rules |
//! | `worker.rs` | a worker slot's task: retries, backoff, final failures |
//! | `thread.rs` | the thread runner: actions back to back on one thread |
//! | `attempt.rs` | one attempt: pre_condition, ONGOING, execute, post_condition |
//! | `commit.rs` | the group commit of action transitions |
//! | `watchdog.rs` | timeouts of running actions |
//! | `context.rs` | an action's handler entry, parameters and context |
//! | `refs.rs` | context references between actions |
//! | `simulate.rs` | the checks before anything executes |
//! | `live_checks.rs` | simulation's pre_condition checks, timed and stoppable |
//! | `recovery.rs` | actions a killed applier left ONGOING |
//! | `rollback.rs` | reverting after a failure |
//! | `flows.rs` | flows and alternatives: what failed where, what runs next |
//! | `flow_work.rs` | switching alternatives and rolling flows back, committed first |
//! | `lease.rs` | the lease on the plan, and the owner id |
//! | `reconnect.rs` | a new store connection when the database restarts |
//! | `shared.rs` | what the engine, tasks and threads share |

use crate::action_types::{ActionTypeRegistry, HandlerMapper, template};
use crate::plan::makespan::pools_of;
use crate::plugins::{Handler, PluginCallError, PluginRegistry};
use crate::policy::{OnFailure, Policy};
use crate::states::{ActionState, EventType, ExecutionRule, PlanState};
use crate::store::apply::{ActionTransition, Lease};
use crate::store::plans::ActionRow;
use crate::store::{Store, StoreError};
use serde_json::{Value, json};
use sextant_plugin_api::ErrorKind;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

mod attempt;
mod commit;
mod context;
mod engine;
mod flow_work;
mod flows;
mod lease;
mod live_checks;
mod nodes;
mod reconnect;
mod recovery;
mod refs;
mod rollback;
mod sched;
mod shared;
mod simulate;
mod thread;
mod watchdog;
mod worker;

pub use engine::Applier;
pub use lease::{LeaseKeeper, owner_id, owner_id_for};
pub use reconnect::{RECONNECT_ATTEMPTS, RECONNECT_MAX_WAIT, backoff};
pub use simulate::Prediction;

// What the jobs share with each other (each child module imports `super::*`).
use attempt::{AttemptEnd, Carry, STOPPED_MESSAGE, attempt_blocking};
use commit::{commit_all, commit_transition, row_transition, transition};
use context::{
    context_json, context_tail, create_handler, handler_context, handler_context_json,
    handler_entry, handler_params, message_of, prepare_handler,
};
use lease::{acquire, is_lease_lost, leased, leased_action_transition, release, still_held};
use refs::{ancestor_outputs, ancestors_of, declared_names, referenced_actions};
use sched::{Completion, Sched, Stop};
use shared::{Shared, db};
use thread::{Run, Start, TaskLink, ThreadEnd, run_on_thread};
use watchdog::{AbortOnDrop, Running, watchdog};
use worker::worker;

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
    /// Another applier claimed the plan while this one ran (this one's
    /// lease had lapsed: its host was paused or cut off past it): every
    /// write of this applier was refused from then on, and it stopped
    /// applying the plan (see `lease.rs`).
    #[error(
        "the applier {owner} of action plan {plan} lost its lease on it (now held by {holder}) and stopped applying it: the new holder resumes it"
    )]
    LeaseLost {
        /// The plan.
        plan: String,
        /// This applier's owner id.
        owner: String,
        /// Who holds the lease now, as far as this applier could read it.
        holder: String,
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
    /// The applier stopped without ending the plan (a commit failed, the
    /// lease was lost, or the service is stopping): the plan stays ONGOING
    /// and `action-plan resume` continues it.
    #[error("the applier of action plan {plan} stopped: {why}; the plan is left to resume")]
    Interrupted {
        /// The plan.
        plan: String,
        /// Why.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task failed.
    #[error("applier task failed: {0}")]
    Task(String),
}

/// Asks appliers to stop cleanly, from a signal handler or another thread:
/// they launch nothing more, abort the running abortable actions (which go
/// back to PENDING), let the others finish within their grace period, and
/// leave their plans ONGOING for a resume.
///
/// ```
/// let stop = sextant::apply::StopSignal::default();
/// assert!(!stop.is_stopping());
/// stop.stop();
/// assert!(stop.is_stopping());
/// ```
#[derive(Clone, Debug, Default)]
pub struct StopSignal(Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// Asks to stop.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The flag itself, for `signal_hook::flag::register`.
    pub fn flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.0.clone()
    }
}

/// How long a stopping applier waits for its non-abortable actions, unless
/// configured (`grace_period`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How to apply a plan.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The policy (recovery, pools, execution rule, simulation).
    pub policy: Policy,
    /// Overrides the policy's execution rule.
    pub execution_rule: Option<ExecutionRule>,
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
    pub driver_config: crate::config::Secret<Value>,
    /// Asks this applier to stop cleanly (see [`StopSignal`]).
    pub stop: StopSignal,
    /// How long, once stopping, to wait for the running actions that
    /// cannot be aborted before leaving them to the resume.
    pub grace: Duration,
    /// Where simulation collects the cluster model whose changes it
    /// predicts (`None`: effects are not predicted).
    pub model_source: Option<crate::decide::ModelSource>,
}

/// The end of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlanOutcome {
    /// The plan.
    pub uuid: String,
    /// Its final state.
    pub state: PlanState,
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
    fn from_db(s: ActionState) -> St {
        match s {
            ActionState::Succeeded => St::Succeeded,
            ActionState::Failed => St::Failed,
            ActionState::Skipped => St::Skipped,
            ActionState::Cancelled | ActionState::Deleted => St::Cancelled,
            ActionState::Ongoing => St::Running,
            ActionState::Pending => St::Pending,
        }
    }
    fn done(self) -> bool {
        !matches!(self, St::Pending | St::Running)
    }
    /// Its name in the store (an ignored action stays PENDING).
    fn db(self) -> ActionState {
        match self {
            St::Pending | St::Ignored => ActionState::Pending,
            St::Running => ActionState::Ongoing,
            St::Succeeded => ActionState::Succeeded,
            St::Failed => ActionState::Failed,
            St::Skipped => ActionState::Skipped,
            St::Cancelled => ActionState::Cancelled,
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
    /// JSON pointers of the parameters that hold context references the
    /// plan declared (an imported plan's); nothing else is substituted.
    refs: Vec<String>,
    /// An alternative that has not started (docs/flows.md): simulation
    /// leaves it out; `flows::FlowRun` decides when it runs.
    dormant: bool,
}

/// Locks a mutex, whether or not a panicking holder poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        state: ActionState::Pending,
        parents: Vec::new(),
        outputs: None,
        status_message: None,
        created_at: String::new(),
        updated_at: None,
        execute_failed: false,
    }
}
