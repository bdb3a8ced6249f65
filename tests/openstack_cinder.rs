//! `openstack.volume_migrate` against the real Cinder 29 that
//! scripts/services/cinder.sh starts (backends cinder@fake1 and
//! cinder@fake2 up and enabled, cinder@fake3 up and disabled; only the
//! storage is fake): a plan of volume migrations applied through the
//! `sextant` binary moves the volumes where Cinder says they are, an
//! action already done is skipped, and Cinder's refusal of a disabled
//! backend reaches the action's status message and cancels its dependents.
//!
//! The tests share one Cinder, so they run one at a time (`CINDER`), each
//! deleting the volumes it made.

use serde_json::{Value, json};
use sextant_e2e::openstack::{openstack_home, os_cmd};
use sextant_e2e::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static CINDER: Mutex<()> = Mutex::new(());

/// The real Cinder, asked directly.
struct Cinder {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Cinder {
    fn new() -> Self {
        Self {
            url: service_url("SEXTANT_TEST_CINDER_URL"),
            token: service_url("SEXTANT_TEST_CINDER_TOKEN"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "volume 3.67")
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .expect("request");
        let resp = self.agent.run(req).expect("Cinder answers");
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.send(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    fn volume(&self, id: &str) -> Value {
        self.ok("GET", &format!("/volumes/{id}"), None)["volume"].clone()
    }

    fn host_of(&self, id: &str) -> String {
        self.volume(id)["os-vol-host-attr:host"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn wait(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let v = self.volume(id);
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "volume {id} never {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Moves a volume to `host` directly through Cinder and waits.
    fn migrate(&self, id: &str, host: &str) {
        self.ok(
            "POST",
            &format!("/volumes/{id}/action"),
            Some(&json!({"os-migrate_volume": {"host": host, "force_host_copy": false}})),
        );
        self.wait(id, &format!("reached {host}"), |v| {
            v["os-vol-host-attr:host"] == host && v["migration_status"] == "success"
        });
    }

    /// A 1 GB volume on `pool` (`host@backend#pool`), available.
    fn create_on(&self, name: &str, pool: &str) -> String {
        let v = self.ok(
            "POST",
            "/volumes",
            Some(&json!({"volume": {"size": 1, "name": name}})),
        );
        let id = v["volume"]["id"].as_str().expect("volume id").to_string();
        let v = self.wait(&id, "became available", |v| v["status"] == "available");
        if v["os-vol-host-attr:host"] != pool {
            self.migrate(&id, pool);
        }
        id
    }

    fn delete(&self, id: &str) {
        let _ = self.send("DELETE", &format!("/volumes/{id}"), None);
        let start = Instant::now();
        while self.send("GET", &format!("/volumes/{id}"), None).0 != 404
            && start.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The fake driver's file of a volume on `backend`.
    fn file_on(&self, backend: &str, id: &str) -> bool {
        std::path::Path::new(&service_url("SEXTANT_TEST_CINDER_DIR"))
            .join("volumes")
            .join(backend)
            .join(id)
            .exists()
    }
}

/// A home whose config selects the OpenStack driver, with a clouds.yaml
/// whose cloud `test` reaches Cinder with the harness's admin token.
fn cinder_home(c: &Cinder) -> Home {
    openstack_home(&format!(
        "    auth_type: admin_token\n    auth: {{token: {}}}\n    block_storage_endpoint_override: {}\n",
        c.token, c.url
    ))
}

fn import_and_start(home: &Home, actions: Value) -> (String, Run) {
    import_and_start_with(home, actions, &[])
}

/// Imports a plan of `actions` and runs `action-plan start PLAN --wait EXTRA…`.
fn import_and_start_with(home: &Home, actions: Value, extra: &[&str]) -> (String, Run) {
    let plan = home.import_json("plan.json", &json!({"actions": actions}));
    let out = run(os_cmd(home)
        .args(["action-plan", "start", &plan, "--wait"])
        .args(extra));
    (plan, out)
}

fn move_to(id: &str, dest: &str, source: Option<&str>) -> Value {
    let mut p = json!({"resource_id": id, "migration_type": "migrate", "destination_node": dest});
    if let Some(s) = source {
        p["source_node"] = json!(s);
    }
    p
}

#[test]
fn a_plan_migrates_volumes_between_cinder_backends_and_skips_one_already_there() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let a = c.create_on("move-a", "cinder@fake1#fake1");
    let b = c.create_on("move-b", "cinder@fake1#fake1");
    let there = c.create_on("already-there", "cinder@fake2#fake2");
    let home = cinder_home(&c);
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "to-pool", "action_type": "volume_migrate", "parents": [],
             "input_parameters": move_to(&a, "cinder@fake2#fake2", Some("cinder@fake1#fake1"))},
            {"id": "to-backend", "action_type": "volume_migrate", "parents": ["to-pool"],
             "input_parameters": move_to(&b, "cinder@fake2", None)},
            {"id": "done-already", "action_type": "volume_migrate", "parents": ["to-backend"],
             "input_parameters": move_to(&there, "cinder@fake2#fake2", None)},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
    assert_eq!(home.action(&plan, "to-pool")["state"], "SUCCEEDED");
    assert_eq!(home.action(&plan, "to-backend")["state"], "SUCCEEDED");
    let skipped = home.action(&plan, "done-already");
    assert_eq!(skipped["state"], "SKIPPED", "{skipped}");
    assert!(
        skipped["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("already on cinder@fake2#fake2"),
        "{skipped}"
    );
    for id in [&a, &b] {
        let v = c.volume(id);
        assert_eq!(v["os-vol-host-attr:host"], "cinder@fake2#fake2", "{v}");
        assert_eq!(v["migration_status"], "success", "{v}");
        assert_eq!(v["status"], "available", "{v}");
        assert!(c.file_on("fake2", id) && !c.file_on("fake1", id));
    }
    assert_eq!(c.host_of(&there), "cinder@fake2#fake2");
    for id in [a, b, there] {
        c.delete(&id);
    }
}

#[test]
fn a_migration_to_a_disabled_backend_fails_with_cinders_message_and_cancels_its_dependents() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let v = c.create_on("refused", "cinder@fake1#fake1");
    let other = c.create_on("after", "cinder@fake1#fake1");
    let home = cinder_home(&c);
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "to-disabled", "action_type": "volume_migrate", "parents": [],
             "input_parameters": move_to(&v, "cinder@fake3#fake3", None)},
            {"id": "after", "action_type": "volume_migrate", "parents": ["to-disabled"],
             "input_parameters": move_to(&other, "cinder@fake2#fake2", None)},
        ]),
    );
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert_eq!(home.plan(&plan)["state"], "FAILED");
    let failed = home.action(&plan, "to-disabled");
    assert_eq!(failed["state"], "FAILED", "{failed}");
    let msg = failed["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("No available service named 'cinder@fake3#fake3'"),
        "{msg}"
    );
    assert_eq!(home.action(&plan, "after")["state"], "CANCELLED");
    assert_eq!(c.host_of(&v), "cinder@fake1#fake1");
    assert_eq!(c.host_of(&other), "cinder@fake1#fake1");
    assert!(c.volume(&v)["migration_status"] != "starting");
    c.delete(&v);
    c.delete(&other);
}

#[test]
fn an_unknown_backend_a_missing_volume_and_swap_are_refused_naming_them() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let v = c.create_on("nowhere", "cinder@fake1#fake1");
    let home = cinder_home(&c);
    let gone = "00000000-0000-4000-8000-000000000001";
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "gone", "action_type": "volume_migrate", "parents": [],
             "input_parameters": move_to(gone, "cinder@fake2#fake2", None)},
            {"id": "unknown", "action_type": "volume_migrate", "parents": ["gone"],
             "input_parameters": move_to(&v, "cinder@nowhere#nowhere", None)},
        ]),
    );
    assert_ne!(out.status, 0, "{}", out.stdout);
    let gone_action = home.action(&plan, "gone");
    assert_eq!(gone_action["state"], "SKIPPED", "{gone_action}");
    assert!(
        gone_action["status_message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("volume {gone} does not exist")),
        "{gone_action}"
    );
    let unknown = home.action(&plan, "unknown");
    assert_eq!(unknown["state"], "FAILED", "{unknown}");
    let msg = unknown["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("no cinder-volume service cinder@nowhere") && msg.contains("cinder@fake1"),
        "{msg}"
    );
    assert_eq!(c.host_of(&v), "cinder@fake1#fake1");

    let home = cinder_home(&c);
    let (plan, out) = import_and_start(
        &home,
        json!([{"id": "swap", "action_type": "volume_migrate", "parents": [],
                "input_parameters": {"resource_id": v, "migration_type": "swap",
                                     "destination_node": "cinder@fake2#fake2"}}]),
    );
    // Refused by the plan's simulation, which asks the first actions'
    // pre-conditions: nothing ran.
    assert_ne!(out.status, 0, "{}", out.stdout);
    let p = home.plan(&plan);
    assert_eq!(p["state"], "FAILED");
    let msg = p["status_message"].as_str().unwrap_or("");
    assert!(
        msg.contains("action swap (volume_migrate)")
            && msg.contains("migration_type swap is not supported"),
        "{msg}"
    );
    assert_eq!(home.action(&plan, "swap")["state"], "PENDING");
    assert_eq!(c.host_of(&v), "cinder@fake1#fake1");
    c.delete(&v);
}

