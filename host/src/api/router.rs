//! The routes of Watcher's v1 API and the layers around them, outermost
//! first: a request id (`x-openstack-request-id`) and Watcher's error
//! body for every refusal made below (as Watcher's RequestId and
//! ParsableError middlewares), the request timeout (408), the body size
//! limit (413); on `/v1` routes, authentication and policy, then the
//! microversion.

use super::error::{ApiError, WatcherBody};
use super::state::AppState;
use super::{
    action_plans, action_types, actions, alertmanager, audit_templates, audits, auth, data_model,
    events, goals, openapi, plugins, policies, root, scoring_engines, services, strategies,
    version, webhooks,
};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Instant;

/// The whole application.
pub fn build(st: Arc<AppState>, guard: Arc<auth::Guard>) -> Router {
    let cfg = &st.cfg;
    let timeout = cfg.timeout;
    let max_body = cfg.max_body;
    let scheme = Scheme(if cfg.tls.is_some() { "https" } else { "http" });
    let latency = st.ctx.latency.clone();
    let v1 = Slashed(Router::new())
        .route("/v1", get(root::v1))
        .route("/v1/goals", get(goals::list))
        .route("/v1/goals/detail", get(goals::detail))
        .route("/v1/goals/{id}", get(goals::show))
        .route("/v1/strategies", get(strategies::list))
        .route("/v1/strategies/detail", get(strategies::detail))
        .route("/v1/strategies/{id}", get(strategies::show))
        .route("/v1/strategies/{id}/state", get(strategies::state))
        .route(
            "/v1/audit_templates",
            get(audit_templates::list).post(audit_templates::create),
        )
        .route("/v1/audit_templates/detail", get(audit_templates::detail))
        .route(
            "/v1/audit_templates/{id}",
            get(audit_templates::show)
                .patch(audit_templates::update)
                .delete(audit_templates::delete),
        )
        .route("/v1/audits", get(audits::list).post(audits::create))
        .route("/v1/audits/detail", get(audits::detail))
        .route(
            "/v1/audits/{id}",
            get(audits::show)
                .patch(audits::update)
                .delete(audits::delete),
        )
        .route("/v1/action_plans", get(action_plans::list))
        .route("/v1/action_plans/detail", get(action_plans::detail))
        .route(
            "/v1/action_plans/{id}",
            get(action_plans::show)
                .patch(action_plans::update)
                .delete(action_plans::delete),
        )
        .route("/v1/action_plans/{id}/start", post(action_plans::start))
        .route("/v1/action_plans/{id}/graph", get(action_plans::graph))
        .route("/v1/events", get(events::list))
        .route("/v1/actions", get(actions::list))
        .route("/v1/actions/detail", get(actions::detail))
        .route(
            "/v1/actions/{id}",
            get(actions::show).patch(actions::update),
        )
        .route("/v1/scoring_engines", get(scoring_engines::list))
        .route("/v1/scoring_engines/detail", get(scoring_engines::detail))
        .route("/v1/scoring_engines/{id}", get(scoring_engines::show))
        .route("/v1/services", get(services::list))
        .route("/v1/services/detail", get(services::detail))
        .route("/v1/services/{id}", get(services::show))
        .route("/v1/data_model", get(data_model::list))
        .route("/v1/webhooks/{audit}", post(webhooks::trigger))
        .route("/v1/policies", get(policies::list))
        .route("/v1/policies/validate", post(policies::validate))
        .route("/v1/policies/{name}", get(policies::show))
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/v1/webhooks/alertmanager", post(alertmanager::receive))
        .route(
            "/v1/action_types",
            get(action_types::list).post(action_types::create),
        )
        .route(
            "/v1/action_types/{reference}",
            get(action_types::show).delete(action_types::delete),
        )
        .0
        .layer(middleware::from_fn(version::layer))
        .layer(middleware::from_fn_with_state(guard, auth::layer));
    Router::new()
        .route("/", get(root::root))
        .merge(v1)
        .fallback(not_found)
        .with_state(st)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(edge))
        .layer(axum::Extension(scheme))
        .layer(axum::Extension(Latency(latency)))
}

