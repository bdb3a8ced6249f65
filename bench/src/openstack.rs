//! `sextant-bench openstack`: the OpenStack driver against the harness's
//! real Nova 34 and Placement 16 (`scripts/services/nova.sh`, with
//! Keystone and `watcher_bench.sh`; see docs/openstack.md for the command).
//!
//! - **Collector**: building the cluster model, `sextant datamodel show`
//!   (a child process, `collector: openstack`) against Watcher 17.0.0's
//!   `NovaModelBuilder` (bench/openstack/watcher_collector.py in Watcher's
//!   venv), alternately, on the same cloud, both authenticating as the
//!   Keystone admin and finding Nova and Placement in its catalog: wall
//!   time and the API requests each made, counted from the request logs of
//!   nova-api, placement-api and Keystone (every request they answer is a
//!   line; requests the computes make to Placement in the same window are
//!   counted apart, by a window of the same length with no collector).
//!   First at the harness's three hosts, then after `nova_grow` added
//!   `--grow` nova-compute processes (one node each) and servers were
//!   booted on them.
//! - **Applier**: a chain of N live migrations applied by `sextant
//!   action-plan start --wait` with `drivers: [openstack]`, against Nova's
//!   own time for them (each migration record's `updated_at - created_at`),
//!   and against the same migrations made by bare API calls and polling.

use crate::child::median;
use crate::notify::load_average;
use anyhow::{Context, anyhow, bail, ensure};
use serde_json::{Value, json};
use sextant::cli::{CliResult, Env};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// What the benchmark is asked to do.
pub(crate) struct Args {
    /// Runs per figure; medians are reported.
    pub(crate) runs: usize,
    /// Servers booted at the three hosts.
    pub(crate) servers_small: usize,
    /// nova-compute processes added for the large size (0: none).
    pub(crate) grow: usize,
    /// Servers booted on the added hosts, in all.
    pub(crate) servers_large: usize,
    /// Live migrations in the applier's chain.
    pub(crate) migrations: usize,
}

/// The stack `scripts/services` started, from its variables.
struct Stack {
    nova: String,
    ca: String,
    token: String,
    image: String,
    keystone: String,
    admin_password: String,
    services_dir: PathBuf,
    watcher_python: String,
    agent: ureq::Agent,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow!(
            "${name} is not set: run under scripts/services (source scripts/services/lib.sh; \
             services_start postgres rabbitmq keystone nova watcher_bench)"
        )
    })
}

impl Stack {
    fn from_env() -> anyhow::Result<Self> {
        let ca = var("SEXTANT_TEST_CA_FILE")?;
        let pem = std::fs::read(&ca).with_context(|| format!("reading {ca}"))?;
        let roots: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .build();
        Ok(Self {
            nova: var("SEXTANT_TEST_NOVA_URL")?,
            ca,
            token: var("SEXTANT_TEST_NOVA_TOKEN")?,
            image: var("SEXTANT_TEST_NOVA_IMAGE")?,
            keystone: var("SEXTANT_TEST_KEYSTONE_URL")?,
            admin_password: var("SEXTANT_TEST_KEYSTONE_ADMIN_PASSWORD")?,
            services_dir: PathBuf::from(var("SEXTANT_TEST_SERVICES_DIR")?),
            watcher_python: var("SEXTANT_BENCH_WATCHER_PYTHON")?,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .tls_config(tls)
                .build()
                .into(),
        })
    }

