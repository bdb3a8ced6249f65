//! `scripts/install --prefix DIR`: the installed layout, found relative to
//! the executable at run time, runs `demo` from any directory, holds no path
//! of the source tree, and passes the trust checks; the completions and the
//! man page come from the binary itself.

use sextant_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 5] = [
    "libsextant_core.so",
    "libsextant_strategies.so",
    "libsextant_planners.so",
    "libsextant_sim.so",
    "libsextant_openstack.so",
];

/// `scripts/install --prefix PREFIX` of the already-built binary and plugins
/// (no rebuild).
fn install_script(prefix: &Path) -> Command {
    let profile = profile_dir();
    let mut cmd = Command::new(repo_root().join("scripts/install"));
    cmd.arg("--prefix")
        .arg(prefix)
        .arg("--target-dir")
        .arg(profile.parent().expect("target dir"))
        .arg("--no-build");
    if profile.ends_with("release") {
        cmd.arg("--release");
    }
    cmd
}

/// Installs into `prefix`; it must succeed.
fn install_into(prefix: &Path) {
    let out = run(&mut install_script(prefix));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
}

/// `sextant` of `prefix`, run from `/` with nothing of the user's or the
/// build's environment: a fresh home, no SEXTANT_* variables.
fn installed(prefix: &Path, home: &Path) -> Command {
    let mut c = Command::new(prefix.join("bin/sextant"));
    c.current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LANG", "C");
    c
}

fn assert_demo_consolidates(prefix: &Path) {
    let home = scratch();
    let out = run(installed(prefix, home.path()).args(["demo", "--format", "json"]));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let d = out.json();
    let before = d["nodes_in_use_before"].as_u64().unwrap_or(0);
    let after = d["nodes_in_use_after"].as_u64().unwrap_or(u64::MAX);
    assert!(after < before, "{d}");
    assert_eq!(d["plan_state"], "SUCCEEDED", "{d}");
    // The cluster is the installed one, not the source tree's.
    let cluster = d["cluster"].as_str().unwrap_or_default();
    assert_eq!(
        Path::new(cluster),
        prefix.join("share/sextant/examples/clusters/small.yaml"),
        "{d}"
    );
}

#[test]
fn an_installed_copy_in_a_temporary_prefix_runs_demo_from_root() {
    let tmp = scratch();
    let prefix = tmp.path().join("prefix");
    install_into(&prefix);
    assert_demo_consolidates(&prefix);
}

#[test]
fn an_installed_tree_moved_to_another_prefix_still_runs_demo() {
    let tmp = scratch();
    let first = tmp.path().join("first");
    install_into(&first);
    let moved = tmp.path().join("moved");
    std::fs::rename(&first, &moved).expect("move the prefix");
    assert_demo_consolidates(&moved);
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == first)
        .any(|(i, _)| haystack[i + 1..].starts_with(rest))
}

#[test]
fn the_installed_binary_and_plugins_hold_no_path_of_the_source_tree() {
    let tmp = scratch();
    let prefix = tmp.path().join("prefix");
    install_into(&prefix);
    let root = repo_root();
    let needle = root.to_str().expect("utf-8 repository path").as_bytes();
    let mut files: Vec<PathBuf> = vec![prefix.join("bin/sextant")];
    files.extend(
        PLUGINS
            .iter()
            .map(|p| prefix.join("lib/sextant/plugins").join(p)),
    );
    for f in &files {
        let bytes = std::fs::read(f).expect("read installed file");
        assert!(
            !contains(&bytes, needle),
            "{} holds the source tree's path {}",
            f.display(),
            root.display()
        );
    }
    // The scan sees such a path where one is compiled in: this test binary
    // holds it (`repo_root()` is `env!("CARGO_MANIFEST_DIR")`/..).
    let this = std::fs::read(std::env::current_exe().expect("exe")).expect("read test binary");
    assert!(contains(&this, needle), "the scan finds nothing anywhere");
}

