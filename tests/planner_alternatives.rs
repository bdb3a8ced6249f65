//! Planner-made alternatives (docs/flows.md) through the built binary: a
//! consolidation audit on the simulated cloud, planned by the rules planner
//! through `planners.v2` with the strategy's ranked destinations, where the
//! first destination of some migrations goes down during the plan. The
//! alternatives take over, the plan succeeds, no host ends over capacity
//! and `history` shows each switch.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::collections::BTreeMap;

/// Three big hosts with one 8-vCPU instance each, two small ones with two
/// 2-vCPU instances each: with a quarter of each host left free, the basic
/// consolidation empties the small ones onto two of the big ones.
const CLUSTER: &str = "\
nodes:
  - {uuid: 7c1d6a2e-0a1b-4c3d-8e9f-000000000001, hostname: h1, vcpus: 16, memory: 32768, disk: 500}
  - {uuid: 7c1d6a2e-0a1b-4c3d-8e9f-000000000002, hostname: h2, vcpus: 16, memory: 32768, disk: 500}
  - {uuid: 7c1d6a2e-0a1b-4c3d-8e9f-000000000003, hostname: h3, vcpus: 16, memory: 32768, disk: 500}
  - {uuid: 7c1d6a2e-0a1b-4c3d-8e9f-000000000004, hostname: h4, vcpus: 8, memory: 16384, disk: 200}
  - {uuid: 7c1d6a2e-0a1b-4c3d-8e9f-000000000005, hostname: h5, vcpus: 8, memory: 16384, disk: 200}
instances:
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000a1, name: a1, host: h1, vcpus: 8, memory: 8192, disk: 80}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000a2, name: a2, host: h2, vcpus: 8, memory: 8192, disk: 80}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000a3, name: a3, host: h3, vcpus: 8, memory: 8192, disk: 80}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000b1, name: b1, host: h4, vcpus: 2, memory: 2048, disk: 20}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000b2, name: b2, host: h4, vcpus: 2, memory: 2048, disk: 20}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000c1, name: c1, host: h5, vcpus: 2, memory: 2048, disk: 20}
  - {uuid: 0d8a5f7e-3c1b-4a2e-9f6d-0000000000c2, name: c2, host: h5, vcpus: 2, memory: 2048, disk: 20}
";

