//! The paging query of every collection (watcher-service-facts.md 1.4):
//! `limit` (missing: `max_limit`; at most `max_limit`; not positive: 400),
//! `marker`, `sort_key`, `sort_dir` (`asc` or `desc`, else 400), and the
//! `next` link, present when a page is full:
//! `<url>/v1/<res>[/detail]?<filters>limit=<n>&marker=<uuid>`. The
//! sorting and cutting are `ops::pages`, shared with the CLI.

use super::error::{ApiError, ApiResult};
use super::links::Ctx;
use crate::ops::pages::{PageRequest, SortDir, page};
use serde_json::Value;
use std::collections::HashMap;

/// The query of a list request.
pub struct ListQuery {
    /// Every parameter.
    pub params: HashMap<String, String>,
}

impl ListQuery {
    /// A filter's value (an empty value is no filter).
    pub fn filter(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Refuses a parameter that is neither a paging one nor in `filters`,
    /// as WSME refuses unknown arguments.
    pub fn check(&self, filters: &[&str]) -> ApiResult<()> {
        for k in self.params.keys() {
            if !["limit", "marker", "sort_key", "sort_dir"].contains(&k.as_str())
                && !filters.contains(&k.as_str())
            {
                return Err(ApiError::bad_request(format!("Unknown argument: \"{k}\"")));
            }
        }
        Ok(())
    }
}

/// One page of `items` (full objects in creation order, each with a
/// `uuid`), and the `next` link of `resource` (with the `filters` given).
pub fn paginate(
    items: Vec<Value>,
    keys: &[&str],
    q: &ListQuery,
    max_limit: u32,
    ctx: &Ctx,
    resource: &str,
    filters: &[&str],
) -> ApiResult<(Vec<Value>, Option<String>)> {
    let limit = match q.params.get("limit") {
        None => i64::from(max_limit),
        Some(l) => {
            let n: i64 = l
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Invalid limit: {l:?}")))?;
            if n <= 0 {
                return Err(ApiError::bad_request("Limit must be positive"));
            }
            n.min(i64::from(max_limit))
        }
    };
    let sort_dir = match q.params.get("sort_dir").map(String::as_str) {
        None | Some("asc") => SortDir::Asc,
        Some("desc") => SortDir::Desc,
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {d}. Acceptable values are 'asc' or 'desc'"
            )));
        }
    };
    let req = PageRequest {
        limit: Some(limit),
        marker: q.filter("marker"),
        sort_key: q.filter("sort_key"),
        sort_dir,
    };
    let p = page(items, keys, &req)?;
    let next = if p.items.len() as i64 == limit {
        let last = p.items.last().and_then(|v| {
            v["uuid"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["id"].as_i64().map(|i| i.to_string()))
        });
        last.map(|marker| {
            let mut args = String::new();
            for f in filters {
                if let Some(v) = q.filter(f) {
                    args.push_str(&format!("{f}={v}&"));
                }
            }
            for k in ["sort_key", "sort_dir"] {
                if let Some(v) = q.filter(k) {
                    args.push_str(&format!("{k}={v}&"));
                }
            }
            format!(
                "{}/v1/{resource}?{args}limit={limit}&marker={marker}",
                ctx.base
            )
        })
    } else {
        None
    };
    Ok((p.items, next))
}
