//! Feeding and asking the test Prometheus (`scripts/services/prometheus.sh`):
//! series pushed through its remote-write receiver, as Watcher's tempest
//! plugin pushes them with `promtool push metrics`, and instant queries.
//!
//! A remote-write body is a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest`; its four messages are written here by hand:
//! `WriteRequest{repeated TimeSeries timeseries = 1}`,
//! `TimeSeries{repeated Label labels = 1; repeated Sample samples = 2}`,
//! `Label{string name = 1; string value = 2}`,
//! `Sample{double value = 1; int64 timestamp = 2}` (milliseconds).

use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One series: its labels (with `__name__`) and `(unix ms, value)` points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Label pairs, `__name__` among them.
    pub labels: Vec<(String, String)>,
    /// Points in time order.
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// A series named `name` with `labels`.
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.push(("__name__".into(), name.into()));
        Self {
            labels: l,
            samples: Vec::new(),
        }
    }

    /// Points every `step` over the last `span` up to now, the value at
    /// each point being `f(seconds since the first point)`.
    pub fn over_last(mut self, span: Duration, step: Duration, f: impl Fn(f64) -> f64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let start = now - span.as_millis() as i64;
        let mut t = start;
        while t <= now {
            self.samples.push((t, f((t - start) as f64 / 1000.0)));
            t += step.as_millis() as i64;
        }
        self
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf `WriteRequest` of `series` (labels sorted by name, as
/// Prometheus requires).
pub fn write_request(series: &[Series]) -> Vec<u8> {
    let mut req = Vec::new();
    for s in series {
        let mut ts = Vec::new();
        let mut labels = s.labels.clone();
        labels.sort();
        for (k, v) in &labels {
            let mut label = Vec::new();
            bytes_field(&mut label, 1, k.as_bytes());
            bytes_field(&mut label, 2, v.as_bytes());
            bytes_field(&mut ts, 1, &label);
        }
        for (t, v) in &s.samples {
            let mut sample = Vec::new();
            varint(&mut sample, 1 << 3 | 1);
            sample.extend_from_slice(&v.to_le_bytes());
            varint(&mut sample, 2 << 3);
            varint(&mut sample, *t as u64);
            bytes_field(&mut ts, 2, &sample);
        }
        bytes_field(&mut req, 1, &ts);
    }
    req
}

/// The secured test Prometheus: TLS with its own CA, basic auth.
pub struct Secured {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA certificate's PEM file.
    pub ca: String,
    /// Basic auth user.
    pub user: String,
    /// Basic auth password.
    pub password: String,
}

impl Secured {
    /// The one `scripts/services/prometheus.sh` started.
    pub fn from_env() -> Self {
        Self {
            url: crate::service_url("SEXTANT_TEST_PROMETHEUS_TLS_URL"),
            ca: crate::service_url("SEXTANT_TEST_PROMETHEUS_TLS_CA"),
            user: crate::service_url("SEXTANT_TEST_PROMETHEUS_TLS_USER"),
            password: crate::service_url("SEXTANT_TEST_PROMETHEUS_TLS_PASSWORD"),
        }
    }
}

/// Pushes `series` to the Prometheus at `url` (remote write), in batches;
/// panics with Prometheus' answer when it refuses them.
pub fn push(url: &str, series: &[Series]) {
    push_to(url, series, None)
}

/// Pushes `series` to the secured Prometheus.
pub fn push_secured(p: &Secured, series: &[Series]) {
    push_to(&p.url, series, Some(p))
}

fn push_to(url: &str, series: &[Series], secured: Option<&Secured>) {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)));
    let mut authorization = None;
    if let Some(p) = secured {
        use ureq::tls::{PemItem, RootCerts, TlsConfig};
        let pem = std::fs::read(&p.ca).expect("CA file");
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build(),
        );
        use base64::Engine;
        authorization = Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", p.user, p.password))
        ));
    }
    let agent: ureq::Agent = config.build().into();
    for chunk in series.chunks(2000) {
        let body = snap::raw::Encoder::new()
            .compress_vec(&write_request(chunk))
            .expect("snappy");
        let mut req = agent.post(format!("{url}/api/v1/write"));
        if let Some(a) = &authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(&body[..])
            .expect("remote write");
        let status = resp.status();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert!(
            status.is_success(),
            "remote write answered {status}: {text}"
        );
    }
}

/// An instant query's `data.result`.
pub fn query(url: &str, promql: &str) -> Vec<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{url}/api/v1/query"))
        .send_form([("query", promql)])
        .expect("query");
    let text = resp.body_mut().read_to_string().expect("answer");
    let v: Value = serde_json::from_str(&text).expect("JSON answer");
    assert_eq!(v["status"], "success", "{promql}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}
