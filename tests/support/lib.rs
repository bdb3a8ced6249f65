//! Helpers for the end-to-end tests: where the built binary, the built-in
//! plugins and the fixture plugins are, and a clean environment to run the
//! `sextant` binary in.
//!
//! `scripts/test` builds everything these tests need before `cargo test`.

pub mod api;
pub mod keystone;
pub mod openstack;
pub mod prometheus;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// `target/<profile>`: the directory of the running test binary's parent.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn must_exist(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: run `scripts/test` (it builds the binary, the plugins and the fixtures first)",
        p.display()
    );
    p
}

/// The built `sextant` binary.
pub fn sextant_bin() -> PathBuf {
    must_exist(profile_dir().join("sextant"))
}

/// Another built binary of the workspace (`sextant-bench`).
pub fn must_exist_in_profile(name: &str) -> PathBuf {
    must_exist(profile_dir().join(name))
}

/// The built-in plugin library with `nop` and `sleep`.
pub fn core_plugin() -> PathBuf {
    must_exist(profile_dir().join("libsextant_core.so"))
}

/// A fixture plugin built by `scripts/test` into `target/fixtures`.
/// `name` is the library's file name (`libfixture_kinds.so`).
pub fn fixture(name: &str) -> PathBuf {
    let root = profile_dir().parent().expect("target dir").join("fixtures");
    let sub = if name.contains("abort") {
        "abort"
    } else {
        "debug"
    };
    must_exist(root.join(sub).join(name))
}

/// A fresh scratch directory (mode 0755) that is removed when dropped,
/// with the PostgreSQL databases of the homes in it ([`Scratch`]).
pub fn scratch() -> Scratch {
    let d = tempfile::Builder::new()
        .prefix("sextant-e2e")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Scratch { dir: d }
}

/// A scratch directory: a test's home, or holds several. When dropped
/// (once the test's commands and `serve` processes are done with it), the
/// databases made for the homes in it on the test PostgreSQL ([`home_db`])
/// are dropped, then the directory is removed.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for url in home_databases_under(self.dir.path()) {
            if let Err(e) = drop_test_database(&url) {
                // A panic while the test itself is panicking would abort.
                eprintln!("test database {url} not dropped: {e}");
            }
        }
    }
}

/// Where a home keeps the URL of its PostgreSQL database ([`home_db`]).
const HOME_DB_FILE: &str = ".sextant-test-db";

/// Where a home keeps the URLs of the other databases made for its test
/// ([`fresh_pg_database`]), one a line.
const OTHER_DBS_FILE: &str = ".sextant-test-dbs";

/// The prefix of the databases the end-to-end tests make.
const TEST_DB_PREFIX: &str = "sextant_e2e_";

/// The URLs of the databases of the homes at `dir` and beneath it (a few
/// levels: homes are a scratch directory or directories in it).
fn home_databases_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        if let Ok(url) = std::fs::read_to_string(d.join(HOME_DB_FILE)) {
            found.push(url);
        }
        if let Ok(urls) = std::fs::read_to_string(d.join(OTHER_DBS_FILE)) {
            found.extend(urls.lines().map(str::to_string));
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            // file_type does not follow symbolic links.
            if depth < 3 && e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((e.path(), depth + 1));
            }
        }
    }
    found
}

