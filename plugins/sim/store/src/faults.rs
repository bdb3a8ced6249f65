//! Fault injection: what goes wrong in the simulated cloud during a run, so
//! that recovery (retries, alternatives, flow rollbacks) can be exercised
//! end to end.
//!
//! Faults are set with the cloud (`sextant sim init --faults FILE`) and kept
//! in the cloud's `meta` table beside the time scale (so every host sharing
//! the cloud counts one `times` and fires each host fault once):
//!
//! * **host faults**: a host goes `down` or becomes `full` (its reservations
//!   raised to its capacity) when the simulated clock reaches `at_seconds`;
//! * **action faults**: an action picked by its name, its action type and a
//!   subset of its parameters fails in `execute` (every time, or the first
//!   `times` attempts);
//! * **random failures**: each action (of the listed types, or all) fails
//!   with a probability, drawn from a hash of the seed, the action type and
//!   the action's parameters: one seed, the same actions fail on every run,
//!   whatever the order or the parallelism.
//!
//! The simulated clock counts simulated seconds: an action that starts at
//! clock `t` takes effect at `t + estimated duration` (whatever the time
//! scale, which only decides how long the wait really is), and the clock
//! moves to the latest such time. Along a chain of actions it is exactly
//! the plan's simulated makespan.

use crate::ops::TxCloud;
use crate::rules::{Cloud, OpError};
use crate::tx::Tx;
use crate::{SimDb, SimError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happens to a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostFaultKind {
    /// Its compute service goes down: nothing can move to it.
    Down,
    /// It fills up: its reservations take its whole capacity.
    Full,
}

/// A host that goes down or fills up at a simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFault {
    /// The host's hostname.
    pub host: String,
    /// When, in simulated seconds since the cloud was seeded.
    pub at_seconds: f64,
    /// What happens to it.
    pub becomes: HostFaultKind,
}

/// An action that fails in `execute`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFault {
    /// The action's name in its plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The action type (`migrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
    /// Parameters the action must have, with these values.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Fails only the first `times` attempts that match (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// Actions failing at random, reproducibly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFailures {
    /// The chance that an action fails, from 0 to 1.
    pub probability: f64,
    /// The seed of the draw.
    pub seed: u64,
    /// The action types it applies to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_types: Vec<String>,
}

/// Every fault of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Hosts that go down or fill up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostFault>,
    /// Actions that fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionFault>,
    /// Random failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomFailures>,
}

impl Faults {
    /// Whether nothing is injected.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.actions.is_empty() && self.random.is_none()
    }

    /// What is wrong with these faults, each naming the entry at fault
    /// (`hosts[1].host`); `hostnames` are the cloud's.
    pub fn problems(&self, hostnames: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, h) in self.hosts.iter().enumerate() {
            if !hostnames.contains(&h.host.as_str()) {
                out.push(format!(
                    "hosts[{k}].host: no host {:?} in the simulated cloud",
                    h.host
                ));
            }
            if !(h.at_seconds.is_finite() && h.at_seconds >= 0.0) {
                out.push(format!(
                    "hosts[{k}].at: {} is not a simulated time",
                    h.at_seconds
                ));
            }
        }
        for (k, a) in self.actions.iter().enumerate() {
            if a.name.is_none() && a.action_type.is_none() && a.parameters.is_empty() {
                out.push(format!(
                    "actions[{k}]: names no action: give name, action_type or parameters"
                ));
            }
        }
        if let Some(r) = &self.random
            && !(0.0..=1.0).contains(&r.probability)
        {
            out.push(format!(
                "random.probability: {} is not a probability from 0 to 1",
                r.probability
            ));
        }
        out
    }
}

/// What a fault check knows of an action.
#[derive(Clone, Copy, Debug)]
pub struct ActionCall<'a> {
    /// Its name in its plan.
    pub name: &'a str,
    /// Its action type.
    pub action_type: &'a str,
    /// Its parameters, as the handler was given them.
    pub parameters: &'a Value,
}

impl ActionFault {
    /// Whether this fault names the action.
    pub fn matches(&self, a: &ActionCall<'_>) -> bool {
        self.name.as_deref().is_none_or(|n| n == a.name)
            && self
                .action_type
                .as_deref()
                .is_none_or(|t| t == a.action_type)
            && self
                .parameters
                .iter()
                .all(|(k, v)| a.parameters.get(k) == Some(v))
    }
}

