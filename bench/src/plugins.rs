//! `sextant-bench plugins`: load time and boundary-call overhead, printed as
//! JSON medians over several runs, with an in-process baseline measured in
//! the same run.

use serde_json::json;
use sextant::cli::{CliError, CliResult, Env};
use sextant::plugins::{Library, discovery};
use sextant_plugin_api::{Kind, PluginError};
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The in-process baseline: the same work as nop's pre_condition, behind a
/// `&dyn` call and the same panic guard the SDK uses.
trait Probe {
    fn pre_condition(&self) -> Result<(), PluginError>;
}

struct LocalNop {
    skip: bool,
    fail: bool,
}

impl Probe for LocalNop {
    #[inline(never)]
    fn pre_condition(&self) -> Result<(), PluginError> {
        if self.skip {
            return Err(PluginError::skipped("Skipped in pre_condition"));
        }
        if self.fail {
            return Err(PluginError::precondition_failed("Failed in pre_condition"));
        }
        Ok(())
    }
}

#[inline(never)]
fn local_call(p: &dyn Probe) -> bool {
    catch_unwind(AssertUnwindSafe(|| p.pre_condition())).is_ok_and(|r| r.is_ok())
}

pub(crate) fn run(
    env: &Env,
    runs: usize,
    counts: &[usize],
    calls: u64,
    plugin: Option<PathBuf>,
) -> CliResult {
    let reg = env.registry()?;
    let source = match plugin {
        Some(p) => p,
        None => reg
            .find(Kind::ActionHandler, "nop")
            .map(|e| e.library.path.clone())
            .ok_or_else(|| {
                CliError::input(anyhow::anyhow!(
                    "no nop handler is loaded; build the plugins or pass --plugin FILE"
                ))
            })?,
    };
    let work = tempfile::Builder::new().prefix("sextant-bench").tempdir()?;

    // Load time: each run loads fresh copies (a path already loaded would be
    // served from the dynamic loader's cache).
    let mut load = Vec::new();
    for &n in counts {
        let mut totals = Vec::new();
        let mut manifest_reads = Vec::new();
        for r in 0..runs {
            let dir = work.path().join(format!("n{n}-r{r}"));
            std::fs::create_dir(&dir)?;
            for i in 0..n {
                std::fs::copy(&source, dir.join(format!("libbench{i:03}.so")))?;
            }
            let t = Instant::now();
            for f in discovery::candidates(&dir).map_err(|r| anyhow::anyhow!(r.reason))? {
                let f = f.map_err(|r| anyhow::anyhow!(r.reason))?;
                black_box(discovery::read_manifest(&f).map_err(|r| anyhow::anyhow!(r.reason))?);
            }
            manifest_reads.push(t.elapsed().as_secs_f64() * 1e3);
            // Discover and load (reading the manifest alone opened nothing),
            // as PluginRegistry::discover does, without its duplicate
            // warnings: every copy declares the same entries.
            let t = Instant::now();
            let mut loaded = 0;
            for f in discovery::candidates(&dir).map_err(|r| anyhow::anyhow!(r.reason))? {
                let f = f.map_err(|r| anyhow::anyhow!(r.reason))?;
                black_box(Library::open(&f).map_err(|r| anyhow::anyhow!(r.reason))?);
                loaded += 1;
            }
            totals.push(t.elapsed().as_secs_f64() * 1e3);
            if loaded != n {
                return Err(anyhow::anyhow!("expected {n} libraries to load, got {loaded}").into());
            }
        }
        let total = median(totals);
        load.push(json!({
            "plugins": n,
            "median_ms_total": total,
            "median_ms_per_plugin": total / n as f64,
            "median_ms_manifest_read_total": median(manifest_reads),
        }));
    }

    // Per-call overhead.
    let handler = reg
        .handler(
            "nop",
            &json!({"message": null}),
            &json!({"action_type": "nop"}),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    let local = LocalNop {
        skip: black_box(false),
        fail: black_box(false),
    };
    let mut plugin_ns = Vec::new();
    let mut local_ns = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..calls {
            black_box(handler.bench_probe());
        }
        plugin_ns.push(t.elapsed().as_nanos() as f64 / calls as f64);
        let t = Instant::now();
        for _ in 0..calls {
            black_box(local_call(black_box(&local)));
        }
        local_ns.push(t.elapsed().as_nanos() as f64 / calls as f64);
    }
    let overheads: Vec<f64> = plugin_ns
        .iter()
        .zip(&local_ns)
        .map(|(p, l)| p - l)
        .collect();
    let ratios: Vec<f64> = plugin_ns
        .iter()
        .zip(&local_ns)
        .map(|(p, l)| p / l)
        .collect();
    let doc = json!({
        "benchmark": "plugins",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs,
        "plugin_file": source,
        "load": load,
        "call": {
            "calls_per_run": calls,
            "median_ns_plugin_call": median(plugin_ns),
            "median_ns_in_process_dyn_call": median(local_ns),
            "median_ns_overhead": median(overheads),
            "median_ratio_plugin_to_in_process": median(ratios),
        },
        "targets": {"ms_per_plugin_loaded": 1.0, "ns_overhead_per_call": 5.0},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
