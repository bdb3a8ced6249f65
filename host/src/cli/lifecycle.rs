//! The operator's changes to what is stored: `action-plan delete | retry`,
//! `audit update`, `audit-template update`, `history purge`. The rules are
//! Watcher's (reference watcher-17.0.0.md, API section: audit PATCH and
//! action-plan DELETE; watcher-service-facts.md 1.2, 1.3 and 1.5); the
//! store does each change in one transaction (`store::lifecycle`).

use super::output::outln;
use super::output::{Format, print_structured};
use super::{CliError, CliResult, Env};
use crate::store::StoreError;
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
/// Every id is resolved and checked before any is deleted; `--format
/// json|yaml` prints the deleted plans as `action-plan list` does.
pub fn delete_plans(env: &Env, ids: &[String], format: Format) -> CliResult {
    if ids.is_empty() {
        return Err(input("give the action plans to delete"));
    }
    let (mut store, _, _) = env.open_store_synced()?;
    let deleted = crate::ops::plans::delete(&mut store, ids).map_err(super::op_error)?;
    if !print_structured(format, &deleted)? {
        for p in &deleted {
            outln!("deleted action plan {} ({} actions)", p.uuid, p.actions);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `action-plan retry ID`: a new RECOMMENDED plan of what a FAILED or
/// CANCELLED plan left undone; prints its uuid.
pub fn retry_plan(env: &Env, id: &str, format: Format) -> CliResult {
    let (mut store, _, _) = env.open_store_synced()?;
    let old = store.plan(id).map_err(store_input)?;
    // A retry copies the unfinished actions as a flat plan: the
    // alternatives of a structured plan would all run as ordinary actions.
    if !store.action_scopes(&old.uuid)?.is_empty() || !store.plan_flows(&old.uuid)?.is_empty() {
        return Err(CliError::input(anyhow::anyhow!(
            "action plan {}: it has flows or alternatives (docs/flows.md), which a retry would flatten; import a plan for what is left instead",
            old.uuid
        )));
    }
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

/// `audit update ID [--state S] [--interval I]`: Watcher's audit PATCH of
/// `/state` and `/interval` (`ops::audits::update`).
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
    let state = state
        .map(crate::ops::audits::update_state)
        .transpose()
        .map_err(super::op_error)?;
    let (mut store, _, _) = env.open_store_synced()?;
    let a = crate::ops::audits::update(&mut store, id, state, interval).map_err(super::op_error)?;
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
    let policy = match (policy, no_policy) {
        (Some(p), _) => Some(Some(p)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let types = std::cell::OnceCell::new();
    let vocab =
        || crate::policy::Vocabulary::of(types.get_or_init(|| env.action_types()), &plugins);
    let t = crate::ops::templates::update(
        &mut store,
        id,
        &crate::ops::templates::TemplateUpdate {
            name,
            description,
            policy,
        },
        &vocab,
    )
    .map_err(super::op_error)?;
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
