//! Alerts that trigger audits: the harness's real Prometheus evaluates an
//! alerting rule on a series written through its remote-write receiver,
//! the real Alertmanager (`scripts/services/alertmanager.sh`) posts the
//! firing group to `sextant serve`'s receiver (`POST
//! /v1/webhooks/alertmanager`, a bearer token with the `service` role),
//! and the EVENT audit the alert's `sextant_audit` label names runs and
//! makes its plan, with no person in the loop. Alertmanager's resends of
//! the group do not run it again; the resolved alert does not trigger.
//! Then the receiver's refusals, each naming what is at fault with
//! nothing triggered.

use serde_json::{Value, json};
use sextant_e2e::api::{Served, http, wait_for};
use sextant_e2e::prometheus::{Series, push};
use sextant_e2e::{Home, service_url};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const V15: (&str, &str) = ("openstack-api-version", "infra-optim 1.5");
const ADMIN: (&str, &str) = ("x-auth-token", "operator-token-1");
/// The token Alertmanager presents (as `Authorization: Bearer`).
const SERVICE_TOKEN: &str = "alertmanager-token-1";

const CONFIG: &str = "api:
  auth: tokens
  tokens:
    - {name: ops, sha256: 8444a60820a42635bfe112dbaf969c5b719b26b9c0f6d290cd484d6a85398068, roles: [admin]}
    - {name: dashboard, sha256: 8ed7a3cb498a69b97157eb5c685b8831eabdc118fce9a4c75425920ab3ddf6e0, roles: [reader]}
    - {name: alertmanager, sha256: 2644345294cc74c68335c297e8351f5852324238720499acd606a5a1b1304248, roles: [service]}
";

fn served() -> (Home, Served) {
    let h = Home::new();
    h.seed_small_cloud();
    h.write_config(CONFIG);
    let s = h.serve_api();
    (h, s)
}

fn get(url: &str) -> Value {
    let a = http("GET", url, &[V15, ADMIN], None);
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.json()
}