/// Drops the test database `url` names on the test PostgreSQL, closing
/// any session still on it. A URL that names no database made by these
/// tests is refused, never dropped.
pub fn drop_test_database(url: &str) -> Result<(), String> {
    let name = url
        .rsplit_once('/')
        .map(|(_, n)| n.split('?').next().unwrap_or(n))
        .filter(|n| {
            n.strip_prefix(TEST_DB_PREFIX)
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .ok_or_else(|| format!("{url:?} names no database of the end-to-end tests"))?;
    let admin =
        std::env::var("SEXTANT_TEST_PG_URL").map_err(|_| "SEXTANT_TEST_PG_URL is not set")?;
    let mut admin =
        postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| e.to_string())?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .map_err(|e| e.to_string())
}

/// Copies `files` into `dir` (created 0755 if missing); returns the copies.
pub fn populate(dir: &Path, files: &[&Path]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    files
        .iter()
        .map(|f| {
            let to = dir.join(f.file_name().expect("file name"));
            std::fs::copy(f, &to).expect("copy");
            to
        })
        .collect()
}

/// A `sextant` command with no user configuration leaking in: an empty
/// config home, no plugin-path or config variables. Its database is the
/// home's ([`home_db`]): the default SQLite file, or with
/// `SEXTANT_TEST_BACKEND=postgres` a PostgreSQL database of its own.
pub fn sextant(home: &Path) -> Command {
    let mut c = Command::new(sextant_bin());
    c.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env_remove("SEXTANT_PLUGIN_PATH")
        .env_remove("SEXTANT_CONFIG")
        .env_remove("SEXTANT_LOG")
        .env_remove("SEXTANT_DB")
        .env("LANG", "C");
    if on_postgres() {
        c.env("SEXTANT_DB", home_db(home).url());
    }
    c
}

/// Whether the end-to-end tests run on PostgreSQL
/// (`SEXTANT_TEST_BACKEND=postgres`; `scripts/test` runs a chosen set of
/// them a second time so) instead of the default SQLite.
pub fn on_postgres() -> bool {
    match std::env::var("SEXTANT_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("SEXTANT_TEST_BACKEND={other:?}: use postgres or sqlite"),
    }
}

/// The database of a test home, as its commands see it.
#[derive(Clone, Debug)]
pub enum TestDb {
    /// `sextant.db` in the home's data directory.
    Sqlite(PathBuf),
    /// A database of the test PostgreSQL, made for this home.
    Postgres(String),
}

impl TestDb {
    /// What `--db` or `SEXTANT_DB` takes.
    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(p) => p.display().to_string(),
            TestDb::Postgres(u) => u.clone(),
        }
    }

    /// As the store names it.
    pub fn location(&self) -> sextant::store::Location {
        match self {
            TestDb::Sqlite(p) => sextant::store::Location::Sqlite(p.clone()),
            TestDb::Postgres(u) => sextant::store::Location::Postgres(u.clone()),
        }
    }

    /// The store, opened.
    pub fn open(&self) -> sextant::store::Store {
        sextant::store::Store::open(self.location()).expect("open the test store")
    }

    /// A connection of its own to the database, to look at or fault what
    /// the store's interface does not show.
    pub fn raw(&self) -> RawDb {
        match self {
            TestDb::Sqlite(p) => RawDb::Sqlite(raw_db(p)),
            TestDb::Postgres(u) => RawDb::Postgres(std::cell::RefCell::new(
                postgres::Client::connect(u, postgres::NoTls).expect("connect"),
            )),
        }
    }
}

/// A connection to a test database behind the store's back, whichever the
/// backend.
pub enum RawDb {
    /// A SQLite file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL database.
    Postgres(std::cell::RefCell<postgres::Client>),
}

impl RawDb {
    /// `sqlite` on SQLite, `pg` on PostgreSQL: for statements whose
    /// dialects differ (triggers).
    pub fn pick<'a>(&self, sqlite: &'a str, pg: &'a str) -> &'a str {
        match self {
            RawDb::Sqlite(_) => sqlite,
            RawDb::Postgres(_) => pg,
        }
    }

    /// Runs `sql` (several statements).
    pub fn exec(&self, sql: &str) {
        match self {
            RawDb::Sqlite(c) => c.execute_batch(sql).expect(sql),
            RawDb::Postgres(c) => c.borrow_mut().batch_execute(sql).expect(sql),
        }
    }

    /// Every row `sql` selects, each column as text (cast it in the SQL:
    /// `CAST(id AS TEXT)`), NULL as `None`.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            RawDb::Sqlite(c) => {
                let mut st = c.prepare(sql).expect(sql);
                let n = st.column_count();
                st.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                    .expect(sql)
                    .collect::<Result<_, _>>()
                    .expect(sql)
            }
            RawDb::Postgres(c) => c
                .borrow_mut()
                .query(sql, &[])
                .expect(sql)
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect(),
        }
    }

    /// The one integer `sql` selects (cast as text in the SQL).
    pub fn int(&self, sql: &str) -> i64 {
        self.rows(sql)
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no integer from {sql}"))
    }
}

/// The database of the home at `home`: on PostgreSQL, created on first use
/// (its URL kept in the home, so that every command of the home shares it).
pub fn home_db(home: &Path) -> TestDb {
    if !on_postgres() {
        return TestDb::Sqlite(home.join("data").join("sextant").join("sextant.db"));
    }
    TestDb::Postgres(home_pg_database(home))
}

/// The URL of the PostgreSQL database of the home at `home`, created on
/// first use and kept in the home: dropped with the [`Scratch`] directory
/// the home is in.
fn home_pg_database(home: &Path) -> String {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let kept = home.join(HOME_DB_FILE);
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return url;
    }
    let url = new_pg_database();
    std::fs::create_dir_all(home).expect("mkdir home");
    std::fs::write(&kept, &url).expect("keep the database URL");
    url
}

