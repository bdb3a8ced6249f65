//! A worker slot's task: starts the thread runner and handles what it hands
//! back (retries with backoff, timeouts, final failures).

use super::*;

pub(super) fn backoff(policy: &crate::policy::Recovery, attempt: u32) -> Duration {
    let secs = policy.backoff_initial.as_secs_f64() * policy.backoff_factor.powi(attempt as i32);
    Duration::from_secs_f64(secs.min(policy.backoff_max.as_secs_f64()))
}

/// A worker slot's task: starts a blocking thread that runs actions, and
/// handles what the thread hands back: retries with backoff, timeouts
/// (without waiting for a handler that may never return), final failures.
pub(super) async fn worker(run: Arc<Run>, mut start: Start) -> Result<(), ApplyError> {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = run.shared.clone();
    loop {
        // The permit of the action the thread starts with, when the thread
        // found none free.
        let library = match &start {
            Start::Permitted(i, _) => {
                let row = lock(&run.sched).nodes[*i].row.clone();
                handler_entry(&shared, &row).ok().and_then(|(entry, _)| {
                    shared
                        .plugins
                        .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                        .map(|e| e.library.clone())
                })
            }
            Start::Attempt(..) | Start::Completed(_) => None,
        };
        let _permit = match &library {
            Some(l) => l.permits.acquire().await.ok(),
            None => None,
        };
        let link = Arc::new(TaskLink {
            ongoing: std::sync::atomic::AtomicBool::new(false),
            expired: Arc::new(tokio::sync::Notify::new()),
            current: Mutex::new(match &start {
                Start::Attempt(i, a) | Start::Permitted(i, a) => (*i, *a),
                Start::Completed(c) => (c.index, 0),
            }),
        });
        let mut join = {
            let (r, l) = (run.clone(), link.clone());
            tokio::task::spawn_blocking(move || run_on_thread(&r, &l, start))
        };
        let end = tokio::select! {
            r = &mut join => r.map_err(|e| ApplyError::Task(e.to_string()))?,
            // The watchdog timed the current action out (and asked it to
            // abort): go on without the thread.
            _ = link.expired.notified() => {
                let (index, attempt) = *lock(&link.current);
                ThreadEnd::Failed { index, attempt, why: String::new(), from_execute: true }
            }
        };
        let (index, attempt, why, from_execute) = match end {
            ThreadEnd::Idle => return Ok(()),
            ThreadEnd::NeedsPermit(i, a) => {
                start = Start::Permitted(i, a);
                continue;
            }
            ThreadEnd::Failed {
                index,
                attempt,
                why,
                from_execute,
            } => (index, attempt, why, from_execute),
        };
        // A timeout (no reason: the watchdog's, whether the worker or the
        // thread saw it first) before the action went ONGOING.
        let before_ongoing = why.is_empty() && !link.ongoing.load(SeqCst);
        let row = lock(&run.sched).nodes[index].row.clone();
        let uuid = row.uuid.clone();
        let recovery = shared.opts.policy.recovery_for(&row.action_type);
        let why = if why.is_empty() {
            format!(
                "The action {uuid} execution failed: timed out after {}s.",
                recovery.timeout.as_secs_f64()
            )
        } else {
            why
        };
        // Timed out before it went ONGOING (rendering its parameters,
        // creating its handler, or its pre_condition): it never executed,
        // so it fails as a pre_condition does, from PENDING, unretried.
        let (retries, from, msg) = if before_ongoing {
            (
                0,
                &[ActionState::Pending][..],
                format!(
                    "Action failed in pre_condition: timed out after {}s before it started.",
                    recovery.timeout.as_secs_f64()
                ),
            )
        } else {
            (
                recovery.retries,
                &[ActionState::Ongoing][..],
                format!("Action failed in execute: {why}"),
            )
        };
        let from_execute = from_execute && !before_ongoing;
        if attempt < retries && run.interrupted() {
            // Stopping: the retry is left to the resume.
            let _ = transition(
                &shared,
                &row,
                &[ActionState::Ongoing],
                ActionState::Pending,
                Some(STOPPED_MESSAGE.into()),
                None,
                EventType::ActionUpdate,
            )
            .await;
            lock(&run.sched).running -= 1;
            run.wake.notify_one();
            return Ok(());
        }
        if attempt < retries && !shared.cancelling.load(SeqCst) {
            let delay = backoff(&recovery, attempt);
            let u = uuid.clone();
            let plan = shared.plan_uuid.clone();
            let note = json!({"attempt": attempt + 1, "of": recovery.retries, "error": why, "retry_in_seconds": delay.as_secs_f64()});
            // Once, even when the connection is lost with its reply.
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                s.note_once(EventType::ActionExecutionRetry, &u, Some(&plan), note)
            })
            .await;
            tokio::time::sleep(delay).await;
            // A retry runs the action again with no compare-and-set of its
            // own (it is ONGOING already): only while this applier still
            // holds the plan's lease, renewed here (a host paused through
            // the backoff past its lease finds it taken, and stops).
            let held = still_held(&shared).await;
            if !matches!(held, Ok(true)) {
                run.interrupt(match held {
                    Err(e) => format!("renewing the lease before a retry failed: {e}"),
                    _ => "the applier lost its lease on the plan".into(),
                });
                lock(&run.sched).running -= 1;
                run.wake.notify_one();
                return Ok(());
            }
            start = Start::Attempt(index, attempt + 1);
            continue;
        }
        let mut t = row_transition(
            &row,
            from,
            ActionState::Failed,
            Some(msg),
            None,
            EventType::ActionExecutionError,
        );
        if from_execute {
            t = t.in_execute();
        }
        let failed = commit_transition(&shared, t).await;
        let mut c = Completion {
            index,
            state: St::Failed,
            execute_failed: from_execute,
            outputs: None,
        };
        if let Err(e) = &failed {
            // Not committed: nothing learns of a state the store does not hold.
            run.interrupt(format!(
                "committing the final state of action {} failed: {e}",
                row.name
            ));
            lock(&run.sched).running -= 1;
            run.wake.notify_one();
            return Ok(());
        }
        if matches!(failed, Ok(false)) {
            // A timed-out attempt finished and settled the action first:
            // the store has the last word.
            let u = uuid.clone();
            if let Ok(a) = db(&shared, move |st| st.action(&u)).await {
                c.state = St::from_db(a.state);
                c.execute_failed = a.execute_failed;
                c.outputs = a.outputs;
            }
        }
        start = Start::Completed(c);
    }
}
