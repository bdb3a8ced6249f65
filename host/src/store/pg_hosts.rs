//! [`FleetStore`] on PostgreSQL: hosts on several machines sharing one
//! database. A plan is claimed with one `UPDATE … WHERE id = (SELECT …
//! FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING`: hosts claiming at once skip
//! each other's rows instead of waiting on them, and each gets a different
//! plan. An audit run is claimed by inserting its `(audit, tick)` under the
//! primary key (`ON CONFLICT DO NOTHING`). Times are the database's
//! `clock_timestamp()`.
//!
//! Wakeups: triggers (migration 12, `pg_schema.rs`) NOTIFY channel
//! [`WORK_CHANNEL`] when a plan is queued or given back and when an audit
//! is created or made PENDING, whatever wrote it; a host LISTENs on its
//! connection and waits on it instead of polling.

use super::Result;
use super::fleet::{
    AuditRequestKind, AuditRunRequest, FiringAlert, FleetStore, PlanClaim, Role, ServiceRow,
    ServiceStatus, TICK_CLAIM_STALE, WORK_CHANNEL, sorted_alerts,
};
use super::hosts::ClaimPayload;
use super::pg::{PgStore, pg_error};
use super::pg_sql::PgRow;
use crate::states::{EventType, PlanState};
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// The database's now, as the RFC 3339 text (UTC, milliseconds) times are
/// stored in.
const NOW: &str =
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

