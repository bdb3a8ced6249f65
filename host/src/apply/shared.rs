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
}

impl Shared {
    pub(super) fn db<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

/// Runs the store work of `f` on the blocking pool.
pub(super) async fn db<T: Send + 'static>(
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
