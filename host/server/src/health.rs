//! `/healthz`: the process answers. `/readyz`: it can do its work — the store
//! answers, and the plugins and playbooks were loaded (the server does not
//! listen before they are). `/metrics`: the Prometheus text format.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use crate::{ApiError, Server};

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Value)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The store answers; the webhooks served and the queue's depth.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "ready", body = Value),
    (status = 503, description = "the store does not answer", body = Value)))]
pub async fn readyz(State(server): State<Arc<Server>>) -> (StatusCode, Json<Value>) {
    let webhooks: Vec<&String> = server.webhooks.keys().collect();
    match server.store.queued().await {
        Ok(queued) => (
            StatusCode::OK,
            Json(
                json!({ "status": "ready", "store": "ok", "queued": queued, "webhooks": webhooks }),
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "readiness: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unready", "store": "unreachable", "webhooks": webhooks })),
            )
        }
    }
}

/// Everything recorded, with the queue's depth read now.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "the Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let Some(handle) = &server.metrics else {
        return ApiError::not_found("this server records no metrics").into_response();
    };
    match server.store.queued().await {
        Ok(queued) => {
            metrics::gauge!("aerie_queue_depth").set(queued as f64);
            metrics::gauge!("aerie_store_up").set(1.0);
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: the store does not answer");
            metrics::gauge!("aerie_store_up").set(0.0);
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}