#[test]
fn the_collectors_storage_part_is_what_cinder_reports() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let a = c.create_on("collect-a", "cinder@fake1#fake1");
    let b = c.create_on("collect-b", "cinder@fake2#fake2");
    // Nova and Placement too: the collector reads the whole cloud.
    let home = cinder_home(&c);
    write_file(
        &home.path().join("os"),
        "clouds.yaml",
        &format!(
            "clouds:\n  test:\n    auth_type: admin_token\n    auth: {{token: {}}}\n    compute_endpoint_override: {}\n    placement_endpoint_override: {}\n    cacert: {}\n    block_storage_endpoint_override: {}\n",
            c.token,
            service_url("SEXTANT_TEST_NOVA_URL"),
            service_url("SEXTANT_TEST_PLACEMENT_URL"),
            service_url("SEXTANT_TEST_CA_FILE"),
            c.url
        ),
    );
    let out = run(os_cmd(&home).args(["datamodel", "show", "--format", "json"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let model = out.json();

    let pools = c.ok("GET", "/scheduler-stats/get_pools?detail=true", None)["pools"].clone();
    let got = model["storage_pools"].as_array().expect("storage_pools");
    assert_eq!(got.len(), pools.as_array().unwrap().len(), "{model}");
    assert!(!got.is_empty());
    for p in pools.as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let m = got
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("pool {name} missing: {model}"));
        assert_eq!(
            m["total_capacity_gb"],
            p["capabilities"]["total_capacity_gb"].as_f64().unwrap()
        );
        assert_eq!(
            m["free_capacity_gb"],
            p["capabilities"]["free_capacity_gb"].as_f64().unwrap()
        );
        assert_eq!(m["availability_zone"], "nova", "{m}");
        assert!(
            m["volume_type"]
                .as_array()
                .unwrap()
                .contains(&json!("__DEFAULT__")),
            "{m}"
        );
    }
    let volumes = c.ok("GET", "/volumes/detail?all_tenants=1", None)["volumes"].clone();
    let got = model["volumes"].as_array().expect("volumes");
    assert_eq!(got.len(), volumes.as_array().unwrap().len(), "{model}");
    for (id, pool) in [(&a, "cinder@fake1#fake1"), (&b, "cinder@fake2#fake2")] {
        let m = got
            .iter()
            .find(|x| x["uuid"] == *id)
            .unwrap_or_else(|| panic!("volume {id} missing: {model}"));
        assert_eq!(m["pool"], pool, "{m}");
        assert_eq!(m["size"], 1);
        assert_eq!(m["status"], "available");
        assert_eq!(m["volume_type"], "__DEFAULT__");
        assert_eq!(m["project_id"], "admin");
    }
    c.delete(&a);
    c.delete(&b);
}

