//! Plugins: discovery, loading, the registry of entries, and safe handles on
//! what plugins offer.
//!
//! * [`discovery`] finds candidate files and reads their manifests without
//!   running plugin code.
//! * [`abi`] is the loader, the only host module that names abi_stable types.
//! * [`PluginRegistry`] loads what discovery accepted, keeps the first entry
//!   of each `(kind, name)` in search-path order, and hands out [`Handler`]s.
//!
//! Invariants: a plugin that panicked is never called through the poisoned
//! handler again; a library that panicked [`QUARANTINE_AFTER`] times creates
//! no more handlers; a rejected file is never opened with `dlopen` unless its
//! manifest was accepted.

pub mod abi;
pub mod discovery;
mod handler;

pub use discovery::{DirSource, RejectCode, Rejection, SearchPath};
pub use handler::Handler;

use abi::Table;
use serde::Serialize;
use sextant_plugin_api::sdk::{Action, Schedule, Solution};
use sextant_plugin_api::{ErrorKind, Kind, Manifest, ManifestEntry, PluginError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Panics after which a library is quarantined.
pub const QUARANTINE_AFTER: u32 = 3;

/// Blocking calls in flight at once into one library.
pub const MAX_CONCURRENT_CALLS_PER_LIBRARY: usize = 256;

/// An error from a call into a plugin, or from the host around it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginCallError {
    /// The plugin returned an error.
    #[error("{kind}: {message}")]
    Plugin {
        /// The plugin's error kind.
        kind: ErrorKind,
        /// Its message.
        message: String,
        /// Structured details, if any.
        details: Option<serde_json::Value>,
    },
    /// The handler panicked earlier and is not called again.
    #[error("handler {entry} is poisoned: it panicked earlier and is not called again")]
    Poisoned {
        /// The handler entry.
        entry: String,
    },
    /// The library panicked too often.
    #[error("plugin {} is quarantined after {panics} panics", path.display())]
    Quarantined {
        /// The library file.
        path: PathBuf,
        /// How many panics were seen.
        panics: u32,
    },
    /// The host could not make the call.
    #[error("{0}")]
    Host(String),
}

impl PluginCallError {
    pub(crate) fn from_plugin(e: PluginError) -> Self {
        Self::Plugin {
            kind: e.kind(),
            message: e.message().to_string(),
            details: e.details(),
        }
    }
    pub(crate) fn host(msg: impl Into<String>) -> Self {
        Self::Host(msg.into())
    }
    /// The plugin's error kind, when the plugin returned the error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Plugin { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// A loaded plugin library.
pub struct Library {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Its manifest, as read from the ELF section.
    pub manifest: Manifest,
    tables: Vec<(Kind, Table)>,
    /// `predict.v1`, when the plugin's handlers declare their effects.
    predict: Option<abi::PredictTable>,
    /// `planners.v2`, when the plugin's planners may return flows and
    /// alternatives.
    planners_v2: Option<abi::PlannersV2Table>,
    panics: AtomicU32,
    pub(crate) permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("path", &self.path).finish()
    }
}

