//! The OpenStack driver against the real Nova 34 and Placement 16 that
//! scripts/services/nova.sh starts (three fake compute hosts cmp1, cmp2,
//! cmp3): the collector's model is what Nova and Placement report, plans
//! run through `openstack.*` handlers change what Nova reports, Nova's
//! refusals reach the action's status message, and a cloud that cannot be
//! reached or refuses the credentials fails clearly, storing nothing.
//!
//! The tests share one Nova, so they run one at a time (`NOVA`), each
//! putting the cloud back as it found it.

use serde_json::{Value, json};
use sextant_e2e::keystone;
use sextant_e2e::openstack::{openstack_home, os_cmd};
use sextant_e2e::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static NOVA: Mutex<()> = Mutex::new(());

/// The real Nova and Placement, asked directly.
struct Nova {
    compute: String,
    placement: String,
    token: String,
    image: String,
    /// The CA of Placement's https certificate.
    ca: String,
    agent: ureq::Agent,
}

impl Nova {
    fn new() -> Self {
        let ca = service_url("SEXTANT_TEST_CA_FILE");
        let pem = std::fs::read(&ca).expect("the test CA");
        let roots: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .build();
        Self {
            compute: service_url("SEXTANT_TEST_NOVA_URL"),
            placement: service_url("SEXTANT_TEST_PLACEMENT_URL"),
            token: service_url("SEXTANT_TEST_NOVA_TOKEN"),
            image: service_url("SEXTANT_TEST_NOVA_IMAGE"),
            ca,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .tls_config(tls)
                .build()
                .into(),
        }
    }

