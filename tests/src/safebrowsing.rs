//! Google Safe Browsing's Lookup API v4, `POST
//! /v4/threatMatches:find?key=KEY`: a match for each listed entry below, `{}`
//! when nothing is listed, Google's error body for a wrong key or a request
//! without entries.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// `(url, threat type)` on the lists.
pub const LISTED: &[(&str, &str)] = &[
    (
        "http://login-paypal-secure.com/verify",
        "SOCIAL_ENGINEERING",
    ),
    ("http://login-paypal-secure.com/", "SOCIAL_ENGINEERING"),
];

#[derive(Debug)]
pub struct StandIn {
    key: String,
    /// The entries asked about, in order.
    asked: Mutex<Vec<String>>,
}

impl StandIn {
    pub fn new(key: &str) -> Arc<StandIn> {
        Arc::new(StandIn {
            key: key.to_owned(),
            asked: Mutex::new(Vec::new()),
        })
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/v4/threatMatches:find", post(find))
            .with_state(self.clone())
    }
}

fn error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message, "status": name } });
    (status, Json(body)).into_response()
}

async fn find(
    State(sb): State<Arc<StandIn>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if query.get("key") != Some(&sb.key) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    let entries: Vec<String> = body["threatInfo"]["threatEntries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["url"].as_str().map(str::to_owned))
        .collect();
    if entries.is_empty()
        || body["client"]["clientId"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid request: a client id and threat entries are required.",
        );
    }
    sb.asked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(entries.iter().cloned());
    let matches: Vec<Value> = entries
        .iter()
        .filter_map(|url| LISTED.iter().find(|(listed, _)| listed == url))
        .map(|(url, threat)| {
            json!({
                "threatType": threat, "platformType": "ANY_PLATFORM", "threatEntryType": "URL",
                "threat": { "url": url }, "cacheDuration": "300s",
            })
        })
        .collect();
    if matches.is_empty() {
        return Json(json!({})).into_response();
    }
    Json(json!({ "matches": matches })).into_response()
}
