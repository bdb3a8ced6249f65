//! `sextant-bench applier`: the engine's overhead per action (the `nop`
//! handler, durable state), fully parallel and as a chain, and the makespan
//! of a random DAG of sleeps against its lower bound.

use serde_json::{Value, json};
use sextant::apply::{Applier, ApplyOptions, owner_id};
use sextant::cli::{CliResult, Env};
use sextant::plan::makespan::{critical_path, makespan};
use sextant::states::{ActionState, EventType, PlanState};
use sextant::store::Store;
use sextant::store::plans::{NewPlan, NewPlanRow};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn bench_policy() -> sextant::policy::Policy {
    sextant::policy::Policy::parse(
        "name: bench\nplanner: rules\nexecution_rule: STRICT\nsimulate: false\n",
        std::path::Path::new("bench.yaml"),
    )
    .expect("the bench policy parses")
}

/// What running a plan took, in seconds: wall time, and this process's CPU
/// time (user and system, every thread) over the same span.
pub(crate) struct PlanRun {
    pub(crate) secs: f64,
    pub(crate) cpu_s: f64,
}

/// Stores a plan of `actions` (`(type, params, parents by index)`) and runs
/// it; returns what the run took.
pub(crate) fn run_plan(
    env: &Env,
    dir: &std::path::Path,
    name: &str,
    actions: &[(&str, Value, Vec<usize>)],
    workers: usize,
) -> anyhow::Result<PlanRun> {
    let db = dir.join(format!("{name}.db"));
    let plan = store_plan(&db, actions)?;
    apply_plan(env, &db, &plan, workers)
}

/// Stores a RECOMMENDED plan of `actions` in the database at `db`; its uuid.
pub(crate) fn store_plan(
    db: &std::path::Path,
    actions: &[(&str, Value, Vec<usize>)],
) -> anyhow::Result<String> {
    let mut store = Store::open(db)?;
    let names: Vec<String> = (0..actions.len()).map(|i| format!("a{i}")).collect();
    let params: Vec<String> = actions.iter().map(|(_, p, _)| p.to_string()).collect();
    let plan = store.create_plan(&NewPlan {
        state: PlanState::Recommended,
        rows: actions
            .iter()
            .zip(&names)
            .zip(&params)
            .map(|(((t, _, parents), name), json)| NewPlanRow {
                name,
                action_type: t,
                action_type_version: "1.0.0",
                input_parameters_json: json,
                parents,
                state: ActionState::Pending,
            })
            .collect(),
        ..Default::default()
    })?;
    Ok(plan.uuid)
}

