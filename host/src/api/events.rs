//! `GET /v1/events` (Sextant's, not Watcher's): the event log, oldest
//! first, as `sextant history --format json` prints it, paged by event id:
//! `action_plan_uuid` (only that plan's), `after` (an event id: the page
//! starts after it), `limit` (at most `max_limit`); `next` when the page
//! is full.
//!
//! Asked with `Accept: text/event-stream`, the same URL follows the log as
//! server-sent events: each event's SSE `id` is its event id, its `event`
//! its type (`action.update`, …), its `data` the JSON the page gives; new
//! events are sent as they are stored (polled every 250 ms), a comment
//! every 15 s keeps the connection open, and a client that reconnects
//! with `Last-Event-ID` (as EventSource does) resumes right after that
//! event, missing none. The stream ends when `serve` stops.

use super::error::{ApiError, ApiResult};
use super::links::{Ctx, collection};
use super::pages::{ListQuery, limit_of};
use super::schemas;
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How often a followed log is read for new events.
const POLL: Duration = Duration::from_millis(250);
/// The events read at once while following.
const FOLLOW_BATCH: usize = 500;

/// Whether the caller asked for server-sent events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|m| m.trim().starts_with("text/event-stream"))
        })
}

/// `GET /v1/events`.
#[utoipa::path(
    operation_id = "events_list",
    get,
    path = "/v1/events",
    tag = "sextant",
    params(("action_plan_uuid" = Option<String>, Query, description = "Only the events of this plan"), ("after" = Option<i64>, Query, description = "An event id: the events after it"), ("limit" = Option<i64>, Query, description = "The most events returned"), ("Last-Event-ID" = Option<String>, Header, description = "With Accept: text/event-stream: resume after this event id")),
    responses((status = 200, description = "A page of events, or (Accept: text/event-stream) the events followed as server-sent events", content((schemas::Events = "application/json"), (String = "text/event-stream"))), super::openapi::Refusals)
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
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
    let plan = match plan {
        Some(p) => Some(
            st.store(move |s, _| {
                Ok(s.plan(&p)
                    .map_err(|e| {
                        super::error::missing(e, || format!("ActionPlan {p} could not be found"))
                    })?
                    .uuid)
            })
            .await?,
        ),
        None => None,
    };
    if wants_stream(&headers) {
        let after = match headers.get("last-event-id") {
            None => after,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Invalid Last-Event-ID {v:?}: an event id"))
                })?,
        };
        return Ok(follow(st, plan, after).into_response());
    }
    let events = st
        .store(move |s, _| Ok(s.events_page(plan.as_deref(), after, limit as usize)?))
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
    Ok(Json(collection("events", items, next)).into_response())
}

/// Where a followed log is.
struct Following {
    st: Arc<AppState>,
    plan: Option<String>,
    after: i64,
    ready: VecDeque<crate::store::EventRow>,
}

/// The events after `after` (of `plan` only, if given), then each new one
/// as it is stored, until the client goes or `serve` stops.
fn follow(
    st: Arc<AppState>,
    plan: Option<String>,
    after: i64,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let start = Following {
        st,
        plan,
        after,
        ready: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        loop {
            if let Some(e) = f.ready.pop_front() {
                f.after = e.id;
                let data = serde_json::to_string(&e).unwrap_or_else(|_| "{}".into());
                let event = Event::default()
                    .id(e.id.to_string())
                    .event(e.event_type.to_string())
                    .data(data);
                return Some((Ok(event), f));
            }
            if f.st.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            let (plan, after) = (f.plan.clone(), f.after);
            let read =
                f.st.store(move |s, _| Ok(s.events_page(plan.as_deref(), after, FOLLOW_BATCH)?))
                    .await;
            match read {
                Ok(rows) if rows.is_empty() => tokio::time::sleep(POLL).await,
                Ok(rows) => f.ready.extend(rows),
                Err(e) => {
                    tracing::warn!("api: following the events: {}", e.message);
                    return None;
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
