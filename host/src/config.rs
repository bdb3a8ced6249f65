//! The config file: where it is, and what it may say.
//!
//! Looked up as `--config FILE`, else `SEXTANT_CONFIG`, else
//! `$XDG_CONFIG_HOME/sextant/config.yaml` (`~/.config/sextant/config.yaml`).
//! A file named explicitly must exist; the default one may be absent. Every
//! key is optional; an unknown key is an error naming the file, line and
//! column. Relative paths are relative to the file's directory.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named explicitly does not exist, cannot be read, or is
    /// larger than [`MAX_DEFINITION_BYTES`](crate::input::MAX_DEFINITION_BYTES).
    #[error("config file {0}")]
    Read(crate::input::ReadError),
    /// The file is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// The parsed config file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database, when neither `--db` nor `SEXTANT_DB` names one: a
    /// SQLite file (a path, or `sqlite:PATH`) or a PostgreSQL database
    /// (`postgres://USER@HOST:PORT/DB`); see docs/postgresql.md.
    /// Its password never shows (`Debug`, `Display`).
    #[serde(default)]
    pub database: Option<SecretUrl>,
    /// Extra plugin directories, searched after `SEXTANT_PLUGIN_PATH`.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Extra action-type directories, searched after `SEXTANT_ACTION_TYPE_PATH`.
    #[serde(default)]
    pub action_type_dirs: Vec<PathBuf>,
    /// Let an action type replace a built-in type (from the installation's
    /// `action-types/`) of the same name and version with other content;
    /// refused when `false`, the default.
    #[serde(default)]
    pub allow_shadowing_builtin_types: bool,
    /// The action-mapper entry that maps action types to handlers.
    #[serde(default = "default_mapper")]
    pub mapper: String,
    /// Drivers whose `<driver>.<action>` handlers the default mapper tries.
    #[serde(default = "default_drivers")]
    pub drivers: Vec<String>,
    /// The collector entry that builds the cluster model for audits.
    #[serde(default = "default_collector")]
    pub collector: String,
    /// Notification sinks: `{type: log}`, `{type: jsonl, path}`,
    /// `{type: webhook, url, retries?, timeout?, queue?}`.
    #[serde(default)]
    pub notifications: Vec<crate::notify::Sink>,
    /// How long a stopping `serve` (SIGTERM, SIGINT) waits for the running
    /// actions it cannot abort before it leaves them to the next resume:
    /// `30s` (the default), `2m`, or seconds.
    #[serde(default, deserialize_with = "grace_period")]
    pub grace_period: Option<std::time::Duration>,
    /// The REST API that `serve` runs (Watcher's v1): `{listen, auth,
    /// tokens, max_limit, max_body, timeout, concurrency, concurrency_while_applying, workers}`; absent: no API
    /// (unless `serve --api ADDR`).
    #[serde(default)]
    pub api: Option<crate::api::ApiConfig>,
    /// Metrics: where audits read usage metrics from (`source: prometheus`,
    /// `url`, …) and where `serve` exposes its own (`listen`).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// This host's id among the `serve` hosts of one database
    /// (docs/fleet.md); overridden by `serve --host-id` and
    /// `SEXTANT_HOST_ID`; default: the hostname.
    #[serde(default)]
    pub host_id: Option<String>,
    /// What `serve` runs: `[decision, applier]` (the default), or one of
    /// them; overridden by `serve --roles`.
    #[serde(default)]
    pub roles: Option<Vec<crate::states::Role>>,
    /// How old a service's heartbeat may be before it is FAILED: `90s`
    /// (Watcher's `service_down_time`, the default), `2m`, or seconds.
    #[serde(default, deserialize_with = "service_down_time")]
    pub service_down_time: Option<std::time::Duration>,
    /// How many actions this host runs at once, at most, over every plan
    /// it applies (default 64): it claims a plan only while it has room,
    /// and gives it at most what is left.
    #[serde(default)]
    pub max_concurrent_actions: Option<std::num::NonZeroUsize>,
    /// The simulated cloud (`sim:`): where its state is.
    #[serde(default)]
    pub sim: SimConfig,
    /// The file this config was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The `metrics:` mapping: a metrics source for audits (Watcher's
