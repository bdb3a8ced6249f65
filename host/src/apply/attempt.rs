//! One attempt at an action, on a blocking thread: pre_condition, ONGOING,
//! execute under the watchdog, outputs, post_condition.

use super::*;

/// What `execute` came to, with its post_condition when it succeeded.
enum Executed {
    /// `execute` failed.
    Failed(PluginCallError),
    /// Its outputs do not match the action type's outputs schema.
    BadOutputs(String),
    /// `execute` succeeded; the post_condition's verdict.
    Done(Value, Result<(), PluginCallError>),
}

/// How one attempt at an action ended.
pub(super) enum AttemptEnd {
    /// The action reached a final state. Its transition (None: the store
    /// already had the last word) is not committed yet: the thread commits
    /// it with the next action's ONGOING, or on its own.
    Finished {
        state: St,
        outputs: Option<Value>,
        transition: Option<Box<ActionTransition>>,
    },
    /// `execute` failed (or its outputs were wrong): retry, or fail.
    ExecuteFailed { why: String, from_execute: bool },
    /// The attempt timed out; the engine side has dealt with it.
    TimedOut,
    /// The applier was interrupted before the action went ONGOING: it
    /// stays PENDING in the store.
    Interrupted,
}

/// Final states waiting for their commit, and what the scheduler learns
/// once they are committed.
#[derive(Default)]
pub(super) struct Carry {
    pub(super) transitions: Vec<Option<ActionTransition>>,
    pub(super) completions: Vec<Completion>,
}

impl Carry {
    pub(super) fn push(&mut self, c: Completion, t: Option<Box<ActionTransition>>) {
        self.completions.push(c);
        self.transitions.push(t.map(|t| *t));
    }

    /// Commits what is carried, with `own` (the next action's ONGOING) in
    /// the same transaction, then tells the scheduler. Returns whether
    /// `own` applied.
    pub(super) fn commit_with(&mut self, run: &Run, own: Option<ActionTransition>) -> Option<bool> {
        let carried = self.transitions.len();
        let mut ts: Vec<ActionTransition> = Vec::with_capacity(carried + 1);
        let mut slots = Vec::with_capacity(carried);
        for t in self.transitions.drain(..) {
            slots.push(t.is_some());
            ts.extend(t);
        }
        let has_own = own.is_some();
        ts.extend(own);
        let mut results = if ts.is_empty() {
            Vec::new()
        } else {
            run.shared.commit_many(ts)
        }
        .into_iter();
        let mut completions = Vec::with_capacity(carried);
        for (mut c, committed) in std::mem::take(&mut self.completions).into_iter().zip(slots) {
            if committed {
                match results.next() {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => {
                        // Changed meanwhile: the store has the last word.
                        let uuid = lock(&run.sched).nodes[c.index].row.uuid.clone();
                        match run.shared.db(|st| st.action(&uuid)) {
                            Ok(a) => {
                                c.state = St::from_db(a.state);
                                c.outputs = a.outputs;
                            }
                            Err(e) => {
                                run.interrupt(format!("reading action {uuid} failed: {e}"));
                                continue;
                            }
                        }
                    }
                    failed => {
                        // Not committed: its children are never released
                        // on a state the store does not hold.
                        let name = lock(&run.sched).nodes[c.index].row.name.clone();
                        run.interrupt(commit_failure(
                            &format!("the final state of action {name}"),
                            failed,
                        ));
                        continue;
                    }
                }
            }
            completions.push(c);
        }
        let own_applied = has_own.then(|| match results.next() {
            Some(Ok(applied)) => applied,
            failed => {
                run.interrupt(commit_failure("an action's ONGOING", failed));
                false
            }
        });
        if !completions.is_empty() {
            run.complete(completions);
        }
        own_applied
    }
}

