//! Paging and sorting of lists, as Watcher's API does them
//! (watcher-service-facts.md 1.4): a limit (positive), a marker (the uuid
//! of the last item of the previous page: the page starts after it), a
//! sort key (a field of the listed objects, default `id`: creation order;
//! an unknown key is refused with the valid ones listed) and a direction.
//! Ties are broken by creation order, in the same direction, as Watcher's
//! `paginate_query` sorts on `(sort_key, id)`. Used by the CLI's list
//! commands and the API's collections.

use super::OpError;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

/// Sort directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// What page of a list is asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest<'a> {
    /// At most this many items.
    pub limit: Option<i64>,
    /// Starts after the item with this uuid (or unique uuid prefix).
    pub marker: Option<&'a str>,
    /// The field to sort on (default `id`).
    pub sort_key: Option<&'a str>,
    /// The sort direction.
    pub sort_dir: SortDir,
}

/// One page, and the uuid of its last item when more may follow.
pub struct Page<T> {
    /// The items of the page, in order.
    pub items: Vec<T>,
    /// The marker of the next page, when the list goes on past this one.
    pub next_marker: Option<String>,
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Orders JSON scalars: null first, then booleans, numbers, strings.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// What a list holds: objects with a uuid (the marker), serialized only
/// when sorted on a field other than the creation order.
pub trait Keyed: Serialize {
    /// The object's uuid.
    fn uuid(&self) -> Option<&str>;
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn uuid(&self) -> Option<&str> {
                Some(&self.uuid)
            }
        }
    )*};
}
keyed!(
    crate::store::plans::PlanRow,
    crate::store::plans::ActionRow,
    crate::store::audits::AuditRow,
    crate::store::audits::TemplateRow
);

impl Keyed for Value {
    fn uuid(&self) -> Option<&str> {
        self["uuid"].as_str()
    }
}

/// One page of `items` (in creation order), sorted and cut as `req`
/// says; `keys` are the valid sort keys.
pub fn page<T: Keyed>(
    items: Vec<T>,
    keys: &[&str],
    args: &PageRequest<'_>,
) -> Result<Page<T>, OpError> {
    let key = args.sort_key.unwrap_or("id");
    if !keys.contains(&key) {
        return Err(super::field(
            "sort_key",
            key,
            format!(
                "not a sort key here; the valid keys are {}",
                keys.join(", ")
            ),
        ));
    }
    if let Some(l) = args.limit
        && l <= 0
    {
        return Err(super::field("limit", l, "the limit must be positive"));
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    if key != "id" {
        let values: Vec<Value> = items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| OpError::Invalid(format!("a listed item is not JSON: {e}")))?;
        order.sort_by(|&a, &b| compare(&values[a][key], &values[b][key]).then(a.cmp(&b)));
    }
    if args.sort_dir == SortDir::Desc {
        order.reverse();
    }
    let start = match args.marker {
        None => 0,
        Some(m) => {
            let hits: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    items[**i]
                        .uuid()
                        .is_some_and(|u| u == m || (m.len() >= 4 && u.starts_with(m)))
                })
                .map(|(pos, _)| pos)
                .collect();
            match hits.as_slice() {
                [pos] => pos + 1,
                [] => {
                    return Err(super::field(
                        "marker",
                        m,
                        "no item of this list has that uuid",
                    ));
                }
                _ => {
                    return Err(super::field(
                        "marker",
                        m,
                        "the prefix matches several items; give more of the uuid",
                    ));
                }
            }
        }
    };
    let end = match args.limit {
        Some(l) => order.len().min(start.saturating_add(l as usize)),
        None => order.len(),
    };
    let next_marker = if end < order.len() {
        end.checked_sub(1)
            .and_then(|e| order.get(e))
            .and_then(|last| items[*last].uuid())
            .map(str::to_string)
    } else {
        None
    };
    let keep: std::collections::HashMap<usize, usize> = order[start.min(end)..end]
        .iter()
        .enumerate()
        .map(|(pos, &i)| (i, pos))
        .collect();
    let mut out: Vec<(usize, T)> = items
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| keep.get(&i).map(|&pos| (pos, t)))
        .collect();
    out.sort_by_key(|(pos, _)| *pos);
    Ok(Page {
        items: out.into_iter().map(|(_, t)| t).collect(),
        next_marker,
    })
}
