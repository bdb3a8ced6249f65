//! The `rules` planner: an edge only where a rule or a resource relation
//! justifies it.
//!
//! * Resource relation: actions on one resource (`resource_id`) run one
//!   after another, in descending weight (ties in solution order).
//! * Rules (from the policy): every action matching a rule's `first` side
//!   runs before every action matching its `then` side whose `when_equal`
//!   parameters are equal. An edge that would close a cycle is left out and
//!   reported in `extra.skipped` (two rules that contradict each other).
//! * Concurrency limits are not edges: they go to the applier as pools
//!   (`extra.pools`).
//! * Priorities put the critical path first: each action's priority is the
//!   longest chain of estimated durations from it to the end of the plan
//!   (`extra.priorities`, seconds); the creation order is a topological
//!   order that takes the highest priority first.

use crate::Param;
use crate::weight::DEFAULT_WEIGHTS;
use serde::Deserialize;
use sextant_plugin_api::prelude::*;
use std::borrow::Cow;
use std::collections::{BinaryHeap, HashMap};

/// One side of a rule.
#[derive(Clone, Debug, Deserialize)]
pub struct Side {
    pub action_type: String,
    #[serde(default, rename = "where")]
    pub where_: serde_json::Map<String, Value>,
}

/// Which parameters must be equal.
#[derive(Clone, Debug, Deserialize)]
pub struct WhenEqual {
    pub first: String,
    pub then: String,
}

/// An ordering rule.
#[derive(Clone, Debug, Deserialize)]
pub struct Rule {
    pub name: String,
    pub first: Side,
    pub then: Side,
    #[serde(default)]
    pub when_equal: Option<WhenEqual>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    weights: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    parallelization: Option<Value>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    limits: Vec<Value>,
    /// Planner-made alternatives and evacuation flows (`planners.v2`).
    #[serde(default)]
    alternatives: Option<crate::alternatives::AlternativesConfig>,
}

/// Why an edge exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Two actions on one resource.
    Resource,
    /// A rule (its index).
    Rule(usize),
}

/// The planner's result before it crosses the boundary.
#[derive(Debug)]
pub struct Planned {
    pub order: Vec<usize>,
    pub edges: Vec<(usize, usize, Reason)>,
    pub skipped: Vec<(usize, usize, usize)>,
    pub priorities: Vec<f64>,
}

/// What the planner reads of an action: its id, its type and the
/// parameters named by [`Keys`].
pub struct Item<'a> {
    pub id: &'a str,
    pub action_type: &'a str,
    params: Vec<Option<Param<'a>>>,
}

/// The parameters the planner reads: `resource_id`, and those its rules
/// name (in `where` and `when_equal`).
pub struct Keys(Vec<String>);

impl Keys {
    pub fn of(rules: &[Rule]) -> Self {
        let mut keys = vec!["resource_id".to_string()];
        let named = rules.iter().flat_map(|r| {
            r.first
                .where_
                .keys()
                .chain(r.then.where_.keys())
                .chain(r.when_equal.iter().flat_map(|w| [&w.first, &w.then]))
        });
        for k in named {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        Self(keys)
    }

    /// The value of parameter `key` of `item` (None when absent or not read).
    fn get<'v, 'a>(&self, item: &'v Item<'a>, key: &str) -> Option<&'v Param<'a>> {
        let i = self.0.iter().position(|k| k == key)?;
        item.params.get(i)?.as_ref()
    }

    /// Parameter `key` of `item` as a key to relate actions by.
    pub fn key<'a>(&self, item: &Item<'a>, key: &str) -> Option<Cow<'a, str>> {
        key_of(self, item, key)
    }

    /// An action already parsed.
    pub fn item<'a>(&self, a: &'a Action) -> Item<'a> {
        Item {
            id: &a.id,
            action_type: &a.action_type,
            params: crate::pick_parsed(&a.input_parameters, &self.0),
        }
    }

    /// An action as it crossed the boundary: only these parameters are
    /// read from its JSON text.
    pub fn item_ref<'a>(&self, a: &ActionRef<'a>) -> Result<Item<'a>, PluginError> {
        let keys: Vec<&str> = self.0.iter().map(String::as_str).collect();
        Ok(Item {
            id: a.id,
            action_type: a.action_type,
            params: crate::pick(a.input_parameters_json, &keys)?,
        })
    }
}

