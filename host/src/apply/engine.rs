//! The engine: the applier's entry points and its main loop (start what
//! fits, poll for cancels, renew the lease, finish the plan).

use super::*;

/// The applier for one plan.
pub struct Applier {
    pub(super) shared: Arc<Shared>,
}

impl Applier {
    /// An applier over a store and the loaded plugins and action types.
    pub fn new(
        store: Store,
        plugins: Arc<PluginRegistry>,
        types: Arc<ActionTypeRegistry>,
        plan_uuid: &str,
        opts: ApplyOptions,
    ) -> Self {
        let store = Arc::new(Mutex::new(store));
        Self {
            shared: Arc::new(Shared {
                committer: crate::store::GroupCommit::new(store.clone()),
                store,
                entries: Mutex::new(HashMap::new()),
                plugins,
                types,
                context_tail: context_tail(plan_uuid, &opts.driver_config),
                opts,
                plan_uuid: plan_uuid.to_string(),
                running: Mutex::new(HashMap::new()),
                cancelling: std::sync::atomic::AtomicBool::new(false),
                service_stopping: std::sync::atomic::AtomicBool::new(false),
                prechecked: Mutex::new(HashMap::new()),
                reconnect: std::sync::OnceLock::new(),
                generation: std::sync::atomic::AtomicU64::new(0),
                lease_kept_on_failure: std::sync::atomic::AtomicBool::new(false),
                lease_lost: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Opens the store again at `at` when its connection is lost, and
    /// goes on (`reconnect.rs`), instead of stopping.
    pub fn reconnecting(self, at: crate::store::Location) -> Self {
        self.shared.reconnect_to(at);
        self
    }

    /// Runs under the lease a `serve` host claimed the plan with, which
    /// the host renews and, after a failure, applies the plan again under
    /// itself: a failed run keeps the lease instead of giving it back, so
    /// that no other host claims the plan meanwhile (a second claim of a
    /// plan whose host is alive). Ended or stopped, the lease is released.
    pub fn for_host(self) -> Self {
        self.shared
            .lease_kept_on_failure
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self
    }
}

#[cfg(test)]
impl Applier {
    /// An applier of `plan` as lease owner `owner` over the store at `at`,
    /// with no plugins, no action types and the default policy (tests of
    /// its store work).
    pub(super) fn for_tests(at: &crate::store::Location, plan: &str, owner: &str) -> Self {
        Self::new(
            Store::open(at.clone()).expect("open"),
            Arc::new(PluginRegistry::default()),
            Arc::new(ActionTypeRegistry::default()),
            plan,
            ApplyOptions {
                policy: crate::policy::load("default").expect("default policy"),
                execution_rule: None,
                max_workers: 1,
                owner: owner.into(),
                mapper: String::new(),
                drivers: Vec::new(),
                driver_config: crate::config::Secret::new(Value::Null),
                stop: StopSignal::default(),
                grace: Duration::from_secs(1),
                model_source: None,
            },
        )
    }
}

impl Applier {
    /// Applies the plan: takes the lease, resumes what was interrupted,
    /// simulates, runs, and returns the final state.
    pub async fn run(self) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        acquire(&shared).await?;
        let mut result = self.run_leased().await;
        // Another applier claimed the plan meanwhile: whatever this run
        // ended with, it ends because its lease is lost.
        if matches!(
            &result,
            Err(ApplyError::Store(StoreError::LeaseLost { .. }))
        ) {
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || s.lose_lease()).await;
        }
        if let Some(lost) = shared.lease_lost_error() {
            result = Err(lost);
        }
        let kept = result.is_err()
            && !shared.opts.stop.is_stopping()
            && shared
                .lease_kept_on_failure
                .load(std::sync::atomic::Ordering::SeqCst);
        if !kept {
            release(&shared).await;
        }
        result
    }

    pub(super) async fn run_leased(&self) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let plan_uuid = shared.plan_uuid.clone();
        let p = {
            let u = plan_uuid.clone();
            db(&shared, move |s| s.plan(&u)).await?
        };
        let resuming = p.state == PlanState::Ongoing || p.state == PlanState::Cancelling;
        match p.state {
            PlanState::Recommended
            | PlanState::Pending
            | PlanState::Ongoing
            | PlanState::Cancelling => {}
            other => {
                return Err(ApplyError::NotRunnable {
                    plan: plan_uuid,
                    state: other.to_string(),
                    why: "only RECOMMENDED, PENDING or interrupted (ONGOING, CANCELLING) plans run"
                        .into(),
                });
            }
        }
        // A small page cache, before the plan is read into it: each commit
        // ends with a scan of the cache (see `Store::limit_cache`).
        let _ = db(&shared, |s| s.limit_cache(APPLIER_CACHE_KIB)).await;
        let rows = {
            let u = plan_uuid.clone();
            db(&shared, move |s| s.actions(&u)).await?
        };
        let mut nodes = self.build_nodes(rows, &p);
        let flows = self.load_flows(&mut nodes)?;
        // Interrupted actions first: nothing runs twice silently.
        if resuming {
            self.recover_interrupted(&mut nodes).await?;
        }
        let execution_rule = shared
            .opts
            .execution_rule
            .unwrap_or(shared.opts.policy.execution_rule);
        if p.state != PlanState::Cancelling {
            let (u, o) = (plan_uuid.clone(), shared.opts.owner.clone());
            db(&shared, move |s| {
                s.leased_plan_transition(
                    &u,
                    &o,
                    &[PlanState::Recommended, PlanState::Pending],
                    PlanState::Ongoing,
                    None,
                    EventType::PlanExecutionStart,
                )
            })
            .await?;
        }
        if shared.opts.policy.simulate && p.state != PlanState::Cancelling {
            let Ok(problems) = self.simulate(&nodes).await else {
                tracing::info!(plan = %plan_uuid, "stopped during simulation; nothing was executed");
                return Err(ApplyError::Interrupted {
                    plan: plan_uuid,
                    why: "the applier was asked to stop during simulation; nothing was executed"
                        .into(),
                });
            };
            if !problems.is_empty() {
                let msg = format!(
                    "Simulation failed; nothing was executed: {}",
                    problems.join("; ")
                );
                let (u, o) = (plan_uuid.clone(), shared.opts.owner.clone());
                let m = msg.clone();
                db(&shared, move |s| {
                    s.leased_plan_transition(
                        &u,
                        &o,
                        &[PlanState::Ongoing],
                        PlanState::Failed,
                        Some(&m),
                        EventType::PlanExecutionError,
                    )
                })
                .await?;
                return Ok(PlanOutcome {
                    uuid: plan_uuid,
                    state: PlanState::Failed,
                    status_message: Some(msg),
                    simulation_problems: problems,
                });
            }
        }
        self.execute(nodes, flows, execution_rule).await
    }

    pub(super) async fn execute(
        &self,
        nodes: Vec<Node>,
        flows: Option<flows::FlowRun>,
        rule: sched::Rule,
    ) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let plan_uuid = shared.plan_uuid.clone();
        let limits = shared.opts.policy.limits.iter().map(|l| l.max).collect();
        let mut sched = Sched::new(nodes, limits, rule, shared.opts.max_workers);
        sched.flows = flows.map(Box::new);
        sched.settle_initial();
        let run = Arc::new(Run {
            shared: shared.clone(),
            sched: Mutex::new(sched),
            wake: tokio::sync::Notify::new(),
        });
        let mut tasks: JoinSet<Result<(), ApplyError>> = JoinSet::new();
        let _watchdog = AbortOnDrop(tokio::spawn(watchdog(shared.clone())));
        let mut last_poll = Instant::now() - POLL;
        let mut last_renew = Instant::now();
        let mut grace_until: Option<Instant> = None;
        let mut aborted_for_lost_lease = false;
        loop {
            // Asked to stop: launch nothing more, abort what can be
            // aborted (it goes back to PENDING), give the rest the grace
            // period, then leave them to the resume.
            if shared.opts.stop.is_stopping() && grace_until.is_none() {
                let running = lock(&run.sched).running;
                tracing::info!(
                    plan = %plan_uuid,
                    "stopping: {running} action(s) running; aborting the abortable ones, waiting up to {}s for the others",
                    shared.opts.grace.as_secs_f64()
                );
                shared
                    .service_stopping
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                run.interrupt("the applier was asked to stop".into());
                abort_abortable(&shared);
                grace_until = Some(Instant::now() + shared.opts.grace);
            }
            if let Some(until) = grace_until
                && Instant::now() >= until
            {
                let left = lock(&run.sched).running;
                tracing::warn!(
                    plan = %plan_uuid,
                    "grace period over: leaving {left} running action(s) to the resume"
                );
                let why = lock(&run.sched).interrupted.clone().unwrap_or_default();
                return Err(ApplyError::Interrupted {
                    plan: plan_uuid,
                    why,
                });
            }
            // Flow decisions (a switch to an alternative, a flow failed or
            // rolled back) are committed before what they decided.
            if let Err(e) = self.flow_work(&run).await {
                run.interrupt(format!("committing a flow decision failed: {e}"));
            }
            // CANCELLED decided in memory (STRICT) go to the store.
            let decided = std::mem::take(&mut lock(&run.sched).to_commit);
            if let Err(e) = commit_all(&shared, decided).await {
                run.interrupt(format!("committing cancelled actions failed: {e}"));
            }
            // Renew the lease and look for a cancel from another process.
            // Losing the lease, or the store, stops this applier and leaves
            // the plan to whoever resumes it.
            if last_renew.elapsed() > LEASE_TTL / 3 {
                let (p, o) = (plan_uuid.clone(), shared.opts.owner.clone());
                match db(&shared, move |s| s.renew_lease(&p, &o, LEASE_TTL)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let s = shared.clone();
                        let _ = tokio::task::spawn_blocking(move || s.lose_lease()).await;
                        run.interrupt("the applier lost its lease on the plan".into());
                    }
                    Err(e) => run.interrupt(format!("renewing the lease failed: {e}")),
                }
                last_renew = Instant::now();
            }
            // Another applier holds the plan now (a write of this one was
            // refused, or its renewal): nothing more starts, and what still
            // runs here is aborted where it can be (its end would be
            // refused; the new holder settled it when it resumed the plan).
            if shared.lease_lost.get().is_some() && !aborted_for_lost_lease {
                aborted_for_lost_lease = true;
                run.interrupt("the applier lost its lease on the plan".into());
                abort_abortable(&shared);
            }
            if !run.interrupted() && last_poll.elapsed() >= POLL {
                last_poll = Instant::now();
                let u = plan_uuid.clone();
                // Just the state: `plan()` also counts the plan's actions,
                // a scan of 100,000 rows ten times a second.
                let state = match db(&shared, move |s| s.plan_state(&u)).await {
                    Ok(s) => s,
                    Err(e) => {
                        run.interrupt(format!("reading the plan's state failed: {e}"));
                        continue;
                    }
                };
                if state == PlanState::Cancelling && !lock(&run.sched).cancelled {
                    shared
                        .cancelling
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    // Cancelled: the pending actions are CANCELLED.
                    let cancelled = {
                        let mut s = lock(&run.sched);
                        s.cancelled = true;
                        s.cancel_pending(None, EventType::ActionCancelEnd)
                    };
                    if shared.opts.policy.abort_on_cancel {
                        abort_abortable(&shared);
                    }
                    if let Err(e) = commit_all(&shared, cancelled).await {
                        run.interrupt(format!("committing cancelled actions failed: {e}"));
                    }
                }
            }
            // Start what fits: workers, pools, the critical path first.
            let (starts, idle) = {
                let mut s = lock(&run.sched);
                let mut starts = Vec::new();
                while s.running < s.max_workers {
                    let Some(i) = s.pop_ready() else { break };
                    s.running += 1;
                    starts.push(i);
                }
                let flows_idle = s.flows_idle() || s.interrupted.is_some();
                (
                    starts,
                    s.running == 0 && s.to_commit.is_empty() && flows_idle,
                )
            };
            for i in starts {
                tasks.spawn(worker(run.clone(), Start::Attempt(i, 0)));
            }
            if idle {
                break;
            }
            // Wait for a worker to need the engine, or for the next poll.
            tokio::select! {
                _ = run.wake.notified() => {}
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    joined.map_err(|e| ApplyError::Task(e.to_string()))??;
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        // Reap the workers (all idle now).
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| ApplyError::Task(e.to_string()))??;
        }
        // Interrupted: nothing is cancelled or settled; the plan stays
        // ONGOING, and a resume continues it.
        let interrupted = lock(&run.sched).interrupted.clone();
        if let Some(why) = interrupted {
            return Err(ApplyError::Interrupted {
                plan: plan_uuid,
                why,
            });
        }
        let (nodes, completed_order, stopping, rollback, cancel_started, never_started, flows) = {
            let mut s = lock(&run.sched);
            // Cancelled: what became ready meanwhile never starts. Stopped:
            // what never started is CANCELLED.
            let mut never_started = Vec::new();
            if s.cancelled {
                never_started.extend(s.cancel_pending(None, EventType::ActionCancelEnd));
            }
            if let Some(why) = s.stopping.clone() {
                let msg = format!("Cancelled: the plan stopped because {why}.");
                never_started.extend(s.cancel_pending(Some(msg), EventType::ActionUpdate));
            }
            (
                std::mem::take(&mut s.nodes),
                std::mem::take(&mut s.completed_order),
                s.stopping.take(),
                s.rollback,
                s.cancelled,
                never_started,
                s.flows.take(),
            )
        };
        commit_all(&shared, never_started).await?;
        if rollback {
            // What a flow's rollback already reverted is not reverted twice.
            let completed_order: Vec<usize> = completed_order
                .into_iter()
                .filter(|&i| !flows.as_ref().is_some_and(|f| f.reverted[i]))
                .collect();
            self.rollback(&nodes, &completed_order).await?;
        }
        self.finish(
            &nodes,
            cancel_started,
            stopping.as_deref(),
            flows.as_deref(),
        )
        .await
    }

    pub(super) async fn finish(
        &self,
        nodes: &[Node],
        cancelled: bool,
        stopped: Option<&str>,
        flows: Option<&flows::FlowRun>,
    ) -> Result<PlanOutcome, ApplyError> {
        let shared = self.shared.clone();
        let u = shared.plan_uuid.clone();
        // A failed action an alternative replaced does not fail the plan.
        let any_failed = nodes
            .iter()
            .enumerate()
            .any(|(i, n)| n.state == St::Failed && !flows.is_some_and(|f| f.superseded(i, nodes)));
        let flows_failed = flows.and_then(|f| f.failed_summary());
        let any_skipped = nodes.iter().any(|n| n.state == St::Skipped);
        let (state, event, msg): (PlanState, EventType, Option<String>) = if cancelled {
            (PlanState::Cancelled, EventType::PlanCancelEnd, None)
        } else if any_failed {
            (
                PlanState::Failed,
                EventType::PlanExecutionError,
                match (stopped.map(|s| format!("Stopped: {s}.")), flows_failed) {
                    (Some(s), Some(f)) => Some(format!("{s} {f}.")),
                    (Some(s), None) => Some(s),
                    (None, Some(f)) => Some(format!("Failed: {f}.")),
                    (None, None) => None,
                },
            )
        } else {
            (
                PlanState::Succeeded,
                EventType::PlanExecutionEnd,
                any_skipped.then(|| "One or more actions were skipped.".to_string()),
            )
        };
        let m = msg.clone();
        let (uu, o) = (u.clone(), shared.opts.owner.clone());
        db(&shared, move |s| {
            s.leased_plan_transition(
                &uu,
                &o,
                &[PlanState::Ongoing, PlanState::Cancelling],
                state,
                m.as_deref(),
                event,
            )
        })
        .await?;
        Ok(PlanOutcome {
            uuid: u,
            state,
            status_message: msg,
            simulation_problems: Vec::new(),
        })
    }
}

/// Asks every running action that is abortable (its type and its handler
/// both say so) to abort.
fn abort_abortable(shared: &Shared) {
    let handlers: Vec<Arc<Handler>> = lock(&shared.running)
        .values()
        .filter(|r| r.abortable)
        .filter_map(|r| r.handler.clone())
        .collect();
    for h in handlers {
        let _ = h.abort();
    }
}
