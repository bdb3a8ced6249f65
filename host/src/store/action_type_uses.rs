//! Which plans use an action type's version: a registered type is not
//! removed while a plan that has not ended still has actions of it.

use super::columns::enum_col;
use super::{Result, SqliteStore};
use crate::states::PlanState;

/// The plan states in which a plan may still run its actions.
const LIVE: [PlanState; 4] = [
    PlanState::Recommended,
    PlanState::Pending,
    PlanState::Ongoing,
    PlanState::Cancelling,
];

impl SqliteStore {
    /// The plans not ended (RECOMMENDED, PENDING, ONGOING, CANCELLING) with
    /// an action of `action_type` at `version`: (plan uuid, state).
    pub fn live_plans_using(
        &self,
        action_type: &str,
        version: &str,
    ) -> Result<Vec<(String, PlanState)>> {
        self.rows(
            "SELECT DISTINCT p.uuid, p.state, p.id FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.action_type = ?1 AND x.action_type_version = ?2 AND x.deleted = 0 \
             AND p.state IN (?3, ?4, ?5, ?6) ORDER BY p.id",
            rusqlite::params![action_type, version, LIVE[0], LIVE[1], LIVE[2], LIVE[3]],
            |r| Ok((r.get(0)?, enum_col(r, 1, 2, "action_plans", "state")?)),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::states::{ActionState, PlanState};
    use crate::store::plans::{NewPlan, NewPlanRow};
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(only_plans_that_have_not_ended_use_a_version);

    fn only_plans_that_have_not_ended_use_a_version(mut s: TestStore) {
        let mut plan = |state: PlanState, version: &'static str| {
            s.create_plan(&NewPlan {
                state,
                rows: vec![NewPlanRow {
                    name: "a",
                    action_type: "migrate",
                    action_type_version: version,
                    input_parameters_json: "{}",
                    state: ActionState::Pending,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .expect("plan")
            .uuid
        };
        let live = plan(PlanState::Recommended, "1.0.0");
        let _other_version = plan(PlanState::Recommended, "2.0.0");
        let _ended = plan(PlanState::Succeeded, "1.0.0");
        assert_eq!(
            s.live_plans_using("migrate", "1.0.0").expect("uses"),
            vec![(live, PlanState::Recommended)]
        );
        assert!(s.live_plans_using("nop", "1.0.0").expect("uses").is_empty());
    }
}
