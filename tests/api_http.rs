//! Watcher's REST API as `sextant serve --api` serves it, over HTTP: the
//! discovery documents, paging, the webhook, and one test per refusal
//! (a bad microversion, a patch on an internal path, a forbidden state
//! transition, an oversized body, malformed JSON, no or an unknown token,
//! a role the policy refuses, `auth: none` off loopback): each with its
//! status, Watcher's double-encoded error body naming what is at fault,
//! and nothing stored.

use serde_json::{Value, json};
use sextant_e2e::Home;
use sextant_e2e::api::{http, wait_for};
use std::time::Duration;

const V15: (&str, &str) = ("openstack-api-version", "infra-optim 1.5");

fn get(url: &str) -> Value {
    let a = http("GET", url, &[V15], None);
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.json()
}

fn templates(base: &str) -> Value {
    get(&format!("{base}/v1/audit_templates"))["audit_templates"].clone()
}

fn create_template(base: &str, name: &str) -> Value {
    let a = http(
        "POST",
        &format!("{base}/v1/audit_templates"),
        &[V15],
        Some(&json!({"name": name, "goal": "dummy", "strategy": "dummy"}).to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let t = a.json();
    let uuid = t["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(
        a.header("location"),
        Some(format!("{base}/v1/audit_templates/{uuid}").as_str())
    );
    t
}

fn home_with_cloud() -> Home {
    let h = Home::new();
    h.seed_small_cloud();
    h
}

#[test]
fn discovery_documents_are_watcher_s() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let root = http("GET", &format!("{}/", s.url), &[], None);
    assert_eq!(root.status, 200);
    assert!(
        root.header("x-openstack-request-id")
            .is_some_and(|v| v.starts_with("req-"))
    );
    let v = json!({
        "id": "v1", "status": "CURRENT", "max_version": "1.7", "min_version": "1.0",
        "links": [{"href": format!("{}/v1/", s.url), "rel": "self"}],
    });
    assert_eq!(
        root.json(),
        json!({
            "name": "OpenStack Watcher API",
            "description": "Watcher is an OpenStack project which aims to improve physical resources usage through better VM placement.",
            "versions": [v.clone()],
            "default_version": v,
        })
    );
    // 1.0 (no header): no data_model, no webhooks; no goals or strategies.
    let v10 = http("GET", &format!("{}/v1", s.url), &[], None);
    assert_eq!(v10.status, 200);
    assert_eq!(v10.header("openstack-api-version"), Some("infra-optim 1.0"));
    assert_eq!(v10.header("openstack-api-minimum-version"), Some("1.0"));
    assert_eq!(v10.header("openstack-api-maximum-version"), Some("1.7"));
    assert_eq!(v10.header("vary"), Some("OpenStack-API-Version"));
    let d = v10.json();
    for k in [
        "audit_templates",
        "audits",
        "actions",
        "action_plans",
        "scoring_engines",
        "services",
        "links",
        "media_types",
    ] {
        assert!(d.get(k).is_some(), "{k} missing: {d}");
    }
    for k in ["data_model", "webhooks", "goals", "strategies"] {
        assert!(d.get(k).is_none(), "{k} at 1.0: {d}");
    }
    assert_eq!(
        d["audits"],
        json!([{"href": format!("{}/v1/audits/", s.url), "rel": "self"},
               {"href": format!("{}/audits/", s.url), "rel": "bookmark"}])
    );
    let latest = http(
        "GET",
        &format!("{}/v1/", s.url),
        &[("openstack-api-version", "infra-optim latest")],
        None,
    );
    assert_eq!(
        latest.header("openstack-api-version"),
        Some("infra-optim 1.7")
    );
    let d = latest.json();
    assert!(
        d.get("data_model").is_some() && d.get("webhooks").is_some(),
        "{d}"
    );
}

#[test]
fn a_bad_microversion_is_406_and_stores_nothing() {
    let h = home_with_cloud();
    let s = h.serve_api();
    for (asked, says) in [
        (
            "infra-optim 1.8",
            "Version 1.8 was requested but the minor version is not supported by this service. The supported version range is: [1.0, 1.7].",
        ),
        ("infra-optim 2.0", "Version 2.0 requested but not supported"),
        (
            "infra-optim 1.2.3",
            "Invalid value for OpenStack-API-Version header",
        ),
    ] {
        let a = http(
            "POST",
            &format!("{}/v1/audit_templates", s.url),
            &[("openstack-api-version", asked)],
            Some(&json!({"name": "t", "goal": "dummy"}).to_string()),
        );
        assert_eq!(a.status, 406, "{asked}: {}", a.body);
        assert!(a.fault().contains(says), "{asked}: {}", a.fault());
        assert_eq!(a.header("openstack-api-maximum-version"), Some("1.7"));
        assert!(a.header("openstack-api-version").is_none());
    }
    assert_eq!(templates(&s.url), json!([]));
    // Fields below the requested version are dropped.
    let t = create_template(&s.url, "t1");
    let uuid = t["uuid"].as_str().unwrap();
    let at10 = http(
        "GET",
        &format!("{}/v1/audit_templates/{uuid}", s.url),
        &[],
        None,
    )
    .json();
    assert!(at10.get("default_parameters").is_none(), "{at10}");
    let at17 = http(
        "GET",
        &format!("{}/v1/audit_templates/{uuid}", s.url),
        &[("openstack-api-version", "infra-optim 1.7")],
        None,
    )
    .json();
    assert_eq!(at17["default_parameters"], json!({}));
}

#[test]
fn a_patch_of_an_internal_path_is_400_and_changes_nothing() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let t = create_template(&s.url, "t1");
    let url = format!(
        "{}/v1/audit_templates/{}",
        s.url,
        t["uuid"].as_str().unwrap()
    );
    let before = get(&url);
    for (patch, says) in [
        (
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            "'/uuid' is an internal attribute",
        ),
        (
            json!([{"op": "replace", "path": "/created_at", "value": "x"}]),
            "'/created_at' is an internal attribute",
        ),
        (
            json!([{"op": "add", "path": "/colour", "value": "red"}]),
            "Adding a new attribute (/colour)",
        ),
        (
            json!([{"op": "move", "path": "/name", "from": "/description"}]),
            "Invalid JSON patch",
        ),
        (
            json!([{"op": "copy", "path": "/name", "value": "x"}]),
            "Invalid patch operation \"copy\"",
        ),
    ] {
        let a = http("PATCH", &url, &[V15], Some(&patch.to_string()));
        assert_eq!(a.status, 400, "{patch}: {}", a.body);
        assert!(a.fault().contains(says), "{patch}: {}", a.fault());
    }
    assert_eq!(get(&url), before);
    // An allowed patch goes through.
    let a = http(
        "PATCH",
        &url,
        &[V15],
        Some(&json!([{"op": "replace", "path": "/description", "value": "second"}]).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["description"], "second");
}

#[test]
fn a_forbidden_state_transition_is_refused_and_changes_nothing() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []},
        ]}),
    );
    let url = format!("{}/v1/action_plans/{plan}", s.url);
    let before = get(&url);
    for to in ["SUCCEEDED", "ONGOING", "CANCELLING"] {
        let a = http(
            "PATCH",
            &url,
            &[V15],
            Some(&json!([{"op": "replace", "path": "/state", "value": to}]).to_string()),
        );
        assert_eq!(a.status, 400, "{to}: {}", a.body);
        assert_eq!(
            a.fault(),
            format!("State transition not allowed: (RECOMMENDED -> {to})")
        );
    }
    assert_eq!(get(&url), before);
    // An action goes to SKIPPED only.
    let action =
        get(&format!("{}/v1/actions?action_plan_uuid={plan}", s.url))["actions"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_string();
    let aurl = format!("{}/v1/actions/{action}", s.url);
    let a = http(
        "PATCH",
        &aurl,
        &[V15],
        Some(&json!([{"op": "replace", "path": "/state", "value": "SUCCEEDED"}]).to_string()),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.fault().contains("PENDING -> SUCCEEDED"), "{}", a.fault());
    // Below 1.5 no action is skipped.
    let a = http(
        "PATCH",
        &aurl,
        &[("openstack-api-version", "infra-optim 1.4")],
        Some(&json!([{"op": "replace", "path": "/state", "value": "SKIPPED"}]).to_string()),
    );
    assert_eq!(a.status, 406, "{}", a.body);
    assert!(a.fault().contains("1.5"), "{}", a.fault());
    assert_eq!(get(&aurl)["state"], "PENDING");
    // A plan cancelled cannot be started; skipping in it is a conflict.
    let a = http(
        "PATCH",
        &url,
        &[V15],
        Some(&json!([{"op": "replace", "path": "/state", "value": "CANCELLED"}]).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let a = http("POST", &format!("{url}/start"), &[V15], Some("{}"));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.fault().contains("only a RECOMMENDED plan can be started"),
        "{}",
        a.fault()
    );
    let a = http(
        "PATCH",
        &aurl,
        &[V15],
        Some(&json!([{"op": "replace", "path": "/state", "value": "SKIPPED"}]).to_string()),
    );
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.fault().contains(&action), "{}", a.fault());
    assert_eq!(get(&url)["state"], "CANCELLED");
}

