//! Recovery: settling the actions a killed applier left ONGOING.

use super::*;

impl Applier {
    /// Actions found ONGOING after a crash: idempotent ones run again; the
    /// others are SUCCEEDED only if their post_condition confirms them.
    pub(super) async fn recover_interrupted(&self, nodes: &mut [Node]) -> Result<(), ApplyError> {
        let shared = self.shared.clone();
        for i in 0..nodes.len() {
            if nodes[i].state != St::Running {
                continue;
            }
            let row = nodes[i].row.clone();
            let outputs = ancestor_outputs(nodes, i, &shared.types);
            let prep = prepare_handler(&shared, &row, &nodes[i].refs, &outputs);
            let n = &mut nodes[i];
            let idempotent = prep.as_ref().map(|p| p.2).unwrap_or(false);
            let u = row.uuid.clone();
            if idempotent {
                leased_action_transition(
                    &shared,
                    &u,
                    &[ActionState::Ongoing],
                    ActionState::Pending,
                    "Interrupted while ONGOING; its action type is idempotent, so it runs again.",
                    EventType::ActionUpdate,
                )
                .await?;
                n.state = St::Pending;
                continue;
            }
            let verdict = match prep {
                Err(e) => Err(e),
                Ok((entry, params, _)) => {
                    match create_handler(&shared, entry, params, handler_context(&shared, &row))
                        .await
                    {
                        Err(e) => Err(message_of(&e)),
                        Ok(h) => h
                            .blocking(|h| h.post_condition())
                            .await
                            .map_err(|e| message_of(&e)),
                    }
                }
            };
            let (state, msg) = match verdict {
                Ok(()) => (
                    ActionState::Succeeded,
                    "Interrupted while ONGOING; its post_condition confirms it took effect."
                        .to_string(),
                ),
                Err(why) => (
                    ActionState::Failed,
                    format!(
                        "Interrupted while ONGOING (the applier stopped) and not idempotent: it may or may not have run, \
                         and its post_condition cannot tell ({why}). Check the resource; it was not run again."
                    ),
                ),
            };
            leased_action_transition(
                &shared,
                &u,
                &[ActionState::Ongoing],
                state,
                &msg,
                EventType::ActionUpdate,
            )
            .await?;
            n.state = St::from_db(state);
        }
        Ok(())
    }
}
