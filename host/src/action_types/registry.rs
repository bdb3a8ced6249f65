//! The registry of action types: every valid definition found in the
//! action-type directories, several versions of a name side by side.
//!
//! Directories, in order: `SEXTANT_ACTION_TYPE_PATH` (colon-separated), the
//! config file's `action_type_dirs`, the registered types
//! (`$XDG_DATA_HOME/sextant/action-types`, written by `action-type
//! register`), then the installation's `action-types/`. The registry is read
//! afresh by every command, so a file dropped into a directory is seen by
//! the next one, with no rebuild and no restart. When two files define one
//! `name@version`, the first in that order wins, with a warning; but a file
//! that would replace a built-in type (one of the installation's) with other
//! content is refused unless the config file says
//! `allow_shadowing_builtin_types: true`.
//!
//! Every directory and file is vetted by the rules of [`crate::trust`]
//! first: what others could have written is refused, never read.

use super::dsl::{ActionType, DefinitionError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a directory of action types came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeSource {
    /// `SEXTANT_ACTION_TYPE_PATH`.
    Env,
    /// The config file's `action_type_dirs`.
    Config,
    /// Written by `sextant action-type register`.
    Registered,
    /// `action-types/` of the installation.
    Installation,
}

/// The directories to read, in order, and the one `register` writes to.
#[derive(Clone, Debug, Serialize)]
pub struct ActionTypeDirs {
    /// Directories in precedence order.
    pub dirs: Vec<(PathBuf, TypeSource)>,
    /// Where `register` writes.
    pub registered: PathBuf,
    /// Whether a type may replace a built-in type of the same
    /// `name@version` with other content (config
    /// `allow_shadowing_builtin_types`); refused when `false`.
    pub allow_shadowing_builtin: bool,
}

impl ActionTypeDirs {
    /// Builds the list from the environment variable's value, the config
    /// file's dirs, the data directory and the executable's location.
    pub fn new(
        env_path: Option<&str>,
        config_dirs: &[PathBuf],
        data_dir: &Path,
        exe: Option<&Path>,
    ) -> Self {
        let mut dirs = Vec::new();
        if let Some(p) = env_path {
            dirs.extend(
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(|d| (PathBuf::from(d), TypeSource::Env)),
            );
        }
        dirs.extend(config_dirs.iter().map(|d| (d.clone(), TypeSource::Config)));
        let registered = data_dir.join("action-types");
        dirs.push((registered.clone(), TypeSource::Registered));
        for d in installation_dirs(exe) {
            dirs.push((d, TypeSource::Installation));
        }
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|(d, _)| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())));
        Self {
            dirs,
            registered,
            allow_shadowing_builtin: false,
        }
    }
}

/// `action-types/` of the installation the executable belongs to (see
/// [`crate::installation`]: `EXE_DIR/../share/sextant`, else the source
/// tree above the executable).
fn installation_dirs(exe: Option<&Path>) -> Vec<PathBuf> {
    crate::installation::subdir_of(exe, "action-types")
        .into_iter()
        .collect()
}

/// A `*.yaml` or `*.yml` file that is not hidden.
fn is_definition_file(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "yaml" || x == "yml")
        && !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// A `name@version` defined twice: the first file wins.
#[derive(Clone, Debug, Serialize)]
pub struct Shadowed {
    /// `name@version`.
    pub id: String,
    /// The file used.
    pub kept: PathBuf,
    /// The file ignored.
    pub ignored: PathBuf,
}

/// Why a directory or definition file was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// It would replace a built-in type with other content.
    ShadowsBuiltin,
    /// It failed the rules of [`crate::trust`].
    #[serde(untagged)]
    Untrusted(crate::trust::Fault),
}

/// A directory or definition file refused, with its one-line reason.
#[derive(Clone, Debug, Serialize)]
pub struct Refused {
    /// The directory or file.
    pub path: PathBuf,
    /// Machine-readable reason.
    pub code: RefusalCode,
    /// One line for a human, naming the fix.
    pub reason: String,
}