pub(crate) fn matches(keys: &Keys, a: &Item<'_>, side: &Side) -> bool {
    a.action_type == side.action_type
        && side
            .where_
            .iter()
            .all(|(k, v)| keys.get(a, k).is_some_and(|p| p.equals(v)))
}

/// Parameter `key` of `item` as a key to relate actions by.
fn key_of<'a>(keys: &Keys, item: &Item<'a>, key: &str) -> Option<Cow<'a, str>> {
    keys.get(item, key).and_then(Param::key)
}

/// Whether `to` can reach `from` along `succ` (adding from→to would close a cycle).
fn reaches(succ: &[Vec<usize>], from: usize, to: usize, mark: &mut [u32], stamp: u32) -> bool {
    let mut stack = vec![to];
    while let Some(n) = stack.pop() {
        if n == from {
            return true;
        }
        if mark[n] == stamp {
            continue;
        }
        mark[n] = stamp;
        stack.extend(succ[n].iter().copied());
    }
    false
}

/// Plans `actions`: weights, rules and estimated durations (seconds by
/// action type) given.
pub fn plan<'a>(
    actions: &[Item<'a>],
    keys: &Keys,
    weights: &HashMap<String, f64>,
    rules: &[Rule],
    durations: &HashMap<String, f64>,
) -> Planned {
    let n = actions.len();
    let weight = |a: &Item<'_>| weights.get(a.action_type).copied().unwrap_or(0.0);
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut edges: Vec<(usize, usize, Reason)> = Vec::new();
    let mut skipped = Vec::new();
    let mut mark = vec![0u32; n];
    let mut stamp = 0u32;

    // Resource relations: one chain per resource, in descending weight.
    // The actions on one resource are linked in solution order (`next`),
    // from the first one; resources come in the order of their first action.
    const END: usize = usize::MAX;
    let mut next = vec![END; n];
    let mut firsts = Vec::new();
    {
        // resource -> (its first action, its last action so far)
        let mut ends: HashMap<Cow<'a, str>, (usize, usize)> = HashMap::new();
        for (i, a) in actions.iter().enumerate() {
            if let Some(r) = key_of(keys, a, "resource_id") {
                match ends.entry(r) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        let last = &mut e.get_mut().1;
                        next[*last] = i;
                        *last = i;
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert((i, i));
                        firsts.push(i);
                    }
                }
            }
        }
    }
    let mut g = Vec::new();
    for first in firsts {
        if next[first] == END {
            continue; // one action on the resource: no relation
        }
        g.clear();
        let mut x = first;
        while x != END {
            g.push(x);
            x = next[x];
        }
        g.sort_by(|&x, &y| {
            weight(&actions[y])
                .total_cmp(&weight(&actions[x]))
                .then(x.cmp(&y))
        });
        for w in g.windows(2) {
            succ[w[0]].push(w[1]);
            edges.push((w[0], w[1], Reason::Resource));
        }
    }
    // Rules, in order; an edge closing a cycle is skipped.
    let mut seen: std::collections::HashSet<(usize, usize)> =
        edges.iter().map(|e| (e.0, e.1)).collect();
    for (ri, rule) in rules.iter().enumerate() {
        let firsts: Vec<usize> = (0..n)
            .filter(|&i| matches(keys, &actions[i], &rule.first))
            .collect();
        if firsts.is_empty() {
            continue;
        }
        let mut index: HashMap<Option<Cow<'a, str>>, Vec<usize>> = HashMap::new();
        for &f in &firsts {
            let k = rule
                .when_equal
                .as_ref()
                .map(|w| key_of(keys, &actions[f], &w.first));
            match k {
                Some(None) => continue, // the parameter is absent: the rule cannot relate it
                Some(k) => index.entry(k).or_default().push(f),
                None => index.entry(None).or_default().push(f),
            }
        }
        for t in (0..n).filter(|&i| matches(keys, &actions[i], &rule.then)) {
            let k = match &rule.when_equal {
                Some(w) => match key_of(keys, &actions[t], &w.then) {
                    Some(k) => Some(k),
                    None => continue,
                },
                None => None,
            };
            for &f in index.get(&k).map(Vec::as_slice).unwrap_or(&[]) {
                if f == t || !seen.insert((f, t)) {
                    continue;
                }
                stamp += 1;
                if reaches(&succ, f, t, &mut mark, stamp) {
                    skipped.push((f, t, ri));
                    continue;
                }
                succ[f].push(t);
                edges.push((f, t, Reason::Rule(ri)));
            }
        }
    }
    // Priorities: longest chain of durations to the end, in reverse topological order.
    let mut indeg = vec![0usize; n];
    for s in &succ {
        for &t in s {
            indeg[t] += 1;
        }
    }
    let mut topo = Vec::with_capacity(n);
    let mut queue: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut deg = indeg.clone();
    while let Some(x) = queue.pop() {
        topo.push(x);
        for &t in &succ[x] {
            deg[t] -= 1;
            if deg[t] == 0 {
                queue.push(t);
            }
        }
    }
    let dur = |i: usize| {
        durations
            .get(actions[i].action_type)
            .copied()
            .unwrap_or(0.0)
    };
    let mut priorities = vec![0.0f64; n];
    for &x in topo.iter().rev() {
        let tail = succ[x].iter().map(|&t| priorities[t]).fold(0.0, f64::max);
        priorities[x] = dur(x) + tail;
    }
    // Creation order: topological, highest priority first, then solution order.
    #[derive(PartialEq)]
    struct Ready(f64, usize);
    impl Eq for Ready {}
    impl PartialOrd for Ready {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Ready {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
        }
    }
    let mut heap: BinaryHeap<Ready> = (0..n)
        .filter(|&i| indeg[i] == 0)
        .map(|i| Ready(priorities[i], i))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Ready(_, x)) = heap.pop() {
        order.push(x);
        for &t in &succ[x] {
            indeg[t] -= 1;
            if indeg[t] == 0 {
                heap.push(Ready(priorities[t], t));
            }
        }
    }
    Planned {
        order,
        edges,
        skipped,
        priorities,
    }
}

