//! What several `sextant serve` hosts on one database need from the store
//! (docs/fleet.md): their rows in Watcher's `services` table with a
//! heartbeat, atomic claims of queued and orphaned plans, atomic claims of
//! audit runs (one CONTINUOUS tick, one EVENT trigger), audit runs asked of
//! the decision hosts by the others, and wakeups.
//!
//! Every time here is the database's clock, never a host's: hosts whose
//! clocks disagree still agree on who is alive and who holds a plan.
//! SQLite implements it in `hosts.rs` (transactions taken IMMEDIATE, so
//! one writer decides), PostgreSQL in `pg_hosts.rs` (`FOR UPDATE SKIP
//! LOCKED … RETURNING`, a unique key, LISTEN/NOTIFY).

use super::Result;
use crate::states::PlanState;
pub use crate::states::{AuditRequestKind, Role, ServiceStatus};
use std::time::Duration;

/// One row of `services`, with its status worked out on read.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServiceRow {
    /// Watcher's integer id.
    pub id: i64,
    /// Watcher's service name (`watcher-decision-engine`, `watcher-applier`).
    pub name: String,
    /// The host id of the `serve` that runs it.
    pub host: String,
    /// Its last heartbeat (RFC 3339, the database's clock).
    pub last_seen_up: String,
    /// ACTIVE, or FAILED once its heartbeat is older than the down time.
    pub status: ServiceStatus,
    /// What it last said about itself (why it stopped claiming work, and
    /// when it came back).
    pub status_message: Option<String>,
    /// When the row was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: Option<String>,
}

/// A plan a host claimed: it holds the plan's lease for the claim's ttl.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanClaim {
    /// The plan.
    pub plan_uuid: String,
    /// Its state when claimed: PENDING (queued), or ONGOING / CANCELLING
    /// (interrupted: its previous holder's lease expired or was given back).
    pub state: PlanState,
    /// Who held its lease before, if anyone.
    pub previous_owner: Option<String>,
}

impl PlanClaim {
    /// Whether the plan was interrupted and is now resumed.
    pub fn resumed(&self) -> bool {
        self.state != PlanState::Pending
    }
}

/// An audit run asked of the decision hosts, as one of them took it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRunRequest {
    /// Its id (to finish it with).
    pub id: i64,
    /// The audit.
    pub audit_uuid: String,
    /// Run or trigger.
    pub kind: AuditRequestKind,
    /// The host that asked.
    pub requested_by: String,
}

/// A firing alert as the Alertmanager receiver's dedupe knows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiringAlert {
    /// Its group (Alertmanager's `groupKey`).
    pub group: String,
    /// Its `fingerprint` (or, from a sender that gives none, its labels).
    pub fingerprint: String,
    /// When it started firing (`startsAt`): the same alert firing again
    /// after it resolved is a new one.
    pub starts_at: String,
}

/// The alerts in a fixed order without repeats: hosts admitting the same
/// alerts take their rows' locks in the same order.
pub(super) fn sorted_alerts(alerts: &[FiringAlert]) -> Vec<&FiringAlert> {
    let mut v: Vec<&FiringAlert> = alerts.iter().collect();
    v.sort();
    v.dedup();
    v
}

/// How old a claim of an audit's tick must be before another host may take
/// it over: far longer than a run takes to record its next run time.
pub const TICK_CLAIM_STALE: Duration = Duration::from_secs(60);

/// How much longer than the receiver's window a row of `alert_runs` is
/// kept, whatever its audit: admitting any alert removes every row older
/// than the window plus this margin, so the table holds only the alerts of
/// the last window and margin (a host configured with a window up to this
/// much longer than another's keeps its dedupe).
pub const ALERT_RUN_RETENTION_MARGIN: Duration = Duration::from_secs(3600);

/// How old a row of `alert_runs` may be before any admission removes it.
pub(super) fn alert_run_retention(window: Duration) -> Duration {
    window.saturating_add(ALERT_RUN_RETENTION_MARGIN)
}

/// The channel PostgreSQL notifies on when there is work for idle hosts.
pub const WORK_CHANNEL: &str = "sextant_work";

/// The store operations of several hosts.
pub trait FleetStore {
    /// Records this host's heartbeat for `role`: its row in `services`
    /// (made if missing) gets `last_seen_up` = the database's now and
    /// `status_message`.
    fn heartbeat(&mut self, host: &str, role: Role, status_message: Option<&str>) -> Result<()>;

    /// Every service not deleted, by id, each ACTIVE when its heartbeat is
    /// at most `down_time` old on the database's clock, else FAILED.
    fn services(&mut self, down_time: Duration) -> Result<Vec<ServiceRow>>;

    /// Claims one plan for `owner` on host `host`: the oldest PENDING plan,
    /// or ONGOING / CANCELLING one, whose lease is free (none, or expired
    /// on the database's clock). Atomically: of hosts claiming at once,
    /// each gets a different plan. The claim is the lease (`owner`, now +
    /// `ttl`), the plan's `hostname`, and an `action_plan.claimed` event,
    /// in one transaction. `None` when nothing is claimable.
    fn claim_plan(&mut self, host: &str, owner: &str, ttl: Duration) -> Result<Option<PlanClaim>>;

