//! The Prometheus metrics source: Watcher's queries
//! (`prometheus_base.py`, `_build_prometheus_query`), batched.
//!
//! Watcher asks one instant query per host (or instance) and metric. Here
//! one query per metric covers every host (or instance) of the model: the
//! label matcher `fqdn='<host>'` becomes `fqdn=~'<host1>|<host2>|…'` (or
//! `fqdn!=''` for more than [`MAX_LISTED`] names, the answer being filtered
//! here), and the aggregation keeps Watcher's `by (fqdn)` / `by (resource)`.
//! The one per-instance part of Watcher's `instance_cpu_usage` query,
//! `* (100/<vcpus>)` capped at 100, is applied to each answer here
//! ([`cpu_percent`]), which computes the same number.
//!
//! Units: `host_cpu_usage` and `instance_cpu_usage` in percent,
//! `instance_ram_usage` in MB (as Ceilometer reports it). Watcher's
//! `host_ram_usage` query answers KiB, which Watcher's strategies divide by
//! 1024; the model holds MB, so the answer is divided here instead.
//! Series come from node_exporter (`node_cpu_seconds_total`,
//! `node_memory_MemTotal_bytes`, `node_memory_MemAvailable_bytes`, with a
//! static `fqdn` label equal to the hypervisor hostname) and Ceilometer's
//! Prometheus metrics (`ceilometer_cpu` in ns, `ceilometer_memory_usage` in
//! MB, labelled `resource=<instance uuid>`).

use super::{SourceError, Values, Window};
use crate::config::{MetricsConfig, SourceKind};
use serde_json::Value;
use std::time::Duration;

/// Above this many hosts (or instances), a query selects every series with
/// the label instead of listing the names, and the answer is filtered.
pub const MAX_LISTED: usize = 500;

/// The largest answer read (a 100,000-instance cloud answers ~15 MB).
const MAX_ANSWER: u64 = 256 * 1024 * 1024;

/// How one query attempt failed.
enum Attempt {
    /// Worth trying again (unreachable, timeout, 5xx, 429).
    Retry(String),
    /// Not (credentials refused, a bad query).
    Fail(String),
}

/// A configured Prometheus.
pub struct Client {
    agent: ureq::Agent,
    retries: u32,
    retry_interval: Duration,
    base: String,
    authorization: Option<String>,
    fqdn_label: String,
    uuid_label: String,
}

/// `s` as a PromQL single-quoted string's content.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// `s` as a literal inside a regular expression.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The matcher that selects `names` by `label`: Watcher's `label='name'`
/// for one, a regular expression for a few, any value for many.
pub fn selector(label: &str, names: &[&str]) -> String {
    match names {
        [one] => format!("{label}='{}'", quoted(one)),
        _ if names.is_empty() || names.len() > MAX_LISTED => format!("{label}!=''"),
        _ => {
            let alternatives: Vec<String> = names.iter().map(|n| regex_literal(n)).collect();
            format!("{label}=~'{}'", quoted(&alternatives.join("|")))
        }
    }
}

/// The matcher that selects `hosts` by `label`, their short names also
/// matching a fully qualified label value (`compute-1` matches
/// `compute-1.example.com`, as Watcher's short name → fqdn map of its
/// scrape targets resolves it); any value for many.
pub fn host_selector(label: &str, hosts: &[&str]) -> String {
    if hosts.is_empty() || hosts.len() > MAX_LISTED {
        return format!("{label}!=''");
    }
    let alternatives: Vec<String> = hosts.iter().map(|n| regex_literal(n)).collect();
    format!(
        "{label}=~'{}'",
        quoted(&format!("(?:{})(?:\\..+)?", alternatives.join("|")))
    )
}

/// The answer's values by the model's hostnames: a label value that is a
/// hostname counts as it is; else its short name (before the first dot)
/// names the host, unless the host has a value of its own.
pub fn by_hostname(answer: Values, hosts: &[&str]) -> Values {
    let known: std::collections::HashSet<&str> = hosts.iter().copied().collect();
    let mut out = Values::with_capacity(answer.len());
    let mut by_short = Vec::new();
    for (label, value) in answer {
        if known.contains(label.as_str()) {
            out.insert(label, value);
        } else if let Some((short, _)) = label.split_once('.')
            && known.contains(short)
        {
            by_short.push((short.to_string(), value));
        }
    }
    for (short, value) in by_short {
        out.entry(short).or_insert(value);
    }
    out
}

