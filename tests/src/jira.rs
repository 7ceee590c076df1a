//! Jira's REST API, the parts the `jira` plugin uses, as Cloud (v3) or Data
//! Center (v2) serves them (shared/reference/service-mode.md §3):
//!
//! - `POST /rest/api/{v}/issue`: required fields checked with Jira's
//!   `errors` map; on v3 a description must be an ADF document, on v2 text;
//!   201 `{id, key, self}`.
//! - `GET /rest/api/{v}/issue/{key}`; `POST …/comment` (201); `GET|POST
//!   …/transitions` (204) over a small workflow; `POST …/attachments`
//!   (multipart, refused without `X-Atlassian-Token: no-check`).
//! - Cloud: `POST /rest/api/3/search/jql` paged by an opaque
//!   `nextPageToken` with `isLast`, no `total`; the old `/rest/api/{2,3}/search`
//!   answers 410 with the message Jira gives since the 2025 removal.
//!   Data Center: `POST /rest/api/2/search` with `startAt` and `total`.
//! - Auth: Cloud takes `Basic base64(email:token)`, Data Center `Bearer PAT`;
//!   anything else is 401. [`StandIn::throttle`] answers the next requests
//!   429 with `Retry-After`, as Cloud's burst limit does.
//!
//! JQL is read only as far as the tests need: `field = "value"` clauses
//! joined by AND over project, labels, status and issuetype, and `text ~
//! "word"`; anything else is a 400 as Jira gives for a query it cannot parse.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Cloud,
    DataCenter,
}

/// An issue as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub key: String,
    pub fields: Value,
    pub status: String,
    pub comments: Vec<Value>,
    /// `(filename, mime type, bytes)`.
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct StandIn {
    deployment: Deployment,
    /// The whole `Authorization` value accepted.
    authorization: String,
    issues: Mutex<Vec<Issue>>,
    throttled: Mutex<u32>,
    /// `METHOD path` of each request, in order.
    received: Mutex<Vec<String>>,
}

/// The project the stand-in knows, and its issue types.
pub const PROJECT: &str = "SOC";
const ISSUE_TYPES: &[&str] = &["Task", "Bug", "Investigation"];
/// `(id, name, from, to)`: the workflow's transitions.
const WORKFLOW: &[(&str, &str, &str, &str)] = &[
    ("11", "Start Progress", "Open", "In Progress"),
    ("21", "Resolve", "In Progress", "Done"),
    ("31", "Close", "Open", "Closed"),
    ("41", "Close", "In Progress", "Closed"),
];

impl StandIn {
    /// Cloud, accepting `email:token` as Basic.
    pub fn cloud(email: &str, token: &str) -> Arc<StandIn> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
        StandIn::new(Deployment::Cloud, format!("Basic {basic}"))
    }

    /// Data Center, accepting the personal access token as Bearer.
    pub fn data_center(pat: &str) -> Arc<StandIn> {
        StandIn::new(Deployment::DataCenter, format!("Bearer {pat}"))
    }

    fn new(deployment: Deployment, authorization: String) -> Arc<StandIn> {
        Arc::new(StandIn {
            deployment,
            authorization,
            issues: Mutex::new(Vec::new()),
            throttled: Mutex::new(0),
            received: Mutex::new(Vec::new()),
        })
    }

    /// Answers the next `n` requests 429 with `Retry-After: 1`.
    pub fn throttle(&self, n: u32) {
        *lock(&self.throttled) = n;
    }

    pub fn issues(&self) -> Vec<Issue> {
        lock(&self.issues).clone()
    }

    pub fn received(&self) -> Vec<String> {
        lock(&self.received).clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/rest/api/{v}/issue", post(create))
            .route("/rest/api/{v}/issue/{key}", get(show))
            .route("/rest/api/{v}/issue/{key}/comment", post(comment))
            .route(
                "/rest/api/{v}/issue/{key}/transitions",
                get(transitions).post(transition),
            )
            .route("/rest/api/{v}/issue/{key}/attachments", post(attach))
            .route("/rest/api/{v}/search", get(old_search).post(old_search))
            .route("/rest/api/{v}/search/jql", get(search_jql).post(search_jql))
            .layer(axum::middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }

    fn version(&self) -> &'static str {
        match self.deployment {
            Deployment::Cloud => "3",
            Deployment::DataCenter => "2",
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn errors(status: StatusCode, messages: &[&str], fields: Value) -> Response {
    (
        status,
        Json(json!({ "errorMessages": messages, "errors": fields })),
    )
        .into_response()
}

fn no_issue() -> Response {
    errors(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

/// Records the request; refuses a wrong credential, a throttled request and
/// an API version this deployment does not serve.
async fn guard(
    State(jira): State<Arc<StandIn>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    lock(&jira.received).push(format!("{} {}", request.method(), request.uri().path()));
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if authorization != Some(jira.authorization.as_str()) {
        return errors(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            json!({}),
        );
    }
    {
        let mut throttled = lock(&jira.throttled);
        if *throttled > 0 {
            *throttled -= 1;
            let mut response = errors(
                StatusCode::TOO_MANY_REQUESTS,
                &["Rate limit exceeded."],
                json!({}),
            );
            let headers = response.headers_mut();
            headers.insert("retry-after", "1".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            headers.insert("ratelimit-reason", "jira-burst-based".parse().unwrap());
            return response;
        }
    }
    let version = request
        .uri()
        .path()
        .strip_prefix("/rest/api/")
        .and_then(|p| p.split('/').next());
    if version != Some(jira.version()) {
        return errors(
            StatusCode::NOT_FOUND,
            &["No API of that version here."],
            json!({}),
        );
    }
    next.run(request).await
}

async fn create(State(jira): State<Arc<StandIn>>, body: String) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Unexpected character in the request body."],
            json!({}),
        );
    };
    let fields = &body["fields"];
    let mut wrong = serde_json::Map::new();
    if fields["project"]["key"] != PROJECT {
        wrong.insert("project".into(), "valid project is required".into());
    }
    if fields["summary"]
        .as_str()
        .is_none_or(|s| s.trim().is_empty())
    {
        wrong.insert(
            "summary".into(),
            "You must specify a summary of the issue.".into(),
        );
    }
    if !ISSUE_TYPES
        .iter()
        .any(|t| fields["issuetype"]["name"] == *t)
    {
        wrong.insert("issuetype".into(), "valid issue type is required".into());
    }
    let description = &fields["description"];
    let fits = match jira.deployment {
        Deployment::Cloud => description.is_null() || description["type"] == "doc",
        Deployment::DataCenter => description.is_null() || description.is_string(),
    };
    if !fits {
        wrong.insert(
            "description".into(),
            "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                .into(),
        );
    }
    if !wrong.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &[], Value::Object(wrong));
    }
    let mut issues = lock(&jira.issues);
    let number = issues.len() + 1;
    let issue = Issue {
        id: (10_000 + number).to_string(),
        key: format!("{PROJECT}-{number}"),
        fields: fields.clone(),
        status: "Open".to_owned(),
        comments: Vec::new(),
        attachments: Vec::new(),
    };
    let answer = json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("/rest/api/{}/issue/{}", jira.version(), issue.id),
    });
    issues.push(issue);
    (StatusCode::CREATED, Json(answer)).into_response()
}

