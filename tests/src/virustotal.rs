//! VirusTotal API v3, the parts the `virustotal` plugin uses.
//!
//! `GET /api/v3/{files,ip_addresses,domains,urls}/{id}` with the `x-apikey`
//! header. Answers 200 with `data.attributes.last_analysis_stats` for the
//! fixtures below, 404 `NotFoundError` for anything else, 401
//! `WrongCredentialsError` for a wrong key, and 429 `QuotaExceededError` once the
//! configured quota is spent.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// `(collection, id, malicious, suspicious, harmless, undetected)`.
pub const FIXTURES: &[(&str, &str, u64, u64, u64, u64)] = &[
    // EICAR test file.
    ("files", "44d88612fea8a8f36de82e1278abb02f", 62, 0, 0, 10),
    (
        "files",
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        62,
        0,
        0,
        10,
    ),
    // The empty file.
    ("files", "d41d8cd98f00b204e9800998ecf8427e", 0, 0, 0, 72),
    ("ip_addresses", "8.8.8.8", 0, 0, 62, 30),
    ("ip_addresses", "185.220.101.1", 12, 2, 50, 28),
    ("domains", "example.com", 0, 0, 65, 27),
    ("domains", "login-paypal-secure.com", 14, 3, 40, 35),
    ("domains", "sketchy-downloads.net", 0, 2, 55, 35),
    // base64url("http://login-paypal-secure.com/verify")
    (
        "urls",
        "aHR0cDovL2xvZ2luLXBheXBhbC1zZWN1cmUuY29tL3ZlcmlmeQ",
        9,
        1,
        60,
        20,
    ),
];

/// What the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Debug)]
pub struct StandIn {
    key: String,
    /// Requests answered before the quota runs out; `None` is unlimited.
    quota: Mutex<Option<u64>>,
    /// Requests still to be answered 429 before normal service resumes.
    throttled: Mutex<u64>,
    received: Mutex<Vec<Received>>,
}

impl StandIn {
    pub fn new(key: &str) -> Arc<StandIn> {
        Arc::new(StandIn {
            key: key.to_owned(),
            quota: Mutex::new(None),
            throttled: Mutex::new(0),
            received: Mutex::new(Vec::new()),
        })
    }

    pub fn set_quota(&self, remaining: Option<u64>) {
        *self.quota.lock().unwrap_or_else(|e| e.into_inner()) = remaining;
    }

    /// Answers the next `n` requests with 429, as VirusTotal does when the
    /// per-minute rate is exceeded, then serves normally.
    pub fn throttle(&self, n: u64) {
        *self.throttled.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/api/v3/{collection}/{id}", get(object))
            .with_state(self.clone())
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn object(
    State(vt): State<Arc<StandIn>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let api_key = header("x-apikey");
    vt.received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            path: format!("/api/v3/{collection}/{id}"),
            api_key: api_key.clone(),
            authorization: header("authorization"),
        });
    if api_key.as_deref() != Some(vt.key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "WrongCredentialsError",
            "Wrong API key",
        );
    }
    {
        let mut throttled = vt.throttled.lock().unwrap_or_else(|e| e.into_inner());
        if *throttled > 0 {
            *throttled -= 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                "Too many requests",
            );
        }
    }
    {
        let mut quota = vt.quota.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(remaining) = quota.as_mut() {
            if *remaining == 0 {
                return error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "QuotaExceededError",
                    "Quota exceeded",
                );
            }
            *remaining -= 1;
        }
    }
    let kind = match collection.as_str() {
        "files" => "file",
        "ip_addresses" => "ip_address",
        "domains" => "domain",
        "urls" => "url",
        _ => return error(StatusCode::NOT_FOUND, "NotFoundError", "Resource not found"),
    };
    let found = FIXTURES
        .iter()
        .find(|(c, i, ..)| *c == collection && i.eq_ignore_ascii_case(&id));
    let Some(&(_, fixture_id, malicious, suspicious, harmless, undetected)) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            &format!("{id} not found"),
        );
    };
    let body: Value = json!({
        "data": {
            "id": fixture_id,
            "type": kind,
            "links": {"self": format!("https://www.virustotal.com/api/v3/{collection}/{fixture_id}")},
            "attributes": {
                "last_analysis_stats": {
                    "malicious": malicious,
                    "suspicious": suspicious,
                    "harmless": harmless,
                    "undetected": undetected,
                    "timeout": 0
                },
                "reputation": -(malicious as i64)
            }
        }
    });
    Json(body).into_response()
}
