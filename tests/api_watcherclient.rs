//! The real python-watcherclient 4.11.0 and python-openstackclient
//! (installed by scripts/services/watcherclient.sh) drive `sextant serve
//! --api` through the operator's flow: `openstack --os-auth-type none
//! --os-endpoint URL optimize …` against `auth: none`; `openstack optimize
//! …` with Keystone password authentication against `auth: keystone`, the
//! endpoint found in the real Keystone's catalog (scripts/services/
//! keystone.sh); and `watcher --os-endpoint-override URL --os-auth-token T
//! …` against `auth: tokens`. Every command's output is checked; an error
//! prints the server's message.

use serde_json::Value;
use sextant_e2e::api::{Served, http, wait_for};
use sextant_e2e::keystone::{Keystone, User};
use sextant_e2e::{Home, Run, run, service_url};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the client reaches the API.
struct Client<'a> {
    s: &'a Served,
    keystone: Option<KeystoneAccess>,
}

/// Password authentication with the test Keystone, as `user`, the endpoint
/// taken from the catalog in `region`.
struct KeystoneAccess {
    k: Keystone,
    user: User,
    region: String,
    /// A token for the test's own reads over HTTP, and when it was made.
    token: Mutex<Option<(String, Instant)>>,
}

impl Client<'_> {
    /// The headers of the test's own reads: a token under Keystone.
    fn read_headers(&self) -> Vec<(&'static str, String)> {
        match &self.keystone {
            None => Vec::new(),
            Some(a) => {
                let mut held = a.token.lock().unwrap_or_else(|p| p.into_inner());
                let fresh = held
                    .as_ref()
                    .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
                    .map(|(t, _)| t.clone());
                let t = fresh.unwrap_or_else(|| a.k.token(&a.user).0);
                *held = Some((t.clone(), Instant::now()));
                vec![("x-auth-token", t)]
            }
        }
    }
}

/// `openstack optimize ARGS…`: with `--os-auth-type none --os-endpoint URL`,
/// or with the Keystone user's password and no endpoint at all (the
/// client finds `infra-optim` in the catalog).
fn optimize(c: &Client, args: &[&str]) -> Run {
    let mut cmd = Command::new(service_url("SEXTANT_TEST_OPENSTACK"));
    cmd.env_remove("OS_CLOUD").env("HOME", std::env::temp_dir());
    match &c.keystone {
        None => {
            cmd.args(["--os-auth-type", "none", "--os-endpoint", &c.s.url]);
        }
        Some(a) => {
            cmd.envs([
                ("OS_AUTH_TYPE", "password"),
                ("OS_AUTH_URL", a.k.url.as_str()),
                ("OS_IDENTITY_API_VERSION", "3"),
                ("OS_USERNAME", a.user.name),
                ("OS_PASSWORD", a.user.password.as_str()),
                ("OS_PROJECT_NAME", a.user.project),
                ("OS_USER_DOMAIN_NAME", "Default"),
                ("OS_PROJECT_DOMAIN_NAME", "Default"),
                ("OS_REGION_NAME", a.region.as_str()),
                ("OS_INTERFACE", "public"),
            ]);
        }
    }
    cmd.arg("optimize").args(args);
    run(&mut cmd)
}

/// As [`optimize`], which must succeed; its `-f json` output.
fn ok_json(c: &Client, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-f", "json"]);
    let out = optimize(c, &all);
    assert_eq!(
        out.status,
        0,
        "openstack optimize {args:?}: {}\nserve:\n{}",
        out.stderr,
        c.s.log_text()
    );
    out.json()
}

/// A field of a shown object or of a list's rows.
fn names(rows: &Value, key: &str) -> Vec<String> {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r[key].as_str().map(str::to_string))
        .collect()
}

