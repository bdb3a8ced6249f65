//! Discovery: where plugins are looked for, and what can be learnt about a
//! file without running any of its code.
//!
//! The search path, in order: `--plugin-dir` flags, `SEXTANT_PLUGIN_PATH`
//! (colon-separated), the config file's `plugin_dirs`, then the directory of
//! the `sextant` executable and `../lib/sextant/plugins` beside it (so the
//! output of `cargo build` works with no configuration). Only `*.so` files
//! are candidates; they are taken in file-name order within a directory.
//!
//! Every directory and file is vetted by the rules of [`crate::trust`]
//! (ownership and write permissions of the real path and the directories
//! above it) before its manifest is read; a symlink that loops is rejected,
//! not skipped.
//!
//! Invariant: nothing here opens a library with `dlopen`; the manifest comes
//! from the ELF section `.sextant_plugin`, read with the `object` crate, and
//! the panic strategy it claims is checked against the unwinding runtime the
//! file links.

use serde::Serialize;
use sextant_plugin_api::{INTERFACE_VERSION, MANIFEST_SECTION, Manifest};
use std::path::{Path, PathBuf};

/// Where a directory of the search path came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirSource {
    /// A `--plugin-dir` flag.
    Flag,
    /// `SEXTANT_PLUGIN_PATH`.
    Env,
    /// The config file's `plugin_dirs`.
    Config,
    /// The directory of the `sextant` executable, or `../lib/sextant/plugins`.
    Installation,
}

/// The ordered list of directories to search.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchPath {
    /// Directories in search order.
    pub dirs: Vec<(PathBuf, DirSource)>,
}

impl SearchPath {
    /// Builds the search path from flags, the environment value of
    /// `SEXTANT_PLUGIN_PATH`, the config file's dirs and the executable.
    pub fn new(
        flags: &[PathBuf],
        env_path: Option<&str>,
        config_dirs: &[PathBuf],
        exe: Option<&Path>,
    ) -> Self {
        let mut dirs = Vec::new();
        dirs.extend(flags.iter().map(|d| (d.clone(), DirSource::Flag)));
        if let Some(p) = env_path {
            dirs.extend(
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(|d| (PathBuf::from(d), DirSource::Env)),
            );
        }
        dirs.extend(config_dirs.iter().map(|d| (d.clone(), DirSource::Config)));
        if let Some(dir) = exe.and_then(Path::parent) {
            dirs.push((dir.to_path_buf(), DirSource::Installation));
            dirs.push((
                dir.join("..").join("lib").join("sextant").join("plugins"),
                DirSource::Installation,
            ));
        }
        // The same directory twice would report every plugin as its own
        // duplicate: keep the first occurrence.
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|(d, _)| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())));
        Self { dirs }
    }

    /// The default search path of this process: no flags, the environment,
    /// the given config dirs and the current executable.
    pub fn from_env(flags: &[PathBuf], config_dirs: &[PathBuf]) -> Self {
        let env = std::env::var("SEXTANT_PLUGIN_PATH").ok();
        let exe = std::env::current_exe().ok();
        Self::new(flags, env.as_deref(), config_dirs, exe.as_deref())
    }
}

/// Why a file (or directory) was not loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The file could not be read.
    Unreadable,
    /// Not an ELF file.
    NotElf,
    /// An ELF file without the `.sextant_plugin` section.
    NoManifest,
    /// The section holds no valid manifest.
    BadManifest,
    /// Built against another major version of the plugin interface.
    InterfaceMismatch,
    /// Built with `panic = "abort"`.
    PanicAbort,
    /// Others can write the file, its directory or a directory above.
    WritableByOthers,
    /// Its group can write the file or its directory.
    WritableByGroup,
    /// The file or a directory of its path belongs to another user.
    ForeignOwner,
    /// A symlink that loops.
    SymlinkLoop,
    /// abi_stable's layout check refused it.
    LayoutMismatch,
    /// Loading failed for another reason (dlopen, init, capability table).
    LoadFailed,
    /// The plugin panicked too often and is no longer used.
    Quarantined,
}

/// A rejected file with its one-line reason.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    /// The file or directory.
    pub path: PathBuf,
    /// Machine-readable reason.
    pub code: RejectCode,
    /// One line for a human.
    pub reason: String,
}

impl Rejection {
    pub(crate) fn new(path: &Path, code: RejectCode, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            code,
            reason: reason.into(),
        }
    }
}

