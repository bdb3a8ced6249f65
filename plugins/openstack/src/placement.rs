//! Placement's inventories: a compute node's totals, reservations and
//! allocation ratios, per resource class.

use crate::http::{ApiError, Method};
use crate::session::{Service, Session};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One resource class's inventory.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Inventory {
    /// Total.
    pub total: u64,
    /// Reserved.
    #[serde(default)]
    pub reserved: u64,
    /// Allocation ratio.
    #[serde(default = "one")]
    pub allocation_ratio: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
struct Inventories {
    inventories: BTreeMap<String, Inventory>,
}

/// The inventories of resource provider `uuid`; None when Placement has no
/// such provider.
pub fn inventories(
    s: &Session,
    uuid: &str,
) -> Result<Option<BTreeMap<String, Inventory>>, ApiError> {
    let path = format!("/resource_providers/{uuid}/inventories");
    match s.call(Service::Placement, Method::Get, &path, None, None) {
        Ok(v) => serde_json::from_value::<Inventories>(v)
            .map(|i| Some(i.inventories))
            .map_err(|e| ApiError::Invalid {
                service: "placement",
                path,
                message: e.to_string(),
            }),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}
