//! What Sextant's API adds to Watcher's, without changing what stock
//! clients get: an action's `action_type_version` and `outputs` only with
//! `Sextant-Extras: true`; `/v1/policies` (list, show, validate with
//! file-free locations); `/v1/plugins` (loaded and rejected, as `plugins
//! list` shows them); `/v1/events` followed as server-sent events,
//! resumable with `Last-Event-ID`.

use serde_json::{Value, json};
use sextant_e2e::Home;
use sextant_e2e::api::{http, wait_for};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::time::Duration;

const V15: (&str, &str) = ("openstack-api-version", "infra-optim 1.5");
const EXTRAS: (&str, &str) = ("sextant-extras", "true");

fn get(url: &str) -> Value {
    let a = http("GET", url, &[V15], None);
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.json()
}

fn home_with_cloud() -> Home {
    let h = Home::new();
    h.seed_small_cloud();
    h
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn start(base: &str, plan: &str) {
    let a = http(
        "POST",
        &format!("{base}/v1/action_plans/{plan}/start"),
        &[V15],
        Some("{}"),
    );
    assert_eq!(a.status, 200, "{}", a.body);
}

fn wait_succeeded(base: &str, plan: &str) {
    wait_for("serve to apply the plan", Duration::from_secs(60), || {
        let p = get(&format!("{base}/v1/action_plans/{plan}"));
        assert_ne!(p["state"], "FAILED", "{p}");
        p["state"] == "SUCCEEDED"
    });
}

const ECHO: &str = "name: echo_json
version: 1.2.0
description: Prints its word as JSON.
handler: command
with:
  argv: [\"/usr/bin/printf\", '{\"said\": \"%s\"}', \"{{ word }}\"]
parameters:
  type: object
  required: [word]
  properties:
    word: {type: string}
outputs:
  type: object
  required: [said]
";

#[test]
fn actions_carry_their_outputs_and_type_version_only_when_asked() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let made = http(
        "POST",
        &format!("{}/v1/action_types", s.url),
        &[V15],
        Some(ECHO),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [{"id": "e", "action_type": "echo_json", "input_parameters": {"word": "bonjour"}, "parents": []}]}),
    );
    start(&s.url, &plan);
    wait_succeeded(&s.url, &plan);
    let list_url = format!("{}/v1/actions?action_plan_uuid={plan}", s.url);
    let detail_url = format!("{}/v1/actions/detail?action_plan_uuid={plan}", s.url);
    // Without the header: Watcher's fields, and nothing else, at 1.0 and 1.5.
    let plain = get(&detail_url)["actions"][0].clone();
    let uuid = plain["uuid"].as_str().expect("uuid").to_string();
    let watcher_1_5: BTreeSet<String> = [
        "uuid",
        "state",
        "action_plan_uuid",
        "action_type",
        "parents",
        "description",
        "input_parameters",
        "status_message",
        "created_at",
        "updated_at",
        "deleted_at",
        "links",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys(&plain), watcher_1_5, "{plain}");
    let shown = get(&format!("{}/v1/actions/{uuid}", s.url));
    assert_eq!(keys(&shown), watcher_1_5);
    let at_1_0 = http("GET", &format!("{}/v1/actions/{uuid}", s.url), &[], None).json();
    let mut watcher_1_0 = watcher_1_5.clone();
    watcher_1_0.remove("status_message");
    assert_eq!(keys(&at_1_0), watcher_1_0);
    assert_eq!(
        keys(&get(&list_url)["actions"][0]),
        [
            "uuid",
            "state",
            "action_plan_uuid",
            "action_type",
            "parents",
            "links"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    // `Sextant-Extras: false` is the same as no header, byte for byte.
    let off = http(
        "GET",
        &detail_url,
        &[V15, ("sextant-extras", "false")],
        None,
    );
    assert_eq!(off.body, http("GET", &detail_url, &[V15], None).body);
    // Asked for: the version it was made with and what it returned.
    for url in [
        list_url.clone(),
        detail_url.clone(),
        format!("{}/v1/actions/{uuid}", s.url),
    ] {
        let a = http("GET", &url, &[V15, EXTRAS], None);
        assert_eq!(a.status, 200, "{}", a.body);
        let doc = a.json();
        let one = doc.get("actions").map_or(doc.clone(), |l| l[0].clone());
        assert_eq!(one["action_type_version"], "1.2.0", "{url}: {one}");
        assert_eq!(one["outputs"], json!({"said": "bonjour"}), "{url}: {one}");
    }
    let bad = http(
        "GET",
        &detail_url,
        &[V15, ("sextant-extras", "please")],
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.fault().contains("sextant-extras"), "{}", bad.fault());
}

#[test]
fn policies_are_listed_shown_and_validated_without_the_server_s_paths() {
    let h = home_with_cloud();
    let s = h.serve_api();
    let list = get(&format!("{}/v1/policies", s.url));
    let cli = h.run(&["policy", "list", "--format", "json"]).json();
    let names = |v: &Value| -> Vec<Value> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|p| p["name"].clone())
            .collect()
    };
    assert_eq!(names(&list["policies"]), names(&cli));
    let default = list["policies"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["name"] == "default"))
        .expect("default listed")
        .clone();
    assert_eq!(default["valid"], true);
    assert_eq!(default["planner"], "rules");
    assert!(default.get("file").is_none(), "{default}");
    assert!(!list.to_string().contains(".yaml"), "{list}");
    let shown = get(&format!("{}/v1/policies/watcher-compat", s.url));
    assert_eq!(shown["planner"], "weight");
    assert!(shown.get("source").is_none(), "{shown}");
    let cli_show = h
        .run(&["policy", "show", "watcher-compat", "--format", "json"])
        .json();
    let mut cli_show = cli_show;
    cli_show.as_object_mut().expect("object").remove("source");
    assert_eq!(shown, cli_show);
    for missing in ["nope", "..%2F..%2Fetc%2Fpasswd", "default.yaml"] {
        let a = http(
            "GET",
            &format!("{}/v1/policies/{missing}", s.url),
            &[V15],
            None,
        );
        assert_eq!(a.status, 404, "{missing}: {}", a.body);
        assert!(a.fault().contains("could not be found"), "{}", a.fault());
    }
    // Validate: a good policy, then one naming an unknown action type on
    // line 4, and one that is not YAML.
    let url = format!("{}/v1/policies/validate", s.url);
    let good = http(
        "POST",
        &url,
        &[V15],
        Some("name: mine\nplanner: weight\nweights:\n  nop: 10\n"),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(
        good.json(),
        json!({"valid": true, "policy": "mine", "planner": "weight"})
    );
    let bad = http(
        "POST",
        &url,
        &[V15],
        Some("name: mine\nplanner: weight\nweights:\n  migrat: 10\n"),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.fault().starts_with("request body:4:"),
        "{}",
        bad.fault()
    );
    assert!(bad.fault().contains("migrat"), "{}", bad.fault());
    let file = sextant_e2e::write_file(
        &h.path().join("p"),
        "mine.yaml",
        "name: mine\nplanner: weight\nweights:\n  migrat: 10\n",
    );
    let cli = h.run(&["policy", "validate", file.to_str().expect("utf-8")]);
    assert_eq!(cli.status, 2);
    let cli_where = cli
        .stderr
        .trim()
        .replacen(file.to_str().expect("utf-8"), "request body", 1);
    assert_eq!(bad.fault(), cli_where);
    let junk = http("POST", &url, &[V15], Some("name: [unclosed\n"));
    assert_eq!(junk.status, 400, "{}", junk.body);
    assert!(
        junk.fault().starts_with("request body:"),
        "{}",
        junk.fault()
    );
}