impl From<crate::trust::Untrusted> for Rejection {
    fn from(u: crate::trust::Untrusted) -> Self {
        use crate::trust::Fault;
        let code = match u.fault {
            Fault::WritableByOthers => RejectCode::WritableByOthers,
            Fault::WritableByGroup => RejectCode::WritableByGroup,
            Fault::ForeignOwner => RejectCode::ForeignOwner,
            Fault::SymlinkLoop => RejectCode::SymlinkLoop,
            Fault::Unreadable => RejectCode::Unreadable,
        };
        Self {
            path: u.path,
            code,
            reason: u.reason,
        }
    }
}

/// Vets a plugin directory by the rules of [`crate::trust`]: what
/// `plugins list` does for each directory of the search path, and `plugins
/// check` for the directory of the file it is given.
pub fn vet_directory(dir: &Path) -> Result<(), Rejection> {
    crate::trust::vet_dir(dir, "plugin directory")?;
    Ok(())
}

/// Lists the candidate files of one directory, in file-name order, after
/// vetting the directory (a directory that fails yields its rejection
/// instead). A `*.so` symlink that loops or leads nowhere is a candidate
/// already rejected.
pub fn candidates(dir: &Path) -> Result<Vec<Result<PathBuf, Rejection>>, Rejection> {
    vet_directory(dir)?;
    let listed = crate::trust::list_files(dir, |p| p.extension().is_some_and(|x| x == "so"))
        .map_err(|e| {
            Rejection::new(
                dir,
                RejectCode::Unreadable,
                format!("cannot read plugin directory: {e}"),
            )
        })?;
    Ok(listed
        .into_iter()
        .map(|r| r.map_err(Rejection::from))
        .collect())
}

/// Reads and checks the manifest of one file without opening it as a
/// library: the file must be an ELF file with a `.sextant_plugin` section
/// holding a manifest of this host's interface major version, built with
/// `panic = "unwind"` (by its manifest and by the unwinding runtime it
/// links), and the file must pass the rules of [`crate::trust`].
pub fn read_manifest(path: &Path) -> Result<Manifest, Rejection> {
    use object::{Object, ObjectSection};
    use std::io::Read;

    crate::trust::vet_file(path, "plugin file")?;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Rejection::new(path, RejectCode::Unreadable, format!("cannot open: {e}")))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
        return Err(Rejection::new(path, RejectCode::NotElf, "not an ELF file"));
    }
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| {
        Rejection::new(
            path,
            RejectCode::NotElf,
            format!("not a readable ELF file: {e}"),
        )
    })?;
    let section = elf.section_by_name(MANIFEST_SECTION).ok_or_else(|| {
        Rejection::new(
            path,
            RejectCode::NoManifest,
            format!("no {MANIFEST_SECTION} manifest section: not a Sextant plugin"),
        )
    })?;
    let data = section.data().map_err(|e| {
        Rejection::new(
            path,
            RejectCode::BadManifest,
            format!("cannot read the {MANIFEST_SECTION} section: {e}"),
        )
    })?;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let manifest = Manifest::parse(&data[..end]).map_err(|e| {
        Rejection::new(
            path,
            RejectCode::BadManifest,
            format!("malformed manifest: {e}"),
        )
    })?;
    check_manifest(path, &manifest)?;
    check_unwinding_runtime(path, &elf)?;
    Ok(manifest)
}

/// The symbol only the unwinding panic runtime (`panic_unwind`) references:
/// it raises the exception that carries a panic up to `catch_unwind`. A
/// `panic = "abort"` build links `panic_abort` instead, which never raises
/// one; std's precompiled objects still pull in `_Unwind_Resume` and the
/// personality routine there, so those prove nothing.
pub const UNWIND_RAISE_SYMBOL: &str = "_Unwind_RaiseException";

/// Checks, from the code rather than the manifest, that the file can unwind
/// a panic: it references [`UNWIND_RAISE_SYMBOL`] (imported from libgcc_s,
/// or linked in). This catches a manifest edited to say `unwind` on an
/// abort build; it is not proof against a file forged on purpose.
pub fn check_unwinding_runtime<'data, R: object::ReadRef<'data>>(
    path: &Path,
    elf: &object::File<'data, R>,
) -> Result<(), Rejection> {
    use object::{Object, ObjectSymbol};
    let wanted = UNWIND_RAISE_SYMBOL.as_bytes();
    // The dynamic table survives `strip`; the full table is only read when
    // the runtime was linked in statically.
    if elf
        .dynamic_symbols()
        .chain(elf.symbols())
        .any(|s| s.name_bytes().is_ok_and(|n| n == wanted))
    {
        return Ok(());
    }
    Err(Rejection::new(
        path,
        RejectCode::PanicAbort,
        format!(
            "its manifest says panic=unwind, but the library has no unwinding runtime (no {UNWIND_RAISE_SYMBOL} symbol): it was built with panic=abort, and a panic in it would kill the host; rebuild with panic = \"unwind\""
        ),
    ))
}

