//! `sextant_openstack`: the OpenStack driver. Its `openstack` collector
//! builds the cluster model from Nova and Placement; its `openstack.<action>`
//! handlers act through Nova's API (`openstack.volume_migrate` through
//! Cinder's). Selected with `collector: openstack` and
//! `drivers: [openstack]` in the config file; the cloud is the one
//! `clouds.yaml` and `OS_CLOUD` name ([`cloud`]).

mod cinder;
mod cloud;
mod collector;
mod handlers;
mod http;
mod nova;
mod placement;
mod session;
mod storage;

use sextant_plugin_api::prelude::*;

#[derive(Default)]
struct OpenStackCollector;

impl Collector for OpenStackCollector {
    fn collect(&self, _config: Value) -> Result<Value, PluginError> {
        let s = session::current()
            .map_err(|e| PluginError::execution_failed(format!("OpenStack: {e}")))?;
        // A configuration error names the cloud already; others do not.
        let model = collector::collect(&s).map_err(|e| match e {
            e @ http::ApiError::Config(_) => PluginError::execution_failed(e.to_string()),
            e => PluginError::execution_failed(format!("{}: {e}", s.describe())),
        })?;
        serde_json::to_value(model).map_err(|e| PluginError::internal(e.to_string()))
    }
}

const MIGRATE: &str = r#"{"type":"object","required":["migration_type","resource_id","source_node"],"properties":{
  "migration_type":{"type":"string","enum":["live","cold"]},"resource_id":{"type":"string"},
  "resource_name":{"type":"string"},"source_node":{"type":"string"},"destination_node":{"type":["string","null"]}}}"#;

const VOLUME_MIGRATE: &str = r#"{"type":"object","required":["resource_id","migration_type"],"properties":{
  "resource_id":{"type":"string"},"resource_name":{"type":"string"},
  "migration_type":{"type":"string","enum":["swap","retype","migrate"]},
  "destination_node":{"type":["string","null"]},"destination_type":{"type":["string","null"]},
  "source_node":{"type":["string","null"]}}}"#;

export_plugin! {
    collector OpenStackCollector = Entry::new("openstack", "1.0.0")
        .display_name("en", "OpenStack (Nova and Placement)")
        .description("Reads hypervisors, services, aggregates and every project's servers from Nova, capacities from Placement."),
    handler handlers::migrate::Migrate = Entry::new("openstack.migrate", "1.0.0")
        .description("Live-migrates (to a host, or where Nova's scheduler chooses) or cold-migrates and confirms a server through Nova.")
        .parameters(MIGRATE)
        .revertible()
        .abortable(),
    handler handlers::service_state::ServiceState = Entry::new("openstack.change_nova_service_state", "1.0.0")
        .description("Enables or disables a host's nova-compute service.")
        .revertible()
        .idempotent(),
    handler handlers::server_state::Stop = Entry::new("openstack.stop", "1.0.0")
        .description("Stops a server (revert starts it).")
        .revertible()
        .idempotent(),
    handler handlers::server_state::Shelve = Entry::new("openstack.shelve", "1.0.0")
        .description("Shelves a server.")
        .idempotent(),
    handler handlers::server_state::Delete = Entry::new("openstack.delete", "1.0.0")
        .description("Deletes a server.")
        .idempotent(),
    handler handlers::resize::Resize = Entry::new("openstack.resize", "1.0.0")
        .description("Resizes a server to a flavor (id or name) and confirms the resize."),
    handler handlers::volume_migrate::VolumeMigrate = Entry::new("openstack.volume_migrate", "1.0.0")
        .description("Migrates a volume to another Cinder backend or pool (os-migrate_volume), or retypes it (os-retype, migrating on demand).")
        .parameters(VOLUME_MIGRATE)
        .revertible(),
}
