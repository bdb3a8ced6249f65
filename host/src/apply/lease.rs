//! The applier's lease on its plan: taking it (or taking it over from a
//! dead holder on this host), releasing it, and the owner id it is held by.
//! Renewal happens in the engine's loop.

use super::*;

/// This applier's owner id: `host:pid:random`.
pub fn owner_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &crate::store::new_uuid()[..8]
    )
}

/// The owner id of an applier a `serve` host runs for a plan it claimed:
/// `host_id:pid:random`. When the host id is not this machine's hostname, a
/// dead holder is never taken over early: its lease expires first.
pub fn owner_id_for(host_id: &str) -> String {
    format!(
        "{host_id}:{}:{}",
        std::process::id(),
        &crate::store::new_uuid()[..8]
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether an owner id names a process of this host that no longer runs.
fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    host == hostname()
        && pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// Takes the lease on the plan, or takes it over from a holder on this host
/// whose process is gone (instead of waiting for its lease to expire).
pub(super) async fn acquire(shared: &Arc<Shared>) -> Result<(), ApplyError> {
    let plan_uuid = shared.plan_uuid.clone();
    let owner = shared.opts.owner.clone();
    let (p, o) = (plan_uuid.clone(), owner.clone());
    if let Err(lease) = db(shared, move |s| s.acquire_lease(&p, &o, LEASE_TTL)).await? {
        let (p, o, old) = (plan_uuid.clone(), owner, lease.owner.clone());
        let taken = owner_is_dead(&lease.owner)
            && db(shared, move |s| s.take_over_lease(&p, &old, &o, LEASE_TTL)).await?;
        if !taken {
            return Err(ApplyError::LeaseHeld {
                plan: plan_uuid,
                lease,
            });
        }
        tracing::warn!(
            "took over action plan {plan_uuid} from {}, which is not running any more",
            lease.owner
        );
    }
    Ok(())
}

/// Gives the lease back (best effort: it expires anyway).
pub(super) async fn release(shared: &Arc<Shared>) {
    let (p, o) = (shared.plan_uuid.clone(), shared.opts.owner.clone());
    let _ = db(shared, move |s| s.release_lease(&p, &o)).await;
}