/// `[prometheus_client]` options) and the listener of `serve`'s own metrics.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where audits read `host_cpu_usage`, `host_ram_usage`,
    /// `instance_cpu_usage` and `instance_ram_usage` from; absent: from the
    /// collector (the simulated cloud's snapshot).
    #[serde(default)]
    pub source: Option<SourceKind>,
    /// The source's base URL (`http://127.0.0.1:9090`, `https://…`).
    #[serde(default)]
    pub url: Option<String>,
    /// The label naming a host (its value is the hypervisor hostname).
    #[serde(default = "default_fqdn_label")]
    pub fqdn_label: String,
    /// The label naming an instance (its value is the instance uuid).
    #[serde(default = "default_uuid_label")]
    pub instance_uuid_label: String,
    /// The audit period metrics are aggregated over when the strategy's
    /// parameters give none (`period`, `periods`): 300s by default.
    #[serde(default = "default_period")]
    pub period: crate::duration::BoundedDuration,
    /// The aggregate when the strategy's parameters give none
    /// (`aggregation_method`): `mean` (default), `max`, `min`, `count`.
    #[serde(default)]
    pub aggregate: crate::datasource::Aggregate,
    /// Basic auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// PEM CA certificates to verify an `https://` source with (default:
    /// the Mozilla roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM client key (with `cert_file`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// How long one query may take: 30s by default.
    #[serde(default = "default_metrics_timeout")]
    pub timeout: crate::duration::BoundedDuration,
    /// How many times a query is tried again when the source cannot be
    /// reached, times out or answers 5xx or 429 (Watcher's
    /// `query_max_retries`): 2 by default, at most 100.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// How long to wait before trying again (Watcher's `query_interval`):
    /// 1s by default.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: crate::duration::BoundedDuration,
    /// Where `serve` exposes its own metrics (`GET /metrics`), e.g.
    /// `127.0.0.1:9464`; `serve --metrics ADDR` overrides it.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
}

/// The kinds of metrics source.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Prometheus' HTTP API, with Watcher's queries.
    Prometheus,
}

impl SourceKind {
    /// Its name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Prometheus => "prometheus",
        }
    }
}

/// A secret from the config file (a password): shown as `***` by
/// `Debug`, `Display` and `Serialize`.
pub use crate::notify::secret::Secret;
/// A URL or database location from the config file that may hold a
/// password: shown without it.
pub use crate::notify::secret::SecretUrl;

fn default_fqdn_label() -> String {
    "fqdn".into()
}
fn default_uuid_label() -> String {
    "resource".into()
}
fn default_period() -> crate::duration::BoundedDuration {
    crate::duration::BoundedDuration(std::time::Duration::from_secs(300))
}
fn default_retries() -> u32 {
    2
}
fn default_retry_interval() -> crate::duration::BoundedDuration {
    crate::duration::BoundedDuration(std::time::Duration::from_secs(1))
}
fn default_metrics_timeout() -> crate::duration::BoundedDuration {
    crate::duration::BoundedDuration(std::time::Duration::from_secs(30))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            source: None,
            url: None,
            fqdn_label: default_fqdn_label(),
            instance_uuid_label: default_uuid_label(),
            period: default_period(),
            aggregate: Default::default(),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            timeout: default_metrics_timeout(),
            retries: default_retries(),
            retry_interval: default_retry_interval(),
            listen: None,
        }
    }
}

impl MetricsConfig {
    /// What is inconsistent: a source without a `url`, a `url` that is not
    /// http(s), a client certificate without its key.
    fn check(&self) -> Result<(), String> {
        if let Some(kind) = self.source {
            match self.url.as_deref() {
                None => {
                    return Err(format!(
                        "metrics: source {} needs a url (http://HOST:PORT)",
                        kind.as_str()
                    ));
                }
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    return Err(format!("metrics: url {u:?} is not http:// or https://"));
                }
                // The URL goes into error messages: no credentials in it.
                Some(u)
                    if u.split_once("://")
                        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
                        .is_some_and(|authority| authority.contains('@')) =>
                {
                    return Err(
                        "metrics: url must not carry credentials: use username and password".into(),
                    );
                }
                _ => {}
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("metrics: cert_file and key_file go together".into());
        }
        if self.retries > 100 {
            return Err(format!("metrics: retries {} is over 100", self.retries));
        }
        if self.retry_interval.0 > std::time::Duration::from_secs(3600) {
            return Err("metrics: retry_interval is over an hour".into());
        }
        if self.password.is_some() && self.username.is_none() {
            return Err("metrics: a password needs a username".into());
        }
        Ok(())
    }
}

/// The `sim:` mapping.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The simulated cloud's state: a SQLite file (a path, relative to the
    /// config's directory, or `sqlite:PATH`) or a PostgreSQL database
    /// (`postgres://USER@HOST:PORT/DB`); absent: where the store is (the
    /// store's PostgreSQL database, or `sim.db` beside its SQLite file).
    /// Its password never shows (`Debug`, `Display`).
    #[serde(default, deserialize_with = "sim_db")]
    pub sim_db: Option<SecretUrl>,
}

