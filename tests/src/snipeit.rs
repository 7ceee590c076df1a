//! Snipe-IT's API, the parts the `snipeit` plugin uses, with `Authorization:
//! Bearer TOKEN`: `GET /api/v1/hardware?search=&limit=` (`{total, rows}`),
//! `/hardware/byserial/{serial}` (`{total, rows}`) and `/hardware/bytag/{tag}`
//! (one asset). An unknown serial or tag answers as Snipe-IT does: 200 with
//! `{"status": "error", "messages": "Asset does not exist."}`; a wrong token 401
//! `{"message": "Unauthenticated."}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct StandIn {
    token: String,
    assets: Vec<Value>,
}

fn asset(id: u64, name: &str, tag: &str, serial: &str, user: &str) -> Value {
    json!({
        "id": id, "name": name, "asset_tag": tag, "serial": serial,
        "model": { "id": 3, "name": "Latitude 7440" },
        "status_label": { "id": 1, "name": "Deployed", "status_type": "deployable" },
        "assigned_to": { "id": 7, "name": user, "type": "user" },
        "location": { "id": 2, "name": "Berlin HQ" },
        "custom_fields": {},
    })
}

impl StandIn {
    pub fn new(token: &str) -> Arc<StandIn> {
        Arc::new(StandIn {
            token: format!("Bearer {token}"),
            assets: vec![
                asset(1, "ws-042", "ASSET-0042", "5CG1234XYZ", "Jane Doe"),
                asset(2, "ws-042-old", "ASSET-0007", "5CG0000OLD", "Jane Doe"),
                asset(3, "ws-017", "ASSET-0017", "5CG1717ABC", "Max Mustermann"),
            ],
        })
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/api/v1/hardware", get(search))
            .route("/api/v1/hardware/byserial/{serial}", get(by_serial))
            .route("/api/v1/hardware/bytag/{tag}", get(by_tag))
            .with_state(self.clone())
    }

    fn allowed(&self, headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(self.token.as_str())
    }
}

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": "Unauthenticated." })),
    )
        .into_response()
}

fn missing() -> Response {
    Json(json!({ "status": "error", "messages": "Asset does not exist.", "payload": null }))
        .into_response()
}

async fn search(
    State(snipe): State<Arc<StandIn>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !snipe.allowed(&headers) {
        return unauthenticated();
    }
    let needle = query.get("search").map(String::as_str).unwrap_or_default();
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50);
    let rows: Vec<&Value> = snipe
        .assets
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.contains(needle)))
        .collect();
    Json(json!({ "total": rows.len(), "rows": rows.iter().take(limit).collect::<Vec<_>>() }))
        .into_response()
}

async fn by_serial(
    State(snipe): State<Arc<StandIn>>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    if !snipe.allowed(&headers) {
        return unauthenticated();
    }
    let rows: Vec<&Value> = snipe
        .assets
        .iter()
        .filter(|a| a["serial"] == serial.as_str())
        .collect();
    if rows.is_empty() {
        return missing();
    }
    Json(json!({ "total": rows.len(), "rows": rows })).into_response()
}

async fn by_tag(
    State(snipe): State<Arc<StandIn>>,
    headers: HeaderMap,
    Path(tag): Path<String>,
) -> Response {
    if !snipe.allowed(&headers) {
        return unauthenticated();
    }
    match snipe.assets.iter().find(|a| a["asset_tag"] == tag.as_str()) {
        Some(found) => Json(found.clone()).into_response(),
        None => missing(),
    }
}
