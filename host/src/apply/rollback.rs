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
            let (u, plan) = (n.row.uuid.clone(), shared.plan_uuid.clone());
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
                    "action.revert.end",
                    "Reverted: the plan rolled back after a failure.".to_string(),
                ),
                Err(e) => (
                    "action.revert.error",
                    format!("Revert failed during rollback: {e}"),
                ),
            };
            db(&shared, move |s| {
                s.note(event, "action", &u, &plan, json!({"status_message": msg}))?;
                s.write(|tx| {
                    tx.execute(
                        "UPDATE actions SET status_message = ?1, updated_at = ?2 WHERE uuid = ?3",
                        rusqlite::params![msg, crate::store::now(), u],
                    )
                })
                .map(|_| ())
            })
            .await?;
        }
        Ok(())
    }
}
