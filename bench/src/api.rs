//! `sextant-bench api`: the REST API under load, in a `sextant serve
//! --api` child process on SQLite (or, with `--pg URL`, on a fresh
//! database of that PostgreSQL server, dropped after the run), while that
//! same process applies a plan of N `nop` actions:
//!
//! * requests per second and p50/p99 latency at each client count for
//!   `GET /v1/actions?action_plan_uuid=…&limit=1000` on another N-action
//!   plan, `GET /v1/goals`, and `POST /v1/audits` of the `dummy` goal
//!   (ONESHOT; with a plan ONGOING, the engine cancels it at once, as
//!   Watcher's does unless forced);
//! * the applier's time per action (from its plan's
//!   `action_plan.execution.start` and `.end` events, so the serve loop's
//!   dispatch delay is not counted) with no API traffic, and with the
//!   traffic above; targets: p99 under 50 ms for the list at 64 clients,
//!   and at most 1.2 times the applier's time per action.
//!
//! Each run uses a fresh home and database; the figures are the medians
//! of the runs, and the machine's load average is reported before and
//! after, as other work on the machine moves them.

use crate::child::{median, run_child};
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use sextant::states::{EventType, PlanState};
use sextant::store::{Location, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The most plans imported for one run's traffic phase.
const MAX_PLANS: usize = 40;

/// Plans applied alone before the traffic; their median is the baseline.
const ALONE_PLANS: usize = 3;

/// What one (endpoint, clients) cell measured.
struct Cell {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: usize,
    errors: usize,
    /// The cell's window, Unix seconds.
    from: f64,
    to: f64,
    /// The applier's ms per action while a plan ran in this window.
    applier_ms: f64,
}

/// What the traffic is: the plans' size, the client counts, the seconds
/// per cell, and the client threads' nice value.
pub struct Load<'a> {
    /// Actions of the listed plan and of each applied plan.
    pub actions: usize,
    /// The client counts, one cell each per endpoint.
    pub clients: &'a [usize],
    /// Seconds per cell.
    pub secs: f64,
    /// The client threads' nice value (0: the server's own, where its
    /// applier runs).
    pub client_nice: i32,
    /// At most this many requests a second from all the clients together
    /// (each waits for its turn before it sends, and its latency counts
    /// from the send); none: back to back.
    pub rate: Option<f64>,
}

