//! How many plans and actions are in each state (for serve's metrics).

use super::columns::enum_col;
use super::{Result, SqliteStore};
use crate::states::{ActionState, PlanState, UnknownName};
use std::str::FromStr;

/// How many action plans and actions are in each state; states with none
/// are absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateCounts {
    /// Action plans per state.
    pub plans: Vec<(PlanState, i64)>,
    /// Actions per state.
    pub actions: Vec<(ActionState, i64)>,
}

impl StateCounts {
    /// The number of plans in `state`.
    pub fn plans_in(&self, state: PlanState) -> i64 {
        self.plans
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    /// The number of actions in `state`.
    pub fn actions_in(&self, state: ActionState) -> i64 {
        self.actions
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

impl SqliteStore {
    /// Counts plans and actions (soft-deleted ones included, as a state
    /// count of history) by state.
    pub fn state_counts(&self) -> Result<StateCounts> {
        fn by_state<S: FromStr<Err = UnknownName>>(
            store: &SqliteStore,
            table: &'static str,
        ) -> Result<Vec<(S, i64)>> {
            // MIN(id) names a row holding a state no enum knows.
            let sql = format!("SELECT state, COUNT(*), MIN(id) FROM {table} GROUP BY state");
            let mut st = store.conn.prepare_cached(&sql).map_err(|e| store.err(e))?;
            let rows = st
                .query_map([], |r| Ok((enum_col(r, 0, 2, table, "state")?, r.get(1)?)))
                .map_err(|e| store.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| store.err(e))
        }
        Ok(StateCounts {
            plans: by_state(self, "action_plans")?,
            actions: by_state(self, "actions")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::states::{ActionState, PlanState};
    use crate::store::StoreError;
    use crate::store::plans::{NewPlan, NewPlanRow};
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(plans_and_actions_are_counted_by_state_and_an_unknown_state_is_an_error);

    fn plans_and_actions_are_counted_by_state_and_an_unknown_state_is_an_error(mut s: TestStore) {
        for (plan, actions) in [
            (PlanState::Recommended, 2),
            (PlanState::Recommended, 1),
            (PlanState::Succeeded, 3),
        ] {
            let names: Vec<String> = (0..actions).map(|i| format!("a{i}")).collect();
            s.create_plan(&NewPlan {
                state: plan,
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
        }
        let c = s.state_counts().expect("counts");
        assert_eq!(c.plans_in(PlanState::Recommended), 2);
        assert_eq!(c.plans_in(PlanState::Succeeded), 1);
        assert_eq!(c.plans_in(PlanState::Ongoing), 0);
        assert_eq!(c.actions_in(ActionState::Pending), 6);
        assert_eq!(c.plans.len(), 2, "states with none are absent");
        s.exec("UPDATE actions SET state = 'RUNNING' WHERE name = 'a2'");
        assert!(matches!(
            s.state_counts(),
            Err(StoreError::Unknown { value, .. }) if value.table == "actions"
        ));
    }
}
