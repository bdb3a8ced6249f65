//! The AMQP sink against a real RabbitMQ and a real oslo.messaging
//! notification listener (tests/oslo_listener.py, in the venv of
//! scripts/services/oslo.sh): Watcher's envelope, event types, priorities,
//! payload classes and versions, one notification per expected one; and a
//! broker stopped in the middle of a plan neither slows it nor loses a
//! notification.

use serde_json::{Value, json};
use sextant_e2e::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Watcher's event types: payload class and version (watcher/notifications).
fn watcher_kind(event_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match event_type {
        "audit.create" => ("AuditCreatePayload", "1.2"),
        "audit.update" => ("AuditUpdatePayload", "1.2"),
        "audit.delete" => ("AuditDeletePayload", "1.2"),
        "audit.strategy.start"
        | "audit.strategy.end"
        | "audit.strategy.error"
        | "audit.planner.start"
        | "audit.planner.end"
        | "audit.planner.error" => ("AuditActionPayload", "1.2"),
        "action_plan.create" => ("ActionPlanCreatePayload", "1.2"),
        "action_plan.update" => ("ActionPlanUpdatePayload", "1.2"),
        "action_plan.delete" => ("ActionPlanDeletePayload", "1.2"),
        "action_plan.execution.start"
        | "action_plan.execution.end"
        | "action_plan.execution.error" => ("ActionPlanActionPayload", "1.2"),
        "action_plan.cancel.start" | "action_plan.cancel.end" | "action_plan.cancel.error" => {
            ("ActionPlanCancelPayload", "1.2")
        }
        "action.create" => ("ActionCreatePayload", "1.1"),
        "action.update" => ("ActionUpdatePayload", "1.1"),
        "action.delete" => ("ActionDeletePayload", "1.1"),
        "action.execution.start" | "action.execution.end" | "action.execution.error" => {
            ("ActionExecutionPayload", "1.1")
        }
        "action.cancel.start" | "action.cancel.end" | "action.cancel.error" => {
            ("ActionCancelPayload", "1.1")
        }
        _ => return None,
    })
}

/// The notifications one stored event must give, by (part, event type): a
/// phase that changed the state is Watcher's `<object>.update` first; a
/// type Watcher lacks shows only its state change.
fn expected_of(e: &Value) -> Vec<String> {
    let object = e["object_type"].as_str().unwrap_or_default();
    if !["audit", "action_plan", "action"].contains(&object) {
        return Vec::new();
    }
    let t = e["event_type"].as_str().unwrap_or_default();
    let changed = !e["new_state"].is_null() && e["new_state"] != e["old_state"];
    let update = format!("{object}.update");
    let phase = t.matches('.').count() == 2;
    match watcher_kind(t) {
        Some(_) if phase && changed => vec![update, t.to_string()],
        Some(_) => vec![t.to_string()],
        None if changed => vec![update],
        None => Vec::new(),
    }
}

/// The event id and part a stable message id carries (a version 8 UUID:
/// 7 bytes of origin, the part, the event id).
fn decode(message_id: &str) -> (i64, u8) {
    let hex: String = message_id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "{message_id}");
    let part = u8::from_str_radix(&hex[14..16], 16).expect("hex");
    let id = u64::from_str_radix(&hex[16..], 16).expect("hex") & 0x3fff_ffff_ffff_ffff;
    (i64::try_from(id).expect("id"), part)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        sigterm(&self.0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The oslo.messaging notification listener, writing JSON lines to `out`.
/// With `ssl_ca`, over TLS (`url` is `amqps://`), the broker verified
/// against that CA.
fn listener(
    home: &Path,
    url: &str,
    topic: &str,
    durable: bool,
    ssl_ca: Option<&str>,
) -> (Stopped, PathBuf) {
    let python = service_url("SEXTANT_TEST_OSLO_PYTHON");
    let out = home.join(format!("received-{topic}.jsonl"));
    let ready = home.join(format!("ready-{topic}"));
    let transport = url
        .replacen("amqps://", "rabbit://", 1)
        .replacen("amqp://", "rabbit://", 1);
    let mut c = Command::new(python);
    c.arg(repo_root().join("tests/oslo_listener.py"))
        .args(["--url", &transport, "--topic", topic, "--out"])
        .arg(&out)
        .arg("--ready")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join(format!("listener-{topic}.log"))).expect("log"));
    if durable {
        c.arg("--durable");
    }
    if let Some(ca) = ssl_ca {
        c.args(["--ssl-ca", ca]);
    }
    let child = Stopped(c.spawn().expect("python"));
    wait_for("the oslo listener", Duration::from_secs(60), || {
        ready.exists()
    });
    (child, out)
}

