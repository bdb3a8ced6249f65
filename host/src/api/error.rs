//! Watcher's error body. WSME formats an error as `{"faultcode":
//! "Client"|"Server", "faultstring": "…", "debuginfo": null}`, and
//! Watcher's ParsableErrorMiddleware puts that JSON, as a string, under
//! `error_message` (watcher-service-facts.md 1.6); python-watcherclient
//! decodes it twice to print the server's message, so every refusal here
//! has exactly that shape.

use crate::ops::OpError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refusal or failure, answered with Watcher's error body.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong (WSME's `faultstring`).
    pub message: String,
}

/// Marks a response whose body is already Watcher's error body.
#[derive(Clone, Copy)]
pub struct WatcherBody;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500, for what the caller cannot fix; the cause is logged.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("api: {message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) => Self::bad_request(m),
            e @ OpError::Field { .. } => Self::bad_request(e.to_string()),
            OpError::NotFound(m) => Self::not_found(m),
            OpError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            e @ (OpError::Store(_) | OpError::Internal(_)) => Self::internal(e),
        }
    }
}

/// A store lookup's error as the API answers it: Watcher's 404 `message`
/// when the object is not there, else what the error is (a database
/// failure stays a 500, an ambiguous prefix a 400).
pub fn missing(e: crate::store::StoreError, message: impl FnOnce() -> String) -> ApiError {
    match e {
        crate::store::StoreError::NotFound { .. } => ApiError::not_found(message()),
        e => e.into(),
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        OpError::from(e).into()
    }
}

/// The body: WSME's fault, JSON-encoded into a string under
/// `error_message`.
pub fn body(status: StatusCode, message: &str) -> String {
    let fault = json!({
        "faultcode": if status.is_server_error() { "Server" } else { "Client" },
        "faultstring": message,
        "debuginfo": null,
    });
    json!({"error_message": fault.to_string()}).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, body(self.status, &self.message)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r.extensions_mut().insert(WatcherBody);
        r
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_fails_in_the_database_is_a_500_not_a_404() {
        use crate::store::StoreError;
        let absent = StoreError::NotFound {
            kind: "audit",
            id: "a1".into(),
        };
        let e = missing(absent, || "Audit a1 could not be found".into());
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "Audit a1 could not be found");
        let broken = StoreError::Commit("disk I/O error".into());
        let e = missing(broken, || unreachable!("not a missing object"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.message.contains("disk I/O error"), "{}", e.message);
    }

    #[test]
    fn the_body_is_double_encoded_as_watcher_s() {
        let b: serde_json::Value =
            serde_json::from_str(&body(StatusCode::BAD_REQUEST, "Invalid sort key")).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(b["error_message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["faultcode"], "Client");
        assert_eq!(inner["faultstring"], "Invalid sort key");
        assert!(inner["debuginfo"].is_null());
        let b: serde_json::Value =
            serde_json::from_str(&body(StatusCode::INTERNAL_SERVER_ERROR, "x")).unwrap();
        assert!(b["error_message"].as_str().unwrap().contains("\"Server\""));
    }
}
