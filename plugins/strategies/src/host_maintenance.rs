//! `host_maintenance` (goal `cluster_maintaining`): empties one host for
//! maintenance, as Watcher's Host Maintenance Strategy does: enable the
//! backup node if one is given, disable the maintenance node (reason
//! `watcher_maintaining`), and move every instance off it (live when
//! allowed and the instance is active, else cold, else stop it).
//!
//! Unlike Watcher's, it passes hostnames (not uuids) as `source_node`
//! (Watcher bug #2122149), and it places each instance where it fits in
//! every dimension: the backup node first, else the most loaded usable host
//! with room. When an instance fits nowhere, the audit fails naming it
//! instead of recommending a migration that Nova would refuse.

use crate::common;
use serde::Deserialize;
use sextant_plugin_api::model::Node;
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    maintenance_node: String,
    #[serde(default)]
    backup_node: Option<String>,
    #[serde(default)]
    disable_live_migration: bool,
    #[serde(default)]
    disable_cold_migration: bool,
}

#[derive(Default)]
pub struct HostMaintenance;

/// The share of a host's capacity still free, summed over vcpus, memory
/// and disk: the smallest is the most loaded host.
fn free_share((n, r): &(&Node, (f64, f64, f64))) -> f64 {
    let (cv, cm, cd) = n.capacity();
    let share = |free: f64, cap: f64| if cap > 0.0 { free / cap } else { 0.0 };
    share(r.0, cv) + share(r.1, cm) + share(r.2, cd)
}

fn usable(n: &Node) -> bool {
    n.state == "up" && n.power_state == "on"
}