#[test]
fn a_state_no_object_has_is_400_naming_it_and_changes_nothing() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []},
        ]}),
    );
    let a = http(
        "POST",
        &format!("{}/v1/audits", s.url),
        &[V15],
        Some(
            &json!({"audit_type": "EVENT", "goal": "dummy", "strategy": "dummy", "name": "e1"})
                .to_string(),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let plan_url = format!("{}/v1/action_plans/{plan}", s.url);
    let action =
        get(&format!("{}/v1/actions?action_plan_uuid={plan}", s.url))["actions"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_string();
    let action_url = format!("{}/v1/actions/{action}", s.url);
    let audit_url = format!("{}/v1/audits/e1", s.url);
    let state = || (get(&plan_url), get(&action_url), get(&audit_url));
    let before = state();
    let bogus = json!([{"op": "replace", "path": "/state", "value": "BOGUS"}]).to_string();
    let a = http("PATCH", &plan_url, &[V15], Some(&bogus));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.fault(),
        "State transition not allowed: (RECOMMENDED -> BOGUS)"
    );
    let a = http("PATCH", &action_url, &[V15], Some(&bogus));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.fault().contains("PENDING -> BOGUS"), "{}", a.fault());
    let a = http("PATCH", &audit_url, &[V15], Some(&bogus));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.fault().contains("BOGUS") && a.fault().contains("SUSPENDED, ONGOING, CANCELLED"),
        "{}",
        a.fault()
    );
    assert_eq!(state(), before);
}

