//! The built-in `command`, `http` and `sleep` handlers against the defects
//! of issue 20 (items 3, 4, 5 and 10), through the built binary with real
//! processes and real servers on 127.0.0.1: durations past their bound are
//! clear errors, not panics; a command's whole process group is killed on
//! timeout, cancel and exit; outputs are bounded; a redirect to another
//! origin is refused, or followed without the configured headers.

use serde_json::json;
use sextant_e2e::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What this file adds to the shared [`Home`].
trait HomeExt {
    fn add_type(&self, file: &str, yaml: &str);
    fn run_type(&self, name: &str, params: &[String]) -> Run;
}

impl HomeExt for Home {
    fn add_type(&self, file: &str, yaml: &str) {
        write_file(&self.types, file, yaml);
    }
    /// `action-type run NAME -p …` with JSON output.
    fn run_type(&self, name: &str, params: &[String]) -> Run {
        let mut c = self.cmd();
        c.args(["action-type", "run", name, "--format", "json"]);
        for p in params {
            c.args(["-p", p]);
        }
        run(&mut c)
    }
}

fn status_message(out: &Run) -> String {
    out.json()["status_message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    live_processes(|fields| fields.get(2).and_then(|g| g.parse().ok()) == Some(pgid))
}

/// The live (not zombie) processes whose `/proc/PID/stat` fields after the
/// command name (state ppid pgrp …) satisfy `pick`.
fn live_processes(pick: impl Fn(&[&str]) -> bool) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp …; comm may hold spaces and ')'.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.first().is_some_and(|s| *s != "Z") && pick(&fields)
        })
        .collect()
}

/// The live processes whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    live_processes(|fields| fields.get(1).and_then(|p| p.parse().ok()) == Some(pid))
}

