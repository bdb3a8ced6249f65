//! Paging and sorting of list commands, as Watcher's API does them
//! (reference watcher-service-facts.md 1.4): `--limit` (positive), `--marker`
//! (the uuid of the last item of the previous page: the page starts after
//! it), `--sort-key` (a field of the listed objects, default `id`: creation
//! order; an unknown key is refused with the valid ones listed) and
//! `--sort-dir asc|desc`. Ties are broken by creation order, in the same
//! direction, as Watcher's `paginate_query` sorts on `(sort_key, id)`.

use super::CliError;
use crate::ops::pages::{self, PageRequest};
use clap::ValueEnum;

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

/// One page of `items` (in creation order), sorted and cut as `args` say
/// (`ops::pages`); `keys` are the valid sort keys. Prints on stderr how to
/// get the next page when one may follow.
pub fn page<T: pages::Keyed>(
    items: Vec<T>,
    keys: &[&str],
    args: &PageArgs,
) -> Result<Vec<T>, CliError> {
    let req = PageRequest {
        limit: args.limit,
        marker: args.marker.as_deref(),
        sort_key: args.sort_key.as_deref(),
        sort_dir: match args.sort_dir {
            SortDir::Asc => pages::SortDir::Asc,
            SortDir::Desc => pages::SortDir::Desc,
        },
    };
    let p = pages::page(items, keys, &req).map_err(super::op_error)?;
    if let Some(m) = &p.next_marker {
        eprintln!("more: --marker {m}");
    }
    Ok(p.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
        let mut s = crate::store::Store::open(dir.path().join("s.db")).expect("open");
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
