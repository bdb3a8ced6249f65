//! Metrics sources: where an audit's cluster model gets its usage metrics
//! when they do not come from the collector (Watcher's datasources,
//! reference `watcher-service-facts.md` section 3).
//!
//! Configured in the config file's `metrics:` mapping (`source: prometheus`,
//! `url`, …). After the collector built the model, [`fill_model`] reads the
//! metrics the audit's strategy declares (its manifest's `metrics`, Watcher's
//! `DATASOURCE_METRICS`) and writes them into the model's nodes and
//! instances, replacing what the collector gave. Without a source the
//! collector's metrics (the simulated cloud's snapshot) stay as they are.
//!
//! A declared metric the source cannot give fails the audit, naming the
//! metric (Watcher's `MetricNotAvailable`, "Metric: … not available"); a
//! metric missing for some nodes or instances only is logged, as Watcher's
//! strategies log "No values returned by …".

pub mod prometheus;

use crate::config::MetricsConfig;
use serde_json::Value;
use sextant_plugin_api::model::{ClusterModel, Metric};
use std::collections::HashMap;
use std::time::Duration;

/// Watcher's metric names this module knows: the ones a source may give,
/// and the ones taken from the model itself (as Watcher does).
pub const HOST_CPU: &str = "host_cpu_usage";
/// Host memory in use, MB in the model.
pub const HOST_RAM: &str = "host_ram_usage";
/// Instance cpu usage, percent of its vcpus.
pub const INSTANCE_CPU: &str = "instance_cpu_usage";
/// Instance memory in use, MB.
pub const INSTANCE_RAM: &str = "instance_ram_usage";
/// Metrics every model carries (Watcher reads them from the model, never
/// from a datasource): instance memory and root disk allocated.
const FROM_MODEL: [&str; 2] = ["instance_ram_allocated", "instance_root_disk_size"];

/// Why the model's metrics could not be filled.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A metric the strategy needs is not available.
    #[error("Metric: {metric} not available: {why}")]
    NotAvailable {
        /// Watcher's name of the metric.
        metric: String,
        /// Why.
        why: String,
    },
    /// An audit parameter that sets the metrics' window is out of bounds.
    #[error("audit parameter {name}: {why}")]
    Parameter {
        /// The parameter (`period`, `periods.instance`, …).
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The source could not be queried.
    #[error("metrics source {url}: {why}")]
    Query {
        /// The source's URL.
        url: String,
        /// What failed.
        why: String,
    },
}

/// Watcher's aggregates (`AGGREGATES_MAP`): `mean` and `count` are `avg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// PromQL `avg`.
    #[default]
    Mean,
    /// PromQL `max`.
    Max,
    /// PromQL `min`.
    Min,
    /// PromQL `avg`, as Watcher maps it.
    Count,
}

impl Aggregate {
    /// The PromQL aggregation operator.
    pub fn promql(self) -> &'static str {
        match self {
            Aggregate::Mean | Aggregate::Count => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
        }
    }

    /// Host queries measure idle cpu and available memory: their max is
    /// the usage's min (Watcher's `_invert_max_min_aggregate`).
    pub fn inverted(self) -> Self {
        match self {
            Aggregate::Max => Aggregate::Min,
            Aggregate::Min => Aggregate::Max,
            a => a,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "mean" => Some(Aggregate::Mean),
            "max" => Some(Aggregate::Max),
            "min" => Some(Aggregate::Min),
            "count" => Some(Aggregate::Count),
            _ => None,
        }
    }
}

/// The period and aggregate of one kind of resource (hosts or instances).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// The audit period the metric is aggregated over.
    pub period: Duration,
    /// How.
    pub aggregate: Aggregate,
}