fn received(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The sink's status line.
fn sink_status(home: &Home) -> Value {
    let out = home.run(&["notifications", "status", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()[0].clone()
}

fn all_events(home: &Home) -> Vec<Value> {
    let out = home.run(&["history", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json().as_array().cloned().unwrap_or_default()
}

fn plan_state(home: &Home, plan: &str) -> String {
    home.plan(plan)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn config(home: &Home, sink: &str) {
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        &format!("notifications:\n  - {sink}\n"),
    );
}

/// What every received notification must be, against the events table:
/// returns the (event id, part) of each, in the order received.
fn check_received(got: &[Value], events: &HashMap<i64, Value>, host: &str) -> Vec<(i64, u8)> {
    let mut ids = Vec::new();
    for n in got {
        assert_eq!(n["publisher_id"], format!("infra-optim:{host}"), "{n}");
        let t = n["event_type"].as_str().expect("event_type");
        let want_priority = if t.ends_with(".error") {
            "error"
        } else {
            "info"
        };
        assert_eq!(n["priority"], want_priority, "{n}");
        let (class, version) = watcher_kind(t).unwrap_or_else(|| panic!("not Watcher's: {n}"));
        let p = &n["payload"];
        assert_eq!(p["watcher_object.name"], class, "{n}");
        assert_eq!(p["watcher_object.version"], version, "{n}");
        assert_eq!(p["watcher_object.namespace"], "watcher", "{n}");
        assert!(p.get("watcher_object.changes").is_none(), "{n}");
        let ts = n["metadata"]["timestamp"].as_str().expect("timestamp");
        assert!(
            ts.len() == 26 && ts.as_bytes()[10] == b' ',
            "oslo's timestamp: {ts}"
        );
        let (id, part) = decode(n["metadata"]["message_id"].as_str().expect("message_id"));
        let e = events
            .get(&id)
            .unwrap_or_else(|| panic!("no event {id} for {n}"));
        let expected = expected_of(e);
        assert_eq!(
            expected.get(usize::from(part)).map(String::as_str),
            Some(t),
            "{n} from {e}"
        );
        assert_eq!(p["watcher_object.data"]["uuid"], e["object_uuid"], "{n}");
        if let Some(new) = e["new_state"].as_str() {
            assert_eq!(p["watcher_object.data"]["state"], new, "{n}");
        }
        if t.ends_with(".error") {
            assert_eq!(
                p["watcher_object.data"]["fault"]["watcher_object.name"], "ExceptionPayload",
                "{n}"
            );
        }
        ids.push((id, part));
    }
    ids
}

/// The notifications the events after `after` must give.
fn expected_after(events: &[Value], after: i64) -> BTreeSet<(i64, u8)> {
    events
        .iter()
        .filter(|e| e["id"].as_i64().unwrap_or(0) > after)
        .flat_map(|e| {
            let id = e["id"].as_i64().unwrap_or(0);
            (0..expected_of(e).len()).map(move |p| (id, u8::try_from(p).unwrap_or(0)))
        })
        .collect()
}

#[test]
fn an_oslo_listener_gets_watchers_notifications_of_an_audit_and_its_plans() {
    let url = service_url("SEXTANT_TEST_AMQP_URL");
    let home = Home::new();
    // The test-wide broker is shared: this run has its own topic (so its
    // own queues) and its own publisher host. The defaults (`watcher`,
    // `notifications`) are what the broker-restart test runs with.
    let host = format!("e2e-{}", std::process::id());
    let topic = format!("notifications_{host}");
    config(
        &home,
        &format!("{{type: amqp, url: \"{url}\", host: {host}, topic: {topic}}}"),
    );
    write_file(
        &home.types,
        "fails.yaml",
        "name: fails\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"/bin/ls\", \"/no/such/path\"]\n",
    );
    let (_listener, out) = listener(home.path(), &url, &topic, false, None);
    let serve_log = home.path().join("serve.log");
    let _serve = Stopped(
        home.cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&serve_log).expect("log"))
            .spawn()
            .expect("serve"),
    );
    wait_for("the sink's cursor", Duration::from_secs(30), || {
        !sink_status(&home)["last_event_id"].is_null()
    });
    let start = sink_status(&home)["last_event_id"]
        .as_i64()
        .expect("cursor");

    // An audit and its plan: audit.*, action_plan.*, action.* events.
    let sim = home.run(&[
        "sim",
        "init",
        "--from",
        repo_root()
            .join("examples/clusters/small.yaml")
            .to_str()
            .expect("path"),
        "--time-scale",
        "0",
    ]);
    assert_eq!(sim.status, 0, "{}", sim.stderr);
    let audit = home.run(&[
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-s",
        "basic",
        "--policy",
        "default",
        "--format",
        "json",
    ]);
    assert_eq!(audit.status, 0, "{}", audit.stderr);
    let audit_plan = audit.json()["action_plan"]
        .as_str()
        .expect("plan")
        .to_string();
    assert_eq!(home.run(&["action-plan", "start", &audit_plan]).status, 0);
    // A plan with a failing action: ERROR notifications with a fault.
    let failing = home.import_json(
        "failing.json",
        &json!({"actions": [
            {"id": "ok", "action_type": "nop", "input_parameters": {"message": "hi"}},
            {"id": "bad", "action_type": "fails", "input_parameters": {}, "parents": ["ok"]},
        ]}),
    );
    assert_eq!(home.run(&["action-plan", "start", &failing]).status, 0);
    wait_for("both plans to end", Duration::from_secs(120), || {
        plan_state(&home, &audit_plan) == "SUCCEEDED" && plan_state(&home, &failing) == "FAILED"
    });
    wait_for("the sink to catch up", Duration::from_secs(60), || {
        sink_status(&home)["lag"] == 0
    });

    let events = all_events(&home);
    let expected = expected_after(&events, start);
    let by_id: HashMap<i64, Value> = events
        .iter()
        .map(|e| (e["id"].as_i64().unwrap_or(0), e.clone()))
        .collect();
    let mine = || -> Vec<Value> {
        received(&out)
            .into_iter()
            .filter(|n| n["publisher_id"] == format!("infra-optim:{host}"))
            .collect()
    };
    let (start_wait, mut last) = (Instant::now(), 0);
    while mine().len() < expected.len() && start_wait.elapsed() < Duration::from_secs(60) {
        last = mine().len();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = mine();
    assert!(
        got.len() >= expected.len(),
        "{} of {} notifications after 60 s ({last} before the last wait)",
        got.len(),
        expected.len()
    );
    let ids = check_received(&got, &by_id, &host);
    let unique: BTreeSet<(i64, u8)> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "no duplicate in a run without failures: {ids:?}\n{}",
        std::fs::read_to_string(&serve_log).unwrap_or_default()
    );
    assert_eq!(
        unique, expected,
        "one notification per expected one, none missing"
    );

    let types: BTreeSet<&str> = got
        .iter()
        .filter_map(|n| n["event_type"].as_str())
        .collect();
    for t in [
        "audit.create",
        "audit.update",
        "audit.strategy.start",
        "audit.strategy.end",
        "action_plan.create",
        "action_plan.update",
        "action_plan.execution.start",
        "action_plan.execution.end",
        "action.create",
        "action.update",
        "action.execution.start",
        "action.execution.end",
        "action.execution.error",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }
    // Sextant's extras ride beside Watcher's fields of an action.
    let end = got
        .iter()
        .find(|n| n["event_type"] == "action.execution.end")
        .expect("an end");
    assert!(end["payload"]["watcher_object.data"]["sextant_action_type_version"].is_string());
    assert_eq!(
        end["payload"]["watcher_object.data"]["action_plan"]["watcher_object.name"],
        "TerseActionPlanPayload"
    );
    // The password never reaches what the sink shows.
    let status = home.run(&["notifications", "status"]);
    assert!(status.stdout.contains("guest:***@"), "{}", status.stdout);
    assert!(!status.stdout.contains("guest:guest"), "{}", status.stdout);
}

/// A RabbitMQ of this test alone (tests/rabbitmq_private.sh), stopped when
/// dropped.
struct PrivateBroker {
    dir: String,
    url: String,
}

fn broker_script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("tests/rabbitmq_private.sh"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash");
    assert!(out.status.success(), "rabbitmq_private.sh {args:?} failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl PrivateBroker {
    fn start() -> Self {
        let text = broker_script(&["start"]);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {text}"))
                .to_string()
        };
        Self {
            dir: field("DIR="),
            url: field("URL="),
        }
    }
    fn kill(&self) {
        broker_script(&["kill", &self.dir]);
    }
    fn restart(&self) {
        broker_script(&["restart", &self.dir]);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("tests/rabbitmq_private.sh"))
            .args(["stop", &self.dir])
            .status();
    }
}

/// A plan of 1,000 short sleeps in 10 parallel chains.
fn thousand(home: &Home, name: &str) -> String {
    let mut actions = Vec::new();
    for c in 0..10 {
        for i in 0..100 {
            let mut a = json!({"id": format!("c{c}-{i}"), "action_type": "sleep",
                               "input_parameters": {"duration": 0.02}});
            if i > 0 {
                a["parents"] = json!([format!("c{c}-{}", i - 1)]);
            }
            actions.push(a);
        }
    }
    home.import_json(name, &json!({"actions": actions}))
}

/// How long a plan ran, from its events' times.
fn plan_duration(home: &Home, plan: &str) -> Duration {
    let events = home.events(plan);
    let at = |t: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == t)
            .and_then(|e| e["at"].as_str())
            .map(ms_of)
            .unwrap_or_else(|| panic!("no {t}"))
    };
    Duration::from_millis(at("action_plan.execution.end") - at("action_plan.execution.start"))
}

