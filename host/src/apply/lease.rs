//! The applier's lease on its plan: taking it (or taking it over from a
//! dead holder on this host), releasing it, and the owner id it is held by.
//! A running applier renews its own in the engine's loop; a `serve` host
//! renews the leases of the plans it claimed with a [`LeaseKeeper`], on a
//! thread of its own.
//!
//! Every write the applier makes for its plan is fenced by the lease: each
//! action transition carries the applier's owner id (`Shared::commit_many`
//! stamps it) and applies only while that owner holds the plan's lease,
//! checked in the same transaction; so are its plan transitions, its
//! flow decisions ([`leased`]), a retry's note (`Shared::note_once`), the
//! options a `serve` applier records at its start, and the renewal before
//! a retry. A host paused past its lease (SIGSTOP, a frozen
//! VM) whose plan another host claimed meanwhile therefore writes nothing
//! more for it when it goes on: not the end of what it was running, not
//! the ONGOING of a next action (the compare-and-set that starts an action
//! is fenced, so it never starts one). The first refusal stops the
//! applier: it logs that it lost the lease, starts nothing more, and ends
//! with [`ApplyError::LeaseLost`].

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

impl Shared {
    /// This applier found that another holds its plan's lease (a fenced
    /// write refused, a renewal refused): from now on it starts nothing and
    /// ends with [`ApplyError::LeaseLost`]. Said once, naming the holder.
    pub(super) fn lose_lease(&self) {
        if self.lease_lost.get().is_some() {
            return;
        }
        let holder = self
            .db(|s| s.lease(&self.plan_uuid))
            .ok()
            .flatten()
            .map_or_else(|| "nobody".to_string(), |l| l.owner);
        if self.lease_lost.set(holder.clone()).is_ok() {
            tracing::error!(
                plan = %self.plan_uuid,
                "action plan {}: this applier ({}) lost its lease on it to {holder} (its lease had lapsed, and another applier claimed the plan); stopped applying the plan here: no further action starts, and no write of this applier for it is accepted",
                self.plan_uuid,
                self.opts.owner
            );
        }
    }

    /// The end of a run whose lease was lost, if it was.
    pub(super) fn lease_lost_error(&self) -> Option<ApplyError> {
        self.lease_lost.get().map(|holder| ApplyError::LeaseLost {
            plan: self.plan_uuid.clone(),
            owner: self.opts.owner.clone(),
            holder: holder.clone(),
        })
    }
}

/// Whether a store answer is the lease fence's refusal.
pub(super) fn is_lease_lost<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::LeaseLost { .. }))
}

/// A write of the applier for its plan outside its group commit (a flow
/// decision, a transition of recovery or rollback): `f` writes it fenced
/// by this applier's lease, with the owner id it is given; a refusal
/// stops the applier (see [`Shared::lose_lease`]).
pub(super) async fn leased<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl Fn(&mut Store, &str) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let owner = shared.opts.owner.clone();
    let result = db(shared, move |s| f(s, &owner)).await;
    if is_lease_lost(&result) {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.lose_lease()).await;
    }
    result
}

/// One action transition of the applier outside its group commit
/// (recovery, rollback), fenced by its lease as the group commit's are.
pub(super) async fn leased_action_transition(
    shared: &Arc<Shared>,
    uuid: &str,
    from: &[ActionState],
    to: ActionState,
    message: &str,
    event: EventType,
) -> Result<bool, StoreError> {
    let t = ActionTransition::new(uuid, from, to, Some(message.into()), None, event)
        .fenced_by(&shared.opts.owner);
    leased(shared, move |s, _| {
        s.action_transitions(std::slice::from_ref(&t))?
            .pop()
            .unwrap_or(Ok(false))
    })
    .await
}

/// Renews this applier's lease before it runs an action again (a retry,
/// which has no compare-and-set of its own to start it: the action is
/// ONGOING already): false when the lease is another's now, and the
/// applier stops (see [`Shared::lose_lease`]).
pub(super) async fn still_held(shared: &Arc<Shared>) -> Result<bool, StoreError> {
    let (p, o) = (shared.plan_uuid.clone(), shared.opts.owner.clone());
    let held = db(shared, move |s| s.renew_lease(&p, &o, LEASE_TTL)).await?;
    if !held {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.lose_lease()).await;
    }
    Ok(held)
}

/// Gives the lease back (best effort: it expires anyway).
pub(super) async fn release(shared: &Arc<Shared>) {
    let (p, o) = (shared.plan_uuid.clone(), shared.opts.owner.clone());
    let _ = db(shared, move |s| s.release_lease(&p, &o)).await;
}

/// A `serve` host's renewal of the leases it holds (the plans it claimed,
/// while their appliers start, run or wait to apply them again): every
/// `every`, on a thread and a connection of its own, so that a round of
/// `serve`'s loop that stalls (a long audit run by the decision engine, a
/// slow database call) does not let them lapse and another host claim a
/// plan this host still has (a second claim; the plan's applier here then
/// finds its lease taken and stops). Stops when dropped.
pub struct LeaseKeeper {
    owners: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Renews the leases of the owners last given to
    /// [`LeaseKeeper::keep`], to now + `ttl`, every `every`, over a store
    /// `open` opens (again after a failure; `serve`'s opens only the
    /// database it started with).
    pub fn start(
        open: impl Fn() -> Result<Store, StoreError> + Send + 'static,
        ttl: Duration,
        every: Duration,
    ) -> Self {
        let owners: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, s) = (Arc::clone(&owners), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("leases".into())
            .spawn(move || keep_renewing(&open, ttl, every, &o, &s))
            .ok();
        Self {
            owners,
            stop,
            thread,
        }
    }

