//! Whether a plan's actions may have changed since a earlier read, cheaply:
//! the REST API keeps the JSON of pages of a plan's actions and serves it
//! again while the plan's [`PlanEventsMark`] has not moved.
//!
//! Every write to an action (a transition, an output, a status message, a
//! deletion, an insertion with its plan) records an event of the action's
//! plan in the same transaction (the store's invariant), so the count and
//! the largest id of the plan's events move with each write. Read the mark
//! before the rows: a write committed in between makes the next mark
//! differ, so a page is at worst rebuilt once too often, never kept stale.
//!
//! [`PlanMarks`] is a connection of its own on either backend, opened from
//! a [`Location`], so that a caller holding only a [`super::Store`] needs
//! no new operation on the store's interface.

use super::pg::PgStore;
use super::{Location, Result, SqliteStore};

/// The count and the largest id of one plan's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanEventsMark {
    /// How many events of the plan the log holds.
    pub count: i64,
    /// The largest id among them (0 when there is none).
    pub last: i64,
}

/// A connection that reads plans' event marks.
pub enum PlanMarks {
    /// On a SQLite file.
    Sqlite(SqliteStore),
    /// On a PostgreSQL database.
    Postgres(Box<PgStore>),
}

impl PlanMarks {
    /// Opens a connection to the store at `at`.
    pub fn open(at: &Location) -> Result<Self> {
        Ok(match at {
            Location::Sqlite(path) => Self::Sqlite(SqliteStore::open(path)?),
            Location::Postgres(url) => Self::Postgres(Box::new(PgStore::open(url)?)),
        })
    }

    /// Where the event log of `plan` (its uuid) stands now.
    pub fn mark(&self, plan: &str) -> Result<PlanEventsMark> {
        match self {
            Self::Sqlite(s) => s.plan_events_mark(plan),
            Self::Postgres(s) => s.plan_events_mark(plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PlanMarks;
    use crate::states::{ActionState, PlanState};
    use crate::store::plans::{NewPlan, NewPlanRow};
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(a_plan_s_mark_moves_with_each_write_to_its_actions_and_no_other);

    fn a_plan_s_mark_moves_with_each_write_to_its_actions_and_no_other(mut s: TestStore) {
        let names = ["a0", "a1"];
        let mut plan = || {
            s.create_plan(&NewPlan {
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
            .expect("plan")
            .uuid
        };
        let (p, q) = (plan(), plan());
        let marks = PlanMarks::open(&s.location).expect("open");
        let m0 = marks.mark(&p).expect("mark");
        assert!(m0.count > 0, "a created plan has an event: {m0:?}");
        assert_eq!(marks.mark(&p).expect("mark"), m0, "read twice");
        let first = |s: &TestStore, plan: &str| s.actions(plan).expect("actions")[0].uuid.clone();
        let q0 = first(&s, &q);
        crate::ops::plans::skip_action(&mut s, &q0, None, None).expect("skip");
        assert_eq!(marks.mark(&p).expect("mark"), m0, "another plan's write");
        let p0 = first(&s, &p);
        crate::ops::plans::skip_action(&mut s, &p0, None, Some("why")).expect("skip");
        let m1 = marks.mark(&p).expect("mark");
        assert_ne!(m1, m0, "a transition of one of its actions");
        s.delete_plan(&p).expect("delete");
        assert_ne!(marks.mark(&p).expect("mark"), m1, "its deletion");
        let none = marks.mark("no-such-plan").expect("mark");
        assert_eq!((none.count, none.last), (0, 0));
    }
}