impl Library {
    /// Loads a file whose manifest was accepted by
    /// [`discovery::read_manifest`]: opens it, checks layouts, calls `init`,
    /// and fetches the capability table of every kind it declares.
    pub fn load(path: &Path, manifest: Manifest) -> Result<Self, Rejection> {
        let root = abi::load(path).map_err(|f| {
            tracing::debug!("abi_stable report for {}:\n{}", path.display(), f.detail);
            let code = if f.summary.starts_with("layout mismatch") {
                RejectCode::LayoutMismatch
            } else {
                RejectCode::LoadFailed
            };
            Rejection::new(path, code, f.summary)
        })?;
        let reported = Manifest::parse(root.manifest_json().as_bytes()).map_err(|e| {
            Rejection::new(
                path,
                RejectCode::LoadFailed,
                format!("the loaded module reports a malformed manifest: {e}"),
            )
        })?;
        if reported != manifest {
            return Err(Rejection::new(
                path,
                RejectCode::LoadFailed,
                "the loaded module's manifest differs from its .sextant_plugin section",
            ));
        }
        let mut tables = Vec::new();
        for kind in Kind::ALL {
            if !manifest.entries.iter().any(|e| e.kind == kind) {
                continue;
            }
            match root.table(kind) {
                Ok(Some(t)) => tables.push((kind, t)),
                Ok(None) => {
                    return Err(Rejection::new(
                        path,
                        RejectCode::LoadFailed,
                        format!(
                            "declares {kind} entries but offers no {} table",
                            kind.capability()
                        ),
                    ));
                }
                Err(e) => return Err(Rejection::new(path, RejectCode::LayoutMismatch, e)),
            }
        }
        // Optional: a plugin without it (or with one this host cannot read)
        // loads, and simulation treats its actions' effects as unknown.
        let predict = root.predict_table().unwrap_or_else(|e| {
            tracing::warn!(
                "{}: {e}: its handlers' effects will not be predicted",
                path.display()
            );
            None
        });
        // Optional too: without it (or with one this host cannot read), its
        // planners plan flat through planners.v1.
        let planners_v2 = if manifest.entries.iter().any(|e| e.kind == Kind::Planner) {
            root.planners_v2_table().unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: {e}: its planners plan flat (planners.v1)",
                    path.display()
                );
                None
            })
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            manifest,
            tables,
            predict,
            planners_v2,
            panics: AtomicU32::new(0),
            permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS_PER_LIBRARY),
        })
    }

    /// Reads the manifest and loads the file: what `plugins check` does.
    pub fn open(path: &Path) -> Result<Self, Rejection> {
        let manifest = discovery::read_manifest(path)?;
        Self::load(path, manifest)
    }

    fn table(&self, kind: Kind) -> Result<&Table, PluginCallError> {
        self.tables
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                PluginCallError::host(format!(
                    "{} has no {} table",
                    self.path.display(),
                    kind.capability()
                ))
            })
    }

    /// Whether the library's handlers may declare their effects
    /// (`predict.v1`).
    pub fn predicts(&self) -> bool {
        self.predict.is_some()
    }

    /// Opens a prediction over a cluster model (JSON); `None` when the
    /// library offers no `predict.v1`.
    pub fn open_predictor(
        &self,
        model_json: &str,
    ) -> Result<Option<Predictor<'_>>, PluginCallError> {
        let Some(t) = self.predict else {
            return Ok(None);
        };
        self.check_usable()?;
        let raw = self.track(t.open(model_json))?;
        Ok(Some(Predictor { raw, library: self }))
    }

    /// How many panics this library has had.
    pub fn panics(&self) -> u32 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Whether the library panicked too often to be used.
    pub fn is_quarantined(&self) -> bool {
        self.panics() >= QUARANTINE_AFTER
    }

    fn record_panic(&self) {
        let n = self.panics.fetch_add(1, Ordering::Relaxed) + 1;
        if n == QUARANTINE_AFTER {
            tracing::error!(
                "plugin {} panicked {n} times: quarantined, it creates no more handlers",
                self.path.display()
            );
        }
    }

    fn check_usable(&self) -> Result<(), PluginCallError> {
        if self.is_quarantined() {
            return Err(PluginCallError::Quarantined {
                path: self.path.clone(),
                panics: self.panics(),
            });
        }
        Ok(())
    }

    /// Tracks a stateless call's panics.
    fn track<T>(&self, r: Result<T, PluginCallError>) -> Result<T, PluginCallError> {
        if matches!(r, Err(ref e) if e.kind() == Some(ErrorKind::PANICKED)) {
            self.record_panic();
        }
        r
    }
}

/// A prediction in progress in one library (see
/// [`sextant_plugin_api::prediction`]).
pub struct Predictor<'a> {
    raw: abi::RawPredictor,
    library: &'a Library,
}

