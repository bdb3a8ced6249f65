//! The watchdog: one task that times out the running actions of a plan.

use super::*;

/// An action whose `execute` runs.
pub(super) struct Running {
    /// Its handler, once created (rendering and creating it are timed too).
    pub(super) handler: Option<Arc<Handler>>,
    /// Whether a cancel or a stop may abort it (its type and its handler
    /// both say so).
    pub(super) abortable: bool,
    /// When its timeout expires.
    pub(super) deadline: Instant,
    /// Set by the watchdog when it expired.
    pub(super) timed_out: Arc<std::sync::atomic::AtomicBool>,
    /// Tells the action's task that it expired.
    pub(super) expired: Arc<tokio::sync::Notify>,
}

/// How often the watchdog looks for expired timeouts.
const WATCHDOG: Duration = Duration::from_millis(10);

/// Times out running actions: one task for the whole plan instead of a
/// timer (and a wake-up) per action. An expired action is flagged, its
/// handler asked to abort, and its task told.
pub(super) async fn watchdog(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(WATCHDOG).await;
        let now = Instant::now();
        for r in lock(&shared.running).values() {
            if r.deadline <= now && !r.timed_out.swap(true, std::sync::atomic::Ordering::SeqCst) {
                if let Some(h) = &r.handler {
                    let _ = h.abort();
                }
                r.expired.notify_one();
            }
        }
    }
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