#[test]
fn a_plan_with_flows_and_alternatives_draws_as_the_cli_draws_it() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let plan = h.import_json(
        "g.json",
        &json!({
            "actions": [
                {"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}},
                {"id": "b", "action_type": "nop", "input_parameters": {"message": "m"}, "parents": ["a"], "alternatives": [{"id": "b2"}]},
                {"id": "c", "action_type": "nop", "input_parameters": {"message": "m"}, "parents": ["b"]},
            ],
            "flows": [{"id": "inner", "actions": ["b"]}, {"id": "outer", "actions": ["c"], "flows": ["inner"]}]
        }),
    );
    for format in ["dot", "mermaid"] {
        let a = http(
            "GET",
            &format!("{}/v1/action_plans/{plan}/graph?format={format}", s.url),
            &[V15],
            None,
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let cli = h
            .run(&["action-plan", "graph", &plan, "--format", format])
            .stdout;
        assert_eq!(a.body, cli, "{format}");
    }
    let dot = http(
        "GET",
        &format!("{}/v1/action_plans/{plan}/graph?format=dot", s.url),
        &[V15],
        None,
    );
    assert!(
        dot.body.contains("subgraph cluster_inner {"),
        "{}",
        dot.body
    );
    assert!(dot.body.contains("style=dashed"), "{}", dot.body);
}

#[test]
fn an_oversized_body_is_413_and_stores_nothing() {
    let h = home_with_cloud();
    h.write_config("api: {max_body: 1024}\n");
    let s = h.serve_api();
    let big = json!({"name": "big", "goal": "dummy", "description": "x".repeat(4000)}).to_string();
    let a = http(
        "POST",
        &format!("{}/v1/audit_templates", s.url),
        &[V15],
        Some(&big),
    );
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.fault().contains("length limit exceeded"), "{}", a.fault());
    assert_eq!(templates(&s.url), json!([]));
}

#[test]
fn malformed_json_is_400_and_stores_nothing() {
    let h = home_with_cloud();
    let s = h.serve_api();
    for (body, says) in [
        (
            "{\"audit_type\": \"ONESHOT\", \"goal\": ",
            "Malformed JSON body",
        ),
        ("[1, 2]", "must be a JSON object"),
        (
            "{\"audit_type\": \"ONESHOT\", \"goal\": \"dummy\", \"colour\": 1}",
            "Unknown attribute for argument audit: colour",
        ),
        (
            "{\"goal\": \"dummy\"}",
            "Mandatory field missing: audit_type",
        ),
        ("{\"audit_type\": \"ONESHOT\", \"goal\": \"dumy\"}", "dumy"),
    ] {
        let a = http("POST", &format!("{}/v1/audits", s.url), &[V15], Some(body));
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.fault().contains(says), "{body}: {}", a.fault());
    }
    assert_eq!(get(&format!("{}/v1/audits", s.url))["audits"], json!([]));
    // Paging arguments are checked too.
    let a = http("GET", &format!("{}/v1/audits?limit=0", s.url), &[V15], None);
    assert_eq!(a.status, 400);
    assert_eq!(a.fault(), "Limit must be positive");
    let a = http(
        "GET",
        &format!("{}/v1/audits?sort_dir=up", s.url),
        &[V15],
        None,
    );
    assert_eq!(a.status, 400);
    assert!(
        a.fault().contains("Invalid sort direction: up"),
        "{}",
        a.fault()
    );
}