/// Milliseconds of a stored time (`2026-01-31T12:34:56.789Z`) since the
/// start of its month: enough to subtract two times of one plan.
fn ms_of(s: &str) -> u64 {
    let day: u64 = s[8..10].parse().expect("day");
    let h: u64 = s[11..13].parse().expect("hour");
    let m: u64 = s[14..16].parse().expect("minute");
    let sec: u64 = s[17..19].parse().expect("second");
    let ms: u64 = s[20..23].parse().expect("ms");
    (((day * 24 + h) * 60 + m) * 60 + sec) * 1000 + ms
}

#[test]
fn a_broker_stopped_mid_plan_slows_nothing_and_loses_nothing() {
    let broker = PrivateBroker::start();
    let home = Home::new();
    let host = "restart";
    config(
        &home,
        &format!(
            "{{type: amqp, url: \"{}\", host: {host}, durable: true}}",
            broker.url
        ),
    );
    let serve_log = home.path().join("serve.log");
    let _serve = Stopped(
        home.cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&serve_log).expect("log"))
            .spawn()
            .expect("serve"),
    );
    wait_for("the sink's cursor", Duration::from_secs(30), || {
        !sink_status(&home)["last_event_id"].is_null()
    });
    let start = sink_status(&home)["last_event_id"]
        .as_i64()
        .expect("cursor");

    // With the broker up: the baseline.
    let first = thousand(&home, "first.json");
    assert_eq!(home.run(&["action-plan", "start", &first]).status, 0);
    wait_for("the first plan", Duration::from_secs(300), || {
        plan_state(&home, &first) == "SUCCEEDED"
    });
    let baseline = plan_duration(&home, &first);

    // The broker dies a third of the way through the second plan and comes
    // back only after it ended.
    let second = thousand(&home, "second.json");
    assert_eq!(home.run(&["action-plan", "start", &second]).status, 0);
    wait_for(
        "a third of the second plan",
        Duration::from_secs(300),
        || {
            home.events(&second)
                .iter()
                .filter(|e| e["event_type"] == "action.execution.end")
                .count()
                >= 333
        },
    );
    broker.kill();
    wait_for("the second plan", Duration::from_secs(300), || {
        plan_state(&home, &second) == "SUCCEEDED"
    });
    let with_dead_broker = plan_duration(&home, &second);
    assert!(
        with_dead_broker < baseline.mul_f64(1.5) + Duration::from_secs(2),
        "a dead broker slowed the plan: {with_dead_broker:?} against {baseline:?}"
    );
    let lag = sink_status(&home)["lag"].as_i64().expect("lag");
    assert!(lag > 0, "the broker was down: events must wait");

    broker.restart();
    wait_for("the backlog to drain", Duration::from_secs(120), || {
        sink_status(&home)["lag"] == 0
    });
    let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
    assert!(
        log.contains("delivery after event"),
        "the failure is logged:\n{log}"
    );
    assert!(
        !log.contains("guest:guest"),
        "no password in the log:\n{log}"
    );

    // Everything waited in the durable queues.
    let events = all_events(&home);
    let expected = expected_after(&events, start);
    let (_listener, out) = listener(home.path(), &broker.url, "notifications", true, None);
    let by_id: HashMap<i64, Value> = events
        .iter()
        .map(|e| (e["id"].as_i64().unwrap_or(0), e.clone()))
        .collect();
    wait_for(
        "every notification at the listener",
        Duration::from_secs(120),
        || {
            received(&out)
                .iter()
                .filter_map(|n| n["metadata"]["message_id"].as_str().map(decode))
                .collect::<BTreeSet<_>>()
                .len()
                >= expected.len()
        },
    );
    let got = received(&out);
    let ids = check_received(&got, &by_id, host);
    let unique: BTreeSet<(i64, u8)> = ids.iter().copied().collect();
    assert_eq!(unique, expected, "every event delivered, none missing");
    // In order per action: the first delivery of each of an action's
    // notifications comes in event order.
    let mut seen = BTreeSet::new();
    let mut per_action: BTreeMap<String, Vec<(i64, u8)>> = BTreeMap::new();
    for (n, id) in got.iter().zip(&ids) {
        if seen.insert(*id)
            && n["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("action."))
        {
            let uuid = n["payload"]["watcher_object.data"]["uuid"]
                .as_str()
                .unwrap_or_default();
            per_action.entry(uuid.to_string()).or_default().push(*id);
        }
    }
    assert_eq!(per_action.len(), 2000, "every action of both plans");
    for (uuid, ids) in &per_action {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, &sorted, "action {uuid} out of order");
    }
}

