//! [`FleetStore`] on SQLite: several `serve` processes on one machine
//! sharing one database file. Each write is a transaction taken IMMEDIATE
//! (`SqliteStore::write`): SQLite lets one writer in at a time, so a claim
//! that reads what is free and takes it is atomic. Times are SQLite's
//! `now`, in the RFC 3339 text (UTC, milliseconds) leases are stored in.
//! There is no LISTEN/NOTIFY: idle hosts poll.

use super::columns::enum_col;
use super::fleet::{
    AuditRequestKind, AuditRunRequest, FiringAlert, FleetStore, PlanClaim, Role, ServiceRow,
    ServiceStatus, TICK_CLAIM_STALE, sorted_alerts,
};
use super::{Event, Result, SqliteStore, append_event_with};
use crate::states::{EventType, PlanState};
use rusqlite::{OptionalExtension, params};
use std::time::Duration;

/// The database's now, as stored.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The plans a host may claim: queued, or interrupted with their lease free
/// or expired (on the database's clock).
const CLAIMABLE: &str = "deleted = 0 AND state IN ('PENDING', 'ONGOING', 'CANCELLING') \
     AND (lease_owner IS NULL OR lease_expires_at IS NULL \
          OR lease_expires_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

/// The payload of an `action_plan.claimed` event.
#[derive(serde::Serialize)]
pub(super) struct ClaimPayload<'a> {
    pub host: &'a str,
    pub owner: &'a str,
    pub resumed: bool,
    pub previous_owner: Option<&'a str>,
    pub state: &'a str,
}

