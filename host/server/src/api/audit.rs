//! The audit trail through the API: the chain checked as `aerie audit
//! verify` checks it, and one run's entries as `aerie audit export --run ID
//! --format json` lists them; and a run's brokered requests.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::Caller;
use crate::Server;
use crate::error::ApiError;

/// 200 with `{intact, entries, last, summary}` whether or not it holds: the
/// check ran; `intact` is its answer.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "`{intact, entries, last, summary}`", body = Value), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn verify(State(server): State<Arc<Server>>, _: Caller) -> Result<Json<Value>, ApiError> {
    let checkpointing = server
        .checkpointing
        .as_ref()
        .map(|(key, checkpoints)| (key.as_path(), checkpoints.as_path()));
    let check = server
        .store
        .check_audit(checkpointing)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!(check)))
}

async fn known(server: &Server, id: &str) -> Result<(), ApiError> {
    match server.store.started_at(id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(format!("no run `{id}`"))),
        Err(e) => Err(ApiError::store(&e)),
    }
}

/// The run's audit entries.
#[utoipa::path(get, path = "/api/v1/runs/{id}/audit", tag = "audit", params(("id" = String, Path, description = "the run")), security(("bearer" = [])),
    responses((status = 200, description = "`{run, audit: [{seq, at, kind, body, hash}]}`", body = Value),
        (status = 404, description = "no such run", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn run(
    State(server): State<Arc<Server>>,
    _: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known(&server, &id).await?;
    let entries = server
        .store
        .audit_entries(&id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "run": id, "audit": entries })))
}

/// The requests the broker made for the run's plugins.
#[utoipa::path(get, path = "/api/v1/runs/{id}/requests", tag = "runs", params(("id" = String, Path, description = "the run")), security(("bearer" = [])),
    responses((status = 200, description = "`{run, requests: [...]}`", body = Value),
        (status = 404, description = "no such run", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn requests(
    State(server): State<Arc<Server>>,
    _: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known(&server, &id).await?;
    let requests = server
        .store
        .requests(&id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "run": id, "requests": requests })))
}
