//! The events table as the notification outbox, on PostgreSQL (`outbox.rs`
//! on SQLite): durable sink cursors, events read after a cursor, and the
//! objects a batch of events is about, one query per kind.

use super::outbox::{
    ActionSubject, AuditSubject, CatalogSubject, PlanSubject, SinkCursor, Subjects,
};
use super::pg::PgStore;
use super::pg_pages::event_from_row;
use super::pg_sql::{PgRow, args, flag, int};
use super::{EventRow, Result, json_col, now};
use crate::states::ObjectType;

/// The distinct uuids, sorted.
fn uuid_list<'a>(uuids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = uuids.into_iter().cloned().collect();
    v.sort();
    v.dedup();
    v
}

fn catalog(r: &PgRow) -> Result<CatalogSubject> {
    Ok(CatalogSubject {
        uuid: r.get(0)?,
        name: r.get(1)?,
        display_name: r.get(2)?,
        spec: json_col(r.get(3)?),
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        deleted_at: r.get(6)?,
    })
}

impl PgStore {
    /// This database's notification origin.
    pub fn notification_origin(&self) -> Result<String> {
        self.read(|db| {
            db.one("SELECT origin FROM notification_origin WHERE id = 1", &[])?
                .get(0)
        })
    }

    /// The cursor of `sink`, created at the newest event when new.
    pub fn register_sink_cursor(&mut self, sink: &str) -> Result<i64> {
        let at = now();
        self.write(|db| {
            db.exec(
                "INSERT INTO notification_cursors (sink, last_event_id, created_at, updated_at) \
                 VALUES ($1, (SELECT COALESCE(MAX(id), 0) FROM events), $2, $2) \
                 ON CONFLICT (sink) DO NOTHING",
                args![sink, at],
            )?;
            int(
                &db.one(
                    "SELECT last_event_id FROM notification_cursors WHERE sink = $1",
                    args![sink],
                )?,
                0,
            )
        })
    }

    /// The cursor of `sink`, if it has one.
    pub fn sink_cursor(&self, sink: &str) -> Result<Option<i64>> {
        self.read(|db| {
            db.opt(
                "SELECT last_event_id FROM notification_cursors WHERE sink = $1",
                args![sink],
            )
        })?
        .map(|r| int(&r, 0))
        .transpose()
    }

    /// Moves `sink`'s cursor forward to `to` (never back).
    pub fn advance_sink_cursor(&mut self, sink: &str, to: i64) -> Result<()> {
        self.read(|db| {
            db.exec(
                "UPDATE notification_cursors SET last_event_id = $2, updated_at = $3 \
                 WHERE sink = $1 AND last_event_id < $2",
                args![sink, to, now()],
            )
        })?;
        Ok(())
    }

    /// Every sink's cursor, by key.
    pub fn sink_cursors(&self) -> Result<Vec<SinkCursor>> {
        self.read(|db| {
            db.rows(
                "SELECT sink, last_event_id, created_at, updated_at FROM notification_cursors \
                     ORDER BY sink COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(SinkCursor {
                    sink: r.get(0)?,
                    last_event_id: int(r, 1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            })
            .collect::<Result<_>>()
        })
    }

    /// The number of events after event id `after`.
    pub fn events_count_after(&self, after: i64) -> Result<i64> {
        self.read(|db| {
            int(
                &db.one("SELECT COUNT(*) FROM events WHERE id > $1", args![after])?,
                0,
            )
        })
    }

