//! Trust in the files the host takes code or configuration from: plugin
//! libraries, action-type definitions and policies. One set of rules, as
//! OpenSSH's `StrictModes` applies them to a key, shared by plugin
//! discovery, the action-type registry and the policy lookup.
//!
//! The rules, checked on the real path (symlinks followed):
//!
//! * the file, and the directory it really lives in, are owned by root or by
//!   the effective user, and writable by neither their group nor others;
//! * a searched directory (a plugin, action-type or policy directory) is held
//!   to the same rule;
//! * every directory above those, up to `/`, is owned by root or the
//!   effective user, and writable by group or others only when its sticky
//!   bit is set (as `/tmp`'s is: nobody may then rename or delete another
//!   user's entries).
//!
//! Root trusts only what root owns. Each refusal names the path at fault
//! and the command that fixes it. A symlink that loops or leads nowhere is
//! refused too, never skipped in silence.

use serde::Serialize;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What is wrong with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Others can write it (or a directory above it, without the sticky bit).
    WritableByOthers,
    /// Its group can write it.
    WritableByGroup,
    /// Owned by a user who is neither root nor the effective user.
    ForeignOwner,
    /// A symlink that loops.
    SymlinkLoop,
    /// It cannot be looked at (a dangling symlink, no permission).
    Unreadable,
}

/// A path refused, with a one-line reason that names the path at fault and
/// the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason}")]
pub struct Untrusted {
    /// The path that was vetted (as given, before symlinks).
    pub path: PathBuf,
    /// What is wrong.
    pub fault: Fault,
    /// One line for a human.
    pub reason: String,
}

impl Untrusted {
    fn new(path: &Path, fault: Fault, reason: String) -> Self {
        Self {
            path: path.to_path_buf(),
            fault,
            reason,
        }
    }
}

/// The effective user id of this process: the one user, besides root, whose
/// files are trusted.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Vets a directory that is searched for files: its real path must pass the
/// strict rule and every directory above it the ancestor rule. `what` names
/// it in messages (`plugin directory`). Returns the real path.
pub fn vet_dir(dir: &Path, what: &str) -> Result<PathBuf, Untrusted> {
    let real = real_path(dir, what)?;
    check_strict(dir, &real, what)?;
    check_ancestors(dir, &real, what)?;
    Ok(real)
}

/// Vets a file: its real path and the directory it really lives in must
/// pass the strict rule, every directory above them the ancestor rule.
/// `what` names it in messages (`plugin file`). Returns the real path.
pub fn vet_file(file: &Path, what: &str) -> Result<PathBuf, Untrusted> {
    let real = real_path(file, what)?;
    check_strict(file, &real, what)?;
    if let Some(parent) = real.parent() {
        check_strict(file, parent, &format!("directory of {what}"))?;
        check_ancestors(file, parent, what)?;
    }
    Ok(real)
}

/// The entries of `dir` whose file names pass `wanted`, in name order: the
/// regular files (or symlinks to regular files), and, as refusals, the
/// symlinks that loop or lead nowhere. Subdirectories are not entries.
pub fn list_files(
    dir: &Path,
    wanted: impl Fn(&Path) -> bool,
) -> std::io::Result<Vec<Result<PathBuf, Untrusted>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| wanted(p))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|p| match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Some(Ok(p)),
            Ok(_) => None,
            Err(e) => Some(Err(unresolvable(&p, &e, "file"))),
        })
        .collect())
}

fn real_path(path: &Path, what: &str) -> Result<PathBuf, Untrusted> {
    std::fs::canonicalize(path).map_err(|e| unresolvable(path, &e, what))
}

fn unresolvable(path: &Path, e: &std::io::Error, what: &str) -> Untrusted {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if rustix::io::Errno::from_io_error(e) == Some(rustix::io::Errno::LOOP) {
        return Untrusted::new(
            path,
            Fault::SymlinkLoop,
            format!(
                "{what} {} is a symlink loop: it leads to no file; fix with `rm {}` or point it at a real file",
                path.display(),
                path.display()
            ),
        );
    }
    if is_link && e.kind() == std::io::ErrorKind::NotFound {
        return Untrusted::new(
            path,
            Fault::Unreadable,
            format!(
                "{what} {} is a dangling symlink: its target does not exist; fix with `rm {}` or point it at a real file",
                path.display(),
                path.display()
            ),
        );
    }
    Untrusted::new(
        path,
        Fault::Unreadable,
        format!("cannot resolve {what} {}: {e}", path.display()),
    )
}

/// `real` (the real path of `vetted`) is owned by root or the effective user
/// and writable by neither group nor others.
fn check_strict(vetted: &Path, real: &Path, what: &str) -> Result<(), Untrusted> {
    let meta = stat(vetted, real, what)?;
    check_owner(vetted, real, &meta, what)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(writable(vetted, real, what, mode, Fault::WritableByOthers));
    }
    if mode & 0o020 != 0 {
        return Err(writable(vetted, real, what, mode, Fault::WritableByGroup));
    }
    Ok(())
}

/// Every directory above `real`, up to `/`: owned by root or the effective
/// user, writable by group or others only with the sticky bit.
fn check_ancestors(vetted: &Path, real: &Path, what: &str) -> Result<(), Untrusted> {
    for dir in real.ancestors().skip(1) {
        let above = format!("directory above {what}");
        let meta = stat(vetted, dir, &above)?;
        check_owner(vetted, dir, &meta, &above)?;
        let mode = meta.permissions().mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        if mode & 0o002 != 0 && !sticky {
            return Err(writable(vetted, dir, &above, mode, Fault::WritableByOthers));
        }
        if mode & 0o020 != 0 && !sticky {
            return Err(writable(vetted, dir, &above, mode, Fault::WritableByGroup));
        }
    }
    Ok(())
}

