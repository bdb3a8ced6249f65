//! Simulation: the checks a plan passes before any action executes.

use super::*;

impl Applier {
    /// Simulates the pending actions: each maps to a loaded handler, its
    /// parameters are valid against its recorded action-type version, its
    /// templates name only ancestors, and, for the actions that start the
    /// plan (no parents), the pre_condition holds against the targets now.
    /// Every problem at once.
    pub(super) async fn simulate(&self, nodes: &[Node]) -> Vec<String> {
        let shared = &self.shared;
        let mut problems = Vec::new();
        let names: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.row.name.as_str(), i))
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            if n.state != St::Pending {
                continue;
            }
            let row = &n.row;
            let label = format!("action {} ({})", row.name, row.action_type);
            let version = semver::Version::parse(&row.action_type_version).ok();
            let t = match shared.types.get(&row.action_type, version.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            // Templates may only name ancestors; their outputs are unknown yet.
            let refs = declared_names(row, &n.refs);
            let ancestors = if refs.is_empty() {
                HashSet::new()
            } else {
                ancestors_of(nodes, i)
            };
            let mut has_refs = false;
            for r in refs {
                has_refs = true;
                match names.get(r.as_str()) {
                    Some(j) if ancestors.contains(j) => {}
                    _ => problems.push(format!("{label}: its parameters use the outputs of {r}, which is not one of its ancestors")),
                }
            }
            if let Err(e) = crate::action_types::ActionFactory::new(&shared.types).instantiate(
                &crate::action_types::NewAction::new(
                    format!("{}@{}", t.name, t.version),
                    row.input_parameters.clone(),
                ),
            ) && !has_refs
            {
                problems.push(format!("{label}: {e}"));
                continue;
            }
            if has_refs
                || t.with
                    .as_ref()
                    .is_some_and(|w| !referenced_actions(w).is_empty())
            {
                continue; // pre_condition needs outputs that do not exist yet
            }
            // An action with parents is checked against a state its ancestors
            // will have changed: its pre_condition runs just before it does.
            if !n.parents.is_empty() {
                continue;
            }
            let (entry, params, _) = match prepare_handler(shared, row, &n.refs, &json!({})) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            match create_handler(shared, entry, params, handler_context(shared, row)).await {
                Err(e) => problems.push(format!("{label}: {}", message_of(&e))),
                Ok(h) => match h.blocking(|h| h.pre_condition()).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => {}
                    Err(e) => problems.push(format!("{label}: pre_condition: {}", message_of(&e))),
                },
            }
        }
        problems
    }
}