impl From<crate::trust::Untrusted> for Refused {
    fn from(u: crate::trust::Untrusted) -> Self {
        Self {
            path: u.path,
            code: RefusalCode::Untrusted(u.fault),
            reason: u.reason,
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// No type of that name.
    #[error("unknown action type {name:?}{}", hint(.known))]
    UnknownType {
        /// The name asked for.
        name: String,
        /// Known names, for the message.
        known: Vec<String>,
    },
    /// The name exists, not the version.
    #[error("action type {name} has no version {version} (registered: {})", .available.join(", "))]
    UnknownVersion {
        /// The name.
        name: String,
        /// The version asked for.
        version: String,
        /// The versions there are.
        available: Vec<String>,
    },
    /// `NAME@VERSION` did not parse.
    #[error("{reference:?} is not NAME or NAME@VERSION with a SemVer version: {reason}")]
    BadReference {
        /// What was given.
        reference: String,
        /// Why it is wrong.
        reason: String,
    },
}

fn hint(known: &[String]) -> String {
    if known.is_empty() {
        " (no action types are registered)".into()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

/// Splits `name` or `name@version`.
pub fn parse_reference(reference: &str) -> Result<(&str, Option<semver::Version>), LookupError> {
    match reference.split_once('@') {
        None => Ok((reference, None)),
        Some((n, v)) => semver::Version::parse(v)
            .map(|v| (n, Some(v)))
            .map_err(|e| LookupError::BadReference {
                reference: reference.into(),
                reason: e.to_string(),
            }),
    }
}

/// Every valid action type found, and what was refused.
#[derive(Debug, Default)]
pub struct ActionTypeRegistry {
    types: BTreeMap<String, BTreeMap<semver::Version, ActionType>>,
    /// Definitions refused, with their errors.
    pub invalid: Vec<DefinitionError>,
    /// Definitions ignored because an earlier file has the same id.
    pub shadowed: Vec<Shadowed>,
    /// Directories and files refused before being read, and definitions
    /// that would replace a built-in type.
    pub refused: Vec<Refused>,
}

impl ActionTypeRegistry {
    /// Reads every `*.yaml` / `*.yml` file of the directories that pass
    /// the rules of [`crate::trust`], then registers them in order, refusing
    /// those that would replace a built-in type unless `dirs` allows it.
    pub fn load(dirs: &ActionTypeDirs) -> Self {
        let mut reg = Self::default();
        let mut found: Vec<(ActionType, TypeSource)> = Vec::new();
        for (dir, source) in &dirs.dirs {
            if !dir.exists() {
                continue;
            }
            let files = crate::trust::vet_dir(dir, "action-type directory").and_then(|_| {
                crate::trust::list_files(dir, is_definition_file).map_err(|e| {
                    crate::trust::Untrusted {
                        path: dir.clone(),
                        fault: crate::trust::Fault::Unreadable,
                        reason: format!("cannot read action-type directory {}: {e}", dir.display()),
                    }
                })
            });
            let files = match files {
                Ok(f) => f,
                Err(u) => {
                    reg.refuse(u.into());
                    continue;
                }
            };
            for file in files {
                let vetted = file.and_then(|f| {
                    crate::trust::vet_file(&f, "action-type file")?;
                    Ok(f)
                });
                let f = match vetted {
                    Ok(f) => f,
                    Err(u) => {
                        reg.refuse(u.into());
                        continue;
                    }
                };
                match ActionType::from_file(&f) {
                    Ok(t) => found.push((t, *source)),
                    Err(errs) => {
                        for e in &errs.0 {
                            tracing::warn!("ignoring action type: {e}");
                        }
                        reg.invalid.extend(errs.0);
                    }
                }
            }
        }
        // The built-in types: the first of each id in the installation.
        let mut builtin: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        for (t, source) in &found {
            if *source == TypeSource::Installation {
                builtin
                    .entry(t.id())
                    .or_insert_with(|| (t.source.clone(), t.text.clone()));
            }
        }
        for (t, source) in found {
            if source != TypeSource::Installation
                && !dirs.allow_shadowing_builtin
                && let Some((builtin_file, text)) = builtin.get(&t.id())
                && *text != t.text
            {
                reg.refuse(Refused {
                    path: t.source.clone(),
                    code: RefusalCode::ShadowsBuiltin,
                    reason: format!(
                        "action type {} in {} would replace the built-in one ({}) with other content: give it another version, or set `allow_shadowing_builtin_types: true` in the config file to allow it",
                        t.id(),
                        t.source.display(),
                        builtin_file.display()
                    ),
                });
                continue;
            }
            reg.insert(t);
        }
        reg
    }

    fn refuse(&mut self, r: Refused) {
        tracing::warn!("refused {}: {}", r.path.display(), r.reason);
        self.refused.push(r);
    }

    /// Adds one type unless its id is taken (the first wins).
    pub fn insert(&mut self, t: ActionType) {
        let versions = self.types.entry(t.name.clone()).or_default();
        if let Some(first) = versions.get(&t.version) {
            if first.text != t.text {
                tracing::warn!(
                    "action type {} is defined by both {} and {}: using the first",
                    t.id(),
                    first.source.display(),
                    t.source.display()
                );
            }
            self.shadowed.push(Shadowed {
                id: t.id(),
                kept: first.source.clone(),
                ignored: t.source.clone(),
            });
            return;
        }
        versions.insert(t.version.clone(), t);
    }

    /// The type `name` at `version`, or its latest version.
    pub fn get(
        &self,
        name: &str,
        version: Option<&semver::Version>,
    ) -> Result<&ActionType, LookupError> {
        let versions = self
            .types
            .get(name)
            .ok_or_else(|| LookupError::UnknownType {
                name: name.into(),
                known: self.types.keys().cloned().collect(),
            })?;
        match version {
            None => versions.values().next_back(),
            Some(v) => versions.get(v),
        }
        .ok_or_else(|| LookupError::UnknownVersion {
            name: name.into(),
            version: version.map(ToString::to_string).unwrap_or_default(),
            available: versions.keys().map(ToString::to_string).collect(),
        })
    }

    /// Looks up `name` or `name@version`.
    pub fn resolve(&self, reference: &str) -> Result<&ActionType, LookupError> {
        let (name, version) = parse_reference(reference)?;
        self.get(name, version.as_ref())
    }

    /// Every type, by name then version.
    pub fn all(&self) -> impl Iterator<Item = &ActionType> {
        self.types.values().flat_map(|v| v.values())
    }
}

/// Why `register` or `unregister` refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The definition is invalid.
    #[error("{0}")]
    Invalid(super::dsl::DefinitionErrors),
    /// That id exists with other content.
    #[error(
        "action type {id} is already registered from {} with different content: give the new definition a new version",
        existing.display()
    )]
    Conflict {
        /// `name@version`.
        id: String,
        /// Where the existing one lives.
        existing: PathBuf,
    },
    /// The registry directory fails the rules of [`crate::trust`]: what is
    /// written there would be refused when read.
    #[error("{0}")]
    Untrusted(crate::trust::Untrusted),
    /// `unregister` of something not registered by `register`.
    #[error("{0}")]
    NotRegistered(String),
    /// Writing failed.
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why (in the message, not a `source`, so it is printed once).
        cause: std::io::Error,
    },
}

