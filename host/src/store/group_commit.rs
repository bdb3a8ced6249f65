//! The group commit: action transitions from many threads, committed in
//! shared transactions, each before its caller goes on. The applier's
//! threads call it; the transaction's shape is the store's
//! ([`Store::action_transitions`]).

use super::apply::ActionTransition;
use super::{Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a queued thread waits before it looks at the store again when
/// the store is held outside the group commit (a read, the lease), whose
/// holder wakes no one when it lets go.
const POLL_OUTSIDE: Duration = Duration::from_millis(1);

/// How long a queued thread waits while a leader commits: the leader wakes
/// it (its results, or its turn to lead), so this only bounds a lost
/// wake-up. Waking every millisecond instead cost a thread several
/// context switches a commit when a commit takes milliseconds (a
/// PostgreSQL batch with its fsync), on every queued thread.
const POLL_LEADER: Duration = Duration::from_millis(50);

/// Requests queued, at least, before a second batch is sent while one is
/// in flight: a second lane taken by every thread that found it free sent
/// batches of one or two transitions (11,355 commits for a 10,000-action
/// parallel plan, against 715 with one lane), each with its commit.
const SECOND_BATCH_AT_LEAST: usize = 8;

/// Locks a mutex, whether or not a panicking holder poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Group commit of action transitions, led by whoever finds a store free.
///
/// A thread that commits a transition queues it; if a store (a lane) is
/// free, it commits the whole queue in one transaction, otherwise it waits
/// for a thread that holds one to do so. Every transition is committed
/// before its caller goes on; running actions share commits, and a lone
/// chain of actions commits in its own thread without a hand-off.
///
/// With a second lane ([`GroupCommit::with_lane`]: a second connection to
/// the same PostgreSQL database), two batches are in flight at once: while
/// one is in the database (its statement, then its commit's flush), the
/// threads the previous one released run their actions and queue the next
/// batch, which the other lane sends at once. The database orders the two:
/// a batch takes its plan's transaction lock before it writes (schema 17's
/// order of a plan's events), so a batch of the same plan waits there for
/// the other's commit. A lane whose batch failed as a whole is not used
/// again; the first lane (the applier's own store, which it reconnects)
/// always is.
pub struct GroupCommit {
    /// The first is the store the applier shares; the others are the group
    /// commit's own.
    lanes: Vec<Lane>,
    /// Requests no leader has taken yet.
    queue: Mutex<Vec<(Arc<Request>, Vec<ActionTransition>)>>,
    /// How many lanes a thread of the group commit holds: each will wake
    /// every queued thread, with its results or to lead.
    leading: AtomicUsize,
}

/// A connection the group commit commits through.
struct Lane {
    store: Arc<Mutex<Store>>,
    /// False once a batch failed on it as a whole (only lanes after the
    /// first).
    usable: AtomicBool,
    /// Batches committed through it.
    batches: AtomicUsize,
}

/// A thread's transitions waiting in the group commit.
#[derive(Default)]
struct Request {
    state: Mutex<RequestState>,
    /// Signalled when its results are in, or when its thread is to lead.
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct RequestState {
    results: Option<Vec<Result<bool, StoreError>>>,
    /// The last leader saw it waiting: it leads the next group.
    lead: bool,
}

impl GroupCommit {
    /// Group commit over `store`, which others may also lock.
    pub fn new(store: Arc<Mutex<Store>>) -> Self {
        Self {
            lanes: vec![Lane {
                store,
                usable: AtomicBool::new(true),
                batches: AtomicUsize::new(0),
            }],
            queue: Mutex::new(Vec::new()),
            leading: AtomicUsize::new(0),
        }
    }

    /// The group commit with one more lane: `store`, a second connection
    /// to the same database, which only the group commit uses. Only for a
    /// database whose writers do not wait for each other's commits
    /// (PostgreSQL); SQLite has one writer at a time.
    pub fn with_lane(mut self, store: Store) -> Self {
        self.lanes.push(Lane {
            store: Arc::new(Mutex::new(store)),
            usable: AtomicBool::new(true),
            batches: AtomicUsize::new(0),
        });
        self
    }

    /// Commits `t` (with whatever else is queued); blocks.
    pub fn commit_blocking(&self, t: ActionTransition) -> Result<bool, StoreError> {
        self.commit_many(vec![t])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Commit("no result".into())))
    }

    /// Whether a queued thread may lead now: when no batch is in flight,
    /// or when enough are queued for a second one
    /// ([`SECOND_BATCH_AT_LEAST`]). A leader that finishes asks the first
    /// queued thread to lead anyway.
    fn may_lead(&self) -> bool {
        self.leading.load(Ordering::Acquire) == 0
            || lock(&self.queue).len() >= SECOND_BATCH_AT_LEAST
    }

    /// A free usable lane, taken, with its index.
    fn free_lane(&self) -> Option<(usize, std::sync::MutexGuard<'_, Store>)> {
        self.lanes.iter().enumerate().find_map(|(i, lane)| {
            if !lane.usable.load(Ordering::Acquire) {
                return None;
            }
            match lane.store.try_lock() {
                Ok(s) => Some((i, s)),
                Err(std::sync::TryLockError::Poisoned(p)) => Some((i, p.into_inner())),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        })
    }

    /// Commits `ts` in one transaction (with whatever else is queued);
    /// blocks. One result per transition, in order.
    ///
    /// Whoever finds a lane free leads: it commits every queued request
    /// in one transaction, hands each its results (waking only those
    /// threads), and wakes one thread still queued to lead the next group.
    /// Invariant: while a lane is free, every request is either queued or
    /// has its results, or is in a batch a leader holds.
    pub fn commit_many(&self, ts: Vec<ActionTransition>) -> Vec<Result<bool, StoreError>> {
        let me = Arc::new(Request::default());
        lock(&self.queue).push((me.clone(), ts));
        // Another leader took our request while we held a lane: its
        // results are coming, wait for them rather than lead.
        let mut taken = false;
        loop {
            let asked = {
                let mut st = lock(&me.state);
                if let Some(r) = st.results.take() {
                    return r;
                }
                std::mem::take(&mut st.lead)
            };
            let lane = if taken || !(asked || self.may_lead()) {
                None
            } else {
                self.free_lane()
            };
            let Some((index, mut store)) = lane else {
                // Every lane is held. A leader leaves our results, or asks
                // us to lead the next group: we were queued before we found
                // the lanes taken, so it sees us when it looks at the queue
                // after its commit. A holder outside the group commit asks
                // no one: poll.
                let wait = if taken || self.leading.load(Ordering::Acquire) > 0 {
                    POLL_LEADER
                } else {
                    POLL_OUTSIDE
                };
                let st = lock(&me.state);
                if st.results.is_none() && !st.lead {
                    let _ = me.wake.wait_timeout(st, wait);
                }
                continue;
            };
            self.leading.fetch_add(1, Ordering::AcqRel);
            let batch = std::mem::take(&mut *lock(&self.queue));
            if batch.is_empty() {
                // Ours is in another lane's batch.
                self.leading.fetch_sub(1, Ordering::AcqRel);
                drop(store);
                taken = true;
                continue;
            }
            let sizes: Vec<usize> = batch.iter().map(|(_, ts)| ts.len()).collect();
            let (requests, groups): (Vec<Arc<Request>>, Vec<Vec<ActionTransition>>) =
                batch.into_iter().unzip();
            taken = !requests.iter().any(|r| Arc::ptr_eq(r, &me));
            let flat: Vec<ActionTransition> = groups.into_iter().flatten().collect();
            self.lanes[index].batches.fetch_add(1, Ordering::Relaxed);
            let mut results = match store.action_transitions(&flat) {
                Ok(rs) => rs,
                Err(e) => {
                    if index > 0 {
                        self.lanes[index].usable.store(false, Ordering::Release);
                        tracing::debug!("group commit: lane {index} set aside after: {e}");
                    }
                    let why = e.to_string();
                    flat.iter()
                        .map(|_| Err(StoreError::Commit(why.clone())))
                        .collect()
                }
            }
            .into_iter();
            for (r, n) in requests.iter().zip(sizes) {
                lock(&r.state).results = Some(results.by_ref().take(n).collect());
            }
            self.leading.fetch_sub(1, Ordering::AcqRel);
            drop(store);
            for r in &requests {
                if !Arc::ptr_eq(r, &me) {
                    r.wake.notify_one();
                }
            }
            // Queued while we committed: one of them leads next.
            let next = lock(&self.queue).first().map(|(r, _)| r.clone());
            if let Some(next) = next {
                lock(&next.state).lead = true;
                next.wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::{ActionState, EventType};

    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(group_commits_from_many_threads_commit_every_transition_once);

    fn group_commits_from_many_threads_commit_every_transition_once(t: TestStore) {
        many_threads_commit_every_transition_once(t, false);
    }

    #[test]
    fn two_lanes_commit_every_transition_once_with_its_plans_events_in_order() {
        many_threads_commit_every_transition_once(TestStore::postgres(), true);
    }

    fn many_threads_commit_every_transition_once(mut t: TestStore, two_lanes: bool) {
        let postgres = t.is_postgres();
        let (plan, uuids) = t.plan_of_nops(400);
        let second = two_lanes.then(|| Store::open(&t.location).expect("a second connection"));
        let (store, _keep) = t.into_store();
        let mut committer = GroupCommit::new(Arc::new(Mutex::new(store)));
        if let Some(second) = second {
            committer = committer.with_lane(second);
        }
        let committer = Arc::new(committer);
        let threads: Vec<_> = uuids
            .chunks(25)
            .enumerate()
            .map(|(k, chunk)| {
                let (c, chunk, plan) = (committer.clone(), chunk.to_vec(), plan.clone());
                std::thread::spawn(move || {
                    for (j, u) in chunk.iter().enumerate() {
                        // A third of the threads name the plan and the action (a
                        // plain UPDATE), a third the plan only (UPDATE …
                        // RETURNING); the others read the state first.
                        let t = |from: ActionState, to: ActionState| {
                            let mut t = ActionTransition::new(
                                u,
                                &[from],
                                to,
                                None,
                                None,
                                EventType::ActionUpdate,
                            );
                            t.plan_uuid = (k % 3 != 0).then(|| plan.clone());
                            t.name = (k % 3 == 2).then(|| format!("a{}", k * 25 + j));
                            c.commit_blocking(t)
                        };
                        assert_eq!(
                            t(ActionState::Pending, ActionState::Ongoing).ok(),
                            Some(true)
                        );
                        assert_eq!(
                            t(ActionState::Ongoing, ActionState::Succeeded).ok(),
                            Some(true)
                        );
                        // A compare-and-set that no longer holds changes nothing.
                        assert_eq!(
                            t(ActionState::Ongoing, ActionState::Failed).ok(),
                            Some(false)
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread panicked");
        }
        assert!(
            committer
                .lanes
                .iter()
                .all(|l| l.usable.load(Ordering::Acquire)),
            "no lane failed"
        );
        let batches: Vec<usize> = committer
            .lanes
            .iter()
            .map(|l| l.batches.load(Ordering::Relaxed))
            .collect();
        assert!(
            batches.iter().all(|&b| b > 0),
            "every lane committed: {batches:?}"
        );
        let store = lock(&committer.lanes[0].store);
        let states: Vec<ActionState> = store
            .actions(&plan)
            .expect("actions")
            .iter()
            .map(|a| a.state)
            .collect();
        assert_eq!(states.len(), 400);
        assert!(
            states.iter().all(|s| *s == ActionState::Succeeded),
            "{states:?}"
        );
        let events: Vec<_> = store
            .events(None, 0)
            .expect("events")
            .into_iter()
            .filter(|e| e.event_type == EventType::ActionUpdate)
            .collect();
        assert_eq!(events.len(), 800, "one event per applied transition");
        let complete = events
            .iter()
            .filter(|e| {
                e.action_plan_uuid.as_deref() == Some(plan.as_str())
                    && matches!(
                        (
                            e.old_state.map(|s| s.as_str()),
                            e.new_state.map(|s| s.as_str())
                        ),
                        (Some("PENDING"), Some("ONGOING")) | (Some("ONGOING"), Some("SUCCEEDED"))
                    )
            })
            .count();
        assert_eq!(complete, 800, "every event names its plan and both states");
        // Each action's events in the order it went through its states.
        let mut seen: std::collections::HashMap<&str, Option<&str>> = Default::default();
        let mut ids: Vec<i64> = Vec::new();
        for e in &events {
            ids.push(e.id);
            let new = e.new_state.map(|s| s.as_str());
            let before = seen.insert(e.object_uuid.as_str(), new);
            if new == Some("SUCCEEDED") {
                assert_eq!(before, Some(Some("ONGOING")), "{}", e.object_uuid);
            }
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "event ids ascend");
        let mut other = if postgres {
            TestStore::postgres()
        } else {
            TestStore::sqlite()
        };
        other.plan_of_nops(1);
        let (other, _keep) = other.into_store();
        let missing =
            GroupCommit::new(Arc::new(Mutex::new(other))).commit_blocking(ActionTransition::new(
                "no-such-action",
                &[ActionState::Pending],
                ActionState::Ongoing,
                None,
                None,
                EventType::ActionUpdate,
            ));
        assert!(
            matches!(missing, Err(StoreError::NotFound { .. })),
            "{missing:?}"
        );
    }
}
