//! What an operator does to stored objects after they are made, with
//! Watcher's rules (reference watcher-17.0.0.md, API section, and
//! watcher-service-facts.md 1.2 and 1.5): deleting a plan (soft delete,
//! its actions with it), retrying what a FAILED or CANCELLED plan left
//! undone as a new plan, changing an audit template, and purging old
//! events. Each is one transaction; a refusal writes nothing and says what
//! to do.

use super::audits::TemplateRow;
use super::plans::{NewPlan, NewPlanAction, PlanRow};
use super::{Event, Result, StoreError, append_event, now};
use super::{SqliteStore, StoreBackend};
use crate::states::{ActionState, EventType, PlanState};
use rusqlite::params;
use serde_json::{Value, json};

/// The plan states Watcher deletes from (`DELETE /v1/action_plans/{uuid}`:
/// SUCCEEDED, RECOMMENDED, FAILED, SUPERSEDED, CANCELLED; else 400
/// `DeleteError`).
pub const DELETABLE_PLAN_STATES: [PlanState; 5] = [
    PlanState::Succeeded,
    PlanState::Recommended,
    PlanState::Failed,
    PlanState::Superseded,
    PlanState::Cancelled,
];

/// The plan states whose unfinished actions can be retried.
pub const RETRYABLE_PLAN_STATES: [PlanState; 2] = [PlanState::Failed, PlanState::Cancelled];

/// The plan states whose events are never purged: not started yet, or not
/// ended.
const LIVE_PLAN_STATES: &str = "'RECOMMENDED', 'PENDING', 'ONGOING', 'CANCELLING'";

/// The audit states whose events are never purged.
const LIVE_AUDIT_STATES: &str = "'PENDING', 'ONGOING', 'SUSPENDED'";

/// A change to an audit template; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TemplateChange<'a> {
    /// A new name (unique among templates not deleted).
    pub name: Option<&'a str>,
    /// A new description.
    pub description: Option<&'a str>,
    /// A new policy (reference, stored content), or `Some(None)` for none.
    pub policy: Option<Option<(String, String)>>,
}

impl TemplateChange<'_> {
    /// How the policy columns are written: whether they are set at all,
    /// then the policy and its stored content (both `None`: no policy).
    pub(super) fn policy_columns(&self) -> (bool, Option<&str>, Option<&str>) {
        match &self.policy {
            None => (false, None, None),
            Some(None) => (true, None, None),
            Some(Some((r, c))) => (true, Some(r.as_str()), Some(c.as_str())),
        }
    }
}

/// Why a plan is not deleted now, with what to do; `None` when it may be.
pub fn delete_refusal(p: &PlanRow) -> Option<StoreError> {
    if DELETABLE_PLAN_STATES.contains(&p.state) {
        return None;
    }
    let what = match p.state {
        PlanState::Cancelling => format!(
            "its cancellation is under way; delete it once it is CANCELLED (`sextant action-plan show {}`)",
            p.uuid
        ),
        _ => format!(
            "a queued or running plan is not deleted; cancel it first (`sextant action-plan cancel {}`), then delete it",
            p.uuid
        ),
    };
    Some(StoreError::Refused {
        kind: "action plan",
        id: p.uuid.clone(),
        state: p.state.to_string(),
        what,
    })
}

impl SqliteStore {
    /// Compare-and-set of plan `p` from its state (as read) to DELETED at
    /// `at`, with its actions and efficacy indicators, and their events;
    /// the rules are [`StoreBackend::delete_plan`]'s.
    pub fn write_plan_delete(&mut self, p: &PlanRow, at: &str) -> Result<bool> {
        self.write(|tx| {
            // Compare-and-set: an applier elsewhere may have moved it.
            let n = tx.execute(
                "UPDATE action_plans SET state = 'DELETED', deleted = 1, deleted_at = ?1, updated_at = ?1 \
                 WHERE id = ?2 AND state = ?3 AND deleted = 0",
                params![at, p.id, p.state],
            )?;
            if n == 0 {
                return Ok(false);
            }
            append_event(
                tx,
                &Event::state_change(
                    EventType::PlanDelete,
                    &p.uuid,
                    Some(p.state.as_str()),
                    "DELETED",
                )
                .in_plan(&p.uuid),
            )?;
            tx.execute(
                "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload) \
                 SELECT ?1, 'action.delete', 'action', uuid, ?2, state, 'DELETED', '{}' FROM actions \
                 WHERE action_plan_id = ?3 AND deleted = 0 ORDER BY id",
                params![at, p.uuid, p.id],
            )?;
            tx.execute(
                "UPDATE actions SET state = 'DELETED', deleted = 1, deleted_at = ?1, updated_at = ?1 \
                 WHERE action_plan_id = ?2 AND deleted = 0",
                params![at, p.id],
            )?;
            tx.execute(
                "UPDATE efficacy_indicators SET deleted = 1, deleted_at = ?1 WHERE action_plan_id = ?2 AND deleted = 0",
                params![at, p.id],
            )?;
            Ok(true)
        })
    }

