//! Elasticsearch's search API, the part the `elastic` plugin uses: `POST
//! /{index}/_search` with `Authorization: ApiKey ...`, a `bool` filter of
//! `range` (date math `now-Nd`/`now-Nh`), `multi_match` phrase over every
//! field and `term` on `host.name`, `size` and a sort on the time field.
//! Answers `{took, timed_out, _shards, hits: {total: {value, relation},
//! hits: [{_index, _id, _score, _source}]}}` over the events below (the
//! newest first), 401 for a wrong key, 404 `index_not_found_exception` for an
//! index that matches nothing, 400 for a query it cannot read.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct StandIn {
    authorization: String,
    /// `(index, id, source)`; `@timestamp` in the source is epoch ms.
    events: Vec<(String, String, Value)>,
    /// The bodies searched with, in order.
    searched: Mutex<Vec<Value>>,
}

const DAY_MS: i64 = 86_400_000;

impl StandIn {
    /// Accepts `ApiKey {key}`; holds proxy events for the beacon to
    /// 185.220.101.1 (three, the last 40 days ago) and one for 8.8.8.8.
    pub fn new(key: &str) -> Arc<StandIn> {
        let now = now_ms();
        let event = |days: i64, host: &str, dst: &str| {
            json!({
                "@timestamp": now - days * DAY_MS,
                "host": { "name": host },
                "destination": { "ip": dst },
                "event": { "action": "proxy-allowed" },
                "message": format!("{host} connected to {dst}"),
            })
        };
        Arc::new(StandIn {
            authorization: format!("ApiKey {key}"),
            events: vec![
                (
                    "logs-proxy".to_owned(),
                    "e1".to_owned(),
                    event(1, "ws-042", "185.220.101.1"),
                ),
                (
                    "logs-proxy".to_owned(),
                    "e2".to_owned(),
                    event(3, "ws-042", "185.220.101.1"),
                ),
                (
                    "logs-proxy".to_owned(),
                    "e3".to_owned(),
                    event(9, "ws-017", "185.220.101.1"),
                ),
                (
                    "logs-proxy".to_owned(),
                    "e4".to_owned(),
                    event(40, "ws-099", "185.220.101.1"),
                ),
                (
                    "logs-dns".to_owned(),
                    "e5".to_owned(),
                    event(2, "ws-042", "8.8.8.8"),
                ),
            ],
            searched: Mutex::new(Vec::new()),
        })
    }

    pub fn searched(&self) -> Vec<Value> {
        self.searched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/{index}/_search", post(search))
            .with_state(self.clone())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn error(status: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({ "error": { "type": kind, "reason": reason }, "status": status.as_u16() });
    (status, Json(body)).into_response()
}

/// `now-28d` as epoch ms.
fn date_math(text: &str, now: i64) -> Option<i64> {
    let span = text.strip_prefix("now-")?;
    let (number, unit) = span.split_at(span.len().checked_sub(1)?);
    let number: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    Some(now - number * unit_ms)
}

fn mentions(value: &Value, phrase: &str) -> bool {
    match value {
        Value::String(text) => text.contains(phrase),
        Value::Object(map) => map.values().any(|v| mentions(v, phrase)),
        Value::Array(items) => items.iter().any(|v| mentions(v, phrase)),
        _ => false,
    }
}

async fn search(
    State(es): State<Arc<StandIn>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(es.authorization.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            "unable to authenticate with provided credentials",
        );
    }
    es.searched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(body.clone());
    let prefix = index.trim_end_matches('*');
    let in_index: Vec<&(String, String, Value)> = es
        .events
        .iter()
        .filter(|(i, ..)| {
            if index.ends_with('*') {
                i.starts_with(prefix)
            } else {
                *i == index
            }
        })
        .collect();
    if in_index.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            &format!("no such index [{index}]"),
        );
    }
    let now = now_ms();
    let mut matched: Vec<&(String, String, Value)> = Vec::new();
    let filters = body["query"]["bool"]["filter"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    'events: for event in in_index {
        for filter in &filters {
            let keep = if let Some(range) = filter["range"].as_object() {
                let Some((field, bounds)) = range.iter().next() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "parsing_exception",
                        "[range] query malformed",
                    );
                };
                let Some(since) = bounds["gte"].as_str().and_then(|g| date_math(g, now)) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "parse_exception",
                        "failed to parse date field",
                    );
                };
                event.2[field].as_i64().is_some_and(|t| t >= since)
            } else if let Some(phrase) = filter["multi_match"]["query"].as_str() {
                mentions(&event.2, phrase)
            } else if let Some(host) = filter["term"]["host.name"].as_str() {
                event.2["host"]["name"] == host
            } else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "parsing_exception",
                    &format!("unknown query {filter}"),
                );
            };
            if !keep {
                continue 'events;
            }
        }
        matched.push(event);
    }
    matched.sort_by_key(|(.., source)| std::cmp::Reverse(source["@timestamp"].as_i64()));
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    let hits: Vec<Value> = matched
        .iter()
        .take(size)
        .map(|(index, id, source)| json!({ "_index": index, "_id": id, "_score": null, "_source": source }))
        .collect();
    Json(json!({
        "took": 3, "timed_out": false,
        "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "total": { "value": matched.len(), "relation": "eq" }, "max_score": null, "hits": hits },
    }))
    .into_response()
}
