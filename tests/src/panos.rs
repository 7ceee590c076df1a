//! PAN-OS's XML API log query, as the `panos` plugin uses it: `GET
//! /api/?type=log&log-type=traffic|threat&nlogs=N&query=...` with `X-PAN-KEY`
//! enqueues a job (`<job>N</job>`); `?type=log&action=get&job-id=N` answers the
//! job `ACT` without `<log>` for the first [`StandIn::new`]'s `polls` reads,
//! then `FIN` with the entries whose source or destination is the address the
//! query's `(addr in IP)` names, and forgets the job. A wrong key is 403
//! `<response status="error" code="403">`; an unknown job an error response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Debug)]
pub struct StandIn {
    key: String,
    polls: u32,
    /// Job id → (address, polls left).
    jobs: Mutex<HashMap<u64, (String, u32)>>,
    next: Mutex<u64>,
    /// The queries run, in order.
    queries: Mutex<Vec<String>>,
}

/// `(src, dst, dport, app, action)` of the traffic log.
const TRAFFIC: &[(&str, &str, &str, &str, &str)] = &[
    ("10.0.0.5", "185.220.101.1", "443", "ssl", "allow"),
    ("10.0.0.5", "185.220.101.1", "9001", "tor", "deny"),
    ("10.0.0.9", "8.8.8.8", "53", "dns", "allow"),
];

impl StandIn {
    pub fn new(key: &str, polls: u32) -> Arc<StandIn> {
        Arc::new(StandIn {
            key: key.to_owned(),
            polls,
            jobs: Mutex::new(HashMap::new()),
            next: Mutex::new(18),
            queries: Mutex::new(Vec::new()),
        })
    }

    pub fn queries(&self) -> Vec<String> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/api/", get(api))
            .with_state(self.clone())
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn failed(status: StatusCode, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            r#"<response status="error" code="{code}"><result><msg>{message}</msg></result></response>"#
        ),
    )
}

async fn api(
    State(fw): State<Arc<StandIn>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("x-pan-key").and_then(|v| v.to_str().ok()) != Some(fw.key.as_str()) {
        return failed(StatusCode::FORBIDDEN, "403", "Invalid Credential");
    }
    if query.get("type").map(String::as_str) != Some("log") {
        return failed(StatusCode::OK, "17", "Invalid request type");
    }
    match query.get("action").map(String::as_str) {
        None => {
            let filter = query.get("query").cloned().unwrap_or_default();
            fw.queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(filter.clone());
            let Some(address) = filter
                .strip_prefix("(addr in ")
                .and_then(|rest| rest.split(')').next())
            else {
                return failed(StatusCode::OK, "17", "Invalid query");
            };
            let mut next = fw.next.lock().unwrap_or_else(|e| e.into_inner());
            let job = *next;
            *next += 1;
            fw.jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job, (address.to_owned(), fw.polls));
            xml(
                StatusCode::OK,
                format!(
                    r#"<response status="success" code="19"><result><msg><line>query job enqueued with jobid {job}</line></msg><job>{job}</job></result></response>"#
                ),
            )
        }
        Some("get") => {
            let job: u64 = query
                .get("job-id")
                .and_then(|j| j.parse().ok())
                .unwrap_or(0);
            let mut jobs = fw.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let Some((address, left)) = jobs.get_mut(&job) else {
                return failed(StatusCode::OK, "7", &format!("Job {job} not found"));
            };
            if *left > 0 {
                *left -= 1;
                return xml(
                    StatusCode::OK,
                    format!(
                        r#"<response status="success"><result><job><id>{job}</id><status>ACT</status></job></result></response>"#
                    ),
                );
            }
            let entries: String = TRAFFIC
                .iter()
                .enumerate()
                .filter(|(_, (src, dst, ..))| src == address || dst == address)
                .map(|(n, (src, dst, dport, app, action))| {
                    format!("<entry logid=\"{n}\"><receive_time>2026/12/05 09:0{n}:00</receive_time><src>{src}</src><dst>{dst}</dst><dport>{dport}</dport><app>{app}</app><action>{action}</action><rule>outbound-web</rule></entry>")
                })
                .collect();
            let count = entries.matches("<entry").count();
            jobs.remove(&job);
            xml(
                StatusCode::OK,
                format!(
                    r#"<response status="success"><result><job><id>{job}</id><status>FIN</status></job><log><logs count="{count}" progress="100">{entries}</logs></log></result></response>"#
                ),
            )
        }
        Some("finish") => xml(
            StatusCode::OK,
            r#"<response status="success"><result>job finished</result></response>"#.to_owned(),
        ),
        Some(other) => failed(StatusCode::OK, "17", &format!("Invalid action {other}")),
    }
}
