//! Each shipped action type accepts valid parameter sets and refuses invalid
//! ones, through the action factory; including the sets Watcher 17.0.0's
//! schema typos (`minlength`, `anyof`) let through (reference section 1.1).

use serde_json::{Value, json};
use sextant::action_types::{
    ActionFactory, ActionTypeDirs, ActionTypeRegistry, FactoryError, NewAction,
};
use sextant_e2e::repo_root;

const UUID: &str = "0d8a5f7e-3c1b-4a2e-9f6d-8b7c6a5e4d3c";

fn shipped() -> ActionTypeRegistry {
    let dirs = ActionTypeDirs {
        dirs: vec![(
            repo_root().join("action-types"),
            sextant::action_types::TypeSource::Installation,
        )],
        registered: repo_root().join("target").join("no-registered-types"),
        allow_shadowing_builtin: false,
    };
    let reg = ActionTypeRegistry::load(&dirs);
    assert!(reg.invalid.is_empty(), "{:?}", reg.invalid);
    reg
}

/// (action type, parameters, accepted?, why)
fn cases() -> Vec<(&'static str, Value, bool, &'static str)> {
    vec![
        // migrate
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1"}),
            true,
            "minimal",
        ),
        (
            "migrate",
            json!({"migration_type": "cold", "resource_id": UUID, "source_node": "n1", "destination_node": "n2", "resource_name": "vm-1"}),
            true,
            "all fields",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1", "destination_node": null}),
            true,
            "scheduler picks",
        ),
        (
            "migrate",
            json!({"resource_id": UUID, "source_node": "n1"}),
            false,
            "migration_type required",
        ),
        (
            "migrate",
            json!({"migration_type": "warm", "resource_id": UUID, "source_node": "n1"}),
            false,
            "enum",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": "not-a-uuid", "source_node": "n1"}),
            false,
            "uuid pattern",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": ""}),
            false,
            "minLength",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1", "destination_node": 123}),
            false,
            "Watcher's anyof typo let this through",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1", "destination_node": ""}),
            false,
            "Watcher's anyof typo let this through",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1", "resource_name": ""}),
            false,
            "Watcher's minlength typo let this through",
        ),
        (
            "migrate",
            json!({"migration_type": "live", "resource_id": UUID, "source_node": "n1", "force": true}),
            false,
            "additionalProperties",
        ),
        // resize
        (
            "resize",
            json!({"resource_id": UUID, "flavor": "m1.small"}),
            true,
            "minimal",
        ),
        (
            "resize",
            json!({"resource_id": UUID, "flavor": ""}),
            false,
            "Watcher's minlength typo let this through",
        ),
        (
            "resize",
            json!({"resource_id": UUID}),
            false,
            "flavor required",
        ),
        // change_nova_service_state
        (
            "change_nova_service_state",
            json!({"resource_id": "n-1", "state": "disabled"}),
            true,
            "minimal",
        ),
        (
            "change_nova_service_state",
            json!({"resource_id": "n-1", "resource_name": "compute-1", "state": "enabled", "disabled_reason": "watcher_disabled"}),
            true,
            "all fields",
        ),
        (
            "change_nova_service_state",
            json!({"resource_id": "", "state": "disabled"}),
            false,
            "Watcher's minlength typo let this through",
        ),
        (
            "change_nova_service_state",
            json!({"resource_id": "n-1", "state": "disabled", "disabled_reason": ""}),
            false,
            "Watcher's minlength typo let this through",
        ),
        (
            "change_nova_service_state",
            json!({"resource_id": "n-1", "state": "off"}),
            false,
            "enum",
        ),
        (
            "change_nova_service_state",
            json!({"resource_id": "n-1"}),
            false,
            "state required",
        ),
        // change_node_power_state
        (
            "change_node_power_state",
            json!({"resource_id": "node-1", "state": "on"}),
            true,
            "on",
        ),
        (
            "change_node_power_state",
            json!({"resource_id": "node-1", "state": "off", "resource_name": "compute-1"}),
            true,
            "off",
        ),
        (
            "change_node_power_state",
            json!({"resource_id": "node-1", "state": "reboot"}),
            false,
            "enum",
        ),
        (
            "change_node_power_state",
            json!({"resource_id": "", "state": "on"}),
            false,
            "Watcher's minlength typo let this through",
        ),
        // stop, shelve, delete
        ("stop", json!({"resource_id": UUID}), true, "minimal"),
        ("stop", json!({}), false, "resource_id required"),
        (
            "stop",
            json!({"resource_id": "vm-1"}),
            false,
            "uuid pattern",
        ),
        ("shelve", json!({"resource_id": UUID}), true, "minimal"),
        (
            "shelve",
            json!({"resource_id": UUID, "offload": true}),
            false,
            "additionalProperties",
        ),
        ("delete", json!({"resource_id": UUID}), true, "minimal"),
        ("delete", json!({"resource_id": 42}), false, "type"),
        // volume_migrate
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "migrate", "destination_node": "pool-b@lvm"}),
            true,
            "migrate",
        ),
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "retype", "destination_type": "ssd"}),
            true,
            "retype",
        ),
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "swap", "destination_node": null, "destination_type": null}),
            true,
            "nulls",
        ),
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "move"}),
            false,
            "enum",
        ),
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "retype", "destination_type": 5}),
            false,
            "Watcher's anyof typo let this through",
        ),
        (
            "volume_migrate",
            json!({"resource_id": UUID, "migration_type": "migrate", "destination_node": ""}),
            false,
            "Watcher's anyof typo let this through",
        ),
        // nop
        ("nop", json!({"message": "hello"}), true, "minimal"),
        ("nop", json!({"message": null}), true, "null message"),
        (
            "nop",
            json!({"message": "m", "fail_execute": true}),
            true,
            "flag",
        ),
        ("nop", json!({}), false, "message required"),
        ("nop", json!({"message": 1}), false, "type"),
        (
            "nop",
            json!({"message": "m", "fail_execute": "yes"}),
            false,
            "flag type",
        ),
        // sleep
        ("sleep", json!({"duration": 0}), true, "zero"),
        ("sleep", json!({"duration": 1.5}), true, "fractional"),
        ("sleep", json!({"duration": -1}), false, "minimum"),
        ("sleep", json!({"duration": "1"}), false, "type"),
        ("sleep", json!({}), false, "duration required"),
    ]
}