/// `sim_db:` must name a database as `database:` does (checked with the
/// same rules; the message shows no password).
fn sim_db<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretUrl>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    crate::store::Location::parse(&text, "sim_db").map_err(serde::de::Error::custom)?;
    Ok(Some(SecretUrl::new(&text)))
}

fn default_mapper() -> String {
    "default".into()
}

fn default_collector() -> String {
    "sim".into()
}

fn default_drivers() -> Vec<String> {
    vec!["sim".into()]
}

impl Default for Config {
    fn default() -> Self {
        Self {
            plugin_dirs: Vec::new(),
            action_type_dirs: Vec::new(),
            allow_shadowing_builtin_types: false,
            mapper: default_mapper(),
            drivers: default_drivers(),
            collector: default_collector(),
            notifications: Vec::new(),
            grace_period: None,
            api: None,
            metrics: MetricsConfig::default(),
            database: None,
            host_id: None,
            roles: None,
            service_down_time: None,
            max_concurrent_actions: None,
            sim: SimConfig::default(),
            source: None,
        }
    }
}

/// The longest grace period: a day.
const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(86_400);

fn grace_period<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    day_at_most(d, "grace_period")
}

/// A duration of at most a day: seconds, or text (`30s`, `2m`).
fn day_at_most<'de, D: serde::Deserializer<'de>>(
    d: D,
    field: &str,
) -> Result<Option<std::time::Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(f64),
        Text(String),
    }
    let text = match Text::deserialize(d)? {
        Text::Seconds(s) => s.to_string(),
        Text::Text(t) => t,
    };
    let grace = crate::policy::duration(&text).map_err(serde::de::Error::custom)?;
    if grace > MAX_GRACE {
        return Err(serde::de::Error::custom(format!(
            "{field} {text:?} is over a day"
        )));
    }
    Ok(Some(grace))
}

/// A host's `max_concurrent_actions` unless configured.
pub const DEFAULT_MAX_CONCURRENT_ACTIONS: usize = 64;

/// Watcher's `service_down_time`: a service whose heartbeat is older is
/// FAILED.
pub const DEFAULT_SERVICE_DOWN_TIME: std::time::Duration = std::time::Duration::from_secs(90);

fn service_down_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let Some(t) = day_at_most(d, "service_down_time")? else {
        return Ok(None);
    };
    if t.is_zero() {
        return Err(serde::de::Error::custom(
            "service_down_time must be more than 0s",
        ));
    }
    Ok(Some(t))
}

/// The data directory: `$XDG_DATA_HOME/sextant`, else
/// `~/.local/share/sextant`, else `./.sextant`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("sextant"))
        .unwrap_or_else(|| PathBuf::from(".sextant"))
}

impl Config {
    /// Loads the config file named by `explicit`, else `SEXTANT_CONFIG`,
    /// else the default location (absent: defaults).
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(p) = explicit {
            return Self::from_file(p);
        }
        if let Some(p) = std::env::var_os("SEXTANT_CONFIG") {
            return Self::from_file(Path::new(&p));
        }
        match default_path() {
            Some(p) if p.exists() => Self::from_file(&p),
            _ => Ok(Self::default()),
        }
    }

    /// Parses one file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            crate::input::read_text(path, crate::input::MAX_DEFINITION_BYTES, "a config file")
                .map_err(ConfigError::Read)?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names it in errors and anchors relative dirs.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        if let Some(t) = crate::input::find_unknown_tag(text) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("line {} column {}: {t}", t.line, t.column),
            });
        }
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: yaml_error_message(&e),
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for d in cfg
            .plugin_dirs
            .iter_mut()
            .chain(cfg.action_type_dirs.iter_mut())
        {
            *d = resolve_dir(d, base);
        }
        for f in [
            &mut cfg.metrics.ca_file,
            &mut cfg.metrics.cert_file,
            &mut cfg.metrics.key_file,
        ]
        .into_iter()
        .flatten()
        {
            *f = resolve_dir(f, base);
        }
        for sink in &mut cfg.notifications {
            if let crate::notify::Sink::Amqp {
                ca_file: Some(f), ..
            } = sink
            {
                *f = resolve_dir(f, base);
                check_pem_file(f).map_err(|message| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("notifications: an amqp sink's ca_file {message}"),
                })?;
            }
        }
        cfg.metrics
            .check()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }
}

