//! The state store: one SQLite database (WAL mode), versioned migrations
//! applied at open, soft delete as Watcher does, and an event log.
//!
//! Location: `--db`, else `SEXTANT_DB`, else
//! `$XDG_DATA_HOME/sextant/sextant.db`.
//!
//! Invariants: one logical write is one transaction, so a crash at any
//! moment leaves the previous or the next consistent state (WAL with
//! `synchronous = NORMAL`: a committed transaction survives the process
//! being killed; a power cut may lose the last ones, never corrupt); every state
//! transition of an audit, plan or action appends its event in the same
//! transaction that changes the state.

pub mod action_type_uses;
pub mod apply;
pub mod audits;
mod backend;
mod checkpoint;
mod columns;
pub mod copy;
mod copy_pg;
mod copy_rows;
mod copy_sqlite;
mod counts;
pub mod db_schema;
pub mod fleet;
pub mod flows;
mod group_commit;
mod hosts;
pub mod ids;
pub mod lifecycle;
pub mod location;
pub mod outbox;
pub mod pages;
pub mod pg;
mod pg_audits;
mod pg_backend;
mod pg_catalog;
mod pg_flows;
mod pg_hosts;
mod pg_ids;
mod pg_lease;
mod pg_lifecycle;
mod pg_outbox;
mod pg_pages;
mod pg_plans;
mod pg_schema;
mod pg_sql;
mod pg_sync;
mod pg_transitions;
pub mod plan_marks;
pub mod plans;
mod schema;
pub mod sync;
#[cfg(test)]
pub(crate) mod testing;

use crate::states::{EventType, ObjectState, ObjectType};
pub use backend::{Store, StoreBackend};
pub use columns::UnknownValue;
pub use counts::StateCounts;
pub use fleet::{AuditRequestKind, AuditRunRequest, FiringAlert, FleetStore};
pub use group_commit::GroupCommit;
pub use location::{BadLocation, Location};
pub use plan_marks::{PlanEventsMark, PlanMarks};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database {}: {cause}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why (in the message, not a `source`: rusqlite's own error
        /// repeats its message in its source, and a chain printed whole
        /// would say it three times).
        cause: DatabaseCause,
    },
    /// A value read back that its column's enum does not know (a state,
    /// an event type): the database was written by something else.
    #[error("database {}: {value}", path.display())]
    Unknown {
        /// The database file.
        path: PathBuf,
        /// Where, and what.
        value: UnknownValue,
    },
    /// A column read back whose type is not the one this Sextant reads
    /// (PostgreSQL: a database edited by hand or written by something
    /// else).
    #[error("database {}: column {column} of `{query}`: {cause}", path.display())]
    Column {
        /// The database.
        path: PathBuf,
        /// The query that read it (its table).
        query: String,
        /// The column's name.
        column: String,
        /// What the driver said.
        cause: String,
    },
    /// The database was written by a newer Sextant.
    #[error(
        "database {} has schema version {found}, newer than this sextant knows ({known}): upgrade sextant",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// A read-only database at an older schema version: it cannot be
    /// migrated, nor read with this version's queries.
    #[error(
        "database {} is read-only and has schema version {found}, older than this sextant's ({known}): open it once with write access to migrate it",
        path.display()
    )]
    ReadOnlyOld {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The database's directory is not ready (see `location`'s
    /// create-vs-open rule).
    #[error(transparent)]
    Directory(#[from] location::DirectoryError),
    /// The directory could not be created.
    #[error("cannot create {}: {cause}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A state transition that the state machine does not allow.
    #[error("{kind} {id}: state transition not allowed: ({from} -> {to})")]
    Transition {
        /// What kind of object.
        kind: &'static str,
        /// Its uuid.
        id: String,
        /// Its state.
        from: String,
        /// The state asked for.
        to: String,
    },
    /// A group commit failed (the SQLite error, as text: it is reported
    /// to every transition of the group).
    #[error("commit failed: {0}")]
    Commit(String),
    /// A uuid prefix (or name) that names several objects.
    #[error("{kind} {id:?} is ambiguous: it matches {}; give more of the uuid", matches.join(", "))]
    Ambiguous {
        /// What was looked for.
        kind: &'static str,
        /// The prefix given.
        id: String,
        /// The uuids (or names) it matches, at most ten.
        matches: Vec<String>,
    },
    /// An operation its object's state does not allow, with what to do.
    #[error("{kind} {id} is {state}: {what}")]
    Refused {
        /// What kind of object.
        kind: &'static str,
        /// Its uuid.
        id: String,
        /// Its state.
        state: String,
        /// Why, and what to do instead.
        what: String,
    },
    /// A write of a plan's applier refused because the plan's lease is no
    /// longer that applier's: another applier claimed the plan (its lease
    /// had lapsed), and only the holder writes the plan's states.
    #[error(
        "action plan {plan}: its lease is no longer held by {owner} (another applier took the plan over); the write was refused"
    )]
    LeaseLost {
        /// The plan.
        plan: String,
        /// The owner id that wrote without holding the lease.
        owner: String,
    },
    /// No object with that id.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked for.
        kind: &'static str,
        /// By which id or name.
        id: String,
    },
}

impl StoreError {
    /// Whether it says the database cannot be reached or written (now),
    /// rather than that the request was wrong: the work is left to be
    /// retried, or taken over by another host.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Database { .. }
                | StoreError::Io { .. }
                | StoreError::Directory(_)
                | StoreError::Commit(_)
        )
    }
}

