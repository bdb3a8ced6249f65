//! Which plans use an action type's version: a registered type is not
//! removed while a plan that has not ended still has actions of it.

use super::{Result, Store};

impl Store {
    /// The plans not ended (RECOMMENDED, PENDING, ONGOING, CANCELLING) with
    /// an action of `action_type` at `version`: (plan uuid, state).
    pub fn live_plans_using(
        &self,
        action_type: &str,
        version: &str,
    ) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT DISTINCT p.uuid, p.state FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
             WHERE x.action_type = ?1 AND x.action_type_version = ?2 AND x.deleted = 0 \
             AND p.state IN ('RECOMMENDED', 'PENDING', 'ONGOING', 'CANCELLING') ORDER BY p.id",
            rusqlite::params![action_type, version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}
