//! What every strategy of the library needs: reading parameters and the
//! model, the clock, the migration guard, the migrate action, host room,
//! and the efficacy of the server consolidation goal.

use serde::de::DeserializeOwned;
use sextant_plugin_api::model::{ClusterModel, Instance, Node};
use sextant_plugin_api::prelude::*;

/// The strategy's parameters; `null` reads as `{}` so defaults apply.
pub fn params<T: DeserializeOwned>(strategy: &str, parameters: Value) -> Result<T, PluginError> {
    let v = if parameters.is_null() {
        json!({})
    } else {
        parameters
    };
    serde_json::from_value(v)
        .map_err(|e| PluginError::invalid_input(format!("{strategy} parameters: {e}")))
}

/// The cluster model the host passed.
pub fn model<'a>(model: impl Into<ModelInput<'a>>) -> Result<ClusterModel, PluginError> {
    let bad = |e: serde_json::Error| PluginError::invalid_input(format!("cluster model: {e}"));
    match model.into() {
        ModelInput::Value(v) => serde_json::from_value(v).map_err(bad),
        // Straight into the model's types: no `Value` in between.
        ModelInput::Json(text) => serde_json::from_str(text).map_err(bad),
    }
}

/// The cluster model as a strategy receives it: a [`Value`] through
/// `Strategy::execute`, JSON text through `Strategy::execute_json`.
pub enum ModelInput<'a> {
    /// Already parsed.
    Value(Value),
    /// JSON text.
    Json(&'a str),
}

impl From<Value> for ModelInput<'_> {
    fn from(v: Value) -> Self {
        ModelInput::Value(v)
    }
}

/// Implements `Strategy` for a type with
/// `fn run(&self, model: ModelInput<'_>, parameters: Value)`: both entry
/// points (the model as a `Value`, the model as text) end up in `run`.
macro_rules! strategy_on_model_input {
    ($t:ty) => {
        impl Strategy for $t {
            fn execute(&self, model: Value, parameters: Value) -> Result<Solution, PluginError> {
                self.run(model.into(), parameters)
            }

            fn execute_json(
                &self,
                model: &str,
                parameters: Value,
            ) -> Result<Solution, PluginError> {
                self.run(model.into(), parameters)
            }
        }
    };
}
pub(crate) use strategy_on_model_input;

impl<'a> From<&'a str> for ModelInput<'a> {
    fn from(s: &'a str) -> Self {
        ModelInput::Json(s)
    }
}