/// The default policy's rules, no retries (a down host fails every
/// attempt), two alternatives per migration, an evacuation flow per
/// released host.
const POLICY: &str = "\
name: fallbacks
planner: rules
rules:
  - name: disable-before-evacuate
    first: {action_type: change_nova_service_state, where: {state: disabled}}
    then: {action_type: migrate}
    when_equal: {first: resource_name, then: source_node}
  - name: evacuate-before-power-off
    first: {action_type: migrate}
    then: {action_type: change_node_power_state, where: {state: \"off\"}}
    when_equal: {first: source_node, then: resource_name}
recovery:
  default: {retries: 0, on_failure: continue}
alternatives: {per_action: 2, evacuation_flows: rollback}
";

fn seed(home: &Home, faults: &str) {
    let dir = home.path().join("in");
    let cluster = write_file(&dir, "cluster.yaml", CLUSTER);
    let faults = write_file(&dir, "faults.yaml", faults);
    let out = home.run(&[
        "sim",
        "init",
        "--time-scale",
        "0",
        "--faults",
        faults.to_str().unwrap_or_default(),
        "--from",
        cluster.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
}

fn audit(home: &Home, policy: &str) -> String {
    let policy = write_file(&home.path().join("in"), "policy.yaml", policy);
    let out = home.run(&[
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-p",
        "fallback_room=0.25",
        "--policy",
        policy.to_str().unwrap_or_default(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let a = out.json();
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    a["action_plan"].as_str().expect("a plan").to_string()
}

fn actions(home: &Home, plan: &str) -> Vec<Value> {
    home.run(&["action", "list", "--plan", plan, "--format", "json"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A host, its vCPUs, memory and disk in use, and its capacity.
type HostUse = (String, [u64; 3], [u64; 3]);

/// Instance → host, and each host's use.
fn cloud(home: &Home) -> (BTreeMap<String, String>, Vec<HostUse>) {
    let c = home.run(&["sim", "show", "--format", "json"]).json();
    let mut on = BTreeMap::new();
    let mut used: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for i in c["instances"].as_array().into_iter().flatten() {
        let host = i["host"].as_str().unwrap_or_default().to_string();
        on.insert(
            i["uuid"].as_str().unwrap_or_default().to_string(),
            host.clone(),
        );
        let u = used.entry(host).or_default();
        for (k, key) in ["vcpus", "memory", "disk"].iter().enumerate() {
            u[k] += i[*key].as_u64().unwrap_or(0);
        }
    }
    let hosts = c["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let h = n["hostname"].as_str().unwrap_or_default().to_string();
            let cap = ["vcpus", "memory", "disk"].map(|k| n[k].as_u64().unwrap_or(0));
            let u = used.get(&h).copied().unwrap_or_default();
            (h, u, cap)
        })
        .collect();
    (on, hosts)
}

#[test]
fn the_first_destination_goes_down_and_the_planner_made_alternatives_take_over() {
    let home = Home::new();
    // Plan on a healthy cloud to learn the first destinations.
    seed(&home, "{}\n");
    let plan = audit(&home, POLICY);
    let planned = actions(&home, &plan);
    let migrations: Vec<&Value> = planned
        .iter()
        .filter(|a| a["action_type"] == "migrate" && a["alternative"] == 0)
        .collect();
    assert_eq!(migrations.len(), 4, "{planned:#?}");
    // Every migration has alternatives, none to a host the plan empties.
    for m in &migrations {
        let alts: Vec<&Value> = planned
            .iter()
            .filter(|a| a["alternative_of"] == m["name"] && a["alternative"] != 0)
            .collect();
        assert!(!alts.is_empty(), "no alternative for {}", m["name"]);
        for a in alts {
            let to = a["input_parameters"]["destination_node"]
                .as_str()
                .unwrap_or("");
            assert!(["h1", "h2", "h3"].contains(&to), "{a}");
            assert_ne!(to, m["input_parameters"]["destination_node"], "{a}");
            assert_eq!(
                a["flow"], m["flow"],
                "an alternative is in its primary's flow"
            );
        }
        let source = m["input_parameters"]["source_node"].as_str().unwrap_or("");
        assert_eq!(m["flow"], json!(format!("evacuate-{source}")), "{m}");
    }
    // The first destination of the migrations off h5 goes down once the
    // plan has started (the disables take 2 simulated seconds).
    let first = migrations
        .iter()
        .find(|m| m["input_parameters"]["source_node"] == "h5")
        .and_then(|m| m["input_parameters"]["destination_node"].as_str())
        .expect("a migration off h5")
        .to_string();
    seed(
        &home,
        &format!("hosts:\n  - {{host: {first}, at: 1s, becomes: down}}\n"),
    );
    let out = home.run(&["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let shown = home
        .run(&["action-plan", "show", &plan, "--format", "json"])
        .json();
    assert_eq!(shown["state"], "SUCCEEDED", "{shown}");
    let after = actions(&home, &plan);
    let (on, hosts) = cloud(&home);
    // The migrations to the host that went down failed and an alternative
    // of each succeeded; the hosts were released all the same.
    let failed: Vec<&Value> = after
        .iter()
        .filter(|a| a["action_type"] == "migrate" && a["alternative"] == 0)
        .filter(|a| a["input_parameters"]["destination_node"] == first.as_str())
        .collect();
    assert!(!failed.is_empty());
    let mut switches = Vec::new();
    for m in &failed {
        assert_eq!(m["state"], "FAILED", "{m}");
        assert!(
            m["status_message"].as_str().unwrap_or("").contains("down"),
            "{m}"
        );
        let ran: Vec<&Value> = after
            .iter()
            .filter(|a| a["alternative_of"] == m["name"] && a["state"] == "SUCCEEDED")
            .collect();
        assert_eq!(ran.len(), 1, "{after:#?}");
        let vm = m["input_parameters"]["resource_id"].as_str().unwrap_or("");
        assert_eq!(
            on.get(vm).map(String::as_str),
            ran[0]["input_parameters"]["destination_node"].as_str()
        );
        switches.push((m["name"].clone(), ran[0]["name"].clone()));
    }
    for h in ["h4", "h5"] {
        assert!(
            !on.values().any(|x| x == h),
            "{h} still holds instances: {on:?}"
        );
    }
    for (h, used, cap) in &hosts {
        assert!(
            (0..3).all(|k| used[k] <= cap[k]),
            "{h} is over capacity: {used:?} of {cap:?}"
        );
    }
    // History shows each switch, from the failed primary to the alternative
    // that ran, with why.
    let history = home
        .run(&["history", "--plan", &plan, "--format", "json"])
        .json();
    let events: Vec<&Value> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event_type"] == "action.alternative.start")
        .collect();
    assert_eq!(events.len(), switches.len(), "{history:#}");
    for (from, to) in &switches {
        assert!(
            events
                .iter()
                .any(|e| e["payload"]["from"] == *from && e["payload"]["to"] == *to),
            "no switch {from} -> {to} in {events:#?}"
        );
    }
    let text = home.run(&["history", "--plan", &plan]).stdout;
    assert!(text.contains("action.alternative.start"), "{text}");
}

#[test]
fn a_policy_without_alternatives_plans_flat_as_before() {
    let home = Home::new();
    seed(&home, "{}\n");
    let flat_policy = POLICY.replace(
        "alternatives: {per_action: 2, evacuation_flows: rollback}\n",
        "",
    );
    let plan = audit(&home, &flat_policy);
    let flat = actions(&home, &plan);
    assert!(
        flat.iter()
            .all(|a| a.get("flow").is_none() && a.get("alternative_of").is_none()),
        "{flat:#?}"
    );
    // Asking for alternatives changes nothing of the primaries: the same
    // actions with the same parameters and parents (by name).
    let structured = audit(&home, POLICY);
    let with = actions(&home, &structured);
    let names = |list: &[Value]| -> BTreeMap<String, Value> {
        let by_uuid: BTreeMap<String, String> = list
            .iter()
            .map(|a| {
                (
                    a["uuid"].as_str().unwrap_or("").to_string(),
                    a["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        list.iter()
            .filter(|a| a["alternative"].as_u64().unwrap_or(0) == 0)
            .map(|a| {
                let mut parents: Vec<&str> = a["parents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().and_then(|u| by_uuid.get(u)).map(String::as_str))
                    .collect();
                parents.sort();
                (
                    a["name"].as_str().unwrap_or("").to_string(),
                    json!({"type": a["action_type"], "params": a["input_parameters"], "parents": parents}),
                )
            })
            .collect()
    };
    assert_eq!(names(&flat), names(&with));
    assert!(with.len() > flat.len());
}
