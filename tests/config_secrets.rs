//! The secrets a config file holds never reach the output, whatever the
//! log level: the database's and the simulated cloud's passwords (in the
//! URL's user info and a `password=` parameter), an AMQP sink's and a
//! webhook's URL passwords, Keystone's service password, the metrics
//! source's basic-auth password. Each command runs at trace level
//! (`-vvv`, and `SEXTANT_LOG=trace` for `serve`, which logs every crate:
//! the PostgreSQL and AMQP clients, HTTP) and its output is searched for
//! each one. The database and the simulated cloud are on the test
//! PostgreSQL (trust authentication: the passwords go unused but are
//! sent to the client as given); the AMQP sink's broker is the test
//! RabbitMQ, refusing the password given.

use sextant_e2e::api::{free_port, http};
use sextant_e2e::*;
use std::time::{Duration, Instant};

/// Every secret the config below holds, each a word found nowhere else.
const SECRETS: &[&str] = &[
    "dbpass1x",
    "dbpass2x",
    "simpass1x",
    "simpass2x",
    "amqppassx",
    "hookpassx",
    "kspassx",
    "prompassx",
];

/// A config holding each secret, on real services.
fn config(pg_db: &str, amqp: &str) -> String {
    let with_password = |url: &str, user_pw: &str, param_pw: &str| {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (user, host) = rest.split_once('@').expect("a user in the URL");
        format!("{scheme}://{user}:{user_pw}@{host}?password={param_pw}")
    };
    let amqp_refused = amqp.replacen("guest:guest@", "guest:amqppassx@", 1);
    assert_ne!(
        amqp, amqp_refused,
        "the test RabbitMQ's URL names guest:guest"
    );
    format!(
        "database: '{}'
sim:
  sim_db: '{}'
notifications:
  - {{type: amqp, url: '{amqp_refused}'}}
  - {{type: webhook, url: 'http://hook:hookpassx@127.0.0.1:{}/events', retries: 1, timeout: 1}}
api:
  auth: keystone
  keystone: {{auth_url: 'http://127.0.0.1:{}/v3', username: watcher, password: kspassx, project_name: service}}
metrics: {{source: prometheus, url: 'http://127.0.0.1:{}', username: prom, password: prompassx, retries: 0}}
",
        with_password(pg_db, "dbpass1x", "dbpass2x"),
        with_password(pg_db, "simpass1x", "simpass2x"),
        free_port(),
        free_port(),
        free_port(),
    )
}