/// Watcher's query for a host metric, with `sel` as the host matcher.
pub fn host_query(metric: &str, label: &str, sel: &str, w: Window) -> Option<String> {
    let agg = w.aggregate.inverted().promql();
    let p = w.period.as_secs().max(1);
    match metric {
        super::HOST_CPU => Some(format!(
            "100 - ({agg} by ({label})(rate(node_cpu_seconds_total{{mode='idle',{sel}}}[{p}s])) * 100)"
        )),
        super::HOST_RAM => Some(format!(
            "(node_memory_MemTotal_bytes{{{sel}}} - {agg}_over_time(node_memory_MemAvailable_bytes{{{sel}}}[{p}s])) / 1024"
        )),
        _ => None,
    }
}

/// Watcher's query for an instance metric, with `sel` as the instance
/// matcher; for `instance_cpu_usage`, without the per-instance
/// `* (100/<vcpus>)` and cap ([`cpu_percent`]).
pub fn instance_query(metric: &str, label: &str, sel: &str, w: Window) -> Option<String> {
    let agg = w.aggregate.promql();
    let p = w.period.as_secs().max(1);
    match metric {
        super::INSTANCE_CPU => Some(format!(
            "{agg} by ({label})(rate(ceilometer_cpu{{{sel}}}[{p}s]))/10e+8"
        )),
        super::INSTANCE_RAM => Some(format!(
            "{agg}_over_time(ceilometer_memory_usage{{{sel}}}[{p}s])"
        )),
        _ => None,
    }
}

/// The rest of Watcher's `instance_cpu_usage` query for one instance:
/// `clamp_max(rate * (100/vcpus), 100)`, with 0 vcpus taken as 1.
pub fn cpu_percent(cores: f64, vcpus: u64) -> f64 {
    (cores * (100.0 / vcpus.max(1) as f64)).min(100.0)
}

/// The values of an instant query's answer by `label`; the first series of
/// a label value counts, as Watcher uses `result[0]`.
pub fn parse_answer(body: &str, label: &str) -> Result<Values, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "the query failed: {} {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("(no message)")
        ));
    }
    let Some(result) = v["data"]["result"].as_array() else {
        return Err("the answer has no data.result list".into());
    };
    let mut out = Values::with_capacity(result.len());
    for series in result {
        let (Some(name), Some(value)) = (
            series["metric"][label].as_str(),
            series["value"][1].as_str(),
        ) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        out.entry(name.to_string()).or_insert(value);
    }
    Ok(out)
}

fn pem_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn tls_config(cfg: &MetricsConfig) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
    let mut b = TlsConfig::builder();
    if let Some(ca) = &cfg.ca_file {
        let pem = pem_file(ca, "ca_file")?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!(
                "ca_file {}: no PEM certificate in it",
                ca.display()
            ));
        }
        b = b.root_certs(RootCerts::new_with_certs(&certs));
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            let pem = pem_file(cert, "cert_file")?;
            let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if chain.is_empty() {
                return Err(format!(
                    "cert_file {}: no PEM certificate in it",
                    cert.display()
                ));
            }
            let key_pem = pem_file(key, "key_file")?;
            let key = PrivateKey::from_pem(&key_pem)
                .map_err(|e| format!("key_file {}: {e}", key.display()))?;
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => return Err("cert_file and key_file go together".into()),
    }
    Ok(b.build())
}

