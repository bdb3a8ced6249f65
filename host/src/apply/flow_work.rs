//! The engine's work for flows and alternatives (docs/flows.md): each
//! decision `flows::FlowRun` took is committed with its event before it is
//! acted on: an alternative is marked started before the failed action is
//! settled and before the alternative runs; a flow is FAILED, then
//! ROLLING_BACK, before its actions are cancelled or reverted. Each is
//! fenced by the applier's lease (`lease::leased`).

use super::flows::{FlowRun, Work};
use super::*;
use crate::states::FlowState;

/// What the engine does next for the flows.
enum Next {
    Work(Work),
    Rollback(usize),
    FlowSwitch(usize, usize),
}

/// What reverting an action needs, read under the scheduler's lock.
struct RevertJob {
    row: ActionRow,
    refs: Vec<String>,
    ancestors: Value,
}

impl Applier {
    /// The plan's flows and alternatives, read from the store; `None` for a
    /// flat plan. Dormant alternatives are marked on their nodes.
    pub(super) fn load_flows(&self, nodes: &mut [Node]) -> Result<Option<FlowRun>, ApplyError> {
        let plan = self.shared.plan_uuid.clone();
        let (flows, scopes) = self
            .shared
            .db(|s| Ok((s.plan_flows(&plan)?, s.action_scopes(&plan)?)))?;
        let run = FlowRun::build(nodes, flows, scopes);
        if let Some(r) = &run {
            for (i, n) in nodes.iter_mut().enumerate() {
                n.dormant = r.is_dormant(i);
            }
        }
        Ok(run)
    }

    /// Does what the flows decided, in order, until nothing is left.
    pub(super) async fn flow_work(&self, run: &Arc<Run>) -> Result<(), ApplyError> {
        loop {
            let next = {
                let mut s = lock(&run.sched);
                if s.interrupted.is_some() {
                    return Ok(());
                }
                let nodes_ready = s
                    .flows
                    .as_ref()
                    .map(|f| f.rollbacks_ready(&s.nodes))
                    .unwrap_or_default();
                let Some(f) = s.flows.as_mut() else {
                    return Ok(());
                };
                match f.work.pop_front() {
                    Some(w) => Next::Work(w),
                    None => match nodes_ready.first() {
                        Some(&flow) => Next::Rollback(flow),
                        None => match f.flow_switch_ready() {
                            Some((from, to)) => Next::FlowSwitch(from, to),
                            None => return Ok(()),
                        },
                    },
                }
            };
            match next {
                Next::Work(Work::FlowFailed { flow, cause }) => {
                    self.flow_failed(run, flow, cause).await?
                }
                Next::Work(Work::Switch { from, to }) => self.switch(run, from, to).await?,
                Next::Rollback(flow) => self.roll_back_flow(run, flow).await?,
                Next::FlowSwitch(from, to) => self.switch_flow(run, from, to).await?,
            }
            run.wake.notify_one();
        }
    }

    async fn flow_failed(
        &self,
        run: &Arc<Run>,
        flow: usize,
        cause: usize,
    ) -> Result<(), ApplyError> {
        let (name, on_failure, action) = {
            let s = lock(&run.sched);
            let f = s.flows.as_ref().map(|f| &f.flows[flow]);
            match f {
                Some(f) => (f.name.clone(), f.on_failure, s.nodes[cause].row.clone()),
                None => return Ok(()),
            }
        };
        let why = format!(
            "action {} failed: {}",
            action.name,
            self.status_message_of(&action.uuid).await?
        );
        let plan = self.shared.plan_uuid.clone();
        let msg = format!("{why} (on_failure: {})", on_failure.as_str());
        let payload = json!({"flow": name, "why": why, "on_failure": on_failure.as_str()});
        let n = name.clone();
        leased(&self.shared, move |s, owner| {
            s.flow_transition(
                &plan,
                Some(owner),
                &n,
                FlowState::Failed,
                Some(&msg),
                EventType::FlowFailed,
                payload.clone(),
            )
        })
        .await?;
        tracing::warn!(plan = %self.shared.plan_uuid, "flow {name} failed: {why}");
        if let Some(f) = lock(&run.sched).flows.as_mut() {
            f.flows[flow].state = FlowState::Failed;
            f.flows[flow].cause = Some(why);
        }
        Ok(())
    }

