//! The events table as the notification outbox.
//!
//! The applier and the decision engine only append events (in the
//! transaction that changes the state). Each delivering sink (a webhook, an
//! AMQP bus) keeps a durable cursor in `notification_cursors`: the id of the
//! last event it delivered. Its publisher reads the events after the cursor
//! in id order, delivers them, and advances the cursor only once they are
//! confirmed, so a crash or an unreachable endpoint delays delivery and
//! never loses an event (delivery is at least once).
//!
//! The notification mapping needs the objects the events are about (an
//! action's type and parameters, its plan, the plan's audit…): they are read
//! here in one query per kind for a whole batch of events
//! (`notification_subjects`). The store's interface exposes these through
//! [`super::StoreBackend`].

use super::{EventRow, Result, SqliteStore, json_col, now};
use crate::states::ObjectType;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;
use std::collections::HashMap;

/// One sink's cursor, as `notifications status` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SinkCursor {
    /// The sink's key (its kind and address, never a password).
    pub sink: String,
    /// The last event it delivered.
    pub last_event_id: i64,
    /// When the cursor was created.
    pub created_at: String,
    /// When it last moved.
    pub updated_at: String,
}

/// An action as its notifications show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionSubject {
    /// Its uuid.
    pub uuid: String,
    /// Its action type.
    pub action_type: String,
    /// The version of the action type it was planned with.
    pub action_type_version: String,
    /// Its input parameters.
    pub input_parameters: Value,
    /// Its current state.
    pub state: String,
    /// Its parents' uuids.
    pub parents: Vec<String>,
    /// What its handler returned, if it ran.
    pub outputs: Option<Value>,
    /// Its status message.
    pub status_message: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: Option<String>,
    /// Deleted.
    pub deleted_at: Option<String>,
    /// Its plan's uuid.
    pub action_plan_uuid: String,
}

/// An action plan as its notifications show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanSubject {
    /// Its uuid.
    pub uuid: String,
    /// Its current state.
    pub state: String,
    /// Its global efficacy (a list of indicators).
    pub global_efficacy: Value,
    /// Its status message.
    pub status_message: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: Option<String>,
    /// Deleted.
    pub deleted_at: Option<String>,
    /// Its audit's uuid.
    pub audit_uuid: Option<String>,
    /// Its strategy's uuid.
    pub strategy_uuid: Option<String>,
}

/// An audit as its notifications show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditSubject {
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// ONESHOT, CONTINUOUS or EVENT.
    pub audit_type: String,
    /// Its current state.
    pub state: String,
    /// Its parameters.
    pub parameters: Value,
    /// Its interval, for a CONTINUOUS audit.
    pub interval: Option<String>,
    /// Its scope.
    pub scope: Value,
    /// Its goal's uuid.
    pub goal_uuid: String,
    /// Its strategy's uuid.
    pub strategy_uuid: Option<String>,
    /// Whether its plans start by themselves.
    pub auto_trigger: bool,
    /// Its next run, for a CONTINUOUS audit.
    pub next_run_time: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: Option<String>,
    /// Deleted.
    pub deleted_at: Option<String>,
    /// Its status message.
    pub status_message: Option<String>,
}

/// A goal or a strategy as notifications nest it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CatalogSubject {
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its display name.
    pub display_name: String,
    /// A goal's efficacy specification, a strategy's parameters spec.
    pub spec: Value,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: Option<String>,
    /// Deleted.
    pub deleted_at: Option<String>,
}

/// The objects a batch of events is about, by uuid.
#[derive(Clone, Debug, Default)]
pub struct Subjects {
    /// Actions.
    pub actions: HashMap<String, ActionSubject>,
    /// Action plans.
    pub plans: HashMap<String, PlanSubject>,
    /// Audits.
    pub audits: HashMap<String, AuditSubject>,
    /// Goals.
    pub goals: HashMap<String, CatalogSubject>,
    /// Strategies.
    pub strategies: HashMap<String, CatalogSubject>,
}

