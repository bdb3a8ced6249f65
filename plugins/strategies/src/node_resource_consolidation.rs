//! `node_resource_consolidation` (goal `server_consolidation`): Watcher's
//! "Node Resource Consolidation strategy", planned by the
//! `node_resource_consolidation` planner (disables first, then each source
//! host's migrations as a chain).
//!
//! It chooses the hosts to empty as `basic` does (every dimension, hosts
//! emptied whole, never onto a host being emptied), then, as Watcher:
//! disables each of them (`change_nova_service_state` disabled, reason
//! `watcher_disabled`) and migrates its instances. With `host_choice: auto`
//! the destination is left to the scheduler, which cannot pick a disabled
//! host; with `specify` the strategy names it. Unlike Watcher's, it never
//! leaves a host half-emptied, so it never needs to re-enable one.

use crate::basic::consolidate;
use crate::common;
use serde::Deserialize;
use sextant_plugin_api::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "auto")]
    host_choice: String,
    #[serde(default)]
    min_migration_interval: f64,
    #[serde(default)]
    now: Option<f64>,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Default)]
pub struct NodeResourceConsolidation;

common::strategy_on_model_input!(NodeResourceConsolidation);

impl NodeResourceConsolidation {
    fn run(
        &self,
        model: common::ModelInput<'_>,
        parameters: Value,
    ) -> Result<Solution, PluginError> {
        let p: Params = common::params("node_resource_consolidation", parameters)?;
        let specify = match p.host_choice.as_str() {
            "auto" => false,
            "specify" => true,
            other => {
                return Err(PluginError::invalid_input(format!(
                    "node_resource_consolidation parameters: host_choice {other:?} is not auto or specify"
                )));
            }
        };
        let model = common::model(model)?;
        let now = common::now(p.now);
        let (moves, released) = consolidate(&model, 0, p.min_migration_interval, now);
        let mut actions = Vec::with_capacity(moves.len() + released.len());
        for node in &released {
            actions.push(common::disable(node));
        }
        for (i, from, to) in &moves {
            let to = specify.then_some(to.hostname.as_str());
            actions.push(common::migrate(i, i.state == "active", &from.hostname, to));
        }
        Ok(common::with_destination_candidates(
            common::server_consolidation(actions, &model, released.len(), moves.len()),
            &model,
        ))
    }
}

pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "host_choice": {"type": "string", "enum": ["auto", "specify"], "default": "auto",
      "description": "The way to select the server migration destination node. The value auto means that Nova scheduler selects the destination node, and specify means the strategy specifies the destination."},
    "min_migration_interval": {"type": "number", "minimum": 0, "default": 0,
      "description": "Seconds an instance stays put after a migration (metadata last_migrated_at)."},
    "now": {"type": "number", "description": "The clock in unix seconds, for tests; now when absent."}
  },
  "additionalProperties": false
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Value {
        json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 8192, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 4, "memory": 4096, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h2", "vcpus": 2, "memory": 2048, "disk": 10},
                {"uuid": "i3", "name": "c", "host": "h3", "vcpus": 6, "memory": 6144, "disk": 10}
            ]
        })
    }

    #[test]
    fn disables_the_hosts_it_empties_then_migrates_auto_or_specified() {
        let s = NodeResourceConsolidation
            .execute(model(), json!({}))
            .expect("plan");
        let ids: Vec<&str> = s.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            ["disable-h2", "migrate-b"],
            "b (2) fits beside c (6) on h3; a (4) fits nowhere after"
        );
        assert!(
            s.actions[1].input_parameters["destination_node"].is_null(),
            "auto: the scheduler picks"
        );
        let s = NodeResourceConsolidation
            .execute(model(), json!({"host_choice": "specify"}))
            .expect("plan");
        assert_eq!(s.actions[1].input_parameters["destination_node"], "h3");
        let ratio = s.extra["global_efficacy"][0]["value"]
            .as_f64()
            .unwrap_or(0.0);
        assert!((ratio - 100.0 / 3.0).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn does_nothing_on_a_packed_cluster_and_refuses_bad_parameters() {
        let mut m = model();
        m["instances"][1]["vcpus"] = json!(5);
        m["instances"][0]["vcpus"] = json!(5);
        let s = NodeResourceConsolidation
            .execute(m, json!({}))
            .expect("plan");
        assert!(s.actions.is_empty(), "{:?}", s.actions);
        assert!(
            NodeResourceConsolidation
                .execute(model(), json!({"host_choice": "random"}))
                .is_err()
        );
    }
}