fn assert_group_gone(pgid: i32) {
    let t = Instant::now();
    while !group_members(pgid).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "processes of group {pgid} survived the action: {:?}",
            group_members(pgid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid a command's shell wrote (`echo $$ > FILE`): the leader of the
/// command's process group, so the group's id.
fn read_pgid(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// A command type running `script` under `sh -c`, with `$1` the `pidfile`
/// parameter.
fn shell_type(name: &str, script: &str, extra_with: &str) -> String {
    format!(
        r#"
name: {name}
version: 1.0.0
handler: command
abortable: true
with:
  argv: ["/bin/sh", "-c", {script:?}, "sh", "{{{{ pidfile }}}}"]
{extra_with}
parameters:
  type: object
  required: [pidfile]
  properties:
    pidfile: {{type: string}}
"#
    )
}

#[test]
fn command_timeout_kills_the_grandchildren_holding_its_pipes() {
    let home = Home::new();
    home.add_type(
        "hang.yaml",
        &shell_type(
            "hang",
            "echo $$ > \"$1\"; sleep 60; echo x",
            "  timeout: 2s",
        ),
    );
    let pidfile = home.path().join("hang.pid");
    let t = Instant::now();
    let out = home.run_type("hang", &[format!("pidfile={}", pidfile.display())]);
    let took = t.elapsed();
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["state"], "FAILED");
    let msg = status_message(&out);
    assert!(
        msg.contains("timed out after 2s") && msg.contains("process group was killed"),
        "{msg}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the action lasted {took:?}: the grandchild held it"
    );
    assert_group_gone(read_pgid(&pidfile));
}

#[test]
fn a_background_process_holding_stdout_does_not_hold_the_action() {
    let home = Home::new();
    home.add_type(
        "bg.yaml",
        &shell_type(
            "bg",
            "echo $$ > \"$1\"; sleep 30 & echo started",
            "  timeout: 20s",
        ),
    );
    let pidfile = home.path().join("bg.pid");
    let t = Instant::now();
    let out = home.run_type("bg", &[format!("pidfile={}", pidfile.display())]);
    let took = t.elapsed();
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["state"], "SUCCEEDED");
    assert_eq!(doc["outputs"]["stdout"], "started\n");
    assert!(
        took < Duration::from_secs(15),
        "the action lasted {took:?}: it waited for the background sleep"
    );
    // What the program left running in its group went with it.
    assert_group_gone(read_pgid(&pidfile));
}

#[test]
fn cancel_of_a_running_command_kills_its_process_group() {
    let home = Home::new();
    home.add_type(
        "long.yaml",
        &shell_type(
            "long",
            "echo $$ > \"$1\"; sleep 60; echo x",
            "  timeout: 300s",
        ),
    );
    let pidfile = home.path().join("long.pid");
    let plan_file = write_file(
        &home.path().join("plans"),
        "plan.json",
        &json!({"actions": [{"id": "c", "action_type": "long",
            "input_parameters": {"pidfile": pidfile}}]})
        .to_string(),
    );
    let out = run(home.cmd().args(["action-plan", "import"]).arg(&plan_file));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan = out.stdout.trim().to_string();
    let mut applier = home
        .cmd()
        .args(["action-plan", "start", &plan, "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the command to start", Duration::from_secs(30), || {
        pidfile.exists() && std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pgid = read_pgid(&pidfile);
    let mut sleeps = Vec::new();
    wait_for("the shell to start sleep", Duration::from_secs(10), || {
        sleeps = children_of(pgid);
        !sleeps.is_empty()
    });
    let t = Instant::now();
    let out = home.run(&["action-plan", "cancel", &plan]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let status = applier.wait().expect("applier");
    // `start --wait` exits 0 only for a SUCCEEDED plan (issue 19.8).
    assert_eq!(status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "cancel took {:?}",
        t.elapsed()
    );
    let actions = home.actions(&plan);
    assert_eq!(actions[0]["state"], "CANCELLED", "{actions:?}");
    assert_group_gone(pgid);
    // The shell's child (the `sleep 60`) went too, not only the shell.
    wait_for("the command's sleep to die", Duration::from_secs(3), || {
        let alive = live_processes(|_| true);
        sleeps.iter().all(|p| !alive.contains(p))
    });
}

/// Runs `cmd` to its end while sampling its resident memory; returns what
/// it printed and the most memory (in kB) seen.
fn run_sampling_rss(cmd: &mut Command) -> (Run, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (
        Run {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
        },
        peak,
    )
}

#[test]
fn unbounded_command_output_fails_at_max_output_with_bounded_memory() {
    let home = Home::new();
    home.add_type(
        "yes.yaml",
        "name: flood\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [yes]\n  timeout: 60s\n  max_output: 65536\n",
    );
    let t = Instant::now();
    let (out, peak_kb) =
        run_sampling_rss(
            home.cmd()
                .args(["action-type", "run", "flood", "--format", "json"]),
        );
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["state"], "FAILED");
    let msg = status_message(&out);
    assert!(
        msg.contains("\"yes\" wrote more than max_output (65536 bytes) to stdout"),
        "{msg}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stopped at the bound, not at the timeout"
    );
    assert!(peak_kb < 200_000, "sextant grew to {peak_kb} kB");

    // A max_output out of its range is refused, naming it.
    home.add_type(
        "huge.yaml",
        "name: huge_out\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"true\"]\n  max_output: 1000000000000\n",
    );
    let out = home.run_type("huge_out", &[]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let msg = status_message(&out);
    assert!(
        msg.contains("max_output") && msg.contains("1 to 1048576 (1 MiB)"),
        "{msg}"
    );
}

#[test]
fn huge_durations_are_clear_errors_not_panics() {
    let home = Home::new();
    // The shipped sleep type bounds its parameter: bad input, exit 2.
    let out = home.run_type("sleep", &["duration=1e300".into()]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("duration"), "{}", out.stderr);

    // A type that does not bound it reaches the handler, which refuses it.
    home.add_type(
        "long_sleep.yaml",
        "name: long_sleep\nversion: 1.0.0\nhandler: sleep\nparameters:\n  type: object\n  properties:\n    duration: {type: number}\n",
    );
    home.add_type(
        "long_cmd.yaml",
        "name: long_cmd\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"true\"]\n  timeout: 1e300\n",
    );
    home.add_type(
        "long_http.yaml",
        "name: long_http\nversion: 1.0.0\nhandler: http\nwith:\n  url: http://127.0.0.1:9/\n  timeout: \"{{ t }}\"\nparameters:\n  type: object\n  properties:\n    t: {type: [string, number]}\n",
    );
    for (name, param, field) in [
        ("long_sleep", "duration=1e300", "duration"),
        ("long_sleep", "duration=604801", "duration"),
        ("long_cmd", "", "timeout"),
        ("long_http", "t=1e300", "timeout"),
        ("long_http", "t=1000years", "timeout"),
    ] {
        let params: Vec<String> = if param.is_empty() {
            vec![]
        } else {
            vec![param.into()]
        };
        let out = home.run_type(name, &params);
        assert_eq!(out.status, 1, "{name}: {}{}", out.stdout, out.stderr);
        let msg = status_message(&out);
        assert!(
            msg.contains(field) && msg.contains("at most 604800s") && !msg.contains("PANICKED"),
            "{name} {param}: {msg}"
        );
        assert!(
            !out.stdout.contains("PANICKED") && !out.stderr.contains("PANICKED"),
            "{name}: {}{}",
            out.stdout,
            out.stderr
        );
    }
}

/// One request as a test server saw it.
#[derive(Clone, Debug)]
struct Seen {
    request_line: String,
    /// Header lines, lower-cased names.
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 answering with `answer(request)` (a whole HTTP
/// response) until stopped; it records every request.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(answer: impl Fn(&Seen) -> String + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(s.try_clone().expect("clone"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                        if k == "content-length" {
                            len = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let req = Seen {
                    request_line: request_line.trim().to_string(),
                    headers,
                };
                let response = answer(&req);
                seen2.lock().expect("lock").push(req);
                let _ = s.write_all(response.as_bytes());
            }
        });
        Self {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The target server: echoes the path and the token it was sent.
fn echo_server() -> Server {
    Server::start(|req| {
        let path = req.request_line.split_whitespace().nth(1).unwrap_or("/");
        let echo = json!({"path": path, "token": req.header("x-token")});
        respond("200 OK", "", &echo.to_string())
    })
}

/// A server that redirects `/go` (with `status`) to `target` + `/landed`.
fn redirecting_server(status: &'static str, target: String) -> Server {
    Server::start(move |_| respond(status, &format!("location: {target}/landed\r\n"), ""))
}

fn http_type(name: &str, url: &str, extra_with: &str) -> String {
    format!(
        "name: {name}\nversion: 1.0.0\nhandler: http\nwith:\n  method: POST\n  url: \"{url}\"\n  headers: {{x-token: \"{{{{ token }}}}\"}}\n  body: '{{\"a\": 1}}'\n  timeout: 10s\n{extra_with}parameters:\n  type: object\n  required: [token]\n  properties:\n    token: {{type: string}}\n"
    )
}

#[test]
fn credentials_do_not_leak_on_a_redirect_to_another_origin() {
    let home = Home::new();
    let target = echo_server();
    let other = redirecting_server("302 Found", target.origin());
    let url = format!("{}/go", other.origin());
    home.add_type("refused.yaml", &http_type("refused", &url, ""));
    home.add_type(
        "allowed.yaml",
        &http_type("allowed", &url, "  allow_cross_origin_redirects: true\n"),
    );

    let out = home.run_type("refused", &["token=s3cret".into()]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["state"], "FAILED");
    let msg = status_message(&out);
    assert!(
        msg.contains("another origin") && msg.contains(&target.origin()),
        "{msg}"
    );
    assert!(
        msg.contains("allow_cross_origin_redirects"),
        "names the setting: {msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(target.seen().is_empty(), "{:?}", target.seen());
    assert_eq!(other.seen().len(), 1);
    assert_eq!(other.seen()[0].header("x-token"), Some("s3cret"));

    // Allowed: followed, without the configured headers (302 after a POST
    // becomes a GET).
    let out = home.run_type("allowed", &["token=s3cret".into()]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["outputs"]["path"], "/landed");
    let seen = target.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].request_line.starts_with("GET /landed "), "{seen:?}");
    assert_eq!(seen[0].header("x-token"), None, "{seen:?}");
    assert!(
        seen[0].headers.iter().all(|(_, v)| !v.contains("s3cret")),
        "{seen:?}"
    );
}

#[test]
fn a_same_origin_redirect_keeps_the_configured_headers() {
    let home = Home::new();
    // One server: `/go` redirects (307) to `/landed` on itself, which echoes.
    let server = Server::start(|req| {
        let path = req.request_line.split_whitespace().nth(1).unwrap_or("/");
        if path == "/go" {
            respond("307 Temporary Redirect", "location: /landed\r\n", "")
        } else {
            let echo = json!({"path": path, "token": req.header("x-token"),
                "line": req.request_line});
            respond("200 OK", "", &echo.to_string())
        }
    });
    let url = format!("{}/go", server.origin());
    home.add_type("same.yaml", &http_type("same", &url, ""));
    let out = home.run_type("same", &["token=s3cret".into()]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let outputs = &out.json()["outputs"];
    assert_eq!(outputs["path"], "/landed");
    assert_eq!(outputs["token"], "s3cret");
    assert!(
        outputs["line"].as_str().unwrap_or("").starts_with("POST "),
        "307 repeats the method: {outputs}"
    );
}

#[test]
fn an_http_response_body_past_max_output_fails_the_action() {
    let home = Home::new();
    let big = "x".repeat(200_000);
    let server = Server::start(move |_| respond("200 OK", "", &big));
    let url = format!("{}/big", server.origin());
    home.add_type("big.yaml", &http_type("big", &url, "  max_output: 1000\n"));
    let out = home.run_type("big", &["token=t".into()]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let msg = status_message(&out);
    assert!(
        msg.contains("answered 200 with a body larger than max_output (1000 bytes)"),
        "{msg}"
    );
}
