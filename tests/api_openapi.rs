//! The OpenAPI document (`GET /v1/openapi.json`, generated from the
//! handlers): it names every route the API serves, with its parameters,
//! bodies and errors; and schemathesis (PyPI, installed by
//! scripts/services/schemathesis.sh) fuzzes a running `serve` against it
//! for a bounded number of cases, on real objects (a plan and its actions,
//! an audit template, an EVENT audit, a registered action type): no 5xx,
//! no status, content type or body outside the document.

use serde_json::{Value, json};
use sextant_e2e::Home;
use sextant_e2e::api::http;
use std::time::Duration;

const V15: (&str, &str) = ("openstack-api-version", "infra-optim 1.5");

/// Every operation the router serves under `/v1` (and `/`).
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/v1"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/goals"),
    ("get", "/v1/goals/detail"),
    ("get", "/v1/goals/{id}"),
    ("get", "/v1/strategies"),
    ("get", "/v1/strategies/detail"),
    ("get", "/v1/strategies/{id}"),
    ("get", "/v1/strategies/{id}/state"),
    ("get", "/v1/audit_templates"),
    ("post", "/v1/audit_templates"),
    ("get", "/v1/audit_templates/detail"),
    ("get", "/v1/audit_templates/{id}"),
    ("patch", "/v1/audit_templates/{id}"),
    ("delete", "/v1/audit_templates/{id}"),
    ("get", "/v1/audits"),
    ("post", "/v1/audits"),
    ("get", "/v1/audits/detail"),
    ("get", "/v1/audits/{id}"),
    ("patch", "/v1/audits/{id}"),
    ("delete", "/v1/audits/{id}"),
    ("get", "/v1/action_plans"),
    ("get", "/v1/action_plans/detail"),
    ("get", "/v1/action_plans/{id}"),
    ("patch", "/v1/action_plans/{id}"),
    ("delete", "/v1/action_plans/{id}"),
    ("post", "/v1/action_plans/{id}/start"),
    ("get", "/v1/action_plans/{id}/graph"),
    ("get", "/v1/actions"),
    ("get", "/v1/actions/detail"),
    ("get", "/v1/actions/{id}"),
    ("patch", "/v1/actions/{id}"),
    ("get", "/v1/scoring_engines"),
    ("get", "/v1/scoring_engines/detail"),
    ("get", "/v1/scoring_engines/{id}"),
    ("get", "/v1/services"),
    ("get", "/v1/services/detail"),
    ("get", "/v1/services/{id}"),
    ("get", "/v1/data_model"),
    ("post", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/alertmanager"),
    ("get", "/v1/action_types"),
    ("post", "/v1/action_types"),
    ("get", "/v1/action_types/{id}"),
    ("delete", "/v1/action_types/{id}"),
    ("get", "/v1/events"),
    ("get", "/v1/policies"),
    ("post", "/v1/policies/validate"),
    ("get", "/v1/policies/{id}"),
    ("get", "/v1/plugins"),
];

fn get(url: &str) -> Value {
    let a = http("GET", url, &[V15], None);
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.json()
}