/// Applies the stored plan `plan` of the database at `db`; what the run
/// took.
pub(crate) fn apply_plan(
    env: &Env,
    db: &std::path::Path,
    plan: &str,
    workers: usize,
) -> anyhow::Result<PlanRun> {
    // Applied with a connection of its own, as `action-plan start` does:
    // not one whose cache the plan's insert filled.
    let store = Store::open(db)?;
    let plugins = Arc::new(env.registry().map_err(|e| e.error)?);
    let types = Arc::new(env.action_types());
    let applier = Applier::new(
        store,
        plugins,
        types,
        plan,
        ApplyOptions {
            policy: bench_policy(),
            execution_rule: None,
            max_workers: workers,
            owner: owner_id(),
            mapper: env.config.mapper.clone(),
            drivers: env.config.drivers.clone(),
            driver_config: sextant::config::Secret::new(env.driver_config()),
            stop: sextant::apply::StopSignal::default(),
            grace: sextant::apply::DEFAULT_GRACE,
            model_source: Some(env.model_source()),
        },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (t, cpu) = (Instant::now(), crate::child::own_cpu_seconds());
    let outcome = rt.block_on(applier.run())?;
    let secs = t.elapsed().as_secs_f64();
    let cpu_s = crate::child::own_cpu_seconds() - cpu;
    anyhow::ensure!(
        outcome.state == PlanState::Succeeded,
        "the bench plan ended {}",
        outcome.state
    );
    Ok(PlanRun { secs, cpu_s })
}

/// The baseline, measured in the same run: what a chain of `n` actions
/// costs in the store alone, with no engine, no plugin and no thread: one
/// transaction per action that commits the previous action's SUCCEEDED
/// and this one's ONGOING with their events (what the applier commits per
/// action of a chain), checkpoints on the store's thread. Microseconds per commit.
fn durable_commit_floor(dir: &std::path::Path, name: &str, n: usize) -> anyhow::Result<f64> {
    durable_commit_floor_at(dir.join(format!("{name}.db")), n)
}

/// [`durable_commit_floor`] on the store at `at` (either backend).
pub(crate) fn durable_commit_floor_at(
    at: impl Into<sextant::store::location::Location>,
    n: usize,
) -> anyhow::Result<f64> {
    use sextant::store::apply::ActionTransition;
    let mut store = Store::open(at)?;
    let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let parents: Vec<Vec<usize>> = (0..n)
        .map(|i| if i > 0 { vec![i - 1] } else { vec![] })
        .collect();
    let plan = store.create_plan(&NewPlan {
        state: PlanState::Recommended,
        rows: names
            .iter()
            .zip(&parents)
            .map(|(name, parents)| NewPlanRow {
                name,
                action_type: "nop",
                action_type_version: "1.0.0",
                input_parameters_json: r#"{"message":null}"#,
                parents,
                state: ActionState::Pending,
            })
            .collect(),
        ..Default::default()
    })?;
    let rows = store.actions(&plan.uuid)?;
    let transition = |k: usize, from: ActionState, to: ActionState, event: EventType| {
        let outputs = (to == ActionState::Succeeded).then(|| json!({}));
        ActionTransition::new(&rows[k].uuid, &[from], to, None, outputs, event)
            .known(&plan.uuid, &rows[k].name)
    };
    let t = Instant::now();
    for k in 0..rows.len() {
        let mut batch = Vec::with_capacity(2);
        if k > 0 {
            batch.push(transition(
                k - 1,
                ActionState::Ongoing,
                ActionState::Succeeded,
                EventType::ActionExecutionEnd,
            ));
        }
        batch.push(transition(
            k,
            ActionState::Pending,
            ActionState::Ongoing,
            EventType::ActionExecutionStart,
        ));
        for r in store.action_transitions(&batch)? {
            anyhow::ensure!(matches!(r, Ok(true)), "a baseline transition did not apply");
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64)
}

pub fn run(env: &Env, sizes: &[usize], runs: usize) -> CliResult {
    let dir = tempfile::Builder::new().prefix("sextant-bench").tempdir()?;
    let nop = json!({"message": null});
    let mut overhead = Vec::new();
    let floor = median(
        (0..runs.max(1))
            .map(|r| durable_commit_floor(dir.path(), &format!("floor-{r}"), 2000))
            .collect::<anyhow::Result<Vec<f64>>>()?,
    );
    for &n in sizes {
        for shape in ["parallel", "chain"] {
            let actions: Vec<(&str, Value, Vec<usize>)> = (0..n)
                .map(|i| {
                    let parents = if shape == "chain" && i > 0 {
                        vec![i - 1]
                    } else {
                        vec![]
                    };
                    ("nop", nop.clone(), parents)
                })
                .collect();
            let mut per_action_us = Vec::new();
            for r in 0..runs.max(1) {
                let secs =
                    run_plan(env, dir.path(), &format!("{shape}-{n}-{r}"), &actions, 32)?.secs;
                per_action_us.push(secs * 1e6 / n as f64);
            }
            let us = median(per_action_us);
            overhead.push(json!({
                "shape": shape, "actions": n, "runs": runs,
                "median_us_per_action": us,
                "ratio_to_durable_commit_floor": us / floor,
            }));
        }
    }
    // The makespan of a random DAG of 400 sleeps of 50 ms on 16 workers.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |k: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % k.max(1)
    };
    let n = 400;
    let actions: Vec<(&str, Value, Vec<usize>)> = (0..n)
        .map(|i| {
            let mut parents = Vec::new();
            if i > 0 {
                for _ in 0..next(3) {
                    let p = next(i as u64) as usize;
                    if !parents.contains(&p) {
                        parents.push(p);
                    }
                }
            }
            ("sleep", json!({"duration": 0.05}), parents)
        })
        .collect();
    let parents: Vec<Vec<usize>> = actions.iter().map(|a| a.2.clone()).collect();
    let cp = critical_path(&parents, &vec![0.05; n], &(0..n).collect::<Vec<_>>());
    let bound = cp.max(n as f64 * 0.05 / 16.0);
    // What a list scheduler with no overhead at all achieves on this DAG,
    // the longest path to the end first (as the applier orders a plan that
    // comes without priorities): the part of the gap that is not the
    // engine's.
    let mut level = vec![0.0f64; n];
    for i in (0..n).rev() {
        level[i] += 0.05;
        for &p in &parents[i] {
            level[p] = level[p].max(level[i]);
        }
    }
    let ideal = makespan(
        &vec!["sleep".to_string(); n],
        &vec![Value::Null; n],
        &parents,
        &vec![0.05; n],
        &[],
        &level,
        16,
    );
    let mut efficiency = Vec::new();
    let mut walls = Vec::new();
    for r in 0..runs.max(1) {
        let secs = run_plan(env, dir.path(), &format!("dag-{r}"), &actions, 16)?.secs;
        walls.push(secs);
        efficiency.push(bound / secs);
    }
    let wall = median(walls);
    let doc = json!({
        "benchmark": "applier",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs,
        "overhead": overhead,
        "durable_commit_floor": {
            "what": "one store transaction per action of a 2,000-action chain (the previous action's SUCCEEDED and this one's ONGOING, with their events), no engine",
            "median_us_per_commit": floor,
        },
        "makespan_random_dag": {
            "actions": n, "sleep_s": 0.05, "workers": 16,
            "critical_path_s": cp, "lower_bound_s": bound,
            "median_wall_s": wall, "median_efficiency": median(efficiency),
            "zero_overhead_list_schedule_s": ideal,
            "median_efficiency_vs_zero_overhead_schedule": ideal / wall,
        },
        "targets": {"median_us_per_action": 50, "efficiency": 0.95},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
