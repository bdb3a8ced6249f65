//! `sextant plugins list | show | check`, driven through the built binary
//! against the built plugins and fixtures.

use serde_json::Value;
use sextant_e2e::*;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

fn names(doc: &Value) -> BTreeSet<(String, String)> {
    doc["plugins"]
        .as_array()
        .expect("plugins array")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap_or("").to_string(),
                p["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn rejected_codes(doc: &Value) -> Vec<(String, String, String)> {
    doc["rejected"]
        .as_array()
        .expect("rejected array")
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap_or("");
            let file = path.rsplit('/').next().unwrap_or(path).to_string();
            (
                file,
                r["code"].as_str().unwrap_or("").to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn discovery_lists_exactly_the_builtin_entries_with_no_configuration() {
    let home = scratch();
    let out = run(sextant(home.path()).args(["plugins", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    let expected: BTreeSet<_> = [
        ("action_handler", "nop"),
        ("action_handler", "sleep"),
        ("action_handler", "command"),
        ("action_handler", "http"),
        ("action_mapper", "default"),
        ("strategy", "dummy"),
        ("strategy", "actuator"),
        ("strategy", "basic"),
        ("strategy", "host_maintenance"),
        ("strategy", "outlet_temperature"),
        ("strategy", "saving_energy"),
        ("strategy", "workload_balance"),
        ("strategy", "uniform_airflow"),
        ("strategy", "storage_capacity_balance"),
        ("strategy", "zone_migration"),
        ("strategy", "noisy_neighbor"),
        ("strategy", "workload_stabilization"),
        ("strategy", "node_resource_consolidation"),
        ("strategy", "vm_workload_consolidation"),
        ("collector", "sim"),
        ("planner", "weight"),
        ("planner", "workload_stabilization"),
        ("planner", "node_resource_consolidation"),
        ("planner", "rules"),
        ("action_handler", "sim.migrate"),
        ("action_handler", "sim.change_nova_service_state"),
        ("action_handler", "sim.change_node_power_state"),
        ("action_handler", "sim.resize"),
        ("action_handler", "sim.stop"),
        ("action_handler", "sim.shelve"),
        ("action_handler", "sim.delete"),
        ("action_handler", "sim.volume_migrate"),
        ("collector", "openstack"),
        ("action_handler", "openstack.migrate"),
        ("action_handler", "openstack.change_nova_service_state"),
        ("action_handler", "openstack.stop"),
        ("action_handler", "openstack.shelve"),
        ("action_handler", "openstack.resize"),
        ("action_handler", "openstack.delete"),
        ("action_handler", "openstack.volume_migrate"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(names(&doc), expected);
    assert_eq!(doc["rejected"], serde_json::json!([]));
    for p in doc["plugins"].as_array().expect("plugins") {
        let file = p["file"].as_str().unwrap_or("");
        let lib = match p["kind"].as_str() {
            Some("strategy") => "libsextant_strategies.so",
            _ if p["name"]
                .as_str()
                .is_some_and(|n| n.split('.').next() == Some("openstack")) =>
            {
                "libsextant_openstack.so"
            }
            Some("collector") => "libsextant_sim.so",
            _ if p["name"].as_str().is_some_and(|n| n.starts_with("sim.")) => "libsextant_sim.so",
            Some("planner") => "libsextant_planners.so",
            _ => "libsextant_core.so",
        };
        assert!(file.ends_with(lib), "{file}");
    }

    // The table form says the same.
    let out = run(sextant(home.path()).args(["plugins", "list"]));
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("action_handler  nop"), "{}", out.stdout);
    assert!(out.stdout.contains("sleep"), "{}", out.stdout);
}

#[test]
fn bad_files_are_rejected_with_reasons_and_good_ones_still_load() {
    let home = scratch();
    let dir = home.path().join("plugins");
    populate(
        &dir,
        &[
            &fixture("libfixture_kinds.so"),
            &fixture("libfixture_other_interface.so"),
            &fixture("libfixture_layout_skew.so"),
            &fixture("libfixture_abort.so"),
        ],
    );
    std::fs::write(dir.join("libgarbage.so"), b"\x00garbage, not a library\n").expect("write");
    std::fs::copy(foreign_shared_library(), dir.join("libforeign.so")).expect("copy");

    let out = run(sextant(home.path()).args([
        "plugins",
        "list",
        "--format",
        "json",
        "--plugin-dir",
        dir.to_str().expect("utf8"),
    ]));
    assert_eq!(
        out.status, 0,
        "rejections do not fail the listing: {}",
        out.stderr
    );
    let doc = out.json();
    let n = names(&doc);
    for (k, name) in [
        ("action_handler", "nop"),
        ("action_handler", "sleep"),
        ("action_handler", "fixture.boom"),
        ("action_handler", "fixture.echo"),
        ("strategy", "fixture_evacuate"),
        ("planner", "fixture_chain"),
        ("planner", "fixture_broken"),
        ("planner", "fixture_fallback"),
        ("action_mapper", "fixture_prefixer"),
        ("collector", "fixture_two_nodes"),
    ] {
        assert!(
            n.contains(&(k.into(), name.into())),
            "{k} {name} missing from {n:?}"
        );
    }
    assert!(
        !n.iter().any(|(_, name)| name.ends_with("_probe")),
        "a refused plugin's entry is listed: {n:?}"
    );

    let rejected = rejected_codes(&doc);
    let expect = [
        ("libfixture_abort.so", "panic_abort", "panic=abort"),
        (
            "libfixture_layout_skew.so",
            "layout_mismatch",
            "PluginError",
        ),
        (
            "libfixture_other_interface.so",
            "interface_mismatch",
            "built for plugin interface 2.0.0 while the host has 1.0.0",
        ),
        (
            "libforeign.so",
            "no_manifest",
            "no .sextant_plugin manifest section",
        ),
        ("libgarbage.so", "not_elf", "not an ELF file"),
    ];
    assert_eq!(rejected.len(), expect.len(), "{rejected:?}");
    for (file, code, words) in expect {
        let r = rejected
            .iter()
            .find(|(f, _, _)| f == file)
            .unwrap_or_else(|| panic!("{file} not rejected: {rejected:?}"));
        assert_eq!(r.1, code, "{file}: {}", r.2);
        assert!(
            r.2.contains(words),
            "{file}: reason {:?} lacks {words:?}",
            r.2
        );
        assert!(
            !r.2.contains('\n'),
            "{file}: reason is not one line: {:?}",
            r.2
        );
    }
}

#[test]
fn plugins_check_says_why_and_exits_2_for_a_file_that_would_not_load() {
    let home = scratch();
    let garbage = home.path().join("libgarbage.so");
    std::fs::write(&garbage, b"garbage").expect("write");
    for (file, words) in [
        (fixture("libfixture_abort.so"), "panic=abort"),
        (fixture("libfixture_other_interface.so"), "interface 2.0.0"),
        (fixture("libfixture_layout_skew.so"), "layout mismatch"),
        (garbage, "not an ELF file"),
    ] {
        let out = run(sextant(home.path()).args(["plugins", "check"]).arg(&file));
        assert_eq!(out.status, 2, "{}: {}", file.display(), out.stdout);
        assert!(
            out.stdout.contains(words),
            "{}: {}",
            file.display(),
            out.stdout
        );
    }
    let out = run(sextant(home.path())
        .args(["plugins", "check", "--format", "json"])
        .arg(fixture("libfixture_kinds.so")));
    assert_eq!(out.status, 0, "{}", out.stdout);
    let doc = out.json();
    assert_eq!(doc["loadable"], true);
    assert_eq!(doc["entries"].as_array().map(Vec::len), Some(8));

    let out = run(sextant(home.path()).args(["plugins", "check", "/no/such/file.so"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("/no/such/file.so"), "{}", out.stderr);
}

#[test]
fn world_writable_plugin_directory_and_file_are_refused() {
    let home = scratch();
    let dir = home.path().join("loose");
    populate(&dir, &[&fixture("libfixture_kinds.so")]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = run(sextant(home.path()).args([
        "plugins",
        "list",
        "--format",
        "json",
        "--plugin-dir",
        dir.to_str().expect("utf8"),
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert!(
        !names(&doc).iter().any(|(_, n)| n.starts_with("fixture")),
        "plugins from a world-writable directory were loaded"
    );
    let r = rejected_codes(&doc);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, "writable_by_others");
    assert!(r[0].2.contains("writable by others"), "{}", r[0].2);
    assert!(r[0].2.contains("chmod o-w"), "{}", r[0].2);

    // A loose file in a tight directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = dir.join("libfixture_kinds.so");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = run(sextant(home.path()).args(["plugins", "check"]).arg(&file));
    assert_eq!(out.status, 2);
    assert!(out.stdout.contains("writable by others"), "{}", out.stdout);
}

#[test]
fn duplicate_entries_keep_the_first_in_path_order_and_warn_naming_both_files() {
    let home = scratch();
    let dir = home.path().join("first");
    let copies = populate(&dir, &[&core_plugin()]);
    let out = run(sextant(home.path()).args([
        "plugins",
        "list",
        "--format",
        "json",
        "--plugin-dir",
        dir.to_str().expect("utf8"),
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    let nop = doc["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "nop"))
        .expect("nop listed");
    assert_eq!(nop["file"].as_str(), copies[0].to_str());
    let dups = doc["duplicates"].as_array().expect("duplicates");
    assert_eq!(dups.len(), 5, "every entry of the core plugin: {dups:?}");
    let original = core_plugin();
    assert!(
        out.stderr.contains(copies[0].to_str().expect("utf8"))
            && out.stderr.contains(original.to_str().expect("utf8")),
        "the warning names both files: {}",
        out.stderr
    );
}

#[test]
fn plugins_show_prints_manifest_and_schema() {
    let home = scratch();
    let out = run(sextant(home.path()).args(["plugins", "show", "sleep", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["entry"]["kind"], "action_handler");
    assert_eq!(doc["entry"]["abortable"], true);
    assert_eq!(doc["entry"]["parameters"]["required"][0], "duration");

    let out = run(sextant(home.path()).args(["plugins", "show", "sleep", "--lang", "fr_FR.UTF-8"]));
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("Attendre"), "{}", out.stdout);
    assert!(out.stdout.contains("\"minimum\": 0"), "{}", out.stdout);

    let out = run(sextant(home.path()).args(["plugins", "show", "no_such_plugin"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("no_such_plugin"), "{}", out.stderr);
}

#[test]
fn env_path_and_config_file_dirs_are_searched() {
    let home = scratch();
    let env_dir = home.path().join("from-env");
    populate(&env_dir, &[&fixture("libfixture_kinds.so")]);
    let out = run(sextant(home.path())
        .env(
            "SEXTANT_PLUGIN_PATH",
            format!("/nonexistent:{}", env_dir.display()),
        )
        .args(["plugins", "list", "--format", "json", "--kind", "planner"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(names(&out.json()).contains(&("planner".into(), "fixture_chain".into())));

    let cfg_dir = home.path().join("config").join("sextant");
    std::fs::create_dir_all(&cfg_dir).expect("mkdir");
    std::fs::write(
        cfg_dir.join("config.yaml"),
        "plugin_dirs: [../../from-env]\n",
    )
    .expect("write");
    let out = run(sextant(home.path()).args(["plugins", "list", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(names(&out.json()).contains(&("collector".into(), "fixture_two_nodes".into())));

    std::fs::write(
        cfg_dir.join("config.yaml"),
        "plugin_dirs: []\nplugin_dir: x\n",
    )
    .expect("write");
    let out = run(sextant(home.path()).args(["plugins", "list"]));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("config.yaml: line 2 column 1") && out.stderr.contains("plugin_dir"),
        "{}",
        out.stderr
    );

    std::fs::remove_file(cfg_dir.join("config.yaml")).expect("rm");
    let out = run(sextant(home.path()).args(["--plugin-dir", "/no/such/dir", "plugins", "list"]));
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("/no/such/dir"), "{}", out.stderr);
}

#[test]
fn the_plugin_hello_example_is_listed_when_dropped_in() {
    let home = scratch();
    let dir = home.path().join("mine");
    populate(&dir, &[&fixture("libplugin_hello.so")]);
    let out = run(sextant(home.path()).args([
        "plugins",
        "show",
        "hello",
        "--format",
        "json",
        "--plugin-dir",
        dir.to_str().expect("utf8"),
    ]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["entry"]["kind"], "action_handler");
}
