//! The applier's store connection across a database restart: every store
//! call of the applier (its group commit, its lease, its reads) that fails
//! because the connection is gone waits, opens a new connection with a
//! bounded number of retries and a doubling wait (logging why), and runs
//! again, so that a plan goes on in the same process instead of stopping
//! and waiting for its lease to lapse.
//!
//! Whether a failure was the connection's: the connection is tried again
//! (a read). If it still answers, the failure was the database's answer
//! (a constraint, a locked SQLite file) and is returned as before; if not,
//! the store is opened again at its location. One thread reconnects while
//! the others wait on the store's lock; each connection has a generation,
//! so a thread whose call failed on an old connection retries on the new
//! one without testing it again.
//!
//! Nothing runs twice: a transition retried after its first commit went
//! through (the reply was lost with the connection) finds its action
//! already in the state it asked for, which counts as applied; every write
//! is a compare-and-set, so a retry never writes a second event. A note
//! (an event that changes no state, such as a retry's) has no state to
//! compare: its write run again first looks for itself among the events
//! appended since ([`Shared::note_once`]).

use super::*;
use crate::store::Location;
use std::sync::atomic::Ordering::SeqCst;

/// How many times in a row a store that cannot be reached is opened again
/// before giving up (the applier then stops, leaving the plan to resume;
/// `serve` stops).
pub const RECONNECT_ATTEMPTS: u32 = 12;
/// The first wait before a retry; it doubles up to [`RECONNECT_MAX_WAIT`].
pub const RECONNECT_FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between retries.
pub const RECONNECT_MAX_WAIT: Duration = Duration::from_secs(30);

/// The wait before retry `attempt` (1-based): doubling, bounded.
pub fn backoff(attempt: u32) -> Duration {
    RECONNECT_FIRST_WAIT
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(RECONNECT_MAX_WAIT)
}

/// Whether a store error may be a lost connection (rather than something
/// about what the store holds).
fn may_be_connection(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Database { .. } | StoreError::Io { .. } | StoreError::Commit(_)
    )
}

impl Shared {
    /// Where to open the store again when its connection is lost (`None`:
    /// a lost connection stops the applier).
    pub(super) fn reconnect_to(&self, at: Location) {
        let _ = self.reconnect.set(at);
    }

    /// Runs `f` on the store, again on a new connection when the first
    /// one was lost (see the module), at most [`RECONNECT_ATTEMPTS`] times.
    pub(super) fn db<T>(
        &self,
        f: impl Fn(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut rounds = 0;
        loop {
            let generation = self.generation.load(SeqCst);
            let result = {
                let mut s = lock(&self.store);
                f(&mut s)
            };
            match result {
                Err(e) if rounds < RECONNECT_ATTEMPTS && self.reconnected(generation, &e) => {
                    rounds += 1;
                }
                other => return other,
            }
        }
    }

    /// Commits `ts` through the group commit, each fenced by this
    /// applier's lease (`lease.rs`), one result per transition; those that
    /// failed with the connection are committed again on a new one (see
    /// the module). A refusal by the fence stops the applier.
    pub(super) fn commit_many(&self, ts: Vec<ActionTransition>) -> Vec<Result<bool, StoreError>> {
        let owner = &self.opts.owner;
        let ts = ts.into_iter().map(|t| t.fenced_by(owner)).collect();
        let results = self.commit_many_reconnecting(ts);
        if results.iter().any(is_lease_lost) {
            self.lose_lease();
        }
        results
    }

    fn commit_many_reconnecting(&self, ts: Vec<ActionTransition>) -> Vec<Result<bool, StoreError>> {
        // Kept for a retry only when there may be one: an applier that does
        // not reconnect (the benchmark's) pays no copy.
        if self.reconnect.get().is_none() {
            return self.committer.commit_many(ts);
        }
        let mut generation = self.generation.load(SeqCst);
        let mut results = self.committer.commit_many(ts.clone());
        for _ in 0..RECONNECT_ATTEMPTS {
            let failed: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_ref().is_err_and(may_be_connection))
                .map(|(i, _)| i)
                .collect();
            let Some(first) = failed.first().and_then(|&i| results[i].as_ref().err()) else {
                return results;
            };
            if !self.reconnected(generation, first) {
                return results;
            }
            generation = self.generation.load(SeqCst);
            let again: Vec<ActionTransition> = failed.iter().map(|&i| ts[i].clone()).collect();
            let retried = self.committer.commit_many(again);
            for (&i, r) in failed.iter().zip(retried) {
                results[i] = match r {
                    // Its first commit went through before the connection
                    // was lost: the action is already where it was sent.
                    Ok(false) => self.already_applied(&ts[i]),
                    other => other,
                };
            }
        }
        results
    }

