//! `auth: keystone` against the real Keystone of scripts/services/keystone.sh:
//! `sextant serve --api` validates each caller's token with Keystone as its
//! service user and applies Watcher's policy (admin for everything, reader
//! for GETs, service for webhooks) or a policy file over it. One test per
//! refusal (no token, a revoked token, an expired token, a member writing,
//! a rule a policy file changes, Keystone unreachable, a bad policy file):
//! the status, Watcher's error body, the caller in the log and never a
//! token or password, and nothing stored.

use serde_json::{Value, json};
use sextant_e2e::Home;
use sextant_e2e::api::{Answer, Served, free_port, http};
use sextant_e2e::keystone::{Keystone, User};
use std::time::{Duration, Instant};

/// A home whose `serve --api` authenticates with the test Keystone (the
/// service user's password from the environment, as an operator would
/// keep it out of the file), with `extra` lines under `api:`.
fn keystone_home(auth_url: &str, extra: &str) -> Home {
    keystone_home_caching(auth_url, "60s", extra)
}

fn keystone_home_caching(auth_url: &str, cache_time: &str, extra: &str) -> Home {
    let h = Home::new();
    h.seed_small_cloud();
    h.write_config(&format!(
        "api:\n  auth: keystone\n  keystone:\n    auth_url: {auth_url}\n    username: sextant-service\n    project_name: service\n    cache_time: {cache_time}\n{extra}"
    ));
    h
}

fn serve(h: &Home) -> Served {
    let password = Keystone::service().password;
    h.serve_api_with(&[("SEXTANT_KEYSTONE_PASSWORD", &password)])
}

fn call(s: &Served, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut headers = vec![("openstack-api-version", "infra-optim 1.5")];
    if let Some(t) = token {
        headers.push(("x-auth-token", t));
    }
    http(
        method,
        &format!("{}{path}", s.url),
        &headers,
        body.map(|b| b.to_string()).as_deref(),
    )
}

fn template(name: &str) -> Option<Value> {
    Some(json!({"name": name, "goal": "dummy", "strategy": "dummy"}))
}