/// One load: `clients` threads at `nice` sending `req` back to back for
/// `secs`, or at most `rate` a second together.
fn load(
    clients: usize,
    secs: f64,
    nice: i32,
    rate: Option<f64>,
    req: Arc<dyn Fn(&ureq::Agent) -> bool + Send + Sync>,
) -> Cell {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    // The next send slot, shared by the clients when paced.
    let pacer = Arc::new(std::sync::Mutex::new(Instant::now()));
    let started = Instant::now();
    let from = unix_now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let req = Arc::clone(&req);
            let pacer = Arc::clone(&pacer);
            std::thread::spawn(move || {
                if nice != 0 {
                    // SAFETY: on Linux, PRIO_PROCESS of 0 is the calling
                    // thread alone; a failure leaves it at the default.
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                    }
                }
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    if let Some(rate) = rate {
                        let slot = {
                            let mut next = pacer.lock().unwrap_or_else(|e| e.into_inner());
                            let slot = (*next).max(Instant::now());
                            *next = slot + Duration::from_secs_f64(1.0 / rate);
                            slot
                        };
                        std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    let t = Instant::now();
                    if req(&agent) {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in threads {
        if let Ok((l, e)) = t.join() {
            all.extend(l);
            errors += e;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1]
        }
    };
    Cell {
        rps: all.len() as f64 / wall,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        requests: all.len(),
        errors,
        from,
        to: unix_now(),
        applier_ms: f64::NAN,
    }
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// A plan's execution: its span (start, end) once it ended, and the times
/// its actions ended, Unix seconds.
struct PlanTimes {
    span: Option<(f64, f64)>,
    ends: Vec<f64>,
}

/// A plan's execution times, read from its events.
fn plan_times(db: &Location, plan: &str) -> anyhow::Result<PlanTimes> {
    let store = Store::open(db)?;
    let (mut start, mut end, mut after, mut ends) = (None, None, 0, Vec::new());
    loop {
        let page = store.events_page(Some(plan), after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in &page {
            let at = chrono::DateTime::parse_from_rfc3339(&e.at)
                .map(|t| t.timestamp_micros() as f64 / 1e6)
                .ok();
            match e.event_type {
                EventType::PlanExecutionStart if start.is_none() => start = at,
                EventType::PlanExecutionEnd => end = at,
                EventType::ActionExecutionEnd => ends.extend(at),
                _ => {}
            }
        }
    }
    Ok(PlanTimes {
        span: start.zip(end),
        ends,
    })
}

/// Fills each cell's `applier_ms`: the time plans were running within
/// its window over the actions that ended in it.
fn cells_applier(cells: &mut [Cell], plans: &[PlanTimes]) {
    for c in cells {
        let (mut busy, mut n) = (0.0, 0usize);
        for p in plans {
            if let Some((b, e)) = p.span {
                busy += (e.min(c.to) - b.max(c.from)).max(0.0);
            }
            n += p.ends.iter().filter(|&&t| t >= c.from && t < c.to).count();
        }
        c.applier_ms = if n == 0 {
            f64::NAN
        } else {
            busy * 1e3 / n as f64
        };
    }
}

/// Reads a whole answer and drops it: the load generator shares the
/// machine's CPUs with the server it measures, so it reads into one
/// buffer per thread instead of growing a zeroed vector per answer.
/// False if the body could not be read to its end.
fn drained(body: &mut ureq::Body) -> bool {
    use std::io::Read;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 * 1024]);
    }
    let mut reader = body.as_reader();
    BUF.with_borrow_mut(|buf| {
        loop {
            match reader.read(buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    })
}

/// A GET that must answer 200, its body read.
fn get_ok(agent: &ureq::Agent, url: &str) -> bool {
    match agent
        .get(url)
        .header("openstack-api-version", "infra-optim 1.5")
        .call()
    {
        Ok(mut r) => r.status().as_u16() == 200 && drained(r.body_mut()),
        Err(_) => false,
    }
}

/// A POST of `body`, answered with `want`.
fn post(agent: &ureq::Agent, url: &str, body: &str, want: u16) -> bool {
    match agent
        .post(url)
        .header("openstack-api-version", "infra-optim 1.5")
        .header("content-type", "application/json")
        .send(body)
    {
        Ok(mut r) => r.status().as_u16() == want && drained(r.body_mut()),
        Err(_) => false,
    }
}

/// The machine's load averages (1, 5, 15 minutes).
fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

/// A `serve --api` child with its own home; killed (SIGTERM) on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: signals our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where one run's database is: a SQLite file in its home, or a new
/// database on a PostgreSQL server, dropped when the run is over.
struct RunDb {
    /// What `--db` is given.
    arg: PathBuf,
    /// The same, for opening it here.
    at: Location,
    /// The server's URL and the database's name, on PostgreSQL.
    created: Option<(String, String)>,
}

impl RunDb {
    fn new(home: &Path, pg: Option<&str>) -> anyhow::Result<Self> {
        let Some(server) = pg else {
            let file = home.join("sextant.db");
            return Ok(Self {
                at: Location::Sqlite(file.clone()),
                arg: file,
                created: None,
            });
        };
        let name = format!(
            "sextant_bench_api_{}",
            sextant::store::new_uuid().replace('-', "")
        );
        postgres::Client::connect(server, postgres::NoTls)?
            .batch_execute(&format!("CREATE DATABASE {name}"))?;
        let (base, _) = server
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("--pg {server}: no database in the URL"))?;
        let url = format!("{base}/{name}");
        Ok(Self {
            arg: PathBuf::from(&url),
            at: Location::Postgres(url),
            created: Some((server.to_string(), name)),
        })
    }
}

impl Drop for RunDb {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.created {
            let dropped = postgres::Client::connect(server, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
            if let Err(e) = dropped {
                eprintln!("could not drop the benchmark's database {name}: {e}");
            }
        }
    }
}

/// `sextant --db DB ARGS…` with the run's own home, config and data
/// directories (on PostgreSQL the simulated cloud's file is in the data
/// directory, so `sim init` and `serve` must share it).
fn sextant_cmd(env: &Env, home: &Path, db: &RunDb) -> anyhow::Result<std::process::Command> {
    let mut cmd = std::process::Command::new(crate::sextant_exe()?);
    crate::child::dies_with_bench(&mut cmd);
    for d in &env.plugin_dirs {
        cmd.arg("--plugin-dir").arg(d);
    }
    cmd.arg("--db")
        .arg(&db.arg)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Ok(cmd)
}

fn serve(env: &Env, home: &Path, db: &RunDb) -> anyhow::Result<Served> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = sextant_cmd(env, home, db)?;
    cmd.args(["serve", "--api", &format!("127.0.0.1:{port}")])
        .stderr(std::fs::File::create(home.join("serve.log"))?);
    let mut s = Served {
        child: cmd.spawn()?,
        url: format!("http://127.0.0.1:{port}"),
    };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = s.child.try_wait()? {
            anyhow::bail!(
                "serve exited ({st}): {}",
                std::fs::read_to_string(home.join("serve.log")).unwrap_or_default()
            );
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(s)
}

/// Imports a plan of `n` independent nop actions; its uuid.
fn import(env: &Env, db: &Path, file: &Path) -> anyhow::Result<String> {
    let out = run_child(
        env,
        db,
        [
            PathBuf::from("action-plan"),
            PathBuf::from("import"),
            file.to_path_buf(),
        ],
        true,
    )?;
    Ok(out.stdout.trim().to_string())
}

fn start(url: &str, plan: &str) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    anyhow::ensure!(
        post(
            &agent,
            &format!("{url}/v1/action_plans/{plan}/start"),
            "{}",
            200
        ),
        "could not start plan {plan}"
    );
    Ok(())
}

/// When a plan's execution started and ended (seconds since the epoch),
/// from its events; `None` while it has not ended.
fn plan_state(db: &Location, plan: &str) -> anyhow::Result<PlanState> {
    Ok(Store::open(db)?.plan(plan)?.state)
}

fn wait_ended(db: &Location, plan: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    while !plan_state(db, plan)?.is_terminal() {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(3600),
            "plan {plan} did not end"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::ensure!(
        plan_state(db, plan)? == PlanState::Succeeded,
        "plan {plan} did not succeed"
    );
    Ok(())
}

/// One run: the cells' figures in `clients` × endpoints order, and the
/// applier's ms per action alone and under traffic.
fn one_run(
    env: &Env,
    traffic: &Load<'_>,
    pg: Option<&str>,
) -> anyhow::Result<(Vec<Cell>, f64, f64, usize, f64)> {
    let (actions, clients, secs, nice) = (
        traffic.actions,
        traffic.clients,
        traffic.secs,
        traffic.client_nice,
    );
    let work = tempfile::Builder::new()
        .prefix("sextant-bench-api")
        .tempdir()?;
    let home = work.path();
    let run_db = RunDb::new(home, pg)?;
    let db = &run_db.at;
    let cluster = sextant::installation::example_cluster("small.yaml")
        .ok_or_else(|| anyhow::anyhow!("no examples/clusters/small.yaml beside this binary"))?;
    let inited = sextant_cmd(env, home, &run_db)?
        .args(["sim", "init", "--time-scale", "0", "--from"])
        .arg(cluster)
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(inited.success(), "sim init: {inited}");
    let file = home.join("nops.json");
    let nops: Vec<Value> = (0..actions)
        .map(|i| json!({"id": format!("n{i}"), "action_type": "nop", "input_parameters": {"message": format!("n{i}")}}))
        .collect();
    std::fs::write(&file, serde_json::to_vec(&json!({ "actions": nops }))?)?;
    let listed = import(env, &run_db.arg, &file)?;
    let alone: Vec<String> = (0..ALONE_PLANS)
        .map(|_| import(env, &run_db.arg, &file))
        .collect::<anyhow::Result<_>>()?;
    let s = serve(env, home, &run_db)?;
    // The applier alone: several plans one after another (the first after
    // the start of `serve` is not the others' pace), their median.
    let mut alone_runs = Vec::new();
    for p in &alone {
        start(&s.url, p)?;
        wait_ended(db, p)?;
        let (a0, a1) = plan_times(db, p)?
            .span
            .ok_or_else(|| anyhow::anyhow!("no span"))?;
        alone_runs.push((a1 - a0) * 1e3 / actions as f64);
    }
    let alone_ms = median(alone_runs);
    // Plans applied one after another under traffic: enough to cover the
    // whole load even if traffic halves the applier's pace (imported now,
    // before any traffic).
    let window = (clients.len() * 3) as f64 * secs;
    let plan_secs = (alone_ms * actions as f64 / 1e3).max(0.05);
    let needed = ((2.0 * window / plan_secs).ceil() as usize + 1).clamp(2, MAX_PLANS);
    let loaded: Vec<String> = (0..needed)
        .map(|_| import(env, &run_db.arg, &file))
        .collect::<anyhow::Result<_>>()?;
    // Under traffic: a keeper starts the next plan when one ends.
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = {
        let (stop, db, url, plans) = (Arc::clone(&stop), db.clone(), s.url.clone(), loaded.clone());
        std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
            let mut started = Vec::new();
            for p in plans {
                start(&url, &p)?;
                started.push(p.clone());
                while !plan_state(&db, &p)?.is_terminal() {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(started);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(started);
                }
            }
            Ok(started)
        })
    };
    let window_start = unix_now();
    let base = s.url.clone();
    let mut cells = Vec::new();
    for &c in clients {
        let u = format!("{base}/v1/actions?action_plan_uuid={listed}&limit=1000");
        cells.push(load(
            c,
            secs,
            nice,
            traffic.rate,
            Arc::new(move |a| get_ok(a, &u)),
        ));
        let u = format!("{base}/v1/goals");
        cells.push(load(
            c,
            secs,
            nice,
            traffic.rate,
            Arc::new(move |a| get_ok(a, &u)),
        ));
        let u = format!("{base}/v1/audits");
        let body = json!({"goal": "dummy", "audit_type": "ONESHOT"}).to_string();
        cells.push(load(
            c,
            secs,
            nice,
            traffic.rate,
            Arc::new(move |a| post(a, &u, &body, 201)),
        ));
    }
    let window_end = unix_now();
    stop.store(true, Ordering::SeqCst);
    let started = keeper
        .join()
        .map_err(|_| anyhow::anyhow!("the keeper thread panicked"))??;
    for p in &started {
        wait_ended(db, p)?;
    }
    // The plans that ran wholly under traffic; else the first, which ran
    // at least partly under it.
    let mut under = Vec::new();
    let mut first = None;
    let mut applying = 0.0;
    let mut spans = Vec::new();
    for p in &started {
        let times = plan_times(db, p)?;
        if let Some((b, e)) = times.span {
            applying += (e.min(window_end) - b.max(window_start)).max(0.0);
            let ms = (e - b) * 1e3 / actions as f64;
            first.get_or_insert(ms);
            if b >= window_start && e <= window_end {
                under.push(ms);
            }
        }
        spans.push(times);
    }
    let whole = under.len();
    let loaded_ms = if under.is_empty() {
        first.unwrap_or(f64::NAN)
    } else {
        median(under)
    };
    cells_applier(&mut cells, &spans);
    drop(s);
    let fraction = applying / (window_end - window_start);
    Ok((cells, alone_ms, loaded_ms, whole, fraction))
}

