//! Whether a plan's actions may have changed since a earlier read, cheaply:
//! the REST API keeps the JSON of pages of a plan's actions and serves it
//! again while the plan's [`PlanEventsMark`] has not moved.
//!
//! Every write to an action (a transition, an output, a status message, a
//! deletion, an insertion with its plan) records an event of the action's
//! plan in the same transaction (the store's invariant), and a plan's
//! event ids grow in the order their transactions commit: SQLite has one
//! writer at a time and hands out the id inside its transaction; on
//! PostgreSQL, whose sequence hands ids out before commit, each event of a
//! plan takes the plan's transaction-scoped lock before its id
//! (`pg_schema.rs`, migration 17). So the largest id of the plan's events
//! moves with each write committed, and reading it is one index probe,
//! whatever the plan's size. Event ids are never handed out again (the
//! newest event of all is never purged). Read the mark before the rows: a
//! write committed in between makes the next mark differ, so a page is at
//! worst rebuilt once too often, never kept stale.
//!
//! [`PlanMarks`] is a connection of its own on either backend, opened from
//! a [`Location`], so that a caller holding only a [`super::Store`] needs
//! no new operation on the store's interface.

use super::pg::PgStore;
use super::{Location, Result, SqliteStore};

/// The largest id of one plan's events (0 when it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanEventsMark {
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
    on_both_backends!(
        a_write_committed_after_the_mark_moves_it_even_behind_a_later_id,
        a_group_commit_committed_after_the_mark_moves_it_even_behind_a_later_id
    );

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
        assert!(m0.last > 0, "a created plan has an event: {m0:?}");
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
        assert_eq!(none.last, 0);
    }

    /// Two transactions write events of one plan; the first to take an id
    /// commits last. Were ids handed out regardless of the plan's order
    /// (PostgreSQL's sequence without migration 17), the second would
    /// commit the larger id first, the mark read between the commits would
    /// already be that id, and the first commit would not move it: a page
    /// built between them would be served stale.
    fn a_write_committed_after_the_mark_moves_it_even_behind_a_later_id(s: TestStore) {
        // A manual skip: its event goes through migration 17's trigger.
        write_behind_a_later_id(s, |store, action, _| {
            crate::ops::plans::skip_action(store, action, None, None).expect("skip");
        });
    }

    fn a_group_commit_committed_after_the_mark_moves_it_even_behind_a_later_id(s: TestStore) {
        // The applier's group commit: on PostgreSQL its function takes the
        // plan's lock itself, once a batch, and skips the trigger.
        write_behind_a_later_id(s, |store, action, plan| {
            let t = crate::store::apply::ActionTransition::new(
                action,
                &[crate::states::ActionState::Pending],
                crate::states::ActionState::Ongoing,
                None,
                None,
                crate::states::EventType::ActionExecutionStart,
            )
            .known(plan, "a1");
            let r = store.action_transitions(&[t]).expect("commit");
            assert!(matches!(r[..], [Ok(true)]), "{r:?}");
        });
    }

    /// A write of the plan's second action through `second` (on a store
    /// of its own), while another transaction holds an uncommitted event
    /// of the plan taken first: the mark must wait for both.
    fn write_behind_a_later_id(
        mut s: TestStore,
        second: impl FnOnce(&mut crate::store::Store, &str, &str) + Send + 'static,
    ) {
        let (plan, actions) = s.plan_of_nops(2);
        let marks = PlanMarks::open(&s.location).expect("open");
        let before = marks.mark(&plan).expect("mark");
        // The first: an event of the plan written, not committed.
        s.exec(&format!(
            "{}; INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid) \
             VALUES ('2026-12-06T00:00:00Z', 'action.update', 'action', '{}', '{plan}')",
            s.pick("BEGIN IMMEDIATE", "BEGIN"),
            actions[0]
        ));
        // The second, on a connection of its own: a transition of the
        // plan's other action, committed as soon as the store lets it.
        let (at, other, of) = (s.location.clone(), actions[1].clone(), plan.clone());
        let second = std::thread::spawn(move || {
            let mut store = crate::store::Store::open(&at).expect("open");
            second(&mut store, &other, &of);
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        let between = marks.mark(&plan).expect("mark");
        assert_eq!(
            between, before,
            "the second waits for the first, which took its id first"
        );
        s.exec("COMMIT");
        second.join().expect("the second writer");
        let after = marks.mark(&plan).expect("mark");
        assert_ne!(after, between, "both writes committed since");
        assert_eq!(
            s.int(&format!(
                "SELECT COUNT(*) FROM events WHERE action_plan_uuid = '{plan}' AND id > {}",
                before.last
            )),
            Some(2),
            "each write recorded its event"
        );
    }
}