    /// Nova as the admin at 2.96; a reply outside 2xx is an error.
    fn nova(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.nova))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.96")
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())?;
        let resp = self.agent.run(req)?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string()?;
        ensure!(
            (200..300).contains(&status),
            "nova {method} {path}: HTTP {status}: {text}"
        );
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The nova-compute hosts, and whether each is up.
    fn hosts(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let v = self.nova("GET", "/os-services?binary=nova-compute", None)?;
        Ok(v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["host"].as_str()?.to_string(), s["state"] == "up")))
            .collect())
    }

    /// Every server: (id, name, host, status).
    fn servers(&self) -> anyhow::Result<Vec<(String, String, String, String)>> {
        let mut all: Vec<(String, String, String, String)> = Vec::new();
        loop {
            let mut path = "/servers/detail?all_tenants=1&limit=1000".to_string();
            if let Some((last, ..)) = all.last() {
                path.push_str(&format!("&marker={last}"));
            }
            let v = self.nova("GET", &path, None)?;
            let page = v["servers"].as_array().cloned().unwrap_or_default();
            let n = page.len();
            for s in page {
                let text = |k: &str| s[k].as_str().unwrap_or("").to_string();
                all.push((
                    text("id"),
                    text("name"),
                    text("OS-EXT-SRV-ATTR:host"),
                    text("status"),
                ));
            }
            if n < 1000 {
                return Ok(all);
            }
        }
    }

    /// Boots `n` servers named `bench<pid>-what-…` (on `host`, else where the
    /// scheduler puts them), in requests of at most 50, and waits until
    /// all are ACTIVE; their ids.
    fn boot(&self, what: &str, n: usize, host: Option<&str>) -> anyhow::Result<Vec<String>> {
        // Names of this run's own: servers an earlier run left are not counted.
        let prefix = format!("bench{}-{what}", std::process::id());
        let mut left = n;
        let mut batch = 0;
        while left > 0 {
            let k = left.min(50);
            let mut server = json!({
                "name": format!("{prefix}-{batch}"), "flavorRef": "sextant-small",
                "imageRef": self.image, "networks": "none",
                "min_count": k, "max_count": k,
            });
            if let Some(h) = host {
                server["host"] = json!(h);
            }
            self.nova("POST", "/servers", Some(&json!({ "server": server })))?;
            left -= k;
            batch += 1;
        }
        let start = Instant::now();
        loop {
            let mine: Vec<_> = self
                .servers()?
                .into_iter()
                .filter(|s| s.1.starts_with(&format!("{prefix}-")))
                .collect();
            if let Some(bad) = mine.iter().find(|s| s.3 == "ERROR") {
                bail!("server {} ({}) went to ERROR while booting", bad.0, bad.1);
            }
            if mine.len() >= n && mine.iter().all(|s| s.3 == "ACTIVE") {
                return Ok(mine.into_iter().map(|s| s.0).collect());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60 + 3 * n as u64),
                "{} of {n} servers {prefix}-* ACTIVE after {:?}",
                mine.iter().filter(|s| s.3 == "ACTIVE").count(),
                start.elapsed()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The request logs, each service's file.
    fn logs(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("nova", self.services_dir.join("nova-api.log")),
            ("placement", self.services_dir.join("placement-api.log")),
        ]
    }

    /// A function of scripts/services/nova.sh (`nova_grow COUNT`,
    /// `nova_grow_stop`) in a shell of its own.
    fn nova_sh(&self, function: &str, args: &[String]) -> anyhow::Result<()> {
        let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services");
        let status = Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1/lib.sh" && source "$1/nova.sh" && "$2" "${@:3}""#)
            .arg("nova.sh")
            .arg(&services)
            .arg(function)
            .args(args)
            .stdin(Stdio::null())
            .status()?;
        ensure!(status.success(), "{function} {args:?} failed ({status})");
        Ok(())
    }
}

/// Where each request log ends now.
struct Marks(Vec<u64>);

impl Marks {
    fn take(stack: &Stack) -> Self {
        Marks(
            stack
                .logs()
                .iter()
                .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .collect(),
        )
    }

    /// The collectors' requests each service logged since `self`.
    fn since(&self, stack: &Stack) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
        let mut out = Vec::new();
        for ((name, path), from) in stack.logs().into_iter().zip(&self.0) {
            let mut f = std::fs::File::open(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            f.seek(SeekFrom::Start(*from))?;
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            let lines = text
                .lines()
                .filter(|l| is_request_line(l))
                .map(str::to_string)
                .collect();
            out.push((name, lines));
        }
        Ok(out)
    }
}