/// The names of the audit templates stored, read straight from the store
/// (as an admin through the API would; no token can go stale here).
fn stored(h: &Home) -> Vec<String> {
    let db = h.path().join("data/sextant/sextant.db");
    let conn = sextant_e2e::raw_db(&db);
    let mut st = conn
        .prepare("SELECT name FROM audit_templates ORDER BY name")
        .expect("audit_templates table");
    st.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Neither a token nor a password of `users` is in `text`.
fn no_secrets(text: &str, tokens: &[&str], users: &[User]) {
    for t in tokens {
        assert!(!text.contains(t), "a token is in:\n{text}");
    }
    for u in users {
        assert!(
            !text.contains(&u.password),
            "{}'s password is in:\n{text}",
            u.name
        );
    }
}

#[test]
fn admins_do_everything_readers_read_and_members_are_refused_with_watcher_s_body() {
    let k = Keystone::new();
    let h = keystone_home(&k.url, "");
    let s = serve(&h);
    let (admin, _) = k.token(&Keystone::admin());
    let (reader, _) = k.token(&Keystone::reader());
    let (member, body) = k.token(&Keystone::member());
    let member_id = body["token"]["user"]["id"]
        .as_str()
        .expect("user id")
        .to_string();

    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&admin),
        template("t1"),
    );
    assert_eq!(a.status, 201, "{}\n{}", a.body, s.log_text());
    let a = call(&s, "GET", "/v1/audit_templates", Some(&reader), None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["audit_templates"][0]["name"], "t1");
    let a = call(&s, "GET", "/v1/goals/dummy", Some(&member), None);
    assert_eq!(
        a.status, 200,
        "member implies reader in Keystone: {}",
        a.body
    );

    for (who, token) in [("reader", &reader), ("member", &member)] {
        let a = call(
            &s,
            "POST",
            "/v1/audit_templates",
            Some(token),
            template("t2"),
        );
        assert_eq!(a.status, 403, "{who}: {}", a.body);
        assert_eq!(
            a.fault(),
            "Policy doesn't allow audit_template:create to be performed."
        );
        let a = call(&s, "DELETE", "/v1/audit_templates/t1", Some(token), None);
        assert_eq!(a.status, 403, "{who}: {}", a.body);
        assert_eq!(
            a.fault(),
            "Policy doesn't allow audit_template:delete to be performed."
        );
    }
    // The service role reads nothing...
    let (service, _) = k.token(&Keystone::service());
    let a = call(&s, "GET", "/v1/goals", Some(&service), None);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow goal:get_all to be performed."
    );
    // ...but triggers an EVENT audit's webhook, which a reader may not.
    let a = call(
        &s,
        "POST",
        "/v1/audits",
        Some(&admin),
        Some(json!({"audit_type": "EVENT", "goal": "dummy", "strategy": "dummy", "name": "e1"})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let a = call(
        &s,
        "POST",
        "/v1/webhooks/e1",
        Some(&reader),
        Some(json!({})),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow webhook:trigger to be performed."
    );
    let a = call(
        &s,
        "POST",
        "/v1/webhooks/e1",
        Some(&service),
        Some(json!({})),
    );
    assert_eq!(a.status, 202, "{}", a.body);
    // The /v1 document is any authenticated caller's, as Watcher's.
    assert_eq!(call(&s, "GET", "/v1", Some(&service), None).status, 200);
    assert_eq!(call(&s, "GET", "/v1", None, None).status, 401);
    assert_eq!(stored(&h), ["t1"]);

    // The refusal is logged with the caller's user and project, never a
    // token or a password.
    let log = s.log_text();
    assert!(
        log.contains(&format!(
            "for sextant-member (user {member_id}, project sextant/"
        )) && log.contains("policy audit_template:create (403)"),
        "{log}"
    );
    no_secrets(
        &log,
        &[&admin, &reader, &member, &service],
        &[Keystone::admin(), Keystone::service(), Keystone::member()],
    );
}

#[test]
fn no_token_a_bogus_one_and_a_revoked_one_are_401_and_store_nothing() {
    let k = Keystone::new();
    let h = keystone_home(&k.url, "");
    let s = serve(&h);
    let (admin, _) = k.token(&Keystone::admin());
    let (revoked, _) = k.token(&Keystone::admin());
    k.revoke(&revoked);
    for token in [None, Some("gAAAAA-not-a-token"), Some(revoked.as_str())] {
        let a = call(&s, "POST", "/v1/audit_templates", token, template("t1"));
        assert_eq!(a.status, 401, "{token:?}: {}", a.body);
        assert_eq!(
            a.fault(),
            "The request you have made requires authentication."
        );
        let a = call(&s, "GET", "/v1/goals", token, None);
        assert_eq!(a.status, 401, "{token:?}: {}", a.body);
    }
    assert_eq!(stored(&h), Vec::<String>::new());
    // The discovery document needs no token, as Watcher's.
    assert_eq!(call(&s, "GET", "/", None, None).status, 200);

    // A token accepted, then revoked: refused once the cached validation
    // is gone (cache_time 1 s here).
    drop(s);
    let h = keystone_home_caching(&k.url, "1s", "");
    let s = serve(&h);
    let (later, _) = k.token(&Keystone::admin());
    assert_eq!(call(&s, "GET", "/v1/goals", Some(&later), None).status, 200);
    k.revoke(&later);
    std::thread::sleep(Duration::from_millis(1200));
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&later),
        template("t1"),
    );
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(stored(&h), Vec::<String>::new());
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&admin),
        template("t1"),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let log = s.log_text();
    assert!(log.contains("a token Keystone does not accept"), "{log}");
    no_secrets(&log, &[&admin, &revoked, &later], &[Keystone::service()]);
}