    /// Writes `change` to template `t` (as read), with its `updated_at`;
    /// the rule is [`StoreBackend::update_template`]'s.
    pub fn write_template_change(
        &mut self,
        t: &TemplateRow,
        change: &TemplateChange<'_>,
    ) -> Result<()> {
        let (set_policy, policy, content) = change.policy_columns();
        self.write(|tx| {
            tx.execute(
                "UPDATE audit_templates SET name = COALESCE(?1, name), description = COALESCE(?2, description), \
                 policy = CASE WHEN ?3 THEN ?4 ELSE policy END, \
                 policy_content = CASE WHEN ?3 THEN ?5 ELSE policy_content END, updated_at = ?6 \
                 WHERE id = ?7",
                params![
                    change.name,
                    change.description,
                    set_policy,
                    policy,
                    content,
                    now(),
                    t.id
                ],
            )
        })?;
        Ok(())
    }

    /// Deletes the events older than `before` (RFC 3339 UTC, as events are
    /// stamped), except those of plans not ended (RECOMMENDED, PENDING,
    /// ONGOING, CANCELLING) and of audits not ended (PENDING, ONGOING,
    /// SUSPENDED), and except the newest event of all: event ids must never
    /// be handed out again, or a follower (`history --follow`, the
    /// notification sinks) that read up to it would miss what comes next.
    /// Returns how many were deleted.
    pub fn purge_events(&mut self, before: &str) -> Result<usize> {
        let before = before.to_string();
        self.write(|tx| {
            tx.execute(
                &format!(
                    "DELETE FROM events WHERE at < ?1 \
                     AND id < (SELECT max(id) FROM events) \
                     AND (action_plan_uuid IS NULL OR action_plan_uuid NOT IN \
                          (SELECT uuid FROM action_plans WHERE deleted = 0 AND state IN ({LIVE_PLAN_STATES}))) \
                     AND NOT (object_type = 'audit' AND object_uuid IN \
                          (SELECT uuid FROM audits WHERE deleted = 0 AND state IN ({LIVE_AUDIT_STATES})))"
                ),
                [&before],
            )
        })
    }
}

