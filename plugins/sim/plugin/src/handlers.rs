//! The `sim.*` action handlers: Watcher's actions against the simulated
//! cloud, with the same pre-conditions (skip when the resource is gone or
//! already in the target state, fail when the target cannot take it) and
//! simulated time (the action type's estimated duration × the cloud's time
//! scale, abortable). Each also predicts its effect on a cluster model
//! ([`Predict`]) with the very rules ([`sextant_sim_store::rules`]) its
//! `execute` applies to the stored cloud.

use serde::Deserialize;
use sextant_plugin_api::prediction::PredictedModel;
use sextant_plugin_api::prelude::*;
use sextant_sim_store::SimDb;
use sextant_sim_store::faults::ActionCall;
use sextant_sim_store::ops::OpError;
use sextant_sim_store::rules;
use std::time::Duration;

fn db(ctx: &Context) -> Result<crate::pool::Pooled, PluginError> {
    let at = ctx.action["config"]["sim"]["sim_db"]
        .as_str()
        .ok_or_else(|| {
            PluginError::invalid_input("the host gave no sim_db location in the action context")
        })?;
    crate::pool::open(at).map_err(|e| PluginError::execution_failed(e.to_string()))
}

fn op_error(e: OpError) -> PluginError {
    match e {
        OpError::NotFound(m) | OpError::AlreadyDone(m) => PluginError::skipped(m),
        OpError::Refused(m) => PluginError::precondition_failed(m),
        OpError::Db(e) => PluginError::execution_failed(e.to_string()),
    }
}

fn exec_error(e: OpError) -> PluginError {
    match e {
        OpError::Db(e) => PluginError::execution_failed(e.to_string()),
        other => PluginError::execution_failed(other.to_string()),
    }
}

/// The longest simulated time one action takes: 366 days.
const MAX_SIMULATED_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

/// Waits the simulated time of the action (its estimated duration × the
/// time scale), then moves the simulated clock to its start plus its
/// estimated duration, firing the host faults due by then; false when
/// aborted.
fn take_time(ctx: &Context, db: &mut SimDb) -> bool {
    let base = ctx.action["estimated_duration_seconds"]
        .as_f64()
        .filter(|b| b.is_finite() && *b >= 0.0)
        .unwrap_or(0.0)
        .min(MAX_SIMULATED_SECONDS);
    let start = db.clock().unwrap_or(0.0);
    let scale = db.time_scale().unwrap_or(1.0);
    // Bounded: a sim.db written before `--time-scale` was bounded, or a
    // NaN, must not panic `from_secs_f64`.
    let secs = base * scale;
    let secs = if secs.is_nan() {
        0.0
    } else {
        secs.clamp(0.0, MAX_SIMULATED_SECONDS)
    };
    let waited = secs == 0.0 || ctx.abort_signal().sleep(Duration::from_secs_f64(secs));
    if waited {
        // A failure to move the clock shows in the operation that follows.
        let _ = db.advance_clock(start + base);
    }
    waited
}

fn aborted(what: &str) -> PluginError {
    PluginError::aborted(format!("{what} aborted"))
}

/// A handler of the simulated cloud with its run's injected faults: an
/// action that an action fault or the random draw picks fails in `execute`
/// before anything changes (see [`sextant_sim_store::faults`]).
pub struct Faulty<H> {
    inner: H,
    parameters: Value,
}

impl<'de, H: serde::de::DeserializeOwned> Deserialize<'de> for Faulty<H> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parameters = Value::deserialize(d)?;
        let inner = H::deserialize(&parameters).map_err(serde::de::Error::custom)?;
        Ok(Faulty { inner, parameters })
    }
}

impl<H: ActionHandler> ActionHandler for Faulty<H> {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        self.inner.pre_condition(ctx)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let call = ActionCall {
            name: ctx.action["name"].as_str().unwrap_or(""),
            action_type: ctx.action["action_type"].as_str().unwrap_or(""),
            parameters: &self.parameters,
        };
        if let Some(why) = db(ctx)?
            .injected_failure(&call)
            .map_err(|e| PluginError::execution_failed(e.to_string()))?
        {
            return Err(PluginError::execution_failed(why));
        }
        self.inner.execute(ctx)
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        self.inner.post_condition(ctx)
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        self.inner.revert(ctx)
    }

    fn abort(&self, ctx: &Context) -> Result<(), PluginError> {
        self.inner.abort(ctx)
    }
}

impl<H: Predict> Predict for Faulty<H> {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        self.inner.predict(m)
    }
}

#[derive(Deserialize)]
pub struct Migrate {
    migration_type: String,
    resource_id: String,
    source_node: String,
    #[serde(default)]
    destination_node: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    resource_name: Option<String>,
}

