//! `sextant-bench import`: `action-plan import` of N actions with random
//! DAG edges (each action waits for up to two of the previous thousand),
//! against the same actions with no edges, in the same run. Each import is
//! the built binary itself in a child process with a fresh database, so
//! its wall time and peak memory (`wait4`'s `ru_maxrss`) are the command's.

use crate::child::{median, run_child};
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// What the actions of a generated file wait for and read.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// No parents: the baseline.
    NoEdges,
    /// Up to two parents among the previous thousand.
    Edges,
    /// The same edges; every tenth action with a parent reads its first
    /// parent's outputs, so the ancestor check runs.
    EdgesAndReferences,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::NoEdges => "no_edges",
            Variant::Edges => "edges",
            Variant::EdgesAndReferences => "edges_and_references",
        }
    }
}

/// Writes the import file of `n` `nop` actions; returns its edge and
/// reference counts. The edges are the same for both variants with edges.
fn write_file(path: &Path, n: usize, variant: Variant) -> anyhow::Result<(usize, usize)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"{\"actions\": [\n")?;
    let (mut edges, mut refs) = (0, 0);
    let mut parents = Vec::with_capacity(2);
    for i in 0..n {
        parents.clear();
        for _ in 0..rng.below(3) {
            if i == 0 {
                break;
            }
            let p = i - 1 - rng.below(i.min(1000));
            if !parents.contains(&p) {
                parents.push(p);
            }
        }
        if variant == Variant::NoEdges {
            parents.clear();
        }
        edges += parents.len();
        let message = match parents.first() {
            Some(p) if variant == Variant::EdgesAndReferences && i % 10 == 0 => {
                refs += 1;
                format!("{{{{ actions.a{p}.outputs.message }}}}")
            }
            _ => format!("action {i}"),
        };
        let action = json!({
            "id": format!("a{i}"),
            "action_type": "nop",
            "input_parameters": {"message": message},
            "parents": parents.iter().map(|p| format!("a{p}")).collect::<Vec<_>>(),
        });
        if i > 0 {
            out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut out, &action)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok((edges, refs))
}

/// Runs `sextant action-plan import FILE` in a child on a fresh database;
/// returns its wall time in seconds and peak resident memory in MB.
fn import_once(env: &Env, file: &Path, work: &Path) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::Builder::new().prefix("import").tempdir_in(work)?;
    let run = run_child(
        env,
        dir.path().join("sextant.db"),
        [
            OsStr::new("action-plan"),
            OsStr::new("import"),
            file.as_os_str(),
        ],
        false,
    )?;
    Ok((run.secs, run.peak_mb))
}

/// The benchmark: for each size, the three variants' imports interleaved
/// run by run, so they share the machine's noise.
pub fn run(env: &Env, sizes: &[usize], runs: usize) -> CliResult {
    let work = tempfile::Builder::new()
        .prefix("sextant-bench-import")
        .tempdir()?;
    let variants = [
        Variant::NoEdges,
        Variant::Edges,
        Variant::EdgesAndReferences,
    ];
    let mut cases = Vec::new();
    for &n in sizes {
        let mut files: Vec<(Variant, PathBuf, usize, usize)> = Vec::new();
        for v in variants {
            let f = work.path().join(format!("{}-{n}.json", v.name()));
            let (edges, refs) = write_file(&f, n, v)?;
            files.push((v, f, edges, refs));
        }
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); files.len()];
        let mut rss: Vec<Vec<f64>> = vec![Vec::new(); files.len()];
        for _ in 0..runs.max(1) {
            for (k, (_, f, _, _)) in files.iter().enumerate() {
                let (s, m) = import_once(env, f, work.path())?;
                secs[k].push(s);
                rss[k].push(m);
            }
        }
        let figures: Vec<(f64, f64)> = secs
            .into_iter()
            .zip(rss)
            .map(|(s, m)| (median(s), median(m)))
            .collect();
        let (base_s, base_mb) = figures[0];
        let mut case = serde_json::Map::new();
        case.insert("actions".into(), json!(n));
        for ((v, f, edges, refs), (s, mb)) in files.iter().zip(&figures) {
            let mut fig = json!({
                "edges": edges,
                "references": refs,
                "file_mb": std::fs::metadata(f)?.len() as f64 / 1e6,
                "median_s": s,
                "median_peak_rss_mb": mb,
            });
            if *v != Variant::NoEdges {
                fig["ratio_s_to_no_edges"] = json!(s / base_s);
                fig["ratio_peak_rss_to_no_edges"] = json!(mb / base_mb);
            }
            case.insert(v.name().into(), fig);
        }
        cases.push(Value::Object(case));
        for (_, f, _, _) in &files {
            std::fs::remove_file(f)?;
        }
    }
    let doc = json!({
        "benchmark": "import",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "runs": runs.max(1),
        "command": "sextant action-plan import FILE (a child process, fresh database)",
        "import": cases,
        "targets": {"ratio_to_no_edges": 1.5},
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
