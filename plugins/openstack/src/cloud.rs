//! Which cloud, and how to reach it: `clouds.yaml` as OpenStack's own
//! clients read it.
//!
//! The file is `OS_CLIENT_CONFIG_FILE` when set, else the first of
//! `./clouds.yaml`, `~/.config/openstack/clouds.yaml` and
//! `/etc/openstack/clouds.yaml` that exists; the cloud is `OS_CLOUD`, else
//! the file's only cloud. Supported `auth_type`s: `password` and
//! `v3applicationcredential` (Keystone v3, service catalog, `region_name`,
//! `interface`), and `admin_token` (a fixed `auth.token`, endpoints from
//! `auth.endpoint` or the per-service `*_endpoint_override`, keystoneauth's
//! style for clouds without Keystone and for tests). `https://` endpoints
//! are verified against `cacert` (a PEM bundle) when set, else the web's
//! root certificates.
//!
//! The secrets read here (`password`, `token`, `application_credential_secret`)
//! are [`Secret`]s: their `Debug` prints `***`, and no error message
//! carries them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A secret string: never printed.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one header or body that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A secret from a string (tests, and tokens Keystone hands out).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A cloud could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// No clouds.yaml anywhere.
    #[error(
        "no clouds.yaml: set OS_CLIENT_CONFIG_FILE, or write ./clouds.yaml, \
         ~/.config/openstack/clouds.yaml or /etc/openstack/clouds.yaml"
    )]
    NoFile,
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file names no such cloud, or several and OS_CLOUD is unset.
    #[error("{path}: {message}")]
    Cloud {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The file's shape.
#[derive(Deserialize)]
struct CloudsFile {
    clouds: BTreeMap<String, CloudConfig>,
}

/// How a cloud authenticates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// Keystone v3 with a user name and password.
    Password,
    /// Keystone v3 with an application credential.
    #[serde(rename = "v3applicationcredential")]
    ApplicationCredential,
    /// A fixed token and fixed endpoints, no Keystone.
    AdminToken,
}

/// The `auth:` section.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Auth {
    /// Keystone's URL (password, application credential).
    pub auth_url: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// The user's domain, by name.
    pub user_domain_name: Option<String>,
    /// The user's domain, by id.
    pub user_domain_id: Option<String>,
    /// Project, by name.
    pub project_name: Option<String>,
    /// Project, by id.
    pub project_id: Option<String>,
    /// The project's domain, by name.
    pub project_domain_name: Option<String>,
    /// The project's domain, by id.
    pub project_domain_id: Option<String>,
    /// Application credential id.
    pub application_credential_id: Option<String>,
    /// Application credential secret.
    pub application_credential_secret: Option<Secret>,
    /// admin_token: the token.
    pub token: Option<Secret>,
    /// admin_token: the one endpoint of every service, when no
    /// `*_endpoint_override` names another.
    pub endpoint: Option<String>,
}

/// One cloud of clouds.yaml.
#[derive(Clone, Debug, Deserialize)]
pub struct CloudConfig {
    /// How it authenticates; `password` by default, as keystoneauth.
    #[serde(default = "password")]
    pub auth_type: AuthType,
    /// Credentials.
    #[serde(default)]
    pub auth: Auth,
    /// Region of the endpoints taken from the catalog.
    pub region_name: Option<String>,
    /// Interface of the endpoints taken from the catalog (`public` by default).
    pub interface: Option<String>,
    /// Nova's endpoint, instead of the catalog's.
    pub compute_endpoint_override: Option<String>,
    /// Placement's endpoint, instead of the catalog's.
    pub placement_endpoint_override: Option<String>,
    /// Cinder's v3 endpoint, instead of the catalog's (openstacksdk's
    /// `block_storage_endpoint_override`; `volumev3_endpoint_override`,
    /// os-client-config's older name, is taken too).
    #[serde(alias = "volumev3_endpoint_override")]
    pub block_storage_endpoint_override: Option<String>,
    /// A CA bundle for https endpoints.
    pub cacert: Option<PathBuf>,
}