impl Client {
    /// A client for the configured Prometheus.
    pub fn new(cfg: &MetricsConfig, kind: &SourceKind) -> Result<Self, SourceError> {
        let url = cfg.url.clone().unwrap_or_default();
        let fail = |why: String| SourceError::Query {
            url: url.clone(),
            why,
        };
        let SourceKind::Prometheus = kind;
        let tls = tls_config(cfg).map_err(fail)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout.0.max(Duration::from_millis(100))))
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        let authorization = cfg.username.as_ref().map(|user| {
            use base64::Engine;
            let password = cfg.password.as_ref().map_or("", |p| p.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        Ok(Self {
            agent,
            retries: cfg.retries,
            retry_interval: cfg.retry_interval.0,
            base: url.trim_end_matches('/').to_string(),
            authorization,
            fqdn_label: cfg.fqdn_label.clone(),
            uuid_label: cfg.instance_uuid_label.clone(),
        })
    }

    /// One instant query (`POST /api/v1/query`, so that long matchers fit),
    /// tried again after `retry_interval` up to `retries` times when the
    /// source cannot be reached, times out or answers 5xx or 429 (Watcher's
    /// `query_max_retries` and `query_interval`).
    pub fn query(&self, promql: &str, label: &str) -> Result<Values, SourceError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(promql, label) {
                Ok(v) => return Ok(v),
                Err(Attempt::Retry(why)) if attempts <= self.retries => {
                    tracing::warn!(
                        "metrics source {}: {why}; trying again in {:?}",
                        self.base,
                        self.retry_interval
                    );
                    std::thread::sleep(self.retry_interval);
                }
                Err(Attempt::Retry(why)) => {
                    return Err(SourceError::Query {
                        url: self.base.clone(),
                        why: format!(
                            "{why} (after {attempts} attempt{})",
                            if attempts == 1 { "" } else { "s" }
                        ),
                    });
                }
                Err(Attempt::Fail(why)) => {
                    return Err(SourceError::Query {
                        url: self.base.clone(),
                        why,
                    });
                }
            }
        }
    }

    fn attempt(&self, promql: &str, label: &str) -> Result<Values, Attempt> {
        let mut req = self.agent.post(format!("{}/api/v1/query", self.base));
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send_form([("query", promql)]).map_err(|e| {
            // Unreachable, reset, slow: worth trying again. A TLS
            // failure (InvalidData, an untrusted certificate) or a bad
            // URL is not.
            let transient = match &e {
                ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
                ureq::Error::Timeout(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
                | ureq::Error::BodyStalled => true,
                _ => false,
            };
            if transient {
                Attempt::Retry(e.to_string())
            } else {
                Attempt::Fail(e.to_string())
            }
        })?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| Attempt::Retry(format!("reading the answer: {e}")))?;
        if status == 401 || status == 403 {
            return Err(Attempt::Fail(format!(
                "answered {status}: check username and password"
            )));
        }
        if status.is_server_error() || status == 429 {
            return Err(Attempt::Retry(format!("answered {status}")));
        }
        if !(status.is_success() || status == 400 || status == 422) {
            return Err(Attempt::Fail(format!("answered {status}")));
        }
        parse_answer(&body, label).map_err(|e| Attempt::Fail(format!("{e} (query: {promql})")))
    }

    /// A host metric for `hosts`, by hostname.
    pub fn host_metric(
        &self,
        metric: &str,
        hosts: &[&str],
        w: Window,
    ) -> Result<Values, SourceError> {
        let sel = host_selector(&self.fqdn_label, hosts);
        let Some(q) = host_query(metric, &self.fqdn_label, &sel, w) else {
            return Ok(Values::new());
        };
        let mut v = by_hostname(self.query(&q, &self.fqdn_label)?, hosts);
        if metric == super::HOST_RAM {
            // KiB, as Watcher's query answers; MB in the model.
            v.values_mut().for_each(|x| *x /= 1024.0);
        }
        Ok(v)
    }

    /// An instance metric for `instances`, by uuid (for
    /// `instance_cpu_usage`: cores used, see [`cpu_percent`]).
    pub fn instance_metric(
        &self,
        metric: &str,
        instances: &[&str],
        w: Window,
    ) -> Result<Values, SourceError> {
        let sel = selector(&self.uuid_label, instances);
        let Some(q) = instance_query(metric, &self.uuid_label, &sel, w) else {
            return Ok(Values::new());
        };
        self.query(&q, &self.uuid_label)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Aggregate, HOST_CPU, HOST_RAM, INSTANCE_CPU, INSTANCE_RAM};
    use super::*;

    fn w(aggregate: Aggregate) -> Window {
        Window {
            period: Duration::from_secs(300),
            aggregate,
        }
    }

    #[test]
    fn one_name_gives_watchers_exact_queries() {
        let sel = selector("fqdn", &["compute-1"]);
        assert_eq!(
            host_query(HOST_CPU, "fqdn", &sel, w(Aggregate::Mean)).as_deref(),
            Some(
                "100 - (avg by (fqdn)(rate(node_cpu_seconds_total{mode='idle',fqdn='compute-1'}[300s])) * 100)"
            )
        );
        assert_eq!(
            host_query(HOST_RAM, "fqdn", &sel, w(Aggregate::Max)).as_deref(),
            Some(
                "(node_memory_MemTotal_bytes{fqdn='compute-1'} - min_over_time(node_memory_MemAvailable_bytes{fqdn='compute-1'}[300s])) / 1024"
            )
        );
        let sel = selector("resource", &["u1"]);
        assert_eq!(
            instance_query(INSTANCE_RAM, "resource", &sel, w(Aggregate::Max)).as_deref(),
            Some("max_over_time(ceilometer_memory_usage{resource='u1'}[300s])")
        );
        assert_eq!(
            instance_query(INSTANCE_CPU, "resource", &sel, w(Aggregate::Count)).as_deref(),
            Some("avg by (resource)(rate(ceilometer_cpu{resource='u1'}[300s]))/10e+8")
        );
        assert_eq!(
            host_query("host_outlet_temp", "fqdn", &sel, w(Aggregate::Mean)),
            None
        );
    }

    #[test]
    fn several_names_are_one_regex_and_many_are_any_value() {
        assert_eq!(
            selector("fqdn", &["a.example", "b'x"]),
            r"fqdn=~'a\\.example|b\'x'"
        );
        let many: Vec<String> = (0..=MAX_LISTED).map(|i| format!("h{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(selector("fqdn", &many), "fqdn!=''");
    }

    #[test]
    fn hosts_match_their_fully_qualified_label_values() {
        assert_eq!(
            host_selector("fqdn", &["c-1", "c.2"]),
            r"fqdn=~'(?:c-1|c\\.2)(?:\\..+)?'"
        );
        let answer: Values = [
            ("c-1.example.com".to_string(), 1.0),
            ("c-2".to_string(), 2.0),
            ("c-2.example.com".to_string(), 9.0),
            ("other.example.com".to_string(), 3.0),
        ]
        .into();
        let v = by_hostname(answer, &["c-1", "c-2"]);
        assert_eq!(v.get("c-1"), Some(&1.0));
        assert_eq!(v.get("c-2"), Some(&2.0), "its own value wins");
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn cpu_is_capped_at_100_and_zero_vcpus_count_as_one() {
        assert_eq!(cpu_percent(0.8, 1), 80.0);
        assert_eq!(cpu_percent(0.8, 2), 40.0);
        assert_eq!(cpu_percent(3.0, 2), 100.0);
        assert_eq!(cpu_percent(0.5, 0), 50.0);
    }

    #[test]
    fn answers_are_read_by_label_first_series_wins_and_errors_are_named() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"fqdn":"a"},"value":[1,"40.5"]},
            {"metric":{"fqdn":"a"},"value":[1,"99"]},
            {"metric":{"fqdn":"b"},"value":[1,"NaN"]},
            {"metric":{"other":"c"},"value":[1,"1"]}]}}"#;
        let v = parse_answer(body, "fqdn").expect("parsed");
        assert_eq!(v.get("a"), Some(&40.5));
        assert!(v.get("b").is_some_and(|x| x.is_nan()));
        assert_eq!(v.len(), 2);
        let err = parse_answer(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            "fqdn",
        )
        .unwrap_err();
        assert!(err.contains("bad_data parse error"), "{err}");
        assert!(parse_answer("<html>", "fqdn").is_err());
    }
}