/// What the database driver said, shown as its message; which driver is the
/// store's business.
#[derive(Debug)]
pub struct DatabaseCause(Cause);

#[derive(Debug)]
enum Cause {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
}

impl std::fmt::Display for DatabaseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Cause::Sqlite(e) => e.fmt(f),
            // Its message, then its cause's (the server's words): the
            // driver's own Display says only "db error".
            Cause::Postgres(e) => match e.as_db_error() {
                // lock_timeout: what waited (the server's context names
                // the table), and why.
                Some(db)
                    if *db.code() == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                        && db.message().contains("lock timeout") =>
                {
                    write!(
                        f,
                        "{}: {}{}: a lock another session holds was waited for longer than lock_timeout (default {}); look for a transaction left open (pg_stat_activity)",
                        db.severity(),
                        db.message(),
                        db.where_().map(|w| format!(" ({w})")).unwrap_or_default(),
                        pg::LOCK_TIMEOUT
                    )
                }
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => e.fmt(f),
                },
            },
        }
    }
}

/// A rusqlite error as a [`StoreError`]: an unknown enum value read back
/// becomes [`StoreError::Unknown`].
fn sqlite_error(path: &Path, cause: rusqlite::Error) -> StoreError {
    match columns::unknown_value(&cause) {
        Some(value) => StoreError::Unknown {
            path: path.to_path_buf(),
            value,
        },
        None => StoreError::Database {
            path: path.to_path_buf(),
            cause: DatabaseCause(Cause::Sqlite(cause)),
        },
    }
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The current time, RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A new random (version 4) UUID.
///
/// The random bytes come from the OS 256 UUIDs at a time: a plan of 100,000
/// actions would otherwise make 100,000 `getrandom` calls.
pub fn new_uuid() -> String {
    use std::cell::RefCell;
    const BATCH: usize = 256;
    thread_local! {
        static POOL: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }
    POOL.with(|pool| {
        let (bytes, used) = &mut *pool.borrow_mut();
        if *used + 16 > bytes.len() {
            bytes.resize(16 * BATCH, 0);
            if getrandom::fill(bytes).is_err() {
                // No OS randomness this time: one UUID the uuid crate's way.
                bytes.clear();
                *used = 0;
                return uuid::Uuid::new_v4().to_string();
            }
            *used = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&bytes[*used..*used + 16]);
        *used += 16;
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    })
}

/// `n` new random (version 4) UUIDs in ascending order, as one string of
/// `n` hyphenated UUIDs of [`UUID_LEN`] characters each (the `i`-th is
/// `&s[i * UUID_LEN..(i + 1) * UUID_LEN]`).
///
/// Each is as random as [`new_uuid`]'s; only the order in which they are
/// handed out is chosen. A plan gives them to its actions in creation
/// order, so that the actions' UNIQUE uuid index is written in key order
/// (each insert next to the previous one, pages filled in sequence) instead
/// of at a random place each time: a plan of 10,000 actions touched every
/// leaf of that index once per 64-row statement.
pub fn new_uuids_sorted(n: usize) -> String {
    let mut bytes = vec![0u8; 16 * n];
    // As u128 (big-endian): their order is the order of the lowercase
    // hyphenated text, and they sort faster than byte arrays.
    let mut ids: Vec<u128> = if getrandom::fill(&mut bytes).is_ok() {
        bytes
            .chunks_exact(16)
            .map(|c| {
                let mut b = [0u8; 16];
                b.copy_from_slice(c);
                uuid::Builder::from_random_bytes(b).into_uuid().as_u128()
            })
            .collect()
    } else {
        // No OS randomness this time: the uuid crate's way.
        (0..n).map(|_| uuid::Uuid::new_v4().as_u128()).collect()
    };
    drop(bytes);
    ids.sort_unstable();
    let mut s = String::with_capacity(n * UUID_LEN);
    let mut buf = uuid::Uuid::encode_buffer();
    for &id in &ids {
        s.push_str(
            uuid::Uuid::from_u128(id)
                .hyphenated()
                .encode_lower(&mut buf),
        );
    }
    s
}

/// The length of a hyphenated UUID.
pub const UUID_LEN: usize = 36;

/// The SQLite backend: one open database file.
pub struct SqliteStore {
    /// Declared before `conn`: dropped first, it waits for the checkpoint
    /// under way, so that the connection's close is the last one.
    checkpoints: Option<checkpoint::Checkpoints>,
    conn: Connection,
    path: PathBuf,
    read_only: bool,
}

/// How [`Store::open`] opens the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
    /// Read-only, and SQLite told no one else writes it (no locks, no
    /// `-shm` file needed).
    Immutable,
}

/// Whether `<db>-wal` exists and is not empty.
fn has_wal_content(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `path` for a `file:` URI: the characters a URI gives meaning to
/// percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether SQLite refused because the file or its directory cannot be
/// written (a read-only file, directory or mount).
fn is_write_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Database {
            cause: DatabaseCause(Cause::Sqlite(rusqlite::Error::SqliteFailure(f, _))),
            ..
        } if matches!(
            f.code,
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::PermissionDenied
        )
    )
}