/// The forms a secret takes in a log line: as it is, as the decimal
/// bytes a `Debug` of a byte buffer prints (an AMQP login's `response`),
/// and in HTTP basic auth (base64 of `user:password`).
fn forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let bytes: Vec<String> = secret.bytes().map(|b| b.to_string()).collect();
    let mut v = vec![secret.to_string(), bytes.join(", ")];
    for user in ["prom", "hook", "guest", "watcher", "sextant", "sim"] {
        v.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")));
    }
    v
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS.iter().flat_map(|s| forms(s)) {
        assert!(
            !text.contains(&s),
            "{what} shows the secret {s}:\n{}",
            text.lines()
                .filter(|l| l.contains(&s))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn no_command_shows_a_secret_of_the_config_even_at_trace_level() {
    let home = Home::new();
    let db = fresh_pg_database(home.path());
    home.write_config(&config(&db, &service_url("SEXTANT_TEST_AMQP_URL")));
    let cmd = |args: &[&str]| {
        let mut c = home.cmd();
        // The config's database, not the one the harness would pick.
        c.env_remove("SEXTANT_DB").arg("-vvv").args(args);
        run(&mut c)
    };
    let small = repo_root().join("examples/clusters/small.yaml");
    let small = small.to_str().expect("utf-8 path");
    // The passwords reach the clients: the store and the cloud are used.
    let seeded = cmd(&["sim", "init", "--from", small, "--time-scale", "0"]);
    assert_eq!(seeded.status, 0, "{}", seeded.stderr);
    let mut all = vec![("sim init", seeded)];
    all.push(("sim show", cmd(&["sim", "show"])));
    all.push(("goal list", cmd(&["goal", "list"])));
    // An audit reads the metrics source (unreachable): it fails, naming it.
    all.push((
        "audit create",
        cmd(&[
            "audit",
            "create",
            "-g",
            "server_consolidation",
            "-s",
            "basic",
            "--policy",
            "default",
        ]),
    ));
    // A plan applied: its events go to the sinks (the webhook unreachable).
    let plan = write_file(
        &home.path().join("plans"),
        "p.json",
        r#"{"actions": [{"id": "a", "action_type": "nop", "input_parameters": {"message": "m"}}]}"#,
    );
    let imported = cmd(&["action-plan", "import", plan.to_str().expect("utf-8")]);
    assert_eq!(imported.status, 0, "{}", imported.stderr);
    let uuid = imported.stdout.trim().to_string();
    all.push(("action-plan import", imported));
    let applied = cmd(&["action-plan", "start", &uuid, "--wait"]);
    assert_eq!(applied.status, 0, "{}", applied.stderr);
    all.push(("action-plan start", applied));
    all.push(("db migrate", cmd(&["db", "migrate"])));
    let logged: String = all.iter().map(|(_, o)| o.stderr.as_str()).collect();
    assert!(logged.contains("DEBUG"), "nothing logged at -vvv: {logged}");
    for (what, out) in &all {
        assert_no_secret(&format!("`{what}` (stderr)"), &out.stderr);
        assert_no_secret(&format!("`{what}` (stdout)"), &out.stdout);
    }

    // `serve` with every crate's trace: the AMQP sink tries the broker
    // (which refuses the password), the webhook its closed port, and a
    // caller's token is checked with Keystone (unreachable).
    let mut served = home.serve_api_with(&[("SEXTANT_DB", ""), ("SEXTANT_LOG", "trace")]);
    let answer = http(
        "GET",
        &format!("{}/v1/goals", served.url),
        &[("X-Auth-Token", "a-token")],
        None,
    );
    assert_eq!(answer.status, 503, "{}", served.log_text());
    let t = Instant::now();
    while !served.log_text().contains("ACCESS_REFUSED") && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    served.stop();
    let log = served.log_text();
    assert!(log.contains("DEBUG"), "nothing logged at trace: {log}");
    // The sinks tried: the broker refused the login, the webhook's port.
    assert!(
        log.contains("ACCESS_REFUSED") && log.contains("http://hook:***@127.0.0.1:"),
        "{log}"
    );
    assert_no_secret("`serve` (stderr)", &log);
}

/// Whether `line` holds a row of ureq's wire dump at trace (16 bytes as
/// eight groups of four hex digits, `--` for the missing, then as text):
/// the bytes it sends and receives, headers and credentials included.
fn is_wire_dump(line: &str) -> bool {
    let hex = |t: &str| t.len() == 4 && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let tokens: Vec<&str> = line.split_whitespace().collect();
    tokens.windows(8).any(|w| w.iter().all(|t| hex(t)))
}

/// A server on loopback answering every request 503, keeping what it was
/// sent (the request line and headers).
fn refusing_server() -> (u16, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            if let Ok(mut s) = kept.lock() {
                s.push_str(&String::from_utf8_lossy(&head));
            }
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

/// The crates that log through `log` rather than `tracing` (the HTTP
/// client ureq, the PostgreSQL driver tokio-postgres) reach the log: at
/// `-vvv` the statements the store runs and the connections ureq opens
/// are there. Before, nothing of theirs was ever logged. ureq's trace (a
/// dump of every byte it sends, unredacted) is capped at debug like the
/// AMQP client's: the metrics source's basic-auth password went over the
/// wire to a server of the test, and neither it nor any dump of the wire
/// is in the log.
#[test]
fn crates_logging_through_log_are_logged_without_their_wire_dumps_or_secrets() {
    use base64::Engine;
    let home = Home::new();
    let db = fresh_pg_database(home.path());
    let (port, seen) = refusing_server();
    let (scheme, rest) = db.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in the URL");
    home.write_config(&format!(
        "database: '{scheme}://{user}:dbpass1x@{host}'
metrics: {{source: prometheus, url: 'http://127.0.0.1:{port}', username: prom, password: prompassx, retries: 0}}
"
    ));
    let cmd = |args: &[&str]| {
        let mut c = home.cmd();
        c.env_remove("SEXTANT_DB").arg("-vvv").args(args);
        run(&mut c)
    };
    let small = repo_root().join("examples/clusters/small.yaml");
    let seeded = cmd(&[
        "sim",
        "init",
        "--from",
        small.to_str().expect("utf-8 path"),
        "--time-scale",
        "0",
    ]);
    assert_eq!(seeded.status, 0, "{}", seeded.stderr);
    // The audit asks the metrics source (answered 503): it fails.
    let audit = cmd(&[
        "audit",
        "create",
        "-g",
        "server_consolidation",
        "-s",
        "basic",
        "--policy",
        "default",
    ]);
    // The password did go over ureq's wire.
    let sent = seen.lock().expect("requests").to_ascii_lowercase();
    let basic = base64::engine::general_purpose::STANDARD.encode("prom:prompassx");
    assert!(
        sent.contains(&format!(
            "authorization: basic {}",
            basic.to_ascii_lowercase()
        )),
        "the metrics source was not asked with its password: {sent}\n{}",
        audit.stderr
    );
    let logged = format!("{}{}", seeded.stderr, audit.stderr);
    // tokio-postgres's statements and ureq's connection, through `log`.
    assert!(
        logged.contains("executing statement") || logged.contains("executing simple query"),
        "tokio-postgres is not logged: {logged}"
    );
    assert!(
        logged.contains(&format!("Connected TcpStream to 127.0.0.1:{port}")),
        "ureq is not logged: {logged}"
    );
    let dumps: Vec<&str> = logged.lines().filter(|l| is_wire_dump(l)).take(3).collect();
    assert!(dumps.is_empty(), "ureq's wire dump is logged: {dumps:?}");
    assert_no_secret("`sim init` and `audit create` at -vvv (stderr)", &logged);
    assert_no_secret("`audit create` (stdout)", &audit.stdout);
}
