//! Where the store is, as an operator names it: a SQLite file (a path, or
//! `sqlite:PATH`) or a PostgreSQL database (`postgres://USER@HOST:PORT/DB`,
//! or `postgresql://…`). Chosen by `--db`, else `SEXTANT_DB`, else the
//! config's `database:`, else `sextant.db` in the data directory; one
//! function opens a store from it ([`super::Store::open`]).
//!
//! A location shows (Display and Debug alike) without any password, so
//! that no message, log line or JSON output can carry one.
//!
//! The create-vs-open rule ([`prepare_directory`]): a SQLite store's file
//! is made when missing, its directory only when that directory is
//! Sextant's own (the default location in the data directory, made on a
//! new installation's first command). A directory an operator named
//! (`--db`, `SEXTANT_DB`, the config's `database:` or `sim: {sim_db}`,
//! `db copy --to`) must exist: a typo in a path is refused, naming the
//! directory, instead of making a new empty store somewhere else. Opening a
//! store ([`super::SqliteStore::open`]) never makes a directory.

use super::pg::redact;
use std::path::{Path, PathBuf};

/// Where a store is.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (with its password, if any: shown
    /// only through [`redact`]).
    Postgres(String),
}

/// A text that names no database.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name} {shown:?} names no database: {why}")]
pub struct BadLocation {
    /// Where the text came from (`--db`, `SEXTANT_DB`, `config database:`).
    pub source_name: String,
    /// The text, without any password.
    pub shown: String,
    /// What is wrong, and what is accepted.
    pub why: String,
}

/// Whose directory a SQLite store is in: what decides whether it may be
/// made (the create-vs-open rule of this module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreDirectory {
    /// Sextant's own data directory (no database named: the default
    /// location): made on first use.
    Own,
    /// A directory the operator named: it must exist.
    Named,
}

/// Why a SQLite store's directory is not ready.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A named directory that does not exist (bad input: nothing is made).
    #[error(
        "{}: the directory {} does not exist (a store is made only in a directory that exists: create it, or correct the path)",
        file.display(),
        dir.display()
    )]
    Missing {
        /// The store's file.
        file: PathBuf,
        /// Its directory, which does not exist.
        dir: PathBuf,
    },
    /// Sextant's own directory could not be made.
    #[error("cannot create {}: {cause}", dir.display())]
    Create {
        /// The directory.
        dir: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}

/// Readies the directory of the SQLite file `file` by the create-vs-open
/// rule: made when it is Sextant's own, else it must exist. Nothing else
/// is touched.
pub fn prepare_directory(file: &Path, whose: StoreDirectory) -> Result<(), DirectoryError> {
    let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    match whose {
        StoreDirectory::Own => {
            std::fs::create_dir_all(dir).map_err(|cause| DirectoryError::Create {
                dir: dir.to_path_buf(),
                cause,
            })
        }
        StoreDirectory::Named => Err(DirectoryError::Missing {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
    }
}

const ACCEPTED: &str = "give a file path, sqlite:PATH, or postgres://USER@HOST:PORT/DB";

impl Location {
    /// Reads `text`, which came from `source_name` (for the error).
    pub fn parse(text: &str, source_name: &str) -> Result<Self, BadLocation> {
        let bad = |why: String| BadLocation {
            source_name: source_name.into(),
            shown: redact(text),
            why,
        };
        if text.is_empty() {
            return Err(bad(format!("it is empty; {ACCEPTED}")));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => {
                    text.parse::<postgres::Config>().map_err(|e| {
                        // The driver's message quotes no part of the URL.
                        bad(format!("not a PostgreSQL URL ({e}); {ACCEPTED}"))
                    })?;
                    Ok(Self::Postgres(text.to_string()))
                }
                "sqlite" => match &text["sqlite://".len()..] {
                    "" => Err(bad(format!("no file after sqlite://; {ACCEPTED}"))),
                    path => Ok(Self::Sqlite(PathBuf::from(path))),
                },
                other => Err(bad(format!(
                    "unknown database scheme {other:?}; {ACCEPTED}"
                ))),
            };
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(bad(format!("no file after sqlite:; {ACCEPTED}")));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }

    /// The SQLite file, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }

    /// Readies a SQLite store's directory by the create-vs-open rule
    /// ([`prepare_directory`]); nothing to do for PostgreSQL.
    pub fn prepare_directory(&self, whose: StoreDirectory) -> Result<(), DirectoryError> {
        match self {
            Self::Sqlite(file) => prepare_directory(file, whose),
            Self::Postgres(_) => Ok(()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => p.display().fmt(f),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Self::Sqlite(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Self::Sqlite(p.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Self::Sqlite(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_postgresql_paths_select_sqlite_and_anything_else_is_refused() {
        let pg = "postgres://sextant@127.0.0.1:5432/db";
        assert_eq!(
            Location::parse(pg, "--db"),
            Ok(Location::Postgres(pg.into()))
        );
        let pg2 = "postgresql://u:pw@h/db";
        assert_eq!(
            Location::parse(pg2, "--db"),
            Ok(Location::Postgres(pg2.into()))
        );
        assert_eq!(
            Location::parse("/var/lib/s.db", "--db"),
            Ok(Location::Sqlite("/var/lib/s.db".into()))
        );
        assert_eq!(
            Location::parse("sqlite:rel/s.db", "--db"),
            Ok(Location::Sqlite("rel/s.db".into()))
        );
        assert_eq!(
            Location::parse("sqlite:///abs/s.db", "--db"),
            Ok(Location::Sqlite("/abs/s.db".into()))
        );
        for bad in [
            "mysql://u:hunter2@h/db",
            "",
            "sqlite:",
            "postgres://u:hunter2@h:notaport/db",
        ] {
            let e = Location::parse(bad, "SEXTANT_DB").expect_err(bad);
            let msg = e.to_string();
            assert!(msg.starts_with("SEXTANT_DB "), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        let e = Location::parse("mysql://u@h/db", "--db").expect_err("mysql");
        assert!(e.to_string().contains("\"mysql\""), "{e}");
    }

    #[test]
    fn only_sextants_own_directory_is_made_a_named_one_must_exist() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let own = tmp.path().join("data/sextant/sextant.db");
        assert!(prepare_directory(&own, StoreDirectory::Own).is_ok());
        assert!(tmp.path().join("data/sextant").is_dir());
        let named = tmp.path().join("typo/dir/x.db");
        match prepare_directory(&named, StoreDirectory::Named) {
            Err(DirectoryError::Missing { file, dir }) => {
                assert_eq!((file, dir), (named.clone(), tmp.path().join("typo/dir")));
            }
            other => panic!("{other:?}"),
        }
        assert!(!tmp.path().join("typo").exists());
        // A directory that exists, a bare file name, PostgreSQL: ready.
        for ready in [own.as_path(), Path::new("x.db")] {
            assert!(prepare_directory(ready, StoreDirectory::Named).is_ok());
        }
        let pg = Location::Postgres("postgres://u@h/db".into());
        assert!(pg.prepare_directory(StoreDirectory::Named).is_ok());
    }

    #[test]
    fn a_location_never_shows_its_password() {
        let l =
            Location::parse("postgres://u:hunter2@h:5/db?password=hunter2", "--db").expect("url");
        for shown in [
            l.to_string(),
            format!("{l:?}"),
            serde_json::to_string(&l).expect("json"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("postgres://u@h:5/db"), "{shown}");
        }
    }
}
