//! The store's test cases run on both backends: a [`TestStore`] is a fresh
//! store on SQLite (a temporary file) or on PostgreSQL (a new database on
//! the test server, `SEXTANT_TEST_PG_URL`, started by `scripts/test`), with
//! a second connection of its own to look at or fault the tables behind
//! the store's back. `on_both_backends!` makes one test of each case per
//! backend.

use super::pg::PgStore;
use super::{SqliteStore, Store};
use std::cell::RefCell;

/// A second connection to a test store's database.
enum Raw {
    Sqlite(rusqlite::Connection),
    Postgres(RefCell<postgres::Client>),
}

/// A fresh store, and a connection of its own to its database.
pub(crate) struct TestStore {
    /// The store under test.
    pub store: Store,
    /// Where it is.
    pub location: super::Location,
    raw: Raw,
    /// Last: dropped after the connections above are closed.
    keep: KeepAlive,
}

/// What keeps a test store's database alive, and removes it when dropped:
/// the SQLite file's temporary directory, or the PostgreSQL database.
pub(crate) struct KeepAlive {
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

/// A database of the test server, dropped with this (`WITH (FORCE)`: any
/// session still on it is ended) from a connection to the server's own
/// database; a failure is logged, never a panic in a drop.
pub(crate) struct TestDatabase {
    server_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(&self.server_url, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            });
        if let Err(e) = dropped {
            tracing::warn!(database = %self.name, error = %e, "test database not dropped");
        }
    }
}

/// The URL of the test PostgreSQL server: a test that needs it fails
/// (never skips) without it.
pub(crate) fn pg_server_url() -> String {
    std::env::var("SEXTANT_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SEXTANT_TEST_PG_URL is not set: start the test PostgreSQL \
             (`scripts/services/up.sh postgres`, or run scripts/test)"
        )
    })
}

/// A new, empty database on the test server: its URL, and what drops it.
pub(crate) fn fresh_pg_database() -> (String, TestDatabase) {
    let server_url = pg_server_url();
    let mut admin = postgres::Client::connect(&server_url, postgres::NoTls).expect("connect");
    let name = format!("sextant_unit_{}", super::new_uuid().replace('-', ""));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (base, _) = server_url.rsplit_once('/').expect("a database in the URL");
    let url = format!("{base}/{name}");
    (url, TestDatabase { server_url, name })
}

impl TestStore {
    /// A fresh SQLite store.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let store = Store::from_backend(Box::new(SqliteStore::open(&path).expect("open")));
        let raw = Raw::Sqlite(rusqlite::Connection::open(&path).expect("raw connection"));
        Self {
            store,
            location: super::Location::Sqlite(path),
            raw,
            keep: KeepAlive {
                _dir: Some(dir),
                _database: None,
            },
        }
    }

    /// A fresh PostgreSQL store.
    pub fn postgres() -> Self {
        let (url, database) = fresh_pg_database();
        let store = Store::from_backend(Box::new(PgStore::open(&url).expect("open")));
        let raw = Raw::Postgres(RefCell::new(
            postgres::Client::connect(&url, postgres::NoTls).expect("raw connection"),
        ));
        Self {
            store,
            location: super::Location::Postgres(url),
            raw,
            keep: KeepAlive {
                _dir: None,
                _database: Some(database),
            },
        }
    }

    /// Whether it is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.raw, Raw::Postgres(_))
    }

    /// `sqlite` on SQLite, `pg` on PostgreSQL: for the statements whose
    /// dialects differ (triggers).
    pub fn pick<'a>(&self, sqlite: &'a str, pg: &'a str) -> &'a str {
        if self.is_postgres() { pg } else { sqlite }
    }

    /// Runs `sql` (several statements) behind the store's back.
    pub fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(c) => c.execute_batch(sql).expect(sql),
            Raw::Postgres(c) => c.borrow_mut().batch_execute(sql).expect(sql),
        }
    }

    /// Makes each UPDATE of `table` whose new row meets `condition` (SQL
    /// over `NEW`) change nothing, as if another process had moved the row
    /// first: what a compare-and-set sees in a race. Undone by
    /// [`TestStore::end_race`].
    pub fn race_updates_where(&self, table: &str, condition: &str) {
        self.exec(&if self.is_postgres() {
            format!(
                "CREATE FUNCTION race() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF {condition} THEN RETURN NULL; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER race BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION race();"
            )
        } else {
            format!(
                "CREATE TRIGGER race BEFORE UPDATE ON {table} WHEN {condition} \
                 BEGIN SELECT RAISE(IGNORE); END;"
            )
        });
    }

    /// Ends what [`TestStore::race_updates_where`] began on `table`.
    pub fn end_race(&self, table: &str) {
        self.exec(&if self.is_postgres() {
            format!("DROP TRIGGER race ON {table}; DROP FUNCTION race();")
        } else {
            "DROP TRIGGER race".to_string()
        });
    }

    /// The integer (or NULL) `sql` selects.
    pub fn int(&self, sql: &str) -> Option<i64> {
        match &self.raw {
            Raw::Sqlite(c) => c.query_row(sql, [], |r| r.get(0)).expect(sql),
            Raw::Postgres(c) => {
                let row = c.borrow_mut().query_one(sql, &[]).expect(sql);
                row.get::<_, Option<super::pg_sql::Int>>(0).map(|v| v.0)
            }
        }
    }

    /// The text `sql` selects.
    pub fn text(&self, sql: &str) -> String {
        match &self.raw {
            Raw::Sqlite(c) => c.query_row(sql, [], |r| r.get(0)).expect(sql),
            Raw::Postgres(c) => c.borrow_mut().query_one(sql, &[]).expect(sql).get(0),
        }
    }
}

impl TestStore {
    /// Stores a RECOMMENDED plan of `n` PENDING `nop` actions `a0`, `a1`,
    /// …; its uuid and theirs, in order.
    pub fn plan_of_nops(&mut self, n: usize) -> (String, Vec<String>) {
        use super::plans::{NewPlan, NewPlanAction};
        use crate::states::{ActionState, PlanState};
        let plan = self
            .create_plan(&NewPlan {
                state: PlanState::Recommended,
                actions: (0..n)
                    .map(|i| NewPlanAction {
                        name: format!("a{i}"),
                        action_type: "nop".into(),
                        action_type_version: "1.0.0".into(),
                        input_parameters: serde_json::json!({}),
                        parents: vec![],
                        state: ActionState::Pending,
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("plan");
        let uuids = self
            .actions(&plan.uuid)
            .expect("actions")
            .into_iter()
            .map(|a| a.uuid)
            .collect();
        (plan.uuid, uuids)
    }

    /// The store alone (to hand it to a thread), and what keeps its
    /// database alive (drop it after the store).
    pub fn into_store(self) -> (Store, KeepAlive) {
        (self.store, self.keep)
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl std::ops::DerefMut for TestStore {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// `on_both_backends!(case, …)`: for each `fn case(t: TestStore)`, a
/// module `case` with a test `sqlite` and a test `postgres` running it.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn sqlite() {
                super::$case($crate::store::testing::TestStore::sqlite());
            }
            #[test]
            fn postgres() {
                super::$case($crate::store::testing::TestStore::postgres());
            }
        }
    )+};
}
pub(crate) use on_both_backends;
