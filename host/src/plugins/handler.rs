//! [`Handler`]: one action's handler object, with poisoning and quarantine,
//! callable directly or through tokio's blocking pool.

use super::abi::RawHandler;
use super::{EntryRef, Library, PluginCallError};
use sextant_plugin_api::{ErrorKind, Kind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The handler object a plugin created for one action.
///
/// A handler that panicked is poisoned: every later call returns
/// [`PluginCallError::Poisoned`] without entering the plugin. `abort` may be
/// called from any thread while `execute` runs on another.
pub struct Handler {
    raw: RawHandler,
    library: Arc<Library>,
    entry: String,
    poisoned: AtomicBool,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("entry", &self.entry)
            .field("library", &self.library.path)
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

impl Handler {
    pub(super) fn create(
        entry: &EntryRef,
        params: &serde_json::Value,
        context_json: &str,
    ) -> Result<Self, PluginCallError> {
        let lib = &entry.library;
        lib.check_usable()?;
        let name = &entry.manifest().name;
        let raw = lib.track(lib.table(Kind::ActionHandler)?.create_handler(
            name,
            &crate::json_text(params),
            context_json,
        ))?;
        Ok(Self {
            raw,
            library: lib.clone(),
            entry: name.clone(),
            poisoned: AtomicBool::new(false),
        })
    }

    /// The handler entry's name.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The library the handler comes from.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// Whether the handler panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&RawHandler) -> Result<T, PluginCallError>,
    ) -> Result<T, PluginCallError> {
        if self.is_poisoned() {
            return Err(PluginCallError::Poisoned {
                entry: self.entry.clone(),
            });
        }
        let r = f(&self.raw);
        if matches!(r, Err(ref e) if e.kind() == Some(ErrorKind::PANICKED)) {
            self.poisoned.store(true, Ordering::Release);
            self.library.record_panic();
            tracing::error!(
                "handler {} of {} panicked: poisoned",
                self.entry,
                self.library.path.display()
            );
        }
        r
    }

    /// `pre_condition`: `Err` with kind `SKIPPED` means skip the action.
    pub fn pre_condition(&self) -> Result<(), PluginCallError> {
        self.call(RawHandler::pre_condition)
    }
    /// `execute`: the outputs as JSON.
    pub fn execute(&self) -> Result<serde_json::Value, PluginCallError> {
        let text = self.call(RawHandler::execute)?;
        serde_json::from_str(&text).map_err(|e| {
            PluginCallError::host(format!("handler {} returned invalid JSON: {e}", self.entry))
        })
    }
    /// `post_condition`
    pub fn post_condition(&self) -> Result<(), PluginCallError> {
        self.call(RawHandler::post_condition)
    }
    /// `revert`
    pub fn revert(&self) -> Result<(), PluginCallError> {
        self.call(RawHandler::revert)
    }
    /// `abort`: asks a running `execute` to stop. Cheap; call it directly.
    pub fn abort(&self) -> Result<(), PluginCallError> {
        self.call(RawHandler::abort)
    }

    /// Runs one of the blocking methods on tokio's blocking pool, bounded by
    /// the library's semaphore.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: fn(&Handler) -> Result<T, PluginCallError>,
    ) -> Result<T, PluginCallError> {
        self.blocking_with(f).await?
    }

    /// Runs `f` (several calls, say) on tokio's blocking pool, bounded by
    /// the library's semaphore.
    pub async fn blocking_with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Handler) -> T + Send + 'static,
    ) -> Result<T, PluginCallError> {
        let _permit = self
            .library
            .permits
            .acquire()
            .await
            .map_err(|_| PluginCallError::host("plugin call semaphore closed"))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| PluginCallError::host(format!("plugin call task failed: {e}")))
    }

    /// For the boundary benchmark: one call that does nothing but return.
    #[doc(hidden)]
    pub fn bench_probe(&self) -> bool {
        super::abi::bench_probe::pre_condition_ok(&self.raw)
    }
}