#[derive(Default)]
pub struct Rules;

impl Planner for Rules {
    fn schedule(&self, actions: Vec<Action>, context: Value) -> Result<Schedule, PluginError> {
        let durations: HashMap<String, f64> = context
            .get("durations")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| PluginError::invalid_input(format!("durations: {e}")))?
            .unwrap_or_default();
        let config = parse_config(&context["config"])?;
        let keys = Keys::of(&config.rules);
        let items: Vec<Item<'_>> = actions.iter().map(|a| keys.item(a)).collect();
        schedule(&items, &keys, &config, &durations)
    }

    /// Reads only the parameters its rules name of each action, and of the
    /// context only its config and the estimated durations.
    fn schedule_refs(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<Schedule, PluginError> {
        #[derive(Deserialize)]
        struct Context {
            #[serde(default)]
            config: Value,
            #[serde(default)]
            durations: Option<HashMap<String, f64>>,
        }
        let context: Context = serde_json::from_str(context_json)
            .map_err(|e| PluginError::invalid_input(format!("the planner context: {e}")))?;
        let config = parse_config(&context.config)?;
        let keys = Keys::of(&config.rules);
        let items = actions
            .iter()
            .map(|a| keys.item_ref(a))
            .collect::<Result<Vec<_>, _>>()?;
        schedule(
            &items,
            &keys,
            &config,
            &context.durations.unwrap_or_default(),
        )
    }
}