#[test]
fn a_plan_retypes_a_volume_through_cinder_and_skips_one_of_that_type() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    // A type tied to no backend: Cinder's scheduler keeps the volume where
    // it is and the backend retypes it in place.
    let (status, body) = c.send(
        "POST",
        "/types",
        Some(&json!({"volume_type": {"name": "sextant-gold"}})),
    );
    assert!(status == 200 || status == 409, "{status} {body}");
    let v = c.create_on("retyped", "cinder@fake1#fake1");
    let gold = c.ok(
        "POST",
        "/volumes",
        Some(
            &json!({"volume": {"size": 1, "name": "gold-already", "volume_type": "sextant-gold"}}),
        ),
    )["volume"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    c.wait(&gold, "became available", |v| v["status"] == "available");
    let home = cinder_home(&c);
    let retype = |id: &str| json!({"resource_id": id, "migration_type": "retype", "destination_type": "sextant-gold"});
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "retype", "action_type": "volume_migrate", "parents": [],
             "input_parameters": retype(&v)},
            {"id": "already", "action_type": "volume_migrate", "parents": ["retype"],
             "input_parameters": retype(&gold)},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(home.action(&plan, "retype")["state"], "SUCCEEDED");
    let already = home.action(&plan, "already");
    assert_eq!(already["state"], "SKIPPED", "{already}");
    assert!(
        already["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("already of type sextant-gold"),
        "{already}"
    );
    let after = c.volume(&v);
    assert_eq!(after["volume_type"], "sextant-gold", "{after}");
    assert_eq!(after["status"], "available", "{after}");
    assert_eq!(after["os-vol-host-attr:host"], "cinder@fake1#fake1");
    c.delete(&v);
    c.delete(&gold);
}