    fn send(&self, method: &str, url: &str, version: &str, body: Option<&Value>) -> (u16, Value) {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", version)
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .expect("request");
        let resp = self.agent.run(req).expect("Nova answers");
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn nova(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.send(
            method,
            &format!("{}{path}", self.compute),
            "compute 2.96",
            body,
        );
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    fn placement(&self, path: &str) -> Value {
        let (status, v) = self.send(
            "GET",
            &format!("{}{path}", self.placement),
            "placement 1.14",
            None,
        );
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn server(&self, id: &str) -> Option<Value> {
        let (status, v) = self.send(
            "GET",
            &format!("{}/servers/{id}", self.compute),
            "compute 2.96",
            None,
        );
        (status == 200).then(|| v["server"].clone())
    }

    fn wait_server(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.server(id).unwrap_or(Value::Null);
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "server {id} never {what}: {s}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Boots a server on `host` and waits until it is ACTIVE.
    fn boot(&self, name: &str, host: &str) -> String {
        let v = self.nova(
            "POST",
            "/servers",
            Some(
                &json!({"server": {"name": name, "flavorRef": "sextant-small",
                "imageRef": self.image, "networks": "none", "host": host}}),
            ),
        );
        let id = v["server"]["id"].as_str().expect("server id").to_string();
        self.wait_server(&id, "became ACTIVE", |s| {
            s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null()
        });
        id
    }

    fn delete(&self, id: &str) {
        let _ = self.send(
            "DELETE",
            &format!("{}/servers/{id}", self.compute),
            "compute 2.96",
            None,
        );
        let start = Instant::now();
        while self.server(id).is_some() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn service(&self, host: &str) -> Value {
        let v = self.nova("GET", "/os-services?binary=nova-compute", None);
        v["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["host"] == host).cloned())
            .unwrap_or_else(|| panic!("no nova-compute on {host}"))
    }

    fn set_service(&self, host: &str, disabled: bool) {
        let id = self.service(host)["id"].as_str().expect("id").to_string();
        let body = if disabled {
            json!({"status": "disabled", "disabled_reason": "sextant test"})
        } else {
            json!({"status": "enabled"})
        };
        self.nova("PUT", &format!("/os-services/{id}"), Some(&body));
    }

    fn host_of(&self, id: &str) -> String {
        self.server(id).expect("server")["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn good_cloud(n: &Nova) -> String {
    format!(
        "    auth_type: admin_token\n    auth: {{token: {}}}\n    compute_endpoint_override: {}\n    placement_endpoint_override: {}\n    cacert: {}\n",
        n.token, n.compute, n.placement, n.ca
    )
}

fn sextant_os(home: &Home, args: &[&str]) -> Run {
    run(os_cmd(home).args(args))
}

fn import_and_start(home: &Home, actions: Value) -> (String, Run) {
    let plan = home.import_json("plan.json", &json!({"actions": actions}));
    let out = sextant_os(home, &["action-plan", "start", &plan, "--wait"]);
    (plan, out)
}

#[test]
fn the_collectors_model_is_what_nova_and_placement_report() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let a = n.boot("collect-a", "cmp1");
    let b = n.boot("collect-b", "cmp2");
    let home = openstack_home(&good_cloud(&n));
    let out = sextant_os(&home, &["datamodel", "show", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let model = out.json();

    let hypervisors = n.nova("GET", "/os-hypervisors/detail", None)["hypervisors"].clone();
    let services = n.nova("GET", "/os-services?binary=nova-compute", None)["services"].clone();
    let nodes = model["nodes"].as_array().expect("nodes");
    assert_eq!(
        nodes.len(),
        hypervisors.as_array().unwrap().len(),
        "{model}"
    );
    for h in hypervisors.as_array().unwrap() {
        let host = h["service"]["host"].as_str().unwrap();
        let node = nodes
            .iter()
            .find(|x| x["uuid"] == h["id"])
            .unwrap_or_else(|| panic!("no node for hypervisor {h}"));
        assert_eq!(node["hostname"], host);
        let inv = n.placement(&format!(
            "/resource_providers/{}/inventories",
            h["id"].as_str().unwrap()
        ))["inventories"]
            .clone();
        for (class, total, reserved, ratio) in [
            ("VCPU", "vcpus", "vcpu_reserved", "vcpu_ratio"),
            ("MEMORY_MB", "memory", "memory_mb_reserved", "memory_ratio"),
            ("DISK_GB", "disk", "disk_gb_reserved", "disk_ratio"),
        ] {
            assert_eq!(node[total], inv[class]["total"], "{host} {class}");
            assert_eq!(node[reserved], inv[class]["reserved"], "{host} {class}");
            assert_eq!(
                node[ratio].as_f64(),
                inv[class]["allocation_ratio"].as_f64(),
                "{host} {class}"
            );
        }
        let svc = services
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["host"] == host)
            .unwrap();
        assert_eq!(node["status"], svc["status"]);
        assert_eq!(node["state"], svc["state"]);
        assert_eq!(node["availability_zone"], svc["zone"]);
    }
    // The hosts' differing reservations and ratios (nova.sh) came through.
    let node = |h: &str| nodes.iter().find(|x| x["hostname"] == h).unwrap().clone();
    assert_eq!(node("cmp1")["vcpu_ratio"], 4.0);
    assert_eq!(node("cmp1")["memory_mb_reserved"], 512);
    assert_eq!(node("cmp2")["memory_ratio"], 1.5);
    assert_eq!(node("cmp2")["vcpu_reserved"], 1);
    assert_eq!(node("cmp2")["disk_gb_reserved"], 10);

    let servers = n.nova("GET", "/servers/detail?all_tenants=1", None)["servers"].clone();
    let instances = model["instances"].as_array().expect("instances");
    assert_eq!(
        instances.len(),
        servers.as_array().unwrap().len(),
        "{model}"
    );
    for s in servers.as_array().unwrap() {
        let i = instances
            .iter()
            .find(|i| i["uuid"] == s["id"])
            .expect("instance");
        assert_eq!(i["host"], s["OS-EXT-SRV-ATTR:host"]);
        assert_eq!(i["name"], s["name"]);
        assert_eq!(i["vcpus"], s["flavor"]["vcpus"]);
        assert_eq!(i["memory"], s["flavor"]["ram"]);
        assert_eq!(i["disk"], s["flavor"]["disk"]);
        assert_eq!(i["state"], s["OS-EXT-STS:vm_state"]);
        assert_eq!(i["project_id"], s["tenant_id"]);
    }
    for (id, host) in [(&a, "cmp1"), (&b, "cmp2")] {
        let i = instances.iter().find(|i| i["uuid"] == id.as_str()).unwrap();
        assert_eq!(i["host"], host);
        assert_eq!(
            (
                i["vcpus"].as_u64(),
                i["memory"].as_u64(),
                i["disk"].as_u64()
            ),
            (Some(1), Some(512), Some(1))
        );
    }
    n.delete(&a);
    n.delete(&b);
}

/// The requests nova-api's or placement-api's `requestlog` recorded from
/// byte `from` of its log on that were made with a Keystone token (the
/// harness's static token is logged as `admin admin`: this suite's own
/// calls and the computes'), and the version documents (a request without
/// a token is logged with a stale context): `METHOD PATH` each.
fn keystone_requests_since(log: &std::path::Path, from: u64) -> Vec<String> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(log).expect("the service's log");
    f.seek(std::io::SeekFrom::Start(from)).expect("seek");
    let mut text = String::new();
    f.read_to_string(&mut text).expect("log text");
    text.lines()
        .filter(|l| l.contains("requestlog") && l.contains(" status: "))
        .filter_map(|l| {
            let r = l.split('"').nth(1)?.to_string();
            let version = ["GET /", "GET /v2.1", "GET /v2.1/"].contains(&r.as_str());
            (version || !l.contains(" admin admin ")).then_some(r)
        })
        .collect()
}

fn log_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The collector's cost in requests (docs/openstack.md, the benchmark):
/// Nova's version document once, however many listings start together,
/// each listing once, and one Placement inventory per node; nothing per
/// server.
#[test]
fn the_collector_asks_nova_once_per_listing_and_placement_once_per_node() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let k = keystone::Keystone::new();
    let a = n.boot("count-a", "cmp1");
    let b = n.boot("count-b", "cmp2");
    let hypervisors: Vec<String> = n.nova("GET", "/os-hypervisors/detail", None)["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|h| h["id"].as_str().expect("id").to_string())
        .collect();
    let home = openstack_home(&keystone_cloud(
        &n,
        "password",
        &password_auth(&k.url, &keystone::Keystone::admin()),
        "RegionOne",
    ));
    let logs = std::path::PathBuf::from(service_url("SEXTANT_TEST_SERVICES_DIR"));
    let (nova_log, placement_log) = (logs.join("nova-api.log"), logs.join("placement-api.log"));
    let (nova_from, placement_from) = (log_len(&nova_log), log_len(&placement_log));
    let out = sextant_os(&home, &["datamodel", "show", "--format", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let servers = n.nova("GET", "/servers/detail?all_tenants=1", None)["servers"]
        .as_array()
        .map(Vec::len);
    assert_eq!(out.json()["instances"].as_array().map(Vec::len), servers);
    // The services log a request as they answer it.
    std::thread::sleep(Duration::from_millis(500));

    let mut nova = keystone_requests_since(&nova_log, nova_from);
    nova.sort();
    assert_eq!(
        nova,
        [
            "GET /v2.1/",
            "GET /v2.1/os-aggregates",
            "GET /v2.1/os-hypervisors/detail?limit=1000",
            "GET /v2.1/os-services?binary=nova-compute",
            "GET /v2.1/servers/detail?all_tenants=1&limit=1000",
        ]
    );
    let mut placement = keystone_requests_since(&placement_log, placement_from);
    placement.sort();
    let mut expected: Vec<String> = hypervisors
        .iter()
        .map(|id| format!("GET /resource_providers/{id}/inventories"))
        .collect();
    expected.sort();
    assert_eq!(placement, expected);
    n.delete(&a);
    n.delete(&b);
}

#[test]
fn a_plan_disables_a_service_and_live_migrates_through_nova() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let vm = n.boot("live", "cmp1");
    let home = openstack_home(&good_cloud(&n));
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "disable", "action_type": "change_nova_service_state", "parents": [],
             "input_parameters": {"resource_id": "cmp1", "resource_name": "cmp1",
                                  "state": "disabled", "disabled_reason": "emptied by sextant"}},
            {"id": "move", "action_type": "migrate", "parents": ["disable"],
             "input_parameters": {"migration_type": "live", "resource_id": vm,
                                  "source_node": "cmp1", "destination_node": "cmp2"}},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        home.plan(&plan)["state"],
        "SUCCEEDED",
        "{:#}",
        Value::Array(home.actions(&plan))
    );
    let svc = n.service("cmp1");
    assert_eq!(svc["status"], "disabled");
    assert_eq!(svc["disabled_reason"], "emptied by sextant");
    let s = n.server(&vm).unwrap();
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "cmp2");
    assert_eq!(s["status"], "ACTIVE");
    let migrations = n.nova("GET", &format!("/os-migrations?instance_uuid={vm}"), None);
    let m = &migrations["migrations"][0];
    assert_eq!(m["migration_type"], "live-migration");
    assert_eq!(
        (m["source_compute"].as_str(), m["dest_compute"].as_str()),
        (Some("cmp1"), Some("cmp2"))
    );
    assert_eq!(m["status"], "completed");
    n.set_service("cmp1", false);
    n.delete(&vm);
}

#[test]
fn live_and_cold_migrations_where_the_scheduler_chooses() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let live = n.boot("anywhere-live", "cmp3");
    let cold = n.boot("anywhere-cold", "cmp3");
    let home = openstack_home(&good_cloud(&n));
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "live", "action_type": "migrate", "parents": [],
             "input_parameters": {"migration_type": "live", "resource_id": live,
                                  "source_node": "cmp3", "destination_node": null}},
            {"id": "cold", "action_type": "migrate", "parents": ["live"],
             "input_parameters": {"migration_type": "cold", "resource_id": cold,
                                  "source_node": "cmp3"}},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        home.plan(&plan)["state"],
        "SUCCEEDED",
        "{:#}",
        Value::Array(home.actions(&plan))
    );
    for vm in [&live, &cold] {
        let s = n.server(vm).unwrap();
        assert_ne!(s["OS-EXT-SRV-ATTR:host"], "cmp3", "{s}");
        // The cold migration was confirmed: ACTIVE, not VERIFY_RESIZE.
        assert_eq!(s["status"], "ACTIVE", "{s}");
    }
    let moved = home.action(&plan, "cold");
    let out = home.run(&[
        "action",
        "show",
        moved["uuid"].as_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.stdout.contains(&n.host_of(&cold)), "{}", out.stdout);
    n.delete(&live);
    n.delete(&cold);
}

#[test]
fn a_migration_to_a_disabled_host_fails_with_novas_message_and_cancels_its_dependents() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let vm = n.boot("refused", "cmp1");
    n.set_service("cmp3", true);
    let home = openstack_home(&good_cloud(&n));
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "move", "action_type": "migrate", "parents": [],
             "input_parameters": {"migration_type": "live", "resource_id": vm,
                                  "source_node": "cmp1", "destination_node": "cmp3"}},
            {"id": "after", "action_type": "change_nova_service_state", "parents": ["move"],
             "input_parameters": {"resource_id": "cmp1", "resource_name": "cmp1", "state": "disabled"}},
        ]),
    );
    n.set_service("cmp3", false);
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert_eq!(home.plan(&plan)["state"], "FAILED");
    let moved = home.action(&plan, "move");
    assert_eq!(moved["state"], "FAILED");
    let msg = moved["status_message"].as_str().unwrap_or("");
    assert!(msg.contains("No valid host was found"), "{msg}");
    let after = home.action(&plan, "after");
    assert_eq!(after["state"], "CANCELLED", "{after}");
    assert_eq!(n.host_of(&vm), "cmp1");
    assert_eq!(n.service("cmp1")["status"], "enabled");
    n.delete(&vm);
}