/// `now` when a test gives one, else the clock, in unix seconds.
pub fn now(given: Option<f64>) -> f64 {
    given.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

/// Whether `i` moved less than `interval` seconds before `now` (metadata
/// `last_migrated_at`, unix seconds): such an instance stays put.
pub fn recently_migrated(i: &Instance, now: f64, interval: f64) -> bool {
    i.metadata
        .get("last_migrated_at")
        .and_then(Value::as_f64)
        .is_some_and(|t| now - t < interval)
}

/// Whether a host takes new instances: enabled, up and powered on.
pub fn receives(n: &Node) -> bool {
    n.status == "enabled" && n.state == "up" && n.power_state == "on"
}

/// What the instances on `n` are allocated: (vcpus, memory MB, disk GB).
pub fn allocated(m: &ClusterModel, n: &Node) -> (f64, f64, f64) {
    m.instances
        .iter()
        .filter(|i| i.host == n.hostname)
        .fold((0.0, 0.0, 0.0), |u, i| {
            (
                u.0 + i.vcpus as f64,
                u.1 + i.memory as f64,
                u.2 + i.disk as f64,
            )
        })
}

/// Whether `i` fits on `n` beside `used`, within `n`'s allocatable capacity.
pub fn fits(n: &Node, used: (f64, f64, f64), i: &Instance) -> bool {
    let (cv, cm, cd) = n.capacity();
    used.0 + i.vcpus as f64 <= cv + 1e-9
        && used.1 + i.memory as f64 <= cm + 1e-9
        && used.2 + i.disk as f64 <= cd + 1e-9
}

/// Watcher's `add_action_migrate`: a `migrate` action for `i`, live or
/// cold, with hostnames; no destination lets the scheduler choose.
pub fn migrate(i: &Instance, live: bool, source: &str, destination: Option<&str>) -> Action {
    Action {
        id: format!("migrate-{}", i.name),
        action_type: "migrate".into(),
        resource_id: Some(i.uuid.clone()),
        input_parameters: json!({
            "migration_type": if live { "live" } else { "cold" },
            "source_node": source,
            "destination_node": destination,
            "resource_name": i.name,
        }),
    }
}

/// Disables `n`'s compute service for a consolidation (reason
/// `watcher_disabled`, so a later consolidation may enable it again).
pub fn disable(n: &Node) -> Action {
    Action {
        id: format!("disable-{}", n.hostname),
        action_type: "change_nova_service_state".into(),
        resource_id: Some(n.uuid.clone()),
        input_parameters: json!({
            "state": "disabled",
            "disabled_reason": "watcher_disabled",
            "resource_name": n.hostname,
        }),
    }
}

/// The population standard deviation.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// A solution for goal `server_consolidation` on `model`: Watcher's
/// indicators (enabled compute nodes, released nodes, migrations) and its
/// global efficacy `released_nodes_ratio`.
pub fn server_consolidation(
    actions: Vec<Action>,
    model: &ClusterModel,
    released: usize,
    migrations: usize,
) -> Solution {
    let enabled = model.nodes.iter().filter(|n| n.status == "enabled").count();
    Solution {
        actions,
        efficacy_indicators: json!([
            {"name": "compute_nodes_count", "description": "The total number of enabled compute nodes.", "unit": null, "value": enabled},
            {"name": "released_compute_nodes_count", "description": "The number of compute nodes to be released.", "unit": null, "value": released},
            {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "value": migrations},
        ]),
        extra: json!({"global_efficacy": [{
            "name": "released_nodes_ratio", "unit": "%",
            "value": if enabled == 0 { 0.0 } else { released as f64 / enabled as f64 * 100.0 },
        }]}),
    }
}

/// A solution for goal `workload_balancing`: Watcher's indicators and its
/// global efficacy `live_migrations_count` (migrations / instances, %).
pub fn workload_balancing(
    actions: Vec<Action>,
    instances: usize,
    sd_before: f64,
    sd_after: f64,
) -> Solution {
    let migrations = actions.len();
    Solution {
        actions,
        efficacy_indicators: json!([
            {"name": "instance_migrations_count", "description": "The number of VM migrations to be performed.", "unit": null, "value": migrations},
            {"name": "instances_count", "description": "The total number of audited instances in strategy.", "unit": null, "value": instances},
            {"name": "standard_deviation_after_audit", "description": "The value of resulted standard deviation.", "unit": null, "value": sd_after},
            {"name": "standard_deviation_before_audit", "description": "The value of original standard deviation.", "unit": null, "value": sd_before},
        ]),
        extra: json!({"global_efficacy": [{
            "name": "live_migrations_count", "unit": "%",
            "value": if instances == 0 { 0.0 } else { migrations as f64 / instances as f64 * 100.0 },
        }]}),
    }
}

/// How many next-best destinations a migration's candidates list.
pub const DESTINATION_CANDIDATES: usize = 12;

/// The solution with ranked next-best destinations for each of its
/// migrations that names a destination (`extra.candidates.<action
/// id>.destination_node`, see `sextant_plugin_api::sdk::CANDIDATES_KEY`):
/// hosts that are enabled, up and on, that no migration of the solution
/// leaves, that the solution does not disable or power off, other than the
/// migration's own source and destination, and that have room for the
/// instance in the state the whole solution leads to; the emptiest first
/// (after the solution: the least loaded in its tightest dimension), so
/// fallbacks go where they are least likely to meet, at most
/// [`DESTINATION_CANDIDATES`] each. The planner checks them again
/// where they could run (it keeps only the safe ones); a host that ignores
/// them plans as before.
pub fn with_destination_candidates(solution: Solution, model: &ClusterModel) -> Solution {
    use std::collections::{HashMap, HashSet};
    type Res = [f64; 3];
    let demand = |i: &Instance| -> Res { [i.vcpus as f64, i.memory as f64, i.disk as f64] };
    let instances: HashMap<&str, &Instance> = model
        .instances
        .iter()
        .map(|i| (i.uuid.as_str(), i))
        .collect();
    // Host → its usage once the whole solution ran.
    let mut used: HashMap<String, Res> = HashMap::new();
    let add = |used: &mut HashMap<String, Res>, h: &str, d: Res, sign: f64| {
        let u = used.entry(h.to_string()).or_default();
        *u = std::array::from_fn(|x| u[x] + sign * d[x]);
    };
    for i in &model.instances {
        add(&mut used, &i.host, demand(i), 1.0);
    }
    let mut excluded: HashSet<String> = HashSet::new();
    let mut moves: Vec<(String, &Instance, String)> = Vec::new();
    for a in &solution.actions {
        let p = &a.input_parameters;
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        match (a.action_type.as_str(), text("state")) {
            ("migrate", _) => {
                let Some(i) = a.resource_id.as_deref().and_then(|r| instances.get(r)) else {
                    continue;
                };
                if let Some(s) = text("source_node") {
                    excluded.insert(s.to_string());
                }
                if let Some(d) = text("destination_node") {
                    add(&mut used, &i.host, demand(i), -1.0);
                    add(&mut used, d, demand(i), 1.0);
                    moves.push((a.id.clone(), *i, d.to_string()));
                }
            }
            ("change_nova_service_state", Some("disabled"))
            | ("change_node_power_state", Some("off")) => {
                if let Some(h) = text("resource_name") {
                    excluded.insert(h.to_string());
                }
            }
            _ => {}
        }
    }
    let load = |n: &Node, u: Res| {
        let (v, m, d) = n.capacity();
        [u[0] / v.max(1e-9), u[1] / m.max(1e-9), u[2] / d.max(1e-9)]
            .into_iter()
            .fold(0.0, f64::max)
    };
    let mut ranked: Vec<(&Node, f64)> = model
        .nodes
        .iter()
        .filter(|n| {
            n.status == "enabled"
                && n.state == "up"
                && n.power_state == "on"
                && !excluded.contains(&n.hostname)
        })
        .map(|n| {
            let u = used.get(&n.hostname).copied().unwrap_or_default();
            (n, load(n, u))
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.hostname.cmp(&b.0.hostname)));
    let mut solution = solution;
    for (id, i, destination) in moves {
        let need = demand(i);
        let list: Vec<Value> = ranked
            .iter()
            .filter(|(n, _)| n.hostname != i.host && n.hostname != destination)
            .filter(|(n, _)| {
                let u = used.get(&n.hostname).copied().unwrap_or_default();
                let (v, m, d) = n.capacity();
                let cap = [v, m, d];
                (0..3).all(|x| u[x] + need[x] <= cap[x] + 1e-9)
            })
            .take(DESTINATION_CANDIDATES)
            .map(|(n, _)| Value::from(n.hostname.as_str()))
            .collect();
        solution = solution.with_candidates(&id, "destination_node", list);
    }
    solution
}

/// Random clusters and the checks every consolidation plan must pass, for
/// the strategies' property tests.
#[cfg(test)]
pub mod testgen {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// The `value` of the entry named `name` in a list of indicators
    /// (`[{name, value, …}]`); NaN when there is none.
    pub fn named_value(list: &Value, name: &str) -> f64 {
        list.as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == name))
            .and_then(|i| i["value"].as_f64())
            .unwrap_or(f64::NAN)
    }

    /// A generated cluster, with the `min_migration_interval` and clock to
    /// plan with.
    pub struct Cluster {
        pub model: ClusterModel,
        pub interval: f64,
        pub now: f64,
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn pick<T: Copy>(&mut self, v: &[T]) -> T {
            v[self.below(v.len() as u64) as usize]
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// A small random cluster: mixed host sizes, allocation ratios and
    /// reservations, some hosts disabled, down or off, some overcommitted,
    /// instances locked, excluded, in other states or recently migrated.
    pub fn cluster(seed: u64) -> Cluster {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let now = 100_000.0;
        let mut nodes = Vec::new();
        for k in 0..1 + r.below(10) {
            let status = if r.chance(90) { "enabled" } else { "disabled" };
            let reason = if r.chance(50) {
                "watcher_disabled"
            } else {
                "repair"
            };
            nodes.push(json!({
                "uuid": format!("n{k}"), "hostname": format!("h{k}"),
                "vcpus": r.pick(&[4, 8, 16, 32, 48]),
                "memory": r.pick(&[4096, 8192, 16384, 65536]),
                "disk": r.pick(&[40, 100, 500]),
                "vcpu_reserved": r.pick(&[0, 0, 1, 2]),
                "memory_mb_reserved": r.pick(&[0, 0, 512]),
                "disk_gb_reserved": r.pick(&[0, 0, 10]),
                "vcpu_ratio": r.pick(&[1.0, 1.0, 1.5, 4.0]),
                "memory_ratio": r.pick(&[1.0, 1.0, 1.5]),
                "disk_ratio": r.pick(&[1.0, 1.0, 1.2]),
                "status": status,
                "disabled_reason": if status == "disabled" { Some(reason) } else { None },
                "state": if r.chance(95) { "up" } else { "down" },
                "power_state": if r.chance(95) { "on" } else { "off" },
            }));
        }
        let model: ClusterModel =
            serde_json::from_value(json!({"nodes": nodes})).unwrap_or_default();
        let mut used: Vec<(f64, f64, f64)> = vec![(0.0, 0.0, 0.0); model.nodes.len()];
        let mut instances = Vec::new();
        for k in 0..r.below(30) {
            let (vcpus, memory, disk) = (
                r.pick(&[1u64, 2, 4, 8]),
                r.pick(&[512u64, 1024, 2048, 4096]),
                r.pick(&[1u64, 10, 20, 40]),
            );
            // Mostly where it fits, as a scheduler would place it; now and
            // then wherever (an overcommitted host) or on an unknown host.
            let mut host = r.below(model.nodes.len() as u64) as usize;
            for _ in 0..4 {
                let n = &model.nodes[host];
                let (cv, cm, cd) = n.capacity();
                let u = used[host];
                if u.0 + vcpus as f64 <= cv && u.1 + memory as f64 <= cm && u.2 + disk as f64 <= cd
                {
                    break;
                }
                host = r.below(model.nodes.len() as u64) as usize;
            }
            used[host].0 += vcpus as f64;
            used[host].1 += memory as f64;
            used[host].2 += disk as f64;
            let hostname = if r.chance(3) {
                "ghost".to_string()
            } else {
                model.nodes[host].hostname.clone()
            };
            let mut metadata = serde_json::Map::new();
            if r.chance(10) {
                metadata.insert("last_migrated_at".into(), json!(now - r.below(7200) as f64));
            }
            let mut metrics = serde_json::Map::new();
            if r.chance(80) {
                metrics.insert("instance_cpu_usage".into(), json!(r.below(101) as f64));
            }
            if r.chance(60) {
                metrics.insert(
                    "instance_ram_usage".into(),
                    json!(r.below(memory + 1) as f64),
                );
            }
            instances.push(json!({
                "uuid": format!("i{k}"), "name": format!("vm{k}"), "host": hostname,
                "vcpus": vcpus, "memory": memory, "disk": disk,
                "state": r.pick(&["active", "active", "active", "active", "stopped", "error", "paused"]),
                "locked": r.chance(5), "watcher_exclude": r.chance(5),
                "metadata": metadata, "metrics": metrics,
            }));
        }
        let mut model = model;
        model.instances = serde_json::from_value(Value::Array(instances)).unwrap_or_default();
        Cluster {
            model,
            interval: r.pick(&[0.0, 3600.0]),
            now,
        }
    }

    /// What a strategy's plan must respect.
    pub struct Rules<'a> {
        /// What a receiving host has room for, per dimension.
        pub cap: &'a dyn Fn(&Node) -> Vec<f64>,
        /// What an instance takes of it.
        pub need: &'a dyn Fn(&Instance) -> Vec<f64>,
        /// Which hosts may receive.
        pub may_receive: &'a dyn Fn(&Node) -> bool,
        /// Whether every host given from is released (emptied whole).
        pub whole: bool,
        /// Whether an empty host may receive.
        pub wake: bool,
    }

    /// Checks a plan: only movable instances move, each once and from where
    /// it is; released hosts are emptied whole; no host both gives and
    /// receives; and, for the given order of the migrations and many
    /// shuffled ones, after every prefix every host that has received is
    /// within capacity in every dimension.
    pub fn check_plan(
        c: &Cluster,
        moves: &[(&Instance, &str, &str)],
        released: &[&str],
        rules: &Rules,
    ) {
        let m = &c.model;
        let node: HashMap<&str, &Node> = m.nodes.iter().map(|n| (n.hostname.as_str(), n)).collect();
        let mut moved = HashSet::new();
        let from: HashSet<&str> = moves.iter().map(|x| x.1).collect();
        let to: HashSet<&str> = moves.iter().map(|x| x.2).collect();
        assert!(
            from.is_disjoint(&to),
            "a host gives and receives: {moves:?}"
        );
        for (i, f, t) in moves {
            assert!(moved.insert(i.uuid.as_str()), "{} moves twice", i.uuid);
            assert_eq!(i.host, *f, "{} moves from where it is not", i.uuid);
            assert!(
                matches!(i.state.as_str(), "active" | "stopped")
                    && !i.locked
                    && !i.watcher_exclude
                    && !recently_migrated(i, c.now, c.interval),
                "{} must stay put",
                i.uuid
            );
            let n = node.get(t).unwrap_or_else(|| panic!("unknown target {t}"));
            assert!((rules.may_receive)(n), "{t} may not receive");
            assert!(
                rules.wake || m.instances.iter().any(|x| x.host == *t),
                "{t} was empty and woken up"
            );
            assert!(!rules.whole || released.contains(f), "{f} half emptied");
        }
        for h in released {
            for i in m.instances.iter().filter(|i| i.host == *h) {
                assert!(moved.contains(i.uuid.as_str()), "{h} keeps {}", i.uuid);
            }
        }
        let mut order: Vec<usize> = (0..moves.len()).collect();
        let mut r = Rng(moves.len() as u64 + 7);
        for round in 0..20 {
            if round > 0 {
                for k in (1..order.len()).rev() {
                    order.swap(k, r.below(k as u64 + 1) as usize);
                }
            }
            let mut load: HashMap<&str, Vec<f64>> = HashMap::new();
            for i in &m.instances {
                let l = load.entry(i.host.as_str()).or_insert_with(|| vec![0.0; 6]);
                for (d, x) in (rules.need)(i).into_iter().enumerate() {
                    l[d] += x;
                }
            }
            let mut receivers: HashSet<&str> = HashSet::new();
            for &k in &order {
                let (i, f, t) = moves[k];
                for (d, x) in (rules.need)(i).into_iter().enumerate() {
                    load.entry(f).or_insert_with(|| vec![0.0; 6])[d] -= x;
                    load.entry(t).or_insert_with(|| vec![0.0; 6])[d] += x;
                }
                receivers.insert(t);
                for h in &receivers {
                    let cap = (rules.cap)(node[h]);
                    let l = &load[h];
                    for d in 0..cap.len() {
                        assert!(
                            l[d] <= cap[d] + 1e-6,
                            "{h} over capacity in {d}: {l:?} > {cap:?}"
                        );
                    }
                }
            }
        }
    }
}
