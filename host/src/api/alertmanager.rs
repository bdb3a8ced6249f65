//! `POST /v1/webhooks/alertmanager`: Prometheus Alertmanager's webhook
//! receiver (payload version 4). Each firing alert names the EVENT audit it
//! triggers with a label (`api.alertmanager.audit_label`, by default
//! `sextant_audit`: the audit's uuid or name); alerts without it are
//! ignored, resolved alerts never trigger.
//!
//! An audit runs once per firing alert: an alert is known by its group
//! (`groupKey`), its `fingerprint` and when it started firing (`startsAt`),
//! and Alertmanager's resends of a group (every `group_interval` when it
//! changes, every `repeat_interval` when it does not) do not run the audit
//! again while that alert is remembered (`api.alertmanager.window`, 10
//! minutes by default). An audit already running (ONGOING) is not
//! triggered again. The memory is the store's (table `alert_runs`,
//! [`crate::store::FleetStore::admit_alert_run`]), on the database's
//! clock: a restarted `serve`, or several hosts on one database receiving
//! the same alert (each Alertmanager of a cluster sends it), run the audit
//! once.
//!
//! Authenticated as webhooks are (the `service` role, `webhook:trigger`);
//! Alertmanager sends the token as `Authorization: Bearer` (its
//! `http_config.authorization`). No microversion header is needed:
//! Alertmanager sends none, and this route is not Watcher's.

use super::error::{ApiError, ApiResult, missing};
use super::state::AppState;
use crate::states::AuditState;
use crate::states::AuditType;
use crate::store::FiringAlert;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `api.alertmanager` section of the config.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The alert label naming the EVENT audit to trigger (its uuid or
    /// name); default `sextant_audit`.
    #[serde(default = "default_audit_label")]
    pub audit_label: String,
    /// How long a firing alert that triggered its audit is remembered, so
    /// that Alertmanager's resends do not run the audit again (default
    /// 10 minutes): seconds or a duration.
    #[serde(default = "default_window", deserialize_with = "super::duration")]
    pub window: Duration,
}

fn default_audit_label() -> String {
    "sextant_audit".into()
}
fn default_window() -> Duration {
    Duration::from_secs(600)
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            audit_label: default_audit_label(),
            window: default_window(),
        }
    }
}

/// An alert's or a group's status.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Firing now.
    Firing,
    /// No longer firing.
    Resolved,
}

/// Alertmanager's webhook body, version 4 (the fields used here; the
/// others, such as `receiver`, `groupLabels`, `annotations` or
/// `externalURL`, are accepted and ignored).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The payload version: "4".
    pub version: String,
    /// The group the alerts belong to.
    pub group_key: String,
    /// The group's status.
    pub status: AlertStatus,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it started firing.
    pub starts_at: String,
    /// Alertmanager's hash of its labels.
    #[serde(default)]
    pub fingerprint: String,
}

impl AlertStatus {
    /// Alertmanager's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl Alert {
    /// Its fingerprint, or (from a sender that gives none) its labels.
    fn identity(&self) -> String {
        if self.fingerprint.is_empty() {
            serde_json::to_string(&self.labels).unwrap_or_default()
        } else {
            self.fingerprint.clone()
        }
    }
}

/// Reads a notification: valid JSON of version 4, or a 400 naming what is
/// wrong.
pub fn parse(body: &[u8]) -> ApiResult<Notification> {
    let n: Notification = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Not an Alertmanager webhook payload: {e}")))?;
    if n.version != "4" {
        return Err(ApiError::bad_request(format!(
            "Alertmanager webhook payload version {:?}: only version \"4\" is understood",
            n.version
        )));
    }
    Ok(n)
}

/// Why an audit named by firing alerts was not triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    /// It is running now.
    Running,
    /// Its alerts already triggered it within the window.
    AlreadyTriggered,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::Running => "the audit is running (ONGOING)",
            Skip::AlreadyTriggered => "these alerts already triggered it within the window",
        }
    }
}

/// Why an audit in `state` named by new or known alerts is not to run:
/// running now, or its alerts already triggered it (`admit` records them
/// and says whether any is new; it is not asked for a running audit,
/// whose alerts are then not recorded, so a resend after the run ends
/// triggers it).
fn skip_reason<E>(
    state: AuditState,
    admit: impl FnOnce() -> Result<bool, E>,
) -> Result<Option<Skip>, E> {
    Ok(if state == AuditState::Ongoing {
        Some(Skip::Running)
    } else if admit()? {
        None
    } else {
        Some(Skip::AlreadyTriggered)
    })
}

