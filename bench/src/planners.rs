//! `sextant-bench planners`: planning and storing N actions with each
//! planner (each case in its own process, so peak memory is the case's), and
//! the makespan each planner's plan allows for one consolidation solution.

use serde_json::{Value, json};
use sextant::cli::{CliError, CliResult, Env};
use sextant::plan::makespan::{critical_path, makespan};
use sextant::plan::plan;
use sextant::policy::Limit;
use sextant::store::Store;
use sextant::store::plans::NewPlan;
use sextant_plugin_api::sdk::Action;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// A realistic mix of `n` actions: service disables of drained hosts,
/// migrations off them, resizes, a few nops and sleeps. With
/// `consolidation_only`, only disables and migrations (what
/// node_resource_consolidation accepts). Each action is handed to `each` as
/// it is made, so a caller that keeps only what the planner receives never
/// holds the whole solution as parsed values. Returns the instance hosts.
pub fn realistic_solution(
    n: usize,
    consolidation_only: bool,
    mut each: impl FnMut(Action),
) -> BTreeMap<String, String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let hosts = (n / 10).max(10);
    let drained = (hosts / 10).max(1);
    let host = |i: usize| format!("compute-{i:05}");
    let mut instance_hosts = BTreeMap::new();
    let mut made = 0usize;
    let mut push = |t: &str, p: Value| {
        each(Action {
            id: format!("a{made}"),
            action_type: t.into(),
            resource_id: p["resource_id"].as_str().map(String::from),
            input_parameters: p,
        });
        made += 1;
    };
    for h in 0..drained.min(n) {
        push(
            "change_nova_service_state",
            json!({"resource_id": format!("node-{h}"), "resource_name": host(h), "state": "disabled",
                   "disabled_reason": "watcher_disabled"}),
        );
    }
    let mut vm = 0usize;
    for _ in drained.min(n)..n {
        let roll = if consolidation_only {
            0
        } else {
            rng.below(100)
        };
        vm += 1;
        let uuid = format!("00000000-0000-4000-8000-{vm:012}");
        match roll {
            0..=84 => {
                let src = rng.below(drained);
                let dst = drained + rng.below(hosts - drained);
                instance_hosts.insert(uuid.clone(), host(src));
                push(
                    "migrate",
                    json!({"resource_id": uuid, "migration_type": "live", "source_node": host(src),
                           "destination_node": host(dst)}),
                );
            }
            85..=94 => {
                let h = drained + rng.below(hosts - drained);
                instance_hosts.insert(uuid.clone(), host(h));
                push("resize", json!({"resource_id": uuid, "flavor": "m1.large"}));
            }
            95..=97 => push("nop", json!({"message": "checkpoint"})),
            _ => push("sleep", json!({"duration": 1})),
        }
    }
    instance_hosts
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident memory of this process (VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn planner_config(planner: &str) -> Result<Value, CliError> {
    Ok(match planner {
        "rules" => sextant::policy::load("default")
            .map_err(CliError::input)?
            .planner_config(),
        _ => json!({}),
    })
}

/// One case: plan and store `n` actions with `planner`, `runs` times.
pub fn case(env: &Env, planner: &str, n: usize, runs: usize) -> CliResult {
    let plugins = env.registry()?;
    let durations = sextant::plan::durations(&env.action_types());
    let consolidation_only = planner == "node_resource_consolidation";
    let config = planner_config(planner)?;
    let work = tempfile::Builder::new().prefix("sextant-bench").tempdir()?;
    let (mut solution_ms, mut plan_ms, mut store_ms, mut checkpoint_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut count = 0;
    for r in 0..runs.max(1) {
        // What the planner receives, as an audit hands it over: each
        // action's parameters serialized once (for the planner, and the same
        // text stored with the plan), the parsed form dropped as soon as it
        // is serialized. Making the solution is timed apart.
        let t = Instant::now();
        let mut specs = Vec::with_capacity(n);
        let hosts = realistic_solution(n, consolidation_only, |a| {
            specs.push(sextant::plan::spec(
                &a.id,
                &a.action_type,
                a.resource_id.as_deref(),
                &a.input_parameters,
            ));
        });
        count = specs.len();
        solution_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut planned = plan(&plugins, planner, &config, &hosts, &durations, &specs)
            .map_err(|e| anyhow::anyhow!(e))?;
        drop(hosts);
        plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let mut store = Store::open(work.path().join(format!("run{r}.db")))?;
        let t = Instant::now();
        let extra = json!({"planner": std::mem::take(&mut planned.extra)});
        store.create_plan(&NewPlan {
            planner: Some(planner.into()),
            state: planned.action_plan_state,
            rows: planned.rows(&specs, |_| "1.0.0", sextant::states::ActionState::Pending),
            extra,
            ..Default::default()
        })?;
        store_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // The plan is durable once committed; the WAL checkpoint its commit
        // asked for runs on the store's own thread. Reported apart.
        let t = Instant::now();
        store.wait_for_checkpoints();
        checkpoint_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p, s) = (median(plan_ms), median(store_ms));
    outln!(
        "{}",
        json!({
            "planner": planner, "actions": count, "runs": runs,
            "median_ms_make_solution": median(solution_ms),
            "median_ms_plan": p, "median_ms_store": s, "median_ms_plan_and_store": p + s,
            "median_ms_checkpoint_after": median(checkpoint_ms),
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// The makespan of each planner's plan for 1,000 migrations off 100 hosts,
/// with at most 2 per source host and 10 in all, 60 s each.
fn makespans(env: &Env, planners: &[String]) -> Result<Vec<Value>, CliError> {
    let plugins = env.registry()?;
    let mut rng = Rng(42);
    let hosts = 100;
    let actions: Vec<Action> = (0..1000)
        .map(|i| {
            let src = i % hosts;
            let dst = (src + 1 + rng.below(hosts - 1)) % hosts;
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            Action {
                id: format!("m{i}"),
                action_type: "migrate".into(),
                resource_id: Some(uuid.clone()),
                input_parameters: json!({"resource_id": uuid, "migration_type": "live",
                    "source_node": format!("h{src}"), "destination_node": format!("h{dst}")}),
            }
        })
        .collect();
    let limits = vec![
        Limit {
            action_type: Some("migrate".into()),
            per: Some("source_node".into()),
            max: 2,
        },
        Limit {
            action_type: Some("migrate".into()),
            per: None,
            max: 10,
        },
    ];
    let durations = BTreeMap::from([("migrate".to_string(), 60.0)]);
    let total_work = 1000.0 * 60.0;
    let mut out = Vec::new();
    for planner in planners {
        let config = match planner.as_str() {
            "rules" => json!({"limits": limits}),
            _ => json!({}),
        };
        let specs = sextant::plan::specs(&actions);
        let planned = plan(
            &plugins,
            planner,
            &config,
            &BTreeMap::new(),
            &durations,
            &specs,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let mut parents = vec![Vec::new(); actions.len()];
        for (k, &i) in planned.order.iter().enumerate() {
            parents[i] = planned
                .parents(k)
                .iter()
                .map(|&p| planned.order[p])
                .collect();
        }
        let types: Vec<String> = actions.iter().map(|a| a.action_type.clone()).collect();
        let params: Vec<Value> = actions.iter().map(|a| a.input_parameters.clone()).collect();
        let d = vec![60.0; actions.len()];
        let priorities: Vec<f64> = actions
            .iter()
            .map(|a| planned.extra["priorities"][&a.id].as_f64().unwrap_or(0.0))
            .collect();
        let cp = critical_path(&parents, &d, &planned.order);
        let ms = makespan(&types, &params, &parents, &d, &limits, &priorities, 32);
        let bound = 60.0f64.max(total_work / 10.0);
        out.push(json!({
            "planner": planner, "makespan_s": ms, "lower_bound_s": bound,
            "ratio_to_lower_bound": ms / bound, "plan_critical_path_s": cp,
            "edges": parents.iter().map(Vec::len).sum::<usize>(),
        }));
    }
    Ok(out)
}

/// The whole benchmark: each (planner, size) case in a child process.
pub fn run(env: &Env, sizes: &[usize], planners: &[String], runs: usize) -> CliResult {
    let exe = std::env::current_exe()?;
    let mut planning = Vec::new();
    for planner in planners {
        for &n in sizes {
            // Watcher's node_resource_consolidation makes every migration
            // wait for every disable: about n²/100 edges with this mix.
            if planner == "node_resource_consolidation" && n > 10_000 {
                planning.push(json!({
                    "planner": planner, "actions": n,
                    "skipped": "Watcher's semantics make every migration wait for every disable: about 99 million edges at 100,000 actions, 790 MB as the planner ABI's 8-byte edges alone, over the 200 MB target before anything is stored; not run",
                }));
                continue;
            }
            let mut cmd = std::process::Command::new(&exe);
            crate::child::dies_with_bench(&mut cmd);
            for d in &env.plugin_dirs {
                cmd.arg("--plugin-dir").arg(d);
            }
            if let Some(c) = &env.config.source {
                cmd.arg("--config").arg(c);
            }
            let out = cmd
                .args(["planners", "--case"])
                .arg(format!("{planner}:{n}"))
                .args(["--runs", &runs.to_string()])
                .output()?;
            if !out.status.success() {
                return Err(anyhow::anyhow!(
                    "case {planner}:{n} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let v: Value = serde_json::from_slice(&out.stdout)?;
            planning.push(v);
        }
    }
    let doc = json!({
        "benchmark": "planners",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs,
        "planning": planning,
        "makespan_1000_migrations_100_hosts": makespans(env, planners)?,
        "targets": {"ms_10000_actions": 100, "ms_100000_actions": 1000, "peak_rss_mb_100000": 200,
                    "rules_makespan_ratio": 1.05},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