/// The windows an audit asks for: the strategy's parameters as Watcher
/// names them (`period`, `periods: {instance, compute_node}`,
/// `aggregation_method: {instance, compute_node}`), else the config's. A
/// period longer than [`MAX_DURATION`](crate::duration::MAX_DURATION) is
/// an error naming the parameter (`Duration::from_secs_f64` panics from
/// about 2e19 s).
pub fn windows(cfg: &MetricsConfig, params: &Value) -> Result<(Window, Window), SourceError> {
    let period = |kind: &str| -> Result<Duration, SourceError> {
        let (name, secs) = match params["periods"][kind].as_f64() {
            Some(s) => (format!("periods.{kind}"), Some(s)),
            None => ("period".to_string(), params["period"].as_f64()),
        };
        match secs.filter(|s| s.is_finite() && *s >= 1.0) {
            None => Ok(cfg.period.0),
            Some(s) => crate::duration::from_seconds(s).map_err(|e| SourceError::Parameter {
                name,
                why: e.to_string(),
            }),
        }
    };
    let aggregate = |kind: &str| {
        params["aggregation_method"][kind]
            .as_str()
            .and_then(Aggregate::parse)
            .unwrap_or(cfg.aggregate)
    };
    Ok((
        Window {
            period: period("compute_node")?,
            aggregate: aggregate("compute_node"),
        },
        Window {
            period: period("instance")?,
            aggregate: aggregate("instance"),
        },
    ))
}

/// Values of one metric by host name or instance uuid.
pub type Values = HashMap<String, f64>;

/// Fills `model` with the metrics of `needed` that the configured source
/// gives, for the audit's `params`. Without a source, checks nothing and
/// changes nothing.
pub fn fill_model(
    cfg: &MetricsConfig,
    model: &mut ClusterModel,
    needed: &[String],
    params: &Value,
) -> Result<(), SourceError> {
    let Some(source) = &cfg.source else {
        return Ok(());
    };
    let client = prometheus::Client::new(cfg, source)?;
    let (hosts, instances) = windows(cfg, params)?;
    for metric in needed {
        let started = std::time::Instant::now();
        let filled = match metric.as_str() {
            HOST_CPU | HOST_RAM if model.nodes.is_empty() => continue,
            INSTANCE_CPU | INSTANCE_RAM if model.instances.is_empty() => continue,
            HOST_CPU | HOST_RAM => {
                let names: Vec<&str> = model.nodes.iter().map(|n| n.hostname.as_str()).collect();
                let values = client.host_metric(metric, &names, hosts)?;
                let asked = names.len();
                let mut missing = Vec::new();
                for n in &mut model.nodes {
                    set(&mut n.metrics, metric, values.get(&n.hostname), || {
                        missing.push(n.hostname.clone())
                    });
                }
                (asked, missing)
            }
            INSTANCE_CPU | INSTANCE_RAM => {
                let uuids: Vec<&str> = model.instances.iter().map(|i| i.uuid.as_str()).collect();
                let values = client.instance_metric(metric, &uuids, instances)?;
                let asked = uuids.len();
                let mut missing = Vec::new();
                for i in &mut model.instances {
                    let v = values.get(&i.uuid).map(|&rate| match metric.as_str() {
                        INSTANCE_CPU => prometheus::cpu_percent(rate, i.vcpus),
                        _ => rate,
                    });
                    set(&mut i.metrics, metric, v.as_ref(), || {
                        missing.push(i.uuid.clone())
                    });
                }
                (asked, missing)
            }
            m if FROM_MODEL.contains(&m) => continue,
            m => {
                let given = model.nodes.iter().any(|n| n.metrics.contains_key(m))
                    || model.instances.iter().any(|i| i.metrics.contains_key(m));
                if given {
                    continue;
                }
                return Err(SourceError::NotAvailable {
                    metric: m.to_string(),
                    why: format!(
                        "the {} metrics source does not provide it (it provides {HOST_CPU}, \
                         {HOST_RAM}, {INSTANCE_CPU}, {INSTANCE_RAM}) and the collector gave none",
                        source.as_str()
                    ),
                });
            }
        };
        let (asked, missing) = filled;
        if asked > 0 && missing.len() == asked {
            let what = if metric.starts_with("host_") {
                format!("hosts (label {})", cfg.fqdn_label)
            } else {
                format!("instances (label {})", cfg.instance_uuid_label)
            };
            return Err(SourceError::NotAvailable {
                metric: metric.clone(),
                why: format!(
                    "{} at {} returned no series for any of the model's {asked} {what}",
                    source.as_str(),
                    cfg.url.as_deref().unwrap_or_default()
                ),
            });
        }
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
            tracing::warn!(
                "No values returned for {metric} by {} of {asked} ({}{})",
                missing.len(),
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
        }
        tracing::debug!(
            "{metric}: {} of {asked} from {} in {:?}",
            asked - missing.len(),
            source.as_str(),
            started.elapsed()
        );
    }
    Ok(())
}

