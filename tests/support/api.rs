//! A `sextant serve --api` of a test's own, on a free loopback port, and a
//! small HTTP client for it (ureq, statuses as values).

use super::Home;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sextant serve --api 127.0.0.1:PORT`, stopped (SIGTERM, then
/// waited for) when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its standard error.
    pub log: PathBuf,
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Home {
    /// Writes the config file this home's commands read.
    pub fn write_config(&self, yaml: &str) {
        super::write_file(&self.path().join("config/sextant"), "config.yaml", yaml);
    }

    /// Seeds the simulated cloud with the small example cluster.
    pub fn seed_small_cloud(&self) {
        let small = super::repo_root().join("examples/clusters/small.yaml");
        let out = self.run(&[
            "sim",
            "init",
            "--from",
            small.to_str().expect("utf-8 path"),
            "--time-scale",
            "0",
        ]);
        assert_eq!(out.status, 0, "sim init: {}", out.stderr);
    }

    /// Starts `serve --api 127.0.0.1:PORT` and waits until it answers.
    pub fn serve_api(&self) -> Served {
        self.serve_api_with(&[])
    }

    /// [`Home::serve_api`] with these environment variables.
    pub fn serve_api_with(&self, env: &[(&str, &str)]) -> Served {
        self.serve_api_args(env, &[])
    }

    /// [`Home::serve_api`] with these environment variables and more
    /// arguments to `serve`.
    pub fn serve_api_args(&self, env: &[(&str, &str)], args: &[&str]) -> Served {
        let port = free_port();
        let log = self.path().join(format!("serve-{port}.log"));
        let child = self
            .cmd()
            .envs(env.iter().copied())
            .args(["serve", "--api", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn serve");
        let mut s = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let t = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            if let Some(st) = s.child.try_wait().expect("wait") {
                panic!("serve exited ({st}) before listening:\n{}", s.log_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "serve did not listen within 30 s:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Served {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (20 s at most) for it to exit; its exit
    /// status.
    pub fn stop(&mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "serve did not stop within 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Watcher's error body, decoded twice: the `faultstring`. Panics when
    /// the body is not in that shape.
    pub fn fault(&self) -> String {
        let outer = self.json();
        let inner: Value = serde_json::from_str(
            outer["error_message"]
                .as_str()
                .unwrap_or_else(|| panic!("no error_message string: {}", self.body)),
        )
        .unwrap_or_else(|e| panic!("error_message is not JSON ({e}): {}", self.body));
        assert!(inner["debuginfo"].is_null(), "{inner}");
        assert!(
            inner["faultcode"] == "Client" || inner["faultcode"] == "Server",
            "{inner}"
        );
        inner["faultstring"]
            .as_str()
            .unwrap_or_else(|| panic!("no faultstring: {inner}"))
            .to_string()
    }
}

/// Makes a request: `method` to `url` with `headers` and an optional body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.unwrap_or("").to_string()).expect("a request");
    let mut resp = agent.run(req).expect("an HTTP answer");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// Waits until `f` holds (or panics naming `what`).
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A self-signed certificate for 127.0.0.1 and its key (PEM), made by
/// `openssl` in `dir`: (cert, key).
pub fn self_signed(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