/// A line of nova-api's or placement-api's `requestlog` that records a
/// collector's request: one made with a Keystone token (the collectors
/// authenticate as the Keystone admin, whose context is logged by user and
/// project id; the computes' requests to Placement and this benchmark's own
/// to Nova use the harness's static token, logged as `admin admin`), or an
/// unauthenticated version document (`GET /`, `GET /v2.1[/]`: a request
/// without a token of its own is logged with whatever context its server
/// thread last had, so it is told apart by its path; in the measured
/// windows only the collectors discover versions).
fn is_request_line(line: &str) -> bool {
    let version_document = ["\"GET /\"", "\"GET /v2.1\"", "\"GET /v2.1/\""]
        .iter()
        .any(|p| line.contains(p));
    line.contains("requestlog")
        && line.contains(" status: ")
        && (version_document || !line.contains(" admin admin "))
}

/// One collector run: seconds, nodes, instances, requests by service.
struct Collected {
    secs: f64,
    nodes: usize,
    instances: usize,
    requests: Vec<(&'static str, usize)>,
}

fn clouds_yaml(stack: &Stack, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("clouds.yaml");
    std::fs::write(
        &path,
        format!(
            "clouds:\n  bench:\n    auth_type: password\n    region_name: RegionOne\n    interface: public\n    cacert: {}\n    auth:\n      auth_url: {}\n      username: admin\n      password: '{}'\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n",
            stack.ca, stack.keystone, stack.admin_password
        ),
    )?;
    Ok(path)
}

fn watcher_conf(stack: &Stack, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("watcher.conf");
    std::fs::write(
        &path,
        format!(
            "[DEFAULT]\ndebug = False\n\
             [watcher_clients_auth]\nauth_type = password\nauth_url = {}\nusername = admin\npassword = {}\n\
             project_name = admin\nuser_domain_name = Default\nproject_domain_name = Default\ncafile = {}\n\
             [nova]\nregion_name = RegionOne\nvalid_interfaces = public\n\
             [placement]\nregion_name = RegionOne\nvalid_interfaces = public\n",
            stack.keystone, stack.admin_password, stack.ca
        ),
    )?;
    Ok(path)
}

/// A home for the `sextant` children: config, clouds.yaml, database.
struct Home {
    dir: tempfile::TempDir,
    config: PathBuf,
    clouds: PathBuf,
}

impl Home {
    fn new(stack: &Stack) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sextant-os-bench")
            .tempdir()?;
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "collector: openstack\ndrivers: [openstack]\n")?;
        let clouds = clouds_yaml(stack, dir.path())?;
        Ok(Self {
            dir,
            config,
            clouds,
        })
    }

    fn sextant(&self, env: &Env, args: &[&str]) -> anyhow::Result<(f64, String)> {
        let mut cmd = Command::new(crate::sextant_exe()?);
        crate::child::dies_with_bench(&mut cmd);
        for d in &env.plugin_dirs {
            cmd.arg("--plugin-dir").arg(d);
        }
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(self.dir.path().join("sextant.db"))
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .env("OS_CLOUD", "bench")
            .env("XDG_DATA_HOME", self.dir.path())
            .stdin(Stdio::null());
        let t = Instant::now();
        let out = cmd.output()?;
        let secs = t.elapsed().as_secs_f64();
        ensure!(
            out.status.success(),
            "sextant {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((secs, String::from_utf8(out.stdout)?))
    }
}

