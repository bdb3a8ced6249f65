//! The thread runner: a blocking thread runs actions back to back, chains
//! included, committing each final state with the next action's ONGOING.

use super::*;

/// One run of a plan: what its engine task and the threads that run its
/// actions share.
pub(super) struct Run {
    pub(super) shared: Arc<Shared>,
    pub(super) sched: Mutex<Sched>,
    /// Wakes the engine: a ready action wants a worker, something is to
    /// commit, or a worker slot was freed.
    pub(super) wake: tokio::sync::Notify,
}

impl Run {
    /// Stops this applier without ending the plan: nothing more starts,
    /// and the plan stays ONGOING for a resume. The first reason is kept.
    pub(super) fn interrupt(&self, why: String) {
        let mut s = lock(&self.sched);
        if s.interrupted.is_none() {
            tracing::error!(plan = %self.shared.plan_uuid, "stopping the applier: {why}");
            s.interrupted = Some(why);
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Whether [`Run::interrupt`] was called.
    pub(super) fn interrupted(&self) -> bool {
        lock(&self.sched).interrupted.is_some()
    }

    /// Tells the scheduler about committed final states, and wakes the
    /// engine if there is work for it.
    pub(super) fn complete(&self, completions: Vec<Completion>) {
        let policy = &self.shared.opts.policy;
        let mut s = lock(&self.sched);
        for c in completions {
            s.complete(c, |row| {
                match policy.recovery_for(&row.action_type).on_failure {
                    OnFailure::Continue => Stop::Continue,
                    OnFailure::Stop => {
                        Stop::Halt(format!("action {} failed (on_failure: stop)", row.name))
                    }
                    OnFailure::Rollback => {
                        Stop::Rollback(format!("action {} failed (on_failure: rollback)", row.name))
                    }
                }
            });
        }
        let wake = s.wants_workers() || !s.to_commit.is_empty() || !s.open();
        drop(s);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// What a worker task and its blocking thread share: the watchdog's
/// signal, and which attempt the thread is on.
pub(super) struct TaskLink {
    /// The current action is ONGOING in the store (its ONGOING committed,
    /// or a retry): a timeout before that fails it from PENDING, unretried.
    pub(super) ongoing: std::sync::atomic::AtomicBool,
    pub(super) expired: Arc<tokio::sync::Notify>,
    pub(super) current: Mutex<(usize, u32)>,
}

/// Where a worker's blocking thread starts.
pub(super) enum Start {
    /// An attempt at a reserved action.
    Attempt(usize, u32),
    /// The same, with its library's call permit held by the task.
    Permitted(usize, u32),
    /// A final state already committed by the worker task; then whatever
    /// is ready.
    Completed(Completion),
}

/// Why a blocking thread handed its worker slot back to its task.
pub(super) enum ThreadEnd {
    /// Nothing is ready for it: the slot is free.
    Idle,
    /// An attempt failed: the task retries it or fails the action.
    Failed {
        index: usize,
        attempt: u32,
        why: String,
        from_execute: bool,
    },
    /// The action's plugin library has no call permit free: the task waits
    /// for one.
    NeedsPermit(usize, u32),
}

/// Runs actions on this blocking thread for as long as it has one: after
/// each, it takes a child the action was the last parent of, or the most
/// urgent ready action, and commits the finished action's final state with
/// the next one's ONGOING. A chain of actions never leaves the thread.
pub(super) fn run_on_thread(run: &Run, link: &TaskLink, start: Start) -> ThreadEnd {
    let shared = &run.shared;
    let mut carry = Carry::default();
    // Started as `Permitted`: the task holds the first action's permit.
    let (mut job, mut permit_held) = match start {
        Start::Attempt(i, a) => (Some((i, a)), false),
        Start::Permitted(i, a) => (Some((i, a)), true),
        Start::Completed(c) => {
            run.complete(vec![c]);
            (None, false)
        }
    };
    loop {
        let (i, attempt) = match job.take() {
            Some(j) => j,
            None => {
                // Nothing chained: commit what is carried, then take the
                // next ready action or free the slot.
                carry.commit_with(run, None);
                let mut s = lock(&run.sched);
                match s.pop_ready() {
                    Some(i) => (i, 0),
                    None => {
                        s.running -= 1;
                        drop(s);
                        run.wake.notify_one();
                        return ThreadEnd::Idle;
                    }
                }
            }
        };
        *lock(&link.current) = (i, attempt);
        link.ongoing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let (row, refs, ancestors) = {
            let s = lock(&run.sched);
            (
                s.nodes[i].row.clone(),
                s.nodes[i].refs.clone(),
                ancestor_outputs(&s.nodes, i, &shared.types),
            )
        };
        let recovery = shared.opts.policy.recovery_for(&row.action_type);
        // The entry only: the parameters are rendered inside the attempt,
        // under its timeout.
        let end = match handler_entry(shared, &row) {
            Err(why) => {
                let t = row_transition(
                    &row,
                    &[ActionState::Pending, ActionState::Ongoing],
                    ActionState::Failed,
                    Some(format!("Action failed in pre_condition: {why}")),
                    None,
                    EventType::ActionExecutionError,
                );

                AttemptEnd::Finished {
                    state: St::Failed,
                    outputs: None,
                    transition: Some(Box::new(t)),
                }
            }
            Ok((entry, _)) => {
                let library = shared
                    .plugins
                    .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                    .map(|e| e.library.clone());
                let permit = match (&library, std::mem::take(&mut permit_held)) {
                    (Some(l), false) => match l.permits.try_acquire() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            carry.commit_with(run, None);
                            return ThreadEnd::NeedsPermit(i, attempt);
                        }
                    },
                    _ => None,
                };
                let ctx = handler_context_json(shared, &row);
                let end = attempt_blocking(
                    run,
                    &mut carry,
                    &row,
                    &entry,
                    (&refs, &ancestors),
                    &ctx,
                    attempt == 0,
                    recovery.timeout,
                    link,
                );
                drop(permit);
                end
            }
        };
        match end {
            AttemptEnd::Finished {
                state,
                outputs,
                transition,
            } => {
                carry.push(
                    Completion {
                        index: i,
                        state,
                        execute_failed: false,
                        outputs,
                    },
                    transition,
                );
                let mut s = lock(&run.sched);
                s.executed(i, carry.completions.last().and_then(|c| c.outputs.as_ref()));
                job = s
                    .chain_after(i, state)
                    .or_else(|| s.pop_ready())
                    .map(|j| (j, 0));
            }
            AttemptEnd::ExecuteFailed { why, from_execute } => {
                carry.commit_with(run, None);
                return ThreadEnd::Failed {
                    index: i,
                    attempt,
                    why,
                    from_execute,
                };
            }
            AttemptEnd::Interrupted => {
                carry.commit_with(run, None);
                lock(&run.sched).running -= 1;
                run.wake.notify_one();
                return ThreadEnd::Idle;
            }
            AttemptEnd::TimedOut => {
                // The task went on when the watchdog fired; this thread
                // only leaves.
                carry.commit_with(run, None);
                return ThreadEnd::Failed {
                    index: i,
                    attempt,
                    why: String::new(),
                    from_execute: true,
                };
            }
        }
    }
}
