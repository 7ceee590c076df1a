//! `GET /api/v1/approvals` and `POST /api/v1/approvals/ID/approve|reject`:
//! the caller decides as themself, under the engine's rule (the same the
//! CLI's `aerie approvals approve --as` applies).

use std::sync::Arc;

use aerie_engine::Decider;
use aerie_store::{DecisionError, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Caller};
use crate::Server;
use crate::error::ApiError;

/// Approvals not decided yet, oldest first.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", security(("bearer" = [])),
    responses((status = 200, description = "`{\"approvals\": [...]}`", body = Value), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn pending(
    _caller: Caller,
    State(server): State<Arc<Server>>,
) -> Result<Json<Value>, ApiError> {
    let pending = server
        .store
        .pending_approvals()
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "approvals": pending })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why, for the audit.
    comment: Option<String>,
}

/// Approve, as the token's user (the same rule as `aerie approvals approve --as`).
#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "the approval")), request_body = Decision, security(("bearer" = [])),
    responses((status = 200, description = "`{approval, settled, run}`", body = Value),
        (status = 403, description = "the user may not decide it", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such approval", body = crate::openapi::ErrorBody),
        (status = 409, description = "already decided", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn approve(
    caller: Caller,
    state: State<Arc<Server>>,
    id: Path<String>,
    Body(decision): Body<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(caller, state, id, decision, true).await
}

/// Reject, as the token's user; the run goes on with `approved: false`.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "the approval")), request_body = Decision, security(("bearer" = [])),
    responses((status = 200, description = "`{approval, settled, run}`", body = Value),
        (status = 403, description = "the user may not decide it", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such approval", body = crate::openapi::ErrorBody),
        (status = 409, description = "already decided", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn reject(
    caller: Caller,
    state: State<Arc<Server>>,
    id: Path<String>,
    Body(decision): Body<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(caller, state, id, decision, false).await
}

async fn decide(
    caller: Caller,
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    decision: Decision,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    let Some(user) = server.users.get(&caller.user) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "`{}` is not a user in [users] of the config, so decides no approval",
                caller.user
            ),
        ));
    };
    let decider = Decider {
        user: &caller.user,
        groups: &user.groups,
    };
    match server
        .store
        .decide(&id, decider, approve, decision.comment.as_deref())
        .await
    {
        Ok(settled) => {
            if settled.is_some() {
                // The run is back in the queue.
                server.wake.notify_one();
            }
            Ok(Json(
                json!({ "approval": id, "settled": settled.is_some(), "run": settled }),
            ))
        }
        Err(StoreError::Decision(refused)) => {
            let (status, code) = match &refused {
                DecisionError::Unknown(_) => (StatusCode::NOT_FOUND, "not_found"),
                DecisionError::NotApprover { .. } => (StatusCode::FORBIDDEN, "forbidden"),
                DecisionError::Settled { .. } | DecisionError::Twice { .. } => {
                    (StatusCode::CONFLICT, "conflict")
                }
            };
            Err(ApiError::new(status, code, refused.to_string()))
        }
        Err(e) => Err(ApiError::store(&e)),
    }
}