const TOKENS: &str = "api:
  auth: tokens
  tokens:
    - {name: ops, sha256: 01a9119ca65b23539bbc977f36d9318334c72052593c35edb34cf3b162ec7136, roles: [admin]}
    - {name: dashboard, sha256: 8ed7a3cb498a69b97157eb5c685b8831eabdc118fce9a4c75425920ab3ddf6e0, roles: [reader]}
";

#[test]
fn tokens_no_token_an_unknown_token_and_a_reader_s_write_are_refused() {
    let h = home_with_cloud();
    h.write_config(TOKENS);
    let s = h.serve_api();
    let url = format!("{}/v1/audit_templates", s.url);
    let body = json!({"name": "t1", "goal": "dummy"}).to_string();
    let none = http("POST", &url, &[V15], Some(&body));
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(
        none.fault(),
        "The request you have made requires authentication."
    );
    let unknown = http(
        "POST",
        &url,
        &[V15, ("x-auth-token", "admin-token-2")],
        Some(&body),
    );
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    let reader = [V15, ("x-auth-token", "reader-token-1")];
    let write = http("POST", &url, &reader, Some(&body));
    assert_eq!(write.status, 403, "{}", write.body);
    assert_eq!(
        write.fault(),
        "Policy doesn't allow audit_template:create to be performed."
    );
    // Nothing was stored; the reader reads.
    let list = http("GET", &url, &reader, None);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["audit_templates"], json!([]));
    // The refusals are logged with the caller, never the token.
    let log = s.log_text();
    assert!(
        log.contains("refused POST /v1/audit_templates for dashboard (roles reader)"),
        "{log}"
    );
    assert!(log.contains("no X-Auth-Token (401)"), "{log}");
    assert!(
        !log.contains("reader-token-1") && !log.contains("admin-token-2"),
        "{log}"
    );
    // The root document needs no token; the admin writes.
    assert_eq!(http("GET", &format!("{}/", s.url), &[], None).status, 200);
    let admin = http(
        "POST",
        &url,
        &[V15, ("x-auth-token", "admin-token-1")],
        Some(&body),
    );
    assert_eq!(admin.status, 201, "{}", admin.body);
}