fn create_audit(s: &Served, name: &str, audit_type: &str) -> String {
    let mut body =
        json!({"audit_type": audit_type, "goal": "dummy", "strategy": "dummy", "name": name});
    if audit_type == "CONTINUOUS" {
        body["interval"] = json!("3600");
    }
    let a = http(
        "POST",
        &format!("{}/v1/audits", s.url),
        &[V15, ADMIN],
        Some(&body.to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    a.json()["uuid"].as_str().expect("uuid").to_string()
}

fn plans_of(s: &Served, audit: &str) -> Vec<Value> {
    get(&format!("{}/v1/action_plans?audit_uuid={audit}", s.url))["action_plans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Writes Alertmanager's config (the alerts of this run go to `serve`'s
/// receiver, grouped by audit) and makes it read it.
fn route_alerts_to(s: &Served, run: &str) {
    let am = service_url("SEXTANT_TEST_ALERTMANAGER_URL");
    let file = service_url("SEXTANT_TEST_ALERTMANAGER_CONFIG");
    let config = format!(
        r#"route:
  receiver: nowhere
  routes:
    - receiver: sextant
      matchers: ['run="{run}"']
      group_by: [alertname, sextant_audit]
      group_wait: 1s
      group_interval: 1s
      repeat_interval: 2s
receivers:
  - name: nowhere
  - name: sextant
    webhook_configs:
      - url: "{url}/v1/webhooks/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: "{SERVICE_TOKEN}"
"#,
        url = s.url
    );
    std::fs::write(&file, config).expect("write alertmanager config");
    let r = http("POST", &format!("{am}/-/reload"), &[], None);
    assert_eq!(r.status, 200, "alertmanager reload: {}", r.body);
}

#[test]
fn a_firing_alert_runs_its_event_audit_once_and_the_resolved_one_does_not() {
    let prom = service_url("SEXTANT_TEST_PROMETHEUS_URL");
    let (_h, s) = served();
    let audit = create_audit(&s, "overload", "EVENT");
    let run = format!("am-{}-{}", std::process::id(), now_ms());
    route_alerts_to(&s, &run);

    // The series the alerting rule watches (`sextant_test_load > 0.9`),
    // over the threshold now.
    let labels = [
        ("sextant_audit", audit.as_str()),
        ("run", run.as_str()),
        ("host", "compute-1"),
    ];
    let hot = Series::new("sextant_test_load", &labels).over_last(
        Duration::from_secs(3),
        Duration::from_secs(1),
        |_| 0.97,
    );
    push(&prom, &[hot]);

    wait_for(
        "the alert to trigger the audit and its plan to appear",
        Duration::from_secs(45),
        || !plans_of(&s, &audit).is_empty(),
    );
    wait_for("the audit to succeed", Duration::from_secs(30), || {
        get(&format!("{}/v1/audits/{audit}", s.url))["state"] == "SUCCEEDED"
    });
    let log = s.log_text();
    assert!(
        log.contains(&format!("triggers EVENT audit {audit}")),
        "{log}"
    );
    // Alertmanager's group of Prometheus' rule posted it.
    assert!(log.contains(r#"alertname="SextantTestOverload""#), "{log}");

    // Alertmanager resends the unchanged group every repeat_interval (2 s):
    // received, and not run again.
    wait_for(
        "a resend of the group to be received and skipped",
        Duration::from_secs(20),
        || {
            s.log_text().contains(&format!(
                "does not trigger audit {audit}: these alerts already triggered it"
            ))
        },
    );
    assert_eq!(plans_of(&s, &audit).len(), 1);

    // Below the threshold: the alert resolves, Alertmanager says so, and
    // nothing runs.
    let mut cool = Series::new("sextant_test_load", &labels);
    cool.samples.push((now_ms(), 0.1));
    push(&prom, &[cool]);
    wait_for(
        "the resolved group to be received",
        Duration::from_secs(30),
        || s.log_text().contains("(resolved)"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(plans_of(&s, &audit).len(), 1, "{}", s.log_text());
    assert_eq!(
        get(&format!("{}/v1/audits/{audit}", s.url))["state"],
        "SUCCEEDED"
    );
}

/// A version 4 payload of one group with `alerts`.
fn payload(group: &str, alerts: Value) -> String {
    json!({"receiver": "sextant", "status": "firing", "version": "4", "groupKey": group,
           "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://127.0.0.1:9093", "alerts": alerts})
    .to_string()
}

fn firing(audit: &str, fingerprint: &str) -> Value {
    json!({"status": "firing", "labels": {"alertname": "Hot", "sextant_audit": audit},
           "annotations": {}, "startsAt": "2026-12-06T08:00:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint})
}

#[test]
fn the_receiver_refuses_what_it_cannot_act_on_naming_it_and_triggers_nothing() {
    let (_h, s) = served();
    let event = create_audit(&s, "ev", "EVENT");
    let continuous = create_audit(&s, "cont", "CONTINUOUS");
    let url = format!("{}/v1/webhooks/alertmanager", s.url);
    let bearer = format!("Bearer {SERVICE_TOKEN}");
    let service = [("authorization", bearer.as_str())];
    let good = payload("g1", json!([firing("ev", "f1")]));

    // No token: 401, as every webhook.
    let a = http("POST", &url, &[], Some(&good));
    assert_eq!(a.status, 401, "{}", a.body);
    // A reader's token: refused by the policy.
    let a = http(
        "POST",
        &url,
        &[("authorization", "Bearer reader-token-1")],
        Some(&good),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow webhook:trigger to be performed."
    );

    // Not Alertmanager's payload: the field named.
    let a = http(
        "POST",
        &url,
        &service,
        Some(r#"{"version": "4", "status": "firing", "alerts": []}"#),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.fault().contains("groupKey"), "{}", a.fault());
    let a = http(
        "POST",
        &url,
        &service,
        Some(&good.replace(r#""version":"4""#, r#""version":"3""#)),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.fault().contains("version \"3\""), "{}", a.fault());

    // An audit that does not exist, next to one that does: 404 naming it
    // and the alert, and the existing one is not triggered either.
    let a = http(
        "POST",
        &url,
        &service,
        Some(&payload(
            "g2",
            json!([firing("ev", "f1"), firing("nope", "f9")]),
        )),
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Audit nope could not be found (label sextant_audit of alert f9)"
    );
    // A CONTINUOUS audit is not triggered by alerts.
    let a = http(
        "POST",
        &url,
        &service,
        Some(&payload("g3", json!([firing(&continuous, "f3")]))),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.fault().contains("only EVENT audits"), "{}", a.fault());
    assert!(a.fault().contains(&continuous), "{}", a.fault());
    std::thread::sleep(Duration::from_millis(500));
    assert!(plans_of(&s, &event).is_empty());
    assert_eq!(
        get(&format!("{}/v1/audits/{event}", s.url))["state"],
        "PENDING"
    );

    // Resolved alerts and alerts without the label trigger nothing.
    let mut resolved = firing("ev", "f4");
    resolved["status"] = json!("resolved");
    let unlabelled = json!({"status": "firing", "labels": {"alertname": "Other"},
        "annotations": {}, "startsAt": "2026-12-06T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "", "fingerprint": "f5"});
    let a = http(
        "POST",
        &url,
        &service,
        Some(&payload("g4", json!([resolved, unlabelled]))),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["triggered"], json!([]));
    assert_eq!(a.json()["ignored"], 2);

    // The good one: triggered once; the same group again is skipped.
    let a = http("POST", &url, &service, Some(&good));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["triggered"], json!([event]));
    wait_for("the audit to run", Duration::from_secs(30), || {
        get(&format!("{}/v1/audits/{event}", s.url))["state"] == "SUCCEEDED"
    });
    let a = http("POST", &url, &service, Some(&good));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["triggered"], json!([]));
    assert_eq!(a.json()["skipped"][0]["audit"], event);
    assert_eq!(plans_of(&s, &event).len(), 1);
}

/// The ids of the audits an answer of the receiver says it triggered.
fn triggered(a: &sextant_e2e::api::Answer) -> Vec<Value> {
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["triggered"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_restarted_serve_does_not_run_the_audit_again_for_an_alert_still_firing() {
    let (h, mut s) = served();
    let event = create_audit(&s, "ev", "EVENT");
    let bearer = format!("Bearer {SERVICE_TOKEN}");
    let service = [("authorization", bearer.as_str())];
    let good = payload("g1", json!([firing("ev", "f1")]));
    let url = format!("{}/v1/webhooks/alertmanager", s.url);
    assert_eq!(
        triggered(&http("POST", &url, &service, Some(&good))),
        [json!(event)]
    );
    wait_for("the audit to run", Duration::from_secs(30), || {
        get(&format!("{}/v1/audits/{event}", s.url))["state"] == "SUCCEEDED"
    });
    assert_eq!(s.stop(), 0, "{}", s.log_text());

    // A new serve on the same database gets Alertmanager's resend of the
    // group: skipped, the audit has one plan.
    let s = h.serve_api();
    let url = format!("{}/v1/webhooks/alertmanager", s.url);
    let a = http("POST", &url, &service, Some(&good));
    assert_eq!(triggered(&a), Vec::<Value>::new());
    assert_eq!(a.json()["skipped"][0]["audit"], event);
    assert!(
        a.json()["skipped"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already triggered")),
        "{}",
        a.body
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(plans_of(&s, &event).len(), 1, "{}", s.log_text());
    // The same alert firing again after it resolved (a new start) runs it.
    let mut refired = firing("ev", "f1");
    refired["startsAt"] = json!("2026-12-06T09:00:00Z");
    let again = payload("g1", json!([refired]));
    assert_eq!(
        triggered(&http("POST", &url, &service, Some(&again))),
        [json!(event)]
    );
    wait_for("the second plan", Duration::from_secs(30), || {
        plans_of(&s, &event).len() == 2
    });
}

/// Two `serve` hosts on one PostgreSQL database (whatever backend the
/// other tests use) each get every alert, as from two Alertmanagers of one
/// cluster: at the same moment, over several rounds, exactly one of them
/// runs the audit each time.
#[test]
fn postgres_two_serve_hosts_receiving_the_same_alert_at_once_run_the_audit_once() {
    let h = Home::new();
    h.seed_small_cloud();
    h.write_config(CONFIG);
    let db = sextant_e2e::fresh_pg_database(h.path());
    let hosts: Vec<Served> = ["am-host-1", "am-host-2"]
        .into_iter()
        .map(|id| h.serve_api_with(&[("SEXTANT_DB", db.as_str()), ("SEXTANT_HOST_ID", id)]))
        .collect();
    let event = create_audit(&hosts[0], "ev", "EVENT");
    let rounds = 4;
    for round in 0..rounds {
        let mut alert = firing("ev", "f1");
        alert["startsAt"] = json!(format!("2026-12-06T0{round}:00:00Z"));
        let body = payload("g1", json!([alert]));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(hosts.len()));
        let answers: Vec<_> = hosts
            .iter()
            .map(|s| {
                let (url, body, barrier) = (
                    format!("{}/v1/webhooks/alertmanager", s.url),
                    body.clone(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    let bearer = format!("Bearer {SERVICE_TOKEN}");
                    barrier.wait();
                    http(
                        "POST",
                        &url,
                        &[("authorization", bearer.as_str())],
                        Some(&body),
                    )
                })
            })
            .collect();
        let won: usize = answers
            .into_iter()
            .map(|t| triggered(&t.join().expect("a poster")).len())
            .sum();
        assert_eq!(won, 1, "round {round}: one host runs the audit");
        wait_for(
            &format!("round {round}'s plan"),
            Duration::from_secs(60),
            || plans_of(&hosts[0], &event).len() == round + 1,
        );
        wait_for("the audit to end", Duration::from_secs(30), || {
            get(&format!("{}/v1/audits/{event}", hosts[1].url))["state"] == "SUCCEEDED"
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(plans_of(&hosts[1], &event).len(), rounds);
    let runs: Vec<String> = hosts.iter().map(Served::log_text).collect();
    let total: usize = runs
        .iter()
        .map(|l| l.matches(&format!("triggers EVENT audit {event}")).count())
        .sum();
    assert_eq!(total, rounds, "{runs:?}");
}
