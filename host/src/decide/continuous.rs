//! CONTINUOUS audits: one pass of the scheduler (`tick_continuous`, which
//! `sextant serve` calls) and one run of an audit (`run_continuous`).
//!
//! As Watcher's `ContinuousAuditHandler` (reference section 5.4,
//! "CONTINUOUS"), each run first cancels the audit's RECOMMENDED plans:
//! RECOMMENDED → CANCELLED (reference section 4.4: SUPERSEDED is the expiry
//! job's, not a run's). A plan that was started (PENDING, ONGOING,
//! CANCELLING) is never touched by a later run.
//!
//! With auto_trigger, the plan a run makes is queued for the applier, as for
//! ONESHOT and EVENT audits (Watcher's `post_execute` casts
//! `launch_action_plan`, reference section 5.4 step 3).
//!
//! A run is skipped, never postponed, when
//! - the audit is auto-triggered and a plan of its own is still queued or
//!   running: a second plan would run beside the first on the cloud the
//!   first is changing (even with `force`, which is about other plans);
//! - the audit is not forced and any plan is ONGOING: Watcher's
//!   `pre_execute` rule, under which a CONTINUOUS audit "just skips this
//!   run" (reference section 5.4 step 1).
//!
//! A skipped run is said: a warning naming the audit and the plan, and an
//! `audit.update` event (payload `skipped: true`, the plan and its state)
//! with the audit's status message. The next run is the next time the
//! interval names, as Watcher's scheduler job simply fires again.

use super::{
    AuditContext, DecideError, engine_move, execute_strategy, new_plan, plan_solution,
    queue_if_auto_triggered, schedule, solution_changes,
};
use crate::states::AuditType;
use crate::states::{AuditState, PlanState};
use crate::store::Store;
use crate::store::audits::{AuditChanges, AuditRow};

/// Why a run of `audit` cannot start now: the plan in the way, its state,
/// and the reason in words; `None` when it can run.
fn blocking_plan(
    store: &Store,
    audit: &AuditRow,
) -> Result<Option<(String, String, String)>, DecideError> {
    if audit.auto_trigger
        && let Some((plan, state)) = store.running_plan_of_audit(&audit.uuid)?
    {
        let why = format!("its auto-triggered action plan {plan} is still {state}");
        return Ok(Some((plan, state.to_string(), why)));
    }
    if !audit.force
        && let Some(plan) = store.ongoing_plan()?
    {
        let why =
            format!("action plan {plan} is ONGOING (create the audit with --force to run anyway)");
        return Ok(Some((plan, PlanState::Ongoing.to_string(), why)));
    }
    Ok(None)
}

/// Records a skipped run: the audit's status message and next run time,
/// with an `audit.update` event, in one transaction; and a warning. Nothing
/// is written if the audit changed state meanwhile (another process
/// cancelled it, say).
fn skip_run(
    store: &mut Store,
    audit: &AuditRow,
    (plan, state, why): (String, String, String),
    next: Option<String>,
) -> Result<AuditRow, DecideError> {
    tracing::warn!(
        "continuous audit {} ({}) skips this run: {why}",
        audit.name,
        audit.uuid
    );
    let message = format!(
        "run skipped: {why}; next run {}",
        next.as_deref().unwrap_or("none")
    );
    store.record_skipped_run(audit, &message, next.as_deref(), (&plan, &state))?;
    Ok(store.audit(&audit.uuid)?)
}