fn find<'a>(issues: &'a mut [Issue], key: &str) -> Option<&'a mut Issue> {
    issues.iter_mut().find(|i| i.key == key || i.id == key)
}

fn view(issue: &Issue) -> Value {
    let mut fields = issue.fields.clone();
    fields["status"] = json!({ "name": issue.status });
    fields["comment"] = json!({ "comments": issue.comments, "total": issue.comments.len() });
    json!({ "id": issue.id, "key": issue.key, "fields": fields })
}

async fn show(
    State(jira): State<Arc<StandIn>>,
    Path((_, key)): Path<(String, String)>,
) -> Response {
    match find(&mut lock(&jira.issues), &key) {
        Some(issue) => Json(view(issue)).into_response(),
        None => no_issue(),
    }
}

async fn comment(
    State(jira): State<Arc<StandIn>>,
    Path((_, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let fits = match jira.deployment {
        Deployment::Cloud => body["body"]["type"] == "doc",
        Deployment::DataCenter => body["body"].is_string(),
    };
    if !fits {
        return errors(
            StatusCode::BAD_REQUEST,
            &[],
            json!({ "comment": "Comment body can not be empty!" }),
        );
    }
    let mut issues = lock(&jira.issues);
    let Some(issue) = find(&mut issues, &key) else {
        return no_issue();
    };
    let id = (20_000 + issue.comments.len()).to_string();
    let comment = json!({
        "id": id, "body": body["body"], "author": { "displayName": "aerie" },
        "created": "2026-12-05T10:00:00.000+0000", "updated": "2026-12-05T10:00:00.000+0000",
    });
    issue.comments.push(comment.clone());
    (StatusCode::CREATED, Json(comment)).into_response()
}

async fn transitions(
    State(jira): State<Arc<StandIn>>,
    Path((_, key)): Path<(String, String)>,
) -> Response {
    let mut issues = lock(&jira.issues);
    let Some(issue) = find(&mut issues, &key) else {
        return no_issue();
    };
    let offered: Vec<Value> = WORKFLOW
        .iter()
        .filter(|(_, _, from, _)| *from == issue.status)
        .map(|(id, name, _, to)| {
            json!({ "id": id, "name": name, "to": { "name": to }, "hasScreen": false,
                    "isGlobal": false, "isInitial": false, "isAvailable": true, "isConditional": false })
        })
        .collect();
    Json(json!({ "expand": "transitions", "transitions": offered })).into_response()
}

async fn transition(
    State(jira): State<Arc<StandIn>>,
    Path((_, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut issues = lock(&jira.issues);
    let Some(issue) = find(&mut issues, &key) else {
        return no_issue();
    };
    let id = body["transition"]["id"].as_str().unwrap_or_default();
    let Some((_, _, _, to)) = WORKFLOW
        .iter()
        .find(|(t, _, from, _)| *t == id && *from == issue.status)
    else {
        return errors(
            StatusCode::BAD_REQUEST,
            &[format!("Transition id '{id}' is not valid for this issue.").as_str()],
            json!({}),
        );
    };
    issue.status = (*to).to_owned();
    if let Some(added) = body["update"]["comment"][0]["add"].as_object() {
        issue
            .comments
            .push(json!({ "id": "t", "body": added["body"] }));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn attach(
    State(jira): State<Arc<StandIn>>,
    Path((_, key)): Path<(String, String)>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if headers
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        != Some("no-check")
    {
        return errors(StatusCode::FORBIDDEN, &["XSRF check failed"], json!({}));
    }
    let mut files = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        let mime = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        match field.bytes().await {
            Ok(bytes) => files.push((name, mime, bytes.to_vec())),
            Err(_) => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["Malformed multipart body."],
                    json!({}),
                );
            }
        }
    }
    let mut issues = lock(&jira.issues);
    let Some(issue) = find(&mut issues, &key) else {
        return no_issue();
    };
    let mut made = Vec::new();
    for (name, mime, bytes) in files {
        made.push(json!({
            "id": (30_000 + issue.attachments.len()).to_string(),
            "filename": name, "size": bytes.len(), "mimeType": mime,
        }));
        issue.attachments.push((name, mime, bytes));
    }
    Json(Value::Array(made)).into_response()
}

/// `/rest/api/{2,3}/search`: gone on Cloud, the search on Data Center.
async fn old_search(State(jira): State<Arc<StandIn>>, body: String) -> Response {
    if jira.deployment == Deployment::Cloud {
        return errors(
            StatusCode::GONE,
            &[
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
            ],
            json!({}),
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let matched = match matching(&jira, body["jql"].as_str().unwrap_or_default()) {
        Ok(matched) => matched,
        Err(message) => return errors(StatusCode::BAD_REQUEST, &[message.as_str()], json!({})),
    };
    let start = body["startAt"].as_u64().unwrap_or(0) as usize;
    let max = body["maxResults"].as_u64().unwrap_or(50).min(100) as usize;
    let page: Vec<Value> = matched.iter().skip(start).take(max).cloned().collect();
    Json(json!({ "startAt": start, "maxResults": max, "total": matched.len(), "issues": page }))
        .into_response()
}

async fn search_jql(State(jira): State<Arc<StandIn>>, body: String) -> Response {
    if jira.deployment == Deployment::DataCenter {
        return errors(
            StatusCode::NOT_FOUND,
            &["null for uri: /rest/api/2/search/jql"],
            json!({}),
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let matched = match matching(&jira, body["jql"].as_str().unwrap_or_default()) {
        Ok(matched) => matched,
        Err(message) => return errors(StatusCode::BAD_REQUEST, &[message.as_str()], json!({})),
    };
    // The token is opaque to callers; here it is the offset, encoded.
    let start = match body["nextPageToken"].as_str() {
        None => 0,
        Some(token) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(start) => start,
            None => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["The provided next page token is invalid or expired."],
                    json!({}),
                );
            }
        },
    };
    let max = body["maxResults"].as_u64().unwrap_or(50).min(100) as usize;
    let page: Vec<Value> = matched.iter().skip(start).take(max).cloned().collect();
    let after = start + page.len();
    let is_last = after >= matched.len();
    let token = (!is_last)
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.to_string()));
    Json(json!({ "issues": page, "nextPageToken": token, "isLast": is_last })).into_response()
}

/// The issues `jql` matches, oldest first, as Jira returns them; a query
/// Jira cannot run is Jira's message for it.
fn matching(jira: &StandIn, jql: &str) -> Result<Vec<Value>, String> {
    if jql.trim().is_empty() {
        return Err("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".to_owned());
    }
    let mut clauses = Vec::new();
    for clause in jql.split(" AND ") {
        let (field, op, value) = if let Some((f, v)) = clause.split_once('=') {
            (f, "=", v)
        } else if let Some((f, v)) = clause.split_once('~') {
            (f, "~", v)
        } else {
            return Err(format!("Error in the JQL Query: cannot read `{clause}`."));
        };
        let value = value.trim().trim_matches('"').to_owned();
        clauses.push((field.trim().to_ascii_lowercase(), op, value));
    }
    let issues = lock(&jira.issues);
    Ok(issues
        .iter()
        .filter(|issue| {
            clauses
                .iter()
                .all(|(field, op, value)| match (field.as_str(), *op) {
                    ("project", "=") => issue.key.starts_with(&format!("{value}-")),
                    ("labels", "=") => issue.fields["labels"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|x| x == value.as_str())),
                    ("status", "=") => issue.status.eq_ignore_ascii_case(value),
                    ("issuetype", "=") => issue.fields["issuetype"]["name"] == value.as_str(),
                    ("text", "~") => issue.fields.to_string().contains(value.as_str()),
                    _ => false,
                })
        })
        .map(view)
        .collect())
}