#[test]
fn every_installed_file_and_directory_passes_the_trust_checks() {
    let tmp = scratch();
    let prefix = tmp.path().join("prefix");
    install_into(&prefix);
    let mut stack = vec![prefix.clone()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        let mode = meta.permissions().mode() & 0o7777;
        assert_eq!(mode & 0o022, 0, "{} is mode {mode:o}", p.display());
        let vetted = if meta.is_dir() {
            sextant::trust::vet_dir(&p, "installed directory")
        } else {
            sextant::trust::vet_file(&p, "installed file")
        };
        assert!(vetted.is_ok(), "{}: {vetted:?}", p.display());
        if meta.is_dir() {
            assert_eq!(mode, 0o755, "{}", p.display());
            for e in std::fs::read_dir(&p).expect("read dir") {
                stack.push(e.expect("entry").path());
            }
        }
        seen += 1;
    }
    // What the layout promises is there.
    for f in [
        "bin/sextant",
        "share/sextant/action-types/migrate.yaml",
        "share/sextant/policies/default.yaml",
        "share/sextant/examples/clusters/small.yaml",
        "share/man/man1/sextant.1",
        "share/bash-completion/completions/sextant",
        "share/zsh/site-functions/_sextant",
        "share/fish/vendor_completions.d/sextant.fish",
        "share/doc/sextant/README.md",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    for p in PLUGINS {
        assert!(prefix.join("lib/sextant/plugins").join(p).is_file(), "{p}");
    }
    assert!(seen > 20, "only {seen} entries installed");
    // The installed plugins are the ones discovered, and none is rejected.
    let home = scratch();
    let out = run(installed(&prefix, home.path()).args(["plugins", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let list = out.json();
    assert_eq!(list["rejected"], serde_json::json!([]), "{list}");
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    assert!(!plugins.is_empty(), "{list}");
    for p in plugins {
        let file = std::fs::canonicalize(p["file"].as_str().unwrap_or_default()).expect("file");
        assert!(
            file.starts_with(&prefix),
            "{} is not installed",
            file.display()
        );
    }
}

#[test]
fn install_into_a_prefix_below_a_group_writable_directory_fails_naming_it() {
    let tmp = scratch();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let out = run(&mut install_script(&shared.join("prefix")));
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("{} ", shared.display())) && out.stderr.contains("chmod g-w"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_binary_copied_without_its_data_says_where_it_looked_for_the_demo_cluster() {
    let tmp = scratch();
    let bin = populate(&tmp.path().join("bin"), &[&sextant_bin()]);
    let home = scratch();
    let out = run(installed(tmp.path(), home.path())
        .arg("demo")
        .env("PATH", "/usr/bin:/bin"));
    assert_eq!(bin[0], tmp.path().join("bin/sextant"));
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("examples/clusters/small.yaml")
            && out.stderr.contains("share/sextant")
            && out.stderr.contains("--cluster FILE"),
        "{}",
        out.stderr
    );
    // Nothing was stored.
    assert!(!home.path().join("data/sextant").exists());
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    let home = scratch();
    let out = run(sextant(home.path()).args(["completions", "bash"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("action-plan"), "{}", out.stdout);
    let out = run(sextant(home.path()).args(["completions", "zsh"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("#compdef sextant"), "{}", out.stdout);
    let out = run(sextant(home.path()).args(["completions", "fish"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("complete -c sextant"), "{}", out.stdout);
    let out = run(sextant(home.path()).args(["completions", "tcsh"]));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("tcsh"), "{}", out.stderr);
    let out = run(sextant(home.path()).arg("man"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH sextant 1"), "{}", out.stdout);
    assert!(out.stdout.contains("action\\-plan"), "{}", out.stdout);
    // Neither needs a readable config: a broken one does not stop them.
    let config = write_file(&home.path().join("config/sextant"), "config.yaml", ": [");
    let out = run(sextant(home.path()).arg("man").arg("--config").arg(&config));
    assert_eq!(out.status, 0, "{}", out.stderr);
}
