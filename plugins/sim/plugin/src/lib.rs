//! `sextant_sim`: the embedded default cloud. Its `sim` collector reads the
//! simulated cloud from `sim.db` (seeded by `sextant sim init`); the host
//! passes the file's path as `{"sim_db": …}`. A cloud never seeded is empty.

use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use sextant_sim_store::SimDb;
use std::path::PathBuf;

#[derive(Default)]
struct SimCollector;

#[derive(Deserialize)]
struct CollectorConfig {
    sim_db: PathBuf,
}

impl Collector for SimCollector {
    fn collect(&self, config: Value) -> Result<Value, PluginError> {
        let c: CollectorConfig = serde_json::from_value(config)
            .map_err(|e| PluginError::invalid_input(format!("sim collector config: {e}")))?;
        if !c.sim_db.exists() {
            log_info(&format!(
                "the simulated cloud {} was never seeded (sextant sim init): it is empty",
                c.sim_db.display()
            ));
            return Ok(json!({}));
        }
        let db =
            SimDb::open(&c.sim_db).map_err(|e| PluginError::execution_failed(e.to_string()))?;
        let model = db
            .model()
            .map_err(|e| PluginError::execution_failed(e.to_string()))?;
        serde_json::to_value(model).map_err(|e| PluginError::internal(e.to_string()))
    }
}

export_plugin! {
    collector SimCollector = Entry::new("sim", "1.0.0")
        .display_name("en", "Simulated cloud")
        .description("Reads the simulated cloud (sim.db) as a cluster model."),
}
