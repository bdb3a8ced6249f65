//! `sextant-bench fleet`: issue 14's benchmark, on PostgreSQL and on SQLite
//! side by side, each against its own floor measured in the same run:
//!
//! * the floor: one durable single-row commit, a group commit of N rows
//!   (one statement, one transaction), and the store's own commit of one
//!   chain step (`applier`'s durable commit floor);
//! * the applier's overhead per `nop` action, parallel and chained, at each
//!   plan size, with one `sextant serve` host (one plan) and with three
//!   (three plans, one each): the user's path, `action-plan import` and
//!   `action-plan start` queueing plans that real `serve --roles applier`
//!   processes claim and apply; timed from the first claim to the last
//!   event of the last plan (the store's event times), and from the first
//!   `start` to the bench seeing every plan SUCCEEDED;
//! * planning and storing N actions: in process (the weight planner, then
//!   `create_plan`) and as `sextant plan --input FILE --save`;
//! * with `max_concurrent_actions: 8`, the time three hosts take to drain
//!   a backlog of plans of one-second sleeps against the time one takes.
//!
//! Each case gets a database of its own (a file in a temporary directory,
//! or a database created on the PostgreSQL server and dropped after).

use crate::child::{median, run_child};
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use sextant::states::EventType;
use sextant::store::Store;
use sextant::store::location::Location;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// What the benchmark measures, from the command line.
pub struct FleetArgs {
    /// The PostgreSQL server (a URL whose user may create databases).
    pub pg: String,
    /// Plan sizes of the applier cases.
    pub sizes: Vec<usize>,
    /// Actions planned and stored.
    pub plan_actions: usize,
    /// Rows of a group commit of the floor.
    pub group: usize,
    /// Plans of ten one-second sleeps in the drain case (0: none).
    pub drain_plans: usize,
    /// Runs per figure.
    pub runs: usize,
    /// Backends to measure.
    pub backends: Vec<String>,
}

/// Where a case's database is made.
enum Server<'a> {
    /// A file in this directory.
    Sqlite(&'a Path),
    /// A new database on this PostgreSQL server (the URL of any of its
    /// databases).
    Postgres(&'a str),
}

/// One case's database, removed when dropped.
struct Db {
    /// What `--db` is given.
    text: String,
    /// The server's URL and the database's name, to drop it.
    pg: Option<(String, String)>,
}

impl Db {
    fn location(&self) -> anyhow::Result<Location> {
        Ok(Location::parse(&self.text, "the bench database")?)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        match &self.pg {
            Some((server, name)) => {
                if let Ok(mut c) = postgres::Client::connect(server, postgres::NoTls) {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.text));
                }
            }
        }
    }
}

impl Server<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A new, empty database for the case `name`.
    fn fresh(&self, name: &str) -> anyhow::Result<Db> {
        match self {
            Self::Sqlite(dir) => Ok(Db {
                text: dir
                    .join(format!("{name}.db"))
                    .to_string_lossy()
                    .into_owned(),
                pg: None,
            }),
            Self::Postgres(url) => {
                let db = format!(
                    "sextant_bench_{}",
                    sextant::store::new_uuid().replace('-', "")
                );
                let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
                admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
                let (main, query) = match url.split_once('?') {
                    Some((m, q)) => (m, format!("?{q}")),
                    None => (*url, String::new()),
                };
                let (base, _) = main
                    .rsplit_once('/')
                    .ok_or_else(|| anyhow::anyhow!("--pg names no database"))?;
                Ok(Db {
                    text: format!("{base}/{db}{query}"),
                    pg: Some((url.to_string(), db)),
                })
            }
        }
    }
}

