//! `sextant_strategies`: the built-in strategy library.
//!
//! * `dummy` (goal `dummy`): Watcher's test strategy. Two `nop` actions and
//!   one `sleep`, from its parameters `para1` (the sleep's duration) and
//!   `para2` (the second nop's message).
//! * `actuator` (goal `unclassified`): returns the actions its `actions`
//!   parameter lists, as they are; the way to run hand-written actions
//!   through an audit.
//! * `basic` (goal `server_consolidation`): empties the smallest, least
//!   loaded hosts within every resource dimension and disables them (see `basic.rs`).
//! * `host_maintenance` (goal `cluster_maintaining`): empties one host for
//!   maintenance (see `host_maintenance.rs`).
//! * `node_resource_consolidation` (goal `server_consolidation`): `basic`'s
//!   choice of hosts, Watcher's actions and planner (see `node_resource_consolidation.rs`).
//! * `noisy_neighbor` (goal `noisy_neighbor`): moves the instance starving a
//!   more important neighbour of L3 cache (see `noisy_neighbor.rs`).
//! * `outlet_temperature` (goal `thermal_optimization`): moves one instance
//!   off the hottest host to the coolest with room (see `outlet_temperature.rs`).
//! * `saving_energy` (goal `saving_energy`): powers spare empty hosts off, or
//!   on when too few are ready (see `saving_energy.rs`).
//! * `vm_workload_consolidation` (goal `server_consolidation`): consolidation
//!   by usage, within allocations (see `vm_workload_consolidation.rs`).
//! * `workload_balance` (goal `workload_balancing`): moves one instance off
//!   the most loaded host (see `workload_balance.rs`).
//! * `uniform_airflow` (goal `airflow_optimization`): moves instances off the
//!   host with the most airflow (see `uniform_airflow.rs`).
//! * `storage_capacity_balance` (goal `workload_balancing`): migrates volumes
//!   off storage pools above a threshold (see `storage_capacity_balance.rs`).
//! * `workload_stabilization` (goal `workload_balancing`): live migrations that
//!   lower the weighted standard deviation of host loads (see `workload_stabilization.rs`).
//! * `zone_migration` (goal `hardware_maintenance`): empties named compute
//!   nodes and storage pools (see `zone_migration.rs`).

mod basic;
mod common;
mod fit;
mod host_maintenance;
mod node_resource_consolidation;
mod noisy_neighbor;
mod outlet_temperature;
mod saving_energy;
mod storage_capacity_balance;
mod uniform_airflow;
mod vm_workload_consolidation;
mod workload_balance;
mod workload_stabilization;
mod zone_migration;

use serde::Deserialize;
use sextant_plugin_api::prelude::*;

#[derive(Default)]
struct Dummy;

#[derive(Deserialize)]
struct DummyParams {
    #[serde(default = "para1")]
    para1: f64,
    #[serde(default = "para2")]
    para2: String,
}

fn para1() -> f64 {
    3.2
}

fn para2() -> String {
    "hello".into()
}

impl Strategy for Dummy {
    fn execute(&self, _model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: DummyParams = if parameters.is_null() {
            DummyParams {
                para1: para1(),
                para2: para2(),
            }
        } else {
            serde_json::from_value(parameters)
                .map_err(|e| PluginError::invalid_input(format!("dummy parameters: {e}")))?
        };
        let action = |id: &str, t: &str, params: Value| Action {
            id: id.into(),
            action_type: t.into(),
            resource_id: None,
            input_parameters: params,
        };
        Ok(Solution {
            actions: vec![
                action("nop-1", "nop", json!({"message": "hello World"})),
                action("nop-2", "nop", json!({"message": p.para2})),
                action("sleep-1", "sleep", json!({"duration": p.para1})),
            ],
            efficacy_indicators: json!([]),
            extra: Value::Null,
        })
    }
}

#[derive(Default)]
struct Actuator;

#[derive(Deserialize)]
struct ActuatorAction {
    action_type: String,
    #[serde(default)]
    resource_id: Option<String>,
    input_parameters: Value,
}

#[derive(Deserialize)]
struct ActuatorParams {
    actions: Vec<ActuatorAction>,
}

impl Strategy for Actuator {
    fn execute(&self, _model: Value, parameters: Value) -> Result<Solution, PluginError> {
        let p: ActuatorParams = serde_json::from_value(parameters)
            .map_err(|e| PluginError::invalid_input(format!("actuator parameters: {e}")))?;
        Ok(Solution {
            actions: p
                .actions
                .into_iter()
                .enumerate()
                .map(|(i, a)| Action {
                    id: format!("action-{}", i + 1),
                    action_type: a.action_type,
                    resource_id: a.resource_id,
                    input_parameters: a.input_parameters,
                })
                .collect(),
            efficacy_indicators: json!([]),
            extra: Value::Null,
        })
    }
}