impl FleetStore for SqliteStore {
    fn heartbeat(&mut self, host: &str, role: Role, status_message: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO services (name, host, last_seen_up, status_message, created_at, updated_at) \
                     VALUES (?1, ?2, {NOW}, ?3, {NOW}, {NOW}) \
                     ON CONFLICT (host, name) DO UPDATE SET last_seen_up = excluded.last_seen_up, \
                     status_message = excluded.status_message, updated_at = excluded.updated_at, \
                     deleted = 0, deleted_at = NULL"
                ),
                params![role.service_name(), host, status_message],
            )
        })?;
        Ok(())
    }

    fn services(&mut self, down_time: Duration) -> Result<Vec<ServiceRow>> {
        self.rows(
            "SELECT id, name, host, last_seen_up, status_message, created_at, updated_at, \
             (julianday('now') - julianday(last_seen_up)) * 86400.0 <= ?1 \
             FROM services WHERE deleted = 0 ORDER BY id",
            [down_time.as_secs_f64()],
            |r| {
                Ok(ServiceRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    host: r.get(2)?,
                    last_seen_up: r.get(3)?,
                    status_message: r.get(4)?,
                    created_at: r.get(5)?,
                    updated_at: r.get(6)?,
                    status: if r.get::<_, bool>(7)? {
                        ServiceStatus::Active
                    } else {
                        ServiceStatus::Failed
                    },
                })
            },
        )
    }

    fn claim_plan(&mut self, host: &str, owner: &str, ttl: Duration) -> Result<Option<PlanClaim>> {
        // Looked for first without the write lock (a read does not block
        // the writers in WAL mode): an idle host, asking every second,
        // never makes the applier's commits wait.
        let any: bool = self
            .conn()
            .query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM action_plans WHERE {CLAIMABLE})"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !any {
            return Ok(None);
        }
        self.write(|tx| {
            let free: Option<(String, PlanState, Option<String>)> = tx
                .query_row(
                    &format!(
                        "SELECT id, uuid, state, lease_owner FROM action_plans \
                         WHERE {CLAIMABLE} ORDER BY id LIMIT 1"
                    ),
                    [],
                    |r| {
                        Ok((
                            r.get(1)?,
                            enum_col(r, 2, 0, "action_plans", "state")?,
                            r.get(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((plan_uuid, state, previous_owner)) = free else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE action_plans SET lease_owner = ?1, \
                 lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2), hostname = ?3 \
                 WHERE uuid = ?4",
                params![
                    owner,
                    format!("+{:.3} seconds", ttl.as_secs_f64()),
                    host,
                    plan_uuid
                ],
            )?;
            let at: String = tx.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
            let event = Event {
                event_type: EventType::PlanClaimed,
                object_uuid: &plan_uuid,
                action_plan_uuid: Some(&plan_uuid),
                old_state: None,
                new_state: None,
                payload: serde_json::Value::Null,
            };
            append_event_with(
                tx,
                &event,
                &at,
                Some(&ClaimPayload {
                    host,
                    owner,
                    resumed: state != PlanState::Pending,
                    previous_owner: previous_owner.as_deref(),
                    state: state.as_str(),
                }),
            )?;
            Ok(Some(PlanClaim {
                plan_uuid,
                state,
                previous_owner,
            }))
        })
    }

    fn renew_leases(&mut self, owners: &[String], ttl: Duration) -> Result<usize> {
        if owners.is_empty() {
            return Ok(0);
        }
        let marks = vec!["?"; owners.len()].join(", ");
        let until = format!("+{:.3} seconds", ttl.as_secs_f64());
        self.write(|tx| {
            tx.execute(
                &format!(
                    "UPDATE action_plans SET \
                     lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) \
                     WHERE lease_owner IN ({marks})"
                ),
                rusqlite::params_from_iter(std::iter::once(&until).chain(owners)),
            )
        })
    }

    fn claim_audit_tick(&mut self, audit_uuid: &str, tick: &str, host: &str) -> Result<bool> {
        let n = self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO audit_ticks (audit_uuid, tick, host, claimed_at) \
                     VALUES (?1, ?2, ?3, {NOW}) ON CONFLICT (audit_uuid, tick) DO UPDATE \
                     SET host = excluded.host, claimed_at = excluded.claimed_at \
                     WHERE audit_ticks.claimed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?4)"
                ),
                params![
                    audit_uuid,
                    tick,
                    host,
                    format!("-{:.3} seconds", TICK_CLAIM_STALE.as_secs_f64())
                ],
            )
        })?;
        Ok(n == 1)
    }

    fn request_audit(
        &mut self,
        audit_uuid: &str,
        kind: AuditRequestKind,
        host: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO audit_requests (audit_uuid, kind, requested_by, requested_at) \
                     VALUES (?1, ?2, ?3, {NOW})"
                ),
                params![audit_uuid, kind, host],
            )
        })?;
        Ok(())
    }

    fn take_audit_requests(&mut self, host: &str, limit: usize) -> Result<Vec<AuditRunRequest>> {
        let stale = format!("-{:.3} seconds", TICK_CLAIM_STALE.as_secs_f64());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One writer at a time (IMMEDIATE): what is selected here is taken
        // by this host alone.
        self.write(|tx| {
            let mut st = tx.prepare(
                "SELECT id, audit_uuid, kind, requested_by FROM audit_requests \
                 WHERE taken_at IS NULL OR taken_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1) \
                 ORDER BY id LIMIT ?2",
            )?;
            let taken: Vec<AuditRunRequest> = st
                .query_map(params![stale, limit], |r| {
                    Ok(AuditRunRequest {
                        id: r.get(0)?,
                        audit_uuid: r.get(1)?,
                        kind: enum_col(r, 2, 0, "audit_requests", "kind")?,
                        requested_by: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            for t in &taken {
                tx.execute(
                    &format!(
                        "UPDATE audit_requests SET taken_by = ?1, taken_at = {NOW} WHERE id = ?2"
                    ),
                    params![host, t.id],
                )?;
            }
            Ok(taken)
        })
    }

    fn finish_audit_request(&mut self, id: i64) -> Result<()> {
        self.write(|tx| tx.execute("DELETE FROM audit_requests WHERE id = ?1", [id]))?;
        Ok(())
    }

    fn admit_alert_run(
        &mut self,
        audit_uuid: &str,
        alerts: &[FiringAlert],
        window: Duration,
        host: &str,
    ) -> Result<bool> {
        let alerts = sorted_alerts(alerts);
        let since = format!("-{:.3} seconds", window.as_secs_f64());
        let kept = format!(
            "-{:.3} seconds",
            super::fleet::alert_run_retention(window).as_secs_f64()
        );
        self.write(|tx| {
            // What no longer holds a resend back (this audit's rows), and
            // what is past the retention (every audit's).
            tx.execute(
                "DELETE FROM alert_runs WHERE (audit_uuid = ?1 \
                 AND claimed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)) \
                 OR claimed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3)",
                params![audit_uuid, since, kept],
            )?;
            let mut new = 0;
            for a in &alerts {
                new += tx.execute(
                    &format!(
                        "INSERT INTO alert_runs \
                         (audit_uuid, group_key, fingerprint, starts_at, host, claimed_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, {NOW}) ON CONFLICT DO NOTHING"
                    ),
                    params![audit_uuid, a.group, a.fingerprint, a.starts_at, host],
                )?;
            }
            if new == 0 {
                return Ok(false);
            }
            // The run is this one's: its alerts are remembered from now.
            for a in &alerts {
                tx.execute(
                    &format!(
                        "UPDATE alert_runs SET host = ?5, claimed_at = {NOW} WHERE audit_uuid = ?1 \
                         AND group_key = ?2 AND fingerprint = ?3 AND starts_at = ?4"
                    ),
                    params![audit_uuid, a.group, a.fingerprint, a.starts_at, host],
                )?;
            }
            Ok(true)
        })
    }

    fn listen_for_work(&mut self) -> Result<bool> {
        Ok(false)
    }

    fn wait_for_work(&mut self, _timeout: Duration) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn announce_work(&mut self, _what: &str) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::plans::NewPlan;

    fn store(dir: &std::path::Path) -> SqliteStore {
        SqliteStore::open(&dir.join("s.db")).expect("open")
    }

    fn queued(dir: &std::path::Path, n: usize) -> Vec<String> {
        let mut s = Store::open(dir.join("s.db")).expect("open");
        (0..n)
            .map(|_| {
                s.create_plan(&NewPlan {
                    state: PlanState::Pending,
                    ..Default::default()
                })
                .expect("plan")
                .uuid
            })
            .collect()
    }

    #[test]
    fn looking_for_a_plan_to_claim_takes_no_write_lock_when_there_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        queued(dir.path(), 1);
        let mut s = store(dir.path());
        assert!(
            s.claim_plan("a", "owner-a", Duration::from_secs(60))
                .expect("claim")
                .is_some()
        );
        // Another writer holds the lock (an applier's commit): an idle
        // host's look, with nothing claimable (the plan's lease is live),
        // neither waits for it nor fails on it.
        let other = rusqlite::Connection::open(dir.path().join("s.db")).expect("open");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        assert_eq!(
            s.claim_plan("b", "owner-b", Duration::from_secs(60))
                .expect("no lock needed"),
            None
        );
        other.execute_batch("COMMIT").expect("unlock");
    }

    #[test]
    fn threads_racing_for_queued_plans_claim_disjoint_sets_covering_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plans = queued(dir.path(), 200);
        let claimed: Vec<Vec<String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..3)
                .map(|i| {
                    let dir = dir.path();
                    sc.spawn(move || {
                        let mut s = store(dir);
                        let mut mine = Vec::new();
                        while let Some(c) = s
                            .claim_plan(&format!("h{i}"), &format!("o{i}"), Duration::from_secs(60))
                            .expect("claim")
                        {
                            assert_eq!(c.state, PlanState::Pending);
                            mine.push(c.plan_uuid);
                        }
                        mine
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let mut all: Vec<String> = claimed.concat();
        assert_eq!(all.len(), plans.len(), "each plan claimed once");
        all.sort();
        let mut want = plans.clone();
        want.sort();
        assert_eq!(all, want);
        // One claimed event per plan, naming its host.
        let s = Store::open(dir.path().join("s.db")).expect("open");
        let events: Vec<_> = s
            .events(None, 0)
            .expect("events")
            .into_iter()
            .filter(|e| e.event_type == EventType::PlanClaimed)
            .collect();
        assert_eq!(events.len(), plans.len());
        assert!(events.iter().all(|e| e.payload["host"].is_string()));
    }

    #[test]
    fn a_plan_whose_lease_expired_is_claimed_again_as_resumed_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = queued(dir.path(), 1).remove(0);
        let mut s = store(dir.path());
        let c = s
            .claim_plan("a", "owner-a", Duration::from_millis(300))
            .expect("claim")
            .expect("one");
        assert!(!c.resumed());
        assert!(
            s.plan_transition(
                &plan,
                &[PlanState::Pending],
                PlanState::Ongoing,
                None,
                EventType::PlanExecutionStart
            )
            .expect("start")
        );
        assert_eq!(
            s.claim_plan("b", "owner-b", Duration::from_secs(60))
                .expect("claim"),
            None
        );
        std::thread::sleep(Duration::from_millis(400));
        let c = s
            .claim_plan("b", "owner-b", Duration::from_secs(60))
            .expect("claim")
            .expect("expired: claimable");
        assert!(c.resumed());
        assert_eq!(c.previous_owner.as_deref(), Some("owner-a"));
        // Renewed in bulk only by its owner.
        assert_eq!(
            s.renew_leases(
                &["owner-b".into(), "nobody".into()],
                Duration::from_secs(60)
            )
            .expect("renew"),
            1
        );
        assert_eq!(
            s.renew_leases(&[], Duration::from_secs(60)).expect("renew"),
            0
        );
        // The first owner lost it: it cannot renew.
        assert!(
            !s.renew_lease(&plan, "owner-a", Duration::from_secs(60))
                .expect("renew")
        );
        assert!(
            s.renew_lease(&plan, "owner-b", Duration::from_secs(60))
                .expect("renew")
        );
    }

    #[test]
    fn one_host_wins_each_tick_and_services_go_failed_after_the_down_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        assert!(s.claim_audit_tick("a", "t1", "h1").expect("claim"));
        assert!(!s.claim_audit_tick("a", "t1", "h2").expect("claim"));
        assert!(s.claim_audit_tick("a", "t2", "h2").expect("claim"));
        assert!(s.claim_audit_tick("b", "t1", "h2").expect("claim"));
        // A claim whose host died before the run moved on is taken over
        // once stale, and only then.
        s.conn()
            .execute(
                "UPDATE audit_ticks SET claimed_at = '2000-01-01T00:00:00.000Z' WHERE tick = 't2'",
                [],
            )
            .expect("age it");
        assert!(!s.claim_audit_tick("a", "t1", "h3").expect("claim"));
        assert!(
            s.claim_audit_tick("a", "t2", "h3")
                .expect("stale: taken over")
        );
        assert!(!s.claim_audit_tick("a", "t2", "h1").expect("fresh again"));
        s.heartbeat("h1", Role::Decision, None).expect("beat");
        s.heartbeat("h1", Role::Applier, Some("hello"))
            .expect("beat");
        s.heartbeat("h1", Role::Applier, None)
            .expect("beat again: one row");
        let rows = s.services(Duration::from_secs(90)).expect("services");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "watcher-decision-engine");
        assert_eq!(rows[1].name, "watcher-applier");
        assert!(
            rows.iter()
                .all(|r| r.status == ServiceStatus::Active && r.host == "h1")
        );
        std::thread::sleep(Duration::from_millis(300));
        let rows = s.services(Duration::from_millis(200)).expect("services");
        assert!(
            rows.iter().all(|r| r.status == ServiceStatus::Failed),
            "{rows:?}"
        );
    }
}