/// One run of a CONTINUOUS audit: skipped (see the module's doc) while a
/// plan is in the way; else cancels its previous RECOMMENDED plans, runs the
/// strategy, stores the solution and its plan, queues that plan if the audit
/// is auto-triggered, and records the next run time. The audit stays
/// ONGOING; it becomes FAILED if the run fails.
pub fn run_continuous(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    uuid: &str,
    next_run: Option<chrono::DateTime<chrono::Utc>>,
    host: &str,
) -> Result<AuditRow, DecideError> {
    let audit = store.audit(uuid)?;
    let next = next_run.map(schedule::format_time);
    if let Some(blocker) = blocking_plan(store, &audit)? {
        return skip_run(store, &audit, blocker, next);
    }
    let audit = store.move_audit(
        uuid,
        AuditState::Ongoing,
        None,
        &AuditChanges {
            hostname: Some(host.to_string()),
            next_run_time: Some(next.clone()),
            ..Default::default()
        },
        engine_move,
    )?;
    cancel_recommended_plans(store, &audit)?;
    match execute_strategy(store, ctx, &audit)?.and_then(|run| {
        let plan = plan_solution(ctx, &audit, &run)?;
        Ok((run, plan))
    }) {
        Ok((run, mut planned)) => {
            let done = store.move_audit_with_plan(
                uuid,
                AuditState::Ongoing,
                Some(&format!(
                    "{} actions recommended by {}{} (next run {})",
                    run.actions.len(),
                    run.strategy.name,
                    match (&run.reason, run.actions.is_empty()) {
                        (Some(why), true) => format!(": {why}"),
                        _ => String::new(),
                    },
                    next.as_deref().unwrap_or("none")
                )),
                &solution_changes(&run),
                engine_move,
                Some(&new_plan(&run, &mut planned)),
            )?;
            queue_if_auto_triggered(store, &done, done.action_plan.as_deref())?;
            Ok(done)
        }
        Err(msg) => {
            tracing::warn!("continuous audit {uuid} failed: {msg}");
            Ok(store.transition_audit(
                uuid,
                AuditState::Failed,
                Some(&msg),
                &AuditChanges::default(),
            )?)
        }
    }
}

/// Cancels the RECOMMENDED plans an audit produced before (Watcher cancels
/// them at each run of a CONTINUOUS audit, reference section 4.4).
fn cancel_recommended_plans(store: &mut Store, audit: &AuditRow) -> Result<(), DecideError> {
    store.cancel_recommended_plans_of_audit(
        &audit.uuid,
        "superseded by a new run of its continuous audit",
    )?;
    Ok(())
}