/// Sets a metric from the source, or removes the collector's (the model's
/// metrics come from one place); `missing` is called when there is none.
fn set(
    metrics: &mut std::collections::BTreeMap<String, Metric>,
    name: &str,
    value: Option<&f64>,
    missing: impl FnOnce(),
) {
    match value {
        Some(v) if v.is_finite() => {
            metrics.insert(name.to_string(), Metric::Value(*v));
        }
        _ => {
            metrics.remove(name);
            missing();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_max_and_min_are_inverted_and_count_is_avg() {
        assert_eq!(Aggregate::Max.inverted().promql(), "min");
        assert_eq!(Aggregate::Min.inverted().promql(), "max");
        assert_eq!(Aggregate::Count.promql(), "avg");
        assert_eq!(Aggregate::Mean.inverted().promql(), "avg");
    }

    #[test]
    fn windows_come_from_the_strategy_parameters_else_the_config() {
        let cfg = MetricsConfig::default();
        let (h, i) = windows(&cfg, &json!({})).expect("windows");
        assert_eq!(h.period, Duration::from_secs(300));
        assert_eq!(i.aggregate, Aggregate::Mean);
        let (h, i) = windows(
            &cfg,
            &json!({"periods": {"instance": 720, "compute_node": 600},
                    "aggregation_method": {"instance": "max", "compute_node": "min"}}),
        )
        .expect("windows");
        assert_eq!(
            (h.period, i.period),
            (Duration::from_secs(600), Duration::from_secs(720))
        );
        assert_eq!((h.aggregate, i.aggregate), (Aggregate::Min, Aggregate::Max));
        let (h, i) = windows(&cfg, &json!({"period": 7200})).expect("windows");
        assert_eq!(
            (h.period, i.period),
            (Duration::from_secs(7200), Duration::from_secs(7200))
        );
    }

    #[test]
    fn a_period_beyond_a_year_is_an_error_naming_it_not_a_panic() {
        // `-p period=1e300` panicked the audit (Duration::from_secs_f64)
        // whenever a metrics source was configured.
        let cfg = MetricsConfig::default();
        for (params, name) in [
            (json!({"period": 1e300}), "audit parameter period"),
            (json!({"period": 31_622_401}), "audit parameter period"),
            (
                json!({"periods": {"instance": 1e20}}),
                "audit parameter periods.instance",
            ),
        ] {
            let e = windows(&cfg, &params).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains(name) && e.contains("366 days")),
                "{params}: {e:?}"
            );
        }
        assert!(windows(&cfg, &json!({"period": 31_622_400})).is_ok());
    }

    #[test]
    fn without_a_source_nothing_is_checked_or_changed() {
        let mut m: ClusterModel = serde_json::from_value(json!({
            "nodes": [{"uuid": "n", "hostname": "h", "vcpus": 1, "memory": 1, "disk": 1}]
        }))
        .expect("model");
        let before = m.clone();
        fill_model(
            &MetricsConfig::default(),
            &mut m,
            &["host_outlet_temp".into()],
            &json!({}),
        )
        .expect("no source");
        assert_eq!(m, before);
    }
}