/// One attempt, on a blocking thread: create the handler, check
/// pre_condition, commit ONGOING (first attempt, with whatever the thread
/// carries), execute (registered with the watchdog), check the outputs,
/// run post_condition. The final state is returned, not committed.
#[allow(clippy::too_many_arguments)]
pub(super) fn attempt_blocking(
    run: &Run,
    carry: &mut Carry,
    row: &ActionRow,
    entry: &str,
    (refs, ancestors): (&[String], &Value),
    ctx: &str,
    first: bool,
    timeout: Duration,
    link: &TaskLink,
) -> AttemptEnd {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = &run.shared;
    let uuid = row.uuid.as_str();
    if !first {
        link.ongoing.store(true, SeqCst);
    }
    // The timeout covers the whole attempt, from here: rendering the
    // parameters, creating the handler, pre_condition, execute and
    // post_condition. Before the handler exists there is nothing to abort;
    // the watchdog still tells the worker, which goes on without this thread.
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _registered = Registered::new(
        shared,
        uuid,
        Running {
            abortable: false,
            handler: None,
            deadline: Instant::now() + timeout,
            timed_out: timed_out.clone(),
            expired: link.expired.clone(),
        },
    );
    let finished = |state: St,
                    from: &[ActionState],
                    msg: Option<String>,
                    outputs: Option<Value>,
                    ev: EventType| {
        let t = row_transition(row, from, state.db(), msg, outputs.clone(), ev);
        AttemptEnd::Finished {
            state,
            outputs,
            transition: Some(Box::new(t)),
        }
    };
    let fail_pre = |why: String| {
        finished(
            St::Failed,
            &[ActionState::Pending, ActionState::Ongoing],
            Some(format!("Action failed in pre_condition: {why}")),
            None,
            EventType::ActionExecutionError,
        )
    };
    // The first attempt of a root that simulation checked live uses the
    // handler it created (see `Shared::prechecked`).
    let h = match first.then(|| shared.take_prechecked(uuid)).flatten() {
        Some(h) => h,
        None => {
            let params = match prepare_handler(shared, row, refs, ancestors) {
                Ok((_, params, _)) => params,
                Err(why) => return fail_pre(why),
            };
            if timed_out.load(SeqCst) {
                return AttemptEnd::TimedOut;
            }
            match shared.plugins.handler_json(entry, &params, ctx) {
                Ok(h) => Arc::new(h),
                Err(e) => return fail_pre(message_of(&e)),
            }
        }
    };
    if let Some(r) = lock(&shared.running).get_mut(uuid)
        && Arc::ptr_eq(&r.timed_out, &timed_out)
    {
        r.abortable = abortable(shared, row, &h);
        r.handler = Some(h.clone());
    }
    // pre_condition runs again just before each attempt.
    let pre = h.pre_condition();
    if timed_out.load(SeqCst) {
        return AttemptEnd::TimedOut;
    }
    // Aborted by a stop or a cancel before it went ONGOING: it did not run.
    if pre
        .as_ref()
        .is_err_and(|e| e.kind() == Some(ErrorKind::ABORTED))
    {
        if shared.service_stopping.load(SeqCst) {
            return AttemptEnd::Interrupted;
        }
        if shared.cancelling.load(SeqCst) {
            return finished(
                St::Cancelled,
                &[ActionState::Pending],
                None,
                None,
                EventType::ActionCancelEnd,
            );
        }
    }
    match pre {
        Ok(()) => {}
        // Found ONGOING when this applier loaded the plan, it was
        // interrupted by a crash while it ran (recovery made it PENDING to
        // run it again, as it is idempotent): "already done" is then the
        // interrupted run's own work. It is settled as SUCCEEDED, so that a
        // rollback reverts it, not SKIPPED, which says the plan changed
        // nothing.
        Err(e) if e.kind() == Some(ErrorKind::SKIPPED) && row.state == ActionState::Ongoing => {
            return finished(
                St::Succeeded,
                &[ActionState::Pending, ActionState::Ongoing],
                Some(format!(
                    "Action settled on resume: its interrupted run had done it ({})",
                    message_of(&e)
                )),
                None,
                EventType::ActionExecutionEnd,
            );
        }
        Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => {
            return finished(
                St::Skipped,
                &[ActionState::Pending, ActionState::Ongoing],
                Some(format!(
                    "Action was skipped automatically: {}",
                    message_of(&e)
                )),
                None,
                EventType::ActionUpdate,
            );
        }
        Err(e) => return fail_pre(message_of(&e)),
    }
    if shared.cancelling.load(SeqCst) {
        return finished(
            St::Cancelled,
            &[ActionState::Pending],
            None,
            None,
            EventType::ActionCancelEnd,
        );
    }
    if first {
        let t = row_transition(
            row,
            &[ActionState::Pending],
            ActionState::Ongoing,
            None,
            None,
            EventType::ActionExecutionStart,
        );
        if carry.commit_with(run, Some(t)) != Some(true) {
            if run.interrupted() {
                return AttemptEnd::Interrupted;
            }
            // Skipped by hand, or cancelled, meanwhile.
            let now = shared.db(|st| st.action(uuid));
            let (state, outputs) = now
                .map(|a| (St::from_db(a.state), a.outputs))
                .unwrap_or((St::Cancelled, None));
            return AttemptEnd::Finished {
                state,
                outputs,
                transition: None,
            };
        }
        link.ongoing.store(true, SeqCst);
    }
    let executed = match h.execute() {
        Err(e) => Executed::Failed(e),
        Ok(outputs) => {
            let version = semver::Version::parse(&row.action_type_version).ok();
            let problem = shared
                .types
                .get(&row.action_type, version.as_ref())
                .ok()
                .and_then(|t| {
                    t.outputs_validator()
                        .and_then(|v| v.validate(&outputs).err().map(|e| e.to_string()))
                });
            match problem {
                Some(why) => Executed::BadOutputs(why),
                None => Executed::Done(outputs, h.post_condition()),
            }
        }
    };
    if timed_out.load(SeqCst) {
        return AttemptEnd::TimedOut;
    }
    match executed {
        Executed::Done(outputs, post) => {
            let outputs = bounded_outputs(&row.name, outputs);
            match post {
                Ok(()) => finished(
                    St::Succeeded,
                    &[ActionState::Ongoing],
                    None,
                    Some(outputs),
                    EventType::ActionExecutionEnd,
                ),
                Err(e) if e.kind() == Some(ErrorKind::UNSUPPORTED) => finished(
                    St::Succeeded,
                    &[ActionState::Ongoing],
                    None,
                    Some(outputs),
                    EventType::ActionExecutionEnd,
                ),
                Err(e) => finished(
                    St::Failed,
                    &[ActionState::Ongoing],
                    Some(format!(
                        "Action failed in post_condition: {}",
                        message_of(&e)
                    )),
                    Some(outputs),
                    EventType::ActionExecutionError,
                ),
            }
        }
        Executed::BadOutputs(why) => AttemptEnd::ExecuteFailed {
            why: format!("its outputs do not match the action type's outputs schema: {why}"),
            from_execute: false,
        },
        Executed::Failed(e)
            if e.kind() == Some(ErrorKind::ABORTED) && shared.cancelling.load(SeqCst) =>
        {
            finished(
                St::Cancelled,
                &[ActionState::Ongoing],
                Some("Action was aborted: its action plan was cancelled.".into()),
                None,
                EventType::ActionCancelEnd,
            )
        }
        Executed::Failed(e)
            if e.kind() == Some(ErrorKind::ABORTED) && shared.service_stopping.load(SeqCst) =>
        {
            let t = row_transition(
                row,
                &[ActionState::Ongoing],
                ActionState::Pending,
                Some(STOPPED_MESSAGE.into()),
                None,
                EventType::ActionUpdate,
            );
            carry.commit_with(run, Some(t));
            AttemptEnd::Interrupted
        }
        Executed::Failed(e) => AttemptEnd::ExecuteFailed {
            why: format!("The action {uuid} execution failed. {}", message_of(&e)),
            from_execute: true,
        },
    }
}

