//! The applier lease on PostgreSQL: the same operations as SQLite's
//! (`apply.rs`), each one statement, with expiry times from the database's
//! clock, so hosts whose clocks disagree agree on who holds a plan.

use super::apply::Lease;
use super::pg::PgStore;
use super::pg_sql::{Sql, args};
use super::{Result, StoreError};
use crate::states::{EventType, PlanState};

/// `now() + ttl` on the database's clock, as the RFC 3339 text (UTC,
/// milliseconds) leases are stored in.
const EXPIRY: &str = "to_char((clock_timestamp() + make_interval(secs => $1)) AT TIME ZONE 'UTC', \
     'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
/// The database's `now`, in the same text.
const NOW: &str =
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

fn secs(ttl: std::time::Duration) -> f64 {
    ttl.as_secs_f64()
}

/// The lease fence of an applier's write that does not lock the plan's
/// row (a note, a flow decision): with `owner`, the plan's transaction lock
/// (schema 17's, which every change of the plan's lease owner takes too:
/// schema 19's trigger), then its owner, read in a statement of its own so
/// that it sees a claim that committed while this one waited for the lock;
/// not held, [`StoreError::LeaseLost`] (the caller's transaction then
/// writes nothing). As the group commit's function, schema 19. `None`: no
/// check.
pub(super) fn fence(
    db: &mut Sql<'_, postgres::Transaction<'_>>,
    plan: &str,
    owner: Option<&str>,
) -> Result<()> {
    let Some(owner) = owner else {
        return Ok(());
    };
    db.exec(
        "SELECT pg_advisory_xact_lock(6195108, hashtext($1))",
        args![plan],
    )?;
    let holder: Option<String> = match db.opt(
        "SELECT lease_owner FROM action_plans WHERE uuid = $1",
        args![plan],
    )? {
        Some(r) => r.get(0)?,
        None => None,
    };
    if holder.as_deref() == Some(owner) {
        return Ok(());
    }
    Err(StoreError::LeaseLost {
        plan: plan.into(),
        owner: owner.into(),
    })
}

impl PgStore {
    /// Takes the lease on a plan for `ttl`, unless another owner holds an
    /// unexpired one (returned as the error's lease).
    pub fn acquire_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<std::result::Result<(), Lease>> {
        let taken = self.read(|db| {
            db.exec(
                &format!(
                    "UPDATE action_plans SET lease_owner = $2, lease_expires_at = {EXPIRY} \
                     WHERE uuid = $3 AND (lease_owner IS NULL OR lease_owner = $2 \
                     OR lease_expires_at < {NOW})"
                ),
                args![secs(ttl), owner, plan_uuid],
            )
        })?;
        if taken == 1 {
            return Ok(Ok(()));
        }
        Ok(Err(self.lease(plan_uuid)?.unwrap_or(Lease {
            owner: String::new(),
            expires_at: String::new(),
        })))
    }

    /// Takes over a lease from `old_owner` (known to be dead); false when
    /// someone else took it first.
    pub fn take_over_lease(
        &mut self,
        plan_uuid: &str,
        old_owner: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let n = self.read(|db| {
            db.exec(
                &format!(
                    "UPDATE action_plans SET lease_owner = $2, lease_expires_at = {EXPIRY} \
                     WHERE uuid = $3 AND lease_owner = $4"
                ),
                args![secs(ttl), owner, plan_uuid, old_owner],
            )
        })?;
        Ok(n == 1)
    }

    /// Renews a lease this owner holds; false when it lost it.
    pub fn renew_lease(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let n = self.read(|db| {
            db.exec(
                &format!(
                    "UPDATE action_plans SET lease_expires_at = {EXPIRY} \
                     WHERE uuid = $2 AND lease_owner = $3"
                ),
                args![secs(ttl), plan_uuid, owner],
            )
        })?;
        Ok(n == 1)
    }

    /// Gives a lease back.
    pub fn release_lease(&mut self, plan_uuid: &str, owner: &str) -> Result<()> {
        self.read(|db| {
            db.exec(
                "UPDATE action_plans SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE uuid = $1 AND lease_owner = $2",
                args![plan_uuid, owner],
            )
        })?;
        Ok(())
    }

    /// [`PgStore::plan_transition`] fenced by the plan's lease: in one
    /// transaction, the plan's row locked, only while `owner` holds its
    /// lease; else [`StoreError::LeaseLost`] and nothing written.
    pub fn leased_plan_transition(
        &mut self,
        plan_uuid: &str,
        owner: &str,
        from: &[PlanState],
        to: PlanState,
        message: Option<&str>,
        event_type: EventType,
    ) -> Result<bool> {
        self.plan_transition_as(plan_uuid, Some(owner), from, to, message, event_type)
    }

    /// The lease on a plan, if any (even expired).
    pub fn lease(&self, plan_uuid: &str) -> Result<Option<Lease>> {
        let row = self.read(|db| {
            db.opt(
                "SELECT lease_owner, lease_expires_at FROM action_plans WHERE uuid = $1",
                args![plan_uuid],
            )
        })?;
        let Some(r) = row else {
            return Ok(None);
        };
        let owner: Option<String> = r.get(0)?;
        let expires: Option<String> = r.get(1)?;
        Ok(owner.map(|owner| Lease {
            owner,
            expires_at: expires.unwrap_or_default(),
        }))
    }

    /// Whether no applier holds the plan: no lease, or an expired one (on
    /// the database's clock).
    pub fn plan_lease_is_free(&self, plan_uuid: &str) -> Result<bool> {
        let row = self.read(|db| {
            db.opt(
                &format!(
                    "SELECT lease_owner IS NULL OR lease_expires_at IS NULL \
                     OR lease_expires_at < {NOW} FROM action_plans WHERE uuid = $1"
                ),
                args![plan_uuid],
            )
        })?;
        row.map_or(Ok(true), |r| r.get::<bool>(0))
    }
}
