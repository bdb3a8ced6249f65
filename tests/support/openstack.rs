//! A test home for the OpenStack driver (tests/openstack.rs against Nova
//! and Placement, tests/openstack_cinder.rs against Cinder): its config
//! selects the driver, its clouds.yaml holds one cloud, `test`, and
//! [`os_cmd`] runs `sextant` on that cloud.

use crate::{Home, write_file};
use std::process::Command;

/// A home whose config selects the OpenStack driver (`collector:
/// openstack`, `drivers: [openstack]`), with `os/clouds.yaml` whose cloud
/// `test` is `cloud`: its lines, each indented by four spaces.
pub fn openstack_home(cloud: &str) -> Home {
    let home = Home::new();
    write_file(
        &home.path().join("config/sextant"),
        "config.yaml",
        "collector: openstack\ndrivers: [openstack]\n",
    );
    write_file(
        &home.path().join("os"),
        "clouds.yaml",
        &format!("clouds:\n  test:\n{cloud}"),
    );
    home
}

/// A `sextant` command in `home` on the cloud `test` of its clouds.yaml
/// (`OS_CLIENT_CONFIG_FILE`, `OS_CLOUD`).
pub fn os_cmd(home: &Home) -> Command {
    let mut c = home.cmd();
    c.env("OS_CLIENT_CONFIG_FILE", home.path().join("os/clouds.yaml"))
        .env("OS_CLOUD", "test");
    c
}
