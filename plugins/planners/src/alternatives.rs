//! Alternatives and evacuation flows made by the `rules` planner
//! (`planners.v2`, docs/flows.md "Planner-made alternatives").
//!
//! The strategy ranks candidates for some actions' parameters (a
//! migration's next-best destinations, context key `candidates`); the
//! planner keeps, in rank order, at most `per_action` of them per action,
//! and only those that are safe where they could run:
//!
//! * **hosts**: never a host the plan is emptying or taking out of service
//!   (the source of any migration of the plan, a host the plan disables or
//!   powers off), never the primary's own source or destination, and only a
//!   host that is enabled, up and on in the predicted state at the
//!   primary's point (the model with the plan's actions before it applied);
//! * **capacity**: in the plan's predicted state (the model with every
//!   migration of the plan done), at every point from the primary's on,
//!   whatever order the plan's other actions run in, the destination has
//!   room for the instance in every dimension (vcpus, memory, disk, with
//!   reservations and ratios, as Nova and the simulated cloud count them):
//!   its usage at the start plus every migration of the plan that names it,
//!   departures never credited, plus the instance, fits its capacity. So an
//!   alternative never takes room a migration of the plan counts on while
//!   that migration's own failure is the only one; when several fail and
//!   their alternatives meet on one host, the cloud's own capacity check
//!   refuses what does not fit (no host is ever over capacity) and the next
//!   alternative runs;
//! * **rules**: the alternative waits for the primary's parents and its
//!   dependents wait for the group, so every ordering rule of the policy
//!   that would relate the alternative to another action must already
//!   hold for the primary: an action the rule puts before it is an
//!   ancestor of the primary, an action it puts after it a descendant.
//!
//! Only migrations' `destination_node` candidates can be checked this way;
//! candidates for anything else are dropped, with the reason, in
//! `extra.alternatives.dropped`.
//!
//! Evacuation flows: for every host the plan empties (it migrates every
//! instance the model has on it), one flow `evacuate-<host>` with the
//! host's disable, its migrations and its power-off, failing as the policy
//! says (`evacuation_flows`).

use crate::rules::{Item, Keys, Rule, matches};
use serde::Deserialize;
use sextant_plugin_api::model::{ClusterModel, Node};
use sextant_plugin_api::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the policy asks for (`alternatives:` in a policy).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlternativesConfig {
    /// At most this many alternatives per action.
    #[serde(default)]
    pub per_action: u32,
    /// One flow per host the plan empties, failing this way.
    #[serde(default)]
    pub evacuation_flows: Option<FlowOnFailure>,
}

/// The most alternatives per action a config may ask for.
pub const MAX_PER_ACTION: u32 = 5;

type Res = [f64; 3];

fn capacity(n: &Node) -> Res {
    let (v, m, d) = n.capacity();
    [v, m, d]
}

fn fits(used: Res, need: Res, cap: Res) -> bool {
    (0..3).all(|d| used[d] + need[d] <= cap[d] + 1e-9)
}

/// One migration of the plan, as the checks read it.
struct Move<'a> {
    instance: &'a str,
    source: Option<&'a str>,
    destination: Option<&'a str>,
}

fn migration(a: &Action) -> Option<Move<'_>> {
    if a.action_type != "migrate" {
        return None;
    }
    let p = &a.input_parameters;
    Some(Move {
        instance: p.get("resource_id").and_then(Value::as_str)?,
        source: p.get("source_node").and_then(Value::as_str),
        destination: p.get("destination_node").and_then(Value::as_str),
    })
}

/// The host an action takes out of service: a disable or a power-off.
fn host_taken_out(a: &Action) -> Option<&str> {
    let p = &a.input_parameters;
    let state = p.get("state").and_then(Value::as_str);
    match (a.action_type.as_str(), state) {
        ("change_nova_service_state", Some("disabled"))
        | ("change_node_power_state", Some("off")) => {
            p.get("resource_name").and_then(Value::as_str)
        }
        _ => None,
    }
}