impl SqliteStore {
    /// Opens (creating the file if needed) the database and migrates it.
    /// Its directory must exist ([`location::DirectoryError::Missing`]).
    ///
    /// Nothing is written when nothing needs changing (a database already
    /// in WAL mode at the current schema version). A database that cannot
    /// be written (a read-only file or directory) is opened read-only: every
    /// read works, a write fails with SQLite's "attempt to write a readonly
    /// database".
    pub fn open(path: &Path) -> Result<Self> {
        // Never a directory: the caller readies Sextant's own
        // (`location::prepare_directory`); a missing one is refused.
        location::prepare_directory(path, location::StoreDirectory::Named)?;
        match Self::open_with(path, Access::ReadWrite) {
            Err(e) if path.is_file() && is_write_refusal(&e) => {
                tracing::debug!("{e}: opening it read-only");
                match Self::open_with(path, Access::ReadOnly) {
                    // A WAL database in a directory we cannot write, with no
                    // `-shm` file: SQLite can read it only as immutable,
                    // which is right only when no `-wal` holds commits.
                    Err(e) if is_write_refusal(&e) && !has_wal_content(path) => {
                        Self::open_with(path, Access::Immutable)
                    }
                    r => r,
                }
            }
            r => r,
        }
    }

    fn open_with(path: &Path, access: Access) -> Result<Self> {
        use rusqlite::OpenFlags;
        let err = |cause| sqlite_error(path, cause);
        let read_only_flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match access {
            Access::ReadWrite => Connection::open(path),
            Access::ReadOnly => Connection::open_with_flags(path, read_only_flags),
            Access::Immutable => Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                read_only_flags,
            ),
        }
        .map_err(err)?;
        let read_only = access != Access::ReadWrite;
        // SQLite opens a write-protected file read-only by itself.
        let read_only = read_only || conn.is_readonly(rusqlite::MAIN_DB).map_err(err)?;
        let mut store = Self {
            checkpoints: None,
            conn,
            path: path.to_path_buf(),
            read_only,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Whether the database was opened read-only (it cannot be written).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Limits this connection's page cache to `kib` KiB and frees what is
    /// over it.
    ///
    /// For many small commits after a big read or write (an applier after
    /// loading or storing a plan): every commit whose inserts split a page
    /// makes SQLite scan the whole page cache when the transaction ends (the
    /// split renumbers a page through a temporary page number beyond the end
    /// of the database, and the end of the transaction drops every cached
    /// page past the end). A 64 MB cache full of a 100,000-action plan made
    /// that scan the largest single cost of an applier commit.
    pub fn limit_cache(&self, kib: u32) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "PRAGMA cache_size = -{kib}; PRAGMA shrink_memory;"
            ))
            .map_err(|e| self.err(e))
    }

    /// Waits until the WAL checkpoint that commits asked for, if any, is
    /// done (see `checkpoint.rs`: commits never checkpoint themselves).
    pub fn wait_for_checkpoints(&self) {
        if let Some(c) = &self.checkpoints {
            c.wait_idle();
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        sqlite_error(&self.path, source)
    }

    fn configure(&mut self) -> Result<()> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        // Only a change of journal mode writes to the file.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") && !self.read_only {
            self.conn
                .execute_batch("PRAGMA journal_mode = WAL;")
                .map_err(|e| self.err(e))?;
        }
        if self.read_only {
            return self
                .conn
                .execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;")
                .map_err(|e| self.err(e));
        }
        self.conn
            .execute_batch(
                // A 16 MB page cache (grown only as used). Storing a plan of
                // 100,000 actions touches about 40 MB of pages: with 64 MB it
                // stored 10% faster but peaked 45 MB higher; with SQLite's
                // default 2 MB, 15% slower (`bench planners`, 2026-12).
                "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA cache_size = -16384;",
            )
            .map_err(|e| self.err(e))?;
        self.checkpoints = Some(
            checkpoint::Checkpoints::install(&mut self.conn, self.path.clone())
                .map_err(|e| self.err(e))?,
        );
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let known = schema::MIGRATIONS.len() as i64;
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if current > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        if current < known && self.read_only {
            return Err(StoreError::ReadOnlyOld {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
            let path = self.path.clone();
            let err = |source| sqlite_error(&path, source);
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
            // Another process may have migrated while we waited for the lock.
            let now: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(err)?;
            if now > i as i64 {
                continue;
            }
            tx.execute_batch(sql).map_err(err)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::debug!(
                "migrated {} to schema version {}",
                self.path.display(),
                i + 1
            );
        }
        Ok(())
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs `f` in one immediate transaction, committed only if `f` succeeds.
    fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let path = self.path.clone();
        let err = |source| sqlite_error(&path, source);
        // Read-only: a deferred transaction, so that `f` may read and find
        // nothing to change; a write in it fails with SQLite's "attempt to
        // write a readonly database".
        let behavior = if self.read_only {
            rusqlite::TransactionBehavior::Deferred
        } else {
            rusqlite::TransactionBehavior::Immediate
        };
        let tx = self.conn.transaction_with_behavior(behavior).map_err(err)?;
        let v = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    /// Read access.
    fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Every row `sql` selects with `params`, each read by `read`.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        st.query_map(params, read)
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
    }

    /// Inserts a goal named `name` directly, for tests that need one
    /// without a strategy plugin.
    #[cfg(test)]
    pub(crate) fn insert_test_goal(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO goals (uuid, name, display_name, created_at) VALUES (?1, ?1, ?1, ?2)",
                params![name, now()],
            )
        })
        .map(|_| ())
    }

    /// Every goal not deleted.
    pub fn goals(&self) -> Result<Vec<GoalRow>> {
        self.rows(
            &format!("SELECT {GOAL_COLS} FROM goals WHERE deleted = 0 ORDER BY id"),
            [],
            GoalRow::from_row,
        )
    }

    /// A goal by uuid or name.
    pub fn goal(&self, id: &str) -> Result<GoalRow> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {GOAL_COLS} FROM goals WHERE deleted = 0 AND (uuid = ?1 OR name = ?1)"
                ),
                [id],
                GoalRow::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "goal",
                id: id.into(),
            })
    }

    /// Every strategy not deleted, optionally of one goal (uuid or name).
    pub fn strategies(&self, goal: Option<&str>) -> Result<Vec<StrategyRow>> {
        let goal_id = match goal {
            Some(g) => Some(self.goal(g)?.id),
            None => None,
        };
        self.rows(
            &format!(
                "SELECT {STRATEGY_COLS} FROM strategies s JOIN goals g ON g.id = s.goal_id \
                 WHERE s.deleted = 0 AND (?1 IS NULL OR s.goal_id = ?1) ORDER BY s.id"
            ),
            params![goal_id],
            StrategyRow::from_row,
        )
    }

    /// A strategy by uuid or name.
    pub fn strategy(&self, id: &str) -> Result<StrategyRow> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {STRATEGY_COLS} FROM strategies s JOIN goals g ON g.id = s.goal_id \
                     WHERE s.deleted = 0 AND (s.uuid = ?1 OR s.name = ?1)"
                ),
                [id],
                StrategyRow::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound {
                kind: "strategy",
                id: id.into(),
            })
    }

    /// Records each action type's description (Watcher's
    /// `action_descriptions`), updating those that changed; one transaction.
    /// Writes nothing when every description is already recorded.
    pub fn sync_action_descriptions(&mut self, types: &[(String, String)]) -> Result<usize> {
        let recorded: std::collections::HashMap<String, String> = self
            .rows(
                "SELECT action_type, description FROM action_descriptions",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        let changed: Vec<&(String, String)> = types
            .iter()
            .filter(|(t, d)| recorded.get(t) != Some(d))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let mut changed_rows = 0;
            for (t, d) in changed {
                changed_rows += tx.execute(
                    "INSERT INTO action_descriptions (action_type, description, created_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(action_type) DO UPDATE SET description = excluded.description, updated_at = excluded.created_at \
                     WHERE description <> excluded.description",
                    params![t, d, now()],
                )?;
            }
            Ok(changed_rows)
        })
    }

    /// An action type's recorded description.
    pub fn action_description(&self, action_type: &str) -> Result<Option<String>> {
        self.conn()
            .query_row(
                "SELECT description FROM action_descriptions WHERE action_type = ?1",
                [action_type],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The id of the newest event, 0 when there is none.
    pub fn last_event_id(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The event log, oldest first, optionally of one action plan, after
    /// event id `after`.
    pub fn events(&self, plan: Option<&str>, after: i64) -> Result<Vec<EventRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload \
                 FROM events WHERE id > ?1 AND (?2 IS NULL OR action_plan_uuid = ?2) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![after, plan], EventRow::from_row)
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
    }
}