    /// A retried transition changed nothing: whether its action is in the
    /// state it asked for (its first commit went through).
    fn already_applied(&self, t: &ActionTransition) -> Result<bool, StoreError> {
        let now = self.db(|s| s.action(&t.action_uuid))?;
        Ok(now.state == t.to)
    }

    /// Appends a note (an event that changes no state: a retry's
    /// `action.execution.retry`) once, even when its first write went
    /// through and only its reply was lost with the connection: the write
    /// run again on the new connection first looks for the same event
    /// (type, object, payload) among those appended since the call began,
    /// and writes nothing when it is there. A note of a plan is fenced by
    /// this applier's lease: refused, it stops the applier (see
    /// [`Shared::lose_lease`]).
    pub(super) fn note_once(
        &self,
        event_type: EventType,
        uuid: &str,
        plan: Option<&str>,
        payload: Value,
    ) -> Result<(), StoreError> {
        let write = |s: &mut Store| match plan {
            Some(plan) => s.leased_note(plan, &self.opts.owner, event_type, uuid, payload.clone()),
            None => s.note(event_type, uuid, None, payload.clone()),
        };
        let result = if self.reconnect.get().is_none() {
            self.db(write)
        } else {
            let since = self.db(|s| s.last_event_id())?;
            let again = std::sync::atomic::AtomicBool::new(false);
            self.db(|s| {
                if again.swap(true, SeqCst)
                    && s.events(plan, since)?.iter().any(|e| {
                        e.event_type == event_type && e.object_uuid == uuid && e.payload == payload
                    })
                {
                    return Ok(());
                }
                write(s)
            })
        };
        if is_lease_lost(&result) {
            self.lose_lease();
        }
        result
    }

    /// After a store error on the connection of `generation`: whether to
    /// run the call again, on a connection opened since (by this thread,
    /// or by another meanwhile).
    fn reconnected(&self, generation: u64, e: &StoreError) -> bool {
        let Some(at) = self.reconnect.get() else {
            return false;
        };
        if !may_be_connection(e) {
            return false;
        }
        let mut store = lock(&self.store);
        if self.generation.load(SeqCst) != generation {
            return true;
        }
        if store.schema_version().is_ok() {
            // The connection answers: the error was the database's.
            return false;
        }
        let lost = Instant::now();
        let mut why = e.to_string();
        for attempt in 1..=RECONNECT_ATTEMPTS {
            let wait = backoff(attempt);
            tracing::warn!(
                plan = %self.plan_uuid,
                "the applier lost its database connection: {why}; reconnecting: retry {attempt} of {RECONNECT_ATTEMPTS} in {:.1}s",
                wait.as_secs_f64()
            );
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if self.opts.stop.is_stopping() {
                    tracing::warn!(plan = %self.plan_uuid, "stopping: no more reconnection attempts");
                    return false;
                }
                std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
            }
            match Store::open(at.clone()) {
                Ok(s) => {
                    *store = s;
                    self.generation.fetch_add(1, SeqCst);
                    tracing::info!(
                        plan = %self.plan_uuid,
                        "the applier reconnected to its database after {:.1}s",
                        lost.elapsed().as_secs_f64()
                    );
                    return true;
                }
                Err(e) => why = e.to_string(),
            }
        }
        tracing::error!(
            plan = %self.plan_uuid,
            "the applier could not reconnect to its database after {RECONNECT_ATTEMPTS} retries: {why}"
        );
        false
    }
}

