//! WAL checkpoints off the committing thread.
//!
//! SQLite's own policy checkpoints inside the commit that makes the WAL
//! reach 1,000 pages: that commit copies every page of the WAL into the
//! database and waits for two fsyncs. For the commit of a 10,000-action plan
//! that is about 25 ms on top of 10 ms of writing the WAL; for an applier it
//! is a stall on the critical path every 250 actions.
//!
//! Here the same threshold only wakes a thread of the store's own (started
//! the first time it is needed), which runs a PASSIVE checkpoint through its
//! own connection while the writer goes on. Durability does not change: a
//! transaction is durable once its commit has written the WAL; a checkpoint
//! only moves pages from the WAL into the database file.
//!
//! Invariants: at most one checkpoint thread per store; dropping the store
//! waits for the checkpoint under way, so a process that exits normally
//! leaves the WAL checkpointed (SQLite's last close then removes it).

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

/// WAL pages at which a checkpoint is asked for: SQLite's own default.
pub(crate) const THRESHOLD_PAGES: i32 = 1000;

#[derive(Default)]
struct Flags {
    /// A checkpoint is wanted.
    requested: bool,
    /// One is running.
    running: bool,
    /// The store is closing: finish what is asked, then stop.
    stop: bool,
}

struct State {
    path: PathBuf,
    flags: Mutex<Flags>,
    changed: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The checkpoint thread of one store (see the module's documentation).
pub(crate) struct Checkpoints {
    state: Arc<State>,
}

impl Checkpoints {
    /// Takes over `conn`'s checkpoints: SQLite's automatic ones are replaced
    /// by a request to the thread when a commit leaves `THRESHOLD_PAGES` or
    /// more in the WAL.
    pub(crate) fn install(conn: &mut Connection, path: PathBuf) -> rusqlite::Result<Self> {
        let state = Arc::new(State {
            path,
            flags: Mutex::new(Flags::default()),
            changed: Condvar::new(),
            thread: Mutex::new(None),
        });
        let hook_state = state.clone();
        // Replaces the hook that `wal_autocheckpoint` installs: commits no
        // longer checkpoint themselves.
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages >= THRESHOLD_PAGES {
                request(&hook_state);
            }
            Ok(())
        }))?;
        Ok(Self { state })
    }

    /// Asks for a checkpoint now, whatever the WAL holds.
    #[cfg(test)]
    pub(crate) fn request(&self) {
        request(&self.state);
    }

    /// Waits until no checkpoint is asked for or running.
    pub(crate) fn wait_idle(&self) {
        let mut f = lock(&self.state.flags);
        while f.requested || f.running {
            f = self
                .state
                .changed
                .wait(f)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the checkpoint thread was ever started.
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        lock(&self.state.thread).is_some()
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        lock(&self.state.flags).stop = true;
        self.state.changed.notify_all();
        if let Some(t) = lock(&self.state.thread).take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a checkpoint as wanted and wakes (or starts) the thread. Cheap
/// when one is already asked for: it runs after every commit past the
/// threshold.
fn request(state: &Arc<State>) {
    {
        let mut f = lock(&state.flags);
        if f.requested || f.stop {
            return;
        }
        f.requested = true;
    }
    state.changed.notify_all();
    let mut thread = lock(&state.thread);
    if thread.is_none() {
        let s = state.clone();
        match std::thread::Builder::new()
            .name("sextant-checkpoint".into())
            .spawn(move || run(&s))
        {
            Ok(t) => *thread = Some(t),
            Err(e) => {
                // No thread: the WAL is checkpointed when the store closes.
                tracing::warn!("cannot start the checkpoint thread: {e}");
                lock(&state.flags).requested = false;
                state.changed.notify_all();
            }
        }
    }
}

/// The thread: one PASSIVE checkpoint per request, through a connection of
/// its own (opened once), until the store closes.
fn run(state: &State) {
    let mut conn: Option<Connection> = None;
    loop {
        {
            let mut f = lock(&state.flags);
            while !f.requested && !f.stop {
                f = state
                    .changed
                    .wait(f)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !f.requested {
                return;
            }
            f.requested = false;
            f.running = true;
        }
        if conn.is_none() {
            conn = Connection::open(&state.path)
                .and_then(|c| {
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    Ok(c)
                })
                .map_err(|e| tracing::debug!("checkpoint of {}: {e}", state.path.display()))
                .ok();
        }
        if let Some(c) = &conn {
            // PASSIVE: copies what it can without blocking readers or
            // writers. (As a pragma: `sqlite3_wal_checkpoint_v2` on a
            // connection that has read nothing yet finds no WAL.)
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!("checkpoint of {}: {e}", state.path.display());
            }
        }
        lock(&state.flags).running = false;
        state.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_bytes(path: &std::path::Path) -> u64 {
        let wal = path.with_file_name(format!(
            "{}-wal",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        ));
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn a_large_commit_is_checkpointed_by_the_thread_not_by_the_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT);")
            .expect("schema");
        let ck = Checkpoints::install(&mut conn, path.clone()).expect("hook");
        // A small commit asks for nothing.
        conn.execute("INSERT INTO t VALUES ('a')", [])
            .expect("insert");
        assert!(!ck.started());
        // About 2,000 pages in one commit: the commit returns with them all
        // in the WAL; the thread copies them into the database.
        let tx = conn.transaction().expect("tx");
        {
            let mut st = tx.prepare("INSERT INTO t VALUES (?1)").expect("prepare");
            let row = "x".repeat(4000);
            for _ in 0..2000 {
                st.execute([&row]).expect("insert");
            }
        }
        tx.commit().expect("commit");
        assert!(ck.started(), "the commit asked the thread for a checkpoint");
        ck.wait_idle();
        // Nothing else checkpoints (the hook replaced SQLite's automatic
        // checkpoints): the database file holds the rows because the thread
        // copied them there.
        let db = std::fs::metadata(&path).expect("db").len();
        assert!(db > 2000 * 4096, "database file of {db} bytes");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2001);
    }

    #[test]
    fn closing_waits_for_the_checkpoint_under_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT);")
            .expect("schema");
        let ck = Checkpoints::install(&mut conn, path.clone()).expect("hook");
        conn.execute("INSERT INTO t VALUES (?1)", [&"y".repeat(100_000)])
            .expect("insert");
        ck.request();
        drop(ck);
        drop(conn);
        // The last close found nothing left to copy and removed the WAL.
        assert_eq!(wal_bytes(&path), 0);
        let conn = Connection::open(&path).expect("reopen");
        let n: i64 = conn
            .query_row("SELECT length(x) FROM t", [], |r| r.get(0))
            .expect("row");
        assert_eq!(n, 100_000);
    }
}