#[test]
fn a_policy_file_overrides_rules_for_static_tokens() {
    let h = home_with_cloud();
    let policy = sextant_e2e::write_file(
        h.path(),
        "policy.yaml",
        "\"audit_template:create\": \"role:reader or rule:admin_api\"\n\"goal:get_all\": \"not role:admin\"\n",
    );
    h.write_config(&format!("{TOKENS}  policy_file: {}\n", policy.display()));
    let s = h.serve_api();
    let url = format!("{}/v1/audit_templates", s.url);
    let reader = [V15, ("x-auth-token", "reader-token-1")];
    let admin = [V15, ("x-auth-token", "admin-token-1")];
    let body = json!({"name": "t1", "goal": "dummy"}).to_string();
    let a = http("POST", &url, &reader, Some(&body));
    assert_eq!(a.status, 201, "{}", a.body);
    let a = http("DELETE", &format!("{url}/t1"), &reader, None);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow audit_template:delete to be performed."
    );
    let a = http("GET", &format!("{}/v1/goals", s.url), &admin, None);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow goal:get_all to be performed."
    );
    let a = http("GET", &format!("{}/v1/goals", s.url), &reader, None);
    assert_eq!(a.status, 200, "{}", a.body);
    let list = http("GET", &url, &admin, None);
    assert_eq!(list.json()["audit_templates"][0]["name"], "t1");
    assert_eq!(
        list.json()["audit_templates"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn auth_none_off_loopback_is_refused_at_start() {
    let h = Home::new();
    let out = h.run(&["serve", "--api", "0.0.0.0:9", "--exit-after", "1"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("0.0.0.0:9") && out.stderr.contains("loopback"),
        "{}",
        out.stderr
    );
    h.write_config("api: {auth: tokens}\n");
    let out = h.run(&["serve", "--api", "127.0.0.1:9", "--exit-after", "1"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("tokens"), "{}", out.stderr);
}

/// `api.workers` (the API runtime's threads) of 0 is refused at start,
/// naming the field; 2 serves.
#[test]
fn api_workers_of_zero_is_refused_at_start() {
    let h = home_with_cloud();
    h.write_config("api: {workers: 0}\n");
    let out = h.run(&["serve", "--api", "127.0.0.1:9", "--exit-after", "1"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("workers"), "{}", out.stderr);
    h.write_config("api: {workers: 2}\n");
    let s = h.serve_api();
    assert!(get(&format!("{}/v1/goals", s.url))["goals"].is_array());
}

#[test]
fn lists_page_with_max_limit_marker_and_next() {
    let h = home_with_cloud();
    h.write_config("api: {max_limit: 2}\n");
    let s = h.serve_api();
    let made: Vec<String> = ["t1", "t2", "t3"]
        .iter()
        .map(|n| {
            create_template(&s.url, n)["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // No limit, or a bigger one: max_limit; the page is full, so `next`.
    let first = get(&format!("{}/v1/audit_templates?goal=dummy&limit=50", s.url));
    let names: Vec<&str> = first["audit_templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t1", "t2"]);
    let next = first["next"].as_str().expect("next").to_string();
    assert_eq!(
        next,
        format!(
            "{}/v1/audit_templates?goal=dummy&limit=2&marker={}",
            s.url, made[1]
        )
    );
    let second = get(&next);
    assert_eq!(second["audit_templates"][0]["uuid"], made[2].as_str());
    assert!(second.get("next").is_none(), "{second}");
    let desc = get(&format!(
        "{}/v1/audit_templates/detail?sort_key=name&sort_dir=desc&limit=1",
        s.url
    ));
    assert_eq!(desc["audit_templates"][0]["name"], "t3");
    assert!(
        desc["audit_templates"][0].get("description").is_some(),
        "{desc}"
    );
    let a = http(
        "GET",
        &format!("{}/v1/audit_templates?sort_key=colour", s.url),
        &[V15],
        None,
    );
    assert_eq!(a.status, 400);
    assert!(a.fault().contains("colour"), "{}", a.fault());
}

#[test]
fn a_webhook_runs_an_event_audit() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let a = http(
        "POST",
        &format!("{}/v1/audits", s.url),
        &[V15],
        Some(
            &json!({"audit_type": "EVENT", "goal": "dummy", "strategy": "dummy", "name": "e1"})
                .to_string(),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["state"], "PENDING");
    let hook = format!("{}/v1/webhooks/e1", s.url);
    let old = http(
        "POST",
        &hook,
        &[("openstack-api-version", "infra-optim 1.3")],
        Some("{}"),
    );
    assert_eq!(old.status, 406, "{}", old.body);
    let ok = http("POST", &hook, &[V15], Some("{\"alarm\": \"cpu\"}"));
    assert_eq!(ok.status, 202, "{}", ok.body);
    wait_for("the EVENT audit to run", Duration::from_secs(30), || {
        get(&format!("{}/v1/audits/e1", s.url))["state"] == "SUCCEEDED"
    });
    let plans = get(&format!("{}/v1/action_plans?audit_uuid=e1", s.url));
    assert_eq!(
        plans["action_plans"].as_array().map(Vec::len),
        Some(1),
        "{plans}"
    );
    let a = http(
        "POST",
        &format!("{}/v1/webhooks/nope", s.url),
        &[V15],
        Some("{}"),
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.fault(), "Audit nope could not be found");
}

#[test]
fn sigterm_stops_the_api_with_serve() {
    let h = home_with_cloud();
    let mut s = h.serve_api();
    assert_eq!(
        http("GET", &format!("{}/v1/goals", s.url), &[], None).status,
        200
    );
    let port = s.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert_eq!(s.stop(), 0, "{}", s.log_text());
    let log = s.log_text();
    let api_stopped = log.find("api stopped").expect("api stopped logged");
    let serve_stopped = log
        .find("sextant serve stopped")
        .expect("serve stopped logged");
    assert!(api_stopped < serve_stopped, "{log}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
}

#[test]
fn concurrent_writes_are_all_stored() {
    let h = home_with_cloud();
    h.write_config("api: {concurrency: 4}\n");
    let s = h.serve_api();
    let url = format!("{}/v1/audit_templates", s.url);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let body =
                            json!({"name": format!("t{t}-{i}"), "goal": "dummy"}).to_string();
                        http("POST", &url, &[V15], Some(&body)).status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(templates(&s.url).as_array().map(Vec::len), Some(80));
}

#[test]
fn action_lists_walk_a_plan_page_by_page_both_ways() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let actions: Vec<Value> = (0..7)
        .map(|i| json!({"id": format!("a{i}"), "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []}))
        .collect();
    let plan = h.import_json("p.json", &json!({ "actions": actions }));
    let all: Vec<String> = h
        .actions(&plan)
        .iter()
        .map(|a| a["uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 7);
    for dir in ["asc", "desc"] {
        let mut url = format!(
            "{}/v1/actions?action_plan_uuid={plan}&sort_dir={dir}&limit=3",
            s.url
        );
        let mut walked = Vec::new();
        loop {
            let page = get(&url);
            let items = page["actions"].as_array().unwrap().clone();
            walked.extend(
                items
                    .iter()
                    .map(|a| a["uuid"].as_str().unwrap().to_string()),
            );
            match page["next"].as_str() {
                Some(n) => url = n.to_string(),
                None => break,
            }
        }
        let mut want = all.clone();
        if dir == "desc" {
            want.reverse();
        }
        assert_eq!(walked, want, "{dir}");
    }
    let every = get(&format!("{}/v1/actions/detail", s.url));
    assert_eq!(every["actions"].as_array().map(Vec::len), Some(7));
    assert_eq!(every["actions"][0]["description"], "Logging a NOP message.");
    let a = http(
        "GET",
        &format!("{}/v1/actions?marker=nope", s.url),
        &[V15],
        None,
    );
    assert_eq!(a.status, 400);
    assert!(a.fault().contains("marker nope"), "{}", a.fault());
}

#[test]
fn action_types_are_listed_and_shown_by_name_and_version() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let list = get(&format!("{}/v1/action_types", s.url));
    let names: Vec<&str> = list["action_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for n in ["migrate", "nop", "sleep"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    let cli = h
        .run(&["action-type", "show", "nop", "--format", "json"])
        .json();
    let api = get(&format!("{}/v1/action_types/nop", s.url));
    assert_eq!(api, cli);
    assert_eq!(api["handler_entry"], "nop");
    let version = api["version"].as_str().unwrap().to_string();
    assert_eq!(
        get(&format!("{}/v1/action_types/nop@{version}", s.url)),
        cli
    );
    let a = http(
        "GET",
        &format!("{}/v1/action_types/nop@9.9.9", s.url),
        &[V15],
        None,
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.fault().contains("9.9.9"), "{}", a.fault());
    // Watcher's discovery document does not change.
    assert!(get(&format!("{}/v1", s.url)).get("action_types").is_none());
}

#[test]
fn goals_and_strategies_are_named_in_the_caller_s_language() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let url = format!("{}/v1/goals/dummy", s.url);
    assert_eq!(get(&url)["display_name"], "Dummy goal");
    let fr = http(
        "GET",
        &url,
        &[("accept-language", "fr-FR,fr;q=0.9,en;q=0.5")],
        None,
    );
    assert_eq!(fr.json()["display_name"], "Objectif factice");
    let fr = http(
        "GET",
        &format!("{}/v1/strategies?goal=dummy", s.url),
        &[("accept-language", "fr")],
        None,
    );
    assert_eq!(
        fr.json()["strategies"][0]["display_name"],
        "Stratégie factice"
    );
}

#[test]
fn paths_without_v1_and_with_a_trailing_slash_are_the_v1_resources() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let want = get(&format!("{}/v1/goals", s.url));
    for path in ["/goals", "/goals/", "/v1/goals/"] {
        let a = http("GET", &format!("{}{path}", s.url), &[V15], None);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(
            a.header("openstack-api-version"),
            Some("infra-optim 1.5"),
            "{path}"
        );
        assert_eq!(a.json(), want, "{path}");
    }
    let a = http("GET", &format!("{}/nothing/here", s.url), &[V15], None);
    assert_eq!(a.status, 404);
    assert_eq!(a.fault(), "The resource could not be found.");
    let a = http("PUT", &format!("{}/v1/goals", s.url), &[V15], Some("{}"));
    assert_eq!(a.status, 405);
    assert_eq!(a.fault(), "Method Not Allowed");
}

const GREET: &str = "name: greet
version: 1.0.0
description: Greets, through the nop handler.
handler: nop
parameters:
  type: object
  required: [message]
  properties:
    message: {type: string}
";

#[test]
fn an_action_type_created_through_the_api_runs_in_a_plan_started_through_it() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let url = format!("{}/v1/action_types", s.url);
    // A bad definition: located in the body, nothing registered.
    let bad = http(
        "POST",
        &url,
        &[V15],
        Some("name: greet\nversion: 1.0.0\nhandler: nop\nparamters: {}\n"),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.fault().contains("request body:4:1"), "{}", bad.fault());
    assert_eq!(
        http("GET", &format!("{url}/greet"), &[V15], None).status,
        404
    );
    // Created: 201 with Location; again with the same text: 200.
    let made = http("POST", &url, &[V15], Some(GREET));
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        made.header("location"),
        Some(format!("{url}/greet@1.0.0").as_str())
    );
    assert_eq!(made.json()["handler_entry"], "nop");
    assert_eq!(http("POST", &url, &[V15], Some(GREET)).status, 200);
    assert_eq!(
        get(&format!("{url}/greet@1.0.0"))["description"],
        "Greets, through the nop handler."
    );
    // A plan of it, started through the API, runs with no restart.
    let plan_of = |name: &str| {
        h.import_json(
            name,
            &json!({"actions": [{"id": "g", "action_type": "greet", "input_parameters": {"message": "hi"}, "parents": []}]}),
        )
    };
    let plan = plan_of("p1.json");
    let a = http(
        "POST",
        &format!("{}/v1/action_plans/{plan}/start", s.url),
        &[V15],
        Some("{}"),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["state"], "PENDING");
    wait_for("serve to apply the plan", Duration::from_secs(60), || {
        get(&format!("{}/v1/action_plans/{plan}", s.url))["state"] == "SUCCEEDED"
    });
    // Deleting it is refused while a plan that has not ended uses it.
    let other = plan_of("p2.json");
    let refused = http("DELETE", &format!("{url}/greet@1.0.0"), &[V15], None);
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.fault().contains(&other) && refused.fault().contains("RECOMMENDED"),
        "{}",
        refused.fault()
    );
    assert_eq!(get(&format!("{url}/greet@1.0.0"))["name"], "greet");
    let a = http(
        "PATCH",
        &format!("{}/v1/action_plans/{other}", s.url),
        &[V15],
        Some(&json!([{"op": "replace", "path": "/state", "value": "CANCELLED"}]).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        http("DELETE", &format!("{url}/greet@1.0.0"), &[V15], None).status,
        204
    );
    assert_eq!(
        http("GET", &format!("{url}/greet"), &[V15], None).status,
        404
    );
    let cli = h.run(&["action-type", "show", "greet"]);
    assert_eq!(cli.status, 2, "{}", cli.stdout);
}

#[test]
fn events_page_by_id_and_plans_draw_their_graph() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []},
            {"id": "b", "action_type": "nop", "input_parameters": {"message": "y"}, "parents": ["a"]},
        ]}),
    );
    let cli = h.events(&plan);
    assert!(cli.len() >= 3, "{cli:?}");
    let mut url = format!("{}/v1/events?action_plan_uuid={plan}&limit=2", s.url);
    let mut walked = Vec::new();
    loop {
        let page = get(&url);
        walked.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(walked, cli);
    let a = http("GET", &format!("{}/v1/events?after=x", s.url), &[V15], None);
    assert_eq!(a.status, 400);
    assert!(a.fault().contains("after"), "{}", a.fault());
    let g = get(&format!("{}/v1/action_plans/{plan}/graph", s.url));
    assert_eq!(g["nodes"].as_array().map(Vec::len), Some(2), "{g}");
    assert_eq!(
        g["edges"],
        json!([[g["nodes"][0]["uuid"], g["nodes"][1]["uuid"]]])
    );
    let dot = http(
        "GET",
        &format!("{}/v1/action_plans/{plan}/graph?format=dot", s.url),
        &[V15],
        None,
    );
    assert_eq!(dot.status, 200);
    let cli_dot = h
        .run(&["action-plan", "graph", &plan, "--format", "dot"])
        .stdout;
    assert_eq!(dot.body, cli_dot);
    let bad = http(
        "GET",
        &format!("{}/v1/action_plans/{plan}/graph?format=png", s.url),
        &[V15],
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.fault().contains("png"), "{}", bad.fault());
}

#[test]
fn an_api_config_sextant_cannot_serve_is_refused_at_start_naming_what() {
    let h = Home::new();
    for (config, says) in [
        ("api:\n  auth: kerberos\n", "line 2 column 9"),
        (
            "api:\n  auth: keystone\n",
            "auth: keystone needs a keystone: section",
        ),
        (
            "api:\n  listen: 127.0.0.1:1\n  tls: {cert: /nonexistent/c.pem, key: k}\n",
            "tls cert /nonexistent/c.pem",
        ),
        (
            "api:\n  auth: tokens\n  tokens: [{name: ops, sha256: abc, roles: [admin]}]\n",
            "sha256 must be 64 hex digits",
        ),
    ] {
        h.write_config(config);
        let out = h.run(&["serve", "--exit-after", "1"]);
        assert_eq!(out.status, 2, "{config}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{config}: {}", out.stderr);
    }
}

#[test]
fn tls_serves_https_with_https_links() {
    let h = home_with_cloud();
    let (cert, key) = sextant_e2e::api::self_signed(&h.path().join("tls"));
    h.write_config(&format!(
        "api:\n  tls: {{cert: {}, key: {}}}\n",
        cert.display(),
        key.display()
    ));
    let s = h.serve_api();
    let https = s.url.replace("http://", "https://");
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .expect("curl")
    };
    let out = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("{https}/v1/goals/dummy"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let goal: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(goal["name"], "dummy");
    assert!(
        goal["links"][0]["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{https}/v1/goals/")),
        "{goal}"
    );
    // Plain HTTP gets no answer; a client that does not trust the
    // certificate is refused.
    assert!(!curl(&[&format!("{}/v1/goals", s.url)]).status.success());
    assert!(!curl(&[&format!("{https}/v1/goals")]).status.success());
    assert!(
        s.log_text().contains(&format!("api listening on {https}")),
        "{}",
        s.log_text()
    );
}

/// A plan's plain action list is kept between requests
/// (api/page_cache.rs): every write to its actions, from the API or from
/// another process, is seen by the next list, and a deleted plan's list
/// is 404, never a kept page.
#[test]
fn a_kept_action_list_is_never_stale() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let actions: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("a{i}"), "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []}))
        .collect();
    let plan = h.import_json("p.json", &json!({ "actions": actions }));
    let other = h.import_json("q.json", &json!({ "actions": actions }));
    let url = format!("{}/v1/actions?action_plan_uuid={plan}&limit=2", s.url);
    let states = |url: &str| -> Vec<String> {
        let page = get(url);
        page["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| a["state"].as_str().expect("state").to_string())
            .collect()
    };
    let first = http("GET", &url, &[V15], None);
    assert_eq!(first.status, 200, "{}", first.body);
    // Served again while nothing changed: the same bytes.
    let again = http("GET", &url, &[V15], None);
    assert_eq!(again.body, first.body);
    assert_eq!(states(&url), ["PENDING", "PENDING"]);
    // Another plan's write leaves it as it was.
    let q0 = h.action(&other, "a0")["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let out = h.run(&["action", "skip", &q0]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(http("GET", &url, &[V15], None).body, first.body);
    // A write by another process (the CLI).
    let a0 = h.action(&plan, "a0")["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let out = h.run(&["action", "skip", &a0, "--reason", "by the CLI"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(states(&url), ["SKIPPED", "PENDING"]);
    // A write through the API.
    let a1 = h.action(&plan, "a1")["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let patched = http(
        "PATCH",
        &format!("{}/v1/actions/{a1}", s.url),
        &[V15],
        Some(&json!([{"op": "replace", "path": "/state", "value": "SKIPPED"}]).to_string()),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(states(&url), ["SKIPPED", "SKIPPED"]);
    // The next page, and the page with Sextant's extras, are answers of
    // their own.
    let next = get(&url)["next"].as_str().expect("next").to_string();
    assert_eq!(states(&next), ["PENDING"]);
    let extras = http("GET", &url, &[V15, ("sextant-extras", "true")], None);
    assert_eq!(extras.status, 200, "{}", extras.body);
    assert!(
        extras.json()["actions"][0]["action_type_version"].is_string(),
        "{}",
        extras.body
    );
    assert!(get(&url)["actions"][0].get("action_type_version").is_none());
    // A deleted plan: 404, not the page kept.
    let out = h.run(&["action-plan", "delete", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let gone = http("GET", &url, &[V15], None);
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert!(gone.fault().contains(&plan), "{}", gone.fault());
}

/// Concurrent requests for one kept list share a check of the plan's mark
/// (`api/single_flight.rs`), yet none is answered with a page older than
/// a write acknowledged before it was sent: readers list a plan while
/// its actions are skipped one by one through the API, and each page
/// holds at least as many SKIPPED actions as were acknowledged when its
/// request left.
#[test]
fn concurrent_kept_lists_are_never_older_than_a_write_acknowledged_before_them() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let h = home_with_cloud();
    let s = h.serve_api();
    let actions: Vec<Value> = (0..24)
        .map(|i| json!({"id": format!("a{i}"), "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []}))
        .collect();
    let plan = h.import_json("p.json", &json!({ "actions": actions }));
    let url = format!("{}/v1/actions?action_plan_uuid={plan}&limit=1000", s.url);
    let uuids: Vec<String> = get(&url)["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["uuid"].as_str().expect("uuid").to_string())
        .collect();
    assert_eq!(uuids.len(), 24);
    let acked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (acked, done, url) = (Arc::clone(&acked), Arc::clone(&done), url.clone());
            std::thread::spawn(move || {
                let mut pages = 0usize;
                while !done.load(Ordering::SeqCst) {
                    let before = acked.load(Ordering::SeqCst);
                    let page = http("GET", &url, &[V15], None);
                    assert_eq!(page.status, 200, "{}", page.body);
                    let skipped = page.json()["actions"]
                        .as_array()
                        .expect("actions")
                        .iter()
                        .filter(|a| a["state"] == "SKIPPED")
                        .count();
                    assert!(
                        skipped >= before,
                        "a page with {skipped} SKIPPED actions answered a request sent after {before} skips were acknowledged"
                    );
                    pages += 1;
                }
                pages
            })
        })
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        let patched = http(
            "PATCH",
            &format!("{}/v1/actions/{u}", s.url),
            &[V15],
            Some(&json!([{"op": "replace", "path": "/state", "value": "SKIPPED"}]).to_string()),
        );
        assert_eq!(patched.status, 200, "{}", patched.body);
        acked.store(i + 1, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);
    let pages: usize = readers
        .into_iter()
        .map(|r| r.join().expect("a reader failed"))
        .sum();
    assert!(pages >= 24, "the readers listed {pages} pages");
    let last = get(&url);
    assert!(
        last["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .all(|a| a["state"] == "SKIPPED"),
        "{last}"
    );
}