/// An audit with this cloud fails: exit status 1, the audit stored FAILED
/// with a status message naming the cause, no plan stored, and the
/// credentials nowhere in the store.
fn audit_fails(home: &Home, expect: &[&str], secret: Option<&str>) {
    let out = sextant_os(
        home,
        &[
            "audit",
            "create",
            "--goal",
            "server_consolidation",
            "--format",
            "json",
        ],
    );
    assert_ne!(out.status, 0, "{}", out.stdout);
    for e in expect {
        assert!(out.stderr.contains(e), "{e:?} not in: {}", out.stderr);
    }
    let audits = home.run(&["audit", "list", "--format", "json"]).json();
    let audits = audits.as_array().expect("audits");
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["state"], "FAILED");
    assert!(audits[0]["action_plan"].is_null());
    let msg = audits[0]["status_message"].as_str().unwrap_or("");
    for e in expect {
        assert!(msg.contains(e), "{e:?} not in: {msg}");
    }
    let plans = home
        .run(&["action-plan", "list", "--format", "json"])
        .json();
    assert_eq!(plans, json!([]));
    if let Some(secret) = secret {
        for f in std::fs::read_dir(home.path().join("data/sextant")).expect("store dir") {
            let bytes = std::fs::read(f.expect("entry").path()).expect("read");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the token is in the store"
            );
        }
    }
}