/// The plan's predicted cluster state: per host, its state at the start
/// (enabled, up, on) and its worst-case usage (the model's instances plus
/// every arrival the plan's migrations make).
struct Predicted<'m> {
    nodes: HashMap<&'m str, &'m Node>,
    /// Instance → its demand.
    demand: HashMap<&'m str, Res>,
    /// Host → usage at the start plus every arrival of the plan.
    reserved: HashMap<&'m str, Res>,
    /// Host → the instances it holds at the start.
    holds: HashMap<&'m str, HashSet<&'m str>>,
    /// Host → what the alternatives kept so far that name it would use.
    promised: HashMap<String, Res>,
}

impl<'m> Predicted<'m> {
    fn new(model: &'m ClusterModel) -> Self {
        let nodes: HashMap<&str, &Node> = model
            .nodes
            .iter()
            .map(|n| (n.hostname.as_str(), n))
            .collect();
        let mut reserved: HashMap<&str, Res> = HashMap::new();
        let mut holds: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut demand = HashMap::new();
        for i in &model.instances {
            let d = [i.vcpus as f64, i.memory as f64, i.disk as f64];
            demand.insert(i.uuid.as_str(), d);
            let r = reserved.entry(i.host.as_str()).or_default();
            *r = std::array::from_fn(|k| r[k] + d[k]);
            holds
                .entry(i.host.as_str())
                .or_default()
                .insert(i.uuid.as_str());
        }
        Self {
            nodes,
            demand,
            reserved,
            holds,
            promised: HashMap::new(),
        }
    }

    /// The share of `host`'s room in the predicted state that the
    /// alternatives promised to it so far, with `instance`, would use (its
    /// tightest dimension).
    fn promised_share(&self, host: &str, instance: &str) -> f64 {
        let (Some(node), Some(need)) = (self.nodes.get(host), self.demand.get(instance)) else {
            return f64::INFINITY;
        };
        let cap = capacity(node);
        let used = self.reserved.get(host).copied().unwrap_or_default();
        let promised = self.promised.get(host).copied().unwrap_or_default();
        (0..3)
            .map(|d| {
                let room = (cap[d] - used[d]).max(1e-9);
                (promised[d] + need[d]) / room
            })
            .fold(0.0, f64::max)
    }

    /// An alternative to `host` was kept for `instance`.
    fn promise(&mut self, host: &str, instance: &str) {
        if let Some(&need) = self.demand.get(instance) {
            let p = self.promised.entry(host.to_string()).or_default();
            *p = std::array::from_fn(|d| p[d] + need[d]);
        }
    }

    fn reserve(&mut self, host: &'m str, need: Res) {
        let r = self.reserved.entry(host).or_default();
        *r = std::array::from_fn(|k| r[k] + need[k]);
    }
}

/// Whether action `i` can reach action `j` along the edges.
fn reach(succ: &[Vec<usize>], from: usize) -> Vec<bool> {
    let mut seen = vec![false; succ.len()];
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        for &y in &succ[x] {
            if !seen[y] {
                seen[y] = true;
                stack.push(y);
            }
        }
    }
    seen
}

/// Why a candidate was not kept.
#[derive(Debug, PartialEq)]
pub struct Dropped {
    pub action: String,
    pub value: Value,
    pub why: String,
}

/// The planner's flows and alternatives, and what it dropped.
#[derive(Debug, Default)]
pub struct Made {
    pub alternatives: Vec<PlannedAlternative>,
    pub flows: Vec<PlannedFlow>,
    pub dropped: Vec<Dropped>,
}