    /// At most `limit` events after event id `after`, in id order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        self.read(|db| {
            let rows = db.rows(
                "SELECT id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, \
                 new_state, payload FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                args![after, limit],
            )?;
            rows.iter().map(|r| event_from_row(db, r)).collect()
        })
    }

    /// The objects `events` are about (deleted ones too).
    pub fn notification_subjects(&self, events: &[EventRow]) -> Result<Subjects> {
        let mut s = Subjects::default();
        let of = |kind: ObjectType| {
            events
                .iter()
                .filter(move |e| e.object_type == kind)
                .map(|e| &e.object_uuid)
        };
        self.read(|db| {
            let actions = uuid_list(of(ObjectType::Action));
            for r in &db.rows(
                "SELECT a.uuid, a.action_type, a.action_type_version, a.input_parameters, a.state, \
                 (SELECT COALESCE(json_agg(p.uuid ORDER BY j.ord), '[]'::json)::text \
                  FROM json_array_elements_text(a.parents::json) WITH ORDINALITY AS j(value, ord) \
                  JOIN actions p ON p.id = j.value::bigint), \
                 a.outputs, a.status_message, a.created_at, a.updated_at, a.deleted_at, ap.uuid \
                 FROM actions a JOIN action_plans ap ON ap.id = a.action_plan_id \
                 WHERE a.uuid = ANY($1)",
                args![actions],
            )? {
                let a = ActionSubject {
                    uuid: r.get(0)?,
                    action_type: r.get(1)?,
                    action_type_version: r.get(2)?,
                    input_parameters: json_col(r.get(3)?),
                    state: r.get(4)?,
                    parents: serde_json::from_str(&r.get::<String>(5)?).unwrap_or_default(),
                    outputs: r.get::<Option<String>>(6)?.map(json_col),
                    status_message: r.get(7)?,
                    created_at: r.get(8)?,
                    updated_at: r.get(9)?,
                    deleted_at: r.get(10)?,
                    action_plan_uuid: r.get(11)?,
                };
                s.actions.insert(a.uuid.clone(), a);
            }
            let plans = uuid_list(
                of(ObjectType::ActionPlan)
                    .chain(events.iter().filter_map(|e| e.action_plan_uuid.as_ref()))
                    .chain(s.actions.values().map(|a| &a.action_plan_uuid)),
            );
            for r in &db.rows(
                "SELECT ap.uuid, ap.state, ap.global_efficacy, ap.status_message, ap.created_at, \
                 ap.updated_at, ap.deleted_at, au.uuid, st.uuid \
                 FROM action_plans ap LEFT JOIN audits au ON au.id = ap.audit_id \
                 LEFT JOIN strategies st ON st.id = ap.strategy_id WHERE ap.uuid = ANY($1)",
                args![plans],
            )? {
                let p = PlanSubject {
                    uuid: r.get(0)?,
                    state: r.get(1)?,
                    global_efficacy: json_col(r.get(2)?),
                    status_message: r.get(3)?,
                    created_at: r.get(4)?,
                    updated_at: r.get(5)?,
                    deleted_at: r.get(6)?,
                    audit_uuid: r.get(7)?,
                    strategy_uuid: r.get(8)?,
                };
                s.plans.insert(p.uuid.clone(), p);
            }
            let audits = uuid_list(
                of(ObjectType::Audit).chain(s.plans.values().filter_map(|p| p.audit_uuid.as_ref())),
            );
            for r in &db.rows(
                "SELECT a.uuid, a.name, a.audit_type, a.state, a.parameters, a.\"interval\", a.scope, \
                 g.uuid, st.uuid, a.auto_trigger, a.next_run_time, a.created_at, a.updated_at, \
                 a.deleted_at, a.status_message \
                 FROM audits a JOIN goals g ON g.id = a.goal_id \
                 LEFT JOIN strategies st ON st.id = a.strategy_id WHERE a.uuid = ANY($1)",
                args![audits],
            )? {
                let a = AuditSubject {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    audit_type: r.get(2)?,
                    state: r.get(3)?,
                    parameters: json_col(r.get(4)?),
                    interval: r.get(5)?,
                    scope: json_col(r.get(6)?),
                    goal_uuid: r.get(7)?,
                    strategy_uuid: r.get(8)?,
                    auto_trigger: flag(r, 9)?,
                    next_run_time: r.get(10)?,
                    created_at: r.get(11)?,
                    updated_at: r.get(12)?,
                    deleted_at: r.get(13)?,
                    status_message: r.get(14)?,
                };
                s.audits.insert(a.uuid.clone(), a);
            }
            let goals = uuid_list(s.audits.values().map(|a| &a.goal_uuid));
            for r in &db.rows(
                "SELECT uuid, name, display_name, efficacy_specification, created_at, updated_at, \
                 deleted_at FROM goals WHERE uuid = ANY($1)",
                args![goals],
            )? {
                let g = catalog(r)?;
                s.goals.insert(g.uuid.clone(), g);
            }
            let strategies = uuid_list(
                s.audits
                    .values()
                    .filter_map(|a| a.strategy_uuid.as_ref())
                    .chain(s.plans.values().filter_map(|p| p.strategy_uuid.as_ref())),
            );
            for r in &db.rows(
                "SELECT uuid, name, display_name, parameters_spec, created_at, updated_at, \
                 deleted_at FROM strategies WHERE uuid = ANY($1)",
                args![strategies],
            )? {
                let st = catalog(r)?;
                s.strategies.insert(st.uuid.clone(), st);
            }
            Ok(())
        })?;
        Ok(s)
    }
}