#[test]
fn bad_credentials_and_an_unreachable_endpoint_fail_the_audit_and_store_nothing() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let bad = openstack_home(&format!(
        "    auth_type: admin_token\n    auth: {{token: not-the-token}}\n    compute_endpoint_override: {}\n    placement_endpoint_override: {}\n    cacert: {}\n",
        n.compute, n.placement, n.ca
    ));
    audit_fails(
        &bad,
        &["HTTP 401", "requires authentication", "cloud test"],
        Some("not-the-token"),
    );
    // Not even the most verbose log shows the token.
    let out = run(os_cmd(&bad)
        .env("SEXTANT_LOG", "trace")
        .args(["-vvv", "datamodel", "show"]));
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-token"), "{}", out.stderr);
    assert!(!out.stdout.contains("not-the-token"), "{}", out.stdout);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}/v2.1");
    let unreachable = openstack_home(&format!(
        "    auth_type: admin_token\n    auth: {{token: {}}}\n    compute_endpoint_override: {closed}\n    placement_endpoint_override: {}\n",
        n.token, n.placement
    ));
    audit_fails(&unreachable, &["unreachable", &closed], None);

    // Placement's certificate is signed by a CA the web does not know:
    // without the cloud's cacert it is refused.
    let untrusted = openstack_home(&format!(
        "    auth_type: admin_token\n    auth: {{token: {}}}\n    compute_endpoint_override: {}\n    placement_endpoint_override: {}\n",
        n.token, n.compute, n.placement
    ));
    audit_fails(&untrusted, &["placement", "UnknownIssuer"], None);

    let no_cloud = openstack_home(&good_cloud(&n));
    let out = run(os_cmd(&no_cloud)
        .env("OS_CLOUD", "elsewhere")
        .args(["datamodel", "show"]));
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("no cloud named \"elsewhere\""),
        "{}",
        out.stderr
    );
}

