//! What an operator types for an object, resolved to its uuid on
//! PostgreSQL, by the rules of `ids.rs`: the exact uuid, then the name,
//! then a unique prefix of at least `MIN_PREFIX` characters.

use super::ids::{IdKind, SHOWN, is_prefix};
use super::pg::PgStore;
use super::pg_sql::{PgRow, args, int};
use super::{Result, StoreError};

impl PgStore {
    /// The uuid of the `kind` object `id` names.
    pub fn resolve_id(&self, kind: IdKind, id: &str) -> Result<String> {
        self.resolve_in(kind, id, None)
    }

    /// The uuid of the action `id` names; with `plan`, a name is looked up
    /// among that plan's actions only.
    pub fn resolve_action(&self, id: &str, plan: Option<&str>) -> Result<String> {
        let plan_id = match plan {
            Some(p) => {
                let uuid = self.resolve_id(IdKind::ActionPlan, p)?;
                let row = self.read(|db| {
                    db.one("SELECT id FROM action_plans WHERE uuid = $1", args![uuid])
                })?;
                Some(int(&row, 0)?)
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
            " AND action_plan_id = $2"
        } else {
            " AND $2::bigint IS NULL"
        };
        let column = |rows: Vec<PgRow>| -> Result<Vec<String>> {
            rows.iter().map(|r| r.get::<String>(0)).collect()
        };
        self.read(|db| {
            if let Some(r) = db.opt(
                &format!("SELECT uuid FROM {table} WHERE deleted = 0 AND uuid = $1{scope}"),
                args![id, plan_id],
            )? {
                return r.get(0);
            }
            if kind.has_name() {
                let named = column(db.rows(
                    &format!(
                        "SELECT uuid FROM {table} WHERE deleted = 0 AND name = $1{scope} \
                         ORDER BY id DESC LIMIT {}",
                        SHOWN + 1
                    ),
                    args![id, plan_id],
                )?)?;
                match (kind, named.len()) {
                    (_, 0) => {}
                    // Audit names are not unique: the latest one.
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
            // `starts_with` on the text: no LIKE wildcard to escape, and
            // the C collation's byte order for ORDER BY, as SQLite's.
            let found = column(db.rows(
                &format!(
                    "SELECT uuid FROM {table} WHERE deleted = 0 AND starts_with(uuid, $1){scope} \
                     ORDER BY uuid COLLATE \"C\" LIMIT {}",
                    SHOWN + 1
                ),
                args![id.to_ascii_lowercase(), plan_id],
            )?)?;
            match found.len() {
                0 => Err(not_found()),
                1 => Ok(found.into_iter().next().unwrap_or_default()),
                _ => Err(StoreError::Ambiguous {
                    kind: kind.label(),
                    id: id.into(),
                    matches: found.into_iter().take(SHOWN).collect(),
                }),
            }
        })
    }
}
