//! Where the installation's data lives: the built-in action types, the
//! named policies and the example clusters. It is found at run time
//! relative to the running executable; no path is compiled into the binary,
//! so a copied or installed tree works wherever it is put.
//!
//! The data directory is the first of:
//!
//! 1. the installed layout, `EXE_DIR/../share/sextant` (for
//!    `PREFIX/bin/sextant`, as `scripts/install --prefix PREFIX` lays out);
//! 2. the source layout: the nearest directory above the executable that
//!    holds both `Cargo.toml` and `action-types/` (for `cargo build` output,
//!    `REPO/target/debug/sextant`).
//!
//! Only the first found is used: an installed tree never mixes in a source
//! tree that happens to lie above its prefix. The built-in plugins are
//! found by [`crate::plugins::SearchPath`] (beside the executable, then
//! `EXE_DIR/../lib/sextant/plugins`).

use std::path::{Path, PathBuf};

/// The installation's data directory for an executable at `exe`, if any.
pub fn data_dir_of(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    if let Some(prefix) = bin.parent() {
        let installed = prefix.join("share").join("sextant");
        if installed.is_dir() {
            return Some(installed);
        }
    }
    bin.ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("action-types").is_dir())
        .map(Path::to_path_buf)
}

/// The data directory of the running executable, if any.
pub fn data_dir() -> Option<PathBuf> {
    data_dir_of(&std::env::current_exe().ok()?)
}

/// A subdirectory of the data directory of `exe` (`action-types`,
/// `policies`), if it exists.
pub fn subdir_of(exe: Option<&Path>, name: &str) -> Option<PathBuf> {
    let dir = data_dir_of(exe?)?.join(name);
    dir.is_dir().then_some(dir)
}

/// An example cluster of the installation (`small.yaml`), if it exists.
pub fn example_cluster(file: &str) -> Option<PathBuf> {
    let path = data_dir()?.join("examples").join("clusters").join(file);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, "").expect("write");
    }

    #[test]
    fn installed_layout_is_found_beside_bin() {
        let tmp = tempfile::tempdir().expect("tmp");
        let exe = tmp.path().join("prefix/bin/sextant");
        touch(&exe);
        std::fs::create_dir_all(tmp.path().join("prefix/share/sextant/action-types"))
            .expect("mkdir");
        assert_eq!(
            data_dir_of(&exe),
            Some(tmp.path().join("prefix/share/sextant"))
        );
        assert!(subdir_of(Some(&exe), "action-types").is_some());
        assert!(subdir_of(Some(&exe), "policies").is_none());
    }

    #[test]
    fn source_layout_is_found_by_walking_up() {
        let tmp = tempfile::tempdir().expect("tmp");
        let exe = tmp.path().join("repo/target/debug/sextant");
        touch(&exe);
        touch(&tmp.path().join("repo/Cargo.toml"));
        std::fs::create_dir_all(tmp.path().join("repo/action-types")).expect("mkdir");
        assert_eq!(data_dir_of(&exe), Some(tmp.path().join("repo")));
    }

    #[test]
    fn installed_layout_wins_over_a_source_tree_above_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        touch(&tmp.path().join("Cargo.toml"));
        std::fs::create_dir_all(tmp.path().join("action-types")).expect("mkdir");
        let exe = tmp.path().join("prefix/bin/sextant");
        touch(&exe);
        std::fs::create_dir_all(tmp.path().join("prefix/share/sextant")).expect("mkdir");
        let dir = data_dir_of(&exe).expect("found");
        assert!(dir.ends_with("share/sextant"), "{}", dir.display());
    }

    #[test]
    fn nothing_found_is_none() {
        let tmp = tempfile::tempdir().expect("tmp");
        let exe = tmp.path().join("bin/sextant");
        touch(&exe);
        // A directory with action-types/ but no Cargo.toml is no source tree.
        std::fs::create_dir_all(tmp.path().join("action-types")).expect("mkdir");
        assert_eq!(data_dir_of(&exe), None);
    }
}