fn stat(vetted: &Path, real: &Path, what: &str) -> Result<std::fs::Metadata, Untrusted> {
    std::fs::metadata(real).map_err(|e| {
        Untrusted::new(
            vetted,
            Fault::Unreadable,
            format!("cannot stat {what} {}: {e}", real.display()),
        )
    })
}

fn check_owner(
    vetted: &Path,
    real: &Path,
    meta: &std::fs::Metadata,
    what: &str,
) -> Result<(), Untrusted> {
    let me = effective_uid();
    let owner = meta.uid();
    if owner == 0 || owner == me {
        return Ok(());
    }
    let trusted = if me == 0 {
        "root".to_string()
    } else {
        format!("root or you (uid {me})")
    };
    Err(Untrusted::new(
        vetted,
        Fault::ForeignOwner,
        format!(
            "{what} {}{} is owned by uid {owner}, not by {trusted}: that user could replace what this host runs; fix with `chown {me} {}` if you trust its content",
            real.display(),
            via(vetted, real),
            real.display()
        ),
    ))
}

fn writable(vetted: &Path, real: &Path, what: &str, mode: u32, fault: Fault) -> Untrusted {
    let (who, fix) = match fault {
        Fault::WritableByGroup => ("its group", "g-w"),
        _ => ("others", "o-w"),
    };
    Untrusted::new(
        vetted,
        fault,
        format!(
            "{what} {}{} is writable by {who} (mode {mode:04o}): anyone who can write it could replace what this host runs; fix with `chmod {fix} {}`",
            real.display(),
            via(vetted, real),
            real.display()
        ),
    )
}

/// ` (reached through X)` when the path at fault is not the path vetted.
fn via(vetted: &Path, real: &Path) -> String {
    if vetted == real {
        String::new()
    } else {
        format!(" (reached through {})", vetted.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir_0755() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        d
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_tight_file_in_a_tight_directory_is_trusted() {
        let d = dir_0755();
        let f = d.path().join("x.yaml");
        std::fs::write(&f, "a: 1\n").expect("write");
        chmod(&f, 0o644);
        assert!(vet_dir(d.path(), "directory").is_ok());
        assert!(vet_file(&f, "file").is_ok());
    }

    #[test]
    fn group_or_world_writable_file_is_refused_with_the_fix() {
        let d = dir_0755();
        let f = d.path().join("x.yaml");
        std::fs::write(&f, "a: 1\n").expect("write");
        chmod(&f, 0o664);
        let err = vet_file(&f, "policy file").unwrap_err();
        assert_eq!(err.fault, Fault::WritableByGroup);
        assert!(
            err.reason.contains(&format!("chmod g-w {}", f.display())),
            "{}",
            err.reason
        );
        chmod(&f, 0o646);
        let err = vet_file(&f, "policy file").unwrap_err();
        assert_eq!(err.fault, Fault::WritableByOthers);
        assert!(err.reason.contains("chmod o-w"), "{}", err.reason);
    }

    #[test]
    fn symlink_into_a_world_writable_directory_is_refused_naming_it() {
        let d = dir_0755();
        let loose = d.path().join("loose");
        std::fs::create_dir(&loose).expect("mkdir");
        chmod(&loose, 0o777);
        let target = loose.join("real.yaml");
        std::fs::write(&target, "a: 1\n").expect("write");
        chmod(&target, 0o644);
        let tight = d.path().join("tight");
        std::fs::create_dir(&tight).expect("mkdir");
        chmod(&tight, 0o755);
        let link = tight.join("x.yaml");
        symlink(&target, &link).expect("symlink");
        let err = vet_file(&link, "file").unwrap_err();
        assert_eq!(err.fault, Fault::WritableByOthers);
        assert_eq!(err.path, link);
        assert!(
            err.reason
                .contains(&format!("chmod o-w {}", loose.display())),
            "{}",
            err.reason
        );
    }

    #[test]
    fn sticky_world_writable_ancestor_is_trusted_a_plain_one_is_not() {
        let d = dir_0755();
        let above = d.path().join("above");
        let inner = above.join("inner");
        std::fs::create_dir_all(&inner).expect("mkdir");
        chmod(&inner, 0o755);
        chmod(&above, 0o1777);
        assert!(vet_dir(&inner, "directory").is_ok());
        chmod(&above, 0o777);
        let err = vet_dir(&inner, "directory").unwrap_err();
        assert_eq!(err.fault, Fault::WritableByOthers);
        assert!(
            err.reason
                .contains(&format!("chmod o-w {}", above.display())),
            "{}",
            err.reason
        );
        chmod(&above, 0o755);
    }

    #[test]
    fn symlink_loops_and_dangling_links_are_listed_as_refusals() {
        let d = dir_0755();
        symlink(d.path().join("b.so"), d.path().join("a.so")).expect("symlink");
        symlink(d.path().join("a.so"), d.path().join("b.so")).expect("symlink");
        symlink(d.path().join("missing"), d.path().join("c.so")).expect("symlink");
        std::fs::create_dir(d.path().join("d.so")).expect("mkdir");
        let listed = list_files(d.path(), |_| true).expect("list");
        let faults: Vec<_> = listed
            .iter()
            .map(|r| r.as_ref().map_err(|u| u.fault).map(|_| ()))
            .collect();
        assert_eq!(
            faults,
            vec![
                Err(Fault::SymlinkLoop),
                Err(Fault::SymlinkLoop),
                Err(Fault::Unreadable)
            ]
        );
        let reason = &listed[0].as_ref().unwrap_err().reason;
        assert!(reason.contains("symlink loop"), "{reason}");
        assert!(reason.contains("a.so"), "{reason}");
    }
}