    /// The owners whose leases it renews from now on (those it was given
    /// before and not now are no longer renewed).
    pub fn keep(&self, owners: Vec<String>) {
        *lock(&self.owners) = owners;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn keep_renewing(
    open: &dyn Fn() -> Result<Store, StoreError>,
    ttl: Duration,
    every: Duration,
    owners: &Mutex<Vec<String>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    const STOP_POLL: Duration = Duration::from_millis(50);
    // Opened at once: a connection it holds is not refused later (a
    // role's connection limit, a server at max_connections).
    let mut store: Option<Store> = open().ok();
    let mut next = Instant::now() + every;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(STOP_POLL.min(next - now));
            continue;
        }
        next = now + every;
        let held = lock(owners).clone();
        if held.is_empty() {
            continue;
        }
        if store.is_none() {
            match open() {
                Ok(s) => store = Some(s),
                Err(e) => {
                    tracing::debug!("renewing this host's leases: {e}");
                    continue;
                }
            }
        }
        if let Some(s) = store.as_mut()
            && let Err(e) = s.renew_leases(&held, ttl)
        {
            // A new connection next time (serve's loop says why the
            // database cannot be reached).
            tracing::debug!("renewing this host's leases: {e}");
            store = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        a_hosts_leases_are_renewed_while_its_loop_stalls,
        a_refused_retry_note_or_flow_decision_stops_the_applier,
    );

    /// An applier of `plan` as `owner`, over its own connection to `t`'s
    /// database.
    fn applier_of(t: &TestStore, plan: &str, owner: &str) -> Applier {
        Applier::for_tests(&t.location, plan, owner)
    }

    /// The applier's writes outside its group commit that were not fenced
    /// before (a retry's note, a flow decision): by an applier whose lease
    /// another claimed, each is refused, writes nothing, and stops the
    /// applier naming the new holder, as a refused transition does; the
    /// holder's are written.
    fn a_refused_retry_note_or_flow_decision_stops_the_applier(mut t: TestStore) {
        const OLD: &str = "host-a:1:old";
        const NEW: &str = "host-b:2:new";
        let (plan, uuids) = t.plan_of_nops(1);
        assert!(
            t.acquire_lease(&plan, OLD, LEASE_TTL)
                .expect("acquire")
                .is_ok()
        );
        assert!(
            t.take_over_lease(&plan, OLD, NEW, LEASE_TTL)
                .expect("take over")
        );
        let events = t.last_event_id().expect("last event");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let note = |a: &Applier| {
            a.shared.note_once(
                EventType::ActionExecutionRetry,
                &uuids[0],
                Some(&plan),
                json!({"attempt": 2, "of": 3}),
            )
        };
        let decide = |a: &Applier| {
            let p = plan.clone();
            rt.block_on(leased(&a.shared, move |s, owner| {
                s.flow_transition(
                    &p,
                    Some(owner),
                    "f",
                    crate::states::FlowState::Failed,
                    None,
                    EventType::FlowFailed,
                    json!({}),
                )
            }))
        };
        let old = applier_of(&t, &plan, OLD);
        let r = note(&old);
        assert!(is_lease_lost(&r), "{r:?}");
        assert_eq!(old.shared.lease_lost.get().map(String::as_str), Some(NEW));
        let old = applier_of(&t, &plan, OLD);
        let r = decide(&old);
        assert!(is_lease_lost(&r), "{r:?}");
        assert_eq!(old.shared.lease_lost.get().map(String::as_str), Some(NEW));
        assert_eq!(t.last_event_id().expect("last event"), events, "written");
        let new = applier_of(&t, &plan, NEW);
        assert!(note(&new).is_ok() && decide(&new).is_ok());
        assert!(new.shared.lease_lost.get().is_none());
        assert_eq!(t.events(Some(&plan), events).expect("events").len(), 2);
    }

    /// The leases a host keeps stay its own while the thread that keeps
    /// them (serve's loop) does nothing for three times their length; a
    /// lease no longer kept lapses. Before, only serve's loop renewed them,
    /// between its rounds.
    fn a_hosts_leases_are_renewed_while_its_loop_stalls(mut s: TestStore) {
        let ttl = Duration::from_millis(1500);
        let (kept, _) = s.plan_of_nops(1);
        let (dropped, _) = s.plan_of_nops(1);
        for (plan, owner) in [(&kept, "host-a:1:kept"), (&dropped, "host-a:1:dropped")] {
            assert!(
                s.acquire_lease(plan, owner, ttl).expect("acquire").is_ok(),
                "{plan}"
            );
        }
        let at = s.location.clone();
        let keeper = LeaseKeeper::start(move || Store::open(&at), ttl, Duration::from_millis(300));
        keeper.keep(vec!["host-a:1:kept".into(), "host-a:1:dropped".into()]);
        std::thread::sleep(Duration::from_millis(1000));
        keeper.keep(vec!["host-a:1:kept".into()]);
        // serve's loop stalls: nothing renews but the keeper.
        std::thread::sleep(ttl * 3);
        assert!(!s.plan_lease_is_free(&kept).expect("lease"), "it lapsed");
        assert_eq!(
            s.lease(&kept).expect("lease").map(|l| l.owner).as_deref(),
            Some("host-a:1:kept")
        );
        assert!(s.plan_lease_is_free(&dropped).expect("lease"));
        // Another host cannot take the kept one; it takes the other.
        assert!(
            s.acquire_lease(&kept, "host-b:2:x", ttl)
                .expect("acquire")
                .is_err()
        );
        assert!(
            s.acquire_lease(&dropped, "host-b:2:x", ttl)
                .expect("acquire")
                .is_ok()
        );
        drop(keeper);
    }
}