/// An object's state, read over HTTP (polling through the Python client
/// would start an interpreter each time).
fn state_of(c: &Client, resource: &str, id: &str) -> String {
    let headers = c.read_headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = http(
        "GET",
        &format!("{}/v1/{resource}/{id}", c.s.url),
        &headers,
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["state"].as_str().unwrap_or("").to_string()
}

fn audit_state(c: &Client, audit: &str) -> String {
    state_of(c, "audits", audit)
}

fn plan_of(c: &Client, audit: &str) -> String {
    let plans = ok_json(c, &["actionplan", "list", "--audit", audit]);
    let uuids = names(&plans, "UUID");
    assert_eq!(uuids.len(), 1, "{plans}");
    uuids[0].clone()
}

fn oneshot(c: &Client, name: &str) -> String {
    let a = ok_json(
        c,
        &[
            "audit",
            "create",
            "-a",
            "at1",
            "-t",
            "ONESHOT",
            "--name",
            name,
            "-p",
            "para1=2.0",
        ],
    );
    assert_eq!(a["Name"], name, "{a}");
    assert_eq!(a["Audit Type"], "ONESHOT", "{a}");
    wait_for(
        &format!("audit {name} to succeed"),
        Duration::from_secs(30),
        || audit_state(c, name) == "SUCCEEDED",
    );
    plan_of(c, name)
}

#[test]
fn the_openstack_client_runs_the_operator_flow_against_auth_none() {
    let h = Home::new();
    h.seed_small_cloud();
    let s = h.serve_api();
    operator_flow(&Client {
        s: &s,
        keystone: None,
    });
}

#[test]
fn the_openstack_client_runs_the_operator_flow_with_keystone_passwords_and_the_catalog() {
    let k = Keystone::new();
    let h = Home::new();
    h.seed_small_cloud();
    h.write_config(&format!(
        "api:\n  auth: keystone\n  keystone:\n    auth_url: {}\n    username: sextant-service\n    project_name: service\n",
        k.url
    ));
    let service = Keystone::service().password;
    let s = h.serve_api_with(&[("SEXTANT_KEYSTONE_PASSWORD", &service)]);
    // This serve is the infra-optim endpoint of a region of this test's own.
    let port = s.url.rsplit(':').next().unwrap_or("0").to_string();
    let registered = k.infra_optim(&s.url, &format!("sextant-{port}"));
    let region = registered.region.clone();
    let admin = Client {
        s: &s,
        keystone: Some(KeystoneAccess {
            k: Keystone::new(),
            user: Keystone::admin(),
            region: region.clone(),
            token: Mutex::new(None),
        }),
    };
    operator_flow(&admin);

    // A member may not write: the client prints the server's refusal.
    let member = Client {
        s: &s,
        keystone: Some(KeystoneAccess {
            k: Keystone::new(),
            user: Keystone::member(),
            region,
            token: Mutex::new(None),
        }),
    };
    let out = optimize(&member, &["audittemplate", "create", "m1", "dummy"]);
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Policy doesn't allow audit_template:create to be performed"),
        "{}",
        out.stderr
    );
    let out = optimize(&member, &["goal", "list", "-f", "json"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(names(&out.json(), "Name").contains(&"dummy".to_string()));
    // Neither password reached serve's log.
    let log = s.log_text();
    for u in [Keystone::admin(), Keystone::member(), Keystone::service()] {
        assert!(
            !log.contains(&u.password),
            "{}'s password is in serve's log",
            u.name
        );
    }
    drop(registered);
}

/// The whole operator flow through `s`.
fn operator_flow(s: &Client) {
    // Goals and strategies.
    let goals = ok_json(s, &["goal", "list"]);
    assert!(
        names(&goals, "Name").contains(&"dummy".to_string()),
        "{goals}"
    );
    let g = ok_json(s, &["goal", "show", "dummy"]);
    assert_eq!(g["Display name"], "Dummy goal", "{g}");
    let strategies = ok_json(s, &["strategy", "list", "--goal", "dummy"]);
    assert_eq!(names(&strategies, "Name"), ["dummy"], "{strategies}");
    let st = ok_json(s, &["strategy", "show", "dummy"]);
    assert_eq!(st["Goal"], "dummy", "{st}");
    assert!(st["Parameters spec"].to_string().contains("para1"), "{st}");
    let state = ok_json(s, &["strategy", "state", "dummy"]);
    assert_eq!(
        names(&state, "Type"),
        ["Datasource", "Metrics", "CDM", "Name"],
        "{state}"
    );
    assert_eq!(state[0]["State"], "sim: available", "{state}");

    // Audit templates.
    let t = ok_json(
        s,
        &[
            "audittemplate",
            "create",
            "at1",
            "dummy",
            "-s",
            "dummy",
            "-d",
            "first",
        ],
    );
    assert_eq!(
        (t["Name"].as_str(), t["Strategy"].as_str()),
        (Some("at1"), Some("dummy")),
        "{t}"
    );
    let list = ok_json(s, &["audittemplate", "list"]);
    assert_eq!(names(&list, "Name"), ["at1"], "{list}");
    let t = ok_json(
        s,
        &[
            "audittemplate",
            "update",
            "at1",
            "replace",
            "description=second",
        ],
    );
    assert_eq!(t["Description"], "second", "{t}");
    assert_eq!(
        ok_json(s, &["audittemplate", "show", "at1"])["Description"],
        "second"
    );

    // Audits: ONESHOT (runs in the background), CONTINUOUS, EVENT.
    let plan = oneshot(s, "a1");
    let c = ok_json(
        s,
        &[
            "audit",
            "create",
            "-g",
            "dummy",
            "-s",
            "dummy",
            "-t",
            "CONTINUOUS",
            "-i",
            "3600",
            "--name",
            "c1",
        ],
    );
    assert_eq!(
        (c["Audit Type"].as_str(), c["Interval"].as_str()),
        (Some("CONTINUOUS"), Some("3600")),
        "{c}"
    );
    let e = ok_json(
        s,
        &[
            "audit", "create", "-a", "at1", "-t", "EVENT", "--name", "e1",
        ],
    );
    assert_eq!(
        (e["Audit Type"].as_str(), e["State"].as_str()),
        (Some("EVENT"), Some("PENDING")),
        "{e}"
    );
    let audits = ok_json(s, &["audit", "list"]);
    let mut listed = names(&audits, "Name");
    listed.sort();
    assert_eq!(listed, ["a1", "c1", "e1"], "{audits}");
    wait_for(
        "the continuous audit's first run",
        Duration::from_secs(30),
        || audit_state(s, "c1") == "ONGOING",
    );
    let c = ok_json(s, &["audit", "update", "c1", "replace", "state=SUSPENDED"]);
    assert_eq!(c["State"], "SUSPENDED", "{c}");
    let out = optimize(s, &["audit", "delete", "c1"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!names(&ok_json(s, &["audit", "list"]), "Name").contains(&"c1".to_string()));

    // Action plans and actions.
    let p = ok_json(s, &["actionplan", "show", &plan]);
    assert_eq!(p["State"], "RECOMMENDED", "{p}");
    let actions = ok_json(s, &["action", "list", "--action-plan", &plan]);
    assert_eq!(
        names(&actions, "Action"),
        ["nop", "nop", "sleep"],
        "{actions}"
    );
    let first = names(&actions, "UUID")[0].clone();
    let a = ok_json(s, &["action", "show", &first]);
    assert_eq!(a["Description"], "Logging a NOP message.", "{a}");
    let a = ok_json(
        s,
        &[
            "action",
            "update",
            "--state",
            "SKIPPED",
            "--reason",
            "maintenance window",
            &first,
        ],
    );
    assert_eq!(a["State"], "SKIPPED", "{a}");
    assert_eq!(
        a["Status Message"], "Action skipped by user. Reason: maintenance window",
        "{a}"
    );
    let p = ok_json(s, &["actionplan", "start", &plan]);
    assert_eq!(p["State"], "PENDING", "{p}");
    wait_for(
        "serve to apply the started plan",
        Duration::from_secs(60),
        || state_of(s, "action_plans", &plan) == "SUCCEEDED",
    );
    let states: Vec<String> = names(
        &ok_json(s, &["action", "list", "--action-plan", &plan, "--detail"]),
        "State",
    );
    assert_eq!(states, ["SKIPPED", "SUCCEEDED", "SUCCEEDED"]);
    let out = optimize(s, &["actionplan", "delete", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Cancel through PATCH, and through `cancel`.
    let p2 = oneshot(s, "a2");
    let p = ok_json(
        s,
        &["actionplan", "update", &p2, "replace", "state=CANCELLED"],
    );
    assert_eq!(p["State"], "CANCELLED", "{p}");
    let p3 = oneshot(s, "a3");
    let p = ok_json(s, &["actionplan", "cancel", &p3]);
    assert_eq!(p["State"], "CANCELLED", "{p}");
    let left = names(&ok_json(s, &["actionplan", "list"]), "UUID");
    assert!(
        !left.contains(&plan) && left.contains(&p2) && left.contains(&p3),
        "{left:?}"
    );

    // Services and the data model.
    let services = ok_json(s, &["service", "list"]);
    assert_eq!(
        names(&services, "Name"),
        ["watcher-decision-engine", "watcher-applier"],
        "{services}"
    );
    assert_eq!(
        names(&services, "Status"),
        ["ACTIVE", "ACTIVE"],
        "{services}"
    );
    let model = ok_json(s, &["datamodel", "list"]);
    let servers = names(&model, "Server Name");
    assert!(servers.contains(&"vm-0001".to_string()), "{model}");
    assert!(
        names(&model, "Node Host Name").contains(&"compute-001".to_string()),
        "{model}"
    );

    // Errors print the server's message.
    let out = optimize(s, &["audit", "show", "nope"]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("Audit nope could not be found"),
        "{}",
        out.stderr
    );
    let out = optimize(s, &["actionplan", "start", &p2]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr
            .contains("only a RECOMMENDED plan can be started"),
        "{}",
        out.stderr
    );

    // Deleting the template.
    let out = optimize(s, &["audittemplate", "delete", "at1"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(ok_json(s, &["audittemplate", "list"]), Value::Array(vec![]));
}

#[test]
fn the_watcher_client_with_a_token_and_an_endpoint_override() {
    let h = Home::new();
    h.seed_small_cloud();
    // printf %s admin-token-1 | sha256sum
    h.write_config(
        "api:\n  auth: tokens\n  tokens:\n    - {name: ops, sha256: 01a9119ca65b23539bbc977f36d9318334c72052593c35edb34cf3b162ec7136, roles: [admin]}\n",
    );
    let s = h.serve_api();
    let watcher = |token: &str, args: &[&str]| {
        let mut c = Command::new(service_url("SEXTANT_TEST_WATCHER"));
        c.args(["--os-endpoint-override", &s.url, "--os-auth-token", token])
            .args(args)
            .env("HOME", std::env::temp_dir());
        run(&mut c)
    };
    let out = watcher("admin-token-1", &["goal", "list", "-f", "json"]);
    assert_eq!(out.status, 0, "{}\n{}", out.stderr, s.log_text());
    assert!(
        names(&out.json(), "Name").contains(&"dummy".to_string()),
        "{}",
        out.stdout
    );
    let out = watcher(
        "admin-token-1",
        &[
            "audit", "create", "-g", "dummy", "-s", "dummy", "--name", "a1", "-f", "json",
        ],
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    wait_for("the audit to succeed", Duration::from_secs(30), || {
        let a = http(
            "GET",
            &format!("{}/v1/audits/a1", s.url),
            &[("x-auth-token", "admin-token-1")],
            None,
        );
        a.status == 200 && a.json()["state"] == "SUCCEEDED"
    });
    let out = watcher("admin-token-1", &["audit", "show", "a1", "-f", "json"]);
    assert_eq!(out.json()["State"], "SUCCEEDED", "{}", out.stderr);
    // An unknown token: the server's message, nothing changed.
    let out = watcher("not-a-token", &["audittemplate", "create", "t1", "dummy"]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr
            .contains("The request you have made requires authentication"),
        "{}",
        out.stderr
    );
    let out = watcher("admin-token-1", &["audittemplate", "list", "-f", "json"]);
    assert_eq!(out.json(), Value::Array(vec![]));
}

#[test]
fn the_openstack_client_trusts_the_api_s_certificate() {
    let h = Home::new();
    h.seed_small_cloud();
    let (cert, key) = sextant_e2e::api::self_signed(&h.path().join("tls"));
    h.write_config(&format!(
        "api:\n  tls: {{cert: {}, key: {}}}\n",
        cert.display(),
        key.display()
    ));
    let s = h.serve_api();
    let https = s.url.replace("http://", "https://");
    let openstack = |extra: &[&str]| {
        let mut c = Command::new(service_url("SEXTANT_TEST_OPENSTACK"));
        c.args(["--os-auth-type", "none", "--os-endpoint", &https])
            .args(extra)
            .args(["optimize", "goal", "show", "dummy", "-f", "json"])
            .env_remove("OS_CACERT")
            .env("HOME", std::env::temp_dir());
        run(&mut c)
    };
    let out = openstack(&["--os-cacert", cert.to_str().expect("utf-8")]);
    assert_eq!(out.status, 0, "{}\n{}", out.stderr, s.log_text());
    assert_eq!(out.json()["Name"], "dummy");
    let out = openstack(&[]);
    assert_ne!(out.status, 0, "an untrusted certificate was accepted");
    assert!(
        out.stderr.contains("CERTIFICATE_VERIFY_FAILED") || out.stderr.contains("SSL"),
        "{}",
        out.stderr
    );
}