#[test]
fn every_shipped_type_accepts_valid_parameters_and_refuses_invalid_ones() {
    let reg = shipped();
    let factory = ActionFactory::new(&reg);
    let mut seen = std::collections::BTreeSet::new();
    for (t, params, ok, why) in cases() {
        seen.insert(t);
        let r = factory.instantiate(&NewAction::new(t, params.clone()));
        match (ok, &r) {
            (true, Ok(a)) => assert_eq!(a.action_type_version, "1.0.0"),
            (
                false,
                Err(FactoryError::InvalidParameters {
                    action_type,
                    problems,
                }),
            ) => {
                assert_eq!(action_type, &format!("{t}@1.0.0"));
                assert!(!problems.is_empty());
            }
            _ => panic!("{t} {params}: expected accepted={ok} ({why}), got {r:?}"),
        }
    }
    let all: std::collections::BTreeSet<_> = reg.all().map(|t| t.name.as_str()).collect();
    assert_eq!(seen, all, "every shipped type has cases");
    assert_eq!(all.len(), 10);
}

#[test]
fn errors_name_the_type_the_parameter_and_the_rule() {
    let reg = shipped();
    let factory = ActionFactory::new(&reg);
    let err = factory
        .instantiate(&NewAction::new(
            "migrate",
            json!({"migration_type": "live", "resource_id": "nope", "source_node": "n1"}),
        ))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("migrate@1.0.0"), "{err}");
    assert!(err.contains("resource_id"), "{err}");
    assert!(err.contains("pattern"), "{err}");

    let err = factory
        .instantiate(&NewAction::new("teleport", json!({})))
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("teleport") && err.contains("migrate"), "{err}");
    let err = factory
        .instantiate(&NewAction::new("sleep@9.9.9", json!({"duration": 1})))
        .expect_err("unknown version")
        .to_string();
    assert!(err.contains("9.9.9") && err.contains("1.0.0"), "{err}");
}

#[test]
fn defaults_are_filled_and_resource_id_is_copied_in() {
    let reg = shipped();
    let factory = ActionFactory::new(&reg);
    let a = factory
        .instantiate(&NewAction::new("nop@1.0.0", json!({"message": "m"})))
        .expect("valid");
    assert_eq!(a.input_parameters["skip_pre_condition"], false);
    assert_eq!(a.input_parameters["fail_post_condition"], false);

    let mut n = NewAction::new("stop", json!({}));
    n.resource_id = Some(UUID.into());
    let a = factory.instantiate(&n).expect("resource_id copied in");
    assert_eq!(a.input_parameters["resource_id"], UUID);
    assert_eq!(a.resource_id.as_deref(), Some(UUID));
}
