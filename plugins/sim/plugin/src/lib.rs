//! `sextant_sim`: the embedded default cloud. Its `sim` collector reads the
//! simulated cloud (seeded by `sextant sim init`) from a `sim.db` file or a
//! PostgreSQL database shared by every host; the host passes its location
//! as `{"sim_db": PATH or URL}`. A cloud never seeded is empty.
//! Its `sim.<action>` handlers change the cloud as Nova, Cinder and Ironic
//! would, honouring capacity and state rules, taking simulated time; each
//! predicts its effect on a cluster model with the same rules
//! (capability `predict.v1`).

mod handlers;
mod pool;

use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use sextant_sim_store::{SimDb, SimLocation};

#[derive(Default)]
struct SimCollector;

#[derive(Deserialize)]
struct CollectorConfig {
    /// A path or a `postgres://` URL.
    sim_db: String,
}

impl Collector for SimCollector {
    fn collect(&self, config: Value) -> Result<Value, PluginError> {
        let c: CollectorConfig = serde_json::from_value(config)
            .map_err(|e| PluginError::invalid_input(format!("sim collector config: {e}")))?;
        let at = SimLocation::parse(&c.sim_db);
        if at.file().is_some_and(|f| !f.exists()) {
            log_info(&format!(
                "the simulated cloud {at} was never seeded (sextant sim init): it is empty"
            ));
            return Ok(json!({}));
        }
        let db = SimDb::open(&at).map_err(|e| PluginError::execution_failed(e.to_string()))?;
        let model = db
            .collected_model()
            .map_err(|e| PluginError::execution_failed(e.to_string()))?;
        serde_json::to_value(model).map_err(|e| PluginError::internal(e.to_string()))
    }
}

const MIGRATE: &str = r#"{"type":"object","required":["migration_type","resource_id","source_node"],"properties":{
  "migration_type":{"type":"string","enum":["live","cold"]},"resource_id":{"type":"string"},
  "resource_name":{"type":"string"},"source_node":{"type":"string"},"destination_node":{"type":["string","null"]}}}"#;

export_plugin! {
    collector SimCollector = Entry::new("sim", "1.0.0")
        .display_name("en", "Simulated cloud")
        .description("Reads the simulated cloud (sim.db or PostgreSQL) as a cluster model."),
    predicting_handler handlers::Faulty<handlers::Migrate> = Entry::new("sim.migrate", "1.0.0")
        .description("Moves an instance in the simulated cloud; refused when the destination is full, disabled, down or off.")
        .parameters(MIGRATE)
        .revertible()
        .abortable(),
    predicting_handler handlers::Faulty<handlers::ServiceState> = Entry::new("sim.change_nova_service_state", "1.0.0")
        .description("Enables or disables a host's compute service in the simulated cloud.")
        .revertible()
        .idempotent(),
    predicting_handler handlers::Faulty<handlers::PowerState> = Entry::new("sim.change_node_power_state", "1.0.0")
        .description("Powers a simulated node on or off; off is refused while it hosts instances.")
        .revertible()
        .abortable()
        .idempotent(),
    predicting_handler handlers::Faulty<handlers::Resize> = Entry::new("sim.resize", "1.0.0")
        .description("Resizes a simulated instance to a flavor (m1.tiny … m1.xlarge) if its host has room."),
    predicting_handler handlers::Faulty<handlers::Stop> = Entry::new("sim.stop", "1.0.0")
        .description("Stops a simulated instance.")
        .revertible()
        .idempotent(),
    predicting_handler handlers::Faulty<handlers::Shelve> = Entry::new("sim.shelve", "1.0.0")
        .description("Shelves (offloads) a simulated instance.")
        .idempotent(),
    predicting_handler handlers::Faulty<handlers::Delete> = Entry::new("sim.delete", "1.0.0")
        .description("Deletes a simulated instance.")
        .idempotent(),
    predicting_handler handlers::Faulty<handlers::VolumeMigrate> = Entry::new("sim.volume_migrate", "1.0.0")
        .description("Moves a simulated volume to another pool with room, or retypes it."),
}