    /// Renews, to now + `ttl`, the leases `owners` still hold: a host
    /// keeps the plans it claimed while their appliers start (and run), in
    /// one statement. Returns how many it renewed.
    fn renew_leases(&mut self, owners: &[String], ttl: Duration) -> Result<usize>;

    /// Claims one run of an audit: `tick` names it (a CONTINUOUS audit's
    /// due time, an EVENT audit's trigger). True for exactly one of the
    /// hosts that claim the same `(audit, tick)`, unless that claim is
    /// older than [`TICK_CLAIM_STALE`]: its host died before the run moved
    /// the audit on (a run changes what names the next tick at once), and
    /// the next host to claim it takes it over.
    fn claim_audit_tick(&mut self, audit_uuid: &str, tick: &str, host: &str) -> Result<bool>;

    /// Asks the hosts of the `decision` role to run (`kind`) an audit, for
    /// `host`, which does not run the decision engine: a request that
    /// survives every host's restart until one handles it (and wakes the
    /// listening hosts).
    fn request_audit(&mut self, audit_uuid: &str, kind: AuditRequestKind, host: &str)
    -> Result<()>;

    /// Takes, for `host`, at most `limit` requests, oldest first: those no
    /// host took, and those taken more than [`TICK_CLAIM_STALE`] ago (their
    /// taker died before finishing them). Atomically: of hosts taking at
    /// once, each gets different requests.
    fn take_audit_requests(&mut self, host: &str, limit: usize) -> Result<Vec<AuditRunRequest>>;

    /// Removes a request its taker has handled (whatever the audit's
    /// outcome).
    fn finish_audit_request(&mut self, id: i64) -> Result<()>;

    /// Admits a run of EVENT audit `audit_uuid` for the firing `alerts`
    /// (Alertmanager's dedupe, fleet-wide and durable): true when any of
    /// them has not triggered it within `window` on the database's clock,
    /// and then every one of them is recorded (by `host`, now) in one
    /// transaction; false when all of them already did. Of hosts (or
    /// restarted processes) admitting the same alerts at once, exactly one
    /// gets true: each alert is a row under a unique key. In the same
    /// transaction, the rows of every audit older than the window plus
    /// [`ALERT_RUN_RETENTION_MARGIN`] are removed, so that the table does
    /// not grow with every distinct alert.
    fn admit_alert_run(
        &mut self,
        audit_uuid: &str,
        alerts: &[FiringAlert],
        window: Duration,
        host: &str,
    ) -> Result<bool>;

    /// Starts listening for work announcements; false when the backend has
    /// none (SQLite: hosts poll).
    fn listen_for_work(&mut self) -> Result<bool>;

    /// Waits up to `timeout` for work announcements (a plan queued or given
    /// back, an audit created or made PENDING) and returns their payloads;
    /// empty at the timeout, and at once when the backend has none.
    fn wait_for_work(&mut self, timeout: Duration) -> Result<Vec<String>>;