/// A new, empty database on the test PostgreSQL, besides the home's own:
/// its URL, kept in the home so that it is dropped with the [`Scratch`]
/// directory the home is in.
pub fn fresh_pg_database(home: &Path) -> String {
    use std::io::Write;
    let url = new_pg_database();
    std::fs::create_dir_all(home).expect("mkdir home");
    let mut kept = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join(OTHER_DBS_FILE))
        .expect("keep the database URL");
    writeln!(kept, "{url}").expect("keep the database URL");
    url
}

/// A new, empty database on the test PostgreSQL for a test without a
/// home: its URL, and the scratch directory it is dropped with (hold it
/// to the test's end).
pub fn own_pg_database() -> (Scratch, String) {
    let held = scratch();
    let url = fresh_pg_database(held.path());
    (held, url)
}

/// A login role and a database it owns on the test PostgreSQL, made for
/// one test (`applier_<hex>` and `sextant_e2e_<hex>`, the same hex): when
/// dropped, pass or fail, the database is dropped (closing any session
/// on it), then the role, which then owns nothing. Only these two names.
pub struct RoleDatabase {
    /// The role.
    pub role: String,
    /// The database's URL as the role.
    pub as_role: String,
    /// The database's URL as the test's superuser (not subject to the
    /// role's limits).
    pub as_admin: String,
}

/// A new [`RoleDatabase`].
pub fn role_database() -> RoleDatabase {
    let admin_url = service_url("SEXTANT_TEST_PG_URL");
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect");
    let id = sextant::store::new_uuid().replace('-', "");
    let (role, name) = (format!("applier_{id}"), format!("{TEST_DB_PREFIX}{id}"));
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
    let (_, server) = base.rsplit_once('@').expect("a user in the URL");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .expect("role");
    // Held from here: a database that cannot be made still drops the role.
    let made = RoleDatabase {
        as_role: format!("postgres://{role}@{server}/{name}"),
        as_admin: format!("{base}/{name}"),
        role,
    };
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {}", made.role))
        .expect("database");
    made
}

impl Drop for RoleDatabase {
    fn drop(&mut self) {
        // A panic while the test itself is panicking would abort.
        if let Err(e) = drop_test_database(&self.as_admin) {
            eprintln!("test database {} not dropped: {e}", self.as_admin);
        }
        let dropped = std::env::var("SEXTANT_TEST_PG_URL")
            .map_err(|_| "SEXTANT_TEST_PG_URL is not set".to_string())
            .and_then(|url| {
                postgres::Client::connect(&url, postgres::NoTls)
                    .and_then(|mut c| {
                        c.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.role))
                    })
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("test role {} not dropped: {e}", self.role);
        }
    }
}