/// Where the edge observes each request's latency (`serve`'s metrics).
#[derive(Clone)]
struct Latency(Option<crate::telemetry::ApiLatency>);

/// The route template a request matched, as the latency metric labels it:
/// with `/v1` and without a trailing slash whichever way it was asked
/// (every route also answers those), `unmatched` for none. Never the raw
/// path, so that ids do not make a series each.
fn route_label(matched: Option<&str>) -> String {
    let Some(route) = matched else {
        return "unmatched".into();
    };
    let route = match route.trim_end_matches('/') {
        "" => "/",
        r => r,
    };
    if route == "/" || route == "/v1" || route.starts_with("/v1/") {
        route.to_string()
    } else {
        format!("/v1{route}")
    }
}

/// `http` or `https`: what links are made with.
#[derive(Clone, Copy, Debug)]
pub struct Scheme(pub &'static str);

/// A router where every route also answers with a trailing slash, as
/// pecan's do (the client asks for `/v1/strategies/?goal=…` and
/// `/v1/data_model/?…`), and without the `/v1` prefix, as Watcher's root
/// controller routes `/audits` to `/v1/audits`.
struct Slashed(Router<Arc<AppState>>);

impl Slashed {
    fn route(self, path: &str, m: axum::routing::MethodRouter<Arc<AppState>>) -> Self {
        let mut r = self
            .0
            .route(path, m.clone())
            .route(&format!("{path}/"), m.clone());
        if let Some(bare) = path.strip_prefix("/v1").filter(|b| !b.is_empty()) {
            r = r.route(bare, m.clone()).route(&format!("{bare}/"), m);
        }
        Self(r)
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

/// The most of a lower layer's error text kept in the error body.
const MAX_ERROR_TEXT: usize = 4096;

/// Every response gets a request id; a refusal made below the handlers
/// (a body too large, a timeout, a method not allowed, a query that does
/// not parse) gets Watcher's error body.
async fn edge(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let latency = req.extensions().get::<Latency>().and_then(|l| l.0.clone());
    let id = format!("req-{}", crate::store::new_uuid());
    let mut resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error())
        && resp.extensions().get::<WatcherBody>().is_none()
    {
        let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
        let text = axum::body::to_bytes(std::mem::take(resp.body_mut()), MAX_ERROR_TEXT)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let message = match (status, text.is_empty()) {
            (StatusCode::REQUEST_TIMEOUT, _) => {
                "The request took too long and was abandoned".into()
            }
            (_, true) => status.canonical_reason().unwrap_or("Error").to_string(),
            (_, false) => text,
        };
        resp = ApiError::new(status, message).into_response();
        if let Some(a) = allow {
            resp.headers_mut().insert(axum::http::header::ALLOW, a);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    if let Some(l) = latency {
        l.get_or_create(&crate::telemetry::ApiRequestLabels {
            method: method.as_str().to_string(),
            route: route_label(route.as_deref()),
            status: resp.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    }
    tracing::debug!(
        "api: {method} {path} {} in {:.1} ms ({id})",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn latency_is_labelled_by_route_template_one_way() {
        assert_eq!(route_label(Some("/v1/audits/{id}")), "/v1/audits/{id}");
        assert_eq!(route_label(Some("/v1/audits/{id}/")), "/v1/audits/{id}");
        assert_eq!(route_label(Some("/audits/{id}")), "/v1/audits/{id}");
        assert_eq!(route_label(Some("/audits/")), "/v1/audits");
        assert_eq!(route_label(Some("/v1/")), "/v1");
        assert_eq!(route_label(Some("/")), "/");
        assert_eq!(route_label(None), "unmatched");
    }
}