fn count(lines: &[(&'static str, Vec<String>)]) -> Vec<(&'static str, usize)> {
    lines.iter().map(|(n, l)| (*n, l.len())).collect()
}

fn sextant_collect(stack: &Stack, env: &Env, home: &Home) -> anyhow::Result<Collected> {
    let marks = Marks::take(stack);
    let (secs, out) = home.sextant(env, &["datamodel", "show", "--format", "json"])?;
    // The request logs are written by the services as they answer; a
    // moment for the last lines to land.
    std::thread::sleep(Duration::from_millis(300));
    let lines = marks.since(stack)?;
    let model: Value = serde_json::from_str(&out).context("datamodel show's JSON")?;
    Ok(Collected {
        secs,
        nodes: model["nodes"].as_array().map_or(0, Vec::len),
        instances: model["instances"].as_array().map_or(0, Vec::len),
        requests: count(&lines),
    })
}

fn watcher_collect(stack: &Stack, conf: &Path) -> anyhow::Result<(Collected, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("openstack/watcher_collector.py");
    let marks = Marks::take(stack);
    let t = Instant::now();
    let out = crate::child::dies_with_bench(&mut Command::new(&stack.watcher_python))
        .arg(&script)
        .arg(conf)
        .stdin(Stdio::null())
        .output()?;
    let process_secs = t.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "Watcher's NovaModelBuilder: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = marks.since(stack)?;
    let text = String::from_utf8(out.stdout)?;
    let v: Value = serde_json::from_str(text.lines().last().unwrap_or(""))
        .with_context(|| format!("Watcher's collector printed {text:?}"))?;
    Ok((
        Collected {
            secs: v["seconds"].as_f64().unwrap_or(f64::NAN),
            nodes: v["nodes"].as_u64().unwrap_or(0) as usize,
            instances: v["instances"].as_u64().unwrap_or(0) as usize,
            requests: count(&lines),
        },
        process_secs,
    ))
}

fn requests_json(r: &[(&'static str, usize)]) -> Value {
    let mut m = serde_json::Map::new();
    let mut total = 0;
    for (n, c) in r {
        m.insert((*n).to_string(), json!(c));
        total += c;
    }
    m.insert("total".into(), json!(total));
    Value::Object(m)
}

/// Both collectors `runs` times, alternately, at the cloud's current size.
fn collectors(stack: &Stack, env: &Env, runs: usize) -> anyhow::Result<Value> {
    let home = Home::new(stack)?;
    let conf = watcher_conf(stack, home.dir.path())?;
    // One of each first, unmeasured: caches warm, both sides alike.
    sextant_collect(stack, env, &home)?;
    watcher_collect(stack, &conf)?;
    let (mut s_runs, mut w_runs, mut w_process) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        s_runs.push(sextant_collect(stack, env, &home)?);
        let (w, p) = watcher_collect(stack, &conf)?;
        w_runs.push(w);
        w_process.push(p);
    }
    // The computes' own requests in a window as long as a Watcher run.
    let quiet = median(w_process.clone());
    let marks = Marks::take(stack);
    std::thread::sleep(Duration::from_secs_f64(quiet));
    let background = count(&marks.since(stack)?);
    let baseline = home
        .sextant(env, &["plugins", "list", "--format", "json"])?
        .0;
    let summary = |runs: &[Collected]| {
        let last = runs.last();
        let req = |name: &str| {
            median(
                runs.iter()
                    .map(|r| {
                        r.requests
                            .iter()
                            .find(|x| x.0 == name)
                            .map_or(0.0, |x| x.1 as f64)
                    })
                    .collect(),
            ) as usize
        };
        let requests = vec![("nova", req("nova")), ("placement", req("placement"))];
        json!({
            "seconds": median(runs.iter().map(|r| r.secs).collect()),
            "nodes": last.map_or(0, |r| r.nodes),
            "instances": last.map_or(0, |r| r.instances),
            "requests": requests_json(&requests),
        })
    };
    let s = summary(&s_runs);
    let w = summary(&w_runs);
    let hosts = stack.hosts()?;
    let ratio = |k: &str| {
        let a = s[k].as_f64().unwrap_or(f64::NAN);
        let b = w[k].as_f64().unwrap_or(f64::NAN);
        a / b
    };
    let req_ratio = s["requests"]["total"].as_f64().unwrap_or(f64::NAN)
        / w["requests"]["total"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "hosts": hosts.len(),
        "hosts_up": hosts.iter().filter(|h| h.1).count(),
        "servers": stack.servers()?.len(),
        "sextant": s,
        "sextant_process_baseline_s": baseline,
        "watcher": w,
        "watcher_process_s": median(w_process),
        "time_ratio_sextant_to_watcher": ratio("seconds"),
        "request_ratio_sextant_to_watcher": req_ratio,
        "background_requests_in_a_watcher_run": requests_json(&background),
    }))
}

/// A timestamp of Nova's (`2026-12-06T10:00:00.000000`), in seconds.
fn nova_time(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    let t = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()?;
    Some(t.and_utc().timestamp_micros() as f64 / 1e6)
}

/// Nova's own seconds for each of `ids`' newest live migration (created
/// to last updated), in the order given.
fn nova_migration_secs(stack: &Stack, ids: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for id in ids {
        let v = stack.nova("GET", &format!("/os-migrations?instance_uuid={id}"), None)?;
        let newest = v["migrations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["migration_type"] == "live-migration")
            .max_by_key(|m| m["id"].as_u64().unwrap_or(0))
            .ok_or_else(|| anyhow!("server {id} has no live migration record"))?;
        ensure!(
            newest["status"] == "completed",
            "server {id}'s migration: {newest}"
        );
        let (a, b) = (
            nova_time(&newest["created_at"]),
            nova_time(&newest["updated_at"]),
        );
        out.push(match (a, b) {
            (Some(a), Some(b)) => b - a,
            _ => bail!("migration {newest} has no times"),
        });
    }
    Ok(out)
}

/// What a plan's event history says of its timing.
struct Spans {
    /// From the plan's execution start to its first action's (the
    /// whole-plan simulation).
    before_first: f64,
    /// Each action's execution, start to end, in seconds.
    actions: Vec<f64>,
}

impl Spans {
    fn of(history: &Value) -> anyhow::Result<Self> {
        let at = |e: &Value| -> anyhow::Result<f64> {
            let s = e["at"].as_str().unwrap_or_default();
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("event time {s:?}"))?;
            Ok(t.timestamp_micros() as f64 / 1e6)
        };
        let events = history.as_array().cloned().unwrap_or_default();
        let (mut plan_start, mut first) = (None, f64::INFINITY);
        let mut starts = std::collections::HashMap::new();
        let mut actions = Vec::new();
        for e in &events {
            let uuid = e["object_uuid"].as_str().unwrap_or_default().to_string();
            match e["event_type"].as_str() {
                Some("action_plan.execution.start") => plan_start = Some(at(e)?),
                Some("action.execution.start") => {
                    let t = at(e)?;
                    first = first.min(t);
                    starts.insert(uuid, t);
                }
                Some("action.execution.end") => {
                    if let Some(s) = starts.get(&uuid) {
                        actions.push(at(e)? - s);
                    }
                }
                _ => {}
            }
        }
        let plan_start = plan_start.ok_or_else(|| anyhow!("no execution start in {history}"))?;
        Ok(Self {
            before_first: first - plan_start,
            actions,
        })
    }
}

/// The server's host, polled until its task is done and it is ACTIVE.
fn wait_settled(stack: &Stack, id: &str, dest: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let s = &stack.nova("GET", &format!("/servers/{id}"), None)?["server"];
        if s["OS-EXT-STS:task_state"].is_null() && s["status"] == "ACTIVE" {
            ensure!(
                s["OS-EXT-SRV-ATTR:host"] == dest,
                "server {id} is on {} after its migration to {dest}",
                s["OS-EXT-SRV-ATTR:host"]
            );
            return Ok(());
        }
        ensure!(
            start.elapsed() < Duration::from_secs(300),
            "server {id} never settled"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The applier's overhead per live migration beyond Nova's own time.
fn applier(stack: &Stack, env: &Env, runs: usize, n: usize) -> anyhow::Result<Value> {
    let (a, b) = ("cmp1", "cmp2");
    let ids = stack.boot("migrate", n, Some(a))?;
    let home = Home::new(stack)?;
    let (mut wall_s, mut nova_s, mut bare_s, mut bare_nova_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut actions_s, mut before_s) = (Vec::new(), Vec::new());
    // Each run: the chain from a to b through sextant, then back by bare
    // API calls.
    let (from, to) = (a, b);
    for run in 0..runs {
        // Through sextant: a chain, each migration after the previous.
        let actions: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"id": format!("m{i}"), "action_type": "migrate",
                       "parents": if i == 0 { json!([]) } else { json!([format!("m{}", i - 1)]) },
                       "input_parameters": {"migration_type": "live", "resource_id": id,
                                            "source_node": from, "destination_node": to}})
            })
            .collect();
        let file = home.dir.path().join(format!("plan-{run}.json"));
        std::fs::write(&file, json!({ "actions": actions }).to_string())?;
        let (_, out) = home.sextant(
            env,
            &[
                "action-plan",
                "import",
                file.to_str().unwrap_or_default(),
                "--format",
                "json",
            ],
        )?;
        let plan: Value = serde_json::from_str(&out).context("import's JSON")?;
        let uuid = plan["action_plan"]
            .as_str()
            .ok_or_else(|| anyhow!("import printed no uuid: {out}"))?
            .to_string();
        let (secs, _) = home.sextant(env, &["action-plan", "start", &uuid, "--wait"])?;
        let mine = nova_migration_secs(stack, &ids)?;
        let (_, history) = home.sextant(env, &["history", "--plan", &uuid, "--format", "json"])?;
        let spans = Spans::of(&serde_json::from_str(&history).context("history's JSON")?)?;
        ensure!(
            spans.actions.len() == n,
            "{} of {n} actions ran: {history}",
            spans.actions.len()
        );
        wall_s.push(secs);
        nova_s.push(mine.iter().sum::<f64>());
        actions_s.push(spans.actions.iter().sum::<f64>());
        before_s.push(spans.before_first);
        // The same chain back by bare API calls and polling (0.25 s).
        let t = Instant::now();
        for id in &ids {
            stack.nova(
                "POST",
                &format!("/servers/{id}/action"),
                Some(&json!({"os-migrateLive": {"host": from, "block_migration": "auto"}})),
            )?;
            wait_settled(stack, id, from)?;
        }
        bare_s.push(t.elapsed().as_secs_f64());
        bare_nova_s.push(nova_migration_secs(stack, &ids)?.iter().sum::<f64>());
    }
    let (wall, nova, bare, bare_nova) = (
        median(wall_s),
        median(nova_s),
        median(bare_s),
        median(bare_nova_s),
    );
    let (actions, before) = (median(actions_s), median(before_s));
    for id in &ids {
        let _ = stack.nova("DELETE", &format!("/servers/{id}"), None);
    }
    let nf = n as f64;
    Ok(json!({
        "migrations": n,
        "hosts": [a, b],
        "sextant_plan_wall_s": wall,
        "sextant_before_first_action_s": before,
        "sextant_actions_s": actions,
        "nova_own_s": nova,
        "sextant_overhead_per_migration_s": (actions - nova) / nf,
        "sextant_plan_overhead_per_migration_s": (wall - nova) / nf,
        "bare_api_wall_s": bare,
        "bare_api_nova_own_s": bare_nova,
        "bare_api_overhead_per_migration_s": (bare - bare_nova) / nf,
    }))
}

