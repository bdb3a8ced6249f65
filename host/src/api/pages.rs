//! The paging query of every collection (watcher-service-facts.md 1.4):
//! `limit` (missing: `max_limit`; at most `max_limit`; not positive: 400),
//! `marker`, `sort_key`, `sort_dir` (`asc` or `desc`, else 400), and the
//! `next` link, present when a page is full:
//! `<url>/v1/<res>[/detail]?<filters>limit=<n>&marker=<uuid>`. The
//! sorting and cutting are `ops::pages`, shared with the CLI.

use super::error::{ApiError, ApiResult};
use super::links::{Ctx, collection, only};
use crate::ops::pages::{Keyed, PageRequest, SortDir, page};
use axum::Json;
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

/// Whether a list filter (a uuid or a name) picks an object known by
/// `uuid` and `name`; no filter picks every object.
pub fn uuid_or_name(filter: Option<&str>, uuid: Option<&str>, name: Option<&str>) -> bool {
    filter.is_none_or(|f| Some(f) == uuid || Some(f) == name)
}

/// The page size asked for: `limit`, at most `max_limit` (missing:
/// `max_limit`; not positive: 400).
pub fn limit_of(q: &ListQuery, max_limit: u32) -> ApiResult<i64> {
    match q.params.get("limit") {
        None => Ok(i64::from(max_limit)),
        Some(l) => {
            let n: i64 = l
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Invalid limit: {l:?}")))?;
            if n <= 0 {
                return Err(ApiError::bad_request("Limit must be positive"));
            }
            Ok(n.min(i64::from(max_limit)))
        }
    }
}

/// The sort direction asked for (`asc` or `desc`, else 400).
pub fn sort_dir_of(q: &ListQuery) -> ApiResult<SortDir> {
    match q.params.get("sort_dir").map(String::as_str) {
        None | Some("asc") => Ok(SortDir::Asc),
        Some("desc") => Ok(SortDir::Desc),
        Some(d) => Err(ApiError::bad_request(format!(
            "Invalid sort direction: {d}. Acceptable values are 'asc' or 'desc'"
        ))),
    }
}

/// The `next` link of a full page whose last item is `last`.
pub fn next_link(
    q: &ListQuery,
    ctx: &Ctx,
    resource: &str,
    filters: &[&str],
    limit: i64,
    last: &str,
) -> String {
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
        "{}/v1/{resource}?{args}limit={limit}&marker={last}",
        ctx.base
    )
}

/// One page of `items` (in creation order, each with a `uuid`), and the
/// `next` link of `resource` (with the `filters` given).
pub fn paginate<T: Keyed>(
    items: Vec<T>,
    keys: &[&str],
    q: &ListQuery,
    max_limit: u32,
    ctx: &Ctx,
    resource: &str,
    filters: &[&str],
) -> ApiResult<(Vec<T>, Option<String>)> {
    let limit = limit_of(q, max_limit)?;
    let req = PageRequest {
        limit: Some(limit),
        marker: q.filter("marker"),
        sort_key: q.filter("sort_key"),
        sort_dir: sort_dir_of(q)?,
    };
    let p = page(items, keys, &req)?;
    let next = if p.items.len() as i64 == limit {
        p.items
            .last()
            .and_then(|v| v.uuid())
            .map(|last| next_link(q, ctx, resource, filters, limit, last))
    } else {
        None
    };
    Ok((p.items, next))
}

/// How a resource answers its list and `/detail` list (Watcher's
/// collection): its name, sort keys, filters, and the fields a plain list
/// keeps.
pub struct Listing {
    /// The collection's name (`audits`); `/detail` is appended for details.
    pub name: &'static str,
    /// The keys it may be sorted by.
    pub sort_keys: &'static [&'static str],
    /// The query parameters that filter it (besides paging).
    pub filters: &'static [&'static str],
    /// The fields of an item in a plain (not `/detail`) list.
    pub list_fields: &'static [&'static str],
}

impl Listing {
    /// One page of `items` (each as its detail JSON) as the answer.
    pub fn page(
        &self,
        items: Vec<Value>,
        q: &ListQuery,
        max_limit: u32,
        ctx: &Ctx,
        detail: bool,
    ) -> ApiResult<Json<Value>> {
        let res = if detail {
            format!("{}/detail", self.name)
        } else {
            self.name.to_string()
        };
        let (mut items, next) =
            paginate(items, self.sort_keys, q, max_limit, ctx, &res, self.filters)?;
        if !detail {
            items.iter_mut().for_each(|v| only(v, self.list_fields));
        }
        Ok(Json(collection(self.name, items, next)))
    }
}
