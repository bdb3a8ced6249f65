//! Pages of long lists read in SQL, for the REST API: a plan of 10,000
//! actions is listed 1,000 at a time without reading the others, and the
//! event log a page at a time.

use super::columns::enum_col;
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
            "SELECT x.uuid FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.deleted = 0 AND (?1 IS NULL OR p.uuid = ?1) AND (?2 IS NULL OR x.id {cmp} ?2) \
             ORDER BY x.id {order} LIMIT ?3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(Some(self.rows(
            &sql,
            rusqlite::params![plan, after_id, limit],
            |r| r.get::<_, String>(0),
        )?))
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
            |r| {
                Ok(super::EventRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    event_type: enum_col(r, 2, 0, "events", "event_type")?,
                    object_type: r.get(3)?,
                    object_uuid: r.get(4)?,
                    action_plan_uuid: r.get(5)?,
                    old_state: r.get(6)?,
                    new_state: r.get(7)?,
                    payload: super::json_col(r.get::<_, String>(8)?),
                })
            },
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
}