fn uuid_list<'a>(uuids: impl IntoIterator<Item = &'a String>) -> String {
    let mut v: Vec<&String> = uuids.into_iter().collect();
    v.sort();
    v.dedup();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

impl SqliteStore {
    /// This database's notification origin: 16 hex digits, drawn once (by
    /// the migration that made the outbox) and kept.
    pub fn notification_origin(&self) -> Result<String> {
        self.conn
            .query_row(
                "SELECT origin FROM notification_origin WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The cursor of `sink`, created at the newest event when the sink is
    /// new (a sink added to the config delivers what happens from then on,
    /// not the whole history).
    pub fn register_sink_cursor(&mut self, sink: &str) -> Result<i64> {
        let at = now();
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO notification_cursors (sink, last_event_id, created_at, updated_at) \
                 VALUES (?1, (SELECT COALESCE(MAX(id), 0) FROM events), ?2, ?2)",
                params![sink, at],
            )?;
            tx.query_row(
                "SELECT last_event_id FROM notification_cursors WHERE sink = ?1",
                [sink],
                |r| r.get(0),
            )
        })
    }

    /// The cursor of `sink`, if it has one.
    pub fn sink_cursor(&self, sink: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT last_event_id FROM notification_cursors WHERE sink = ?1",
                [sink],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Moves `sink`'s cursor forward to `to` (never back: two processes
    /// delivering for the same sink leave it at the furthest).
    pub fn advance_sink_cursor(&mut self, sink: &str, to: i64) -> Result<()> {
        let at = now();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE notification_cursors SET last_event_id = ?2, updated_at = ?3 \
                 WHERE sink = ?1 AND last_event_id < ?2",
            )?
            .execute(params![sink, to, at])?;
            Ok(())
        })
    }

    /// Every sink's cursor, by key.
    pub fn sink_cursors(&self) -> Result<Vec<SinkCursor>> {
        self.rows(
            "SELECT sink, last_event_id, created_at, updated_at FROM notification_cursors ORDER BY sink",
            [],
            |r| {
                Ok(SinkCursor {
                    sink: r.get(0)?,
                    last_event_id: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            },
        )
    }

    /// The number of events after `after`.
    pub fn events_count_after(&self, after: i64) -> Result<i64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events WHERE id > ?1", [after], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// At most `limit` events after `after`, in id order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload \
                 FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![after, limit], EventRow::from_row)
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
    }

    /// The actions, plans, audits, goals and strategies `events` are about
    /// (deleted ones too: a delete event shows what was deleted).
    pub fn notification_subjects(&self, events: &[EventRow]) -> Result<Subjects> {
        let mut s = Subjects::default();
        let of = |kind: ObjectType| {
            events
                .iter()
                .filter(move |e| e.object_type == kind)
                .map(|e| &e.object_uuid)
        };
        for a in self.rows(
            "SELECT a.uuid, a.action_type, a.action_type_version, a.input_parameters, a.state, \
             (SELECT json_group_array(p.uuid ORDER BY j.key) FROM json_each(a.parents) j \
              JOIN actions p ON p.id = j.value), \
             a.outputs, a.status_message, a.created_at, a.updated_at, a.deleted_at, ap.uuid \
             FROM actions a JOIN action_plans ap ON ap.id = a.action_plan_id \
             WHERE a.uuid IN (SELECT value FROM json_each(?1))",
            [uuid_list(of(ObjectType::Action))],
            |r| {
                Ok(ActionSubject {
                    uuid: r.get(0)?,
                    action_type: r.get(1)?,
                    action_type_version: r.get(2)?,
                    input_parameters: json_col(r.get(3)?),
                    state: r.get(4)?,
                    parents: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    outputs: r.get::<_, Option<String>>(6)?.map(json_col),
                    status_message: r.get(7)?,
                    created_at: r.get(8)?,
                    updated_at: r.get(9)?,
                    deleted_at: r.get(10)?,
                    action_plan_uuid: r.get(11)?,
                })
            },
        )? {
            s.actions.insert(a.uuid.clone(), a);
        }
        let plan_uuids = uuid_list(
            of(ObjectType::ActionPlan)
                .chain(events.iter().filter_map(|e| e.action_plan_uuid.as_ref()))
                .chain(s.actions.values().map(|a| &a.action_plan_uuid)),
        );
        for p in self.rows(
            "SELECT ap.uuid, ap.state, ap.global_efficacy, ap.status_message, ap.created_at, \
             ap.updated_at, ap.deleted_at, au.uuid, st.uuid \
             FROM action_plans ap LEFT JOIN audits au ON au.id = ap.audit_id \
             LEFT JOIN strategies st ON st.id = ap.strategy_id \
             WHERE ap.uuid IN (SELECT value FROM json_each(?1))",
            [plan_uuids],
            |r| {
                Ok(PlanSubject {
                    uuid: r.get(0)?,
                    state: r.get(1)?,
                    global_efficacy: json_col(r.get(2)?),
                    status_message: r.get(3)?,
                    created_at: r.get(4)?,
                    updated_at: r.get(5)?,
                    deleted_at: r.get(6)?,
                    audit_uuid: r.get(7)?,
                    strategy_uuid: r.get(8)?,
                })
            },
        )? {
            s.plans.insert(p.uuid.clone(), p);
        }
        let audit_uuids = uuid_list(
            of(ObjectType::Audit).chain(s.plans.values().filter_map(|p| p.audit_uuid.as_ref())),
        );
        for a in self.rows(
            "SELECT a.uuid, a.name, a.audit_type, a.state, a.parameters, a.interval, a.scope, \
             g.uuid, st.uuid, a.auto_trigger, a.next_run_time, a.created_at, a.updated_at, \
             a.deleted_at, a.status_message \
             FROM audits a JOIN goals g ON g.id = a.goal_id \
             LEFT JOIN strategies st ON st.id = a.strategy_id \
             WHERE a.uuid IN (SELECT value FROM json_each(?1))",
            [audit_uuids],
            |r| {
                Ok(AuditSubject {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    audit_type: r.get(2)?,
                    state: r.get(3)?,
                    parameters: json_col(r.get(4)?),
                    interval: r.get(5)?,
                    scope: json_col(r.get(6)?),
                    goal_uuid: r.get(7)?,
                    strategy_uuid: r.get(8)?,
                    auto_trigger: r.get(9)?,
                    next_run_time: r.get(10)?,
                    created_at: r.get(11)?,
                    updated_at: r.get(12)?,
                    deleted_at: r.get(13)?,
                    status_message: r.get(14)?,
                })
            },
        )? {
            s.audits.insert(a.uuid.clone(), a);
        }
        let catalog = |r: &rusqlite::Row<'_>| {
            Ok(CatalogSubject {
                uuid: r.get(0)?,
                name: r.get(1)?,
                display_name: r.get(2)?,
                spec: json_col(r.get(3)?),
                created_at: r.get(4)?,
                updated_at: r.get(5)?,
                deleted_at: r.get(6)?,
            })
        };
        let goal_uuids = uuid_list(s.audits.values().map(|a| &a.goal_uuid));
        for g in self.rows(
            "SELECT uuid, name, display_name, efficacy_specification, created_at, updated_at, deleted_at \
             FROM goals WHERE uuid IN (SELECT value FROM json_each(?1))",
            [goal_uuids],
            catalog,
        )? {
            s.goals.insert(g.uuid.clone(), g);
        }
        let strategy_uuids = uuid_list(
            s.audits
                .values()
                .filter_map(|a| a.strategy_uuid.as_ref())
                .chain(s.plans.values().filter_map(|p| p.strategy_uuid.as_ref())),
        );
        for st in self.rows(
            "SELECT uuid, name, display_name, parameters_spec, created_at, updated_at, deleted_at \
             FROM strategies WHERE uuid IN (SELECT value FROM json_each(?1))",
            [strategy_uuids],
            catalog,
        )? {
            s.strategies.insert(st.uuid.clone(), st);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::states::EventType;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        a_cursor_starts_at_the_newest_event_and_never_moves_back,
        the_subjects_of_a_batch_of_events_are_read_with_parents_as_uuids,
    );

    fn the_subjects_of_a_batch_of_events_are_read_with_parents_as_uuids(mut s: TestStore) {
        use crate::store::plans::{NewPlan, NewPlanRow};
        let plan = s
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: ["a", "b", "c"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| NewPlanRow {
                        name: n,
                        action_type: "nop",
                        input_parameters_json: r#"{"x":1}"#,
                        parents: [&[][..], &[0][..], &[1, 0][..]][i],
                        state: crate::states::ActionState::Pending,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let actions = s.actions(&plan.uuid).expect("actions");
        let events = s.events_after(0, 100).expect("events");
        assert_eq!(events.len(), 4);
        let subjects = s.notification_subjects(&events).expect("subjects");
        assert_eq!(subjects.actions.len(), 3);
        let c = &subjects.actions[&actions[2].uuid];
        assert_eq!(
            c.parents,
            [actions[1].uuid.clone(), actions[0].uuid.clone()]
        );
        assert_eq!(c.input_parameters, serde_json::json!({"x": 1}));
        assert_eq!(c.action_plan_uuid, plan.uuid);
        assert_eq!(subjects.plans[&plan.uuid].state, "RECOMMENDED");
        assert!(subjects.audits.is_empty() && subjects.goals.is_empty());
        assert!(
            s.notification_subjects(&[])
                .expect("none")
                .actions
                .is_empty()
        );
    }

    fn a_cursor_starts_at_the_newest_event_and_never_moves_back(mut s: TestStore) {
        let origin = s.notification_origin().expect("origin");
        assert_eq!(origin.len(), 16, "{origin}");
        for _ in 0..3 {
            s.note(EventType::AuditCreate, "u", None, serde_json::json!({}))
                .expect("event");
        }
        let newest = s.last_event_id().expect("newest");
        assert_eq!(s.register_sink_cursor("webhook a").expect("reg"), newest);
        assert_eq!(s.sink_cursor("webhook b").expect("none"), None);
        s.advance_sink_cursor("webhook a", newest - 2)
            .expect("back");
        assert_eq!(s.sink_cursor("webhook a").expect("c"), Some(newest));
        s.note(EventType::AuditCreate, "u", None, serde_json::json!({}))
            .expect("one more");
        // Registering again keeps the cursor where it was.
        assert_eq!(s.register_sink_cursor("webhook a").expect("reg"), newest);
        let after = s.events_after(newest, 10).expect("after");
        assert_eq!(after.len(), 1);
        s.advance_sink_cursor("webhook a", after[0].id)
            .expect("fwd");
        let all = s.sink_cursors().expect("all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].last_event_id, after[0].id);
        // The origin is drawn once.
        assert_eq!(s.notification_origin().expect("origin"), origin);
    }
}