/// An operator's action type: Watcher's volume_migrate made revertible
/// (the shipped one keeps Watcher's `revertible: false`).
const REVERTIBLE_VOLUME_MIGRATE: &str = r#"name: volume_migrate_back
version: 1.0.0
description: volume_migrate, migrated back to source_node on rollback.
target_resource_type: OS::Cinder::Volume
handler: volume_migrate
revertible: true
parameters:
  type: object
  required: [resource_id, migration_type]
  properties:
    resource_id: {type: string}
    migration_type: {type: string}
    destination_node: {type: string}
    source_node: {type: string}
"#;

#[test]
fn a_rollback_migrates_a_volume_back_to_its_source_node() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let v = c.create_on("rolled-back", "cinder@fake1#fake1");
    let stuck = c.create_on("refused", "cinder@fake1#fake1");
    let home = cinder_home(&c);
    let src = write_file(
        &home.path().join("src"),
        "volume_migrate_back.yaml",
        REVERTIBLE_VOLUME_MIGRATE,
    );
    let out = run(home.cmd().args(["action-type", "register"]).arg(&src));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let policy = write_file(
        &home.path().join("policies"),
        "rollback.yaml",
        "recovery:\n  default: {on_failure: rollback}\n",
    );
    let (plan, out) = import_and_start_with(
        &home,
        json!([
            {"id": "there", "action_type": "volume_migrate_back", "parents": [],
             "input_parameters": move_to(&v, "cinder@fake2#fake2", Some("cinder@fake1#fake1"))},
            {"id": "refused", "action_type": "volume_migrate", "parents": ["there"],
             "input_parameters": move_to(&stuck, "cinder@fake3#fake3", None)},
        ]),
        &["--policy", policy.to_str().expect("utf-8")],
    );
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert_eq!(home.action(&plan, "refused")["state"], "FAILED");
    let there = home.action(&plan, "there");
    let reverted: Vec<Value> = home
        .events(&plan)
        .into_iter()
        .filter(|e| e["event_type"] == "action.revert.end")
        .collect();
    assert_eq!(reverted.len(), 1, "{reverted:?}");
    assert_eq!(reverted[0]["object_uuid"], there["uuid"], "{reverted:?}");
    // Cinder moved it twice: there, and back.
    let back = c.volume(&v);
    assert_eq!(
        back["os-vol-host-attr:host"], "cinder@fake1#fake1",
        "{back}"
    );
    assert_eq!(back["migration_status"], "success", "{back}");
    assert!(c.file_on("fake1", &v) && !c.file_on("fake2", &v));
    c.delete(&v);
    c.delete(&stuck);
}

#[test]
fn a_killed_applier_settles_its_volume_migration_from_cinder_without_running_it_twice() {
    let _g = CINDER.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cinder::new();
    let v = c.create_on("killed", "cinder@fake1#fake1");
    let home = cinder_home(&c);
    let plan = home.import_json(
        "plan.json",
        &json!({"actions": [{"id": "move", "action_type": "volume_migrate", "parents": [],
                             "input_parameters": move_to(&v, "cinder@fake2#fake2", None)}]}),
    );
    let mut applier = os_cmd(&home)
        .args(["action-plan", "start", &plan, "--wait"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // The fake backend takes 2 s to move a volume: kill -9 within them.
    c.wait(&v, "started migrating", |x| {
        matches!(
            x["migration_status"].as_str(),
            Some("starting" | "migrating")
        )
    });
    applier.kill().expect("kill -9");
    let _ = applier.wait();
    assert_eq!(home.action(&plan, "move")["state"], "ONGOING");

    // The killed applier's lease must expire before another takes over.
    let start = Instant::now();
    let out = loop {
        let out = run(os_cmd(&home).args(["action-plan", "resume", &plan, "--wait"]));
        if !out.stderr.contains("is being applied by") {
            break out;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{}", out.stderr);
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    let action = home.action(&plan, "move");
    assert_eq!(action["state"], "SUCCEEDED", "{action}");
    assert!(
        action["status_message"]
            .as_str()
            .unwrap_or("")
            .contains("post_condition"),
        "{action}"
    );
    assert_eq!(c.host_of(&v), "cinder@fake2#fake2");
    // The fake backend logs each move it makes: this one, once.
    let log = std::fs::read_to_string(
        std::path::Path::new(&service_url("SEXTANT_TEST_SERVICES_DIR")).join("cinder-volume.log"),
    )
    .expect("cinder-volume's log");
    let moves = log
        .lines()
        .filter(|l| l.contains(&format!("moving volume {v} from fake1 to fake2")))
        .count();
    assert_eq!(moves, 1, "migrated {moves} times");
    c.delete(&v);
}