/// One event to append: what changed, on which object.
#[derive(Clone, Debug)]
struct Event<'a> {
    /// What happened; it also says what kind of object it is about.
    pub event_type: EventType,
    /// The object's uuid.
    pub object_uuid: &'a str,
    /// The plan the object belongs to.
    pub action_plan_uuid: Option<&'a str>,
    /// State before.
    pub old_state: Option<&'a str>,
    /// State after.
    pub new_state: Option<&'a str>,
    /// Details.
    pub payload: Value,
}

impl<'a> Event<'a> {
    /// A state change of one object.
    pub fn state_change(
        event_type: EventType,
        object_uuid: &'a str,
        old_state: Option<&'a str>,
        new_state: &'a str,
    ) -> Self {
        Self {
            event_type,
            object_uuid,
            action_plan_uuid: None,
            old_state,
            new_state: Some(new_state),
            payload: Value::Null,
        }
    }

    /// An event that changes no state.
    pub fn note(event_type: EventType, object_uuid: &'a str, payload: Value) -> Self {
        Self {
            event_type,
            object_uuid,
            action_plan_uuid: None,
            old_state: None,
            new_state: None,
            payload,
        }
    }

    /// Sets the plan the object belongs to.
    pub fn in_plan(mut self, plan: &'a str) -> Self {
        self.action_plan_uuid = Some(plan);
        self
    }

    /// Sets the details.
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
}

/// Appends one event, inside the caller's transaction.
fn append_event(tx: &Transaction<'_>, e: &Event<'_>) -> rusqlite::Result<()> {
    append_event_at(tx, e, &now())
}

/// Appends an event stamped `at`: for many events of one transaction.
fn append_event_at(tx: &Transaction<'_>, e: &Event<'_>, at: &str) -> rusqlite::Result<()> {
    append_event_with(tx, e, at, None::<&()>)
}

/// Appends an event whose payload is `payload` when given (serialized
/// straight to text, no `Value` built), else the event's own.
fn append_event_with<P: Serialize>(
    tx: &Transaction<'_>,
    e: &Event<'_>,
    at: &str,
    payload: Option<&P>,
) -> rusqlite::Result<()> {
    let payload = match payload {
        Some(p) => serde_json::to_string(p)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?,
        None if e.payload.is_null() => "{}".to_string(),
        None => crate::json_text(&e.payload),
    };
    // Cached: plans append one event per action, and appliers one per change.
    tx.prepare_cached(
        "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, old_state, new_state, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
            at,
            e.event_type,
            e.event_type.object_type().as_str(),
            e.object_uuid,
            e.action_plan_uuid,
            e.old_state,
            e.new_state,
            payload
        ])?;
    Ok(())
}

