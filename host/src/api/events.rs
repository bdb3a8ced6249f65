//! `GET /v1/events` (Sextant's, not Watcher's): the event log, oldest
//! first, as `sextant history --format json` prints it, paged by event id:
//! `action_plan_uuid` (only that plan's), `after` (an event id: the page
//! starts after it), `limit` (at most `max_limit`); `next` when the page
//! is full.

use super::error::{ApiError, ApiResult};
use super::links::{Ctx, collection};
use super::pages::{ListQuery, limit_of};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /v1/events`.
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let q = ListQuery { params };
    for k in q.params.keys() {
        if !["action_plan_uuid", "after", "limit"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("Unknown argument: \"{k}\"")));
        }
    }
    let limit = limit_of(&q, st.cfg.max_limit)?;
    let after: i64 = match q.filter("after") {
        None => 0,
        Some(a) => a
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Invalid after {a:?}: an event id")))?,
    };
    let plan = q.filter("action_plan_uuid").map(str::to_string);
    let events = st
        .store(move |s, _| {
            let plan = match &plan {
                Some(p) => Some(
                    s.plan(p)
                        .map_err(|_| {
                            ApiError::not_found(format!("ActionPlan {p} could not be found"))
                        })?
                        .uuid,
                ),
                None => None,
            };
            Ok(s.events_page(plan.as_deref(), after, limit as usize)?)
        })
        .await?;
    let next = match events.last() {
        Some(last) if events.len() as i64 == limit => {
            let mut args = String::new();
            if let Some(p) = q.filter("action_plan_uuid") {
                args.push_str(&format!("action_plan_uuid={p}&"));
            }
            Some(format!(
                "{}/v1/events?{args}limit={limit}&after={}",
                ctx.base, last.id
            ))
        }
        _ => None,
    };
    let items = events
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(collection("events", items, next)))
}