/// A new, empty database on the test PostgreSQL; its URL.
fn new_pg_database() -> String {
    let url = service_url("SEXTANT_TEST_PG_URL");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let name = format!(
        "{TEST_DB_PREFIX}{}",
        sextant::store::new_uuid().replace('-', "")
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{name}")
}

/// What a finished command printed, and its status.
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs a command to completion.
/// The SQLite file beneath a store, opened directly: for tests that look
/// at or fault what the store's interface does not show.
pub fn raw_db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open the database file")
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run sextant");
    Run {
        status: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A shared library of the system that is not a Sextant plugin.
pub fn foreign_shared_library() -> PathBuf {
    for candidate in [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib64/libm.so.6",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("no system shared library found to use as a foreign .so");
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Writes `text` to `dir/name` (creating `dir`, mode 0755); returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A scratch home for one test: its own config, data and action-type
/// directory (`types`, on `SEXTANT_ACTION_TYPE_PATH`), and helpers that run
/// the built binary in it.
pub struct Home {
    dir: Scratch,
    /// The action-type directory the commands see.
    pub types: PathBuf,
}

impl Home {
    /// A fresh home.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let dir = scratch();
        let types = dir.path().join("types");
        std::fs::create_dir_all(&types).expect("mkdir");
        Self { dir, types }
    }
    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// A `sextant` command in this home, with its action types.
    pub fn cmd(&self) -> Command {
        let mut c = sextant(self.path());
        c.env("SEXTANT_ACTION_TYPE_PATH", &self.types);
        c
    }
    /// Runs `sextant ARGS…` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.cmd().args(args))
    }

    /// `action-plan import FILE`, which must succeed; the plan's uuid.
    pub fn import(&self, file: &Path) -> String {
        let out = run(self.cmd().args(["action-plan", "import"]).arg(file));
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.stdout.trim().to_string()
    }
    /// Writes `plan` to `plans/NAME` and imports it; the plan's uuid.
    pub fn import_json(&self, name: &str, plan: &Value) -> String {
        let f = write_file(&self.path().join("plans"), name, &plan.to_string());
        self.import(&f)
    }
    /// `action list --plan PLAN` as JSON.
    pub fn actions(&self, plan: &str) -> Vec<Value> {
        let out = self.run(&["action", "list", "--plan", plan, "--format", "json"]);
        out.json().as_array().cloned().unwrap_or_default()
    }
    /// The action named `name` of `plan` (panics when there is none).
    pub fn action(&self, plan: &str, name: &str) -> Value {
        self.actions(plan)
            .into_iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no action {name}"))
    }
    /// `action-plan show PLAN` as JSON.
    pub fn plan(&self, plan: &str) -> Value {
        self.run(&["action-plan", "show", plan, "--format", "json"])
            .json()
    }
    /// Starts `sextant ARGS…` without waiting, its output discarded.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    }
    /// `history --plan PLAN` as JSON.
    pub fn events(&self, plan: &str) -> Vec<Value> {
        self.run(&["history", "--plan", plan, "--format", "json"])
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The address of a real service (PostgreSQL, RabbitMQ, Prometheus, ...)
/// that the test command started on loopback (`scripts/services/*.sh`), read
/// from the environment variable `var` (e.g. `SEXTANT_TEST_PG_URL`).
///
/// A test that needs the service fails, never skips, when it is not running.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs the real service that scripts/test starts; \
             run the tests through scripts/test, or start the service with \
             scripts/services/up.sh and export the variables it prints"
        ),
    }
}

/// Makes every commit that sets action `name` to `state` fail, as a full
/// disk would: a trigger in the real store, outside the applier.
pub fn fail_commits_of(home: &Home, name: &str, state: &str) -> RawDb {
    let raw = home_db(home.path()).raw();
    raw.exec(raw.pick(
        &format!(
            "CREATE TRIGGER fail_commit BEFORE UPDATE OF state ON actions \
             WHEN NEW.name = '{name}' AND NEW.state = '{state}' \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full (test trigger)'); END;"
        ),
        &format!(
            "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.name = '{name}' AND NEW.state = '{state}' THEN \
             RAISE EXCEPTION 'database or disk is full (test trigger)'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER fail_commit BEFORE UPDATE OF state ON actions \
             FOR EACH ROW EXECUTE FUNCTION fail_commit();"
        ),
    ));
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the test PostgreSQL has a database of the name `url` ends with.
    fn exists(url: &str) -> bool {
        let name = url.rsplit_once('/').expect("a database").1;
        let admin = service_url("SEXTANT_TEST_PG_URL");
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .expect("count")
            .get(0);
        n == 1
    }

    /// The databases of the homes in a scratch directory (the directory
    /// itself, or one a few levels in) are dropped with it, even with a
    /// session still open on one (a `serve` not gone yet); a URL that
    /// names no database of these tests is never dropped.
    #[test]
    fn a_scratch_directory_drops_its_homes_databases_with_it() {
        let dir = scratch();
        let top = home_pg_database(dir.path());
        let inner = home_pg_database(&dir.path().join("hosts").join("h1"));
        let other = fresh_pg_database(&dir.path().join("hosts").join("h1"));
        let another = fresh_pg_database(&dir.path().join("hosts").join("h1"));
        assert!(exists(&other) && exists(&another));
        assert_eq!(home_pg_database(dir.path()), top, "kept in the home");
        assert!(exists(&top) && exists(&inner));
        let mut session = postgres::Client::connect(&inner, postgres::NoTls).expect("connect");
        session.batch_execute("SELECT 1").expect("a session");
        drop(dir);
        assert!(!exists(&top), "{top} left behind");
        for url in [&inner, &other, &another] {
            assert!(!exists(url), "{url} left behind");
        }
        assert!(session.batch_execute("SELECT 1").is_err());
        let admin = service_url("SEXTANT_TEST_PG_URL");
        for url in [
            admin.as_str(),
            "postgres://x@127.0.0.1:1/sextant_e2e_",
            "postgres://x@h/sextant_e2e_1; DROP",
        ] {
            assert!(drop_test_database(url).is_err(), "{url}");
        }
        assert!(postgres::Client::connect(&admin, postgres::NoTls).is_ok());
    }
}