impl Strategy for HostMaintenance {
    fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: Params = common::params("host_maintenance", parameters)?;
        let m = common::model(model)?;
        let maint = m.node(&p.maintenance_node).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "maintenance_node {} is not in the cluster",
                p.maintenance_node
            ))
        })?;
        let backup = match &p.backup_node {
            Some(b) if b == &p.maintenance_node => {
                return Err(PluginError::invalid_input(
                    "backup_node must differ from maintenance_node",
                ));
            }
            Some(b) => Some(m.node(b).ok_or_else(|| {
                PluginError::invalid_input(format!("backup_node {b} is not in the cluster"))
            })?),
            None => None,
        };
        let mut actions = Vec::new();
        let mut push = |id: String, t: &str, r: Option<String>, params: Value| {
            actions.push(Action {
                id,
                action_type: t.into(),
                resource_id: r,
                input_parameters: params,
            });
        };
        if let Some(b) = backup
            && b.status != "enabled"
        {
            push(
                format!("enable-{}", b.hostname),
                "change_nova_service_state",
                Some(b.uuid.clone()),
                json!({"state": "enabled", "resource_name": b.hostname}),
            );
        }
        if maint.status != "disabled" {
            push(
                format!("disable-{}", maint.hostname),
                "change_nova_service_state",
                Some(maint.uuid.clone()),
                json!({"state": "disabled", "disabled_reason": "watcher_maintaining", "resource_name": maint.hostname}),
            );
        }
        // Room left on every other usable host.
        let mut room: Vec<(&Node, (f64, f64, f64))> = m
            .nodes
            .iter()
            .filter(|n| n.hostname != maint.hostname && usable(n))
            .filter(|n| n.status == "enabled" || backup.is_some_and(|b| b.hostname == n.hostname))
            .map(|n| {
                let (cv, cm, cd) = n.capacity();
                let used = m.instances.iter().filter(|i| i.host == n.hostname).fold(
                    (0.0, 0.0, 0.0),
                    |u, i| {
                        (
                            u.0 + i.vcpus as f64,
                            u.1 + i.memory as f64,
                            u.2 + i.disk as f64,
                        )
                    },
                );
                (n, (cv - used.0, cm - used.1, cd - used.2))
            })
            .collect();
        let mut stopped = 0;
        let mut moved = (0, 0);
        for i in m.instances.iter().filter(|i| i.host == maint.hostname) {
            let live = !p.disable_live_migration && i.state == "active";
            let cold = !p.disable_cold_migration;
            if !live && !cold {
                push(
                    format!("stop-{}", i.name),
                    "stop",
                    Some(i.uuid.clone()),
                    json!({}),
                );
                stopped += 1;
                continue;
            }
            let need = (i.vcpus as f64, i.memory as f64, i.disk as f64);
            let fits = |r: &(f64, f64, f64)| {
                r.0 + 1e-9 >= need.0 && r.1 + 1e-9 >= need.1 && r.2 + 1e-9 >= need.2
            };
            let pick = room
                .iter()
                .position(|(n, r)| backup.is_some_and(|b| b.hostname == n.hostname) && fits(r))
                .or_else(|| {
                    room.iter()
                        .enumerate()
                        .filter(|(_, (_, r))| fits(r))
                        .min_by(|a, b| free_share(a.1).total_cmp(&free_share(b.1)))
                        .map(|(k, _)| k)
                })
                .ok_or_else(|| {
                    PluginError::invalid_input(format!(
                        "instance {} ({}) fits on no other usable host: the maintenance node cannot be emptied",
                        i.name, i.uuid
                    ))
                })?;
            let dest = room[pick].0.hostname.clone();
            let r = &mut room[pick].1;
            (r.0, r.1, r.2) = (r.0 - need.0, r.1 - need.1, r.2 - need.2);
            if live {
                moved.0 += 1
            } else {
                moved.1 += 1
            }
            push(
                format!("migrate-{}", i.name),
                "migrate",
                Some(i.uuid.clone()),
                json!({
                    "migration_type": if live { "live" } else { "cold" },
                    "source_node": maint.hostname, "destination_node": dest, "resource_name": i.name,
                }),
            );
        }
        Ok(Solution {
            actions,
            efficacy_indicators: json!([]),
            extra: json!({"live_migrations": moved.0, "cold_migrations": moved.1, "stopped": stopped}),
        })
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "maintenance_node": {"type": "string", "minLength": 1, "description": "The host to empty for maintenance."},
    "backup_node": {"type": "string", "minLength": 1, "description": "The host to move its instances to, first."},
    "disable_live_migration": {"type": "boolean", "default": false},
    "disable_cold_migration": {"type": "boolean", "default": false}
  },
  "required": ["maintenance_node"],
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100, "status": "disabled"},
                {"uuid": "n3", "hostname": "h3", "vcpus": 2, "memory": 2048, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 10, "state": "stopped"}
            ]
        })
    }

    fn run(params: Value) -> Result<Solution, PluginError> {
        HostMaintenance.execute(model(), params)
    }

    #[test]
    fn evacuates_to_the_backup_after_enabling_it_and_disabling_the_host() {
        let s = run(json!({"maintenance_node": "h1", "backup_node": "h2"})).expect("plan");
        let ids: Vec<&str> = s.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["enable-h2", "disable-h1", "migrate-a", "migrate-b"]);
        assert_eq!(s.actions[2].input_parameters["migration_type"], "live");
        assert_eq!(
            s.actions[3].input_parameters["migration_type"], "cold",
            "b is stopped"
        );
        assert!(
            s.actions[2..]
                .iter()
                .all(|a| a.input_parameters["destination_node"] == "h2")
        );
        assert_eq!(
            s.actions[2].input_parameters["source_node"], "h1",
            "a hostname, not a uuid"
        );
    }

    #[test]
    fn without_backup_uses_the_hosts_with_room_and_fails_when_none_has() {
        // h2 is disabled, so only h3 is usable: it takes one of h1's two instances, not both.
        let err = run(json!({"maintenance_node": "h1"})).expect_err("no room for both");
        assert!(
            err.message().contains("fits on no other usable host"),
            "{}",
            err.message()
        );
        let one = HostMaintenance
            .execute(
                json!({"nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                                 {"uuid": "n3", "hostname": "h3", "vcpus": 4, "memory": 4096, "disk": 100}],
                       "instances": [{"uuid": "i1", "name": "a", "host": "h1", "vcpus": 2, "memory": 2048, "disk": 10}]}),
                json!({"maintenance_node": "h1"}),
            )
            .expect("h3 has room");
        let ids: Vec<&str> = one.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["disable-h1", "migrate-a"]);
        assert_eq!(one.actions[1].input_parameters["destination_node"], "h3");
    }

    #[test]
    fn stops_instances_when_both_migrations_are_disabled_and_refuses_unknown_hosts() {
        let s = run(json!({"maintenance_node": "h1", "disable_live_migration": true, "disable_cold_migration": true}))
            .expect("plan");
        assert_eq!(
            s.actions.iter().filter(|a| a.action_type == "stop").count(),
            2
        );
        assert!(run(json!({"maintenance_node": "h9"})).is_err());
        assert!(run(json!({"maintenance_node": "h1", "backup_node": "h1"})).is_err());
    }
}
