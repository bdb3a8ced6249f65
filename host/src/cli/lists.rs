//! Paging and sorting of list commands, as Watcher's API does them
//! (reference watcher-service-facts.md 1.4): `--limit` (positive), `--marker`
//! (the uuid of the last item of the previous page: the page starts after
//! it), `--sort-key` (a field of the listed objects, default `id`: creation
//! order; an unknown key is refused with the valid ones listed) and
//! `--sort-dir asc|desc`. Ties are broken by creation order, in the same
//! direction, as Watcher's `paginate_query` sorts on `(sort_key, id)`.

use super::CliError;
use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

/// Sort directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SortDir {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// The paging flags of a list command.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct PageArgs {
    /// At most this many items.
    #[arg(long)]
    pub limit: Option<i64>,
    /// Starts after the item with this uuid (or unique uuid prefix): the
    /// last item of the previous page.
    #[arg(long)]
    pub marker: Option<String>,
    /// The field to sort on (default: id, the creation order).
    #[arg(long = "sort-key")]
    pub sort_key: Option<String>,
    /// The sort direction.
    #[arg(long = "sort-dir", value_enum, default_value_t)]
    pub sort_dir: SortDir,
}

/// The sort keys of action plans.
pub const PLAN_KEYS: &[&str] = &[
    "id",
    "uuid",
    "state",
    "audit_uuid",
    "strategy_uuid",
    "strategy_name",
    "planner",
    "action_count",
    "created_at",
    "updated_at",
];

/// The sort keys of audits.
pub const AUDIT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "audit_type",
    "state",
    "goal_uuid",
    "goal_name",
    "strategy_uuid",
    "strategy_name",
    "interval",
    "next_run_time",
    "created_at",
    "updated_at",
];

/// The sort keys of audit templates.
pub const TEMPLATE_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "goal_uuid",
    "goal_name",
    "strategy_uuid",
    "strategy_name",
    "created_at",
    "updated_at",
];

/// The sort keys of actions.
pub const ACTION_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "action_plan_uuid",
    "action_type",
    "state",
    "created_at",
    "updated_at",
];

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

/// One page of `items` (in creation order), sorted and cut as `args` say;
/// `keys` are the valid sort keys. Prints on stderr how to get the next
/// page when one may follow.
pub fn page<T: Serialize>(
    items: Vec<T>,
    keys: &[&str],
    args: &PageArgs,
) -> Result<Vec<T>, CliError> {
    let key = args.sort_key.as_deref().unwrap_or("id");
    if !keys.contains(&key) {
        return Err(CliError::input(anyhow::anyhow!(
            "--sort-key {key}: not a sort key here; the valid keys are {}",
            keys.join(", ")
        )));
    }
    if let Some(l) = args.limit
        && l <= 0
    {
        return Err(CliError::input(anyhow::anyhow!(
            "--limit {l}: the limit must be positive"
        )));
    }
    let values: Vec<Value> = items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::from(anyhow::anyhow!(e)))?;
    let mut order: Vec<usize> = (0..items.len()).collect();
    if key != "id" {
        order.sort_by(|&a, &b| compare(&values[a][key], &values[b][key]).then(a.cmp(&b)));
    }
    if args.sort_dir == SortDir::Desc {
        order.reverse();
    }
    let start = match &args.marker {
        None => 0,
        Some(m) => {
            let hits: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    values[**i]["uuid"]
                        .as_str()
                        .is_some_and(|u| u == m || (m.len() >= 4 && u.starts_with(m.as_str())))
                })
                .map(|(pos, _)| pos)
                .collect();
            match hits.as_slice() {
                [pos] => pos + 1,
                [] => {
                    return Err(CliError::input(anyhow::anyhow!(
                        "--marker {m}: no item of this list has that uuid"
                    )));
                }
                _ => {
                    return Err(CliError::input(anyhow::anyhow!(
                        "--marker {m}: the prefix matches several items; give more of the uuid"
                    )));
                }
            }
        }
    };
    let end = match args.limit {
        Some(l) => order.len().min(start.saturating_add(l as usize)),
        None => order.len(),
    };
    if end < order.len()
        && let Some(last) = end.checked_sub(1).and_then(|e| order.get(e))
        && let Some(u) = values[*last]["uuid"].as_str()
    {
        eprintln!("more: --marker {u}");
    }
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
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(limit: Option<i64>, marker: Option<&str>, key: Option<&str>, dir: SortDir) -> PageArgs {
        PageArgs {
            limit,
            marker: marker.map(String::from),
            sort_key: key.map(String::from),
            sort_dir: dir,
        }
    }

    #[test]
    fn pages_walk_every_item_once_in_sort_order() {
        let items: Vec<Value> = (0..7)
            .map(|i| {
                let state = ["B", "A", "C"][i % 3];
                json!({"uuid": format!("u{i}aaaa"), "state": state})
            })
            .collect();
        for dir in [SortDir::Asc, SortDir::Desc] {
            let all = page(
                items.clone(),
                &["id", "state"],
                &args(None, None, Some("state"), dir),
            )
            .expect("all");
            let mut walked = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let p = page(
                    items.clone(),
                    &["id", "state"],
                    &args(Some(3), marker.as_deref(), Some("state"), dir),
                )
                .expect("page");
                if p.is_empty() {
                    break;
                }
                marker = p.last().and_then(|v| v["uuid"].as_str()).map(String::from);
                walked.extend(p);
            }
            assert_eq!(walked, all);
        }
        let asc = page(
            items.clone(),
            &["id", "state"],
            &args(None, None, Some("state"), SortDir::Asc),
        )
        .expect("asc");
        let states: Vec<&str> = asc.iter().filter_map(|v| v["state"].as_str()).collect();
        assert_eq!(states, ["A", "A", "B", "B", "B", "C", "C"]);
    }

    #[test]
    fn bad_keys_limits_and_markers_are_refused() {
        let items = vec![json!({"uuid": "abcd"})];
        let e = page(
            items.clone(),
            &["id", "uuid"],
            &args(None, None, Some("colour"), SortDir::Asc),
        )
        .expect_err("bad key");
        assert_eq!(e.status, 2);
        assert!(e.error.to_string().contains("id, uuid"), "{}", e.error);
        assert!(
            page(
                items.clone(),
                &["id"],
                &args(Some(0), None, None, SortDir::Asc)
            )
            .is_err()
        );
        assert!(
            page(
                items,
                &["id"],
                &args(None, Some("ffff"), None, SortDir::Asc)
            )
            .is_err()
        );
    }

    #[test]
    fn every_sort_key_is_a_field_of_the_listed_rows() {
        use crate::store::plans::{NewPlan, NewPlanRow};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = crate::store::Store::open(&dir.path().join("s.db")).expect("open");
        let p = s
            .create_plan(&NewPlan {
                state: crate::states::PlanState::Recommended,
                rows: vec![NewPlanRow {
                    name: "a",
                    action_type: "nop",
                    input_parameters_json: "{}",
                    state: crate::states::ActionState::Pending,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .expect("plan");
        let plan = serde_json::to_value(&p).expect("json");
        let action = serde_json::to_value(&s.actions(&p.uuid).expect("actions")[0]).expect("json");
        for (keys, row) in [(PLAN_KEYS, &plan), (ACTION_KEYS, &action)] {
            for k in keys.iter().filter(|k| **k != "id") {
                assert!(row.get(*k).is_some(), "{k} is not a field of {row}");
            }
        }
    }
}