impl ActionHandler for Migrate {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        db(ctx)?
            .check_migrate(
                &self.resource_id,
                &self.source_node,
                self.destination_node.as_deref(),
                self.migration_type == "live",
            )
            .map(|_| ())
            .map_err(op_error)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        let dest = db
            .check_migrate(
                &self.resource_id,
                &self.source_node,
                self.destination_node.as_deref(),
                self.migration_type == "live",
            )
            .map_err(exec_error)?;
        if !take_time(ctx, &mut db) {
            return Err(aborted("live migration"));
        }
        db.migrate(&self.resource_id, &self.source_node, &dest)
            .map_err(exec_error)?;
        Ok(json!({"destination_node": dest}))
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let i = db(ctx)?.instance(&self.resource_id).map_err(exec_error)?;
        match (i, &self.destination_node) {
            (Some(i), Some(d)) if &i.host == d => Ok(()),
            (Some(i), None) if i.host != self.source_node => Ok(()),
            (Some(i), _) => Err(PluginError::execution_failed(format!(
                "instance {} is on {}, not where it was sent",
                self.resource_id, i.host
            ))),
            (None, _) => Err(PluginError::execution_failed(format!(
                "instance {} is gone",
                self.resource_id
            ))),
        }
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        let mut db = db(ctx)?;
        let Some(i) = db.instance(&self.resource_id).map_err(exec_error)? else {
            return Ok(());
        };
        if i.host == self.source_node {
            return Ok(());
        }
        db.migrate_back(&self.resource_id, &i.host, &self.source_node)
            .map_err(exec_error)
    }
}

#[derive(Deserialize)]
pub struct ServiceState {
    #[allow(dead_code)]
    resource_id: String,
    #[serde(default)]
    resource_name: Option<String>,
    state: String,
    #[serde(default)]
    disabled_reason: Option<String>,
}

impl ServiceState {
    fn host(&self) -> &str {
        self.resource_name.as_deref().unwrap_or(&self.resource_id)
    }
    fn target(&self) -> Result<&'static str, PluginError> {
        match self.state.as_str() {
            "enabled" => Ok("enabled"),
            "disabled" => Ok("disabled"),
            other => Err(PluginError::invalid_input(format!(
                "The target state is not defined: {other}"
            ))),
        }
    }
}

impl ActionHandler for ServiceState {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let target = self.target()?;
        match db(ctx)?.node(self.host()).map_err(exec_error)? {
            None => Err(PluginError::skipped(format!(
                "No nova-compute service on host {}",
                self.host()
            ))),
            Some(n) if n.status == target => Err(PluginError::skipped(format!(
                "nova-compute on {} is already {target}",
                self.host()
            ))),
            Some(_) => Ok(()),
        }
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        let _ = take_time(ctx, &mut db);
        db.set_service(self.host(), self.target()?, self.disabled_reason.as_deref())
            .map_err(exec_error)?;
        Ok(json!({"host": self.host(), "status": self.state}))
    }

    fn post_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        match db(ctx)?.node(self.host()).map_err(exec_error)? {
            Some(n) if n.status == self.state => Ok(()),
            _ => Err(PluginError::execution_failed(format!(
                "nova-compute on {} is not {}",
                self.host(),
                self.state
            ))),
        }
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        let back = if self.target()? == "disabled" {
            "enabled"
        } else {
            "disabled"
        };
        match db(ctx)?.set_service(self.host(), back, None) {
            Ok(()) | Err(OpError::AlreadyDone(_)) => Ok(()),
            Err(e) => Err(exec_error(e)),
        }
    }
}

#[derive(Deserialize)]
pub struct PowerState {
    resource_id: String,
    #[serde(default)]
    resource_name: Option<String>,
    state: String,
}

impl PowerState {
    fn id(&self) -> &str {
        self.resource_name.as_deref().unwrap_or(&self.resource_id)
    }
}

impl ActionHandler for PowerState {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        db(ctx)?
            .set_power(self.id(), &self.state, true)
            .map_err(op_error)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        if !take_time(ctx, &mut db) {
            return Err(aborted("power change"));
        }
        db.set_power(self.id(), &self.state, false)
            .map_err(exec_error)?;
        Ok(json!({"node": self.id(), "power_state": self.state}))
    }

    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        let back = if self.state == "off" { "on" } else { "off" };
        match db(ctx)?.set_power(self.id(), back, false) {
            Ok(()) | Err(OpError::AlreadyDone(_)) => Ok(()),
            Err(e) => Err(exec_error(e)),
        }
    }
}

#[derive(Deserialize)]
pub struct Resize {
    resource_id: String,
    flavor: String,
}

impl ActionHandler for Resize {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        db(ctx)?
            .resize(&self.resource_id, &self.flavor, true)
            .map_err(op_error)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        let _ = take_time(ctx, &mut db);
        db.resize(&self.resource_id, &self.flavor, false)
            .map_err(exec_error)?;
        Ok(json!({"flavor": self.flavor}))
    }
}

#[derive(Deserialize)]
pub struct Instance {
    resource_id: String,
}

/// `stop`, `shelve`, `delete`: one struct, the entry decides.
fn instance_state(
    ctx: &Context,
    uuid: &str,
    to: &str,
    skip_if: &[&str],
) -> Result<Value, PluginError> {
    let mut db = db(ctx)?;
    let _ = take_time(ctx, &mut db);
    db.set_instance_state(uuid, to, skip_if)
        .map_err(exec_error)?;
    Ok(json!({"state": to}))
}