#[test]
fn plugins_show_what_is_loaded_and_what_is_rejected_with_why() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    let dir = h.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let foreign = dir.join("libforeign.so");
    std::fs::copy(sextant_e2e::foreign_shared_library(), &foreign).expect("copy");
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    h.write_config(&format!("plugin_dirs: [{}]\n", dir.display()));
    h.seed_small_cloud();
    let s = h.serve_api();
    let api = get(&format!("{}/v1/plugins", s.url));
    let cli = h.run(&["plugins", "list", "--format", "json"]);
    assert_eq!(cli.status, 0, "{}", cli.stderr);
    assert_eq!(api, cli.json());
    let rejected = api["rejected"].as_array().expect("rejected");
    assert!(
        rejected
            .iter()
            .any(|r| r.to_string().contains("libforeign.so")),
        "{api}"
    );
    let strategies = get(&format!("{}/v1/plugins?kind=strategy", s.url));
    let plugins = strategies["plugins"].as_array().expect("plugins");
    assert!(
        plugins.iter().all(|p| p["kind"] == "strategy"),
        "{strategies}"
    );
    assert!(plugins.iter().any(|p| p["name"] == "dummy"), "{strategies}");
    let bad = http(
        "GET",
        &format!("{}/v1/plugins?kind=gizmo", s.url),
        &[V15],
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.fault().contains("gizmo"), "{}", bad.fault());
}

