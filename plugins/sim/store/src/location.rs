//! Where the simulated cloud's state is: a SQLite file (`sim.db`, a path
//! or `sqlite:PATH`) or a PostgreSQL database (`postgres://…`), where it
//! lives in a schema of its own (`sextant_sim`) beside the store's tables.
//!
//! A location shows (Display, Debug, Serialize) without any password;
//! [`SimLocation::connection_text`] is the one way to the full URL, for the
//! driver alone.

use std::path::{Path, PathBuf};

/// Where the simulated cloud is.
#[derive(Clone, PartialEq, Eq)]
pub enum SimLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (with its password, if any).
    Postgres(String),
}

impl SimLocation {
    /// Reads a location as the host passes it (`sim_db` in the driver
    /// config) or as an operator writes it (`sim: {sim_db: …}`): a
    /// `postgres://` or `postgresql://` URL, `sqlite:PATH`, or a path.
    pub fn parse(text: &str) -> Self {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Self::Postgres(text.to_string());
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        Self::Sqlite(PathBuf::from(path))
    }

    /// The SQLite file, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }

    /// The text that reopens this location, password included: what the
    /// host hands the `sim` plugin in memory, never to be shown or stored.
    pub fn connection_text(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(url) => url.clone(),
        }
    }
}

/// `postgres://USER@HOST:PORT/DB` built from the parsed URL, so that no
/// password (in the user info or a `password=` parameter) can show; a URL
/// the driver cannot read shows as its scheme only.
fn shown_url(url: &str) -> String {
    let Ok(c) = url.parse::<postgres::Config>() else {
        return "postgres://(unreadable URL)".into();
    };
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = c
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    format!(
        "postgres://{user}{host}{port}/{}",
        c.get_dbname().unwrap_or("")
    )
}

impl std::fmt::Display for SimLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => p.display().fmt(f),
            Self::Postgres(url) => f.write_str(&shown_url(url)),
        }
    }
}

impl std::fmt::Debug for SimLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimLocation({self})")
    }
}

impl serde::Serialize for SimLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<&Path> for SimLocation {
    fn from(p: &Path) -> Self {
        Self::Sqlite(p.to_path_buf())
    }
}

impl From<PathBuf> for SimLocation {
    fn from(p: PathBuf) -> Self {
        Self::Sqlite(p)
    }
}

impl From<&PathBuf> for SimLocation {
    fn from(p: &PathBuf) -> Self {
        Self::Sqlite(p.clone())
    }
}

impl From<&SimLocation> for SimLocation {
    fn from(l: &SimLocation) -> Self {
        l.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgresql_anything_else_a_file_and_no_password_shows() {
        let url = "postgresql://u:hunter2@127.0.0.1:5433/prod?password=hunter2";
        let l = SimLocation::parse(url);
        assert_eq!(l, SimLocation::Postgres(url.into()));
        for shown in [
            l.to_string(),
            format!("{l:?}"),
            serde_json::to_string(&l).expect("json"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("postgres://u@127.0.0.1:5433/prod"),
                "{shown}"
            );
        }
        assert_eq!(l.connection_text(), url);
        assert_eq!(
            SimLocation::parse("sqlite:/x/sim.db"),
            SimLocation::Sqlite("/x/sim.db".into())
        );
        assert_eq!(
            SimLocation::parse("rel/sim.db"),
            SimLocation::Sqlite("rel/sim.db".into())
        );
    }
}