/// How often a reconnecting applier looks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::AtomicBool;

    /// A TCP proxy to the test PostgreSQL that loses one reply: once a
    /// client message holding `marker` was forwarded, the server's answer
    /// is read up to its ReadyForQuery (the statement ran and committed)
    /// and thrown away, and the client's connection is closed.
    fn losing_proxy(server: String, marker: Vec<u8>) -> (u16, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let lost = Arc::new(AtomicBool::new(false));
        let done = lost.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&server) else {
                    return;
                };
                let cut = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut u_out) = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                let (marker, cut_in, done) = (marker.clone(), cut.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if !done.load(SeqCst)
                            && buf[..n]
                                .windows(marker.len())
                                .any(|w| w == marker.as_slice())
                        {
                            done.store(true, SeqCst);
                            cut_in.store(true, SeqCst);
                        }
                        if u_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let (mut u_in, mut c_out) = (upstream, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = u_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if cut.load(SeqCst) {
                            // The answer to the marked message, up to its
                            // ReadyForQuery ('Z', length 5): never sent on.
                            if buf[..n].windows(5).any(|w| w == b"Z\0\0\0\x05") {
                                let _ = c_out.shutdown(Shutdown::Both);
                                let _ = u_in.shutdown(Shutdown::Both);
                                break;
                            }
                            continue;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, lost)
    }

    /// An applier (of no plan in particular) on the store at `url`, that
    /// reconnects to it.
    fn applier_at(url: &str) -> Applier {
        let at = Location::Postgres(url.to_string());
        Applier::for_tests(&at, &crate::store::new_uuid(), &super::super::owner_id())
            .reconnecting(at)
    }

    /// The retry notes of `action` in the database at `url`.
    fn retry_notes(url: &str, action: &str) -> usize {
        Store::open(Location::Postgres(url.to_string()))
            .expect("open")
            .events(None, 0)
            .expect("events")
            .iter()
            .filter(|e| e.event_type == EventType::ActionExecutionRetry && e.object_uuid == action)
            .count()
    }

    #[test]
    fn a_retry_note_whose_reply_is_lost_with_the_connection_is_written_once() {
        let (url, _database) = crate::store::testing::fresh_pg_database();
        let (head, name) = url.rsplit_once('/').expect("a database in the URL");
        let (user, server) = head.rsplit_once('@').expect("a user in the URL");
        drop(Store::open(Location::Postgres(url.clone())).expect("migrate"));
        // Through the proxy: the note's insert commits, its reply is lost.
        let note =
            |marker: &str| json!({"attempt": 1, "of": 3, "error": marker, "retry_in_seconds": 0.5});
        let write = |once: bool| {
            let marker = format!("lost-reply-{}", crate::store::new_uuid());
            let (port, lost) = losing_proxy(server.to_string(), marker.clone().into_bytes());
            let via = format!("{user}@127.0.0.1:{port}/{name}");
            let applier = applier_at(&via);
            let action = crate::store::new_uuid();
            let payload = note(&marker);
            let written = if once {
                applier
                    .shared
                    .note_once(EventType::ActionExecutionRetry, &action, None, payload)
            } else {
                // The plain write, run again on the new connection.
                applier.shared.db(|s| {
                    s.note(
                        EventType::ActionExecutionRetry,
                        &action,
                        None,
                        payload.clone(),
                    )
                })
            };
            assert!(written.is_ok(), "{written:?}");
            assert!(lost.load(SeqCst), "the reply was not lost");
            retry_notes(&url, &action)
        };
        // The fault is real: written as any other store call, the note is
        // there twice.
        assert_eq!(write(false), 2);
        assert_eq!(write(true), 1);
    }

    #[test]
    fn reconnect_waits_double_from_half_a_second_up_to_thirty() {
        let waits: Vec<f64> = (1..=RECONNECT_ATTEMPTS)
            .map(|a| backoff(a).as_secs_f64())
            .collect();
        assert_eq!(
            waits,
            [
                0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0
            ]
        );
        assert_eq!(backoff(u32::MAX), RECONNECT_MAX_WAIT);
    }
}
