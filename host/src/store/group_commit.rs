//! The group commit: action transitions from many threads, committed in
//! shared transactions, each before its caller goes on. The applier's
//! threads call it; the transaction's shape is the store's
//! ([`Store::action_transitions`]).

use super::apply::ActionTransition;
use super::{Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Locks a mutex, whether or not a panicking holder poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Group commit of action transitions, led by whoever finds the store free.
///
/// A thread that commits a transition queues it; if the store is free, it
/// commits the whole queue in one transaction, otherwise it waits for the
/// thread that holds the store to do so. Every transition is committed
/// before its caller goes on; running actions share commits, and a lone
/// chain of actions commits in its own thread without a hand-off.
pub struct GroupCommit {
    store: Arc<Mutex<Store>>,
    /// Requests no leader has taken yet.
    queue: Mutex<Vec<(Arc<Request>, Vec<ActionTransition>)>>,
    /// A thread of the group commit holds the store: it will wake every
    /// queued thread, with its results or to lead.
    leading: AtomicBool,
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
            store,
            queue: Mutex::new(Vec::new()),
            leading: AtomicBool::new(false),
        }
    }

    /// Commits `t` (with whatever else is queued); blocks.
    pub fn commit_blocking(&self, t: ActionTransition) -> Result<bool, StoreError> {
        self.commit_many(vec![t])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Commit("no result".into())))
    }

    /// Commits `ts` in one transaction (with whatever else is queued);
    /// blocks. One result per transition, in order.
    ///
    /// Whoever finds the store free leads: it commits every queued request
    /// in one transaction, hands each its results (waking only those
    /// threads), and wakes one thread still queued to lead the next group.
    /// Invariant: while the store is free, every request is either queued
    /// or has its results.
    pub fn commit_many(&self, ts: Vec<ActionTransition>) -> Vec<Result<bool, StoreError>> {
        let me = Arc::new(Request::default());
        lock(&self.queue).push((me.clone(), ts));
        loop {
            {
                let mut st = lock(&me.state);
                if let Some(r) = st.results.take() {
                    return r;
                }
                st.lead = false;
            }
            let store = match self.store.try_lock() {
                Ok(s) => Some(s),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let Some(mut store) = store else {
                // Another thread holds the store. A leader leaves our
                // results, or asks us to lead the next group: we were
                // queued before we found the store taken, so it sees us
                // when it looks at the queue after its commit. A holder
                // outside the group commit asks no one: poll.
                let wait = if self.leading.load(Ordering::Acquire) {
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
            self.leading.store(true, Ordering::Release);
            let batch = std::mem::take(&mut *lock(&self.queue));
            let sizes: Vec<usize> = batch.iter().map(|(_, ts)| ts.len()).collect();
            let (requests, groups): (Vec<Arc<Request>>, Vec<Vec<ActionTransition>>) =
                batch.into_iter().unzip();
            let flat: Vec<ActionTransition> = groups.into_iter().flatten().collect();
            let mut results = match store.action_transitions(&flat) {
                Ok(rs) => rs,
                Err(e) => {
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
            self.leading.store(false, Ordering::Release);
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

    fn group_commits_from_many_threads_commit_every_transition_once(mut t: TestStore) {
        let postgres = t.is_postgres();
        let (plan, uuids) = t.plan_of_nops(400);
        let (store, _keep) = t.into_store();
        let committer = Arc::new(GroupCommit::new(Arc::new(Mutex::new(store))));
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
        let store = lock(&committer.store);
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
