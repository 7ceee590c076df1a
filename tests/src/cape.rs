//! CAPE's REST API v2 (`/apiv2`), with Django REST framework's `Authorization:
//! Token KEY`: `tasks/create/url/` (form field `url`), `tasks/search/{md5,
//! sha1,sha256}/HASH/`, `tasks/status/ID/` and `tasks/get/report/ID/`. A new
//! task is `running` for the first [`StandIn::polls`] status reads, then
//! `reported`; a URL on a phishing domain scores 8.5, anything else 1.0. The
//! EICAR sample is held, analysed as task 7 (score 10). Failures answer as
//! CAPE does: `{"error": true, "error_value": "..."}`.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// EICAR's SHA-256, whose analysis CAPE holds as task 7.
pub const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

#[derive(Debug)]
pub struct StandIn {
    token: String,
    polls: u32,
    /// `(id, url, status reads left before reported)`.
    tasks: Mutex<Vec<(u64, String, u32)>>,
}

impl StandIn {
    /// Accepts `Token {token}`; a new task is reported after `polls` reads.
    pub fn new(token: &str, polls: u32) -> Arc<StandIn> {
        Arc::new(StandIn {
            token: format!("Token {token}"),
            polls,
            tasks: Mutex::new(vec![(7, String::new(), 0)]),
        })
    }

    /// The URLs submitted, in order (the EICAR task aside).
    pub fn submitted(&self) -> Vec<String> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .iter()
            .filter(|(id, ..)| *id != 7)
            .map(|(_, url, _)| url.clone())
            .collect()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/apiv2/tasks/create/url/", post(create))
            .route("/apiv2/tasks/search/{algorithm}/{hash}/", get(search))
            .route("/apiv2/tasks/status/{id}/", get(status))
            .route("/apiv2/tasks/get/report/{id}/", get(report))
            .layer(axum::middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }
}

fn failed(message: &str) -> Response {
    Json(json!({ "error": true, "error_value": message })).into_response()
}

async fn guard(
    State(cape): State<Arc<StandIn>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(cape.token.as_str()) {
        let body = json!({ "detail": "Invalid token." });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    next.run(request).await
}

async fn create(
    State(cape): State<Arc<StandIn>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(url) = form.get("url").filter(|u| !u.is_empty()) else {
        return failed("URL value is empty");
    };
    let mut tasks = cape.tasks.lock().unwrap_or_else(|e| e.into_inner());
    let id = 100 + tasks.len() as u64;
    tasks.push((id, url.clone(), cape.polls));
    Json(json!({ "error": false, "data": { "task_ids": [id], "message": "Task ID(s) created" }, "errors": [], "url": [url] })).into_response()
}

async fn search(Path((algorithm, hash)): Path<(String, String)>) -> Response {
    if !["md5", "sha1", "sha256"].contains(&algorithm.as_str()) {
        return failed("Invalid hash type");
    }
    let data: Vec<Value> = if hash == EICAR_SHA256 {
        vec![json!({ "id": 7, "category": "file", "status": "reported", "target": "eicar.com" })]
    } else {
        Vec::new()
    };
    Json(json!({ "error": false, "data": data })).into_response()
}

async fn status(State(cape): State<Arc<StandIn>>, Path(id): Path<u64>) -> Response {
    let mut tasks = cape.tasks.lock().unwrap_or_else(|e| e.into_inner());
    let Some(task) = tasks.iter_mut().find(|(t, ..)| *t == id) else {
        return failed("Task does not exist");
    };
    let status = if task.2 > 0 {
        task.2 -= 1;
        "running"
    } else {
        "reported"
    };
    Json(json!({ "error": false, "data": status })).into_response()
}

async fn report(State(cape): State<Arc<StandIn>>, Path(id): Path<u64>) -> Response {
    let tasks = cape.tasks.lock().unwrap_or_else(|e| e.into_inner());
    let Some((_, url, left)) = tasks.iter().find(|(t, ..)| *t == id) else {
        return failed("Task does not exist");
    };
    if *left > 0 {
        return failed("Report not found");
    }
    let (malscore, signatures, detections) = if id == 7 {
        (
            10.0,
            json!([{ "name": "antivirus_eicar", "severity": 3, "description": "EICAR test file" }]),
            json!([{ "family": "EICAR" }]),
        )
    } else if url.contains("login-paypal-secure") {
        (
            8.5,
            json!([{ "name": "phishing_page", "severity": 3, "description": "A credential phishing page" }]),
            json!([]),
        )
    } else {
        (1.0, json!([]), json!([]))
    };
    Json(json!({
        "info": { "id": id, "category": if id == 7 { "file" } else { "url" } },
        "malscore": malscore, "malstatus": if malscore >= 6.0 { "Malicious" } else { "Clean" },
        "signatures": signatures, "detections": detections,
    }))
    .into_response()
}