impl Predictor<'_> {
    /// Predicts one action of handler entry `name` with its parameters:
    /// the changes it makes (JSON array of `ModelChange`), or why it could
    /// not run in the predicted state.
    pub fn apply(&mut self, name: &str, params_json: &str) -> Result<String, PluginCallError> {
        self.library.check_usable()?;
        self.library.track(self.raw.apply(name, params_json))
    }

    /// Applies changes predicted in another library.
    pub fn observe(&mut self, changes_json: &str) -> Result<(), PluginCallError> {
        self.library.check_usable()?;
        self.library.track(self.raw.observe(changes_json))
    }
}

/// An entry of a loaded library.
#[derive(Clone, Debug)]
pub struct EntryRef {
    /// The library that exports it.
    pub library: Arc<Library>,
    index: usize,
}

impl EntryRef {
    /// The entry's manifest.
    pub fn manifest(&self) -> &ManifestEntry {
        &self.library.manifest.entries[self.index]
    }
}

/// Two entries with one `(kind, name)`: the first in path order is kept.
#[derive(Clone, Debug, Serialize)]
pub struct Duplicate {
    /// The kind.
    pub kind: Kind,
    /// The name.
    pub name: String,
    /// The file whose entry is used.
    pub kept: PathBuf,
    /// The file whose entry is ignored.
    pub ignored: PathBuf,
}

/// Everything discovery found: the loaded libraries and their entries, and
/// what was rejected, with why.
#[derive(Debug, Default)]
pub struct PluginRegistry {
    /// The directories searched, in order.
    pub search_path: SearchPath,
    /// Loaded libraries, in search order.
    pub libraries: Vec<Arc<Library>>,
    /// The usable entries: the first of each `(kind, name)`.
    pub entries: Vec<EntryRef>,
    /// Files and directories refused.
    pub rejected: Vec<Rejection>,
    /// Entries ignored because an earlier file has the same `(kind, name)`.
    pub duplicates: Vec<Duplicate>,
}

impl PluginRegistry {
    /// Discovers and loads every plugin on the search path.
    pub fn discover(search_path: &SearchPath) -> Self {
        let mut reg = Self {
            search_path: search_path.clone(),
            ..Self::default()
        };
        for (dir, source) in &search_path.dirs {
            if !dir.exists() {
                if *source != DirSource::Installation {
                    tracing::warn!("plugin directory {} does not exist", dir.display());
                }
                continue;
            }
            let files = match discovery::candidates(dir) {
                Ok(f) => f,
                Err(r) => {
                    tracing::warn!("refused {}: {}", r.path.display(), r.reason);
                    reg.rejected.push(r);
                    continue;
                }
            };
            for file in files {
                let opened = file.and_then(|f| Library::open(&f));
                match opened {
                    Ok(lib) => reg.add(Arc::new(lib)),
                    Err(r) => {
                        tracing::info!("rejected {}: {}", r.path.display(), r.reason);
                        reg.rejected.push(r);
                    }
                }
            }
        }
        reg
    }

    fn add(&mut self, lib: Arc<Library>) {
        for (index, e) in lib.manifest.entries.iter().enumerate() {
            if let Some(first) = self.find(e.kind, &e.name) {
                let kept = first.library.path.clone();
                tracing::warn!(
                    "{} {:?} is declared by both {} and {}: using the first",
                    e.kind,
                    e.name,
                    kept.display(),
                    lib.path.display()
                );
                self.duplicates.push(Duplicate {
                    kind: e.kind,
                    name: e.name.clone(),
                    kept,
                    ignored: lib.path.clone(),
                });
                continue;
            }
            self.entries.push(EntryRef {
                library: lib.clone(),
                index,
            });
        }
        self.libraries.push(lib);
    }

    /// The entry of that kind and name.
    pub fn find(&self, kind: Kind, name: &str) -> Option<&EntryRef> {
        self.entries
            .iter()
            .find(|e| e.manifest().kind == kind && e.manifest().name == name)
    }

