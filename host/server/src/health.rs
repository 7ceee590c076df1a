//! `/healthz`: the process answers. `/readyz`: it can do its work — the store
//! answers, and the plugins and playbooks were loaded (the server does not
//! listen before they are).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::Server;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

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