/// One server-sent event: its id, type and data.
#[derive(Debug, PartialEq)]
struct Sent {
    id: i64,
    event: String,
    data: Value,
}

/// Opens `url` as an event stream (with `Last-Event-ID` when given).
fn open_stream(url: &str, last: Option<i64>) -> std::io::BufReader<impl std::io::Read> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut req = agent.get(url).header("accept", "text/event-stream");
    if let Some(id) = last {
        req = req.header("last-event-id", &id.to_string());
    }
    let resp = req.call().expect("an answer");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    std::io::BufReader::new(resp.into_body().into_reader())
}

/// The next event of a stream (comments skipped); `None` at its end.
fn next_event(r: &mut impl BufRead) -> Option<Sent> {
    let (mut id, mut event, mut data) = (None, None, String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if let (Some(id), Some(event)) = (id, event.take()) {
                return Some(Sent {
                    id,
                    event,
                    data: serde_json::from_str(&data).expect("JSON data"),
                });
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
}

#[test]
fn events_are_followed_as_server_sent_events_and_resumed_from_the_last_id() {
    let h = home_with_cloud();
    let mut s = h.serve_api();
    let plan = h.import_json(
        "p.json",
        &json!({"actions": [
            {"id": "a", "action_type": "nop", "input_parameters": {"message": "x"}, "parents": []},
            {"id": "b", "action_type": "nop", "input_parameters": {"message": "y"}, "parents": ["a"]},
        ]}),
    );
    let url = format!("{}/v1/events?action_plan_uuid={plan}", s.url);
    let mut stream = open_stream(&url, None);
    // The history so far, then the run as it happens, to the plan's end.
    start(&s.url, &plan);
    let mut seen = Vec::new();
    loop {
        let e = next_event(&mut stream).expect("the stream goes on");
        let done = e.data["object_type"] == "action_plan" && e.data["new_state"] == "SUCCEEDED";
        seen.push(e);
        if done {
            break;
        }
    }
    let history = h.events(&plan);
    assert_eq!(
        seen.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        history,
        "the stream is the history, in order"
    );
    for e in &seen {
        assert_eq!(json!(e.id), e.data["id"]);
        assert_eq!(json!(e.event), e.data["event_type"]);
    }
    // Reconnecting with Last-Event-ID resumes right after it.
    let cut = seen.len() / 2;
    let mut resumed = open_stream(&url, Some(seen[cut - 1].id));
    for want in &seen[cut..] {
        assert_eq!(next_event(&mut resumed).as_ref(), Some(want));
    }
    let bad = http(
        "GET",
        &url,
        &[V15, ("accept", "text/event-stream"), ("last-event-id", "x")],
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.fault().contains("Last-Event-ID"), "{}", bad.fault());
    // An open stream does not hold serve up: it ends when serve stops.
    assert_eq!(s.stop(), 0, "{}", s.log_text());
    assert_eq!(next_event(&mut resumed), None);
}
