//! `POST /v1/webhooks/{audit}` (1.4): triggers an EVENT audit that is
//! PENDING or SUCCEEDED; 202, and the audit runs in the background. The
//! body is any JSON and is ignored, as Watcher's.

use super::error::{ApiError, ApiResult, missing};
use super::links::Ctx;
use super::state::AppState;
use super::version::WEBHOOK;
use crate::states::AuditState;
use crate::states::AuditType;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;

/// `POST /v1/webhooks/{audit}`.
#[utoipa::path(
    operation_id = "webhooks_trigger",
    post,
    path = "/v1/webhooks/{id}",
    tag = "watcher",
    params(("id" = String, Path, description = "An EVENT audit uuid or name")),
    responses((status = 202, description = "The audit is triggered"), super::openapi::Refusals)
)]
pub async fn trigger(
    State(st): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    if !ctx.at_least(WEBHOOK) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Webhooks need microversion {WEBHOOK} or later; {} was requested",
                ctx.version
            ),
        ));
    }
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return Err(ApiError::bad_request("Malformed JSON body"));
    }
    let uuid = st
        .store(move |s, _| {
            let a = s
                .audit(&id)
                .map_err(|e| missing(e, || format!("Audit {id} could not be found")))?;
            if a.audit_type != AuditType::Event {
                return Err(ApiError::bad_request(format!(
                    "Audit {} is {}: only EVENT audits are triggered",
                    a.uuid, a.audit_type
                )));
            }
            if !matches!(a.state, AuditState::Pending | AuditState::Succeeded) {
                return Err(ApiError::bad_request(format!(
                    "Audit {} is {}: an EVENT audit is triggered from PENDING or SUCCEEDED",
                    a.uuid, a.state
                )));
            }
            Ok(a.uuid)
        })
        .await?;
    st.run_audit_later(uuid, true);
    Ok(StatusCode::ACCEPTED)
}