/// The database's own floor: microseconds per durable single-row commit
/// (`commits` of them, one after the other), and per row and per commit of
/// group commits of `group` rows (one statement per commit on PostgreSQL,
/// one prepared insert per row on SQLite, which has no round trip).
fn raw_floor(db: &Db, commits: usize, group: usize) -> anyhow::Result<(f64, f64, f64)> {
    let rounds = (commits / 10).max(1);
    let group = group.max(1);
    if db.pg.is_some() {
        let mut c = postgres::Client::connect(&db.text, postgres::NoTls)?;
        c.batch_execute(
            "SET synchronous_commit = on; \
             CREATE TABLE bench_floor (id bigint PRIMARY KEY, v text NOT NULL)",
        )?;
        let one = c.prepare("INSERT INTO bench_floor (id, v) VALUES ($1, $2)")?;
        let many = c.prepare(
            "INSERT INTO bench_floor (id, v) SELECT * FROM unnest($1::bigint[], $2::text[])",
        )?;
        let t = Instant::now();
        for i in 0..commits {
            c.execute(&one, &[&(i as i64), &"x"])?;
        }
        let single = t.elapsed().as_secs_f64() * 1e6 / commits as f64;
        let mut next = commits as i64;
        let t = Instant::now();
        for _ in 0..rounds {
            let ids: Vec<i64> = (next..next + group as i64).collect();
            next += group as i64;
            let vs = vec!["x"; group];
            c.execute(&many, &[&ids, &vs])?;
        }
        let per_commit = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        Ok((single, per_commit / group as f64, per_commit))
    } else {
        let mut c = rusqlite::Connection::open(&db.text)?;
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        )?;
        let t = Instant::now();
        for i in 0..commits {
            c.prepare_cached("INSERT INTO bench_floor (id, v) VALUES (?1, ?2)")?
                .execute(rusqlite::params![i as i64, "x"])?;
        }
        let single = t.elapsed().as_secs_f64() * 1e6 / commits as f64;
        let mut next = commits as i64;
        let t = Instant::now();
        for _ in 0..rounds {
            let tx = c.transaction()?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT INTO bench_floor (id, v) VALUES (?1, ?2)")?;
                for _ in 0..group {
                    ins.execute(rusqlite::params![next, "x"])?;
                    next += 1;
                }
            }
            tx.commit()?;
        }
        let per_commit = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        Ok((single, per_commit / group as f64, per_commit))
    }
}