fn json_col(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::String(s))
}

const GOAL_COLS: &str =
    "id, uuid, name, display_name, display_names, efficacy_specification, created_at, updated_at";

/// A goal.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GoalRow {
    #[serde(skip)]
    pub(in crate::store) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its id (`server_consolidation`).
    pub name: String,
    /// English display name.
    pub display_name: String,
    /// Display names by language.
    pub display_names: Value,
    /// The efficacy specification: a list of indicators.
    pub efficacy_specification: Value,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
}

impl GoalRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            uuid: r.get(1)?,
            name: r.get(2)?,
            display_name: r.get(3)?,
            display_names: json_col(r.get(4)?),
            efficacy_specification: json_col(r.get(5)?),
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
        })
    }
}

const STRATEGY_COLS: &str = "s.id, s.uuid, s.name, s.display_name, s.display_names, g.uuid, g.name, \
     s.parameters_spec, s.version, s.plugin_file, s.created_at, s.updated_at, s.planner";

/// A strategy.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StrategyRow {
    #[serde(skip)]
    pub(in crate::store) id: i64,
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// English display name.
    pub display_name: String,
    /// Display names by language.
    pub display_names: Value,
    /// The goal's uuid.
    pub goal_uuid: String,
    /// The goal's name.
    pub goal_name: String,
    /// JSON Schema of its parameters.
    pub parameters_spec: Value,
    /// The plugin entry's version.
    pub version: String,
    /// The plugin file that declared it.
    pub plugin_file: String,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: Option<String>,
    /// The planner its solutions are scheduled with.
    pub planner: String,
}

impl StrategyRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            uuid: r.get(1)?,
            name: r.get(2)?,
            display_name: r.get(3)?,
            display_names: json_col(r.get(4)?),
            goal_uuid: r.get(5)?,
            goal_name: r.get(6)?,
            parameters_spec: json_col(r.get(7)?),
            version: r.get(8)?,
            plugin_file: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            planner: r.get(12)?,
        })
    }
}

/// One event of the log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventRow {
    /// Monotonic id.
    pub id: i64,
    /// When.
    pub at: String,
    /// Watcher's event name (`action.execution.start`, …).
    pub event_type: EventType,
    /// What kind of object it is about (`audit`, `action_plan`, `action`,
    /// `flow`).
    pub object_type: ObjectType,
    /// The object's uuid.
    pub object_uuid: String,
    /// The plan it belongs to, if any.
    pub action_plan_uuid: Option<String>,
    /// State before, of the object's kind.
    pub old_state: Option<ObjectState>,
    /// State after, of the object's kind.
    pub new_state: Option<ObjectState>,
    /// Details.
    pub payload: Value,
}