#[test]
fn an_expired_token_is_401_even_while_its_validation_is_cached() {
    let k = Keystone::new();
    let ttl = Keystone::token_ttl();
    // Validations are kept 60 s; the token lives `ttl` (20 s): the cache
    // must not outlive it.
    let h = keystone_home(&k.url, "");
    let s = serve(&h);
    let (token, body) = k.token(&Keystone::admin());
    let issued = Instant::now();
    assert!(body["token"]["expires_at"].is_string());
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&token),
        template("t1"),
    );
    assert_eq!(a.status, 201, "{}\n{}", a.body, s.log_text());
    let rest = (ttl + Duration::from_secs(1)).saturating_sub(issued.elapsed());
    std::thread::sleep(rest);
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&token),
        template("t2"),
    );
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(
        a.fault(),
        "The request you have made requires authentication."
    );
    assert_eq!(stored(&h), ["t1"]);
    // Meanwhile serve's own service token expired too, and was renewed
    // before it did: a fresh caller is validated without a refusal.
    let (fresh, _) = k.token(&Keystone::admin());
    let a = call(&s, "GET", "/v1/audit_templates", Some(&fresh), None);
    assert_eq!(a.status, 200, "{}", a.body);
    let log = s.log_text();
    assert!(
        log.matches("authenticated to Keystone as sextant-service")
            .count()
            >= 2,
        "the service token was not renewed:\n{log}"
    );
    assert!(!log.contains("refused the service user's token"), "{log}");
}

#[test]
fn a_policy_file_overrides_rules_for_keystone_callers() {
    let k = Keystone::new();
    let dir = sextant_e2e::scratch();
    let policy = sextant_e2e::write_file(
        dir.path(),
        "policy.yaml",
        "# members may create audit templates; nobody lists goals\n\"audit_template:create\": \"role:member or rule:admin_api\"\n\"goal:get_all\": \"!\"\n",
    );
    let h = keystone_home(&k.url, &format!("  policy_file: {}\n", policy.display()));
    let s = serve(&h);
    let (member, _) = k.token(&Keystone::member());
    let (admin, _) = k.token(&Keystone::admin());
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some(&member),
        template("by-member"),
    );
    assert_eq!(a.status, 201, "{}\n{}", a.body, s.log_text());
    // Only that rule changed: deleting is still the admin's.
    let a = call(
        &s,
        "DELETE",
        "/v1/audit_templates/by-member",
        Some(&member),
        None,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let a = call(&s, "GET", "/v1/goals", Some(&admin), None);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.fault(),
        "Policy doesn't allow goal:get_all to be performed."
    );
    assert_eq!(
        call(&s, "GET", "/v1/goals/dummy", Some(&admin), None).status,
        200
    );
    assert_eq!(stored(&h), ["by-member"]);
}

#[test]
fn a_bad_policy_file_or_no_password_stops_serve_with_status_2_naming_it() {
    let k = Keystone::new();
    let dir = sextant_e2e::scratch();
    let policy = sextant_e2e::write_file(
        dir.path(),
        "policy.yaml",
        "\"audit:create\": \"role:admin or\"\n",
    );
    let h = keystone_home(&k.url, &format!("  policy_file: {}\n", policy.display()));
    let out = sextant_e2e::run(h.cmd().env("SEXTANT_KEYSTONE_PASSWORD", "x").args([
        "serve",
        "--api",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&policy.display().to_string())
            && out.stderr.contains("rule \"audit:create\"")
            && out.stderr.contains("ends too early"),
        "{}",
        out.stderr
    );
    let h = keystone_home(&k.url, "");
    let out = sextant_e2e::run(h.cmd().env_remove("SEXTANT_KEYSTONE_PASSWORD").args([
        "serve",
        "--api",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("SEXTANT_KEYSTONE_PASSWORD"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreachable_keystone_is_503_with_watcher_s_body_and_stores_nothing() {
    let closed = format!("http://127.0.0.1:{}/v3", free_port());
    let h = keystone_home(&closed, "");
    let s = serve(&h);
    let a = call(
        &s,
        "POST",
        "/v1/audit_templates",
        Some("some-token"),
        template("t1"),
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.fault().contains("Keystone"), "{}", a.body);
    assert_eq!(stored(&h), Vec::<String>::new());
    let log = s.log_text();
    assert!(
        log.contains(&closed) && log.contains("unreachable"),
        "{log}"
    );
    no_secrets(&log, &["some-token"], &[Keystone::service()]);
}