/// A chain step on PostgreSQL (the previous action ONGOING to SUCCEEDED,
/// this one PENDING to ONGOING, each a compare-and-set with its event) in
/// two shapes, over `n` steps: the store's before schema 16 (one
/// transaction, one statement per update and per event: six round trips
/// with BEGIN and COMMIT) and one data-modifying CTE over arrays committed
/// on its own (one round trip; tried in session 9 and dropped). The
/// store's own step today, one call of its server-side function, is the
/// store commit floor. Microseconds per step of each.
fn pg_chain_step_shapes(db: &Db, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut c = postgres::Client::connect(&db.text, postgres::NoTls)?;
    c.batch_execute(
        "SET synchronous_commit = on; \
         CREATE TABLE step_actions (uuid text PRIMARY KEY, name text NOT NULL, \
             state text NOT NULL, updated_at text); \
         CREATE TABLE step_events (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             at text NOT NULL, event_type text NOT NULL, object_uuid text NOT NULL, \
             old_state text, new_state text, payload text NOT NULL)",
    )?;
    let mut shape = |table_suffix: usize, one_statement: bool| -> anyhow::Result<f64> {
        let uuids: Vec<String> = (0..n).map(|i| format!("{table_suffix}-{i:08}")).collect();
        let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        c.execute(
            "INSERT INTO step_actions (uuid, name, state) \
             SELECT u, n, 'PENDING' FROM unnest($1::text[], $2::text[]) AS t(u, n)",
            &[&uuids, &names],
        )?;
        // As the store's tables are: analysed, so that the statements'
        // plans look rows up by their key.
        c.batch_execute("ANALYZE step_actions")?;
        let update = c.prepare(
            "UPDATE step_actions SET state = $1, updated_at = $2 \
             WHERE uuid = $3 AND state = $4 RETURNING name",
        )?;
        let event = c.prepare(
            "INSERT INTO step_events (at, event_type, object_uuid, old_state, new_state, payload) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )?;
        let batch = c.prepare(
            "WITH t AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
                 AS t(uuid, old, new, ev)), \
             u AS (UPDATE step_actions a SET state = t.new, updated_at = $5 FROM t \
                 WHERE a.uuid = ANY($1) AND a.uuid = t.uuid AND a.state = t.old \
                 RETURNING a.uuid, a.name, t.old, t.new, t.ev), \
             e AS (INSERT INTO step_events (at, event_type, object_uuid, old_state, new_state, \
                 payload) SELECT $5, u.ev, u.uuid, u.old, u.new, \
                 json_build_object('name', u.name)::text FROM u RETURNING object_uuid) \
             SELECT object_uuid FROM e",
        )?;
        let t = Instant::now();
        for k in 0..n {
            let mut steps: Vec<(&str, &str, &str, &str)> = Vec::with_capacity(2);
            if k > 0 {
                steps.push((
                    &uuids[k - 1],
                    "ONGOING",
                    "SUCCEEDED",
                    "action.execution.end",
                ));
            }
            steps.push((&uuids[k], "PENDING", "ONGOING", "action.execution.start"));
            let at = sextant::store::now();
            if one_statement {
                let uuid: Vec<&str> = steps.iter().map(|s| s.0).collect();
                let old: Vec<&str> = steps.iter().map(|s| s.1).collect();
                let new: Vec<&str> = steps.iter().map(|s| s.2).collect();
                let ev: Vec<&str> = steps.iter().map(|s| s.3).collect();
                let rows = c.query(&batch, &[&uuid, &old, &new, &ev, &at])?;
                anyhow::ensure!(rows.len() == steps.len(), "a step did not apply");
            } else {
                let mut tx = c.transaction()?;
                for (uuid, old, new, ev) in &steps {
                    let row = tx.query_opt(&update, &[new, &at, uuid, old])?;
                    let name: String = row
                        .ok_or_else(|| anyhow::anyhow!("a step did not apply"))?
                        .get(0);
                    let payload = json!({"name": name}).to_string();
                    tx.execute(&event, &[&at, ev, uuid, old, new, &payload])?;
                }
                tx.commit()?;
            }
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    let six = shape(0, false)?;
    let one = shape(1, true)?;
    Ok((six, one))
}

/// A running `sextant serve`, stopped (TERM, then KILL after 30 s) when
/// dropped.
struct Host {
    child: Child,
    log: PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals our own child, which is not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let t = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `n` applier hosts on `db` with the config file `config`, and
/// waits until each says it started.
fn spawn_hosts(
    env: &Env,
    db: &Db,
    work: &Path,
    n: usize,
    config: &Path,
) -> anyhow::Result<Vec<Host>> {
    let exe = crate::sextant_exe()?;
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        let log = work.join(format!("serve-{i}.log"));
        let mut cmd = Command::new(&exe);
        crate::child::dies_with_bench(&mut cmd);
        for d in &env.plugin_dirs {
            cmd.arg("--plugin-dir").arg(d);
        }
        let child = cmd
            .arg("--db")
            .arg(&db.text)
            .arg("--config")
            .arg(config)
            .args(["serve", "--roles", "applier", "--host-id"])
            .arg(format!("bench-{i}"))
            .env("SEXTANT_LOG", "info")
            .env_remove("SEXTANT_HOST_ID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        hosts.push(Host { child, log });
    }
    let t = Instant::now();
    for h in &mut hosts {
        loop {
            let text = std::fs::read_to_string(&h.log).unwrap_or_default();
            if text.contains("serve started") {
                break;
            }
            if h.child.try_wait()?.is_some() || t.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("a bench serve host did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(hosts)
}

/// What applying a case's plans through `serve` hosts took.
struct ServeRun {
    /// From the first plan's claim to the last event of the last plan to
    /// end (the store's event times).
    claim_to_end_s: f64,
    /// From the first `action-plan start` to the bench seeing every plan
    /// SUCCEEDED.
    queue_to_end_s: f64,
    /// How many hosts applied a plan.
    hosts_used: usize,
}

/// An RFC 3339 event time, in seconds.
fn event_secs(at: &str) -> anyhow::Result<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| anyhow::anyhow!("event time {at:?}: {e}"))?;
    Ok(t.timestamp_micros() as f64 / 1e6)
}

/// How a case's plans are queued.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// With the hosts running and idle (they wake on the queueing).
    ToRunningHosts,
    /// Before the hosts start: a backlog.
    Backlog,
}

/// Imports each of `files` into a new database, queues each plan with
/// `action-plan start --policy POLICY`, has `hosts` serve hosts (config
/// `config`) apply them, and times it.
#[allow(clippy::too_many_arguments)]
fn serve_case(
    env: &Env,
    server: &Server<'_>,
    work: &Path,
    name: &str,
    hosts: usize,
    files: &[PathBuf],
    config: &Path,
    policy: &Path,
    queue: Queue,
) -> anyhow::Result<ServeRun> {
    let db = server.fresh(name)?;
    let case_dir = work.join(name);
    std::fs::create_dir_all(&case_dir)?;
    let mut plans = Vec::with_capacity(files.len());
    for f in files {
        let run = run_child(
            env,
            &db.text,
            ["action-plan".as_ref(), "import".as_ref(), f.as_os_str()],
            true,
        )?;
        plans.push(run.stdout.trim().to_string());
    }
    let mut fleet = Vec::new();
    if queue == Queue::ToRunningHosts {
        fleet = spawn_hosts(env, &db, &case_dir, hosts, config)?;
    }
    let t0 = Instant::now();
    for p in &plans {
        run_child(
            env,
            &db.text,
            [
                "action-plan".as_ref(),
                "start".as_ref(),
                p.as_ref(),
                "--policy".as_ref(),
                policy.as_os_str(),
            ],
            false,
        )?;
    }
    if queue == Queue::Backlog {
        fleet = spawn_hosts(env, &db, &case_dir, hosts, config)?;
    }
    let store = Store::open(db.location()?)?;
    loop {
        let mut done = 0;
        for p in &plans {
            let state = store.plan(p)?.state;
            if state.is_terminal() {
                anyhow::ensure!(
                    state == sextant::states::PlanState::Succeeded,
                    "bench plan {p} ended {state}"
                );
                done += 1;
            }
        }
        if done == plans.len() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(1800) {
            let logs: Vec<String> = fleet
                .iter()
                .map(|h| std::fs::read_to_string(&h.log).unwrap_or_default())
                .collect();
            anyhow::bail!("bench plans did not end in 30 minutes: {logs:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let queue_to_end_s = t0.elapsed().as_secs_f64();
    drop(fleet);
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut used = std::collections::BTreeSet::new();
    for p in &plans {
        for e in store.events(Some(p), 0)? {
            let at = event_secs(&e.at)?;
            last = last.max(at);
            if e.event_type == EventType::PlanClaimed {
                anyhow::ensure!(
                    e.payload["resumed"] != true,
                    "bench plan {p} was resumed: a host lost its lease"
                );
                first = first.min(at);
                used.insert(e.payload["host"].as_str().unwrap_or("").to_string());
            }
        }
    }
    anyhow::ensure!(first.is_finite(), "no plan of the case was claimed");
    Ok(ServeRun {
        claim_to_end_s: last - first,
        queue_to_end_s,
        hosts_used: used.len(),
    })
}

/// Writes an import file of `n` nop actions, a chain or independent.
fn write_nops(path: &Path, n: usize, chain: bool) -> anyhow::Result<()> {
    let actions: Vec<Value> = (0..n)
        .map(|i| {
            let parents: Vec<String> = if chain && i > 0 {
                vec![format!("a{}", i - 1)]
            } else {
                Vec::new()
            };
            json!({"id": format!("a{i}"), "action_type": "nop",
                   "input_parameters": {"message": null}, "parents": parents})
        })
        .collect();
    std::fs::write(path, serde_json::to_vec(&json!({ "actions": actions }))?)?;
    Ok(())
}

/// Writes an import file of `n` independent sleeps of one second.
fn write_sleeps(path: &Path, n: usize) -> anyhow::Result<()> {
    let actions: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("s{i}"), "action_type": "sleep", "input_parameters": {"duration": 1}}))
        .collect();
    std::fs::write(path, serde_json::to_vec(&json!({ "actions": actions }))?)?;
    Ok(())
}

/// The figures of one backend.
fn measure(
    env: &Env,
    server: &Server<'_>,
    work: &Path,
    args: &FleetArgs,
    files: &Files,
) -> anyhow::Result<Value> {
    let runs = args.runs.max(1);
    let b = server.name();
    let (mut single, mut per_row, mut per_group, mut store_floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut step_six, mut step_one) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let db = server.fresh(&format!("{b}-floor-{r}"))?;
        let (s, row, group) = raw_floor(&db, 2000, args.group)?;
        single.push(s);
        per_row.push(row);
        per_group.push(group);
        let db = server.fresh(&format!("{b}-store-floor-{r}"))?;
        store_floor.push(crate::applier::durable_commit_floor_at(
            db.location()?,
            2000,
        )?);
        if let Server::Postgres(_) = server {
            let db = server.fresh(&format!("{b}-step-shapes-{r}"))?;
            let (six, one) = pg_chain_step_shapes(&db, 2000)?;
            step_six.push(six);
            step_one.push(one);
        }
    }
    let (single, store_floor) = (median(single), median(store_floor));
    eprintln!("{b}: floor {single:.0} us per commit, store floor {store_floor:.0} us");

    let mut overhead = Vec::new();
    for (i, &n) in args.sizes.iter().enumerate() {
        for (shape, file) in [("parallel", &files.parallel[i]), ("chain", &files.chain[i])] {
            for hosts in [1usize, 3] {
                let (mut claim, mut queue, mut used) = (Vec::new(), Vec::new(), Vec::new());
                for r in 0..runs {
                    let plans = vec![file.clone(); hosts];
                    let run = serve_case(
                        env,
                        server,
                        work,
                        &format!("{b}-{shape}-{n}-{hosts}-{r}"),
                        hosts,
                        &plans,
                        &files.config_32,
                        &files.policy,
                        Queue::ToRunningHosts,
                    )?;
                    let actions = (n * hosts) as f64;
                    claim.push(run.claim_to_end_s * 1e6 / actions);
                    queue.push(run.queue_to_end_s * 1e6 / actions);
                    used.push(run.hosts_used as f64);
                }
                let us = median(claim);
                eprintln!("{b}: {shape} {n} x{hosts} hosts: {us:.0} us per action");
                overhead.push(json!({
                    "shape": shape, "actions_per_plan": n, "hosts": hosts, "plans": hosts,
                    "median_us_per_action_claim_to_end": us,
                    "median_us_per_action_start_to_seen_done": median(queue),
                    "median_hosts_that_applied_a_plan": median(used),
                    "ratio_to_single_row_commit_floor": us / single,
                    "ratio_to_store_commit_floor": us / store_floor,
                }));
            }
        }
    }

    let (mut in_proc, mut in_plan, mut cli_save) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs {
        let db = server.fresh(&format!("{b}-plan-{r}"))?;
        let (p, ps, _) = crate::user_path::plan_in_process(env, &files.plan_input, db.location()?)?;
        in_plan.push(p);
        in_proc.push(ps);
        drop(db);
        let db = server.fresh(&format!("{b}-plan-cli-{r}"))?;
        // The store made and migrated first, as an installation has it.
        run_child(env, &db.text, ["action-plan", "list"], false)?;
        let run = run_child(
            env,
            &db.text,
            [
                "plan".as_ref(),
                "--input".as_ref(),
                files.plan_input.as_os_str(),
                "--save".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
            ],
            false,
        )?;
        cli_save.push(run.secs);
    }
    let plan_store = json!({
        "actions": args.plan_actions, "planner": "weight",
        "in_process_median_s_plan": median(in_plan),
        "in_process_median_s_plan_and_store": median(in_proc),
        "median_s_plan_input_save": median(cli_save),
    });
    eprintln!("{b}: plan and store {plan_store}");

    let mut drain = Value::Null;
    if args.drain_plans > 0 {
        let (mut one, mut three, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let plans = vec![files.sleeps.clone(); args.drain_plans];
        for r in 0..runs {
            let mut secs = [0.0; 2];
            for (k, hosts) in [1usize, 3].into_iter().enumerate() {
                secs[k] = serve_case(
                    env,
                    server,
                    work,
                    &format!("{b}-drain-{hosts}-{r}"),
                    hosts,
                    &plans,
                    &files.config_8,
                    &files.policy,
                    Queue::Backlog,
                )?
                .claim_to_end_s;
            }
            eprintln!("{b}: drain one host {:.1}s, three {:.1}s", secs[0], secs[1]);
            one.push(secs[0]);
            three.push(secs[1]);
            ratio.push(secs[1] / secs[0]);
        }
        drain = json!({
            "plans": args.drain_plans, "sleeps_per_plan": 10, "sleep_s": 1,
            "max_concurrent_actions": 8,
            "lower_bound_s_one_host": (args.drain_plans * 10) as f64 / 8.0,
            "median_s_one_host": median(one),
            "median_s_three_hosts": median(three),
            "median_ratio_three_to_one": median(ratio),
        });
    }
    let server_settings = match server {
        Server::Postgres(url) => {
            let mut c = postgres::Client::connect(url, postgres::NoTls)?;
            let mut show = |name: &str| -> anyhow::Result<String> {
                Ok(c.query_one(&format!("SHOW {name}"), &[])?.get(0))
            };
            json!({
                "server_version": show("server_version")?,
                "fsync": show("fsync")?,
                "full_page_writes": show("full_page_writes")?,
                "wal_sync_method": show("wal_sync_method")?,
                "synchronous_commit_of_the_store": "on",
            })
        }
        Server::Sqlite(_) => json!({"journal_mode": "wal", "synchronous": "normal"}),
    };
    Ok(json!({
        "settings": server_settings,
        "floor": {
            "median_us_single_row_commit": single,
            "group_rows": args.group,
            "median_us_per_row_group_commit": median(per_row),
            "median_us_per_group_commit": median(per_group),
            "median_us_store_commit_floor": store_floor,
            "store_commit_floor_is": "one store transaction per action of a 2,000-action chain (the previous action's SUCCEEDED and this one's ONGOING, with their events), no engine",
            "chain_step_us_statement_per_row": (!step_six.is_empty()).then(|| median(step_six)),
            "chain_step_us_one_statement": (!step_one.is_empty()).then(|| median(step_one)),
            "chain_step_shapes_are": "PostgreSQL only, bare tables: a chain step's two compare-and-sets with their events as the store ran them before schema 16 (BEGIN, UPDATE, INSERT, UPDATE, INSERT, COMMIT) against one data-modifying CTE over arrays committed on its own; the store's step today (one call of sextant_action_transitions) is median_us_store_commit_floor",
        },
        "applier": overhead,
        "plan_and_store": plan_store,
        "drain": drain,
    }))
}

/// The input files every backend's cases share.
struct Files {
    parallel: Vec<PathBuf>,
    chain: Vec<PathBuf>,
    sleeps: PathBuf,
    plan_input: PathBuf,
    policy: PathBuf,
    config_32: PathBuf,
    config_8: PathBuf,
}

/// The benchmark.
pub fn run(env: &Env, args: &FleetArgs) -> CliResult {
    let work = tempfile::Builder::new()
        .prefix("sextant-bench-fleet")
        .tempdir()?;
    let w = work.path();
    let mut files = Files {
        parallel: Vec::new(),
        chain: Vec::new(),
        sleeps: w.join("sleeps.json"),
        plan_input: w.join("plan-input.json"),
        policy: w.join("bench-policy.yaml"),
        config_32: w.join("config-32.yaml"),
        config_8: w.join("config-8.yaml"),
    };
    for &n in &args.sizes {
        let (p, c) = (
            w.join(format!("parallel-{n}.json")),
            w.join(format!("chain-{n}.json")),
        );
        write_nops(&p, n, false)?;
        write_nops(&c, n, true)?;
        files.parallel.push(p);
        files.chain.push(c);
    }
    write_sleeps(&files.sleeps, 10)?;
    crate::user_path::write_plan_input(&files.plan_input, args.plan_actions)?;
    // As the applier benchmark's policy: no simulation before applying.
    std::fs::write(
        &files.policy,
        "name: bench\nplanner: rules\nexecution_rule: STRICT\nsimulate: false\n",
    )?;
    // A host takes one 32-worker plan at a time: three plans go to three
    // hosts, one each.
    std::fs::write(&files.config_32, "max_concurrent_actions: 32\n")?;
    std::fs::write(&files.config_8, "max_concurrent_actions: 8\n")?;

    let mut doc = serde_json::Map::new();
    doc.insert("benchmark".into(), json!("fleet"));
    doc.insert(
        "profile".into(),
        json!(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }),
    );
    doc.insert("runs".into(), json!(args.runs));
    doc.insert("load_average_at_start".into(), json!(load_average()));
    for b in &args.backends {
        let server = match b.as_str() {
            "postgres" => Server::Postgres(&args.pg),
            "sqlite" => Server::Sqlite(w),
            other => {
                return Err(sextant::cli::CliError::input(anyhow::anyhow!(
                    "--backends: unknown backend {other:?}; give postgres, sqlite or both"
                )));
            }
        };
        let figures = measure(env, &server, w, args, &files)?;
        doc.insert(b.clone(), figures);
    }
    doc.insert("load_average_at_end".into(), json!(load_average()));
    doc.insert(
        "targets".into(),
        json!({
            "chain_to_store_commit_floor": 1.5,
            "parallel_to_store_commit_floor": 1.0,
            "plan_and_store_s": 2.0,
            "drain_three_to_one": 0.4,
        }),
    );
    outln!("{}", serde_json::to_string_pretty(&Value::Object(doc))?);
    Ok(ExitCode::SUCCESS)
}

/// /proc/loadavg's three averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