/// `POST /v1/webhooks/alertmanager`: triggers the EVENT audits the firing
/// alerts name. 200 with what was triggered, skipped and ignored; 400 for
/// a body that is not Alertmanager's or an audit that cannot be
/// triggered, 404 for an audit that does not exist (nothing is triggered
/// then).
#[utoipa::path(
    operation_id = "alertmanager_receive",
    post,
    path = "/v1/webhooks/alertmanager",
    tag = "sextant",
    request_body(content = Object, description = "Alertmanager's webhook payload"),
    responses((status = 200, description = "What was triggered, skipped and ignored", body = Object), super::openapi::Refusals)
)]
pub async fn receive(State(st): State<Arc<AppState>>, body: Bytes) -> ApiResult<Json<Value>> {
    let n = parse(&body)?;
    tracing::info!(
        "alertmanager: group {} ({}): {} alert(s)",
        n.group_key,
        n.status.as_str(),
        n.alerts.len()
    );
    let label = st.cfg.alertmanager.audit_label.clone();
    // The audits named by firing alerts, with their alerts.
    let mut named: BTreeMap<String, Vec<&Alert>> = BTreeMap::new();
    let mut ignored = 0usize;
    for a in &n.alerts {
        match (a.status, a.labels.get(&label)) {
            (AlertStatus::Firing, Some(audit)) if !audit.is_empty() => {
                named.entry(audit.clone()).or_default().push(a);
            }
            _ => ignored += 1,
        }
    }
    let refs: Vec<(String, Vec<FiringAlert>)> = named
        .iter()
        .map(|(r, alerts)| {
            let firing = alerts
                .iter()
                .map(|a| FiringAlert {
                    group: n.group_key.clone(),
                    fingerprint: a.identity(),
                    starts_at: a.starts_at.clone(),
                })
                .collect();
            (r.clone(), firing)
        })
        .collect();
    let window = st.cfg.alertmanager.window;
    let host = st.ctx.host.clone();
    let decided = st
        .store(move |s, _| {
            // Every named audit is checked before any is triggered: one
            // that cannot be triggers none.
            let mut audits = Vec::new();
            for (r, firing) in refs {
                let alert = firing
                    .first()
                    .map(|f| f.fingerprint.clone())
                    .unwrap_or_default();
                let a = s.audit(&r).map_err(|e| {
                    missing(e, || {
                        format!("Audit {r} could not be found (label {label} of alert {alert})")
                    })
                })?;
                if a.audit_type != AuditType::Event {
                    return Err(ApiError::bad_request(format!(
                        "Audit {} (label {label} of alert {alert}) is {}: only EVENT audits are triggered",
                        a.uuid, a.audit_type
                    )));
                }
                match a.state {
                    AuditState::Pending | AuditState::Succeeded | AuditState::Ongoing => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Audit {} (label {label} of alert {alert}) is {other}: an EVENT audit is triggered from PENDING or SUCCEEDED",
                            a.uuid
                        )));
                    }
                }
                audits.push((a.uuid, a.state, firing));
            }
            // Each audit's alerts are recorded in a transaction of their
            // own: one that fails does not keep the others from running.
            Ok(audits
                .into_iter()
                .map(|(uuid, state, firing)| {
                    let skip = skip_reason(state, || {
                        s.admit_alert_run(&uuid, &firing, window, &host)
                            .map_err(ApiError::internal)
                    });
                    (uuid, firing.len(), skip)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut triggered = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = None;
    for (uuid, alerts, skip) in decided {
        match skip {
            Err(e) => {
                // Not recorded: Alertmanager retries the group after a 5xx,
                // and the audits triggered now are skipped then.
                tracing::warn!(
                    "alertmanager: group {}: audit {uuid} not triggered: {}",
                    n.group_key,
                    e.message
                );
                failed.get_or_insert(e);
            }
            Ok(None) => {
                tracing::info!(
                    "alertmanager: group {} triggers EVENT audit {uuid} ({alerts} firing alert(s))",
                    n.group_key,
                );
                st.run_audit_later(uuid.clone(), true);
                triggered.push(uuid);
            }
            Ok(Some(why)) => {
                tracing::info!(
                    "alertmanager: group {} does not trigger audit {uuid}: {}",
                    n.group_key,
                    why.as_str()
                );
                skipped.push(json!({"audit": uuid, "reason": why.as_str()}));
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Json(json!({
        "group_key": n.group_key,
        "status": n.status.as_str(),
        "triggered": triggered,
        "skipped": skipped,
        "ignored": ignored,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "receiver": "sextant", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"HostLoad\"}", "truncatedAlerts": 0,
      "groupLabels": {"alertname": "HostLoad"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "HostLoad", "sextant_audit": "a1"},
         "annotations": {"summary": "hot"}, "startsAt": "2026-12-06T08:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p", "fingerprint": "f1"},
        {"status": "resolved", "labels": {"alertname": "HostLoad", "sextant_audit": "a2"},
         "annotations": {}, "startsAt": "2026-12-06T07:00:00Z",
         "endsAt": "2026-12-06T07:30:00Z", "generatorURL": "http://p", "fingerprint": "f2"}
      ]}"#;

    #[test]
    fn alertmanager_s_version_4_payload_is_read() {
        let n = parse(SAMPLE.as_bytes()).expect("parses");
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(n.alerts.len(), 2);
        assert_eq!(n.alerts[1].status, AlertStatus::Resolved);
        assert_eq!(n.alerts[0].labels["sextant_audit"], "a1");
        assert_eq!(n.alerts[0].identity(), "f1");
    }

    #[test]
    fn a_payload_that_is_not_alertmanager_s_is_refused_naming_the_field() {
        let e = parse(br#"{"version": "4", "status": "firing", "alerts": []}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("groupKey"), "{}", e.message);
        let e = parse(
            SAMPLE
                .replace(r#""version": "4""#, r#""version": "3""#)
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("\"3\""), "{}", e.message);
        let e = parse(SAMPLE.replace("\"firing\"", "\"burning\"").as_bytes()).unwrap_err();
        assert!(e.message.contains("burning"), "{}", e.message);
    }

    #[test]
    fn a_running_audit_is_skipped_without_asking_to_record_its_alerts() {
        let mut asked = 0;
        let r = skip_reason::<()>(AuditState::Ongoing, || {
            asked += 1;
            Ok(true)
        });
        assert_eq!((r, asked), (Ok(Some(Skip::Running)), 0));
        let r = skip_reason::<()>(AuditState::Succeeded, || Ok(true));
        assert_eq!(r, Ok(None));
        let r = skip_reason::<()>(AuditState::Pending, || Ok(false));
        assert_eq!(r, Ok(Some(Skip::AlreadyTriggered)));
        // A store failure is an error, never a silent skip or run.
        let r = skip_reason(AuditState::Pending, || Err("database down"));
        assert_eq!(r, Err("database down"));
    }
}