    /// Announces work to every listening host (nothing on SQLite).
    fn announce_work(&mut self, what: &str) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        audit_requests_are_taken_once_finished_for_good_and_taken_over_when_stale,
        an_alert_admits_one_run_of_its_audit_within_the_window,
        admitting_any_alert_prunes_every_audits_rows_past_the_retention,
    );

    fn audit_requests_are_taken_once_finished_for_good_and_taken_over_when_stale(mut s: TestStore) {
        s.request_audit("a1", AuditRequestKind::Run, "hands")
            .expect("request");
        s.request_audit("a2", AuditRequestKind::Trigger, "hands")
            .expect("request");
        s.request_audit("a3", AuditRequestKind::Run, "hands")
            .expect("request");
        // Oldest first, at most the limit, each to one taker.
        let first = s.take_audit_requests("judge-1", 2).expect("take");
        let got: Vec<_> = first
            .iter()
            .map(|r| (r.audit_uuid.as_str(), r.kind, r.requested_by.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a1", AuditRequestKind::Run, "hands"),
                ("a2", AuditRequestKind::Trigger, "hands")
            ]
        );
        let second = s.take_audit_requests("judge-2", 10).expect("take");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].audit_uuid, "a3");
        assert!(
            s.take_audit_requests("judge-3", 10)
                .expect("take")
                .is_empty()
        );
        // Finished: gone for good.
        s.finish_audit_request(first[0].id).expect("finish");
        s.finish_audit_request(second[0].id).expect("finish");
        // The one whose taker died is taken over once stale, and only then.
        s.exec("UPDATE audit_requests SET taken_at = '2000-01-01T00:00:00.000Z'");
        let over = s.take_audit_requests("judge-3", 10).expect("take");
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].audit_uuid, "a2");
        assert!(
            s.take_audit_requests("judge-1", 10)
                .expect("take")
                .is_empty()
        );
    }

    fn alert(fingerprint: &str, starts_at: &str) -> FiringAlert {
        FiringAlert {
            group: "{}:{alertname=\"Hot\"}".into(),
            fingerprint: fingerprint.into(),
            starts_at: starts_at.into(),
        }
    }

    fn an_alert_admits_one_run_of_its_audit_within_the_window(mut s: TestStore) {
        let w = Duration::from_secs(600);
        let f1 = alert("f1", "2026-12-06T08:00:00Z");
        let f2 = alert("f2", "2026-12-06T08:00:00Z");
        assert!(
            s.admit_alert_run("a", std::slice::from_ref(&f1), w, "h1")
                .expect("admit")
        );
        // The same alert again, from another host: no.
        assert!(
            !s.admit_alert_run("a", std::slice::from_ref(&f1), w, "h2")
                .expect("admit")
        );
        // The same alert for another audit: yes.
        assert!(
            s.admit_alert_run("b", std::slice::from_ref(&f1), w, "h2")
                .expect("admit")
        );
        // A new alert joins the group: yes, once (repeats count once).
        let both = [f2.clone(), f1.clone(), f2.clone()];
        assert!(s.admit_alert_run("a", &both, w, "h2").expect("admit"));
        assert!(!s.admit_alert_run("a", &both, w, "h1").expect("admit"));
        assert_eq!(
            s.int("SELECT COUNT(*) FROM alert_runs WHERE audit_uuid = 'a' AND host = 'h2'"),
            Some(2),
            "the host that won holds both alerts"
        );
        // The first alert firing again after it resolved: yes.
        let again = alert("f1", "2026-12-06T09:00:00Z");
        assert!(s.admit_alert_run("a", &[again], w, "h1").expect("admit"));
        // Past the window (on the database's clock), a still firing alert
        // triggers again, and the audit's aged rows are gone; so are
        // another audit's, aged past the retention.
        s.exec("UPDATE alert_runs SET claimed_at = '2000-01-01T00:00:00.000Z'");
        assert!(
            s.admit_alert_run("a", std::slice::from_ref(&f1), w, "h3")
                .expect("admit")
        );
        assert_eq!(
            s.int("SELECT COUNT(*) FROM alert_runs WHERE audit_uuid = 'a'"),
            Some(1)
        );
        assert_eq!(
            s.int("SELECT COUNT(*) FROM alert_runs WHERE audit_uuid = 'b'"),
            Some(0)
        );
        // Nothing admitted for no alert.
        assert!(!s.admit_alert_run("a", &[], w, "h1").expect("admit"));
    }

    /// `claimed_at` as the store writes it, `age` before now.
    fn claimed_ago(age: Duration) -> String {
        let at = chrono::Utc::now() - chrono::Duration::from_std(age).expect("age");
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    fn admitting_any_alert_prunes_every_audits_rows_past_the_retention(mut s: TestStore) {
        let w = Duration::from_secs(600);
        let retention = alert_run_retention(w);
        let minute = Duration::from_secs(60);
        let row = |audit: &str, fingerprint: &str, age: Duration| {
            format!(
                "INSERT INTO alert_runs (audit_uuid, group_key, fingerprint, starts_at, host, claimed_at) \
                 VALUES ('{audit}', 'g', '{fingerprint}', '2026-12-06T08:00:00Z', 'h0', '{}')",
                claimed_ago(age)
            )
        };
        // Alerts of audits never alerted again: one past the retention,
        // one past the window but inside the retention, one inside the
        // window.
        s.exec(&row("old", "f-old", retention + 10 * minute));
        s.exec(&row("kept", "f-kept", retention - 10 * minute));
        s.exec(&row("recent", "f-recent", minute));
        assert_eq!(s.int("SELECT COUNT(*) FROM alert_runs"), Some(3));
        // Admitting another audit's alert prunes only the row past it.
        assert!(
            s.admit_alert_run("other", &[alert("f1", "2026-12-06T08:00:00Z")], w, "h1")
                .expect("admit")
        );
        assert_eq!(
            s.int("SELECT COUNT(*) FROM alert_runs WHERE audit_uuid = 'old'"),
            Some(0),
            "the row past the retention is gone"
        );
        assert_eq!(
            s.int(
                "SELECT COUNT(*) FROM alert_runs WHERE audit_uuid IN ('kept', 'recent', 'other')"
            ),
            Some(3),
            "rows inside the retention stay"
        );
        // The alert inside the window still holds its audit's run back.
        let recent = FiringAlert {
            group: "g".into(),
            fingerprint: "f-recent".into(),
            starts_at: "2026-12-06T08:00:00Z".into(),
        };
        assert!(
            !s.admit_alert_run("recent", std::slice::from_ref(&recent), w, "h2")
                .expect("admit")
        );
        // The one past the window no longer does.
        let kept = FiringAlert {
            fingerprint: "f-kept".into(),
            ..recent.clone()
        };
        assert!(s.admit_alert_run("kept", &[kept], w, "h2").expect("admit"));
        assert_eq!(s.int("SELECT COUNT(*) FROM alert_runs"), Some(3));
    }
}