/// An attempt's entry in `Shared::running` (for the watchdog, cancels and
/// stops), removed when the attempt ends, whichever way. A thread left
/// behind by a timed-out attempt removes only its own entry, never that of
/// the attempt that followed it.
struct Registered<'a> {
    shared: &'a Shared,
    uuid: &'a str,
    timed_out: Arc<std::sync::atomic::AtomicBool>,
}

impl<'a> Registered<'a> {
    fn new(shared: &'a Shared, uuid: &'a str, running: Running) -> Self {
        let timed_out = running.timed_out.clone();
        lock(&shared.running).insert(uuid.to_string(), running);
        Self {
            shared,
            uuid,
            timed_out,
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.shared.running);
        if running
            .get(self.uuid)
            .is_some_and(|r| Arc::ptr_eq(&r.timed_out, &self.timed_out))
        {
            running.remove(self.uuid);
        }
    }
}

/// Whether a cancel or a stop may abort the action: its type says it is
/// abortable, and so does its handler.
fn abortable(shared: &Shared, row: &ActionRow, h: &Handler) -> bool {
    let version = semver::Version::parse(&row.action_type_version).ok();
    let by_type = shared
        .types
        .get(&row.action_type, version.as_ref())
        .is_ok_and(|t| t.abortable);
    by_type
        && h.library()
            .manifest
            .entries
            .iter()
            .any(|e| e.name == h.entry() && e.abortable)
}

/// The status message of an action put back to PENDING when its applier
/// stopped.
pub(super) const STOPPED_MESSAGE: &str = "Stopped: the applier was asked to stop, so the action was aborted (or not retried); it runs again when the plan resumes.";

/// Why a commit failed, for [`Run::interrupt`].
fn commit_failure(what: &str, result: Option<Result<bool, StoreError>>) -> String {
    match result {
        Some(Err(e)) => format!("committing {what} failed: {e}"),
        _ => format!("committing {what} failed: no result"),
    }
}

/// The most a stored output may take, as JSON text: far below SQLite's
/// limits (1 GB a value), so a handler that returns too much cannot make
/// the commit of its final state fail.
pub(super) const MAX_STORED_OUTPUTS: usize = 1 << 20;

/// `outputs`, or, when its JSON is over [`MAX_STORED_OUTPUTS`], a marker
/// saying so (`{"truncated": {"bytes": N, "limit": L}}`): the action
/// ran, so it does not fail for it, but its outputs are not kept.
fn bounded_outputs(name: &str, outputs: Value) -> Value {
    let bytes = crate::json_text(&outputs).len();
    if bytes <= MAX_STORED_OUTPUTS {
        return outputs;
    }
    tracing::warn!(
        "action {name} returned {bytes} bytes of outputs, over the {MAX_STORED_OUTPUTS}-byte limit: they are not stored"
    );
    json!({"truncated": {"bytes": bytes, "limit": MAX_STORED_OUTPUTS}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_over_the_limit_are_replaced_by_a_marker() {
        let small = json!({"stdout": "ok"});
        assert_eq!(bounded_outputs("a", small.clone()), small);
        let big = json!({"stdout": "x".repeat(MAX_STORED_OUTPUTS)});
        let kept = bounded_outputs("a", big);
        assert_eq!(kept["truncated"]["limit"], MAX_STORED_OUTPUTS);
        assert!(kept["truncated"]["bytes"].as_u64() > Some(MAX_STORED_OUTPUTS as u64));
    }
}