/// What `register` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    /// Written to this file.
    New(PathBuf),
    /// The same definition was already registered there.
    Unchanged(PathBuf),
}

/// Validates `file` and writes it atomically into the registered directory
/// as `NAME@VERSION.yaml`. `check` may refuse the type (for example when it
/// maps to no loaded handler) before anything is written.
pub fn register(
    dirs: &ActionTypeDirs,
    registry: &ActionTypeRegistry,
    file: &Path,
    check: impl FnOnce(&ActionType) -> Result<(), super::dsl::DefinitionErrors>,
) -> Result<Registered, RegisterError> {
    let t = ActionType::from_file(file).map_err(RegisterError::Invalid)?;
    register_type(dirs, registry, t, check)
}

/// As [`register`], for a definition given as text (the REST API's
/// request body); `label` names it in errors.
pub fn register_text(
    dirs: &ActionTypeDirs,
    registry: &ActionTypeRegistry,
    text: &str,
    label: &Path,
    check: impl FnOnce(&ActionType) -> Result<(), super::dsl::DefinitionErrors>,
) -> Result<Registered, RegisterError> {
    let t = ActionType::parse(text, label).map_err(RegisterError::Invalid)?;
    register_type(dirs, registry, t, check)
}

fn register_type(
    dirs: &ActionTypeDirs,
    registry: &ActionTypeRegistry,
    t: ActionType,
    check: impl FnOnce(&ActionType) -> Result<(), super::dsl::DefinitionErrors>,
) -> Result<Registered, RegisterError> {
    check(&t).map_err(RegisterError::Invalid)?;
    if let Ok(existing) = registry.get(&t.name, Some(&t.version)) {
        if existing.text == t.text {
            return Ok(Registered::Unchanged(existing.source.clone()));
        }
        return Err(RegisterError::Conflict {
            id: t.id(),
            existing: existing.source.clone(),
        });
    }
    let dir = &dirs.registered;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| RegisterError::Io { path, cause }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::trust::vet_dir(dir, "action-type directory").map_err(RegisterError::Untrusted)?;
    let target = dir.join(format!("{}.yaml", t.id()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".register-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(t.text.as_bytes()).map_err(io(&target))?;
    tmp.as_file().sync_all().map_err(io(&target))?;
    tmp.persist_noclobber(&target)
        .map_err(|e| RegisterError::Io {
            path: target.clone(),
            cause: e.error,
        })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Registered::New(target))
}

/// Removes a type that `register` wrote.
pub fn unregister(
    dirs: &ActionTypeDirs,
    registry: &ActionTypeRegistry,
    reference: &str,
) -> Result<PathBuf, RegisterError> {
    let (name, version) =
        parse_reference(reference).map_err(|e| RegisterError::NotRegistered(e.to_string()))?;
    let Some(version) = version else {
        return Err(RegisterError::NotRegistered(format!(
            "say which version to unregister: {name}@VERSION"
        )));
    };
    let t = registry
        .get(name, Some(&version))
        .map_err(|e| RegisterError::NotRegistered(e.to_string()))?;
    if t.source.parent() != Some(dirs.registered.as_path()) {
        return Err(RegisterError::NotRegistered(format!(
            "action type {} comes from {}, not from the registered types: remove that file instead",
            t.id(),
            t.source.display()
        )));
    }
    std::fs::remove_file(&t.source).map_err(|cause| RegisterError::Io {
        path: t.source.clone(),
        cause,
    })?;
    Ok(t.source.clone())
}