/// Makes the alternatives and flows of a plan: `actions` as given,
/// `edges` the plan's DAG, `rules` the policy's ordering rules.
pub fn make<'a>(
    actions: &'a [Action],
    edges: &[(usize, usize)],
    rules: &[Rule],
    config: &AlternativesConfig,
    model: Option<&'a ClusterModel>,
    candidates: &Value,
) -> Made {
    let mut made = Made::default();
    let mut dropped: Vec<Dropped> = Vec::new();
    let n = actions.len();
    let mut succ = vec![Vec::new(); n];
    let mut pred = vec![Vec::new(); n];
    for &(p, c) in edges {
        succ[p].push(c);
        pred[c].push(p);
    }
    if let (Some(on_failure), Some(model)) = (config.evacuation_flows, model) {
        made.flows = evacuation_flows(actions, model, on_failure);
    }
    let per_action = config.per_action.min(MAX_PER_ACTION) as usize;
    let Some(by_action) = candidates.as_object().filter(|_| per_action > 0) else {
        return made;
    };
    let mut drop_ = |action: &str, value: &Value, why: String| {
        dropped.push(Dropped {
            action: action.to_string(),
            value: value.clone(),
            why,
        })
    };
    let Some(model) = model else {
        for (id, _) in by_action {
            drop_(
                id,
                &Value::Null,
                "the planner was given no cluster model".into(),
            );
        }
        made.dropped = dropped;
        return made;
    };
    let mut predicted = Predicted::new(model);
    // Hosts the plan empties or takes out of service; and every arrival
    // the plan's migrations may make.
    let mut excluded: HashSet<&str> = HashSet::new();
    for a in actions {
        if let Some(m) = migration(a) {
            if let Some(s) = m.source {
                excluded.insert(s);
            }
            if let (Some(d), Some(&need)) = (m.destination, predicted.demand.get(m.instance)) {
                predicted.reserve(d, need);
            }
        }
        if let Some(h) = host_taken_out(a) {
            excluded.insert(h);
        }
    }
    let keys = Keys::of(rules);
    let items: Vec<Item<'_>> = actions.iter().map(|a| keys.item(a)).collect();
    let index: HashMap<&str, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let mut ids: HashSet<String> = actions.iter().map(|a| a.id.clone()).collect();
    for (id, params) in by_action {
        let Some(&p) = index.get(id.as_str()) else {
            drop_(id, &Value::Null, "no action of the plan has this id".into());
            continue;
        };
        let primary = &actions[p];
        let Some(params) = params.as_object() else {
            continue;
        };
        let mut kept = 0;
        for (param, values) in params {
            let values = values.as_array().map(Vec::as_slice).unwrap_or(&[]);
            let Some(mv) = migration(primary).filter(|_| param == "destination_node") else {
                for v in values {
                    drop_(
                        id,
                        v,
                        format!(
                            "the planner checks only migrations' destination_node, not {} {param}",
                            primary.action_type
                        ),
                    );
                }
                continue;
            };
            let descendants = reach(&succ, p);
            let ancestors = reach(&pred, p);
            // The safe candidates, then the least promised first: a host's
            // room is shared by the alternatives that name it (only one
            // failure is predicted at a time), so they are spread over the
            // hosts with room rather than piled on the first one.
            let mut safe: Vec<(usize, &str, f64)> = Vec::new();
            for (rank, v) in values.iter().enumerate() {
                let Some(host) = v.as_str() else {
                    drop_(id, v, "a destination is a hostname".into());
                    continue;
                };
                let why = check_destination(&predicted, &excluded, &mv, host).or_else(|| {
                    let mut alt = primary.clone();
                    alt.input_parameters[param.as_str()] = v.clone();
                    check_rules(&keys, rules, &items, &alt, p, &ancestors, &descendants)
                });
                match why {
                    Some(why) => drop_(id, v, why),
                    None => safe.push((rank, host, predicted.promised_share(host, mv.instance))),
                }
            }
            safe.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
            for &(rank, host, _) in safe.iter().skip(per_action.saturating_sub(kept)) {
                drop_(
                    id,
                    &values[rank],
                    format!(
                        "{per_action} safe alternatives with more room were kept before {host}"
                    ),
                );
            }
            for (_, host, _) in safe.into_iter().take(per_action.saturating_sub(kept)) {
                predicted.promise(host, mv.instance);
                kept += 1;
                let mut alt = primary.clone();
                alt.input_parameters[param.as_str()] = Value::from(host);
                let mut alt_id = format!("{}-alt{kept}", primary.id);
                while ids.contains(&alt_id) {
                    alt_id.push('x');
                }
                ids.insert(alt_id.clone());
                alt.id = alt_id;
                made.alternatives.push(PlannedAlternative {
                    primary: p,
                    action: alt,
                });
            }
        }
    }
    made.dropped = dropped;
    made
}