impl FleetStore for PgStore {
    fn heartbeat(&mut self, host: &str, role: Role, status_message: Option<&str>) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO services (name, host, last_seen_up, status_message, created_at, updated_at) \
                     VALUES ($1, $2, {NOW}, $3, {NOW}, {NOW}) \
                     ON CONFLICT (host, name) DO UPDATE SET last_seen_up = excluded.last_seen_up, \
                     status_message = excluded.status_message, updated_at = excluded.updated_at, \
                     deleted = 0, deleted_at = NULL"
                ),
                &[&role.service_name(), &host, &status_message],
            )
            .map_err(|e| self.err(e))
        })?;
        Ok(())
    }

    fn services(&mut self, down_time: Duration) -> Result<Vec<ServiceRow>> {
        let sql = "SELECT id, name, host, last_seen_up, status_message, created_at, updated_at, \
                 extract(epoch FROM clock_timestamp() - last_seen_up::timestamptz)::float8 <= $1 \
                 FROM services WHERE deleted = 0 ORDER BY id";
        let rows = self.with_client(|c| {
            c.query(sql, &[&down_time.as_secs_f64()])
                .map_err(|e| self.err(e))
        })?;
        PgRow::all(self.location(), sql, rows)
            .iter()
            .map(|r| {
                Ok(ServiceRow {
                    id: super::pg_sql::int(r, 0)?,
                    name: r.get(1)?,
                    host: r.get(2)?,
                    last_seen_up: r.get(3)?,
                    status_message: r.get(4)?,
                    created_at: r.get(5)?,
                    updated_at: r.get(6)?,
                    status: if r.get::<bool>(7)? {
                        ServiceStatus::Active
                    } else {
                        ServiceStatus::Failed
                    },
                })
            })
            .collect()
    }

    fn claim_plan(&mut self, host: &str, owner: &str, ttl: Duration) -> Result<Option<PlanClaim>> {
        let location = self.location().to_string();
        self.with_client(|c| claim_plan(c, &location, host, owner, ttl))
    }

    fn renew_leases(&mut self, owners: &[String], ttl: Duration) -> Result<usize> {
        if owners.is_empty() {
            return Ok(0);
        }
        let n = self.with_client(|c| {
            c.execute(
                "UPDATE action_plans SET lease_expires_at = \
                 to_char((clock_timestamp() + make_interval(secs => $1)) AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') WHERE lease_owner = ANY($2)",
                &[&ttl.as_secs_f64(), &owners],
            )
            .map_err(|e| self.err(e))
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn claim_audit_tick(&mut self, audit_uuid: &str, tick: &str, host: &str) -> Result<bool> {
        let n = self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO audit_ticks (audit_uuid, tick, host, claimed_at) \
                     VALUES ($1, $2, $3, {NOW}) ON CONFLICT (audit_uuid, tick) DO UPDATE \
                     SET host = excluded.host, claimed_at = excluded.claimed_at \
                     WHERE audit_ticks.claimed_at < to_char((clock_timestamp() \
                         - make_interval(secs => $4)) AT TIME ZONE 'UTC', \
                         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                ),
                &[&audit_uuid, &tick, &host, &TICK_CLAIM_STALE.as_secs_f64()],
            )
            .map_err(|e| self.err(e))
        })?;
        Ok(n == 1)
    }

    fn request_audit(
        &mut self,
        audit_uuid: &str,
        kind: AuditRequestKind,
        host: &str,
    ) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO audit_requests (audit_uuid, kind, requested_by, requested_at) \
                     VALUES ($1, $2, $3, {NOW})"
                ),
                &[&audit_uuid, &kind.as_str(), &host],
            )
            .map_err(|e| self.err(e))
        })?;
        Ok(())
    }

    fn take_audit_requests(&mut self, host: &str, limit: usize) -> Result<Vec<AuditRunRequest>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let location = self.location().to_string();
        let rows = self.with_client(|c| {
            c.query(
                &format!(
                    "UPDATE audit_requests SET taken_by = $1, taken_at = {NOW} WHERE id IN ( \
                       SELECT id FROM audit_requests \
                       WHERE taken_at IS NULL OR taken_at < to_char((clock_timestamp() \
                           - make_interval(secs => $2)) AT TIME ZONE 'UTC', \
                           'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                       ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, audit_uuid, kind, requested_by"
                ),
                &[&host, &TICK_CLAIM_STALE.as_secs_f64(), &limit],
            )
            .map_err(|e| self.err(e))
        })?;
        let mut taken = PgRow::all(&location, "UPDATE audit_requests ... RETURNING", rows)
            .iter()
            .map(|r| {
                let id = super::pg_sql::int(r, 0)?;
                let kind: String = r.get(2)?;
                Ok(AuditRunRequest {
                    id,
                    audit_uuid: r.get(1)?,
                    kind: super::pg_sql::parse_enum(
                        &location,
                        &kind,
                        "audit_requests",
                        id,
                        "kind",
                    )?,
                    requested_by: r.get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        taken.sort_by_key(|t| t.id);
        Ok(taken)
    }

    fn finish_audit_request(&mut self, id: i64) -> Result<()> {
        self.with_client(|c| {
            c.execute("DELETE FROM audit_requests WHERE id = $1", &[&id])
                .map_err(|e| self.err(e))
        })?;
        Ok(())
    }

    fn admit_alert_run(
        &mut self,
        audit_uuid: &str,
        alerts: &[FiringAlert],
        window: Duration,
        host: &str,
    ) -> Result<bool> {
        let location = self.location().to_string();
        let alerts = sorted_alerts(alerts);
        self.with_client(|c| admit_alert_run(c, &location, audit_uuid, &alerts, window, host))
    }

    fn listen_for_work(&mut self) -> Result<bool> {
        self.with_client(|c| {
            c.batch_execute(&format!("LISTEN {WORK_CHANNEL}"))
                .map_err(|e| self.err(e))
        })?;
        Ok(true)
    }

    fn wait_for_work(&mut self, timeout: Duration) -> Result<Vec<String>> {
        self.with_client(|c| {
            let mut got = Vec::new();
            let first = c.notifications().timeout_iter(timeout).next();
            match first {
                Ok(Some(n)) => got.push(n.payload().to_string()),
                Ok(None) => return Ok(got),
                Err(e) => return Err(self.err(e)),
            }
            // And whatever else arrived with it, without waiting.
            let mut n = c.notifications();
            let mut it = n.iter();
            loop {
                match it.next() {
                    Ok(Some(n)) => got.push(n.payload().to_string()),
                    Ok(None) => return Ok(got),
                    Err(e) => return Err(self.err(e)),
                }
            }
        })
    }

    fn announce_work(&mut self, what: &str) -> Result<()> {
        self.with_client(|c| {
            c.execute("SELECT pg_notify($1, $2)", &[&WORK_CHANNEL, &what])
                .map_err(|e| self.err(e))
        })?;
        Ok(())
    }
}

/// Admits a run for `alerts` (sorted) in one transaction (see
/// [`FleetStore::admit_alert_run`]). Each alert's row is inserted under
/// its primary key: a host inserting a row another's open transaction
/// inserted waits for it, then finds it there.
fn admit_alert_run(
    c: &mut postgres::Client,
    location: &str,
    audit_uuid: &str,
    alerts: &[&FiringAlert],
    window: Duration,
    host: &str,
) -> Result<bool> {
    let err = |e| pg_error(location, e);
    let mut tx = c.transaction().map_err(err)?;
    // What no longer holds a resend back (this audit's rows), and what is
    // past the retention (every audit's).
    let window_secs = window.as_secs_f64();
    let kept_secs = super::fleet::alert_run_retention(window).as_secs_f64();
    tx.execute(
        "DELETE FROM alert_runs WHERE (audit_uuid = $1 AND claimed_at < \
         to_char((clock_timestamp() - make_interval(secs => $2)) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) OR claimed_at < \
         to_char((clock_timestamp() - make_interval(secs => $3)) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        &[&audit_uuid, &window_secs, &kept_secs],
    )
    .map_err(err)?;
    let insert = format!(
        "INSERT INTO alert_runs (audit_uuid, group_key, fingerprint, starts_at, host, claimed_at) \
         VALUES ($1, $2, $3, $4, $5, {NOW}) ON CONFLICT DO NOTHING"
    );
    let mut new = 0;
    for a in alerts {
        new += tx
            .execute(
                &insert,
                &[&audit_uuid, &a.group, &a.fingerprint, &a.starts_at, &host],
            )
            .map_err(err)?;
    }
    if new > 0 {
        let refresh = format!(
            "UPDATE alert_runs SET host = $5, claimed_at = {NOW} WHERE audit_uuid = $1 \
             AND group_key = $2 AND fingerprint = $3 AND starts_at = $4"
        );
        for a in alerts {
            tx.execute(
                &refresh,
                &[&audit_uuid, &a.group, &a.fingerprint, &a.starts_at, &host],
            )
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(new > 0)
}

/// Claims the oldest free plan in one transaction (see [`FleetStore::claim_plan`]).
fn claim_plan(
    c: &mut postgres::Client,
    location: &str,
    host: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Option<PlanClaim>> {
    let err = |e| pg_error(location, e);
    let mut tx = c.transaction().map_err(err)?;
    let row = tx
        .query_opt(
            &format!(
                "WITH free AS ( \
                     SELECT id, lease_owner FROM action_plans \
                     WHERE deleted = 0 AND state IN ('PENDING', 'ONGOING', 'CANCELLING') \
                     AND (lease_owner IS NULL OR lease_expires_at IS NULL \
                          OR lease_expires_at < {NOW}) \
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 UPDATE action_plans p SET lease_owner = $1, hostname = $2, \
                 lease_expires_at = to_char((clock_timestamp() + make_interval(secs => $3)) \
                     AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                 FROM free WHERE p.id = free.id \
                 RETURNING p.id, p.uuid, p.state, free.lease_owner, {NOW}"
            ),
            &[&owner, &host, &ttl.as_secs_f64()],
        )
        .map_err(err)?;
    let Some(row) = row else {
        tx.commit().map_err(err)?;
        return Ok(None);
    };
    let row = PgRow::one(
        location,
        "UPDATE action_plans (a plan's claim) RETURNING",
        row,
    );
    let (id, plan_uuid, text, previous_owner, at): (i64, String, String, Option<String>, String) = (
        super::pg_sql::int(&row, 0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let state: PlanState = text.parse().map_err(|name| super::StoreError::Unknown {
        path: std::path::PathBuf::from(&location),
        value: super::UnknownValue {
            table: "action_plans",
            row: id,
            column: "state",
            name,
        },
    })?;
    let payload = serde_json::to_string(&ClaimPayload {
        host,
        owner,
        resumed: state != PlanState::Pending,
        previous_owner: previous_owner.as_deref(),
        state: state.as_str(),
    })
    .map_err(|e| super::StoreError::Commit(e.to_string()))?;
    tx.execute(
        "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
         old_state, new_state, payload) VALUES ($1, $2, 'action_plan', $3, $3, NULL, NULL, $4)",
        &[&at, &EventType::PlanClaimed.as_str(), &plan_uuid, &payload],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(Some(PlanClaim {
        plan_uuid,
        state,
        previous_owner,
    }))
}
