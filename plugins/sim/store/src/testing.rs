//! The sim store's test cases run on both backends: a [`TestCloud`] is a
//! fresh simulated cloud in a temporary SQLite file or in a new database on
//! the test PostgreSQL (`SEXTANT_TEST_PG_URL`, started by `scripts/test`;
//! a test fails, never skips, without it). `on_both_backends!` makes one
//! test of each case per backend.

use crate::{SimDb, SimLocation};

/// A fresh, empty simulated cloud.
pub(crate) struct TestCloud {
    /// Where it is (to open more connections to it).
    pub location: SimLocation,
    _dir: Option<tempfile::TempDir>,
}

impl TestCloud {
    /// In a temporary SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            location: SimLocation::Sqlite(dir.path().join("sim.db")),
            _dir: Some(dir),
        }
    }

    /// In a new database on the test PostgreSQL.
    pub fn postgres() -> Self {
        let url = std::env::var("SEXTANT_TEST_PG_URL").unwrap_or_else(|_| {
            panic!(
                "SEXTANT_TEST_PG_URL is not set: start the test PostgreSQL \
                 (`scripts/services/up.sh postgres`, or run scripts/test)"
            )
        });
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let name = format!("sextant_sim_unit_{}_{}", std::process::id(), next());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let (base, _) = url.rsplit_once('/').expect("a database in the URL");
        Self {
            location: SimLocation::Postgres(format!("{base}/{name}")),
            _dir: None,
        }
    }

    /// A connection of its own.
    pub fn open(&self) -> SimDb {
        SimDb::open(&self.location).expect("open the test cloud")
    }
}

fn next() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    N.fetch_add(1, Ordering::Relaxed) * 1_000_000_000 + u64::from(nanos)
}

/// One test per backend of each case `fn case(t: TestCloud)`.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn sqlite() {
                super::$case($crate::testing::TestCloud::sqlite());
            }
            #[test]
            fn postgres() {
                super::$case($crate::testing::TestCloud::postgres());
            }
        }
    )+};
}
pub(crate) use on_both_backends;
