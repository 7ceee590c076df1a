//! Shodan's host lookup, `GET /shodan/host/{ip}?key=KEY`: the host's record
//! for the fixtures below, 404 `{"error": "No information available for
//! that IP."}` for any other address, 401 for a wrong key.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// `(ip, ports, tags, org)`.
pub const HOSTS: &[(&str, &[u64], &[&str], &str)] = &[
    (
        "185.220.101.1",
        &[22, 443, 9001],
        &["tor", "c2"],
        "Tor exit relay operator",
    ),
    ("8.8.8.8", &[53, 443], &[], "Google LLC"),
];

#[derive(Debug)]
pub struct StandIn {
    key: String,
    /// The addresses asked for, in order.
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
            .route("/shodan/host/{ip}", get(host))
            .with_state(self.clone())
    }
}

async fn host(
    State(shodan): State<Arc<StandIn>>,
    Path(ip): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    shodan
        .asked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ip.clone());
    if query.get("key") != Some(&shodan.key) {
        let error = json!({ "error": "Please provide a valid API key." });
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let Some((_, ports, tags, org)) = HOSTS.iter().find(|(address, ..)| *address == ip) else {
        let error = json!({ "error": "No information available for that IP." });
        return (StatusCode::NOT_FOUND, Json(error)).into_response();
    };
    let data: Vec<Value> = ports
        .iter()
        .map(|port| json!({ "port": port, "transport": "tcp", "product": format!("service on {port}"), "data": "banner", "timestamp": "2026-12-01T00:00:00" }))
        .collect();
    Json(json!({
        "ip_str": ip, "ports": ports, "hostnames": [], "domains": [], "org": org, "isp": org,
        "asn": "AS64500", "os": null, "country_code": "DE", "tags": tags, "vulns": ["CVE-2023-38408"],
        "data": data,
    }))
    .into_response()
}