#[test]
fn the_document_names_every_route_with_its_parameters_bodies_and_errors() {
    let h = Home::new();
    h.seed_small_cloud();
    let s = h.serve_api();
    let doc = get(&format!("{}/v1/openapi.json", s.url));
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, item) in paths {
        for m in ["get", "post", "patch", "delete", "put"] {
            if item.get(m).is_some() {
                documented += 1;
                assert!(
                    OPERATIONS.contains(&(m, path.as_str())),
                    "{m} {path} is documented but not served"
                );
            }
        }
    }
    assert_eq!(documented, OPERATIONS.len());
    for (m, path) in OPERATIONS {
        let op = &doc["paths"][path][m];
        assert!(op.is_object(), "{m} {path} is not documented");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{m} {path}: no success response"
        );
        for code in ["400", "401", "403", "404", "406", "413"] {
            assert_eq!(
                responses[code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{m} {path}: {code}"
            );
        }
        if path.contains("{id}") {
            let params = op["parameters"].as_array().expect("parameters");
            assert!(
                params
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == "id"),
                "{m} {path}: no path parameter"
            );
        }
        if *m == "post" && !path.contains("{id}") {
            assert!(op["requestBody"].is_object(), "{m} {path}: no body");
        }
        if *m == "patch" {
            assert_eq!(
                op["requestBody"]["content"]["application/json"]["schema"]["items"]["$ref"],
                "#/components/schemas/PatchOp",
                "{m} {path}"
            );
        }
        // The microversion header is a parameter of every path.
        assert!(
            doc["paths"][path]["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "OpenStack-API-Version")),
            "{path}"
        );
    }
    // Paging and filters are named; Sextant's extras header too.
    let names = |m: &str, path: &str| -> Vec<String> {
        doc["paths"][path][m]["parameters"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|p| p["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let actions = names("get", "/v1/actions");
    for p in [
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "action_plan_uuid",
        "audit_uuid",
        "Sextant-Extras",
    ] {
        assert!(actions.contains(&p.to_string()), "{p}: {actions:?}");
    }
    assert!(names("get", "/v1/events").contains(&"Last-Event-ID".to_string()));
}

/// Creates what the fuzzer's path parameters point at; the config file
/// that gives each operation real ids.
fn seed_objects(h: &Home, base: &str) -> String {
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []},
            {"id": "b", "action_type": "nop", "input_parameters": {"message": "y"}, "parents": ["a"]},
        ]}),
    );
    let action = get(&format!("{base}/v1/actions?action_plan_uuid={plan}"))["actions"][0]["uuid"]
        .as_str()
        .expect("action")
        .to_string();
    let t = http(
        "POST",
        &format!("{base}/v1/audit_templates"),
        &[V15],
        Some(&json!({"name": "fuzzed", "goal": "dummy", "strategy": "dummy"}).to_string()),
    );
    assert_eq!(t.status, 201, "{}", t.body);
    let template = t.json()["uuid"].as_str().expect("uuid").to_string();
    let a = http(
        "POST",
        &format!("{base}/v1/audits"),
        &[V15],
        Some(&json!({"goal": "dummy", "strategy": "dummy", "audit_type": "EVENT"}).to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let audit = a.json()["uuid"].as_str().expect("uuid").to_string();
    let ty = http(
        "POST",
        &format!("{base}/v1/action_types"),
        &[V15],
        Some("name: fuzzed\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n"),
    );
    assert_eq!(ty.status, 201, "{}", ty.body);
    let op = |ids: &[&str], id: &str| {
        format!(
            "[[operations]]\ninclude-operation-id = {}\nparameters = {{ \"path.id\" = \"{id}\" }}\n\n",
            serde_json::to_string(ids).expect("json")
        )
    };
    [
        op(&["goals_show"], "dummy"),
        op(&["strategies_show", "strategies_state"], "dummy"),
        op(
            &[
                "audit_templates_show",
                "audit_templates_update",
                "audit_templates_delete",
            ],
            &template,
        ),
        op(
            &[
                "audits_show",
                "audits_update",
                "audits_delete",
                "webhooks_trigger",
            ],
            &audit,
        ),
        op(
            &[
                "action_plans_show",
                "action_plans_update",
                "action_plans_delete",
                "action_plans_start",
                "action_plans_graph",
            ],
            &plan,
        ),
        op(&["actions_show", "actions_update"], &action),
        op(&["services_show"], "1"),
        op(
            &["action_types_show", "action_types_delete"],
            "fuzzed@1.0.0",
        ),
        op(&["policies_show"], "default"),
    ]
    .concat()
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let fuzzer = sextant_e2e::service_url("SEXTANT_TEST_SCHEMATHESIS");
    let h = Home::new();
    h.seed_small_cloud();
    let s = h.serve_api();
    let config = seed_objects(&h, &s.url);
    let dir = h.path().join("fuzz");
    let file = sextant_e2e::write_file(&dir, "schemathesis.toml", &config);
    let started = std::time::Instant::now();
    let out = std::process::Command::new(&fuzzer)
        .arg("--config-file")
        .arg(&file)
        .args([
            "run",
            &format!("{}/v1/openapi.json", s.url),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261206",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
        ])
        .current_dir(&dir)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{text}\nserve's log:\n{}",
        out.status,
        s.log_text()
    );
    // Every operation of the document was tested.
    let selected = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|v| v.split('/').next_back())
        .map(str::to_string);
    let tested = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .map(str::to_string);
    assert!(selected.is_some() && selected == tested, "{text}");
    assert!(
        text.contains(" passed") && !text.contains(" failed"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "the fuzzing took {:?}",
        started.elapsed()
    );
    assert!(
        !s.log_text().contains("panicked"),
        "serve panicked:\n{}",
        s.log_text()
    );
}
