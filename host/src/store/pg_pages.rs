//! The event log, pages of long lists and state counts on PostgreSQL
//! (`pages.rs`, `counts.rs` and the event reads of `mod.rs` on SQLite).

use super::counts::StateCounts;
use super::pg::PgStore;
use super::pg_plans::{ACTION_COLS, action_from_row, with_parent_uuids};
use super::pg_sql::{PgRow, Sql, args, int, unknown_value};
use super::plans::ActionRow;
use super::{EventRow, Result, json_col};
use crate::states::{ObjectState, ObjectType, UnknownName};
use std::str::FromStr;

const EVENT_COLS: &str =
    "id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload";

pub(super) fn event_from_row<C: postgres::GenericClient>(
    db: &Sql<'_, C>,
    r: &PgRow,
) -> Result<EventRow> {
    let id = int(r, 0)?;
    let object_type: ObjectType = db.enum_col(r, 3, 0, "events", "object_type")?;
    let state = |i: usize, column: &'static str| -> Result<Option<ObjectState>> {
        r.get::<Option<String>>(i)?
            .map(|text| {
                ObjectState::parse(object_type, &text)
                    .map_err(|name| unknown_value(db.location, "events", id, column, name))
            })
            .transpose()
    };
    Ok(EventRow {
        id,
        at: r.get(1)?,
        event_type: db.enum_col(r, 2, 0, "events", "event_type")?,
        object_type,
        object_uuid: r.get(4)?,
        action_plan_uuid: r.get(5)?,
        old_state: state(6, "old_state")?,
        new_state: state(7, "new_state")?,
        payload: json_col(r.get(8)?),
    })
}

/// The largest id of one plan's events (`$1`, its uuid), 0 when it has
/// none: see [`PgStore::plan_events_mark`].
const PLAN_MARK: &str = "SELECT COALESCE((SELECT id FROM events \
     WHERE action_plan_uuid >= $1 AND action_plan_uuid <= $1 \
     ORDER BY action_plan_uuid DESC, id DESC LIMIT 1), 0)";

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
) -> Result<Option<Vec<PgRow>>> {
    let after_id: Option<i64> = match after {
        None => None,
        Some(m) => match db.opt(
            "SELECT x.id FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.uuid = $1 AND x.deleted = 0 AND ($2::text IS NULL OR p.uuid = $2)",
            args![m, plan],
        )? {
            Some(r) => Some(int(&r, 0)?),
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
        self.read(|db| int(&db.one("SELECT COALESCE(MAX(id), 0) FROM events", &[])?, 0))
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
            Ok(Some(rows.iter().map(|r| r.get(0)).collect::<Result<_>>()?))
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
    /// ([`super::PlanEventsMark`]): the largest id of its events, one probe
    /// of `events_plan` (counting them read all of a plan's 10,001 index
    /// entries, 1.3 to 1.8 ms). The ids come from a sequence, handed out
    /// before commit, but each event of a plan takes the plan's lock first
    /// (migration 17), so a plan's ids are committed in order.
    ///
    /// The plan is a range, not an equality, and the order is the index's
    /// own: with `action_plan_uuid = $1` and `MAX(id)` the planner may walk
    /// `events_pkey` backwards filtering on the plan, through every newer
    /// event of other plans (measured: 56 ms behind 88,000 of an applied
    /// plan's events, against 0.03 ms here).
    pub fn plan_events_mark(&self, plan: &str) -> Result<super::PlanEventsMark> {
        self.read(|db| {
            let r = db.one(PLAN_MARK, args![plan])?;
            Ok(super::PlanEventsMark { last: int(&r, 0)? })
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
                .map(|r| Ok((db.enum_col(r, 0, 2, table, "state")?, int(r, 1)?)))
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

#[cfg(test)]
mod tests {
    use super::PLAN_MARK;
    use crate::store::Location;
    use crate::store::testing::TestStore;

    /// The lines of `EXPLAIN` of `sql` on `url`, after `setup`.
    fn explain(url: &str, setup: &str, sql: &str) -> String {
        let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
        c.batch_execute(setup).expect(setup);
        let rows = c.query(&format!("EXPLAIN {sql}"), &[]).expect(sql);
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The statistics say every event is the plan's (analyzed while it was
    /// the only one), then other plans' events fill the table after it: the
    /// mark is still read from `events_plan` (one entry), never by walking
    /// `events_pkey` backwards through the newer events (what the planner
    /// chose for `MAX(id) … WHERE action_plan_uuid = $1`: 56 ms at 88,000
    /// events), with the plan's uuid known to the planner or not (a
    /// prepared statement's generic plan).
    #[test]
    fn a_plan_s_mark_is_one_probe_of_its_index_behind_newer_events() {
        let mut s = TestStore::postgres();
        let (plan, _) = s.plan_of_nops(200);
        s.exec("ANALYZE events");
        s.exec(
            "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid) \
             SELECT '2026-12-06T00:00:00Z', 'action.update', 'action', 'x', \
             'other-' || (i % 3) FROM generate_series(1, 30000) i",
        );
        let Location::Postgres(url) = &s.location else {
            panic!("a PostgreSQL store")
        };
        let custom = explain(url, "", &PLAN_MARK.replace("$1", &format!("'{plan}'")));
        let generic = explain(
            url,
            &format!("SET plan_cache_mode = force_generic_plan; PREPARE mark(text) AS {PLAN_MARK}"),
            &format!("EXECUTE mark('{plan}')"),
        );
        for (how, p) in [("custom", custom), ("generic", generic)] {
            assert!(
                p.contains("events_plan") && !p.contains("events_pkey"),
                "{how} plan:\n{p}"
            );
        }
        let mark = crate::store::PlanMarks::open(&s.location)
            .expect("open")
            .mark(&plan)
            .expect("mark");
        assert_eq!(
            Some(mark.last),
            s.int(&format!(
                "SELECT MAX(id) FROM events WHERE action_plan_uuid = '{plan}'"
            ))
        );
    }
}