fn host_interface_major() -> u64 {
    INTERFACE_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The checks a manifest must pass before its file may be opened.
pub fn check_manifest(path: &Path, m: &Manifest) -> Result<(), Rejection> {
    if m.interface_major() != Some(host_interface_major()) {
        return Err(Rejection::new(
            path,
            RejectCode::InterfaceMismatch,
            format!(
                "built for plugin interface {} while the host has {INTERFACE_VERSION}: rebuild it against sextant-plugin-api {}.x",
                m.interface_version,
                host_interface_major()
            ),
        ));
    }
    if m.panic != "unwind" {
        return Err(Rejection::new(
            path,
            RejectCode::PanicAbort,
            format!(
                "built with panic={}: a panic in it would kill the host; rebuild with panic = \"unwind\"",
                m.panic
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_order_and_dedup() {
        let tmp = std::env::temp_dir();
        let sp = SearchPath::new(
            &[PathBuf::from("/flag")],
            Some("/env1::/env2"),
            &[PathBuf::from("/cfg"), PathBuf::from("/flag")],
            Some(&tmp.join("sextant")),
        );
        let dirs: Vec<_> = sp.dirs.iter().map(|(d, s)| (d.clone(), *s)).collect();
        assert_eq!(dirs[0], (PathBuf::from("/flag"), DirSource::Flag));
        assert_eq!(dirs[1], (PathBuf::from("/env1"), DirSource::Env));
        assert_eq!(dirs[2], (PathBuf::from("/env2"), DirSource::Env));
        assert_eq!(dirs[3], (PathBuf::from("/cfg"), DirSource::Config));
        assert_eq!(dirs[4], (tmp.clone(), DirSource::Installation));
        assert!(dirs[5].0.ends_with("lib/sextant/plugins"));
        assert_eq!(dirs.len(), 6, "the repeated /flag is dropped: {dirs:?}");
    }

    #[test]
    fn garbage_and_foreign_files_are_rejected_before_loading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("libgarbage.so");
        std::fs::write(&garbage, b"this is not a library").expect("write");
        let err = read_manifest(&garbage).unwrap_err();
        assert_eq!(err.code, RejectCode::NotElf);

        // The test binary itself is an ELF file without the section.
        let exe = std::env::current_exe().expect("exe");
        let err = read_manifest(&exe).unwrap_err();
        assert_eq!(err.code, RejectCode::NoManifest, "{}", err.reason);
    }

    #[test]
    fn an_unwind_build_has_the_unwinding_runtime() {
        // This test binary is built with panic = "unwind" (the workspace's
        // profiles say so); the abort build is the e2e tests' fixture.
        let exe = std::env::current_exe().expect("exe");
        let data = std::fs::read(&exe).expect("read");
        let elf = object::File::parse(data.as_slice()).expect("elf");
        assert!(check_unwinding_runtime(&exe, &elf).is_ok());
    }

    #[test]
    fn manifest_checks() {
        let p = Path::new("x.so");
        let mut m = Manifest {
            format: 1,
            interface_version: INTERFACE_VERSION.into(),
            panic: "unwind".into(),
            entries: vec![],
        };
        assert!(check_manifest(p, &m).is_ok());
        m.panic = "abort".into();
        assert_eq!(
            check_manifest(p, &m).unwrap_err().code,
            RejectCode::PanicAbort
        );
        m.panic = "unwind".into();
        m.interface_version = "99.0.0".into();
        let err = check_manifest(p, &m).unwrap_err();
        assert_eq!(err.code, RejectCode::InterfaceMismatch);
        assert!(err.reason.contains("99.0.0"), "{}", err.reason);
    }

    #[test]
    fn world_writable_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let err = candidates(dir.path()).unwrap_err();
        assert_eq!(err.code, RejectCode::WritableByOthers);
        assert!(err.reason.contains("writable by others"), "{}", err.reason);
    }
}