impl EventRow {
    /// An event read from SQLite (`id, at, event_type, object_type,
    /// object_uuid, action_plan_uuid, old_state, new_state, payload`); a
    /// type or state it does not know is an [`UnknownValue`] naming the row and column.
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let object_type = columns::enum_col(r, 3, 0, "events", "object_type")?;
        Ok(EventRow {
            id: r.get(0)?,
            at: r.get(1)?,
            event_type: columns::enum_col(r, 2, 0, "events", "event_type")?,
            object_type,
            object_uuid: r.get(4)?,
            action_plan_uuid: r.get(5)?,
            old_state: columns::object_state_col(r, 6, 0, object_type, "events", "old_state")?,
            new_state: columns::object_state_col(r, 7, 0, object_type, "events", "new_state")?,
            payload: json_col(r.get::<_, String>(8)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::PlanState;
    use crate::store::testing::{TestStore, on_both_backends};

    on_both_backends!(
        plan_state_reads_the_state_alone,
        an_unknown_state_or_event_type_read_back_is_an_error_naming_where,
        an_event_s_object_type_and_states_are_read_as_types_and_an_unknown_one_is_an_error,
    );

    /// An event's object type and states are read as [`ObjectType`] and
    /// [`ObjectState`] (the state of that kind of object) by each of the
    /// three readers of the log; a text that is none of them (or another
    /// kind's state) is [`StoreError::Unknown`] naming table, row and
    /// column, and reading changes nothing.
    fn an_event_s_object_type_and_states_are_read_as_types_and_an_unknown_one_is_an_error(
        mut s: TestStore,
    ) {
        let (plan, actions) = s.plan_of_nops(1);
        let events = s.events(None, 0).expect("events");
        let created: Vec<_> = events
            .iter()
            .map(|e| (e.object_type, e.old_state, e.new_state))
            .collect();
        assert_eq!(
            created,
            [
                (
                    ObjectType::ActionPlan,
                    None,
                    Some(ObjectState::ActionPlan(PlanState::Recommended))
                ),
                (
                    ObjectType::Action,
                    None,
                    Some(ObjectState::Action(crate::states::ActionState::Pending))
                ),
            ]
        );
        assert_eq!(events[1].object_uuid, actions[0]);
        // As JSON, as before: the texts.
        let json = serde_json::to_value(&events[0]).expect("json");
        assert_eq!(
            (&json["object_type"], &json["old_state"], &json["new_state"]),
            (
                &serde_json::json!("action_plan"),
                &serde_json::Value::Null,
                &serde_json::json!("RECOMMENDED")
            )
        );
        let plan_event = events[0].id;
        let action_event = events[1].id;
        let readers = |s: &TestStore| {
            [
                s.events(None, 0),
                s.events(Some(&plan), 0),
                s.events_page(None, 0, 10),
                s.events_after(0, 10),
            ]
        };
        let unknown_everywhere =
            |s: &TestStore, row: i64, column: &str, what: &str, value: &str| {
                for read in readers(s) {
                    let e = read.expect_err("refused");
                    let msg = e.to_string();
                    let StoreError::Unknown { value: v, .. } = e else {
                        panic!("not an unknown value: {msg}");
                    };
                    assert_eq!(
                        (v.table, v.row, v.column, v.name.what, v.name.value.as_str()),
                        ("events", row, column, what, value),
                        "{msg}"
                    );
                    assert!(
                        msg.contains("table events")
                            && msg.contains(&format!("row {row}"))
                            && msg.contains(column),
                        "{msg}"
                    );
                }
            };
        // An audit's state on a plan's event.
        s.exec(&format!(
            "UPDATE events SET new_state = 'SUSPENDED' WHERE id = {plan_event}"
        ));
        unknown_everywhere(
            &s,
            plan_event,
            "new_state",
            "action plan state",
            "SUSPENDED",
        );
        assert_eq!(
            s.text(&format!(
                "SELECT new_state FROM events WHERE id = {plan_event}"
            )),
            "SUSPENDED"
        );
        s.exec(&format!(
            "UPDATE events SET new_state = 'RECOMMENDED' WHERE id = {plan_event}"
        ));
        // A plan's state as an action's old state.
        s.exec(&format!(
            "UPDATE events SET old_state = 'RECOMMENDED' WHERE id = {action_event}"
        ));
        unknown_everywhere(&s, action_event, "old_state", "action state", "RECOMMENDED");
        s.exec(&format!(
            "UPDATE events SET old_state = NULL WHERE id = {action_event}"
        ));
        // An object type no event is about.
        s.exec(&format!(
            "UPDATE events SET object_type = 'host' WHERE id = {action_event}"
        ));
        unknown_everywhere(&s, action_event, "object_type", "object type", "host");
        s.exec(&format!(
            "UPDATE events SET object_type = 'action' WHERE id = {action_event}"
        ));
        assert_eq!(s.events(None, 0).expect("events"), events);
    }

    fn plan_state_reads_the_state_alone(mut s: TestStore) {
        let p = s
            .create_plan(&plans::NewPlan {
                state: crate::states::PlanState::Recommended,
                ..Default::default()
            })
            .expect("plan");
        assert_eq!(s.plan_state(&p.uuid).ok(), Some(PlanState::Recommended));
        assert!(matches!(
            s.plan_state("no-such-plan"),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn limit_cache_shrinks_the_cache_and_writes_go_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SqliteStore::open(&dir.path().join("s.db")).expect("open");
        let size = |s: &SqliteStore| -> i64 {
            s.conn()
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .expect("cache_size")
        };
        assert_eq!(size(&s), -16384);
        s.limit_cache(8192).expect("limit");
        assert_eq!(size(&s), -8192);
        let p = s
            .create_plan(&plans::NewPlan {
                state: crate::states::PlanState::Recommended,
                ..Default::default()
            })
            .expect("plan");
        assert_eq!(s.plan_state(&p.uuid).ok(), Some(PlanState::Recommended));
    }

    #[test]
    fn uuids_are_version_4_and_distinct_across_batches() {
        let n = 1000; // several batches of 256
        let ids: std::collections::HashSet<String> = (0..n).map(|_| new_uuid()).collect();
        assert_eq!(ids.len(), n);
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn sorted_uuids_are_version_4_distinct_and_ascending() {
        let n = 1000;
        let s = new_uuids_sorted(n);
        assert_eq!(s.len(), n * UUID_LEN);
        let ids: Vec<&str> = (0..n)
            .map(|i| &s[i * UUID_LEN..(i + 1) * UUID_LEN])
            .collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(u.hyphenated().to_string(), *id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(new_uuids_sorted(0).is_empty());
    }

    #[test]
    fn open_migrates_once_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("s.db");
        // A directory that does not exist is refused, and not made.
        match SqliteStore::open(&path) {
            Err(StoreError::Directory(location::DirectoryError::Missing { dir: d, .. })) => {
                assert_eq!(d, dir.path().join("sub"));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened in a directory that does not exist"),
        }
        assert!(!dir.path().join("sub").exists());
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let s = SqliteStore::open(&path).expect("open");
        assert_eq!(
            s.schema_version().ok(),
            Some(schema::MIGRATIONS.len() as i64)
        );
        drop(s);
        let s = SqliteStore::open(&path).expect("reopen");
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
        s.conn()
            .execute_batch("PRAGMA user_version = 999")
            .expect("bump");
        drop(s);
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 999, .. })
        ));
    }

    #[test]
    fn migration_5_keeps_every_action_and_its_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        // A database at schema version 4, with a plan of three actions.
        let conn = Connection::open(&path).expect("open");
        for (i, sql) in schema::MIGRATIONS[..4].iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .expect("version");
        }
        conn.execute_batch(
            "INSERT INTO action_plans (id, uuid, state, created_at) VALUES (7, 'p', 'RECOMMENDED', 't'); \
             INSERT INTO actions (id, uuid, action_plan_id, name, action_type, input_parameters, state, parents, outputs, created_at) VALUES \
               (11, 'u1', 7, 'b', 'nop', '{\"m\":1}', 'SUCCEEDED', '[]', '{\"o\":2}', 't1'), \
               (12, 'u2', 7, 'a', 'nop', '{}', 'PENDING', '[\"u1\"]', NULL, 't2'), \
               (15, 'u3', 7, 'c', 'nop', '{}', 'PENDING', '[]', NULL, 't3');",
        )
        .expect("rows");
        drop(conn);
        let s = SqliteStore::open(&path).expect("migrate");
        assert_eq!(
            s.schema_version().ok(),
            Some(schema::MIGRATIONS.len() as i64)
        );
        let rows = s.actions("p").expect("actions");
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.uuid.as_str(), r.name.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("u1", "b", "SUCCEEDED"),
                ("u2", "a", "PENDING"),
                ("u3", "c", "PENDING")
            ]
        );
        assert_eq!(rows[0].outputs, Some(serde_json::json!({"o": 2})));
        assert_eq!(rows[1].parents, ["u1"]);
        let ids: Vec<i64> = s
            .rows("SELECT id FROM actions ORDER BY id", [], |r| r.get(0))
            .expect("ids");
        assert_eq!(ids, [11, 12, 15]);
        // The plan's actions are read through actions_plan, in id order.
        let plan: String = s
            .conn()
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM actions WHERE action_plan_id = 7 ORDER BY id",
                [],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(plan.contains("actions_plan"), "{plan}");
    }

    #[test]
    fn migration_6_stores_parents_as_row_ids_and_reads_them_as_uuids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        // A database at schema version 5: parents as uuids, one of them
        // unknown, in an order that is not the rows' order.
        let conn = Connection::open(&path).expect("open");
        for (i, sql) in schema::MIGRATIONS[..5].iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .expect("version");
        }
        conn.execute_batch(
            "INSERT INTO action_plans (id, uuid, state, created_at) VALUES (7, 'p', 'RECOMMENDED', 't'); \
             INSERT INTO actions (id, uuid, action_plan_id, name, action_type, state, parents, created_at) VALUES \
               (11, 'u1', 7, 'a', 'nop', 'PENDING', '[]', 't'), \
               (12, 'u2', 7, 'b', 'nop', 'PENDING', '[]', 't'), \
               (13, 'u3', 7, 'c', 'nop', 'PENDING', '[\"u2\",\"gone\",\"u1\"]', 't');",
        )
        .expect("rows");
        drop(conn);
        let mut s = SqliteStore::open(&path).expect("migrate");
        let stored: String = s
            .conn()
            .query_row("SELECT parents FROM actions WHERE id = 13", [], |r| {
                r.get(0)
            })
            .expect("parents");
        assert_eq!(stored, "[12,11]");
        assert_eq!(s.actions("p").expect("actions")[2].parents, ["u2", "u1"]);
        assert_eq!(s.action("u3").expect("action").parents, ["u2", "u1"]);
        // A new plan's parents are row ids too, after the rows already there.
        let p = s
            .create_plan(&plans::NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: vec![
                    plans::NewPlanRow {
                        name: "x",
                        action_type: "nop",
                        state: crate::states::ActionState::Pending,
                        input_parameters_json: "{}",
                        ..Default::default()
                    },
                    plans::NewPlanRow {
                        name: "y",
                        action_type: "nop",
                        state: crate::states::ActionState::Pending,
                        input_parameters_json: "{}",
                        parents: &[0],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })
            .expect("plan");
        let stored: Vec<(i64, String)> = s
            .rows(
                "SELECT id, parents FROM actions WHERE id > 13 ORDER BY id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("rows");
        assert_eq!(stored, [(14, "[]".to_string()), (15, "[14]".to_string())]);
        let rows = s.actions(&p.uuid).expect("actions");
        assert_eq!(rows[1].parents, [rows[0].uuid.clone()]);
        assert_eq!(
            s.action(&rows[1].uuid).expect("y").parents,
            [rows[0].uuid.clone()]
        );
    }

    #[test]
    fn migration_7_keeps_audits_and_stores_their_policy_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        // A database at schema version 6 with an audit that names a policy.
        let conn = Connection::open(&path).expect("open");
        for (i, sql) in schema::MIGRATIONS[..6].iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .expect("version");
        }
        conn.execute_batch(
            "INSERT INTO goals (id, uuid, name, display_name, created_at) VALUES (1, 'g', 'dummy', 'Dummy', 't'); \
             INSERT INTO audits (uuid, name, audit_type, state, goal_id, policy, created_at) \
               VALUES ('a1', 'old', 'ONESHOT', 'SUCCEEDED', 1, 'default', 't');",
        )
        .expect("rows");
        drop(conn);
        let mut s = SqliteStore::open(&path).expect("migrate");
        assert_eq!(
            s.schema_version().ok(),
            Some(schema::MIGRATIONS.len() as i64)
        );
        let old = s.audit("a1").expect("audit");
        assert_eq!(
            (
                old.policy.as_deref(),
                old.policy_content,
                old.state.as_str()
            ),
            (Some("default"), None, "SUCCEEDED")
        );
        // A new audit keeps its policy's content.
        let new = s
            .create_audit(&audits::NewAudit {
                name: "new".into(),
                audit_type: crate::states::AuditType::Oneshot,
                goal: "dummy".into(),
                strategy: None,
                template: None,
                parameters: serde_json::json!({}),
                interval: None,
                scope: serde_json::json!([]),
                auto_trigger: false,
                start_time: None,
                end_time: None,
                force: false,
                policy: Some("/etc/p.yaml".into()),
                policy_content: Some(r#"{"name":"p","planner":"weight"}"#.into()),
            })
            .expect("create");
        let new = s.audit(&new.uuid).expect("read back");
        assert_eq!(
            new.policy_content,
            Some(serde_json::json!({"name": "p", "planner": "weight"}))
        );
    }

    fn an_unknown_state_or_event_type_read_back_is_an_error_naming_where(mut s: TestStore) {
        let p = s
            .create_plan(&plans::NewPlan {
                state: PlanState::Recommended,
                actions: vec![plans::NewPlanAction {
                    name: "a".into(),
                    action_type: "nop".into(),
                    action_type_version: "1.0.0".into(),
                    input_parameters: serde_json::json!({}),
                    parents: vec![],
                    state: crate::states::ActionState::Pending,
                }],
                ..Default::default()
            })
            .expect("plan");
        let action_id = s.int("SELECT id FROM actions").expect("id");
        let action_uuid = s.text("SELECT uuid FROM actions");
        let unknown = |e: StoreError| match e {
            StoreError::Unknown { value, .. } => Some(value),
            _ => None,
        };
        // An action state: the applier once read anything unknown as PENDING.
        s.exec("UPDATE actions SET state = 'RUNNING'");
        let e = s.actions(&p.uuid).expect_err("refused");
        let msg = e.to_string();
        assert_eq!(
            unknown(e),
            Some(UnknownValue {
                table: "actions",
                row: action_id,
                column: "state",
                name: crate::states::UnknownName {
                    what: "action state",
                    value: "RUNNING".into()
                }
            })
        );
        assert!(
            msg.contains("table actions")
                && msg.contains(&format!("row {action_id}"))
                && msg.contains("\"RUNNING\""),
            "{msg}"
        );
        assert!(s.action(&action_uuid).is_err());
        // Nothing was changed by reading.
        assert_eq!(s.text("SELECT state FROM actions"), "RUNNING");
        // A transition that reads the state first fails too, writing nothing.
        let t = apply::ActionTransition::new(
            &action_uuid,
            &[crate::states::ActionState::Pending],
            crate::states::ActionState::Ongoing,
            None,
            None,
            EventType::ActionUpdate,
        );
        assert!(matches!(
            s.action_transitions(std::slice::from_ref(&t)),
            Err(StoreError::Unknown { .. })
        ));
        // A plan state.
        s.exec("UPDATE action_plans SET state = 'PAUSED'");
        let e = s.plan(&p.uuid).expect_err("refused");
        assert!(matches!(
            unknown(e),
            Some(UnknownValue {
                table: "action_plans",
                column: "state",
                ..
            })
        ),);
        assert!(matches!(
            s.plan_state(&p.uuid),
            Err(StoreError::Unknown { .. })
        ));
        // An audit type.
        s.exec(
            "INSERT INTO goals (id, uuid, name, display_name, created_at) \
             VALUES (900, 'g900', 'g900', 'G', 't')",
        );
        s.exec(
            "INSERT INTO audits (id, uuid, name, audit_type, state, goal_id, created_at) \
             VALUES (901, 'au901', 'a', 'WEEKLY', 'PENDING', 900, 't')",
        );
        let e = s.audit("au901").expect_err("refused");
        assert_eq!(
            unknown(e),
            Some(UnknownValue {
                table: "audits",
                row: 901,
                column: "audit_type",
                name: crate::states::UnknownName {
                    what: "audit type",
                    value: "WEEKLY".into()
                }
            })
        );
        // An event type.
        s.exec("UPDATE events SET event_type = 'action.teleport'");
        let e = s.events(None, 0).expect_err("refused");
        assert!(matches!(
            unknown(e),
            Some(UnknownValue {
                table: "events",
                column: "event_type",
                ..
            })
        ),);
    }

    #[test]
    fn migration_9_stores_whether_a_failure_came_from_execute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        // A database at schema version 8: the fact only in the messages.
        let conn = Connection::open(&path).expect("open");
        for (i, sql) in schema::MIGRATIONS[..8].iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .expect("version");
        }
        conn.execute_batch(
            "INSERT INTO action_plans (id, uuid, state, created_at) VALUES (7, 'p', 'FAILED', 't'); \
             INSERT INTO actions (id, uuid, action_plan_id, name, action_type, state, status_message, created_at) VALUES \
               (1, 'u1', 7, 'a', 'nop', 'FAILED', 'Action failed in execute: boom', 't'), \
               (2, 'u2', 7, 'b', 'nop', 'FAILED', 'Action failed in pre_condition: no', 't'), \
               (3, 'u3', 7, 'c', 'nop', 'SUCCEEDED', 'Action failed in execute: then retried', 't');",
        )
        .expect("rows");
        drop(conn);
        let s = SqliteStore::open(&path).expect("migrate");
        let got: Vec<bool> = s
            .actions("p")
            .expect("actions")
            .iter()
            .map(|a| a.execute_failed)
            .collect();
        assert_eq!(got, [true, false, false]);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SqliteStore::open(&dir.path().join("s.db")).expect("open");
        let r: Result<()> = s.write(|tx| {
            append_event(
                tx,
                &Event::state_change(EventType::AuditCreate, "u", None, "PENDING"),
            )?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        });
        assert!(r.is_err());
        assert!(s.events(None, 0).expect("events").is_empty());
    }
}