#[test]
fn over_amqps_a_real_consumer_gets_every_notification_and_a_wrong_ca_is_refused_naming_it() {
    let url = service_url("SEXTANT_TEST_AMQPS_URL");
    let ca = service_url("SEXTANT_TEST_AMQPS_CA");
    assert!(url.starts_with("amqps://"), "{url}");
    let home = Home::new();
    let host = format!("tls-{}", std::process::id());
    let topic = format!("notifications_{host}");
    config(
        &home,
        &format!("{{type: amqp, url: \"{url}\", host: {host}, topic: {topic}, ca_file: \"{ca}\"}}"),
    );
    let (_listener, out) = listener(home.path(), &url, &topic, false, Some(&ca));
    let serve_log = home.path().join("serve.log");
    let _serve = Stopped(
        home.cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&serve_log).expect("log"))
            .spawn()
            .expect("serve"),
    );
    wait_for("the sink's cursor", Duration::from_secs(30), || {
        !sink_status(&home)["last_event_id"].is_null()
    });
    let start = sink_status(&home)["last_event_id"]
        .as_i64()
        .expect("cursor");
    let plan = home.import_json(
        "tls.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "over TLS"}},
            {"id": "b", "action_type": "nop", "input_parameters": {"message": "still"}, "parents": ["a"]},
        ]}),
    );
    assert_eq!(home.run(&["action-plan", "start", &plan]).status, 0);
    wait_for("the plan", Duration::from_secs(60), || {
        plan_state(&home, &plan) == "SUCCEEDED"
    });
    wait_for("the sink to catch up", Duration::from_secs(60), || {
        sink_status(&home)["lag"] == 0
    });
    let events = all_events(&home);
    let expected = expected_after(&events, start);
    assert!(expected.len() >= 8, "{expected:?}");
    let by_id: HashMap<i64, Value> = events
        .iter()
        .map(|e| (e["id"].as_i64().unwrap_or(0), e.clone()))
        .collect();
    wait_for(
        "every notification over TLS",
        Duration::from_secs(60),
        || received(&out).len() >= expected.len(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let ids = check_received(&received(&out), &by_id, &host);
    let unique: BTreeSet<(i64, u8)> = ids.iter().copied().collect();
    assert_eq!(
        unique, expected,
        "one notification per expected one, none missing"
    );

    // A CA that did not sign the broker's certificate: refused, the
    // failure names the certificate and the sink (without its password),
    // and the events wait after the cursor.
    let wrong = Home::new();
    let (other_ca, _) = sextant_e2e::api::self_signed(&wrong.path().join("other-ca"));
    config(
        &wrong,
        &format!(
            "{{type: amqp, url: \"{url}\", host: {host}-wrong, topic: {topic}_wrong, ca_file: \"{}\"}}",
            other_ca.display()
        ),
    );
    let wrong_log = wrong.path().join("serve.log");
    let _wrong_serve = Stopped(
        wrong
            .cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&wrong_log).expect("log"))
            .spawn()
            .expect("serve"),
    );
    wait_for("the sink's cursor", Duration::from_secs(30), || {
        !sink_status(&wrong)["last_event_id"].is_null()
    });
    let plan = wrong.import_json(
        "tls.json",
        &json!({"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}}]}),
    );
    assert_eq!(wrong.run(&["action-plan", "start", &plan]).status, 0);
    wait_for("the plan", Duration::from_secs(60), || {
        plan_state(&wrong, &plan) == "SUCCEEDED"
    });
    let log = || std::fs::read_to_string(&wrong_log).unwrap_or_default();
    wait_for("the refusal in the log", Duration::from_secs(30), || {
        log().contains("delivery after event")
    });
    let log = log();
    let line = log
        .lines()
        .find(|l| l.contains("delivery after event"))
        .expect("a failure line");
    assert!(
        line.to_lowercase().contains("certificate") && line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(line.contains("amqps://guest:***@127.0.0.1"), "{line}");
    assert!(!log.contains("guest:guest"), "{log}");
    let status = sink_status(&wrong);
    assert!(status["lag"].as_i64().unwrap_or(0) > 0, "{status}");
}
