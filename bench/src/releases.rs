//! `sextant-bench releases`: host releases achieved by a consolidation on
//! the simulated medium cluster when some migrations' destinations fail,
//! with planner-made alternatives against without them.
//!
//! Per failure rate and seed, twice (alternatives on, then off, everything
//! else equal): a fresh simulated cloud seeded from the medium example with
//! `random` faults (that share of migrations fails, drawn from the seed and
//! each migration's parameters, so an alternative with another destination
//! is drawn apart), a `server_consolidation` audit (the basic strategy,
//! leaving `--room` of each host free) planned by the rules planner with a
//! policy asking for `--per-action` alternatives per migration (0: none)
//! and an evacuation flow per released host (rolled back when it fails),
//! then `action-plan start --wait`. A planned release is achieved when the
//! host holds no instance at the end. The makespan is the simulated clock
//! at the end (simulated seconds, from the action types' estimated
//! durations). Every command is the built `sextant` binary in a child
//! process; the figures are medians over the seeds.

use crate::child::median;
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

/// The medium example cluster.
const MEDIUM: &str = include_str!("../../examples/clusters/medium.yaml");

/// The default policy's ordering rules and limits, no retries (a random
/// fault fails every attempt of the same action), and the alternatives and
/// flows asked for.
fn policy(per_action: u32) -> String {
    format!(
        "name: releases-bench\n\
         planner: rules\n\
         rules:\n\
         \x20 - {{name: power-on-before-enable, first: {{action_type: change_node_power_state, where: {{state: \"on\"}}}}, then: {{action_type: change_nova_service_state, where: {{state: enabled}}}}, when_equal: {{first: resource_name, then: resource_name}}}}\n\
         \x20 - {{name: enable-before-receive, first: {{action_type: change_nova_service_state, where: {{state: enabled}}}}, then: {{action_type: migrate}}, when_equal: {{first: resource_name, then: destination_node}}}}\n\
         \x20 - {{name: disable-before-evacuate, first: {{action_type: change_nova_service_state, where: {{state: disabled}}}}, then: {{action_type: migrate}}, when_equal: {{first: resource_name, then: source_node}}}}\n\
         \x20 - {{name: evacuate-before-power-off, first: {{action_type: migrate}}, then: {{action_type: change_node_power_state, where: {{state: \"off\"}}}}, when_equal: {{first: source_node, then: resource_name}}}}\n\
         limits:\n\
         \x20 - {{action_type: migrate, per: source_node, max: 2}}\n\
         \x20 - {{action_type: migrate, per: destination_node, max: 2}}\n\
         \x20 - {{action_type: migrate, max: 10}}\n\
         recovery:\n\
         \x20 default: {{retries: 0, on_failure: continue}}\n\
         alternatives: {{per_action: {per_action}, evacuation_flows: rollback}}\n"
    )
}

/// Runs `sextant --db DB ARGS…` (with the caller's plugin directories
/// and config) to completion.
fn sextant(env: &Env, db: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = std::process::Command::new(crate::sextant_exe()?);
    crate::child::dies_with_bench(&mut cmd);
    for d in &env.plugin_dirs {
        cmd.arg("--plugin-dir").arg(d);
    }
    if let Some(c) = &env.config.source {
        cmd.arg("--config").arg(c);
    }
    Ok(cmd
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?)
}

