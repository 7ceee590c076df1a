//! A generic upstream for sandbox tests: large bodies, slow answers, and a
//! record of every request's headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;

#[derive(Debug, Default)]
pub struct Upstream {
    headers: Mutex<Vec<Vec<(String, String)>>>,
    paths: Mutex<Vec<String>>,
}

impl Upstream {
    pub fn new() -> Arc<Upstream> {
        Arc::new(Upstream::default())
    }

    /// The headers of every request received, in order.
    pub fn received(&self) -> Vec<Vec<(String, String)>> {
        self.headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The path and query of every request received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/bytes/{n}", get(bytes))
            .route("/slow/{ms}", get(slow))
            .layer(axum::middleware::from_fn_with_state(self.clone(), record))
            .with_state(self.clone())
    }
}

async fn record(
    State(up): State<Arc<Upstream>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    up.headers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(headers);
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    up.paths
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(target);
    next.run(request).await
}

/// `n` bytes of `a`.
async fn bytes(Path(n): Path<usize>, _headers: HeaderMap) -> String {
    "a".repeat(n)
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "late"
}