impl StructuredPlanner for Rules {
    /// The same DAG as [`Planner::schedule_refs`], with the alternatives
    /// and evacuation flows the policy asks for (`config.alternatives`),
    /// made from the strategy's candidates (`candidates`) against the
    /// cluster model (`model`): see [`crate::alternatives`].
    fn schedule_structured(
        &self,
        actions: &[ActionRef<'_>],
        context_json: &str,
    ) -> Result<StructuredSchedule, PluginError> {
        // One pass over the context: the DAG is what schedule_refs makes.
        #[derive(Deserialize)]
        struct Context {
            #[serde(default)]
            config: Value,
            #[serde(default)]
            durations: Option<HashMap<String, f64>>,
            #[serde(default)]
            model: Option<sextant_plugin_api::model::ClusterModel>,
            #[serde(default)]
            candidates: Value,
        }
        let context: Context = serde_json::from_str(context_json)
            .map_err(|e| PluginError::invalid_input(format!("the planner context: {e}")))?;
        let config = parse_config(&context.config)?;
        let keys = Keys::of(&config.rules);
        let items = actions
            .iter()
            .map(|a| keys.item_ref(a))
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = schedule(
            &items,
            &keys,
            &config,
            &context.durations.unwrap_or_default(),
        )?;
        drop(items);
        let Some(wanted) = &config.alternatives else {
            return Ok(schedule.into());
        };
        let parsed = ActionRef::to_actions(actions)?;
        let made = crate::alternatives::make(
            &parsed,
            &schedule.edges,
            &config.rules,
            wanted,
            context.model.as_ref(),
            &context.candidates,
        );
        let mut schedule = schedule;
        if let Value::Object(extra) = &mut schedule.extra {
            const SHOWN: usize = 50;
            extra.insert(
                "alternatives".into(),
                json!({
                    "kept": made.alternatives.len(),
                    "flows": made.flows.len(),
                    "dropped": made.dropped.len(),
                    "dropped_first": made.dropped.iter().take(SHOWN).map(|d| json!({
                        "action": d.action, "value": d.value, "why": d.why
                    })).collect::<Vec<_>>(),
                }),
            );
        }
        Ok(StructuredSchedule {
            schedule,
            alternatives: made.alternatives,
            flows: made.flows,
        })
    }
}

fn parse_config(config: &Value) -> Result<Config, PluginError> {
    match config {
        Value::Null => Ok(Config::default()),
        c => Config::deserialize(c)
            .map_err(|e| PluginError::invalid_input(format!("rules planner config: {e}"))),
    }
}

fn schedule(
    items: &[Item<'_>],
    keys: &Keys,
    config: &Config,
    durations: &HashMap<String, f64>,
) -> Result<Schedule, PluginError> {
    let _ = &config.parallelization;
    let weights: HashMap<String, f64> = match &config.weights {
        Some(m) => m
            .iter()
            .map(|(k, v)| {
                v.as_f64().map(|w| (k.clone(), w)).ok_or_else(|| {
                    PluginError::invalid_input(format!("weights.{k} must be a number, not {v}"))
                })
            })
            .collect::<Result<_, _>>()?,
        None => DEFAULT_WEIGHTS
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    };
    let p = plan(items, keys, &weights, &config.rules, durations);
    let id = |i: usize| items[i].id;
    Ok(Schedule {
        order: p.order,
        edges: p.edges.iter().map(|e| (e.0, e.1)).collect(),
        extra: json!({
            "pools": config.limits,
            "priorities": p.priorities,
            "skipped": p.skipped.iter().map(|&(f, t, r)| json!({
                "first": id(f), "then": id(t), "rule": config.rules[r].name,
                "why": "it would close a cycle"
            })).collect::<Vec<_>>(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn default_rules() -> Vec<Rule> {
        #[derive(Deserialize)]
        struct Policy {
            rules: Vec<Rule>,
        }
        let text = include_str!("../../../policies/default.yaml");
        serde_yaml_ng::from_str::<Policy>(text)
            .expect("the default policy parses")
            .rules
    }

    fn weights() -> HashMap<String, f64> {
        DEFAULT_WEIGHTS
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    fn arb_action() -> impl proptest::strategy::Strategy<Value = (u8, u8, u8, u8, bool)> {
        (0u8..5, 0u8..6, 0u8..6, 0u8..8, any::<bool>())
    }

    fn build(specs: &[(u8, u8, u8, u8, bool)]) -> Vec<Action> {
        let hosts = ["h0", "h1", "h2", "h3", "h4", "h5"];
        specs
            .iter()
            .enumerate()
            .map(|(i, &(kind, a, b, vm, flag))| {
                let (t, p) = match kind {
                    0 => ("migrate", json!({"resource_id": format!("vm{vm}"), "source_node": hosts[a as usize], "destination_node": hosts[b as usize]})),
                    1 => ("change_nova_service_state", json!({"resource_id": format!("n{a}"), "resource_name": hosts[a as usize], "state": if flag { "disabled" } else { "enabled" }})),
                    2 => ("change_node_power_state", json!({"resource_id": format!("n{a}"), "resource_name": hosts[a as usize], "state": if flag { "off" } else { "on" }})),
                    3 => ("resize", json!({"resource_id": format!("vm{vm}"), "flavor": "m1"})),
                    _ => ("nop", json!({"message": "x"})),
                };
                Action { id: format!("a{i}"), action_type: t.into(), resource_id: None, input_parameters: p }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn plans_are_acyclic_complete_justified_and_respect_the_rules(specs in prop::collection::vec(arb_action(), 0..40)) {
            let actions = build(&specs);
            let rules = default_rules();
            let w = weights();
            let keys = Keys::of(&rules);
            let items: Vec<Item<'_>> = actions.iter().map(|a| keys.item(a)).collect();
            let p = plan(&items, &keys, &w, &rules, &HashMap::new());
            let n = actions.len();
            let matches = |a: &Action, side: &Side| matches(&keys, &keys.item(a), side);
            // Keeps every action, once.
            let mut sorted = p.order.clone();
            sorted.sort();
            prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            // Acyclic: the creation order is topological.
            let pos: HashMap<usize, usize> = p.order.iter().enumerate().map(|(k, &i)| (i, k)).collect();
            for &(f, t, _) in &p.edges {
                prop_assert!(pos[&f] < pos[&t], "edge {} -> {} goes backwards", f, t);
            }
            // Every edge is justified by its reason.
            for (f, t, r) in &p.edges {
                let (a, b) = (&actions[*f], &actions[*t]);
                match r {
                    Reason::Resource => prop_assert_eq!(&a.input_parameters["resource_id"], &b.input_parameters["resource_id"]),
                    Reason::Rule(ri) => {
                        let rule = &rules[*ri];
                        prop_assert!(matches(a, &rule.first) && matches(b, &rule.then));
                        if let Some(we) = &rule.when_equal {
                            prop_assert_eq!(&a.input_parameters[&we.first], &b.input_parameters[&we.then]);
                        }
                    }
                }
            }
            // Every rule holds: each matching pair is ordered (directly or
            // through other edges), unless it was reported as skipped.
            let mut reach = vec![vec![false; n]; n];
            for &i in p.order.iter().rev() {
                reach[i][i] = true;
                let succ: Vec<usize> = p.edges.iter().filter(|e| e.0 == i).map(|e| e.1).collect();
                for s in succ {
                    let row = reach[s].clone();
                    for (k, r) in row.into_iter().enumerate() {
                        if r { reach[i][k] = true; }
                    }
                }
            }
            for (ri, rule) in rules.iter().enumerate() {
                for f in 0..n {
                    for t in 0..n {
                        if f == t || !matches(&actions[f], &rule.first) || !matches(&actions[t], &rule.then) { continue; }
                        if let Some(we) = &rule.when_equal {
                            let (x, y) = (&actions[f].input_parameters[&we.first], &actions[t].input_parameters[&we.then]);
                            if x.is_null() || x != y { continue; }
                        }
                        let skipped = p.skipped.contains(&(f, t, ri));
                        prop_assert!(reach[f][t] || skipped, "rule {} not respected for {} -> {}", rule.name, f, t);
                    }
                }
            }
            // Same-resource actions are ordered by descending weight.
            for &(f, t, ref r) in &p.edges {
                if *r == Reason::Resource {
                    prop_assert!(w.get(&actions[f].action_type) >= w.get(&actions[t].action_type));
                }
            }
        }
    }

    #[test]
    fn a_host_is_disabled_evacuated_powered_off() {
        let actions = [
            Action {
                id: "off".into(),
                action_type: "change_node_power_state".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "n1", "resource_name": "h1", "state": "off"}),
            },
            Action {
                id: "m1".into(),
                action_type: "migrate".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "vm1", "source_node": "h1", "destination_node": "h2"}),
            },
            Action {
                id: "m2".into(),
                action_type: "migrate".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "vm2", "source_node": "h1", "destination_node": "h3"}),
            },
            Action {
                id: "dis".into(),
                action_type: "change_nova_service_state".into(),
                resource_id: None,
                input_parameters: json!({"resource_id": "n1", "resource_name": "h1", "state": "disabled"}),
            },
        ];
        let rules = default_rules();
        let keys = Keys::of(&rules);
        let items: Vec<Item<'_>> = actions.iter().map(|a| keys.item(a)).collect();
        let p = plan(
            &items,
            &keys,
            &weights(),
            &rules,
            &HashMap::from([("migrate".to_string(), 60.0)]),
        );
        let e: Vec<(usize, usize)> = p.edges.iter().map(|e| (e.0, e.1)).collect();
        assert!(e.contains(&(3, 1)) && e.contains(&(3, 2)), "{e:?}");
        assert!(e.contains(&(1, 0)) && e.contains(&(2, 0)), "{e:?}");
        assert!(
            !e.contains(&(1, 2)) && !e.contains(&(2, 1)),
            "the two migrations are independent: {e:?}"
        );
        assert_eq!(p.order[0], 3);
        assert_eq!(p.priorities[3], 60.0);
        assert!(p.skipped.is_empty());
    }
}
