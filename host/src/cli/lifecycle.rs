//! The operator's changes to what is stored: `action-plan delete | retry`,
//! `audit update`, `audit-template update`, `history purge`. The rules are
//! Watcher's (reference watcher-17.0.0.md, API section: audit PATCH and
//! action-plan DELETE; watcher-service-facts.md 1.2, 1.3 and 1.5); the
//! store does each change in one transaction (`store::lifecycle`).

use super::output::outln;
use super::output::{Format, print_structured};
use super::{CliError, CliResult, Env};
use crate::decide::schedule;
use crate::states::AuditState;
use crate::store::StoreError;
use crate::store::audits::AuditChanges;
use crate::store::lifecycle::TemplateChange;
use serde_json::json;
use std::process::ExitCode;

/// Store errors the operator can fix are bad input (exit 2).
pub fn store_input(e: StoreError) -> CliError {
    match e {
        e @ (StoreError::NotFound { .. }
        | StoreError::Ambiguous { .. }
        | StoreError::Refused { .. }
        | StoreError::Transition { .. }) => CliError::input(e),
        e => e.into(),
    }
}

fn input(msg: impl std::fmt::Display) -> CliError {
    CliError::input(anyhow::anyhow!("{msg}"))
}

/// `action-plan delete ID…`: soft delete, as `DELETE /v1/action_plans`.
/// Every id is resolved and checked before any is deleted.
pub fn delete_plans(env: &Env, ids: &[String]) -> CliResult {
    if ids.is_empty() {
        return Err(input("give the action plans to delete"));
    }
    let (mut store, _, _) = env.open_store_synced()?;
    let mut plans = Vec::with_capacity(ids.len());
    for id in ids {
        let p = store.plan(id).map_err(store_input)?;
        if let Some(refusal) = crate::store::lifecycle::delete_refusal(&p) {
            return Err(store_input(refusal));
        }
        plans.push(p.uuid);
    }
    for uuid in plans {
        let p = store.delete_plan(&uuid).map_err(store_input)?;
        outln!("deleted action plan {} ({} actions)", p.uuid, p.actions);
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan retry ID`: a new RECOMMENDED plan of what a FAILED or
/// CANCELLED plan left undone; prints its uuid.
pub fn retry_plan(env: &Env, id: &str, format: Format) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    let old = store.plan(id).map_err(store_input)?;
    let new = store.retry_plan(&old.uuid).map_err(store_input)?;
    if !print_structured(
        format,
        &json!({"action_plan": new.uuid, "retry_of": old.uuid, "actions": new.actions}),
    )? {
        outln!("{}", new.uuid);
        eprintln!(
            "action plan {} (RECOMMENDED): the {} unfinished actions of {}; start it with `sextant action-plan start {}`",
            new.uuid, new.actions, old.uuid, new.uuid
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why an audit is not deleted now, with what to do: Watcher deletes
/// audits from FAILED, SUCCEEDED, CANCELLED and SUSPENDED only
/// (`DELETE /v1/audits`).
pub fn audit_delete_refusal(a: &crate::store::audits::AuditRow) -> Option<CliError> {
    if a.state.may_become(AuditState::Deleted) {
        return None;
    }
    Some(store_input(StoreError::Refused {
        kind: "audit",
        id: a.uuid.clone(),
        state: a.state.to_string(),
        what: format!(
            "an audit that has not ended is not deleted; cancel it first (`sextant audit cancel {}`) or suspend it (`sextant audit update {} --state SUSPENDED`)",
            a.uuid, a.uuid
        ),
    }))
}

/// The states `audit update --state` moves an audit to.
pub const AUDIT_UPDATE_STATES: [AuditState; 3] = [
    AuditState::Suspended,
    AuditState::Ongoing,
    AuditState::Cancelled,
];

/// `audit update ID [--state S] [--interval I]`: Watcher's audit PATCH of
/// `/state` (ONGOING → SUSPENDED suspends, SUSPENDED → ONGOING resumes,
/// PENDING or ONGOING → CANCELLED) and `/interval` (CONTINUOUS audits).
pub fn update_audit(
    env: &Env,
    id: &str,
    state: Option<&str>,
    interval: Option<&str>,
    format: Format,
) -> CliResult {
    if state.is_none() && interval.is_none() {
        return Err(input("nothing to change: give --state or --interval"));
    }
    let state = match state {
        None => None,
        Some(s) => match s.to_uppercase().parse::<AuditState>() {
            Ok(to) if AUDIT_UPDATE_STATES.contains(&to) => Some(to),
            _ => {
                let names: Vec<&str> = AUDIT_UPDATE_STATES.iter().map(|s| s.as_str()).collect();
                return Err(input(format!(
                    "--state {}: an audit is updated to one of {}",
                    s.to_uppercase(),
                    names.join(", ")
                )));
            }
        },
    };
    let (mut store, _, _) = env.open_store_synced()?;
    let a = store.audit(id).map_err(store_input)?;
    let mut extra = AuditChanges::default();
    if let Some(i) = interval {
        if a.audit_type != "CONTINUOUS" {
            return Err(input(format!(
                "audit {} is {}: only a CONTINUOUS audit has an interval",
                a.uuid, a.audit_type
            )));
        }
        if !matches!(
            a.state,
            AuditState::Pending | AuditState::Ongoing | AuditState::Suspended
        ) {
            return Err(input(format!(
                "audit {} is {}: it has ended; create a new audit",
                a.uuid, a.state
            )));
        }
        let parsed =
            schedule::parse_interval(i).map_err(|e| input(format!("--interval {i}: {e}")))?;
        // The next run is one new interval from now.
        let next = parsed
            .next_after(chrono::Utc::now())
            .map(schedule::format_time);
        extra.interval = Some(i.to_string());
        extra.next_run_time = Some(next);
    }
    let to = state.unwrap_or(a.state);
    if to != a.state && !a.state.may_become(to) {
        let what = match (a.state, to) {
            (AuditState::Pending, AuditState::Suspended) => {
                "it has not run yet; cancel it, or suspend it once it is ONGOING"
            }
            (_, AuditState::Suspended) => "only an ONGOING audit is suspended",
            (_, AuditState::Ongoing) => "only a SUSPENDED audit is resumed",
            _ => "only a PENDING or ONGOING audit is cancelled",
        };
        return Err(store_input(StoreError::Refused {
            kind: "audit",
            id: a.uuid,
            state: a.state.to_string(),
            what: format!("cannot go to {to}: {what}"),
        }));
    }
    let message = match to {
        _ if to == a.state => None,
        AuditState::Suspended => Some("suspended by the operator"),
        AuditState::Ongoing => Some("resumed by the operator"),
        _ => Some("cancelled by the operator"),
    };
    let a = store
        .move_audit(&a.uuid, to, message, &extra, |from, to| {
            from == to || from.may_become(to)
        })
        .map_err(store_input)?;
    if !print_structured(format, &a)? {
        outln!(
            "audit {} ({}): {}{}",
            a.name,
            a.uuid,
            a.state,
            a.interval
                .as_deref()
                .map(|i| format!(", interval {i}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit-template update ID [--name] [--description] [--policy P |
/// --no-policy]`: Watcher's audit-template PATCH; the policy is checked as
/// an audit's is.
pub fn update_template(
    env: &Env,
    id: &str,
    name: Option<&str>,
    description: Option<&str>,
    policy: Option<&str>,
    no_policy: bool,
    format: Format,
) -> CliResult {
    if name.is_none() && description.is_none() && policy.is_none() && !no_policy {
        return Err(input(
            "nothing to change: give --name, --description, --policy or --no-policy",
        ));
    }
    if let Some(n) = name
        && n.trim().is_empty()
    {
        return Err(input("--name: an audit template name must not be empty"));
    }
    let (mut store, plugins, _) = env.open_store_synced()?;
    let t = store.template(id).map_err(store_input)?;
    let policy = match (policy, no_policy) {
        (Some(p), _) => {
            let types = env.action_types();
            let vocab = crate::policy::Vocabulary::of(&types, &plugins);
            Some(Some(crate::decide::stored_policy(p, &vocab).map_err(
                |e| match e {
                    crate::decide::DecideError::Invalid(m) => input(format!("--policy {p}: {m}")),
                    crate::decide::DecideError::Store(e) => store_input(e),
                },
            )?))
        }
        (None, true) => Some(None),
        (None, false) => None,
    };
    let t = store
        .update_template(
            &t.uuid,
            &TemplateChange {
                name,
                description,
                policy,
            },
        )
        .map_err(store_input)?;
    if !print_structured(format, &t)? {
        outln!(
            "updated audit template {} ({}), policy {}",
            t.name,
            t.uuid,
            t.policy.as_deref().unwrap_or("none")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The cut-off `history purge --before` means: an RFC 3339 time, or a
/// duration before now (`30d`, `12h`), as events are stamped (UTC, ms).
pub fn cutoff(before: &str, now: std::time::SystemTime) -> Result<String, CliError> {
    let t = match chrono::DateTime::parse_from_rfc3339(before) {
        Ok(t) => Some(std::time::SystemTime::from(t)),
        Err(_) => {
            let d = humantime::parse_duration(before).map_err(|e| {
                input(format!(
                    "--before {before}: neither an RFC 3339 time nor a duration such as 30d ({e})"
                ))
            })?;
            now.checked_sub(d)
        }
    };
    // Events are stamped after 1970 (and the formatter takes no earlier
    // time).
    match t {
        Some(t) if t >= std::time::UNIX_EPOCH => {
            Ok(humantime::format_rfc3339_millis(t).to_string())
        }
        _ => Err(input(format!(
            "--before {before}: that is before 1970, when no event was stamped"
        ))),
    }
}

/// `history purge --before T`: deletes the events older than T, except
/// those of plans and audits that have not ended; prints how many.
pub fn purge_history(env: &Env, before: &str, format: Format) -> CliResult {
    let at = cutoff(before, std::time::SystemTime::now())?;
    let (mut store, _, _) = env.open_store_synced()?;
    let n = store.purge_events(&at)?;
    if !print_structured(format, &json!({"deleted": n, "before": at}))? {
        outln!("deleted {n} events older than {at}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_times_or_durations_before_now() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(40 * 86_400);
        assert_eq!(
            cutoff("30d", now).ok().as_deref(),
            Some("1970-01-11T00:00:00.000Z")
        );
        assert_eq!(
            cutoff("2026-01-02T03:04:05Z", now).ok().as_deref(),
            Some("2026-01-02T03:04:05.000Z")
        );
        assert_eq!(
            cutoff("2026-01-02T04:04:05+01:00", now).ok().as_deref(),
            Some("2026-01-02T03:04:05.000Z")
        );
        let e = cutoff("last tuesday", now).expect_err("refused");
        assert_eq!(e.status, 2);
        assert!(e.error.to_string().contains("last tuesday"));
        assert!(cutoff("100d", now).is_err());
        assert!(cutoff("1969-12-31T23:59:59Z", now).is_err());
    }
}