    /// The entries of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &EntryRef> {
        self.entries
            .iter()
            .filter(move |e| e.manifest().kind == kind)
    }

    fn require(&self, kind: Kind, name: &str) -> Result<&EntryRef, PluginCallError> {
        self.find(kind, name)
            .ok_or_else(|| PluginCallError::host(format!("no {kind} named {name:?} is loaded")))
    }

    /// Creates the handler of entry `name` for one action.
    pub fn handler(
        &self,
        name: &str,
        params: &serde_json::Value,
        context: &serde_json::Value,
    ) -> Result<Handler, PluginCallError> {
        self.handler_json(name, params, &crate::json_text(context))
    }

    /// [`PluginRegistry::handler`] with the context already JSON text.
    pub fn handler_json(
        &self,
        name: &str,
        params: &serde_json::Value,
        context_json: &str,
    ) -> Result<Handler, PluginCallError> {
        let entry = self.require(Kind::ActionHandler, name)?;
        Handler::create(entry, params, context_json)
    }

    /// Runs strategy `name`.
    pub fn run_strategy(
        &self,
        name: &str,
        model: &serde_json::Value,
        params: &serde_json::Value,
    ) -> Result<Solution, PluginCallError> {
        let e = self.require(Kind::Strategy, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        lib.track(lib.table(Kind::Strategy)?.run_strategy(
            name,
            &crate::json_text(model),
            &crate::json_text(params),
        ))
    }

    /// Schedules `actions` with planner `name`.
    pub fn schedule(
        &self,
        name: &str,
        actions: &[Action],
        context: &serde_json::Value,
    ) -> Result<Schedule, PluginCallError> {
        let e = self.require(Kind::Planner, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        lib.track(
            lib.table(Kind::Planner)?
                .schedule(name, actions, &crate::json_text(context)),
        )
    }

    /// Schedules actions already in their ABI envelope with planner `name`;
    /// `context_json` is the planner's context as JSON text.
    pub fn schedule_specs(
        &self,
        name: &str,
        actions: &[sextant_plugin_api::abi::ActionSpec],
        context_json: &str,
    ) -> Result<Schedule, PluginCallError> {
        let e = self.require(Kind::Planner, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        lib.track(
            lib.table(Kind::Planner)?
                .schedule_specs(name, actions, context_json),
        )
    }

    /// Schedules actions with planner `name` through `planners.v2` when its
    /// library offers it (flows and alternatives), else through
    /// `planners.v1` (a flat plan).
    pub fn schedule_structured(
        &self,
        name: &str,
        actions: &[sextant_plugin_api::abi::ActionSpec],
        context_json: &str,
    ) -> Result<sextant_plugin_api::sdk::StructuredSchedule, PluginCallError> {
        let e = self.require(Kind::Planner, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        match lib.planners_v2 {
            Some(t) => lib.track(t.schedule(name, actions, context_json)),
            None => lib
                .track(
                    lib.table(Kind::Planner)?
                        .schedule_specs(name, actions, context_json),
                )
                .map(Into::into),
        }
    }

    /// Whether planner `name`'s library offers `planners.v2`.
    pub fn planner_offers_v2(&self, name: &str) -> bool {
        self.find(Kind::Planner, name)
            .is_some_and(|e| e.library.planners_v2.is_some())
    }

    /// Maps an action with mapper `name`.
    pub fn map_action(
        &self,
        name: &str,
        request: &serde_json::Value,
    ) -> Result<String, PluginCallError> {
        let e = self.require(Kind::ActionMapper, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        lib.track(
            lib.table(Kind::ActionMapper)?
                .map_action(name, &crate::json_text(request)),
        )
    }

    /// Collects a cluster model with collector `name`.
    pub fn collect(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<serde_json::Value, PluginCallError> {
        let e = self.require(Kind::Collector, name)?;
        let lib = &e.library;
        lib.check_usable()?;
        let text = lib.track(
            lib.table(Kind::Collector)?
                .collect(name, &crate::json_text(config)),
        )?;
        tracing::debug!("collector {name}: model collected ({} bytes)", text.len());
        serde_json::from_str(&text).map_err(|err| {
            PluginCallError::host(format!("collector {name} returned invalid JSON: {err}"))
        })
    }
}