/// The parameters of a retried action: each declared reference (a JSON
/// pointer to a string leaf) that reads only finished actions' outputs is
/// substituted with them now, since those actions are not in the new plan;
/// those that read only retried actions are kept (returned). A leaf that
/// reads both, or an output that does not exist, cannot be retried.
/// A new RECOMMENDED plan of what a FAILED or CANCELLED plan left undone,
/// on either backend (see [`StoreBackend::retry_plan`]).
pub(super) fn retry_plan<S: StoreBackend + ?Sized>(store: &mut S, id: &str) -> Result<PlanRow> {
    let p = store.plan(id)?;
    if !RETRYABLE_PLAN_STATES.contains(&p.state) {
        let what = match p.state {
            PlanState::Recommended => format!(
                "it has not run; start it instead (`sextant action-plan start {}`)",
                p.uuid
            ),
            PlanState::Pending | PlanState::Ongoing | PlanState::Cancelling => format!(
                "it has not ended; wait for it, or cancel it first (`sextant action-plan cancel {}`), then retry it",
                p.uuid
            ),
            PlanState::Succeeded => "every action of it succeeded; nothing is left to retry".into(),
            _ => "only a FAILED or CANCELLED plan is retried".into(),
        };
        return Err(StoreError::Refused {
            kind: "action plan",
            id: p.uuid,
            state: p.state.to_string(),
            what,
        });
    }
    let actions = store.actions(&p.uuid)?;
    let left: Vec<_> = actions
        .iter()
        .filter(|a| a.state != ActionState::Succeeded && a.state != ActionState::Skipped)
        .collect();
    if left.is_empty() {
        return Err(StoreError::Refused {
            kind: "action plan",
            id: p.uuid,
            state: p.state.to_string(),
            what: "every action of it succeeded or was skipped; nothing is left to retry".into(),
        });
    }
    let name_of: std::collections::HashMap<&str, &str> = left
        .iter()
        .map(|a| (a.uuid.as_str(), a.name.as_str()))
        .collect();
    let mut extra = store.plan_extra(&p.uuid)?;
    if !extra.is_object() {
        extra = json!({});
    }
    // The outputs of the finished actions, for the references to them.
    let finished: Value = actions
        .iter()
        .filter(|a| a.state == ActionState::Succeeded)
        .map(|a| {
            let outputs = a.outputs.clone().unwrap_or(Value::Null);
            (a.name.clone(), json!({ "outputs": outputs }))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let kept: std::collections::HashSet<&str> = name_of.values().copied().collect();
    let mut references = serde_json::Map::new();
    let mut new_actions = Vec::with_capacity(left.len());
    for a in &left {
        let declared: Vec<String> = extra["references"][&a.name]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let (params, still) =
            resolve_finished_references(&a.name, &a.input_parameters, &declared, &kept, &finished)
                .map_err(|what| StoreError::Refused {
                    kind: "action plan",
                    id: p.uuid.clone(),
                    state: p.state.to_string(),
                    what,
                })?;
        if !still.is_empty() {
            references.insert(a.name.clone(), still.into_iter().map(Value::from).collect());
        }
        new_actions.push(NewPlanAction {
            name: a.name.clone(),
            action_type: a.action_type.clone(),
            action_type_version: a.action_type_version.clone(),
            input_parameters: params,
            parents: a
                .parents
                .iter()
                .filter_map(|u| name_of.get(u.as_str()).map(|n| n.to_string()))
                .collect(),
            state: ActionState::Pending,
        });
    }
    if let Some(m) = extra.as_object_mut() {
        if references.is_empty() {
            m.remove("references");
        } else {
            m.insert("references".into(), Value::Object(references));
        }
    }
    extra["retry_of"] = Value::from(p.uuid.as_str());
    store.create_plan(&NewPlan {
        audit_uuid: p.audit_uuid.clone(),
        strategy_uuid: p.strategy_uuid.clone(),
        planner: p.planner.clone(),
        state: PlanState::Recommended,
        global_efficacy: Value::Null,
        efficacy_indicators: Value::Null,
        actions: new_actions,
        rows: Vec::new(),
        extra,
        // Retry refuses plans with flows or alternatives: the copy is flat.
        structure: Default::default(),
    })
}

fn resolve_finished_references(
    name: &str,
    params: &Value,
    declared: &[String],
    kept: &std::collections::HashSet<&str>,
    finished: &Value,
) -> std::result::Result<(Value, Vec<String>), String> {
    use crate::action_types::template;
    let mut params = params.clone();
    let mut still = Vec::new();
    for (pointer, names) in template::declared_references(&params.clone()) {
        if !declared.contains(&pointer) {
            continue;
        }
        let (retried, done): (Vec<&String>, Vec<&String>) =
            names.iter().partition(|n| kept.contains(n.as_str()));
        match (retried.is_empty(), done.is_empty()) {
            (_, true) => still.push(pointer),
            (true, false) => {
                params = template::substitute_references(
                    &params,
                    std::slice::from_ref(&pointer),
                    finished,
                )
                .map_err(|e| format!("action {name}: {e}; it cannot be retried"))?;
            }
            (false, false) => {
                return Err(format!(
                    "action {name}: parameter {pointer} reads the outputs of finished actions ({}) and of retried ones ({}); it cannot be retried as a new plan",
                    done.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    retried
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok((params, still))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans::NewPlanRow;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        purge_keeps_live_plans_events_and_the_newest_event,
        a_template_is_changed_and_a_rename_to_a_taken_name_is_refused_writing_nothing,
        a_rename_to_a_name_two_templates_share_is_refused_and_a_uuid_prefix_is_a_free_name,
        a_plan_moved_meanwhile_is_not_deleted_and_nothing_is_written,
    );

    fn a_plan_moved_meanwhile_is_not_deleted_and_nothing_is_written(mut s: TestStore) {
        let uuid = plan(&mut s, "SUCCEEDED");
        // Another process's move, as the compare-and-set sees it: the row
        // is no longer in the state read, so the UPDATE changes nothing.
        s.race_updates_where("action_plans", "NEW.state = 'DELETED'");
        let events = s.last_event_id().expect("events");
        let e = s.delete_plan(&uuid).expect_err("refused");
        match &e {
            StoreError::Refused {
                kind, id, state, ..
            } => assert_eq!(
                (*kind, id.as_str(), state.as_str()),
                ("action plan", uuid.as_str(), "SUCCEEDED")
            ),
            other => panic!("not a refusal: {other}"),
        }
        assert!(e.to_string().contains("changed meanwhile"), "{e}");
        assert_eq!(s.plan(&uuid).expect("plan").state, PlanState::Succeeded);
        assert_eq!(s.actions(&uuid).expect("actions").len(), 1);
        assert_eq!(s.last_event_id().expect("events"), events);
        // Without the other process, it is deleted with its action.
        s.end_race("action_plans");
        let deleted = s.delete_plan(&uuid).expect("deleted");
        assert_eq!(deleted.state, PlanState::Deleted);
        assert!(s.plan(&uuid).is_err());
        assert_eq!(
            s.int("SELECT count(*) FROM actions WHERE deleted = 1"),
            Some(1)
        );
    }

    fn plan(s: &mut TestStore, state: &str) -> String {
        s.create_plan(&NewPlan {
            state: state.parse().expect("a plan state"),
            rows: vec![NewPlanRow {
                name: "a",
                action_type: "nop",
                input_parameters_json: "{}",
                state: crate::states::ActionState::Pending,
                ..Default::default()
            }],
            ..Default::default()
        })
        .expect("plan")
        .uuid
    }

    fn template(s: &mut TestStore, name: &str) -> super::super::audits::TemplateRow {
        s.create_template(&super::super::audits::NewTemplate {
            name,
            description: "",
            goal: "dummy",
            strategy: None,
            scope: json!([]),
            default_parameters: json!({}),
            policy: None,
            policy_content: None,
        })
        .expect("template")
    }

    fn a_template_is_changed_and_a_rename_to_a_taken_name_is_refused_writing_nothing(
        mut s: TestStore,
    ) {
        s.exec(
            "INSERT INTO goals (uuid, name, display_name, created_at) \
             VALUES ('g', 'dummy', 'Dummy', 't')",
        );
        let t1 = template(&mut s, "t1");
        let t2 = template(&mut s, "t2");
        let e = s
            .update_template(
                "t1",
                &TemplateChange {
                    name: Some("t2"),
                    description: Some("never written"),
                    policy: Some(None),
                },
            )
            .expect_err("a taken name");
        match &e {
            StoreError::Refused {
                kind, id, state, ..
            } => assert_eq!(
                (*kind, id.as_str(), state.as_str()),
                ("audit template", t1.uuid.as_str(), "not renamed")
            ),
            other => panic!("not a refusal: {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&t2.uuid) && msg.contains("named \"t2\""),
            "{msg}"
        );
        // Refused: nothing written.
        assert_eq!(s.template(&t1.uuid).expect("t1"), t1);
        // Its own name and a free one are accepted; the policy is set, then
        // removed; a field not named is kept.
        let same = s
            .update_template(
                &t1.uuid,
                &TemplateChange {
                    name: Some("t1"),
                    description: Some("first"),
                    policy: Some(Some(("default".into(), r#"{"rules": []}"#.into()))),
                },
            )
            .expect("same name");
        let fields = |t: &super::super::audits::TemplateRow| {
            (
                t.name.clone(),
                t.description.clone(),
                t.policy.clone(),
                t.policy_content.clone(),
            )
        };
        assert_eq!(
            fields(&same),
            (
                "t1".into(),
                "first".into(),
                Some("default".into()),
                Some(json!({"rules": []}))
            )
        );
        let renamed = s
            .update_template(
                "t1",
                &TemplateChange {
                    name: Some("t3"),
                    description: None,
                    policy: Some(None),
                },
            )
            .expect("renamed");
        assert_eq!(fields(&renamed), ("t3".into(), "first".into(), None, None));
        assert!(renamed.updated_at.is_some());
        assert_eq!(s.template(&t2.uuid).expect("t2"), t2);
    }

    /// A name two templates share (a lookup by name that fails: ambiguous)
    /// is taken, not free: the rename is refused, nothing written. Before,
    /// any error of the lookup let the rename through. A name that is a
    /// uuid prefix of another template is a name nobody has: accepted.
    fn a_rename_to_a_name_two_templates_share_is_refused_and_a_uuid_prefix_is_a_free_name(
        mut s: TestStore,
    ) {
        s.exec(
            "INSERT INTO goals (uuid, name, display_name, created_at) \
             VALUES ('g', 'dummy', 'Dummy', 't')",
        );
        let t1 = template(&mut s, "t1");
        // Two of the same name (the store does not forbid it: an import,
        // an older version).
        let d1 = template(&mut s, "dup");
        let d2 = template(&mut s, "dup");
        let e = s
            .update_template(
                &t1.uuid,
                &TemplateChange {
                    name: Some("dup"),
                    description: Some("never written"),
                    policy: None,
                },
            )
            .expect_err("a name two templates have");
        let msg = e.to_string();
        assert!(
            matches!(e, StoreError::Refused { .. })
                && msg.contains(&t1.uuid)
                && msg.contains(&d1.uuid)
                && msg.contains(&d2.uuid),
            "{msg}"
        );
        assert_eq!(s.template(&t1.uuid).expect("t1"), t1);
        let prefix = &d1.uuid[..8];
        let renamed = s
            .update_template(
                &t1.uuid,
                &TemplateChange {
                    name: Some(prefix),
                    description: None,
                    policy: None,
                },
            )
            .expect("a uuid prefix is no template's name");
        assert_eq!(renamed.name, prefix);
        assert_eq!(s.template(&d1.uuid).expect("d1"), d1);
    }

    /// The templates cannot be read (a row of another template is
    /// corrupt): the rename fails with the store's error, naming the
    /// database, and writes nothing. Before, the failed lookup counted as
    /// "no template has that name" and the rename went through. (SQLite
    /// only: PostgreSQL's typed columns cannot hold such a row.)
    #[test]
    fn a_rename_whose_name_lookup_fails_reports_the_store_error_and_writes_nothing() {
        let mut s = TestStore::sqlite();
        s.exec(
            "INSERT INTO goals (uuid, name, display_name, created_at) \
             VALUES ('g', 'dummy', 'Dummy', 't')",
        );
        let t1 = template(&mut s, "t1");
        let t2 = template(&mut s, "t2");
        s.exec(&format!(
            "UPDATE audit_templates SET description = x'00ff' WHERE uuid = '{}'",
            t2.uuid
        ));
        let e = s
            .update_template(
                &t1.uuid,
                &TemplateChange {
                    name: Some("t2"),
                    description: Some("never written"),
                    policy: None,
                },
            )
            .expect_err("the templates cannot be read");
        assert!(
            matches!(e, StoreError::Database { .. }),
            "not the store's error: {e}"
        );
        assert_eq!(s.template(&t1.uuid).expect("t1"), t1);
    }

    #[test]
    fn retried_references_to_finished_actions_are_substituted_and_others_kept() {
        let kept: std::collections::HashSet<&str> = ["b", "c"].into_iter().collect();
        let finished = json!({"a": {"outputs": {"host": "h1", "n": 3}}});
        let params = json!({
            "to": "{{ actions.a.outputs.host }}",
            "count": "{{ actions.a.outputs.n }}",
            "from": "{{ actions.b.outputs.host }}",
            "literal": "{{ actions.a.outputs.host }}",
        });
        let declared = vec!["/to".to_string(), "/count".to_string(), "/from".to_string()];
        let (p, still) =
            resolve_finished_references("c", &params, &declared, &kept, &finished).expect("ok");
        assert_eq!(p["to"], "h1");
        assert_eq!(p["count"], "3");
        assert_eq!(p["from"], "{{ actions.b.outputs.host }}");
        // Not declared: never read as a template.
        assert_eq!(p["literal"], "{{ actions.a.outputs.host }}");
        assert_eq!(still, ["/from"]);
        let mixed = json!({"x": "{{ actions.a.outputs.host }}-{{ actions.b.outputs.host }}"});
        let e = resolve_finished_references("c", &mixed, &["/x".into()], &kept, &finished)
            .expect_err("mixed");
        assert!(
            e.contains("finished actions (a)") && e.contains("retried ones (b)"),
            "{e}"
        );
        let missing = json!({"x": "{{ actions.a.outputs.nothing }}"});
        assert!(
            resolve_finished_references("c", &missing, &["/x".into()], &kept, &finished).is_err()
        );
    }

    fn purge_keeps_live_plans_events_and_the_newest_event(mut s: TestStore) {
        let live = plan(&mut s, "RECOMMENDED");
        let done = plan(&mut s, "SUCCEEDED");
        let all = s.events(None, 0).expect("events");
        let newest = all.last().expect("some").id;
        // Everything is older than the far future.
        let n = s.purge_events("9999-01-01T00:00:00.000Z").expect("purge");
        let left = s.events(None, 0).expect("events");
        assert_eq!(n, all.len() - left.len());
        assert!(left.iter().any(|e| e.id == newest));
        assert!(
            left.iter()
                .filter(|e| e.action_plan_uuid.as_deref() == Some(live.as_str()))
                .count()
                == 2
        );
        assert!(
            left.iter()
                .all(|e| e.action_plan_uuid.as_deref() != Some(done.as_str()) || e.id == newest)
        );
        // Nothing is older than the distant past.
        assert_eq!(s.purge_events("1970-01-01T00:00:00.000Z").expect("p"), 0);
    }
}