pub(crate) fn run(env: &Env, args: Args) -> CliResult {
    let stack = Stack::from_env()?;
    let runs = args.runs.max(1);
    let t0 = Instant::now();
    // The three hosts, with a few servers.
    stack.boot("small", args.servers_small, None)?;
    let small = collectors(&stack, env, runs)?;
    eprintln!("collector at 3 hosts: {small}");
    let applier = if args.migrations > 0 {
        applier(&stack, env, runs, args.migrations)?
    } else {
        Value::Null
    };
    eprintln!("applier: {applier}");
    let large = if args.grow > 0 {
        let t = Instant::now();
        stack.nova_sh("nova_grow", &[args.grow.to_string()])?;
        let grow_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        stack.boot("large", args.servers_large, None)?;
        let boot_s = t.elapsed().as_secs_f64();
        // Idle, the added computes' periodic tasks take more CPU than the
        // machine has; what the collectors read stays in Nova's database.
        stack.nova_sh("nova_grow_stop", &[])?;
        let mut v = collectors(&stack, env, runs)?;
        v["grow_s"] = json!(grow_s);
        v["boot_s"] = json!(boot_s);
        v
    } else {
        Value::Null
    };
    outln!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "benchmark": "openstack",
            "runs": runs,
            "collector_at_3_hosts": small,
            "collector_large": large,
            "applier": applier,
            "load_average": load_average(),
            "total_s": t0.elapsed().as_secs_f64(),
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collectors_requests_are_told_from_the_static_tokens() {
        let keystone = r#"2026-12-06 10:41:36.019 7386 INFO nova.api.openstack.requestlog [None req-fb05 52250ce0442b4d0fb46befe53c13a954 8f926984804b44fc8c0d52c26c29fe17 - - default default] 127.0.0.1 "GET /v2.1/os-hypervisors/detail" status: 200 len: 947 microversion: 2.88 time: 1.480261"#;
        let harness = r#"2026-12-06 10:38:01.503 7386 INFO nova.api.openstack.requestlog [None req-14ab admin admin - - - -] 127.0.0.1 "GET /v2.1/os-services?binary=nova-compute" status: 200 len: 641 microversion: 2.53 time: 0.018718"#;
        let compute = r#"2026-12-06 10:40:51.840 7388 INFO placement.requestlog [req-110e req-8946 admin admin - - - -] 127.0.0.1 "GET /resource_providers/7cd12f3a-8c9c-4923-aad8-dc352d0181a9/allocations" status: 200 len: 54 microversion: 1.0"#;
        let stale_version = r#"2026-12-06 10:47:57.490 7386 INFO nova.api.openstack.requestlog [None req-cbcf admin admin - - - -] 127.0.0.1 "GET /v2.1/" status: 200 len: 371 microversion: - time: 0.001581"#;
        let placement_version = r#"2026-12-06 10:41:39.591 7388 INFO placement.requestlog [None req-8482 - - - - - -] 127.0.0.1 "GET /" status: 200 len: 136 microversion: 1.0"#;
        let not_a_request = "2026-12-06 10:41:39.591 7388 WARNING keystonemiddleware.auth_token [-] Using the in-process token cache";
        assert!(is_request_line(keystone));
        assert!(!is_request_line(harness));
        assert!(!is_request_line(compute));
        assert!(is_request_line(stale_version));
        assert!(is_request_line(placement_version));
        assert!(!is_request_line(not_a_request));
    }

    #[test]
    fn nova_times_and_event_spans_are_read_in_seconds() {
        let a = nova_time(&json!("2026-12-06T10:46:22.150000")).unwrap();
        let b = nova_time(&json!("2026-12-06T10:46:24.000000")).unwrap();
        assert!((b - a - 1.85).abs() < 1e-6, "{}", b - a);
        assert_eq!(nova_time(&json!(null)), None);
        let history = json!([
            {"at": "2026-12-06T10:46:15.765Z", "event_type": "action_plan.execution.start", "object_uuid": "p"},
            {"at": "2026-12-06T10:46:22.036Z", "event_type": "action.execution.start", "object_uuid": "a"},
            {"at": "2026-12-06T10:46:24.204Z", "event_type": "action.execution.end", "object_uuid": "a"},
            {"at": "2026-12-06T10:46:24.300Z", "event_type": "action.execution.start", "object_uuid": "b"},
            {"at": "2026-12-06T10:46:25.300Z", "event_type": "action.execution.end", "object_uuid": "b"},
        ]);
        let s = Spans::of(&history).unwrap();
        assert!((s.before_first - 6.271).abs() < 1e-6, "{}", s.before_first);
        assert_eq!(s.actions.len(), 2);
        assert!((s.actions[0] - 2.168).abs() < 1e-6 && (s.actions[1] - 1.0).abs() < 1e-6);
        assert!(Spans::of(&json!([])).is_err());
    }
}
