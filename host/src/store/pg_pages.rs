//! The event log, pages of long lists and state counts on PostgreSQL
//! (`pages.rs`, `counts.rs` and the event reads of `mod.rs` on SQLite).

use super::counts::StateCounts;
use super::pg::PgStore;
use super::pg_plans::{ACTION_COLS, action_from_row, with_parent_uuids};
use super::pg_sql::{Sql, args, int};
use super::plans::ActionRow;
use super::{EventRow, Result, json_col};
use crate::states::UnknownName;
use std::str::FromStr;

const EVENT_COLS: &str =
    "id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload";

pub(super) fn event_from_row<C: postgres::GenericClient>(
    db: &Sql<'_, C>,
    r: &postgres::Row,
) -> Result<EventRow> {
    Ok(EventRow {
        id: int(r, 0),
        at: r.get(1),
        event_type: db.enum_col(r, 2, 0, "events", "event_type")?,
        object_type: r.get(3),
        object_uuid: r.get(4),
        action_plan_uuid: r.get(5),
        old_state: r.get(6),
        new_state: r.get(7),
        payload: json_col(r.get(8)),
    })
}

/// Up to `limit` rows of `cols` of the actions not deleted, of one plan
/// or of every plan, in creation order (reversed with `desc`), after the
/// action `after`; `None` when `after` names no action of the list.
fn page_of(
    db: &mut Sql<'_, postgres::Client>,
    plan: Option<&str>,
    after: Option<&str>,
    limit: usize,
    desc: bool,
    cols: &str,
) -> Result<Option<Vec<postgres::Row>>> {
    let after_id: Option<i64> = match after {
        None => None,
        Some(m) => match db.opt(
            "SELECT x.id FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.uuid = $1 AND x.deleted = 0 AND ($2::text IS NULL OR p.uuid = $2)",
            args![m, plan],
        )? {
            Some(r) => Some(int(&r, 0)),
            None => return Ok(None),
        },
    };
    let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
    Ok(Some(db.rows(
        &format!(
            "SELECT {cols} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.deleted = 0 AND ($1::text IS NULL OR p.uuid = $1) \
             AND ($2::bigint IS NULL OR x.id {cmp} $2) ORDER BY x.id {order} LIMIT $3"
        ),
        args![plan, after_id, limit],
    )?))
}

impl PgStore {
    /// The id of the newest event, 0 when there is none.
    pub fn last_event_id(&self) -> Result<i64> {
        self.read(|db| {
            Ok(int(
                &db.one("SELECT COALESCE(MAX(id), 0) FROM events", &[])?,
                0,
            ))
        })
    }

    /// The event log, oldest first, optionally of one action plan, after
    /// event id `after`.
    pub fn events(&self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>> {
        self.read(|db| {
            let rows = db.rows(
                &format!(
                    "SELECT {EVENT_COLS} FROM events \
                     WHERE id > $1 AND ($2::text IS NULL OR action_plan_uuid = $2) ORDER BY id"
                ),
                args![after, plan],
            )?;
            rows.iter().map(|r| event_from_row(db, r)).collect()
        })
    }

    /// Up to `limit` events after event id `after`, oldest first,
    /// optionally of one action plan.
    pub fn events_page(
        &self,
        plan: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        self.read(|db| {
            let rows = db.rows(
                &format!(
                    "SELECT {EVENT_COLS} FROM events \
                     WHERE id > $1 AND ($2::text IS NULL OR action_plan_uuid = $2) \
                     ORDER BY id LIMIT $3"
                ),
                args![after, plan, limit],
            )?;
            rows.iter().map(|r| event_from_row(db, r)).collect()
        })
    }

    /// The uuids of up to `limit` actions not deleted, of one plan or of
    /// every plan, in creation order (reversed with `desc`), after the
    /// action `after`; `None` when `after` names no action of the list.
    pub fn action_uuids_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<String>>> {
        self.read(|db| {
            let Some(rows) = page_of(db, plan, after, limit, desc, "x.uuid")? else {
                return Ok(None);
            };
            Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
        })
    }

    /// As [`PgStore::action_uuids_page`], the actions themselves, read in
    /// one query (a 1,000-action page is one statement, not a thousand
    /// lookups), their parents' uuids taken from the page.
    pub fn actions_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<ActionRow>>> {
        self.read(|db| {
            let Some(rows) = page_of(db, plan, after, limit, desc, ACTION_COLS)? else {
                return Ok(None);
            };
            let mut read = rows
                .iter()
                .map(|r| action_from_row(db, r))
                .collect::<Result<Vec<_>>>()?;
            with_parent_uuids(db, &mut read)?;
            Ok(Some(read.into_iter().map(|r| r.row).collect()))
        })
    }

    /// Where the event log of one plan (its uuid) stands
    /// ([`super::PlanEventsMark`]). The count matters here: event ids come
    /// from a sequence, so a transaction may commit an id below the
    /// largest one already visible.
    pub fn plan_events_mark(&self, plan: &str) -> Result<super::PlanEventsMark> {
        self.read(|db| {
            let r = db.one(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM events WHERE action_plan_uuid = $1",
                args![plan],
            )?;
            Ok(super::PlanEventsMark {
                count: int(&r, 0),
                last: int(&r, 1),
            })
        })
    }

    /// How many plans and actions (deleted ones too) are in each state.
    pub fn state_counts(&self) -> Result<StateCounts> {
        fn by_state<S: FromStr<Err = UnknownName>>(
            db: &mut Sql<'_, postgres::Client>,
            table: &'static str,
        ) -> Result<Vec<(S, i64)>> {
            // MIN(id) names a row holding a state no enum knows.
            let rows = db.rows(
                &format!(
                    "SELECT state, COUNT(*), MIN(id) FROM {table} GROUP BY state ORDER BY state COLLATE \"C\""
                ),
                &[],
            )?;
            rows.iter()
                .map(|r| Ok((db.enum_col(r, 0, 2, table, "state")?, int(r, 1))))
                .collect()
        }
        self.read(|db| {
            Ok(StateCounts {
                plans: by_state(db, "action_plans")?,
                actions: by_state(db, "actions")?,
            })
        })
    }
}