/// Why `host` cannot take the instance of `mv`, if it cannot.
fn check_destination(
    predicted: &Predicted<'_>,
    excluded: &HashSet<&str>,
    mv: &Move<'_>,
    host: &str,
) -> Option<String> {
    if Some(host) == mv.destination || Some(host) == mv.source {
        return Some(format!(
            "{host} is the migration's own source or destination"
        ));
    }
    if excluded.contains(host) {
        return Some(format!(
            "the plan empties {host} or takes it out of service"
        ));
    }
    let Some(node) = predicted.nodes.get(host) else {
        return Some(format!("no host {host} in the cluster model"));
    };
    if node.status != "enabled" || node.state != "up" || node.power_state != "on" {
        return Some(format!(
            "{host} is {}, {}, {} in the predicted state",
            node.status, node.state, node.power_state
        ));
    }
    if predicted
        .holds
        .get(host)
        .is_some_and(|h| h.contains(mv.instance))
    {
        return Some(format!("the instance is already on {host}"));
    }
    let Some(&need) = predicted.demand.get(mv.instance) else {
        return Some(format!("no instance {} in the cluster model", mv.instance));
    };
    let used = predicted.reserved.get(host).copied().unwrap_or_default();
    if !fits(used, need, capacity(node)) {
        return Some(format!(
            "{host} could be over capacity: it holds or may receive {used:?} of {:?} (vcpus, memory, disk), and the instance needs {need:?}",
            capacity(node)
        ));
    }
    None
}

