//! `sextant-bench user-path`: the commands an operator runs, as child
//! processes of the built `sextant` binary, against the same work done in
//! this process in the same run (the figures `sextant-bench planners` and
//! `applier` report):
//!
//! * `plan --input FILE` (and `--save`) of N `weight` migrations, against
//!   planning and storing the same solution in process;
//! * `action-plan import`, `action-plan start --wait` (the default
//!   policy: the whole plan simulated first), `action-plan show` and
//!   `action list` of M independent `nop` actions, against the applier's
//!   engine on the same plan in process (no simulation).
//!
//! The target is a ratio of at most 1.5. Each figure is given in wall time
//! and in CPU time (user and system, every thread: the child's from
//! `wait4`, this process's from `getrusage` over the same span), which a
//! loaded machine disturbs less.

use crate::child::{median, run_child};
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use sextant::store::Store;
use sextant::store::plans::NewPlan;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Writes the `plan --input` file: `n` live migrations, each with a
/// resource id, spread over a thousand hosts.
pub(crate) fn write_plan_input(path: &Path, n: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"{\"planner\": \"weight\", \"solution\": [\n")?;
    for i in 0..n {
        if i > 0 {
            out.write_all(b",\n")?;
        }
        let a = json!({
            "id": format!("a{i}"),
            "action_type": "migrate",
            "resource_id": format!("00000000-0000-4000-8000-{i:012}"),
            "input_parameters": {
                "migration_type": "live",
                "source_node": format!("compute-{:04}", i % 1000),
                "destination_node": format!("compute-{:04}", (i * 7 + 1) % 1000),
            },
        });
        serde_json::to_writer(&mut out, &a)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(())
}

/// Writes the import file: `n` independent `nop` actions.
fn write_nops(path: &Path, n: usize) -> anyhow::Result<()> {
    let actions: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("n{i}"), "action_type": "nop", "input_parameters": {"message": format!("n{i}")}}))
        .collect();
    std::fs::write(path, serde_json::to_vec(&json!({ "actions": actions }))?)?;
    Ok(())
}

/// Plans and stores the file's solution in this process; returns the
/// seconds of (planning, planning and storing, this process's CPU time
/// planning and storing).
pub(crate) fn plan_in_process(
    env: &Env,
    file: &Path,
    db: impl Into<sextant::store::location::Location>,
) -> anyhow::Result<(f64, f64, f64)> {
    let text = std::fs::read_to_string(file)?;
    let req = sextant::plan::read_input(&text)?;
    drop(text);
    let plugins = env.registry().map_err(|e| e.error)?;
    let durations = sextant::plan::durations(&env.action_types());
    let mut store = Store::open(db)?;
    let (t, cpu) = (Instant::now(), crate::child::own_cpu_seconds());
    let planned = sextant::plan::plan(
        &plugins,
        &req.planner,
        &req.config,
        &req.instance_hosts,
        &durations,
        &req.actions,
    )?;
    let plan_s = t.elapsed().as_secs_f64();
    store.create_plan(&NewPlan {
        planner: Some(req.planner.clone()),
        state: planned.action_plan_state,
        rows: planned.rows(&req.actions, |_| "", sextant::states::ActionState::Pending),
        extra: json!({"planner": planned.extra}),
        ..Default::default()
    })?;
    Ok((
        plan_s,
        t.elapsed().as_secs_f64(),
        crate::child::own_cpu_seconds() - cpu,
    ))
}