    /// An action's status message as committed (the scheduler's copy of
    /// the row keeps the one it was read with).
    async fn status_message_of(&self, uuid: &str) -> Result<String, ApplyError> {
        let u = uuid.to_string();
        Ok(db(&self.shared, move |s| s.action(&u))
            .await?
            .status_message
            .unwrap_or_default())
    }

    /// Alternative `to` replaces `from`: the choice is committed, `from`
    /// is settled (reverted if its execute ran and it can be), then `to`
    /// may run.
    async fn switch(&self, run: &Arc<Run>, from: usize, to: usize) -> Result<(), ApplyError> {
        let (from_row, to_row, started, settled, rank, primary, execute_ran, job) = {
            let s = lock(&run.sched);
            let Some(f) = s.flows.as_ref() else {
                return Ok(());
            };
            let (rank, primary) = f.rank_of(to, &s.nodes).unwrap_or((0, String::new()));
            (
                s.nodes[from].row.clone(),
                s.nodes[to].row.clone(),
                f.started(to),
                f.settled(from),
                rank,
                primary,
                s.nodes[from].execute_failed,
                RevertJob {
                    row: s.nodes[from].row.clone(),
                    refs: s.nodes[from].refs.clone(),
                    ancestors: ancestor_outputs(&s.nodes, from, &self.shared.types),
                },
            )
        };
        let plan = self.shared.plan_uuid.clone();
        let why = self.status_message_of(&from_row.uuid).await?;
        if !started {
            let msg = format!(
                "Alternative {rank} of {primary}: started because {} failed: {why}",
                from_row.name
            );
            let payload = json!({
                "primary": primary, "alternative": rank, "from": from_row.name,
                "to": to_row.name, "why": why,
            });
            let (p, u) = (plan.clone(), to_row.uuid.clone());
            leased(&self.shared, move |s, owner| {
                s.start_alternative(&p, Some(owner), &u, &msg, payload.clone())
            })
            .await?;
            tracing::info!(plan = %plan, "alternative {rank} of {primary}: {} replaces {}", to_row.name, from_row.name);
        }
        if !settled {
            // Only an action whose execute ran can have done anything.
            let outcome = if execute_ran {
                self.revert(job).await
            } else {
                None
            };
            let payload = match &outcome {
                None => {
                    json!({"reverted": false, "why": "nothing to revert: it did not run, or cannot be reverted"})
                }
                Some(Ok(())) => json!({"reverted": true}),
                Some(Err(e)) => json!({"reverted": false, "error": e}),
            };
            let (p, u) = (plan.clone(), from_row.uuid.clone());
            leased(&self.shared, move |s, owner| {
                s.settle_alternative(&p, Some(owner), &u, payload.clone())
            })
            .await?;
        }
        let mut s = lock(&run.sched);
        if let Some(f) = s.flows.as_mut() {
            f.switched(from, to);
        }
        s.release_alternative(to);
        Ok(())
    }

    /// Alternative flow `to` replaces `from`, which failed for good and was
    /// rolled back: the choice is committed, then `to`'s actions may run.
    async fn switch_flow(&self, run: &Arc<Run>, from: usize, to: usize) -> Result<(), ApplyError> {
        let (from_name, to_name, started, cause, rank) = {
            let s = lock(&run.sched);
            let Some(f) = s.flows.as_ref() else {
                return Ok(());
            };
            (
                f.flows[from].name.clone(),
                f.flows[to].name.clone(),
                f.flow_started(to),
                f.flows[from].cause.clone().unwrap_or_default(),
                f.flow_rank(to),
            )
        };
        if !started {
            let plan = self.shared.plan_uuid.clone();
            let payload =
                json!({"from": from_name, "to": to_name, "alternative": rank, "why": cause});
            let n = to_name.clone();
            leased(&self.shared, move |s, owner| {
                s.start_flow_alternative(&plan, Some(owner), &n, payload.clone())
            })
            .await?;
            tracing::info!(plan = %self.shared.plan_uuid, "flow {to_name} replaces flow {from_name}: {cause}");
        }
        let mut guard = lock(&run.sched);
        let s = &mut *guard;
        let members = match s.flows.as_mut() {
            Some(f) => f.flow_switched(from, to, &s.nodes),
            None => return Ok(()),
        };
        for i in members {
            s.release_alternative(i);
        }
        Ok(())
    }