const DUMMY_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "para1": {"description": "number parameter example", "type": "number", "default": 3.2, "minimum": 1.0, "maximum": 10.2},
    "para2": {"description": "string parameter example", "type": "string", "default": "hello"}
  },
  "additionalProperties": false
}"#;

const ACTUATOR_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "actions": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "action_type": {"type": "string"},
          "resource_id": {"type": "string"},
          "input_parameters": {"type": "object", "properties": {}, "additionalProperties": true}
        },
        "required": ["action_type", "input_parameters"],
        "additionalProperties": true
      }
    }
  },
  "required": ["actions"],
  "additionalProperties": false
}"#;

// Watcher's entry-point order (its setup.cfg): an audit that names only a
// goal runs the first strategy of that goal, as Watcher's selector does.
export_plugin! {
    strategy Dummy = Entry::new("dummy", "1.0.0")
        .display_name("en", "Dummy strategy")
        .display_name("fr", "Stratégie factice")
        .description("Watcher's test strategy: two nop actions and a sleep.")
        .parameters(DUMMY_SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("dummy")
            .display_name("en", "Dummy goal")
            .display_name("fr", "Objectif factice")
            .efficacy_specification("[]")),
    strategy Actuator = Entry::new("actuator", "1.0.0")
        .display_name("en", "Actuator")
        .display_name("fr", "Actionneur")
        .description("Returns the actions its `actions` parameter lists, as they are.")
        .parameters(ACTUATOR_SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("unclassified")
            .display_name("en", "Unclassified")
            .display_name("fr", "Non classé")
            .efficacy_specification("[]")),
    strategy basic::Basic = Entry::new("basic", "1.0.0")
        .display_name("en", "Basic offline consolidation")
        .display_name("fr", "Consolidation hors ligne de base")
        .description("Empties the smallest, least loaded hosts onto the biggest, most loaded ones, in every dimension (vcpus, memory, disk, with ratios and reservations), and disables the hosts it empties.")
        .parameters(basic::SCHEMA)
        .planner("weight")
        .metrics(&["host_cpu_usage", "instance_cpu_usage"])
        .goal(GoalDecl::new("server_consolidation")
            .display_name("en", "Server Consolidation")
            .display_name("fr", "Consolidation de serveurs")
            .efficacy_specification(basic::SERVER_CONSOLIDATION)),
    strategy outlet_temperature::OutletTemperature = Entry::new("outlet_temperature", "1.0.0")
        .display_name("en", "Outlet temperature based strategy")
        .display_name("fr", "Stratégie fondée sur la température de sortie")
        .description("Moves one instance off the hottest host whose host_outlet_temp is at or above the threshold, to the coolest host below it with room in every dimension.")
        .parameters(outlet_temperature::SCHEMA)
        .planner("weight")
        .metrics(&["host_outlet_temp"])
        .goal(GoalDecl::new("thermal_optimization")
            .display_name("en", "Thermal Optimization")
            .display_name("fr", "Optimisation thermique")
            .efficacy_specification("[]")),
    strategy saving_energy::SavingEnergy = Entry::new("saving_energy", "1.0.0")
        .display_name("en", "Saving Energy Strategy")
        .display_name("fr", "Stratégie d'économie d'énergie")
        .description("Keeps just enough empty hosts powered on (min_free_hosts_num, or free_used_percent of the hosts in use): powers the others off, or powers hosts on when too few are ready.")
        .parameters(saving_energy::SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("saving_energy")
            .display_name("en", "Saving Energy")
            .display_name("fr", "Économie d'énergie")
            .efficacy_specification("[]")),
    strategy vm_workload_consolidation::VmWorkloadConsolidation = Entry::new("vm_workload_consolidation", "1.0.0")
        .display_name("en", "VM Workload Consolidation Strategy")
        .display_name("fr", "Stratégie de consolidation de la charge des VM")
        .description("Offloads hosts using more than they have, then empties the smallest, least used hosts onto the biggest, most used ones, by usage and within allocations, and disables them.")
        .parameters(vm_workload_consolidation::SCHEMA)
        .planner("weight")
        .metrics(&["instance_cpu_usage", "instance_ram_usage", "instance_ram_allocated", "instance_root_disk_size", "host_cpu_usage", "host_ram_usage"])
        .goal(GoalDecl::new("server_consolidation")
            .display_name("en", "Server Consolidation")
            .display_name("fr", "Consolidation de serveurs")
            .efficacy_specification(basic::SERVER_CONSOLIDATION)),
    strategy workload_stabilization::WorkloadStabilization = Entry::new("workload_stabilization", "1.0.0")
        .display_name("en", "Workload stabilization")
        .display_name("fr", "Stabilisation de la charge")
        .description("Live migrations that lower the weighted standard deviation of the hosts' cpu and ram loads until each is under its threshold.")
        .parameters(workload_stabilization::SCHEMA)
        .planner("workload_stabilization")
        .metrics(&["host_cpu_usage", "instance_cpu_usage", "instance_ram_usage", "host_ram_usage"])
        .goal(GoalDecl::new("workload_balancing")
            .display_name("en", "Workload Balancing")
            .display_name("fr", "Équilibrage de charge")
            .efficacy_specification(workload_balance::WORKLOAD_BALANCING)),
    strategy workload_balance::WorkloadBalance = Entry::new("workload_balance", "1.0.0")
        .display_name("en", "Workload Balance Migration Strategy")
        .display_name("fr", "Stratégie de migration pour l'équilibrage de charge")
        .description("Moves one instance off the host whose cpu or ram workload is at or above the threshold, to the least loaded host that stays under it.")
        .parameters(workload_balance::SCHEMA)
        .planner("workload_stabilization")
        .metrics(&["instance_cpu_usage", "instance_ram_usage"])
        .goal(GoalDecl::new("workload_balancing")
            .display_name("en", "Workload Balancing")
            .display_name("fr", "Équilibrage de charge")
            .efficacy_specification(workload_balance::WORKLOAD_BALANCING)),
    strategy uniform_airflow::UniformAirflow = Entry::new("uniform_airflow", "1.0.0")
        .display_name("en", "Uniform airflow migration strategy")
        .display_name("fr", "Stratégie de migration pour un flux d'air uniforme")
        .description("Moves an instance, or all of them on a power-hungry host with a cool inlet, off the host with the most airflow to the hosts with the least.")
        .parameters(uniform_airflow::SCHEMA)
        .planner("weight")
        .metrics(&["host_airflow", "host_inlet_temp", "host_power"])
        .goal(GoalDecl::new("airflow_optimization")
            .display_name("en", "Airflow Optimization")
            .display_name("fr", "Optimisation du flux d'air")
            .efficacy_specification("[]")),
    strategy noisy_neighbor::NoisyNeighbor = Entry::new("noisy_neighbor", "1.0.0")
        .display_name("en", "Noisy Neighbor")
        .display_name("fr", "Voisin bruyant")
        .description("Moves, live, a low-priority instance whose L3 cache usage grew past the threshold while a higher-priority neighbour's dropped past it.")
        .parameters(noisy_neighbor::SCHEMA)
        .planner("weight")
        .metrics(&["instance_l3_cache_usage"])
        .goal(GoalDecl::new("noisy_neighbor")
            .display_name("en", "Noisy Neighbor")
            .display_name("fr", "Voisin bruyant")
            .efficacy_specification("[]")),
    strategy storage_capacity_balance::StorageCapacityBalance = Entry::new("storage_capacity_balance", "1.0.0")
        .display_name("en", "Storage Capacity Balance Strategy")
        .display_name("fr", "Stratégie d'équilibrage de la capacité de stockage")
        .description("Migrates volumes, biggest first, off storage pools used above volume_threshold to pools of the same type that stay under it.")
        .parameters(storage_capacity_balance::SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("workload_balancing")
            .display_name("en", "Workload Balancing")
            .display_name("fr", "Équilibrage de charge")
            .efficacy_specification(workload_balance::WORKLOAD_BALANCING)),
    strategy zone_migration::ZoneMigration = Entry::new("zone_migration", "1.0.0")
        .display_name("en", "Zone migration")
        .display_name("fr", "Migration de zone")
        .description("Empties the compute nodes and storage pools an operator names, to the destinations named, in priority order and within the per-audit caps.")
        .parameters(zone_migration::SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("hardware_maintenance")
            .display_name("en", "Hardware Maintenance")
            .display_name("fr", "Maintenance matérielle")
            .efficacy_specification(zone_migration::HARDWARE_MAINTENANCE)),
    strategy host_maintenance::HostMaintenance = Entry::new("host_maintenance", "1.0.0")
        .display_name("en", "Host Maintenance Strategy")
        .display_name("fr", "Stratégie de maintenance d'hôte")
        .description("Enables the backup node, disables the maintenance node and moves its instances off it (live, else cold, else stop), each where it fits in every dimension.")
        .parameters(host_maintenance::SCHEMA)
        .planner("weight")
        .goal(GoalDecl::new("cluster_maintaining")
            .display_name("en", "Cluster Maintaining")
            .display_name("fr", "Maintenance de cluster")
            .efficacy_specification("[]")),
    strategy node_resource_consolidation::NodeResourceConsolidation = Entry::new("node_resource_consolidation", "1.0.0")
        .display_name("en", "Node Resource Consolidation strategy")
        .display_name("fr", "Stratégie de consolidation des ressources des nœuds")
        .description("Disables the hosts it can empty whole (in every dimension) and migrates their instances, to destinations the scheduler (auto) or the strategy (specify) picks.")
        .parameters(node_resource_consolidation::SCHEMA)
        .planner("node_resource_consolidation")
        .goal(GoalDecl::new("server_consolidation")
            .display_name("en", "Server Consolidation")
            .display_name("fr", "Consolidation de serveurs")
            .efficacy_specification(basic::SERVER_CONSOLIDATION)),
}
