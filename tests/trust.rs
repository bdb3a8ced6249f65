//! Trust in what the host loads: plugin files and directories (symlinks
//! followed, group-writable and foreign-owned files, forged panic
//! strategies, symlink loops), action-type and policy directories, and
//! action types that would replace a built-in one. Driven through the built
//! binary; the foreign-owner cases `chown` to another uid, which needs root
//! (as the tests run in CI).

use serde_json::Value;
use sextant_e2e::*;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// A uid that is neither root nor the user running the tests.
const FOREIGN_UID: u32 = 4242;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_foreign(p: &Path) {
    std::os::unix::fs::chown(p, Some(FOREIGN_UID), Some(FOREIGN_UID))
        .expect("chown to another uid (the tests run as root)");
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `plugins list --format json --plugin-dir DIR`, which must exit 0.
fn list_plugins(home: &Path, dir: &Path) -> Value {
    let out = run(sextant(home).args([
        "plugins",
        "list",
        "--format",
        "json",
        "--plugin-dir",
        utf8(dir),
    ]));
    assert_eq!(
        out.status, 0,
        "rejections do not fail the listing: {}",
        out.stderr
    );
    out.json()
}

/// The names of the loaded entries that come from `dir`.
fn loaded_from(doc: &Value, dir: &Path) -> Vec<String> {
    doc["plugins"]
        .as_array()
        .expect("plugins array")
        .iter()
        .filter(|p| p["file"].as_str().is_some_and(|f| f.starts_with(utf8(dir))))
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The rejections of the listing, as (path, code, reason).
fn rejections(doc: &Value) -> Vec<(String, String, String)> {
    doc["rejected"]
        .as_array()
        .expect("rejected array")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_string(),
                r["code"].as_str().unwrap_or("").to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Asserts that exactly one file was rejected, with `code` and a reason
/// holding each of `words`; returns the reason.
fn only_rejection(doc: &Value, path: &Path, code: &str, words: &[&str]) -> String {
    let r = rejections(doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, utf8(path), "{r:?}");
    assert_eq!(r[0].1, code, "{r:?}");
    for w in words {
        assert!(r[0].2.contains(w), "reason {:?} lacks {w:?}", r[0].2);
    }
    assert!(!r[0].2.contains('\n'), "not one line: {:?}", r[0].2);
    r[0].2.clone()
}

/// `plugins check FILE`: exit 2, and stdout names each of `words`.
fn check_refuses(home: &Path, file: &Path, words: &[&str]) {
    let out = run(sextant(home).args(["plugins", "check"]).arg(file));
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    for w in words {
        assert!(out.stdout.contains(w), "{w:?} missing from: {}", out.stdout);
    }
}

#[test]
fn symlinked_plugin_into_a_world_writable_directory_is_refused() {
    let home = scratch();
    let loose = home.path().join("loose");
    let real = populate(&loose, &[&fixture("libfixture_kinds.so")]).remove(0);
    chmod(&loose, 0o777);
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o755);
    let link = dir.join("libfixture_kinds.so");
    symlink(&real, &link).expect("symlink");

    let doc = list_plugins(home.path(), &dir);
    assert!(loaded_from(&doc, &dir).is_empty(), "{doc}");
    assert!(loaded_from(&doc, &loose).is_empty(), "{doc}");
    let fix = format!("chmod o-w {}", loose.display());
    only_rejection(
        &doc,
        &link,
        "writable_by_others",
        &[&fix, "reached through", utf8(&link)],
    );
    check_refuses(home.path(), &link, &[&fix]);

    // Tightened, the same symlink loads.
    chmod(&loose, 0o755);
    let doc = list_plugins(home.path(), &dir);
    assert!(rejections(&doc).is_empty(), "{doc}");
    assert!(
        loaded_from(&doc, &dir).contains(&"fixture.echo".to_string()),
        "{doc}"
    );
}

#[test]
fn group_writable_plugin_file_is_refused() {
    let home = scratch();
    let dir = home.path().join("plugins");
    let file = populate(&dir, &[&fixture("libfixture_kinds.so")]).remove(0);
    chmod(&file, 0o775);
    let doc = list_plugins(home.path(), &dir);
    assert!(loaded_from(&doc, &dir).is_empty(), "{doc}");
    let fix = format!("chmod g-w {}", file.display());
    only_rejection(&doc, &file, "writable_by_group", &[&fix]);
    check_refuses(home.path(), &file, &["writable by its group", &fix]);
}

#[test]
fn foreign_owned_plugin_file_and_directory_are_refused() {
    let home = scratch();
    let dir = home.path().join("plugins");
    let file = populate(&dir, &[&fixture("libfixture_kinds.so")]).remove(0);
    chown_foreign(&file);
    let doc = list_plugins(home.path(), &dir);
    assert!(loaded_from(&doc, &dir).is_empty(), "{doc}");
    let fix = format!("chown 0 {}", file.display());
    only_rejection(&doc, &file, "foreign_owner", &["owned by uid 4242", &fix]);
    check_refuses(home.path(), &file, &["owned by uid 4242", &fix]);

    // The file back to root, the directory to someone else.
    std::os::unix::fs::chown(&file, Some(0), Some(0)).expect("chown");
    chown_foreign(&dir);
    let doc = list_plugins(home.path(), &dir);
    assert!(loaded_from(&doc, &dir).is_empty(), "{doc}");
    let fix = format!("chown 0 {}", dir.display());
    only_rejection(&doc, &dir, "foreign_owner", &[&fix]);
    check_refuses(home.path(), &file, &[&fix]);
}

#[test]
fn abort_build_with_a_manifest_edited_to_say_unwind_is_refused() {
    let home = scratch();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o755);
    // Same length: the name loses the byte "unwind" gains over "abort".
    let from = br#""panic":"abort","entries":[{"kind":"action_handler","name":"abort_probe""#;
    let to = br#""panic":"unwind","entries":[{"kind":"action_handler","name":"abort_prob""#;
    let bytes = std::fs::read(fixture("libfixture_abort.so")).expect("read fixture");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the abort fixture's manifest");
    let mut forged = bytes.clone();
    forged[at..at + to.len()].copy_from_slice(to);
    let file = dir.join("libforged.so");
    std::fs::write(&file, &forged).expect("write");
    chmod(&file, 0o755);

    let words = [
        "manifest says panic=unwind",
        "_Unwind_RaiseException",
        "panic = \"unwind\"",
    ];
    check_refuses(home.path(), &file, &words);
    let doc = list_plugins(home.path(), &dir);
    assert!(loaded_from(&doc, &dir).is_empty(), "{doc}");
    only_rejection(&doc, &file, "panic_abort", &words);
}

#[test]
fn symlink_loop_in_a_plugin_directory_is_rejected_with_its_reason() {
    let home = scratch();
    let dir = home.path().join("plugins");
    populate(&dir, &[&fixture("libfixture_kinds.so")]);
    let (a, b) = (dir.join("libloop_a.so"), dir.join("libloop_b.so"));
    symlink(&b, &a).expect("symlink");
    symlink(&a, &b).expect("symlink");
    let doc = list_plugins(home.path(), &dir);
    assert!(
        loaded_from(&doc, &dir).contains(&"fixture.echo".to_string()),
        "the good file still loads: {doc}"
    );
    let r = rejections(&doc);
    assert_eq!(r.len(), 2, "{r:?}");
    for (link, got) in [&a, &b].iter().zip(&r) {
        assert_eq!(got.0, utf8(link), "{r:?}");
        assert_eq!(got.1, "symlink_loop", "{r:?}");
        assert!(got.2.contains("is a symlink loop"), "{}", got.2);
        assert!(
            got.2.contains(&format!("rm {}", link.display())),
            "{}",
            got.2
        );
    }
    check_refuses(home.path(), &a, &["symlink loop"]);
}

#[test]
fn plugins_check_applies_the_directory_checks_of_plugins_list() {
    let home = scratch();
    let dir = home.path().join("loose");
    let file = populate(&dir, &[&fixture("libfixture_kinds.so")]).remove(0);
    chmod(&dir, 0o777);
    let fix = format!("chmod o-w {}", dir.display());
    check_refuses(home.path(), &file, &["plugin directory", &fix]);
    let out = run(sextant(home.path())
        .args(["plugins", "check", "--format", "json"])
        .arg(&file));
    assert_eq!(out.status, 2);
    let doc = out.json();
    assert_eq!(doc["loadable"], false);
    assert_eq!(doc["code"], "writable_by_others");
    let doc = list_plugins(home.path(), &dir);
    only_rejection(&doc, &dir, "writable_by_others", &[&fix]);
}

/// An action type no built-in defines.
const MINE: &str = "name: mine\nversion: 1.0.0\nhandler: nop\nparameters: {type: object}\n";

/// `action-type list --format json` with `cmd`'s environment; must exit 0.
fn list_types(cmd: &mut std::process::Command) -> Value {
    let out = run(cmd.args(["action-type", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
}

fn type_ids(doc: &Value) -> Vec<String> {
    doc["action_types"]
        .as_array()
        .expect("action_types array")
        .iter()
        .map(|t| {
            format!(
                "{}@{}",
                t["name"].as_str().unwrap_or(""),
                t["version"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn refused(doc: &Value) -> Vec<(String, String, String)> {
    doc["refused"]
        .as_array()
        .expect("refused array")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_string(),
                r["code"].as_str().unwrap_or("").to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn types_dir(home: &Path, name: &str) -> PathBuf {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    chmod(&dir, 0o755);
    std::fs::write(dir.join("mine.yaml"), MINE).expect("write");
    dir
}

#[test]
fn action_type_directories_writable_by_others_are_refused_from_env_config_and_registry() {
    let home = scratch();
    let builtin = list_types(&mut sextant(home.path()));
    assert!(type_ids(&builtin).contains(&"nop@1.0.0".to_string()));
    assert!(refused(&builtin).is_empty(), "{builtin}");

    // SEXTANT_ACTION_TYPE_PATH.
    let env_dir = types_dir(home.path(), "env-types");
    chmod(&env_dir, 0o777);
    let doc = list_types(sextant(home.path()).env("SEXTANT_ACTION_TYPE_PATH", &env_dir));
    let fix = format!("chmod o-w {}", env_dir.display());
    assert!(!type_ids(&doc).contains(&"mine@1.0.0".to_string()), "{doc}");
    assert_eq!(
        type_ids(&doc),
        type_ids(&builtin),
        "the built-in types are still read"
    );
    let r = refused(&doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0.as_str(), r[0].1.as_str()),
        (utf8(&env_dir), "writable_by_others")
    );
    assert!(
        r[0].2.contains("action-type directory") && r[0].2.contains(&fix),
        "{}",
        r[0].2
    );

    // The config file's action_type_dirs.
    let cfg_dir = types_dir(home.path(), "cfg-types");
    chmod(&cfg_dir, 0o777);
    let config = home.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("action_type_dirs: [{}]\n", cfg_dir.display()),
    )
    .expect("write");
    let doc = list_types(sextant(home.path()).arg("--config").arg(&config));
    assert!(!type_ids(&doc).contains(&"mine@1.0.0".to_string()), "{doc}");
    let r = refused(&doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, utf8(&cfg_dir));
    assert!(
        r[0].2.contains(&format!("chmod o-w {}", cfg_dir.display())),
        "{}",
        r[0].2
    );

    // The registry `register` writes to.
    let out = run(sextant(home.path())
        .args(["action-type", "register"])
        .arg(env_dir.join("mine.yaml")));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let registry = home.path().join("data/sextant/action-types");
    assert!(type_ids(&list_types(&mut sextant(home.path()))).contains(&"mine@1.0.0".to_string()));
    chmod(&registry, 0o777);
    let doc = list_types(&mut sextant(home.path()));
    assert!(!type_ids(&doc).contains(&"mine@1.0.0".to_string()), "{doc}");
    let r = refused(&doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0.as_str(), r[0].1.as_str()),
        (utf8(&registry), "writable_by_others")
    );
    assert!(
        r[0].2
            .contains(&format!("chmod o-w {}", registry.display())),
        "{}",
        r[0].2
    );
    // Nor does `register` write into it what would be refused.
    let other = home.path().join("other.yaml");
    std::fs::write(&other, MINE.replace("1.0.0", "2.0.0")).expect("write");
    let out = run(sextant(home.path())
        .args(["action-type", "register"])
        .arg(&other));
    assert_eq!(out.status, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("chmod o-w {}", registry.display())),
        "{}",
        out.stderr
    );
    assert!(!registry.join("mine@2.0.0.yaml").exists());
}

#[test]
fn group_writable_or_foreign_owned_action_type_file_is_refused() {
    let home = scratch();
    let dir = types_dir(home.path(), "types");
    let file = dir.join("mine.yaml");
    for (fault, code, fix) in [
        (
            "group",
            "writable_by_group",
            format!("chmod g-w {}", file.display()),
        ),
        (
            "owner",
            "foreign_owner",
            format!("chown 0 {}", file.display()),
        ),
    ] {
        if fault == "group" {
            chmod(&file, 0o664);
        } else {
            chmod(&file, 0o644);
            chown_foreign(&file);
        }
        let doc = list_types(sextant(home.path()).env("SEXTANT_ACTION_TYPE_PATH", &dir));
        assert!(!type_ids(&doc).contains(&"mine@1.0.0".to_string()), "{doc}");
        let r = refused(&doc);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].0.as_str(), r[0].1.as_str()), (utf8(&file), code));
        assert!(
            r[0].2.contains("action-type file") && r[0].2.contains(&fix),
            "{}",
            r[0].2
        );
        let out = run(sextant(home.path())
            .env("SEXTANT_ACTION_TYPE_PATH", &dir)
            .args(["action-type", "show", "mine"]));
        assert_eq!(
            out.status, 2,
            "a refused type is not usable: {}",
            out.stdout
        );
        assert!(out.stderr.contains("mine"), "{}", out.stderr);
    }
}

#[test]
fn action_type_shadowing_a_builtin_is_refused_unless_the_config_allows_it() {
    let home = scratch();
    let dir = home.path().join("types");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o755);
    let builtin_nop = repo_root().join("action-types/nop.yaml");
    let text = std::fs::read_to_string(&builtin_nop).expect("built-in nop");
    let mine = dir.join("nop.yaml");
    std::fs::write(&mine, text.replace("Logging a NOP message.", "My own nop.")).expect("write");
    // A copy with the same content shadows nothing: it is no change.
    std::fs::write(dir.join("same-nop.yaml"), &text).expect("write");

    let show_nop = |config: Option<&Path>| {
        let mut c = sextant(home.path());
        if let Some(cfg) = config {
            c.arg("--config").arg(cfg);
        }
        let out = run(c.env("SEXTANT_ACTION_TYPE_PATH", &dir).args([
            "action-type",
            "show",
            "nop@1.0.0",
            "--format",
            "json",
        ]));
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.json()["description"].as_str().unwrap_or("").to_string()
    };

    let doc = list_types(sextant(home.path()).env("SEXTANT_ACTION_TYPE_PATH", &dir));
    let r = refused(&doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0.as_str(), r[0].1.as_str()),
        (utf8(&mine), "shadows_builtin")
    );
    for w in [
        "nop@1.0.0",
        "built-in",
        "allow_shadowing_builtin_types: true",
        "nop.yaml",
    ] {
        assert!(r[0].2.contains(w), "{w:?} missing from {}", r[0].2);
    }
    assert_eq!(
        show_nop(None),
        "Logging a NOP message.",
        "the built-in nop is used"
    );

    let config = home.path().join("config.yaml");
    std::fs::write(&config, "allow_shadowing_builtin_types: true\n").expect("write");
    let doc = list_types(
        sextant(home.path())
            .arg("--config")
            .arg(&config)
            .env("SEXTANT_ACTION_TYPE_PATH", &dir),
    );
    assert!(refused(&doc).is_empty(), "{doc}");
    let shadowed: Vec<&str> = doc["shadowed"]
        .as_array()
        .expect("shadowed")
        .iter()
        .filter(|s| s["id"] == "nop@1.0.0")
        .filter_map(|s| s["ignored"].as_str())
        .collect();
    assert!(
        shadowed
            .iter()
            .any(|p| p.ends_with("action-types/nop.yaml")),
        "{doc}"
    );
    assert_eq!(
        show_nop(Some(&config)),
        "My own nop.",
        "allowed, the first file wins"
    );
}

#[test]
fn world_writable_policy_directory_and_file_are_refused() {
    let home = scratch();
    let dir = home.path().join("policies");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("mine.yaml"), "name: mine\nplanner: rules\n").expect("write");
    chmod(&dir, 0o777);
    let input = home.path().join("input.json");
    let plan_with = |policy: &str| {
        let body =
            serde_json::json!({"planner": "rules", "config": {"policy": policy}, "solution": []});
        std::fs::write(&input, body.to_string()).expect("write");
        run(sextant(home.path())
            .env("SEXTANT_POLICY_PATH", &dir)
            .args(["plan", "--format", "json", "--input"])
            .arg(&input))
    };
    let fix = format!("chmod o-w {}", dir.display());

    // By name: the lookup reaches the directory.
    let out = plan_with("mine");
    assert_eq!(out.status, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("policy directory") && out.stderr.contains(&fix),
        "{}",
        out.stderr
    );
    // By path.
    let out = plan_with(utf8(&dir.join("mine.yaml")));
    assert_eq!(out.status, 2, "{}", out.stdout);
    assert!(out.stderr.contains(&fix), "{}", out.stderr);
    // An audit refused for it stores nothing.
    let out = run(sextant(home.path())
        .env("SEXTANT_POLICY_PATH", &dir)
        .args(["audit", "create", "-g", "dummy", "--policy", "mine"]));
    assert_eq!(out.status, 2, "{}", out.stdout);
    assert!(out.stderr.contains(&fix), "{}", out.stderr);
    let out = run(sextant(home.path()).args(["audit", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.json().as_array().map(Vec::len),
        Some(0),
        "{}",
        out.stdout
    );

    // Tightened, the policy plans; a group-writable policy file is refused.
    chmod(&dir, 0o755);
    let out = plan_with("mine");
    assert_eq!(out.status, 0, "{}", out.stderr);
    let file = dir.join("mine.yaml");
    chmod(&file, 0o664);
    let out = plan_with("mine");
    assert_eq!(out.status, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("chmod g-w {}", file.display())),
        "{}",
        out.stderr
    );
}