#[test]
fn a_plan_stops_resizes_shelves_and_deletes_servers_through_nova() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let stopped = n.boot("to-stop", "cmp2");
    let resized = n.boot("to-resize", "cmp2");
    let shelved = n.boot("to-shelve", "cmp2");
    let deleted = n.boot("to-delete", "cmp2");
    let home = openstack_home(&good_cloud(&n));
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "delete", "action_type": "delete", "parents": [],
             "input_parameters": {"resource_id": deleted}},
            {"id": "stop", "action_type": "stop", "parents": [],
             "input_parameters": {"resource_id": stopped}},
            {"id": "resize", "action_type": "resize", "parents": [],
             "input_parameters": {"resource_id": resized, "flavor": "sextant.medium"}},
            {"id": "shelve", "action_type": "shelve", "parents": [],
             "input_parameters": {"resource_id": shelved}},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        home.plan(&plan)["state"],
        "SUCCEEDED",
        "{:#}",
        Value::Array(home.actions(&plan))
    );
    assert_eq!(n.server(&stopped).unwrap()["status"], "SHUTOFF");
    let r = n.server(&resized).unwrap();
    assert_eq!(r["status"], "ACTIVE", "{r}");
    assert_eq!(r["flavor"]["original_name"], "sextant.medium");
    assert_eq!(
        (r["flavor"]["vcpus"].as_u64(), r["flavor"]["ram"].as_u64()),
        (Some(2), Some(1024))
    );
    let s = n.server(&shelved).unwrap()["status"].clone();
    assert!(s == "SHELVED_OFFLOADED" || s == "SHELVED", "{s}");
    assert!(
        n.server(&deleted).is_none(),
        "server {deleted} still exists"
    );

    // Run again, each is already done: skipped, not run twice.
    let (plan, out) = import_and_start(
        &home,
        json!([
            {"id": "delete", "action_type": "delete", "parents": [],
             "input_parameters": {"resource_id": deleted}},
            {"id": "stop", "action_type": "stop", "parents": [],
             "input_parameters": {"resource_id": stopped}},
            {"id": "resize", "action_type": "resize", "parents": [],
             "input_parameters": {"resource_id": resized, "flavor": "sextant-medium"}},
            {"id": "shelve", "action_type": "shelve", "parents": [],
             "input_parameters": {"resource_id": shelved}},
        ]),
    );
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    for a in home.actions(&plan) {
        assert_eq!(a["state"], "SKIPPED", "{a}");
    }
    for vm in [&stopped, &resized, &shelved] {
        n.delete(vm);
    }
}