/// A file that can be read and holds a PEM certificate, or what is wrong
/// with it (naming it).
fn check_pem_file(f: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{}: no PEM certificate in it", f.display()));
    }
    Ok(())
}

/// `~/x` is under `$HOME`; other relative paths are under `base`.
pub(crate) fn resolve_dir(d: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = d.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if d.is_relative() {
        base.join(d)
    } else {
        d.to_path_buf()
    }
}

/// `line L column C: message`, from a serde_yaml_ng error (line 1
/// column 1, the document, when the parser knows no place).
pub fn yaml_error_message(e: &serde_yaml_ng::Error) -> String {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let msg = e.to_string();
    // serde_yaml_ng appends " at line L column C"; keep one copy.
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    format!("line {line} column {column}: {msg}")
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("sextant").join("config.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_settings_are_read_and_bad_ones_named() {
        let c = Config::parse(
            "host_id: ctl-1\nroles: [applier]\nservice_down_time: 2m\nmax_concurrent_actions: 8\n",
            Path::new("c.yaml"),
        )
        .expect("valid");
        assert_eq!(c.host_id.as_deref(), Some("ctl-1"));
        assert_eq!(c.roles, Some(vec![crate::states::Role::Applier]));
        assert_eq!(
            c.service_down_time,
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(c.max_concurrent_actions.map(|n| n.get()), Some(8));
        for (text, says) in [
            ("roles: [judge]\n", "judge"),
            (
                "service_down_time: 0s\n",
                "service_down_time must be more than 0s",
            ),
            (
                "service_down_time: 2d\n",
                "service_down_time \"2d\" is over a day",
            ),
            ("max_concurrent_actions: 0\n", "line 1"),
        ] {
            let err = Config::parse(text, Path::new("c.yaml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.yaml") && err.contains(says),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn the_sim_location_is_read_and_a_bad_one_named_without_its_password() {
        let c = Config::parse(
            "sim:\n  sim_db: postgres://u:pw@h:5432/sim\n",
            Path::new("c.yaml"),
        )
        .expect("valid");
        assert_eq!(
            c.sim.sim_db.as_ref().map(SecretUrl::expose),
            Some("postgres://u:pw@h:5432/sim")
        );
        assert_eq!(Config::default().sim.sim_db, None);
        for (text, says) in [
            ("sim:\n  sim_db: mysql://u:hunter2@h/db\n", "\"mysql\""),
            ("sim:\n  sim_db: \"\"\n", "it is empty"),
            ("sim:\n  sim_file: x\n", "sim_file"),
        ] {
            let err = Config::parse(text, Path::new("c.yaml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.yaml") && err.contains("line 2") && err.contains(says),
                "{text}: {err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    /// A config holding every kind of secret a config can hold, each a
    /// distinct word: the database's and the simulated cloud's passwords
    /// (in the user info and a `password=` parameter), the AMQP and
    /// webhook sinks' URL passwords, Keystone's service password and the
    /// metrics source's basic-auth password.
    pub(crate) const EVERY_SECRET: &[&str] = &[
        "dbpass1", "dbpass2", "simpass1", "simpass2", "amqppass", "hookpass", "kspass", "prompass",
    ];

    pub(crate) const CONFIG_WITH_EVERY_SECRET: &str = "\
database: 'postgres://sextant:dbpass1@127.0.0.1:5432/sextant?password=dbpass2'
sim:
  sim_db: 'postgresql://sim:simpass1@127.0.0.1:5432/sim?sslmode=disable&password=simpass2'
notifications:
  - {type: amqp, url: 'amqp://watcher:amqppass@127.0.0.1:5672/'}
  - {type: webhook, url: 'http://hook:hookpass@127.0.0.1:9/events'}
api:
  auth: keystone
  keystone: {auth_url: 'http://127.0.0.1:5000/v3', username: watcher, password: kspass, project_name: service}
metrics: {source: prometheus, url: 'http://127.0.0.1:9090', username: prom, password: prompass}
";

    #[test]
    fn a_config_shows_none_of_its_secrets_when_printed_whole() {
        let c = Config::parse(CONFIG_WITH_EVERY_SECRET, Path::new("c.yaml")).expect("valid");
        let shown = format!("{c:?}\n{c:#?}");
        for secret in EVERY_SECRET {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
        // What is not secret still shows, and the secrets are all there
        // for the clients that send them.
        assert!(
            shown.contains("postgres://sextant:***@127.0.0.1:5432/sextant?password=***"),
            "{shown}"
        );
        assert!(
            shown.contains("watcher") && shown.contains("prom"),
            "{shown}"
        );
        assert_eq!(
            c.database.as_ref().map(SecretUrl::expose),
            Some("postgres://sextant:dbpass1@127.0.0.1:5432/sextant?password=dbpass2")
        );
        assert_eq!(
            c.metrics.password.as_ref().map(|p| p.expose().as_str()),
            Some("prompass")
        );
        let ks = c.api.as_ref().and_then(|a| a.keystone.as_ref());
        assert_eq!(
            ks.and_then(|k| k.password.as_ref())
                .map(|p| p.expose().as_str()),
            Some("kspass")
        );
    }

    /// A static API token's SHA-256 is what the API compares a caller's
    /// token's hash with: as good as a password to someone who can find a
    /// token of that hash offline (a short one), and not for logs. A
    /// config printed whole shows the token's name and roles, never its
    /// hash; the API still has it.
    #[test]
    fn a_config_shows_no_api_token_hash_when_printed_whole() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let c = Config::parse(
            &format!(
                "api: {{auth: tokens, tokens: [{{name: ops-team, sha256: '{hash}', roles: [admin]}}]}}\n"
            ),
            Path::new("c.yaml"),
        )
        .expect("valid");
        let shown = format!("{c:?}\n{c:#?}");
        assert!(!shown.contains(hash), "the hash shows in {shown}");
        assert!(
            !shown.contains(&hash.to_ascii_uppercase()) && !shown.contains(&hash[..16]),
            "{shown}"
        );
        assert!(
            shown.contains("ops-team") && shown.contains("admin"),
            "{shown}"
        );
        let tokens = &c.api.as_ref().expect("api").tokens;
        assert_eq!(tokens[0].sha256.expose(), hash);
        assert_eq!(tokens[0].check(), Ok(()));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let err = Config::parse("plugin_dirs: [a]\nplugn_dir: b\n", Path::new("/etc/s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/s.yaml: line 2 column 1"), "{err}");
        assert!(err.contains("plugn_dir"), "{err}");
    }

    #[test]
    fn metrics_source_settings_are_checked_and_the_password_is_not_shown() {
        let c = Config::parse(
            "metrics: {source: prometheus, url: 'http://127.0.0.1:9090', username: u, password: hunter2, ca_file: ca.pem, period: 10m, aggregate: max, listen: '127.0.0.1:9464'}\n",
            Path::new("/etc/sextant/c.yaml"),
        )
        .expect("valid");
        assert_eq!(c.metrics.source, Some(SourceKind::Prometheus));
        assert_eq!(
            c.metrics.ca_file,
            Some(PathBuf::from("/etc/sextant/ca.pem"))
        );
        assert_eq!(c.metrics.period.0, std::time::Duration::from_secs(600));
        assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9464));
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = Config::parse("metrics: {source: prometheus}\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a url"), "{err}");
        let err = Config::parse(
            "metrics: {source: prometheus, url: 'http://u:hunter2@h:9090/'}\n",
            Path::new("c.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("must not carry credentials") && !err.contains("hunter2"),
            "{err}"
        );
        let err = Config::parse(
            "metrics: {source: gnocchi, url: 'http://x'}\n",
            Path::new("c.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 1") && err.contains("gnocchi"), "{err}");
    }

    #[test]
    fn tilde_means_home() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let got = resolve_dir(Path::new("~/p"), Path::new("/etc"));
        match home {
            Some(h) => assert_eq!(got, h.join("p")),
            None => assert_eq!(got, PathBuf::from("/etc/~/p")),
        }
    }

    #[test]
    fn an_amqp_ca_file_is_anchored_at_the_file_and_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("config.yaml");
        let text = "notifications:\n  - {type: amqp, url: 'amqps://u:p@h/', ca_file: ca.pem}\n";
        let e = Config::parse(text, &file).unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().join("ca.pem").display().to_string()) && e.contains("ca_file"),
            "{e}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").expect("write");
        let e = Config::parse(text, &file).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::write(
            dir.path().join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let c = Config::parse(text, &file).expect("valid");
        let crate::notify::Sink::Amqp { ca_file, .. } = &c.notifications[0] else {
            panic!("{:?}", c.notifications)
        };
        assert_eq!(
            ca_file.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
    }

    #[test]
    fn relative_dirs_are_anchored_at_the_file() {
        let c = Config::parse("plugin_dirs: [p, /abs]\n", Path::new("/etc/sextant/c.yaml"))
            .expect("valid");
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/etc/sextant/p"), PathBuf::from("/abs")]
        );
        assert!(
            Config::parse("", Path::new("x"))
                .expect("empty is valid")
                .plugin_dirs
                .is_empty()
        );
    }
}
