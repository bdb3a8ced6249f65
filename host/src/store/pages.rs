//! Pages of long lists read in SQL, for the REST API: a plan of 10,000
//! actions is listed 1,000 at a time without reading the others, and the
//! event log a page at a time.

use super::plans::{ACTION_COLS, ActionRow, action_from_row};
use super::{Result, SqliteStore};

impl SqliteStore {
    /// The uuids of up to `limit` actions not deleted, of one plan (its
    /// uuid) or of every plan, in creation order (reversed with `desc`),
    /// after the action `after` (its uuid). `None` when `after` names no
    /// action of the list.
    pub fn action_uuids_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<String>>> {
        self.page_of(plan, after, limit, desc, "x.uuid", |r| {
            r.get::<_, String>(0)
        })
    }

    /// As [`SqliteStore::action_uuids_page`], the actions themselves, read
    /// in one query (a 1,000-action page is one statement, not a thousand
    /// lookups), their parents' uuids taken from the page.
    pub fn actions_page(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
    ) -> Result<Option<Vec<ActionRow>>> {
        let Some(mut read) =
            self.page_of(plan, after, limit, desc, ACTION_COLS, action_from_row)?
        else {
            return Ok(None);
        };
        self.with_parent_uuids(&mut read)?;
        Ok(Some(read.into_iter().map(|r| r.into_row()).collect()))
    }

    /// Up to `limit` rows of `cols` of the actions not deleted, of one
    /// plan or of every plan, in creation order (reversed with `desc`),
    /// after the action `after`; `None` when `after` names no action of
    /// the list.
    fn page_of<T>(
        &self,
        plan: Option<&str>,
        after: Option<&str>,
        limit: usize,
        desc: bool,
        cols: &str,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<Vec<T>>> {
        let after_id: Option<i64> = match after {
            None => None,
            Some(m) => {
                let found = self.rows(
                    "SELECT x.id FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                     WHERE x.uuid = ?1 AND x.deleted = 0 AND (?2 IS NULL OR p.uuid = ?2)",
                    rusqlite::params![m, plan],
                    |r| r.get::<_, i64>(0),
                )?;
                match found.first() {
                    Some(id) => Some(*id),
                    None => return Ok(None),
                }
            }
        };
        let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
        let sql = format!(
            "SELECT {cols} FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.deleted = 0 AND (?1 IS NULL OR p.uuid = ?1) AND (?2 IS NULL OR x.id {cmp} ?2) \
             ORDER BY x.id {order} LIMIT ?3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(Some(self.rows(
            &sql,
            rusqlite::params![plan, after_id, limit],
            read,
        )?))
    }
}

impl SqliteStore {
    /// Where the event log of one plan (its uuid) stands
    /// ([`super::PlanEventsMark`]): every write to the plan's actions
    /// records an event of the plan in its transaction, and one writer at a
    /// time hands ids out inside its transaction, so the largest id moves
    /// with each write committed (one probe of `events_plan`).
    pub fn plan_events_mark(&self, plan: &str) -> Result<super::PlanEventsMark> {
        self.conn()
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events WHERE action_plan_uuid = ?1")
            .and_then(|mut st| {
                st.query_row([plan], |r| Ok(super::PlanEventsMark { last: r.get(0)? }))
            })
            .map_err(|e| self.err(e))
    }
}

impl SqliteStore {
    /// Up to `limit` events after event id `after`, oldest first,
    /// optionally of one action plan (its uuid): a page of the log read
    /// without the rest.
    pub fn events_page(
        &self,
        plan: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<super::EventRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(
            "SELECT id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload \
             FROM events WHERE id > ?1 AND (?2 IS NULL OR action_plan_uuid = ?2) ORDER BY id LIMIT ?3",
            rusqlite::params![after, plan, limit],
            super::EventRow::from_row,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::store::plans::{NewPlan, NewPlanRow};
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(pages_walk_a_plan_s_actions_in_order_both_ways);

    fn pages_walk_a_plan_s_actions_in_order_both_ways(mut s: TestStore) {
        use crate::states::{ActionState, PlanState};
        let names: Vec<String> = (0..7).map(|i| format!("a{i}")).collect();
        let p = s
            .create_plan(&NewPlan {
                state: PlanState::Recommended,
                rows: names
                    .iter()
                    .map(|n| NewPlanRow {
                        name: n,
                        action_type: "nop",
                        input_parameters_json: "{}",
                        state: ActionState::Pending,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let all: Vec<String> = s
            .actions(&p.uuid)
            .expect("actions")
            .into_iter()
            .map(|a| a.uuid)
            .collect();
        for desc in [false, true] {
            let mut walked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = s
                    .action_uuids_page(Some(&p.uuid), after.as_deref(), 3, desc)
                    .expect("page")
                    .expect("marker found");
                if page.is_empty() {
                    break;
                }
                after = page.last().cloned();
                walked.extend(page);
            }
            let mut want = all.clone();
            if desc {
                want.reverse();
            }
            assert_eq!(walked, want);
        }
        assert_eq!(
            s.action_uuids_page(Some(&p.uuid), Some("nope"), 3, false)
                .expect("page"),
            None
        );
        assert_eq!(
            s.action_uuids_page(Some("other-plan"), Some(&all[0]), 3, false)
                .expect("page"),
            None
        );
    }

    on_both_backends!(action_pages_read_in_one_query_are_the_actions_with_their_parents);

    fn action_pages_read_in_one_query_are_the_actions_with_their_parents(mut s: TestStore) {
        use crate::states::{ActionState, PlanState};
        let names: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        // Each action waits for the one before and the first: parents
        // both on the same page and on an earlier one.
        let parents: Vec<Vec<usize>> = (0..8)
            .map(|i: usize| match i {
                0 => vec![],
                1 => vec![0],
                _ => vec![i - 1, 0],
            })
            .collect();
        let p = s
            .create_plan(&NewPlan {
                state: PlanState::Recommended,
                rows: names
                    .iter()
                    .zip(&parents)
                    .map(|(n, ps)| NewPlanRow {
                        name: n,
                        action_type: "nop",
                        input_parameters_json: "{}",
                        parents: ps,
                        state: ActionState::Pending,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let all = s.actions(&p.uuid).expect("actions");
        assert_eq!(all[5].parents.len(), 2);
        for desc in [false, true] {
            let mut walked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = s
                    .actions_page(Some(&p.uuid), after.as_deref(), 3, desc)
                    .expect("page")
                    .expect("marker found");
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|a| a.uuid.clone());
                walked.extend(page);
            }
            let mut want = all.clone();
            if desc {
                want.reverse();
            }
            assert_eq!(walked, want);
        }
        assert_eq!(
            s.actions_page(Some(&p.uuid), Some("nope"), 3, false)
                .expect("page"),
            None
        );
    }
}