/// [`sextant`], which must succeed; its standard output.
fn ok(env: &Env, db: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = sextant(env, db, args)?;
    anyhow::ensure!(
        out.status.success(),
        "sextant {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One run: a consolidation with `rate` of the migrations failing.
struct Run {
    planned: usize,
    released: usize,
    makespan_s: f64,
    alternatives: usize,
    alternatives_run: usize,
    over_capacity: usize,
    plan_state: String,
}

fn one(env: &Env, rate: f64, seed: u64, room: f64, per_action: u32) -> anyhow::Result<Run> {
    let dir = tempfile::Builder::new()
        .prefix("sextant-releases")
        .tempdir()?;
    let db = dir.path().join("sextant.db");
    let cluster = dir.path().join("medium.yaml");
    std::fs::write(&cluster, MEDIUM)?;
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        format!("random: {{probability: {rate}, seed: {seed}, action_types: [migrate]}}\n"),
    )?;
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy(per_action))?;
    let path = |p: &Path| p.display().to_string();
    ok(
        env,
        &db,
        &[
            "sim",
            "init",
            "--time-scale",
            "0",
            "--faults",
            &path(&faults),
            "--from",
            &path(&cluster),
        ],
    )?;
    let audit: Value = serde_json::from_str(&ok(
        env,
        &db,
        &[
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "-p",
            &format!("fallback_room={room}"),
            "--policy",
            &path(&policy_file),
            "--format",
            "json",
        ],
    )?)?;
    let plan = audit["action_plan"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the audit made no plan: {audit}"))?
        .to_string();
    // A plan with a failed flow ends FAILED (exit status 1): that is a
    // result, not an error.
    let status = sextant(
        env,
        &db,
        &[
            "action-plan",
            "start",
            &plan,
            "--wait",
            "--policy",
            &path(&policy_file),
        ],
    )?
    .status
    .code()
    .unwrap_or(-1);
    anyhow::ensure!(
        (0..=1).contains(&status),
        "action-plan start exited with {status}"
    );
    let shown: Value = serde_json::from_str(&ok(
        env,
        &db,
        &["action-plan", "show", &plan, "--format", "json"],
    )?)?;
    let actions: Value = serde_json::from_str(&ok(
        env,
        &db,
        &["action", "list", "--plan", &plan, "--format", "json"],
    )?)?;
    let cloud: Value = serde_json::from_str(&ok(env, &db, &["sim", "show", "--format", "json"])?)?;
    let text = ok(env, &db, &["sim", "show"])?;
    let makespan_s = text
        .split("simulated clock ")
        .nth(1)
        .and_then(|t| t.split('s').next())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let actions = actions.as_array().cloned().unwrap_or_default();
    let planned: BTreeSet<String> = actions
        .iter()
        .filter(|a| {
            a["action_type"] == "change_nova_service_state"
                && a["input_parameters"]["state"] == "disabled"
        })
        .filter_map(|a| a["input_parameters"]["resource_name"].as_str())
        .map(str::to_string)
        .collect();
    let mut used: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for i in cloud["instances"].as_array().into_iter().flatten() {
        let u = used.entry(i["host"].as_str().unwrap_or("")).or_default();
        for (k, key) in ["vcpus", "memory", "disk"].iter().enumerate() {
            u[k] += i[*key].as_u64().unwrap_or(0);
        }
    }
    let over_capacity = cloud["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            let u = used
                .get(n["hostname"].as_str().unwrap_or(""))
                .copied()
                .unwrap_or_default();
            ["vcpus", "memory", "disk"]
                .iter()
                .enumerate()
                .any(|(k, key)| u[k] > n[*key].as_u64().unwrap_or(0))
        })
        .count();
    let released = planned
        .iter()
        .filter(|h| !used.contains_key(h.as_str()))
        .count();
    let alternative = |a: &&Value| a["alternative"].as_u64().is_some_and(|r| r > 0);
    Ok(Run {
        planned: planned.len(),
        released,
        makespan_s,
        alternatives: actions.iter().filter(alternative).count(),
        alternatives_run: actions
            .iter()
            .filter(alternative)
            .filter(|a| a["state"] == "SUCCEEDED" || a["state"] == "FAILED")
            .count(),
        over_capacity,
        plan_state: shown["state"].as_str().unwrap_or("").to_string(),
    })
}

fn summary(runs: &[Run]) -> Value {
    let share: Vec<f64> = runs
        .iter()
        .map(|r| r.released as f64 / r.planned.max(1) as f64)
        .collect();
    json!({
        "share_of_planned_releases_median": median(share),
        "released_median": median(runs.iter().map(|r| r.released as f64).collect()),
        "planned_median": median(runs.iter().map(|r| r.planned as f64).collect()),
        "makespan_simulated_s_median": median(runs.iter().map(|r| r.makespan_s).collect()),
        "alternatives_planned_median": median(runs.iter().map(|r| r.alternatives as f64).collect()),
        "alternatives_run_median": median(runs.iter().map(|r| r.alternatives_run as f64).collect()),
        "hosts_over_capacity_max": runs.iter().map(|r| r.over_capacity).max().unwrap_or(0),
        "runs": runs.iter().map(|r| json!({
            "planned": r.planned, "released": r.released, "makespan_simulated_s": r.makespan_s,
            "alternatives": r.alternatives, "alternatives_run": r.alternatives_run,
            "hosts_over_capacity": r.over_capacity, "plan": r.plan_state,
        })).collect::<Vec<_>>(),
    })
}

/// Runs the benchmark and prints its JSON.
pub(crate) fn run(
    env: &Env,
    rates: &[f64],
    seeds: &[u64],
    room: f64,
    per_action: u32,
) -> CliResult {
    let mut by_rate = Vec::new();
    let mut target_share = None;
    for &rate in rates {
        let mut with = Vec::new();
        let mut without = Vec::new();
        for &seed in seeds {
            with.push(one(env, rate, seed, room, per_action)?);
            without.push(one(env, rate, seed, room, 0)?);
        }
        let w = summary(&with);
        if (rate - 0.10).abs() < 1e-9 {
            target_share = w["share_of_planned_releases_median"].as_f64();
        }
        by_rate.push(json!({
            "migration_failure_rate": rate,
            "with_alternatives": w,
            "without_alternatives": summary(&without),
        }));
    }
    let doc = json!({
        "benchmark": "releases",
        "cluster": "examples/clusters/medium.yaml",
        "strategy": "basic (server_consolidation)",
        "fallback_room": room,
        "alternatives_per_migration": per_action,
        "evacuation_flows": "rollback",
        "seeds": seeds,
        "rates": by_rate,
        "target": {
            "at_failure_rate": 0.10,
            "share_with_alternatives_at_least": 0.95,
            "measured": target_share,
            "met": target_share.map(|s| s >= 0.95),
        },
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
