//! Where a store lives, as an operator writes it: `sqlite:PATH`, a plain
//! path (SQLite), or a `postgres://` / `postgresql://` URL. A URL is never
//! taken for a file path: any other `SCHEME://` is refused. Shown with the
//! password left out ([`super::pg::redact`]).
//!
//! Also the schema migration of a whole database (`sextant db migrate`):
//! from which version to which.

use super::pg::{PgStore, redact};
use super::{Result, SqliteStore, StoreError, schema};
use std::path::{Path, PathBuf};

/// A database a command reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL (which may hold a password: never
    /// print it; [`DbLocation::to_string`] leaves it out).
    Postgres(String),
}

/// A location that is none of the forms above.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// A URL of a database Sextant does not know.
    #[error(
        "{0}: not a database Sextant knows (give sqlite:PATH, a path, or postgres://USER@HOST:PORT/DB)"
    )]
    UnknownScheme(String),
    /// `sqlite:` with nothing after it.
    #[error("sqlite: needs a path (sqlite:PATH)")]
    EmptyPath,
    /// Not UTF-8 where a URL was expected.
    #[error("{0}: a database location must be UTF-8")]
    NotUtf8(String),
}

impl DbLocation {
    /// Parses an operator's location.
    pub fn parse(text: &str) -> std::result::Result<Self, LocationError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(LocationError::EmptyPath);
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(LocationError::UnknownScheme(redact(text)));
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }

    /// The location in a path-typed option (`--db`), as [`DbLocation::parse`]
    /// reads it.
    pub fn from_path(path: &Path) -> std::result::Result<Self, LocationError> {
        match path.to_str() {
            Some(text) => Self::parse(text),
            // Not UTF-8: a file name (no URL is), unless it looks like one.
            None if path.to_string_lossy().contains("://") => {
                Err(LocationError::NotUtf8(path.to_string_lossy().into_owned()))
            }
            None => Ok(Self::Sqlite(path.to_path_buf())),
        }
    }

    /// The schema version of the database, read without changing anything
    /// (0 for a database no Sextant has written, or an SQLite file that
    /// does not exist).
    pub fn schema_version(&self) -> Result<i64> {
        match self {
            Self::Sqlite(path) => super::copy_sqlite::schema_version_of(path),
            Self::Postgres(url) => {
                let mut client = super::copy_pg::connect(url)?;
                super::copy_pg::schema_version(&mut client, &redact(url))
            }
        }
    }
}

impl std::fmt::Display for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// The newest schema version this Sextant knows.
pub fn newest_schema_version() -> i64 {
    schema::MIGRATIONS.len() as i64
}

/// What [`migrate`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migration {
    /// The database, without its password.
    pub database: String,
    /// Its schema version before.
    pub from: i64,
    /// Its schema version now (this Sextant's newest).
    pub to: i64,
}

/// Migrates the database at `location` to this Sextant's newest schema
/// (creating an SQLite file that does not exist). A database at a newer
/// version is refused ([`StoreError::TooNew`]) before anything is written;
/// one already at the newest is left as it is.
pub fn migrate(location: &DbLocation) -> Result<Migration> {
    let known = newest_schema_version();
    let from = location.schema_version()?;
    if from > known {
        return Err(StoreError::TooNew {
            path: PathBuf::from(location.to_string()),
            found: from,
            known,
        });
    }
    let to = match location {
        DbLocation::Sqlite(path) => SqliteStore::open(path)?.schema_version()?,
        DbLocation::Postgres(url) => PgStore::open(url)?.schema_version()?,
    };
    Ok(Migration {
        database: location.to_string(),
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_as_an_operator_writes_them() {
        assert_eq!(
            DbLocation::parse("sqlite:/var/lib/s.db").ok(),
            Some(DbLocation::Sqlite("/var/lib/s.db".into()))
        );
        assert_eq!(
            DbLocation::parse("relative/s.db").ok(),
            Some(DbLocation::Sqlite("relative/s.db".into()))
        );
        assert_eq!(
            DbLocation::parse("postgresql://u@h:5/d").ok(),
            Some(DbLocation::Postgres("postgresql://u@h:5/d".into()))
        );
        assert!(matches!(
            DbLocation::parse("sqlite:"),
            Err(LocationError::EmptyPath)
        ));
        // A URL is never a file path, and its password is never shown.
        let e = DbLocation::parse("mysql://root:hunter2@h/d")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("mysql://root@h/d") && !e.contains("hunter2"),
            "{e}"
        );
        // A colon in a file name is still a file name.
        assert_eq!(
            DbLocation::parse("a:b.db").ok(),
            Some(DbLocation::Sqlite("a:b.db".into()))
        );
    }

    #[test]
    fn a_location_is_shown_without_its_password() {
        let l = DbLocation::Postgres("postgres://u:pw@h:5432/d".into());
        assert_eq!(l.to_string(), "postgres://u@h:5432/d");
        let l = DbLocation::Sqlite("/x/s.db".into());
        assert_eq!(l.to_string(), "sqlite:/x/s.db");
    }
}