    /// Reverts the succeeded actions of flow `flow`, latest first, after
    /// committing ROLLING_BACK; then ROLLED_BACK.
    async fn roll_back_flow(&self, run: &Arc<Run>, flow: usize) -> Result<(), ApplyError> {
        let (name, state, jobs) = {
            let s = lock(&run.sched);
            let Some(f) = s.flows.as_ref() else {
                return Ok(());
            };
            let order = f.to_revert(flow, &s.nodes, &s.completed_order);
            let jobs: Vec<(usize, RevertJob)> = order
                .into_iter()
                .map(|i| {
                    (
                        i,
                        RevertJob {
                            row: s.nodes[i].row.clone(),
                            refs: s.nodes[i].refs.clone(),
                            ancestors: ancestor_outputs(&s.nodes, i, &self.shared.types),
                        },
                    )
                })
                .collect();
            (f.flows[flow].name.clone(), f.flows[flow].state, jobs)
        };
        let plan = self.shared.plan_uuid.clone();
        if state != FlowState::RollingBack {
            let (p, n) = (plan.clone(), name.clone());
            let payload = json!({"flow": name, "actions": jobs.iter().map(|(_, j)| j.row.name.clone()).collect::<Vec<_>>()});
            leased(&self.shared, move |s, owner| {
                s.flow_transition(
                    &p,
                    Some(owner),
                    &n,
                    FlowState::RollingBack,
                    None,
                    EventType::FlowRollbackStart,
                    payload.clone(),
                )
            })
            .await?;
            if let Some(f) = lock(&run.sched).flows.as_mut() {
                f.flows[flow].state = FlowState::RollingBack;
            }
        }
        let mut failed = Vec::new();
        for (i, job) in jobs {
            let u = job.row.uuid.clone();
            let action = job.row.name.clone();
            let Some(outcome) = self.revert(job).await else {
                continue;
            };
            let (ok, msg) = match outcome {
                Ok(()) => (
                    true,
                    format!("Reverted: its flow {name} rolled back after a failure."),
                ),
                Err(e) => {
                    failed.push(action);
                    (
                        false,
                        format!("Revert failed during the rollback of flow {name}: {e}"),
                    )
                }
            };
            let p = plan.clone();
            leased(&self.shared, move |s, owner| {
                s.flow_reverted(&p, Some(owner), &u, ok, &msg)
            })
            .await?;
            if let Some(f) = lock(&run.sched).flows.as_mut() {
                f.reverted[i] = true;
            }
        }
        let msg = if failed.is_empty() {
            None
        } else {
            Some(format!(
                "rolled back, but these could not be reverted: {}",
                failed.join(", ")
            ))
        };
        let (p, n) = (plan.clone(), name.clone());
        leased(&self.shared, move |s, owner| {
            s.flow_transition(
                &p,
                Some(owner),
                &n,
                FlowState::RolledBack,
                None,
                EventType::FlowRollbackEnd,
                json!({"flow": n, "not_reverted": msg}),
            )
        })
        .await?;
        if let Some(f) = lock(&run.sched).flows.as_mut() {
            f.flows[flow].state = FlowState::RolledBack;
            f.flows[flow].rollback_due = false;
        }
        Ok(())
    }

    /// Reverts one action through its handler: `None` when its type or its
    /// handler is not revertible (nothing to do), else the outcome.
    async fn revert(&self, job: RevertJob) -> Option<Result<(), String>> {
        let shared = self.shared.clone();
        let (entry, params, _) = match prepare_handler(&shared, &job.row, &job.refs, &job.ancestors)
        {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let version = semver::Version::parse(&job.row.action_type_version).ok();
        let revertible_type = shared
            .types
            .get(&job.row.action_type, version.as_ref())
            .map(|t| t.revertible)
            .unwrap_or(false);
        let revertible_handler = shared
            .plugins
            .find(sextant_plugin_api::Kind::ActionHandler, &entry)
            .is_some_and(|e| e.manifest().revertible);
        if !(revertible_type && revertible_handler) {
            return None;
        }
        Some(
            match create_handler(&shared, entry, params, handler_context(&shared, &job.row)).await {
                Ok(h) => h.blocking(|h| h.revert()).await.map_err(|e| message_of(&e)),
                Err(e) => Err(message_of(&e)),
            },
        )
    }
}