/// Why the alternative `alt` of action `p` would break an ordering rule,
/// if it would: every rule relating it to another action must hold for the
/// primary already (ancestors before it, descendants after the group).
fn check_rules(
    keys: &Keys,
    rules: &[Rule],
    items: &[Item<'_>],
    alt: &Action,
    p: usize,
    ancestors: &[bool],
    descendants: &[bool],
) -> Option<String> {
    let a = keys.item(alt);
    for rule in rules {
        let equal = |f: &Item<'_>, t: &Item<'_>| match &rule.when_equal {
            None => true,
            Some(w) => match (keys.key(f, &w.first), keys.key(t, &w.then)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        };
        if matches(keys, &a, &rule.then) {
            for (i, f) in items.iter().enumerate() {
                if i != p && matches(keys, f, &rule.first) && equal(f, &a) && !ancestors[i] {
                    return Some(format!(
                        "rule {} puts {} before it, which is not before {}",
                        rule.name, f.id, items[p].id
                    ));
                }
            }
        }
        if matches(keys, &a, &rule.first) {
            for (i, t) in items.iter().enumerate() {
                if i != p && matches(keys, t, &rule.then) && equal(&a, t) && !descendants[i] {
                    return Some(format!(
                        "rule {} puts {} after it, which does not wait for {}",
                        rule.name, t.id, items[p].id
                    ));
                }
            }
        }
    }
    None
}

/// One flow per host the plan empties: its disable, the migrations off it
/// and its power-off.
fn evacuation_flows(
    actions: &[Action],
    model: &ClusterModel,
    on_failure: FlowOnFailure,
) -> Vec<PlannedFlow> {
    let mut on_host: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for i in &model.instances {
        on_host.entry(&i.host).or_default().insert(&i.uuid);
    }
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut moved: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (k, a) in actions.iter().enumerate() {
        if let Some(m) = migration(a)
            && let Some(s) = m.source
        {
            members.entry(s).or_default().push(k);
            moved.entry(s).or_default().insert(m.instance);
        }
    }
    for (k, a) in actions.iter().enumerate() {
        if let Some(h) = host_taken_out(a)
            && let Some(m) = members.get_mut(h)
        {
            m.push(k);
        }
    }
    members
        .into_iter()
        .filter(|(host, _)| {
            let holds = on_host.get(host);
            let moved = moved.get(host);
            holds.is_some_and(|h| moved.is_some_and(|m| h.is_subset(m)))
        })
        .map(|(host, mut actions)| {
            actions.sort_unstable();
            PlannedFlow {
                name: format!("evacuate-{host}"),
                parent: None,
                on_failure,
                actions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    fn default_rules() -> Vec<Rule> {
        #[derive(Deserialize)]
        struct Policy {
            rules: Vec<Rule>,
        }
        serde_yaml_ng::from_str::<Policy>(include_str!("../../../policies/default.yaml"))
            .expect("the default policy parses")
            .rules
    }

    /// A random cluster (hosts of random sizes and states, instances of
    /// random sizes) and a consolidation-like solution on it: some hosts
    /// emptied (disabled first, sometimes powered off), their instances
    /// moved to random other hosts, candidates for every migration drawn
    /// from all hosts (the planner must do the filtering).
    #[derive(Debug, Clone)]
    struct Case {
        model: ClusterModel,
        actions: Vec<Action>,
        candidates: Value,
    }

    fn arb_case() -> impl proptest::strategy::Strategy<Value = Case> {
        (
            prop::collection::vec((1u64..5, 0u8..10), 3..9),
            prop::collection::vec((0usize..9, 1u64..5, 0usize..9), 1..30),
            prop::collection::vec(any::<bool>(), 9),
            any::<u64>(),
        )
            .prop_map(|(hosts, vms, emptied, seed)| {
                let n = hosts.len();
                let nodes: Vec<Value> = hosts
                    .iter()
                    .enumerate()
                    .map(|(k, &(size, state))| {
                        json!({"uuid": format!("n{k}"), "hostname": format!("h{k}"),
                               "vcpus": 4 * size, "memory": 4096 * size, "disk": 100 * size,
                               "status": if state == 0 { "disabled" } else { "enabled" },
                               "state": if state == 1 { "down" } else { "up" }})
                    })
                    .collect();
                let instances: Vec<Value> = vms
                    .iter()
                    .enumerate()
                    .map(|(k, &(h, size, _))| {
                        json!({"uuid": format!("i{k}"), "name": format!("vm{k}"),
                               "host": format!("h{}", h % n), "vcpus": size,
                               "memory": 1024 * size, "disk": 10 * size})
                    })
                    .collect();
                let model: ClusterModel =
                    serde_json::from_value(json!({"nodes": nodes, "instances": instances}))
                        .expect("a valid model");
                let mut actions = Vec::new();
                let mut candidates = serde_json::Map::new();
                let mut x = seed | 1;
                let mut next = |m: usize| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % m as u64) as usize
                };
                for (h, _) in emptied.iter().enumerate().take(n).filter(|(_, e)| **e) {
                    let host = format!("h{h}");
                    actions.push(Action {
                        id: format!("disable-{host}"),
                        action_type: "change_nova_service_state".into(),
                        resource_id: None,
                        input_parameters: json!({"resource_id": format!("n{h}"), "resource_name": host, "state": "disabled"}),
                    });
                    for (k, &(vh, _, dest)) in vms.iter().enumerate() {
                        if vh % n != h {
                            continue;
                        }
                        let id = format!("migrate-vm{k}");
                        actions.push(Action {
                            id: id.clone(),
                            action_type: "migrate".into(),
                            resource_id: None,
                            input_parameters: json!({"resource_id": format!("i{k}"), "migration_type": "live",
                                                     "source_node": host, "destination_node": format!("h{}", (h + 1 + dest) % n)}),
                        });
                        let list: Vec<Value> =
                            (0..4).map(|_| json!(format!("h{}", next(n + 1)))).collect();
                        candidates.insert(id, json!({"destination_node": list}));
                    }
                    if next(2) == 0 {
                        actions.push(Action {
                            id: format!("off-{host}"),
                            action_type: "change_node_power_state".into(),
                            resource_id: None,
                            input_parameters: json!({"resource_id": format!("n{h}"), "resource_name": host, "state": "off"}),
                        });
                    }
                }
                Case {
                    model,
                    actions,
                    candidates: Value::Object(candidates),
                }
            })
    }

    fn context(case: &Case, alternatives: Value) -> String {
        json!({
            "config": {"rules": serde_yaml_ng::from_str::<Value>(include_str!("../../../policies/default.yaml")).expect("yaml")["rules"],
                       "alternatives": alternatives},
            "durations": {"migrate": 60.0},
            "model": case.model,
            "candidates": case.candidates,
        })
        .to_string()
    }

    fn structured(case: &Case, alternatives: Value) -> StructuredSchedule {
        let texts: Vec<String> = case
            .actions
            .iter()
            .map(|a| a.input_parameters.to_string())
            .collect();
        let refs: Vec<ActionRef<'_>> = case
            .actions
            .iter()
            .zip(&texts)
            .map(|(a, t)| ActionRef {
                id: &a.id,
                action_type: &a.action_type,
                resource_id: None,
                input_parameters_json: t,
            })
            .collect();
        Rules
            .schedule_structured(&refs, &context(case, alternatives))
            .expect("planned")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every alternative respects capacity at its point in the
        /// predicted state: its host's usage at the start plus every
        /// arrival the plan's migrations make, plus the instance, fits in
        /// every dimension; the host is usable and is not one the plan
        /// empties or takes out of service; and every rule relating the
        /// alternative to another action already holds for its primary.
        #[test]
        fn every_alternative_is_safe_where_it_could_run(case in arb_case()) {
            let s = structured(&case, json!({"per_action": 2}));
            let model = &case.model;
            let mut used: HashMap<&str, Res> = HashMap::new();
            let demand: HashMap<&str, Res> = model.instances.iter()
                .map(|i| (i.uuid.as_str(), [i.vcpus as f64, i.memory as f64, i.disk as f64])).collect();
            for i in &model.instances {
                let u = used.entry(i.host.as_str()).or_default();
                *u = std::array::from_fn(|d| u[d] + demand[i.uuid.as_str()][d]);
            }
            let mut taken_out = HashSet::new();
            for a in &case.actions {
                let p = &a.input_parameters;
                if a.action_type == "migrate" {
                    let d = p["destination_node"].as_str().unwrap_or("");
                    let u = used.entry(d).or_default();
                    let need = demand[p["resource_id"].as_str().unwrap_or("")];
                    *u = std::array::from_fn(|k| u[k] + need[k]);
                    taken_out.insert(p["source_node"].as_str().unwrap_or(""));
                } else if p["state"] == "disabled" || p["state"] == "off" {
                    taken_out.insert(p["resource_name"].as_str().unwrap_or(""));
                }
            }
            let n = case.actions.len();
            let mut succ = vec![Vec::new(); n];
            let mut pred = vec![Vec::new(); n];
            for &(a, b) in &s.schedule.edges {
                succ[a].push(b);
                pred[b].push(a);
            }
            let rules = default_rules();
            let keys = Keys::of(&rules);
            for alt in &s.alternatives {
                let primary = &case.actions[alt.primary];
                let host = alt.action.input_parameters["destination_node"].as_str().expect("a host");
                prop_assert_eq!(&alt.action.action_type, &primary.action_type);
                prop_assert_ne!(Some(host), primary.input_parameters["destination_node"].as_str());
                prop_assert!(!taken_out.contains(host), "{} is emptied or taken out", host);
                let node = model.nodes.iter().find(|x| x.hostname == host).expect("a known host");
                prop_assert!(node.status == "enabled" && node.state == "up" && node.power_state == "on");
                let need = demand[primary.input_parameters["resource_id"].as_str().unwrap_or("")];
                let u = used.get(host).copied().unwrap_or_default();
                prop_assert!(fits(u, need, capacity(node)), "{} over capacity: {:?} + {:?} > {:?}", host, u, need, capacity(node));
                // Rules: before-actions are ancestors of the primary, after-actions descendants.
                let anc = reach(&pred, alt.primary);
                let desc = reach(&succ, alt.primary);
                let a_item = keys.item(&alt.action);
                for rule in &rules {
                    for (i, other) in case.actions.iter().enumerate() {
                        if i == alt.primary { continue; }
                        let o = keys.item(other);
                        let eq = |f: &Item<'_>, t: &Item<'_>| match &rule.when_equal {
                            None => true,
                            Some(w) => matches!((keys.key(f, &w.first), keys.key(t, &w.then)), (Some(x), Some(y)) if x == y),
                        };
                        if matches(&keys, &o, &rule.first) && matches(&keys, &a_item, &rule.then) && eq(&o, &a_item) {
                            prop_assert!(anc[i], "rule {}: {} is not before {}", rule.name, other.id, primary.id);
                        }
                        if matches(&keys, &a_item, &rule.first) && matches(&keys, &o, &rule.then) && eq(&a_item, &o) {
                            prop_assert!(desc[i], "rule {}: {} does not wait for {}", rule.name, other.id, primary.id);
                        }
                    }
                }
            }
            // At most per_action per primary, ids unique in the plan.
            let mut per: HashMap<usize, usize> = HashMap::new();
            let mut ids: HashSet<&str> = case.actions.iter().map(|a| a.id.as_str()).collect();
            for alt in &s.alternatives {
                *per.entry(alt.primary).or_default() += 1;
                prop_assert!(ids.insert(&alt.action.id), "id {} twice", alt.action.id);
            }
            prop_assert!(per.values().all(|&k| k <= 2));
        }

        /// Plans with flows and alternatives are acyclic once each
        /// alternative waits for its primary's parents (as the host stores
        /// them), and every flow holds actions of one host's evacuation.
        #[test]
        fn plans_with_flows_and_alternatives_are_acyclic(case in arb_case()) {
            let s = structured(&case, json!({"per_action": 3, "evacuation_flows": "rollback"}));
            let n = case.actions.len();
            let m = n + s.alternatives.len();
            let mut succ = vec![Vec::new(); m];
            let mut indeg = vec![0usize; m];
            for &(a, b) in &s.schedule.edges {
                succ[a].push(b);
                indeg[b] += 1;
                for (j, alt) in s.alternatives.iter().enumerate() {
                    if alt.primary == b {
                        succ[a].push(n + j);
                        indeg[n + j] += 1;
                    }
                }
            }
            let mut free: Vec<usize> = (0..m).filter(|&k| indeg[k] == 0).collect();
            let mut seen = 0;
            while let Some(k) = free.pop() {
                seen += 1;
                for &t in &succ[k] {
                    indeg[t] -= 1;
                    if indeg[t] == 0 { free.push(t); }
                }
            }
            prop_assert_eq!(seen, m, "a cycle");
            let mut in_flow = HashSet::new();
            for f in &s.flows {
                let host = f.name.strip_prefix("evacuate-").expect("an evacuation flow");
                for &i in &f.actions {
                    prop_assert!(in_flow.insert(i), "action in two flows");
                    let p = &case.actions[i].input_parameters;
                    prop_assert!(p["source_node"] == host || p["resource_name"] == host);
                }
            }
        }

        /// A flat plan stays as it was: without `alternatives` in the
        /// config, or with it and no candidates, the structured schedule is
        /// the flat one with no alternative and no flow.
        #[test]
        fn without_candidates_the_plan_is_the_flat_one(case in arb_case()) {
            let texts: Vec<String> = case.actions.iter().map(|a| a.input_parameters.to_string()).collect();
            let refs: Vec<ActionRef<'_>> = case.actions.iter().zip(&texts).map(|(a, t)| ActionRef {
                id: &a.id, action_type: &a.action_type, resource_id: None, input_parameters_json: t,
            }).collect();
            let plain = json!({"config": {"rules": serde_yaml_ng::from_str::<Value>(include_str!("../../../policies/default.yaml")).expect("yaml")["rules"]},
                               "durations": {"migrate": 60.0}}).to_string();
            let flat = Rules.schedule_refs(&refs, &plain).expect("flat");
            let v2 = Rules.schedule_structured(&refs, &plain).expect("v2");
            prop_assert_eq!(&v2, &StructuredSchedule::from(flat.clone()));
            let mut no_candidates = case.clone();
            no_candidates.candidates = Value::Null;
            let s = structured(&no_candidates, json!({"per_action": 2}));
            prop_assert!(s.alternatives.is_empty() && s.flows.is_empty());
            prop_assert_eq!(&s.schedule.order, &flat.order);
            prop_assert_eq!(&s.schedule.edges, &flat.edges);
        }
    }

    /// The random cases above do exercise alternatives and flows (the
    /// properties are not vacuous).
    #[test]
    fn the_random_cases_make_alternatives_and_flows() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut alternatives, mut flows, mut dropped_for_room) = (0, 0, 0);
        for _ in 0..100 {
            let case = arb_case().new_tree(&mut runner).expect("a case").current();
            let s = structured(&case, json!({"per_action": 2, "evacuation_flows": "stop"}));
            alternatives += s.alternatives.len();
            flows += s.flows.len();
            dropped_for_room += s.schedule.extra["alternatives"]["dropped_first"]
                .as_array()
                .map_or(0, |d| {
                    d.iter()
                        .filter(|x| x["why"].as_str().unwrap_or("").contains("over capacity"))
                        .count()
                });
        }
        assert!(
            alternatives > 50 && flows > 20 && dropped_for_room > 5,
            "{alternatives} alternatives, {flows} flows, {dropped_for_room} dropped for room"
        );
    }

    #[test]
    fn candidates_the_planner_cannot_check_are_dropped_with_the_reason() {
        let model: ClusterModel = serde_json::from_value(json!({
            "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                      {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100},
                      {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 8192, "disk": 100}],
            "instances": [{"uuid": "i1", "name": "vm1", "host": "h1", "vcpus": 2, "memory": 1024, "disk": 10}]
        }))
        .expect("model");
        let actions = vec![
            Action {
                id: "m1".into(),
                action_type: "migrate".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "i1", "source_node": "h1", "destination_node": "h2"}),
            },
            Action {
                id: "r1".into(),
                action_type: "resize".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "i1", "flavor": "small"}),
            },
        ];
        let made = make(
            &actions,
            &[],
            &[],
            &AlternativesConfig {
                per_action: 2,
                evacuation_flows: None,
            },
            Some(&model),
            &json!({"m1": {"destination_node": ["h1", "h3", "h9"]}, "r1": {"flavor": ["big"]}}),
        );
        assert_eq!(made.alternatives.len(), 1);
        assert_eq!(made.alternatives[0].action.id, "m1-alt1");
        assert_eq!(
            made.alternatives[0].action.input_parameters["destination_node"],
            "h3"
        );
        let why: Vec<&str> = made.dropped.iter().map(|d| d.why.as_str()).collect();
        assert!(why.iter().any(|w| w.contains("own source")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("no host h9")), "{why:?}");
        assert!(
            why.iter().any(|w| w.contains("not resize flavor")),
            "{why:?}"
        );
        // Without a model nothing can be checked: nothing is kept.
        let none = make(
            &actions,
            &[],
            &[],
            &AlternativesConfig {
                per_action: 2,
                evacuation_flows: None,
            },
            None,
            &json!({"m1": {"destination_node": ["h3"]}}),
        );
        assert!(none.alternatives.is_empty());
        assert!(none.dropped[0].why.contains("no cluster model"));
    }
}
