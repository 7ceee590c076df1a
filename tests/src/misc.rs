//! A generic upstream for sandbox tests: large bodies, slow answers, an echo
//! of the request (as a reflecting API would), and a record of every request's
//! headers.

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
            .route("/echo", get(echo))
            .route("/gzip", get(gzipped))
            .layer(axum::middleware::from_fn_with_state(self.clone(), record))
            .with_state(self.clone())
    }
}

async fn record(
    State(up): State<Arc<Upstream>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = pairs(request.headers());
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

/// Every header as a `(name, value)` pair, in order.
fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// `n` bytes of `a`.
async fn bytes(Path(n): Path<usize>, _headers: HeaderMap) -> String {
    "a".repeat(n)
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "late"
}

/// Reflects the request back, as careless APIs and debug endpoints do: the
/// URL in a `links.self` field and a `Location` header, every request header
/// as a response header, and each value again base64-, base64url-, hex- and
/// percent-encoded in the body.
async fn echo(request: axum::extract::Request) -> axum::response::Response {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut values = pairs(request.headers());
    values.push(("url".to_owned(), target.clone()));
    let encoded: Vec<serde_json::Value> = values
        .iter()
        .map(|(name, value)| {
            serde_json::json!({
                "name": name,
                "raw": value,
                "base64": STANDARD.encode(value),
                "base64url": URL_SAFE_NO_PAD.encode(value),
                "hex": value.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
                "percent": value.bytes().map(|b| format!("%{b:02X}")).collect::<String>(),
            })
        })
        .collect();
    let body = serde_json::json!({ "links": { "self": target }, "echo": encoded });
    let mut response = axum::response::IntoResponse::into_response(axum::Json(body));
    let headers = response.headers_mut();
    for (name, value) in request.headers() {
        if let Ok(echo) = axum::http::HeaderName::try_from(format!("x-echo-{name}")) {
            headers.append(echo, value.clone());
        }
    }
    if let Ok(location) = axum::http::HeaderValue::try_from(&target) {
        headers.insert(axum::http::header::LOCATION, location);
    }
    response
}

/// Answers in gzip whatever was asked: a compressed echo would carry a
/// reflected secret past a scrubber that reads the bytes as sent. (The body
/// is a gzip header and nothing more; the broker must refuse on the header.)
async fn gzipped() -> axum::response::Response {
    let mut response = axum::response::IntoResponse::into_response(
        &b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"[..],
    );
    response.headers_mut().insert(
        axum::http::header::CONTENT_ENCODING,
        axum::http::HeaderValue::from_static("gzip"),
    );
    response
}
