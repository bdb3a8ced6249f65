//! Rollback: reverting what succeeded after a failure under `on_failure: rollback`.

use super::*;

impl Applier {
    /// Reverts the succeeded revertible actions, in reverse completion order
    /// (a reverse topological order).
    pub(super) async fn rollback(
        &self,
        nodes: &[Node],
        completed: &[usize],
    ) -> Result<(), ApplyError> {
        let shared = self.shared.clone();
        for &i in completed.iter().rev() {
            let n = &nodes[i];
            if n.state != St::Succeeded {
                continue;
            }
            let Ok((entry, params, _)) = prepare_handler(
                &shared,
                &n.row,
                &n.refs,
                &ancestor_outputs(nodes, i, &shared.types),
            ) else {
                continue;
            };
            let version = semver::Version::parse(&n.row.action_type_version).ok();
            let revertible_type = shared
                .types
                .get(&n.row.action_type, version.as_ref())
                .map(|t| t.revertible)
                .unwrap_or(false);
            let revertible_handler = shared
                .plugins
                .find(sextant_plugin_api::Kind::ActionHandler, &entry)
                .is_some_and(|e| e.manifest().revertible);
            if !(revertible_type && revertible_handler) {
                continue;
            }
            let u = n.row.uuid.clone();
            let result = match create_handler(
                &shared,
                entry,
                params,
                handler_context(&shared, &n.row),
            )
            .await
            {
                Ok(h) => h.blocking(|h| h.revert()).await.map_err(|e| message_of(&e)),
                Err(e) => Err(message_of(&e)),
            };
            let (event, msg) = match result {
                Ok(()) => (
                    EventType::ActionRevertEnd,
                    "Reverted: the plan rolled back after a failure.".to_string(),
                ),
                Err(e) => (
                    EventType::ActionRevertError,
                    format!("Revert failed during rollback: {e}"),
                ),
            };
            // A compare-and-set transition, fenced by the lease, as every
            // applier write: the action stays SUCCEEDED, with the revert's
            // message and event.
            leased_action_transition(
                &shared,
                &u,
                &[ActionState::Succeeded],
                ActionState::Succeeded,
                &msg,
                event,
            )
            .await?;
        }
        Ok(())
    }
}