/// One pass of the continuous-audit scheduler at `now`: ends the audits
/// whose end time passed, runs those that are due, and returns the earliest
/// time something is due next.
///
/// An interval audit runs at once, then every interval; a cron audit runs at
/// each time its expression names after the audit's creation.
///
/// Several hosts (`host` is this one's id) may tick at once on one
/// database: each run, and each end of an audit, is claimed first
/// ([`crate::store::FleetStore::claim_audit_tick`], keyed by the due time
/// as stored), and only the host whose claim wins does it. There is no
/// leader: whoever comes first runs the tick.
pub fn tick_continuous(
    store: &mut Store,
    ctx: &AuditContext<'_>,
    now: chrono::DateTime<chrono::Utc>,
    host: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, DecideError> {
    let mut earliest: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut note = |t: chrono::DateTime<chrono::Utc>| {
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
    };
    let audits: Vec<AuditRow> = store
        .audits()?
        .into_iter()
        .filter(|a| {
            a.audit_type == AuditType::Continuous
                && (a.state == AuditState::Pending || a.state == AuditState::Ongoing)
        })
        .collect();
    for a in audits {
        let parse = |t: &Option<String>| t.as_deref().and_then(|t| schedule::parse_time(t).ok());
        // The tick this pass would act on: the due time as stored (the
        // same text on every host), or the first run's.
        let tick = a.next_run_time.as_deref().unwrap_or("first").to_string();
        if let Some(end) = parse(&a.end_time)
            && end <= now
        {
            if !store.claim_audit_tick(&a.uuid, "end", host)? {
                continue;
            }
            if a.state == AuditState::Pending {
                store.move_audit(
                    &a.uuid,
                    AuditState::Ongoing,
                    None,
                    &AuditChanges::default(),
                    engine_move,
                )?;
            }
            store.transition_audit(
                &a.uuid,
                AuditState::Succeeded,
                Some("its end time is reached"),
                &AuditChanges::default(),
            )?;
            continue;
        }
        if let Some(start) = parse(&a.start_time)
            && start > now
        {
            note(start);
            continue;
        }
        let Some(interval) = a
            .interval
            .as_deref()
            .and_then(|i| schedule::parse_interval(i).ok())
        else {
            if !store.claim_audit_tick(&a.uuid, "invalid", host)? {
                continue;
            }
            store.move_audit(
                &a.uuid,
                AuditState::Ongoing,
                None,
                &AuditChanges::default(),
                engine_move,
            )?;
            store.transition_audit(
                &a.uuid,
                AuditState::Failed,
                Some("its interval is not valid"),
                &AuditChanges::default(),
            )?;
            continue;
        };
        let due = match parse(&a.next_run_time) {
            Some(t) => t,
            None => match &interval {
                schedule::Interval::Seconds(_) => now,
                schedule::Interval::Cron(_) => {
                    let created = schedule::parse_time(&a.created_at).unwrap_or(now);
                    interval.next_after(created).unwrap_or(now)
                }
            },
        };
        if due > now {
            note(due);
            continue;
        }
        let next = interval.next_after(now);
        if !store.claim_audit_tick(&a.uuid, &tick, host)? {
            // Another host runs this tick; look again soon for the next.
            note(now + chrono::Duration::seconds(1));
            continue;
        }
        let done = run_continuous(store, ctx, &a.uuid, next, host)?;
        // A skipped first run leaves the audit PENDING, due again at `next`.
        if (done.state == AuditState::Ongoing || done.state == AuditState::Pending)
            && let Some(n) = next
        {
            note(n);
        }
    }
    Ok(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_types::ActionTypeRegistry;
    use crate::plugins::PluginRegistry;
    use crate::store::audits::NewAudit;
    use crate::store::plans::NewPlan;
    use serde_json::json;

    /// A store with one auto-triggered CONTINUOUS audit (every 60 s) and a
    /// plan of its own in `plan_state`.
    fn audit_with_plan(dir: &std::path::Path, plan_state: PlanState) -> (Store, AuditRow, String) {
        let mut sqlite = crate::store::SqliteStore::open(&dir.join("s.db")).expect("open");
        sqlite.insert_test_goal("g").expect("goal");
        let mut store = Store::from_backend(Box::new(sqlite));
        let audit = store
            .create_audit(&NewAudit {
                name: "every-minute".into(),
                audit_type: AuditType::Continuous,
                goal: "g".into(),
                strategy: None,
                template: None,
                parameters: json!({}),
                interval: Some("60".into()),
                scope: json!([]),
                auto_trigger: true,
                start_time: None,
                end_time: None,
                force: true,
                policy: None,
                policy_content: None,
            })
            .expect("audit");
        let plan = store
            .create_plan(&NewPlan {
                audit_uuid: Some(audit.uuid.clone()),
                state: plan_state,
                ..Default::default()
            })
            .expect("plan");
        (store, audit, plan.uuid)
    }

    fn skip_events(store: &Store, audit: &str) -> usize {
        store
            .events(None, 0)
            .expect("events")
            .iter()
            .filter(|e| e.object_uuid == audit && e.payload["skipped"] == true)
            .count()
    }

    #[test]
    fn a_skipped_run_is_due_again_at_the_next_interval_not_at_the_next_tick() {
        let plugins = PluginRegistry::default();
        let types = ActionTypeRegistry::default();
        let ctx = AuditContext {
            plugins: &plugins,
            types: &types,
            model: super::super::ModelSource {
                collector: "none".into(),
                config: json!({}),
                metrics: Default::default(),
            },
        };
        for state in [
            PlanState::Pending,
            PlanState::Ongoing,
            PlanState::Cancelling,
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut store, audit, plan) = audit_with_plan(dir.path(), state);
            let t0 = chrono::Utc::now();
            let next = tick_continuous(&mut store, &ctx, t0, "h").expect("tick");
            let after = store.audit(&audit.uuid).expect("audit");
            let due = t0 + chrono::Duration::seconds(60);
            assert_eq!(next, Some(due), "{state}");
            assert_eq!(
                after.next_run_time.as_deref(),
                Some(schedule::format_time(due).as_str())
            );
            assert_eq!(
                after.state,
                AuditState::Pending,
                "a skipped run does not start it"
            );
            assert!(
                after
                    .status_message
                    .as_deref()
                    .is_some_and(|m| m.contains(&plan) && m.contains(state.as_str())),
                "{after:?}"
            );
            assert_eq!(skip_events(&store, &audit.uuid), 1, "{state}");
            // A second later nothing is due: no second skip, no run.
            let next = tick_continuous(&mut store, &ctx, t0 + chrono::Duration::seconds(1), "h")
                .expect("tick");
            // As stored: to the millisecond.
            let stored = schedule::parse_time(&schedule::format_time(due)).ok();
            assert_eq!(next, stored);
            assert_eq!(skip_events(&store, &audit.uuid), 1, "{state}");
            assert_eq!(store.plan_state(&plan).ok(), Some(state));
            assert_eq!(
                store.plans(Some(&audit.uuid)).map(|p| p.len()).ok(),
                Some(1)
            );
        }
    }
}
