//! `sextant db migrate`: a whole database's schema brought to this
//! Sextant's newest version, saying from which version to which; and the
//! schema version of a database read without changing it (for `db copy`'s
//! checks).

use super::location::Location;
use super::pg::{PgStore, redact};
use super::{Result, SqliteStore, StoreError, schema};
use std::path::PathBuf;

/// The newest schema version this Sextant knows.
pub fn newest_schema_version() -> i64 {
    schema::MIGRATIONS.len() as i64
}

/// The schema version of the database at `location`, read without
/// changing anything (0 for a database no Sextant has written, or an
/// SQLite file that does not exist).
pub fn schema_version(location: &Location) -> Result<i64> {
    match location {
        Location::Sqlite(path) => super::copy_sqlite::schema_version_of(path),
        Location::Postgres(url) => {
            let mut client = super::copy_pg::connect(url)?;
            super::copy_pg::schema_version(&mut client, &redact(url))
        }
    }
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
pub fn migrate(location: &Location) -> Result<Migration> {
    let known = newest_schema_version();
    let from = schema_version(location)?;
    if from > known {
        return Err(StoreError::TooNew {
            path: PathBuf::from(location.to_string()),
            found: from,
            known,
        });
    }
    let to = match location {
        Location::Sqlite(path) => SqliteStore::open(path)?.schema_version()?,
        Location::Postgres(url) => PgStore::open(url)?.schema_version()?,
    };
    Ok(Migration {
        database: location.to_string(),
        from,
        to,
    })
}
