//! What an operator types for an object, resolved to its uuid in one place:
//! a full uuid, a unique uuid prefix of at least [`MIN_PREFIX`] characters,
//! or a name where the object has one (Watcher's API takes `{uuid|name}`
//! for audit templates and audits, reference watcher-service-facts.md 1.2;
//! action names are unique within a plan only).
//!
//! Order: the exact uuid, then the name, then the prefix. A prefix that
//! matches several objects is an error listing them
//! ([`StoreError::Ambiguous`]). Deleted objects are never found.

use super::SqliteStore;
use super::{Result, StoreError};
use rusqlite::OptionalExtension;

/// The fewest characters of a uuid prefix.
pub const MIN_PREFIX: usize = 4;

/// How many matches an ambiguity error lists.
pub(super) const SHOWN: usize = 10;

/// The kinds of object an operator names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// An action plan: uuid or prefix.
    ActionPlan,
    /// An audit: uuid, prefix or name (the latest of that name).
    Audit,
    /// An audit template: uuid, prefix or name.
    AuditTemplate,
    /// An action: uuid, prefix, or name (within one plan).
    Action,
}

impl IdKind {
    pub(super) fn table(self) -> &'static str {
        match self {
            IdKind::ActionPlan => "action_plans",
            IdKind::Audit => "audits",
            IdKind::AuditTemplate => "audit_templates",
            IdKind::Action => "actions",
        }
    }

    /// What the kind is called in messages.
    pub fn label(self) -> &'static str {
        match self {
            IdKind::ActionPlan => "action plan",
            IdKind::Audit => "audit",
            IdKind::AuditTemplate => "audit template",
            IdKind::Action => "action",
        }
    }

    pub(super) fn has_name(self) -> bool {
        self != IdKind::ActionPlan
    }
}

/// Whether `id` can be a uuid prefix: long enough, hex digits and hyphens
/// only (so it is also safe in a `LIKE` pattern).
pub(super) fn is_prefix(id: &str) -> bool {
    id.len() >= MIN_PREFIX && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl SqliteStore {
    /// The uuid of the `kind` object `id` names (see the module's rules).
    pub fn resolve_id(&self, kind: IdKind, id: &str) -> Result<String> {
        self.resolve_in(kind, id, None)
    }

    /// The uuid of the action `id` names; with `plan` (itself resolved),
    /// a name is looked up among that plan's actions only.
    pub fn resolve_action(&self, id: &str, plan: Option<&str>) -> Result<String> {
        let plan_id = match plan {
            Some(p) => {
                let uuid = self.resolve_id(IdKind::ActionPlan, p)?;
                Some(
                    self.conn()
                        .query_row(
                            "SELECT id FROM action_plans WHERE uuid = ?1",
                            [&uuid],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(|e| self.err(e))?,
                )
            }
            None => None,
        };
        self.resolve_in(IdKind::Action, id, plan_id)
    }

    fn resolve_in(&self, kind: IdKind, id: &str, plan_id: Option<i64>) -> Result<String> {
        let not_found = || StoreError::NotFound {
            kind: kind.label(),
            id: id.into(),
        };
        if id.is_empty() {
            return Err(not_found());
        }
        let table = kind.table();
        let scope = if plan_id.is_some() {
            " AND action_plan_id = ?2"
        } else {
            " AND ?2 IS NULL"
        };
        let exact: Option<String> = self
            .conn()
            .query_row(
                &format!("SELECT uuid FROM {table} WHERE deleted = 0 AND uuid = ?1{scope}"),
                rusqlite::params![id, plan_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(u) = exact {
            return Ok(u);
        }
        if kind.has_name() {
            let named: Vec<String> = self.rows(
                &format!(
                    "SELECT uuid FROM {table} WHERE deleted = 0 AND name = ?1{scope} ORDER BY id DESC LIMIT {}",
                    SHOWN + 1
                ),
                rusqlite::params![id, plan_id],
                |r| r.get(0),
            )?;
            match (kind, named.len()) {
                (_, 0) => {}
                // Audit names are not unique: the latest one, as before.
                (IdKind::Audit, _) | (_, 1) => return Ok(named[0].clone()),
                _ => {
                    return Err(StoreError::Ambiguous {
                        kind: kind.label(),
                        id: id.into(),
                        matches: named.into_iter().take(SHOWN).collect(),
                    });
                }
            }
        }
        if !is_prefix(id) {
            return Err(not_found());
        }
        let found: Vec<String> = self.rows(
            &format!(
                "SELECT uuid FROM {table} WHERE deleted = 0 AND uuid LIKE ?1 || '%'{scope} ORDER BY uuid LIMIT {}",
                SHOWN + 1
            ),
            rusqlite::params![id.to_ascii_lowercase(), plan_id],
            |r| r.get(0),
        )?;
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            _ => Err(StoreError::Ambiguous {
                kind: kind.label(),
                id: id.into(),
                matches: found.into_iter().take(SHOWN).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plans::{NewPlan, NewPlanRow};

    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(uuids_prefixes_and_names_resolve_and_ambiguity_lists_the_matches);

    fn plan(s: &mut TestStore, names: &[&str]) -> String {
        s.create_plan(&NewPlan {
            state: crate::states::PlanState::Recommended,
            rows: names
                .iter()
                .map(|n| NewPlanRow {
                    name: n,
                    action_type: "nop",
                    input_parameters_json: "{}",
                    state: crate::states::ActionState::Pending,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .expect("plan")
        .uuid
    }

    fn uuids_prefixes_and_names_resolve_and_ambiguity_lists_the_matches(mut s: TestStore) {
        let a = plan(&mut s, &["x", "y"]);
        let b = plan(&mut s, &["x"]);
        // Both uuids rewritten to share a prefix.
        s.exec(&format!(
                "UPDATE action_plans SET uuid = 'abcd1111-0000-4000-8000-000000000000' WHERE uuid = '{a}'; \
                 UPDATE action_plans SET uuid = 'abcd2222-0000-4000-8000-000000000000' WHERE uuid = '{b}';"
        ));
        let a = "abcd1111-0000-4000-8000-000000000000";
        let b = "abcd2222-0000-4000-8000-000000000000";
        assert_eq!(s.resolve_id(IdKind::ActionPlan, a).ok().as_deref(), Some(a));
        assert_eq!(
            s.resolve_id(IdKind::ActionPlan, "ABCD1").ok().as_deref(),
            Some(a)
        );
        match s.resolve_id(IdKind::ActionPlan, "abcd") {
            Err(StoreError::Ambiguous { matches, .. }) => assert_eq!(matches, [a, b]),
            other => panic!("{other:?}"),
        }
        // Too short to be a prefix.
        assert!(matches!(
            s.resolve_id(IdKind::ActionPlan, "abc"),
            Err(StoreError::NotFound { .. })
        ));
        // Action names: unique within a plan, ambiguous across plans.
        let x_in_a = s.resolve_action("x", Some(a)).expect("x in a");
        assert_eq!(s.action(&x_in_a).expect("x").action_plan_uuid, a);
        assert!(matches!(
            s.resolve_action("x", None),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(s.resolve_action("y", None).is_ok());
        assert!(matches!(
            s.resolve_action("y", Some(b)),
            Err(StoreError::NotFound { .. })
        ));
    }
}