/// The benchmark.
pub fn run(env: &Env, traffic: &Load<'_>, runs: usize, pg: Option<&str>) -> CliResult {
    let (actions, clients, secs) = (traffic.actions, traffic.clients, traffic.secs);
    let runs = runs.max(1);
    let load_before = loadavg();
    let mut all: Vec<Vec<Cell>> = Vec::new();
    let (mut alone, mut loaded, mut whole, mut busy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (cells, a, l, w, f) = one_run(env, traffic, pg)?;
        all.push(cells);
        alone.push(a);
        loaded.push(l);
        whole.push(w as f64);
        busy.push(f);
    }
    let endpoints = [
        format!("GET /v1/actions?action_plan_uuid=…&limit=1000 ({actions}-action plan)"),
        "GET /v1/goals".to_string(),
        "POST /v1/audits (dummy goal, ONESHOT)".to_string(),
    ];
    let mut out = Vec::new();
    for (ci, &c) in clients.iter().enumerate() {
        for (ei, e) in endpoints.iter().enumerate() {
            let i = ci * endpoints.len() + ei;
            let pick = |f: &dyn Fn(&Cell) -> f64| median(all.iter().map(|r| f(&r[i])).collect());
            out.push(json!({
                "endpoint": e,
                "clients": c,
                "rps": pick(&|x| x.rps),
                "p50_ms": pick(&|x| x.p50_ms),
                "p99_ms": pick(&|x| x.p99_ms),
                "requests": pick(&|x| x.requests as f64),
                "errors": pick(&|x| x.errors as f64),
                "applier_ratio": pick(&|x| x.applier_ms) / median(alone.clone()),
                "windows": all.iter().map(|r| [r[i].from, r[i].to]).collect::<Vec<_>>(),
            }));
        }
    }
    let (alone_ms, loaded_ms) = (median(alone.clone()), median(loaded.clone()));
    let list_64 = clients
        .iter()
        .position(|&c| c == 64)
        .map(|ci| out[ci * endpoints.len()]["p99_ms"].clone());
    let doc = json!({
        "benchmark": "api",
        "store": if pg.is_some() { "postgresql" } else { "sqlite" },
        "runs": runs,
        "seconds_per_cell": secs,
        "client_nice": traffic.client_nice,
        "rate": traffic.rate,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "while_applying": format!("a {actions}-action nop plan, applied by the same serve"),
        "cells": out,
        "applier": {
            "ms_per_action_alone": alone_ms,
            "ms_per_action_under_traffic": loaded_ms,
            "ratio": loaded_ms / alone_ms,
            "runs_alone": alone,
            "runs_under_traffic": loaded,
            "plans_wholly_under_traffic": whole,
            "fraction_of_the_load_spent_applying": busy,
        },
        "targets": {
            "list_p99_ms_at_64_clients": {"target": 50.0, "measured": list_64},
            "applier_ratio": {"target": 1.2, "measured": loaded_ms / alone_ms},
        },
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