fn instance_pre(ctx: &Context, uuid: &str, skip_if: &[&str]) -> Result<(), PluginError> {
    match db(ctx)?.instance(uuid).map_err(exec_error)? {
        None => Err(PluginError::skipped(format!("Instance {uuid} not found"))),
        Some(i) if skip_if.contains(&i.state.as_str()) => Err(PluginError::skipped(format!(
            "Instance {uuid} is already {}",
            i.state
        ))),
        Some(_) => Ok(()),
    }
}

pub struct Stop(Instance);
pub struct Shelve(Instance);
pub struct Delete(Instance);

macro_rules! from_instance {
    ($t:ident) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Instance::deserialize(d).map($t)
            }
        }
    };
}
from_instance!(Stop);
from_instance!(Shelve);
from_instance!(Delete);

const STOPPED: &[&str] = &["stopped"];
const SHELVED: &[&str] = &["shelved", "shelved_offloaded"];

impl ActionHandler for Stop {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        instance_pre(ctx, &self.0.resource_id, STOPPED)
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        instance_state(ctx, &self.0.resource_id, "stopped", STOPPED)
    }
    fn revert(&self, ctx: &Context) -> Result<(), PluginError> {
        match db(ctx)?.set_instance_state(&self.0.resource_id, "active", &["active"]) {
            Ok(()) | Err(OpError::AlreadyDone(_)) => Ok(()),
            Err(e) => Err(exec_error(e)),
        }
    }
}

impl ActionHandler for Shelve {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        instance_pre(ctx, &self.0.resource_id, SHELVED)
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        instance_state(ctx, &self.0.resource_id, "shelved_offloaded", SHELVED)
    }
}

impl ActionHandler for Delete {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        instance_pre(ctx, &self.0.resource_id, &[])
    }
    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        let _ = take_time(ctx, &mut db);
        match db.delete_instance(&self.0.resource_id) {
            Ok(()) | Err(OpError::NotFound(_)) => Ok(json!({"deleted": self.0.resource_id})),
            Err(e) => Err(exec_error(e)),
        }
    }
}

#[derive(Deserialize)]
pub struct VolumeMigrate {
    resource_id: String,
    migration_type: String,
    #[serde(default)]
    destination_node: Option<String>,
    #[serde(default)]
    destination_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    resource_name: Option<String>,
}

impl VolumeMigrate {
    fn target(&self) -> (Option<&str>, Option<&str>) {
        match self.migration_type.as_str() {
            "retype" => (None, self.destination_type.as_deref()),
            _ => (self.destination_node.as_deref(), None),
        }
    }
}

impl ActionHandler for VolumeMigrate {
    fn pre_condition(&self, ctx: &Context) -> Result<(), PluginError> {
        let (p, t) = self.target();
        if p.is_none() && t.is_none() {
            return Err(PluginError::invalid_input(
                "volume_migrate needs destination_node or destination_type",
            ));
        }
        db(ctx)?
            .volume_migrate(&self.resource_id, p, t, true)
            .map_err(op_error)
    }

    fn execute(&self, ctx: &Context) -> Result<Value, PluginError> {
        let mut db = db(ctx)?;
        let _ = take_time(ctx, &mut db);
        let (p, t) = self.target();
        db.volume_migrate(&self.resource_id, p, t, false)
            .map_err(exec_error)?;
        Ok(json!({"pool": p, "volume_type": t}))
    }
}

// --- predictions: the same rules, applied to the predicted model ---

impl Predict for Migrate {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        let dest = rules::check_migrate(
            m,
            &self.resource_id,
            &self.source_node,
            self.destination_node.as_deref(),
            self.migration_type == "live",
        )
        .map_err(op_error)?;
        rules::migrate(m, &self.resource_id, &self.source_node, &dest).map_err(op_error)
    }
}

impl Predict for ServiceState {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::set_service(
            m,
            self.host(),
            self.target()?,
            self.disabled_reason.as_deref(),
        )
        .map_err(op_error)
    }
}

impl Predict for PowerState {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::set_power(m, self.id(), &self.state, false).map_err(op_error)
    }
}

impl Predict for Resize {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::resize(m, &self.resource_id, &self.flavor, false).map_err(op_error)
    }
}

impl Predict for Stop {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::set_instance_state(m, &self.0.resource_id, "stopped", STOPPED).map_err(op_error)
    }
}

impl Predict for Shelve {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::set_instance_state(m, &self.0.resource_id, "shelved_offloaded", SHELVED)
            .map_err(op_error)
    }
}

impl Predict for Delete {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        rules::delete_instance(m, &self.0.resource_id).map_err(op_error)
    }
}

impl Predict for VolumeMigrate {
    fn predict(&self, m: &mut PredictedModel) -> Result<(), PluginError> {
        let (p, t) = self.target();
        if p.is_none() && t.is_none() {
            return Err(PluginError::invalid_input(
                "volume_migrate needs destination_node or destination_type",
            ));
        }
        rules::volume_migrate(m, &self.resource_id, p, t, false).map_err(op_error)
    }
}