/// Run by run ratios `a[r] / b[r]` (each pair measured back to back).
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// The benchmark.
pub fn run(env: &Env, plan_actions: usize, apply_actions: usize, runs: usize) -> CliResult {
    let runs = runs.max(1);
    let work = tempfile::Builder::new()
        .prefix("sextant-bench-user-path")
        .tempdir()?;
    let w = work.path();
    let plan_file = w.join("plan-input.json");
    write_plan_input(&plan_file, plan_actions)?;
    let nop_file = w.join("nops.json");
    write_nops(&nop_file, apply_actions)?;
    let nops: Vec<(&str, Value, Vec<usize>)> = (0..apply_actions)
        .map(|i| ("nop", json!({"message": format!("n{i}")}), Vec::new()))
        .collect();

    let (mut cli_plan, mut cli_plan_mb, mut cli_save, mut in_plan, mut in_plan_store) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut import, mut start, mut show, mut list, mut start_mb, mut engine) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut start_cpu, mut engine_cpu, mut cli_save_cpu, mut in_plan_store_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved run by run, so the user's path and its baseline share
    // the machine's noise.
    for r in 0..runs {
        let db = w.join(format!("plan-{r}.db"));
        let run = run_child(
            env,
            &db,
            [
                "plan",
                "--input",
                &plan_file.to_string_lossy(),
                "--format",
                "json",
            ],
            false,
        )?;
        cli_plan.push(run.secs);
        cli_plan_mb.push(run.peak_mb);
        let run = run_child(
            env,
            &db,
            [
                "plan",
                "--input",
                &plan_file.to_string_lossy(),
                "--save",
                "--format",
                "json",
            ],
            false,
        )?;
        cli_save.push(run.secs);
        cli_save_cpu.push(run.cpu_s);
        let (p, ps, ps_cpu) = plan_in_process(env, &plan_file, w.join(format!("plan-in-{r}.db")))?;
        in_plan.push(p);
        in_plan_store.push(ps);
        in_plan_store_cpu.push(ps_cpu);

        let db = w.join(format!("apply-{r}.db"));
        let run = run_child(
            env,
            &db,
            ["action-plan", "import", &nop_file.to_string_lossy()],
            true,
        )?;
        import.push(run.secs);
        let uuid = run.stdout.trim().to_string();
        let run = run_child(env, &db, ["action-plan", "start", &uuid, "--wait"], false)?;
        start.push(run.secs);
        start_cpu.push(run.cpu_s);
        start_mb.push(run.peak_mb);
        show.push(
            run_child(
                env,
                &db,
                ["action-plan", "show", &uuid, "--format", "json"],
                false,
            )?
            .secs,
        );
        list.push(
            run_child(
                env,
                &db,
                ["action", "list", "--plan", &uuid, "--format", "json"],
                false,
            )?
            .secs,
        );
        let e = crate::applier::run_plan(env, w, &format!("engine-{r}"), &nops, 32)?;
        engine.push(e.secs);
        engine_cpu.push(e.cpu_s);
    }
    let per_action = |s: f64| s / apply_actions.max(1) as f64 * 1e6;
    let (cli_plan, cli_save, in_plan, in_plan_store) = (
        median(cli_plan),
        median(cli_save),
        median(in_plan),
        median(in_plan_store),
    );
    let (start_s, engine_s) = (median(start), median(engine));
    let doc = json!({
        "benchmark": "user_path",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs,
        "plan_input": {
            "actions": plan_actions,
            "planner": "weight",
            "median_s_plan_input": cli_plan,
            "median_peak_rss_mb_plan_input": median(cli_plan_mb),
            "median_s_plan_input_save": cli_save,
            "in_process_median_s_plan": in_plan,
            "in_process_median_s_plan_and_store": in_plan_store,
            "ratio_plan_input_to_in_process_plan_and_store": cli_plan / in_plan_store,
            "ratio_plan_input_save_to_in_process_plan_and_store": cli_save / in_plan_store,
            "median_cpu_s_plan_input_save": median(cli_save_cpu.clone()),
            "in_process_median_cpu_s_plan_and_store": median(in_plan_store_cpu.clone()),
            "cpu_ratio_plan_input_save_to_in_process_plan_and_store":
                median(ratios(&cli_save_cpu, &in_plan_store_cpu)),
        },
        "apply": {
            "actions": apply_actions,
            "median_s_import": median(import),
            "median_s_start_wait": start_s,
            "median_us_per_action_start_wait": per_action(start_s),
            "median_peak_rss_mb_start_wait": median(start_mb),
            "median_s_show": median(show),
            "median_s_action_list": median(list),
            "in_process_median_us_per_action_engine": per_action(engine_s),
            "ratio_start_wait_to_in_process_engine": start_s / engine_s,
            "median_cpu_s_start_wait": median(start_cpu.clone()),
            "in_process_median_cpu_s_engine": median(engine_cpu.clone()),
            "cpu_ratio_start_wait_to_in_process_engine": median(ratios(&start_cpu, &engine_cpu)),
        },
        "targets": {"ratio": 1.5},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
