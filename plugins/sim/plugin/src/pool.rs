//! The `sim` handlers' connections to a simulated cloud on PostgreSQL,
//! reused across calls: an action's pre-condition, execute and
//! post-condition would otherwise each connect (a round trip and an
//! authentication), which also widens the time between a change and the
//! applier recording it. At most [`MAX_IDLE`] idle connections are kept; one
//! the server closed is dropped instead of reused. A SQLite `sim.db` is
//! opened per call, as before: the host opens the same file with its own
//! copy of SQLite, and two copies holding one file open in one process
//! drop each other's locks.

use sextant_sim_store::{SimDb, SimError, SimLocation};
use std::sync::Mutex;

/// Idle connections kept at most (over every cloud).
const MAX_IDLE: usize = 8;

/// Idle connections, by the location's text (in memory only).
static IDLE: Mutex<Vec<(String, SimDb)>> = Mutex::new(Vec::new());

/// An open simulated cloud, given back to the idle list when dropped (for
/// PostgreSQL).
pub(crate) struct Pooled {
    key: Option<String>,
    db: Option<SimDb>,
}

/// The cloud at `text` (a path or a URL): an idle connection to it, else a
/// new one.
pub(crate) fn open(text: &str) -> Result<Pooled, SimError> {
    let at = SimLocation::parse(text);
    if at.file().is_some() {
        return Ok(Pooled {
            key: None,
            db: Some(SimDb::open(&at)?),
        });
    }
    let idle = {
        let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
        idle.iter()
            .position(|(k, _)| k == text)
            .map(|i| idle.swap_remove(i).1)
    };
    let db = match idle {
        Some(db) if db.responds() => db,
        _ => SimDb::open(&at)?,
    };
    Ok(Pooled {
        key: Some(text.to_string()),
        db: Some(db),
    })
}

impl std::ops::Deref for Pooled {
    type Target = SimDb;
    fn deref(&self) -> &SimDb {
        match &self.db {
            Some(db) => db,
            None => unreachable!("only drop takes the connection"),
        }
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut SimDb {
        match &mut self.db {
            Some(db) => db,
            None => unreachable!("only drop takes the connection"),
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(key), Some(db)) = (self.key.take(), self.db.take())
            && db.is_open()
        {
            let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((key, db));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database on the test PostgreSQL (`SEXTANT_TEST_PG_URL`); its
    /// URL and its name.
    fn fresh_database() -> (String, String) {
        let url = std::env::var("SEXTANT_TEST_PG_URL").unwrap_or_else(|_| {
            panic!("SEXTANT_TEST_PG_URL is not set: start the test PostgreSQL")
        });
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let name = format!("sextant_sim_pool_{}", std::process::id());
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .expect("drop");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create");
        let (base, _) = url.rsplit_once('/').expect("a database in the URL");
        (format!("{base}/{name}"), name)
    }

    fn backends(admin: &mut postgres::Client, name: &str) -> i64 {
        admin
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .expect("count")
            .get(0)
    }

    /// Twenty handler calls in a row use one connection; one the server
    /// closed meanwhile is replaced, not reused.
    #[test]
    fn calls_reuse_one_connection_and_a_closed_one_is_replaced() {
        let (url, name) = fresh_database();
        let admin_url = std::env::var("SEXTANT_TEST_PG_URL").expect("url");
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect");
        let m: sextant_plugin_api::model::ClusterModel =
            serde_json::from_value(serde_json::json!({
                "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100}]
            }))
            .expect("model");
        open(&url).expect("open").init(&m, 0.0).expect("init");
        for _ in 0..20 {
            assert_eq!(open(&url).expect("open").model().expect("model"), m);
        }
        assert_eq!(backends(&mut admin, &name), 1);
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .expect("terminate");
        let t = std::time::Instant::now();
        while backends(&mut admin, &name) > 0 {
            assert!(t.elapsed().as_secs() < 10, "the backend did not end");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(open(&url).expect("reopen").model().expect("model"), m);
        assert_eq!(backends(&mut admin, &name), 1);
        // Given back, nothing of it stays open once the list is emptied.
        IDLE.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