fn password() -> AuthType {
    AuthType::Password
}

/// The cloud chosen, and where it was read from.
#[derive(Clone, Debug)]
pub struct Cloud {
    /// Its name in the file.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// What the file says about it.
    pub config: CloudConfig,
}

/// The clouds.yaml in use: `OS_CLIENT_CONFIG_FILE`, else the standard
/// locations.
pub fn clouds_file() -> Result<PathBuf, CloudError> {
    if let Some(p) = std::env::var_os("OS_CLIENT_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from("clouds.yaml")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".config/openstack/clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(CloudError::NoFile)
}

/// The cloud `OS_CLOUD` names in the clouds.yaml in use.
pub fn load() -> Result<Cloud, CloudError> {
    let file = clouds_file()?;
    let name = std::env::var("OS_CLOUD").ok().filter(|s| !s.is_empty());
    load_from(&file, name.as_deref())
}

/// The cloud `name` (or the only one) of `file`.
pub fn load_from(file: &Path, name: Option<&str>) -> Result<Cloud, CloudError> {
    let read = |message: String| CloudError::Read {
        path: file.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| read(e.to_string()))?;
    // serde_yaml_ng's messages quote no values, only positions and keys.
    let parsed: CloudsFile = serde_yaml_ng::from_str(&text).map_err(|e| read(e.to_string()))?;
    let cloud_err = |message: String| CloudError::Cloud {
        path: file.to_path_buf(),
        message,
    };
    let (name, config) = match name {
        Some(n) => match parsed.clouds.get(n) {
            Some(c) => (n.to_string(), c.clone()),
            None => {
                return Err(cloud_err(format!(
                    "no cloud named {n:?} (OS_CLOUD); it has {}",
                    parsed.clouds.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        },
        None if parsed.clouds.len() == 1 => {
            let (n, c) = parsed
                .clouds
                .iter()
                .next()
                .ok_or_else(|| cloud_err("no cloud".into()))?;
            (n.clone(), c.clone())
        }
        None => {
            return Err(cloud_err(format!(
                "{} clouds and OS_CLOUD is not set",
                parsed.clouds.len()
            )));
        }
    };
    Ok(Cloud {
        name,
        file: file.to_path_buf(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("clouds.yaml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn reads_password_cloud_and_hides_the_password() {
        let (_d, p) = write(
            "clouds:\n  prod:\n    region_name: RegionOne\n    auth:\n      auth_url: https://keystone:5000/v3\n      username: sextant\n      password: hunter2\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n  other:\n    auth_type: admin_token\n    auth: {token: t, endpoint: 'http://x'}\n",
        );
        let c = load_from(&p, Some("prod")).unwrap();
        assert_eq!(c.config.auth_type, AuthType::Password);
        assert_eq!(c.config.region_name.as_deref(), Some("RegionOne"));
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(c.config.auth.password.as_ref().unwrap().expose(), "hunter2");
    }

    #[test]
    fn several_clouds_need_os_cloud_and_an_unknown_one_is_named() {
        let (_d, p) =
            write("clouds:\n  a: {auth_type: admin_token}\n  b: {auth_type: admin_token}\n");
        let e = load_from(&p, None).unwrap_err().to_string();
        assert!(e.contains("2 clouds and OS_CLOUD is not set"), "{e}");
        let e = load_from(&p, Some("c")).unwrap_err().to_string();
        assert!(
            e.contains("no cloud named \"c\"") && e.contains("a, b"),
            "{e}"
        );
        assert!(load_from(&p, Some("b")).is_ok());
    }

    #[test]
    fn a_bad_auth_type_names_the_file() {
        let (_d, p) = write("clouds:\n  a: {auth_type: kerberos}\n");
        let e = load_from(&p, None).unwrap_err().to_string();
        assert!(e.contains("clouds.yaml") && e.contains("kerberos"), "{e}");
    }
}
