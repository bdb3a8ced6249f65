//! What the engine, its worker tasks and their threads share during a run.

use super::*;

/// Shared by the engine and its action tasks.
pub(super) struct Shared {
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) committer: crate::store::GroupCommit,
    /// Handler entry by (action type, version): the mapper's answer does
    /// not change during a run.
    pub(super) entries: Mutex<HashMap<(String, String), Result<String, String>>>,
    pub(super) plugins: Arc<PluginRegistry>,
    pub(super) types: Arc<ActionTypeRegistry>,
    pub(super) opts: ApplyOptions,
    pub(super) plan_uuid: String,
    /// The end of every handler context (see [`context_tail`]).
    pub(super) context_tail: String,
    /// The actions whose `execute` runs: for abort, and for the watchdog
    /// that times them out.
    pub(super) running: Mutex<HashMap<String, Running>>,
    pub(super) cancelling: std::sync::atomic::AtomicBool,
    /// The applier is stopping (see `StopSignal`): an aborted action goes
    /// back to PENDING instead of failing.
    pub(super) service_stopping: std::sync::atomic::AtomicBool,
    /// Handlers whose `pre_condition` passed in simulation's live checks,
    /// by action uuid: the action's first attempt uses its handler instead
    /// of creating another (same parameters, same context: the action is
    /// a root with no references), and runs `pre_condition` again. At most
    /// [`PRECHECKED_MAX`].
    pub(super) prechecked: Mutex<HashMap<String, Arc<Handler>>>,
    /// Where to open the store again when its connection is lost
    /// (`reconnect.rs`); unset, a lost connection stops the applier.
    pub(super) reconnect: std::sync::OnceLock<crate::store::Location>,
    /// How many times the store was opened again (`reconnect.rs`).
    pub(super) generation: std::sync::atomic::AtomicU64,
    /// The lease is a `serve` host's, which applies the plan again itself
    /// after a failure: the applier keeps it then (see
    /// [`Applier::for_host`](super::Applier::for_host)).
    pub(super) lease_kept_on_failure: std::sync::atomic::AtomicBool,
    /// Set once this applier found its lease taken by another (a write
    /// refused by the fence, a renewal refused): who holds it now. From
    /// then on the applier starts nothing (see `lease.rs`).
    pub(super) lease_lost: std::sync::OnceLock<String>,
}

/// Handlers kept from simulation's live checks, at most: a bound on what
/// they hold meanwhile (about 1 KB each for `nop`: its parsed parameters
/// and context).
pub(super) const PRECHECKED_MAX: usize = 10_000;

impl Shared {
    /// The handler simulation created for the action `uuid`, if kept.
    pub(super) fn take_prechecked(&self, uuid: &str) -> Option<Arc<Handler>> {
        let mut p = self.prechecked.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_empty() {
            return None;
        }
        p.remove(uuid)
    }
}

/// Runs the store work of `f` on the blocking pool (again on a new
/// connection if the first was lost: `reconnect.rs`).
pub(super) async fn db<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl Fn(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.db(f))
        .await
        .map_err(|e| StoreError::NotFound {
            kind: "store task",
            id: e.to_string(),
        })?
}