#[test]
fn a_server_consolidation_audit_empties_hosts_for_real() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let vms: Vec<String> = ["cmp1", "cmp2", "cmp3"]
        .iter()
        .map(|h| n.boot(&format!("consolidate-{h}"), h))
        .collect();
    let home = openstack_home(&good_cloud(&n));
    let out = sextant_os(
        &home,
        &[
            "audit",
            "create",
            "--goal",
            "server_consolidation",
            "--strategy",
            "node_resource_consolidation",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json();
    assert_eq!(audit["state"], "SUCCEEDED", "{audit}");
    let plan = audit["action_plan"].as_str().expect("a plan").to_string();
    let out = sextant_os(&home, &["action-plan", "start", &plan, "--wait"]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");

    let emptied: Vec<String> = home
        .actions(&plan)
        .iter()
        .filter(|a| a["action_type"] == "change_nova_service_state")
        .map(|a| {
            let out = home.run(&[
                "action",
                "show",
                a["uuid"].as_str().unwrap(),
                "--format",
                "json",
            ]);
            out.json()["input_parameters"]["resource_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!emptied.is_empty(), "the plan empties no host");
    let servers = n.nova("GET", "/servers/detail?all_tenants=1", None)["servers"].clone();
    for host in &emptied {
        assert_eq!(n.service(host)["status"], "disabled", "{host}");
        for s in servers.as_array().unwrap() {
            assert_ne!(s["OS-EXT-SRV-ATTR:host"], host.as_str(), "{s}");
            assert_eq!(s["status"], "ACTIVE", "{s}");
        }
    }
    // No host over capacity according to Placement.
    let rps = n.placement("/resource_providers")["resource_providers"].clone();
    for rp in rps.as_array().unwrap() {
        let uuid = rp["uuid"].as_str().unwrap();
        let inv =
            n.placement(&format!("/resource_providers/{uuid}/inventories"))["inventories"].clone();
        let usages = n.placement(&format!("/resource_providers/{uuid}/usages"))["usages"].clone();
        for (class, used) in usages.as_object().unwrap() {
            let i = &inv[class];
            let capacity = (i["total"].as_f64().unwrap() - i["reserved"].as_f64().unwrap())
                * i["allocation_ratio"].as_f64().unwrap();
            assert!(
                used.as_f64().unwrap() <= capacity,
                "{} {class}: {used} > {capacity}",
                rp["name"]
            );
        }
    }
    for vm in &vms {
        n.delete(vm);
    }
    for host in ["cmp1", "cmp2", "cmp3"] {
        n.set_service(host, false);
    }
}

/// Waits until Nova shows server `vm` live-migrating (cmp3's driver takes
/// 5 s to migrate out).
fn wait_migrating(n: &Nova, vm: &str) {
    n.wait_server(vm, "started migrating", |s| {
        s["OS-EXT-STS:task_state"] == "migrating"
    });
}

fn live_move(vm: &str) -> Value {
    json!({"actions": [
        {"id": "move", "action_type": "migrate", "parents": [],
         "input_parameters": {"migration_type": "live", "resource_id": vm,
                              "source_node": "cmp3", "destination_node": "cmp1"}},
    ]})
}

fn spawn_os(home: &Home, args: &[&str]) -> std::process::Child {
    os_cmd(home)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn")
}

#[test]
fn a_killed_applier_settles_its_live_migration_from_novas_records_without_running_it_twice() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let vm = n.boot("killed", "cmp3");
    let home = openstack_home(&good_cloud(&n));
    let plan = home.import_json("plan.json", &live_move(&vm));
    let mut applier = spawn_os(&home, &["action-plan", "start", &plan, "--wait"]);
    wait_migrating(&n, &vm);
    applier.kill().expect("kill -9");
    let _ = applier.wait();
    assert_eq!(home.action(&plan, "move")["state"], "ONGOING");

    // The killed applier's lease must expire before another takes over.
    let start = Instant::now();
    let out = loop {
        let out = sextant_os(&home, &["action-plan", "resume", &plan, "--wait"]);
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
    assert_eq!(n.host_of(&vm), "cmp1");
    let migrations = n.nova("GET", &format!("/os-migrations?instance_uuid={vm}"), None);
    let live: Vec<&Value> = migrations["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["migration_type"] == "live-migration")
        .collect();
    assert_eq!(live.len(), 1, "migrated twice: {migrations}");
    assert_eq!(live[0]["status"], "completed");
    n.delete(&vm);
}

#[test]
fn cancelling_a_plan_aborts_its_live_migration_in_nova() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let vm = n.boot("aborted", "cmp3");
    let home = openstack_home(&good_cloud(&n));
    let plan = home.import_json("plan.json", &live_move(&vm));
    let mut applier = spawn_os(&home, &["action-plan", "start", &plan, "--wait"]);
    wait_migrating(&n, &vm);
    let out = sextant_os(&home, &["action-plan", "cancel", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let status = applier.wait().expect("applier ends");
    assert!(status.code().is_some(), "{status:?}");
    assert_eq!(home.plan(&plan)["state"], "CANCELLED");
    let action = home.action(&plan, "move");
    assert_eq!(action["state"], "CANCELLED", "{action}");
    let s = n.wait_server(&vm, "settled", |s| s["OS-EXT-STS:task_state"].is_null());
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "cmp3", "{s}");
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let migrations = n.nova("GET", &format!("/os-migrations?instance_uuid={vm}"), None);
    assert_eq!(
        migrations["migrations"][0]["status"], "cancelled",
        "{migrations}"
    );
    n.delete(&vm);
}

#[test]
fn an_audit_scoped_to_a_host_aggregate_plans_only_for_its_hosts() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let agg = n.nova(
        "POST",
        "/os-aggregates",
        Some(&json!({"aggregate": {"name": "sextant-pair"}})),
    )["aggregate"]["id"]
        .clone();
    for h in ["cmp1", "cmp2"] {
        n.nova(
            "POST",
            &format!("/os-aggregates/{agg}/action"),
            Some(&json!({"add_host": {"host": h}})),
        );
    }
    let vms: Vec<String> = ["cmp1", "cmp2", "cmp3"]
        .iter()
        .map(|h| n.boot(&format!("scoped-{h}"), h))
        .collect();
    let home = openstack_home(&good_cloud(&n));

    let model = sextant_os(&home, &["datamodel", "show", "--format", "json"]).json();
    for node in model["nodes"].as_array().unwrap() {
        let in_pair = node["aggregates"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "sextant-pair"));
        assert_eq!(in_pair, node["hostname"] != "cmp3", "{node}");
    }

    let scope = write_file(
        &home.path().join("s"),
        "scope.yaml",
        "- host_aggregates: [{name: sextant-pair}]\n",
    );
    let out = run(home
        .cmd()
        .args(["audit-template", "create", "pair", "server_consolidation"])
        .args(["-s", "node_resource_consolidation", "--scope"])
        .arg(&scope));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = sextant_os(
        &home,
        &["audit", "create", "-a", "pair", "--format", "json"],
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let audit = out.json();
    assert_eq!(audit["state"], "SUCCEEDED", "{audit}");
    let plan = audit["action_plan"].as_str().expect("a plan").to_string();
    let actions = home.actions(&plan);
    assert!(!actions.is_empty());
    for a in &actions {
        let shown = home.run(&[
            "action",
            "show",
            a["uuid"].as_str().unwrap(),
            "--format",
            "json",
        ]);
        let p = shown.json()["input_parameters"].clone();
        for key in ["source_node", "destination_node", "resource_name"] {
            assert_ne!(p[key], "cmp3", "an action outside the scope: {p}");
        }
        assert_ne!(p["resource_id"], vms[2].as_str(), "{p}");
    }

    for vm in &vms {
        n.delete(vm);
    }
    for h in ["cmp1", "cmp2"] {
        n.nova(
            "POST",
            &format!("/os-aggregates/{agg}/action"),
            Some(&json!({"remove_host": {"host": h}})),
        );
    }
    n.nova("DELETE", &format!("/os-aggregates/{agg}"), None);
}

/// A cloud of the test Keystone (scripts/services/keystone.sh): `auth`
/// lines under `auth:`, in `region`, Nova and Placement from the catalog
/// (no endpoint override), Placement's certificate checked against the
/// test CA.
fn keystone_cloud(n: &Nova, auth_type: &str, auth: &str, region: &str) -> String {
    format!(
        "    auth_type: {auth_type}\n    region_name: {region}\n    interface: public\n    cacert: {}\n    auth:\n{auth}",
        n.ca
    )
}

fn password_auth(url: &str, user: &keystone::User) -> String {
    format!(
        "      auth_url: {url}\n      username: {}\n      password: '{}'\n      project_name: {}\n      user_domain_name: Default\n      project_domain_name: Default\n",
        user.name, user.password, user.project
    )
}

fn application_credential_auth(url: &str) -> String {
    format!(
        "      auth_url: {url}\n      application_credential_id: {}\n      application_credential_secret: '{}'\n",
        service_url("SEXTANT_TEST_KEYSTONE_APP_CRED_ID"),
        service_url("SEXTANT_TEST_KEYSTONE_APP_CRED_SECRET"),
    )
}

#[test]
fn keystone_password_and_application_credentials_find_nova_and_placement_in_the_catalog() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let k = keystone::Keystone::new();
    let vm = n.boot("through-keystone", "cmp2");
    let hypervisors = n.nova("GET", "/os-hypervisors/detail", None)["hypervisors"]
        .as_array()
        .map(Vec::len);
    for cloud in [
        keystone_cloud(
            &n,
            "password",
            &password_auth(&k.url, &keystone::Keystone::admin()),
            "RegionOne",
        ),
        keystone_cloud(
            &n,
            "v3applicationcredential",
            &application_credential_auth(&k.url),
            "RegionOne",
        ),
    ] {
        let home = openstack_home(&cloud);
        // The collector: Nova's hypervisors and servers, Placement's
        // inventories (cmp1's ratio of 4.0 is Placement's).
        let out = sextant_os(&home, &["datamodel", "show", "--format", "json"]);
        assert_eq!(out.status, 0, "{cloud}\n{}", out.stderr);
        let model = out.json();
        assert_eq!(
            model["nodes"].as_array().map(Vec::len),
            hypervisors,
            "{model}"
        );
        let cmp1 = model["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|x| x["hostname"] == "cmp1"))
            .expect("cmp1");
        assert_eq!(cmp1["vcpu_ratio"], 4.0);
        assert!(
            model["instances"]
                .as_array()
                .is_some_and(|is| is.iter().any(|i| i["uuid"] == vm.as_str())),
            "{model}"
        );
        // A handler acting through Nova with the same session.
        let (plan, out) = import_and_start(
            &home,
            json!([
                {"id": "off", "action_type": "change_nova_service_state", "parents": [],
                 "input_parameters": {"resource_id": "cmp1", "resource_name": "cmp1",
                                      "state": "disabled", "disabled_reason": "through keystone"}},
            ]),
        );
        assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
        assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
        assert_eq!(n.service("cmp1")["disabled_reason"], "through keystone");
        n.set_service("cmp1", false);
        // Neither secret is in the store.
        let secrets = [
            keystone::Keystone::admin().password,
            service_url("SEXTANT_TEST_KEYSTONE_APP_CRED_SECRET"),
        ];
        for f in std::fs::read_dir(home.path().join("data/sextant")).expect("store dir") {
            let bytes = std::fs::read(f.expect("entry").path()).expect("read");
            for secret in &secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a secret is in the store"
                );
            }
        }
    }
    n.delete(&vm);
}

#[test]
fn the_keystone_token_is_renewed_before_it_expires_during_a_long_plan() {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let k = keystone::Keystone::new();
    let ttl = keystone::Keystone::token_ttl();
    let home = openstack_home(&keystone_cloud(
        &n,
        "password",
        &password_auth(&k.url, &keystone::Keystone::admin()),
        "RegionOne",
    ));
    // Nova is called at the start and after more than the token's half
    // life (when it is renewed), well before its expiry would be refused.
    let wait = (ttl.as_secs_f64() * 0.6).ceil();
    let plan = home.import_json(
        "plan.json",
        &json!({"actions": [
            {"id": "off", "action_type": "change_nova_service_state", "parents": [],
             "input_parameters": {"resource_id": "cmp2", "resource_name": "cmp2",
                                  "state": "disabled", "disabled_reason": "renewal"}},
            {"id": "wait", "action_type": "sleep", "parents": ["off"],
             "input_parameters": {"duration": wait}},
            {"id": "on", "action_type": "change_nova_service_state", "parents": ["wait"],
             "input_parameters": {"resource_id": "cmp2", "resource_name": "cmp2",
                                  "state": "enabled"}},
        ]}),
    );
    let out = run(os_cmd(&home).env("SEXTANT_LOG", "info").args([
        "action-plan",
        "start",
        &plan,
        "--wait",
    ]));
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(home.plan(&plan)["state"], "SUCCEEDED");
    assert_eq!(n.service("cmp2")["status"], "enabled");
    // Once at the start, once past half its life: not at every call.
    let renewals = out.stderr.matches("authenticated to Keystone").count();
    assert!(
        (2..=3).contains(&renewals),
        "{renewals} authentications:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("refused the token"),
        "renewed only after a refusal:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&keystone::Keystone::admin().password),
        "the password is in the log"
    );
    n.set_service("cmp2", false);
}

#[test]
fn bad_keystone_credentials_an_unreachable_keystone_and_a_wrong_region_fail_the_audit_naming_the_cloud()
 {
    let _g = NOVA.lock().unwrap_or_else(|p| p.into_inner());
    let n = Nova::new();
    let k = keystone::Keystone::new();
    let admin = keystone::Keystone::admin();

    let wrong = keystone::User {
        password: format!("wrong-{}", std::process::id()),
        ..admin.clone()
    };
    let bad = openstack_home(&keystone_cloud(
        &n,
        "password",
        &password_auth(&k.url, &wrong),
        "RegionOne",
    ));
    audit_fails(
        &bad,
        &[
            "cloud test (region RegionOne",
            "keystone",
            "HTTP 401",
            "requires authentication",
        ],
        Some(&wrong.password),
    );

    let closed = format!(
        "http://127.0.0.1:{}/v3",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let unreachable = openstack_home(&keystone_cloud(
        &n,
        "password",
        &password_auth(&closed, &admin),
        "RegionOne",
    ));
    audit_fails(
        &unreachable,
        &["cloud test (region RegionOne", "unreachable", &closed],
        Some(&admin.password),
    );

    let elsewhere = openstack_home(&keystone_cloud(
        &n,
        "password",
        &password_auth(&k.url, &admin),
        "RegionNine",
    ));
    audit_fails(
        &elsewhere,
        &[
            "cloud test",
            "no public compute endpoint in region RegionNine",
        ],
        Some(&admin.password),
    );
}
