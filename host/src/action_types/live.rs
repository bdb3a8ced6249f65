//! [`LiveTypes`]: the action types as they are on disk now, for a process
//! that runs for long (`sextant serve` and its API). Each read compares a
//! cheap fingerprint of the type directories (each directory's and each
//! definition file's modification time and size) with the one the loaded
//! registry was read at, and reads the registry again when they differ:
//! a type registered or unregistered by the API, by `sextant action-type
//! register` beside the service, or by hand is used from the next audit,
//! plan or request on, with no restart.

use super::registry::{ActionTypeDirs, ActionTypeRegistry};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What the registry was read from: per directory, its own stamp and each
/// entry's, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, Option<(SystemTime, u64)>)>);

impl Fingerprint {
    fn of(dirs: &ActionTypeDirs) -> Self {
        let stamp = |p: &std::path::Path| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        let mut out = Vec::new();
        for (dir, _) in &dirs.dirs {
            out.push((dir.clone(), stamp(dir)));
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                let s = stamp(&f);
                out.push((f, s));
            }
        }
        Self(out)
    }
}

/// The action types, read again whenever their directories change.
pub struct LiveTypes {
    dirs: ActionTypeDirs,
    now: Mutex<(Fingerprint, Arc<ActionTypeRegistry>)>,
}

impl LiveTypes {
    /// Reads the registry from `dirs`.
    pub fn load(dirs: ActionTypeDirs) -> Self {
        let print = Fingerprint::of(&dirs);
        let reg = Arc::new(ActionTypeRegistry::load(&dirs));
        Self {
            dirs,
            now: Mutex::new((print, reg)),
        }
    }

    /// Where the types are read from and registered to.
    pub fn dirs(&self) -> &ActionTypeDirs {
        &self.dirs
    }

    /// The action types as the directories hold them now: the registry
    /// read last, or a fresh one if a directory or a file changed since.
    pub fn current(&self) -> Arc<ActionTypeRegistry> {
        let print = Fingerprint::of(&self.dirs);
        let mut now = match self.now.lock() {
            Ok(n) => n,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now.0 != print {
            tracing::info!("action-type directories changed: reading the action types again");
            *now = (print, Arc::new(ActionTypeRegistry::load(&self.dirs)));
        }
        Arc::clone(&now.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const T: &str = "name: greet\nversion: 1.0.0\ndescription: d\nhandler: nop\n";

    fn dirs(at: &std::path::Path) -> ActionTypeDirs {
        std::fs::create_dir_all(at).unwrap();
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
        ActionTypeDirs {
            dirs: vec![(at.to_path_buf(), super::super::TypeSource::Registered)],
            registered: at.to_path_buf(),
            allow_shadowing_builtin: false,
        }
    }

    #[test]
    fn a_type_written_or_removed_after_loading_is_seen_on_the_next_read() {
        let tmp = tempfile::tempdir().unwrap();
        let live = LiveTypes::load(dirs(&tmp.path().join("types")));
        assert!(live.current().resolve("greet").is_err());
        let file = tmp.path().join("types/greet.yaml");
        std::fs::write(&file, T).unwrap();
        assert_eq!(live.current().resolve("greet").unwrap().name, "greet");
        // Unchanged directories: the same registry, not a new read.
        assert!(Arc::ptr_eq(&live.current(), &live.current()));
        std::fs::remove_file(&file).unwrap();
        assert!(live.current().resolve("greet").is_err());
    }
}