impl RandomFailures {
    /// Whether the draw fails this action: a pure function of the seed,
    /// the action type and the parameters.
    pub fn fails(&self, a: &ActionCall<'_>) -> bool {
        if !self.action_types.is_empty() && !self.action_types.iter().any(|t| t == a.action_type) {
            return false;
        }
        let mut h = Fnv::new();
        h.write(&self.seed.to_le_bytes());
        h.write(a.action_type.as_bytes());
        h.write(&[0]);
        h.write(canonical(a.parameters).as_bytes());
        // The top 53 bits as a number in [0, 1).
        let x = (splitmix(h.0) >> 11) as f64 / (1u64 << 53) as f64;
        x < self.probability
    }
}

fn read_faults(tx: &mut dyn Tx) -> Result<Option<Faults>, SimError> {
    Ok(tx
        .meta("faults")?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

fn read_clock(tx: &mut dyn Tx) -> Result<f64, SimError> {
    Ok(tx
        .meta("clock")?
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(0.0))
}

fn read_counts(tx: &mut dyn Tx, key: &str) -> Result<Vec<u64>, SimError> {
    Ok(tx
        .meta(key)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// Writes the faults (and a clock at 0) in the seeding transaction.
pub(crate) fn seed(tx: &mut dyn Tx, faults: &Faults) -> Result<(), SimError> {
    tx.set_meta("clock", "0")?;
    if !faults.is_empty() {
        tx.set_meta("faults", &serde_json::to_string(faults).unwrap_or_default())?;
    }
    Ok(())
}

/// Applies the host faults due at the current clock that have not fired
/// yet, inside an operation's transaction: every operation sees the cloud
/// as it is at that time.
pub(crate) fn fire_due(cloud: &mut TxCloud<'_>) -> Result<(), OpError> {
    let (faults, clock, mut fired) = {
        let mut tx = cloud.tx();
        let Some(faults) = read_faults(&mut **tx)? else {
            return Ok(());
        };
        if faults.hosts.is_empty() {
            return Ok(());
        }
        let clock = read_clock(&mut **tx)?;
        (faults, clock, read_counts(&mut **tx, "fired")?)
    };
    fired.resize(faults.hosts.len(), 0);
    let mut changed = false;
    for (k, h) in faults.hosts.iter().enumerate() {
        if fired[k] > 0 || h.at_seconds > clock {
            continue;
        }
        fired[k] = 1;
        changed = true;
        let Some(mut n) = cloud.node(&h.host)? else {
            continue;
        };
        match h.becomes {
            HostFaultKind::Down => n.state = "down".into(),
            HostFaultKind::Full => {
                n.vcpu_reserved = n.vcpus;
                n.memory_mb_reserved = n.memory;
                n.disk_gb_reserved = n.disk;
            }
        }
        cloud.put_node(&n)?;
    }
    if changed {
        cloud
            .tx()
            .set_meta("fired", &serde_json::to_string(&fired).unwrap_or_default())?;
    }
    Ok(())
}

impl SimDb {
    /// The faults set with the cloud (none when never set).
    pub fn faults(&self) -> Result<Faults, SimError> {
        Ok(self
            .meta("faults")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// The simulated clock, in seconds since the cloud was seeded.
    pub fn clock(&self) -> Result<f64, SimError> {
        Ok(self
            .meta("clock")?
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(0.0))
    }

    /// Moves the clock to `to` if it is later, and fires the host faults
    /// due by then.
    pub fn advance_clock(&mut self, to: f64) -> Result<(), OpError> {
        self.op(|_| Ok(()), Some(to))
    }

    /// Whether an action fault or the random draw fails this attempt of
    /// `call`: the reason, counted against the fault's `times` (once
    /// across every host sharing the cloud).
    pub fn injected_failure(&mut self, call: &ActionCall<'_>) -> Result<Option<String>, SimError> {
        self.write(|tx| {
            let Some(faults) = read_faults(tx)? else {
                return Ok(None);
            };
            let mut hits = read_counts(tx, "hits")?;
            hits.resize(faults.actions.len(), 0);
            let mut why = None;
            for (k, f) in faults.actions.iter().enumerate() {
                if !f.matches(call) || f.times.is_some_and(|t| hits[k] >= t) {
                    continue;
                }
                hits[k] += 1;
                why = Some(format!(
                    "injected fault: actions[{k}] fails {} (attempt {} it failed)",
                    call.name, hits[k]
                ));
                break;
            }
            if why.is_some() {
                tx.set_meta("hits", &serde_json::to_string(&hits).unwrap_or_default())?;
            } else if let Some(r) = &faults.random
                && r.fails(call)
            {
                why = Some(format!(
                    "injected fault: random failure (probability {}, seed {}) of {}",
                    r.probability, r.seed, call.name
                ));
            }
            Ok(why)
        })
    }
}

/// Moves the clock forward inside an operation's transaction.
pub(crate) fn advance(cloud: &TxCloud<'_>, to: f64) -> Result<(), OpError> {
    if !to.is_finite() {
        return Ok(());
    }
    let mut tx = cloud.tx();
    if to > read_clock(&mut **tx)? {
        tx.set_meta("clock", &to.to_string())?;
    }
    Ok(())
}

/// JSON text with object keys sorted, so that a draw does not depend on
/// the order the parameters were written in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// FNV-1a, 64 bits: stable across Rust releases (std's hasher is not).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// SplitMix64's finaliser: spreads FNV's low-entropy high bits.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call<'a>(name: &'a str, t: &'a str, p: &'a Value) -> ActionCall<'a> {
        ActionCall {
            name,
            action_type: t,
            parameters: p,
        }
    }

    #[test]
    fn an_action_fault_matches_by_name_type_and_parameters() {
        let p = json!({"resource_id": "i1", "destination_node": "h2"});
        let by_name = ActionFault {
            name: Some("m1".into()),
            ..Default::default()
        };
        assert!(by_name.matches(&call("m1", "migrate", &p)));
        assert!(!by_name.matches(&call("m2", "migrate", &p)));
        let by_params = ActionFault {
            action_type: Some("migrate".into()),
            parameters: json!({"destination_node": "h2"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        };
        assert!(by_params.matches(&call("any", "migrate", &p)));
        assert!(!by_params.matches(&call("any", "resize", &p)));
        let elsewhere = json!({"resource_id": "i1", "destination_node": "h3"});
        assert!(!by_params.matches(&call("any", "migrate", &elsewhere)));
    }

    #[test]
    fn random_failures_are_a_function_of_the_seed_and_the_action_only() {
        let r = RandomFailures {
            probability: 0.2,
            seed: 7,
            action_types: vec!["migrate".into()],
        };
        let params: Vec<Value> = (0..2000)
            .map(|k| json!({"resource_id": format!("i{k}"), "destination_node": "h2"}))
            .collect();
        let drawn: Vec<bool> = params
            .iter()
            .map(|p| r.fails(&call("x", "migrate", p)))
            .collect();
        // The same draw again, and with the keys in another order.
        let again: Vec<bool> = params
            .iter()
            .map(|p| {
                let swapped = json!({"destination_node": "h2", "resource_id": p["resource_id"]});
                r.fails(&call("y", "migrate", &swapped))
            })
            .collect();
        assert_eq!(drawn, again);
        let share = drawn.iter().filter(|&&f| f).count() as f64 / drawn.len() as f64;
        assert!((0.17..0.23).contains(&share), "{share}");
        // Another seed draws other actions; other types never fail.
        let other = RandomFailures {
            seed: 8,
            ..r.clone()
        };
        let drawn8: Vec<bool> = params
            .iter()
            .map(|p| other.fails(&call("x", "migrate", p)))
            .collect();
        assert_ne!(drawn, drawn8);
        assert!(params.iter().all(|p| !r.fails(&call("x", "resize", p))));
        let never = RandomFailures {
            probability: 0.0,
            ..r.clone()
        };
        let always = RandomFailures {
            probability: 1.0,
            ..r
        };
        assert!(
            params
                .iter()
                .all(|p| !never.fails(&call("x", "migrate", p)))
        );
        assert!(
            params
                .iter()
                .all(|p| always.fails(&call("x", "migrate", p)))
        );
    }

    #[test]
    fn problems_name_the_entry_at_fault() {
        let f = Faults {
            hosts: vec![HostFault {
                host: "nowhere".into(),
                at_seconds: 1.0,
                becomes: HostFaultKind::Down,
            }],
            actions: vec![ActionFault::default()],
            random: Some(RandomFailures {
                probability: 1.5,
                seed: 1,
                action_types: vec![],
            }),
        };
        let p = f.problems(&["h1"]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("hosts[0].host") && p[0].contains("nowhere"));
        assert!(p[1].starts_with("actions[0]"));
        assert!(p[2].starts_with("random.probability"));
    }

    use crate::testing::{TestCloud, on_both_backends};

    on_both_backends!(
        a_host_goes_down_or_fills_up_when_the_clock_reaches_its_time,
        an_action_fault_fails_the_matching_attempts_then_stops_when_its_times_are_spent,
    );

    fn cloud(t: &TestCloud, faults: &Faults) -> SimDb {
        let mut db = t.open();
        let m: sextant_plugin_api::model::ClusterModel = serde_json::from_value(json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100},
                {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 8192, "disk": 100}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1},
                {"uuid": "i2", "name": "b", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1}
            ]
        }))
        .expect("model");
        db.init_with_faults(&m, 0.0, faults).expect("init");
        db
    }

    fn a_host_goes_down_or_fills_up_when_the_clock_reaches_its_time(t: TestCloud) {
        let faults = Faults {
            hosts: vec![
                HostFault {
                    host: "h2".into(),
                    at_seconds: 90.0,
                    becomes: HostFaultKind::Down,
                },
                HostFault {
                    host: "h3".into(),
                    at_seconds: 150.0,
                    becomes: HostFaultKind::Full,
                },
            ],
            ..Default::default()
        };
        let mut db = cloud(&t, &faults);
        assert_eq!(db.faults().expect("faults"), faults);
        assert_eq!(db.clock().expect("clock"), 0.0);
        // At 60s, h2 is still up.
        db.advance_clock(60.0).expect("advance");
        db.migrate("i1", "h1", "h2").expect("h2 takes i1 at 60s");
        // The clock never goes back.
        db.advance_clock(10.0).expect("advance");
        assert_eq!(db.clock().expect("clock"), 60.0);
        db.advance_clock(120.0).expect("advance");
        let e = db
            .migrate("i2", "h1", "h2")
            .expect_err("h2 is down at 120s");
        assert!(e.to_string().contains("h2 is down"), "{e}");
        db.migrate("i2", "h1", "h3").expect("h3 has room at 120s");
        db.advance_clock(150.0).expect("advance");
        let e = db.migrate("i2", "h3", "h3").expect_err("refused");
        assert!(e.to_string().contains("already on h3"), "{e}");
        let e = db
            .migrate("i1", "h2", "h3")
            .expect_err("h3 is full at 150s");
        assert!(e.to_string().contains("No valid host"), "{e}");
        let n3 = db.node("h3").expect("node").expect("h3");
        assert_eq!((n3.vcpu_reserved, n3.memory_mb_reserved), (8, 8192));
        // Seeding again starts a new run: no fault, clock at 0.
        let m = db.model().expect("model");
        db.init(&m, 0.0).expect("reseed");
        assert!(db.faults().expect("faults").is_empty());
        assert_eq!(db.clock().expect("clock"), 0.0);
    }

    fn an_action_fault_fails_the_matching_attempts_then_stops_when_its_times_are_spent(
        t: TestCloud,
    ) {
        let faults = Faults {
            actions: vec![
                ActionFault {
                    name: Some("m1".into()),
                    times: Some(2),
                    ..Default::default()
                },
                ActionFault {
                    action_type: Some("migrate".into()),
                    parameters: json!({"destination_node": "h3"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut db = cloud(&t, &faults);
        let to_h2 = json!({"resource_id": "i1", "destination_node": "h2"});
        let to_h3 = json!({"resource_id": "i1", "destination_node": "h3"});
        let m1 = call("m1", "migrate", &to_h2);
        let first = db.injected_failure(&m1).expect("db").expect("fails");
        assert!(
            first.contains("actions[0]") && first.contains("m1"),
            "{first}"
        );
        assert!(db.injected_failure(&m1).expect("db").is_some());
        assert_eq!(
            db.injected_failure(&m1).expect("db"),
            None,
            "times: 2 spent"
        );
        for _ in 0..3 {
            let why = db
                .injected_failure(&call("m2", "migrate", &to_h3))
                .expect("db")
                .expect("every attempt to h3 fails");
            assert!(why.contains("actions[1]"), "{why}");
        }
        assert_eq!(
            db.injected_failure(&call("m2", "resize", &to_h3))
                .expect("db"),
            None
        );
    }
}
