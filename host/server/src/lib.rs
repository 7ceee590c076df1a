//! The server room: the HTTP API and the triggers, each a module that turns
//! an outside event into a queued run. [`app`] is the whole HTTP surface as
//! one axum [`Router`], testable without a socket; the binary binds it,
//! runs the workers that execute queued runs, and handles signals.
//!
//! - `hooks`: `POST /hooks/NAME`, the webhook triggers and their guards;
//! - `api`: `/api/v1`, for scripts and the web page, behind API tokens;
//! - `health`: `/healthz` and `/readyz`;
//! - `peer`: the client's address, and allow-lists;
//! - `backlog`: `max_queued`, without counting the queue on every request.

mod api;
pub mod backlog;
mod error;
mod health;
pub mod hooks;
pub mod openapi;
pub mod peer;
pub mod schedules;
pub mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use aerie_engine::{Catalog, Playbook};
use aerie_manifest::UserConfig;
use aerie_store::Store;
use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use ipnet::IpNet;
use tokio::sync::Notify;

pub use backlog::Backlog;
pub use error::ApiError;
pub use hooks::{Auth, Webhook};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;

/// What the handlers share.
pub struct Server {
    pub store: Store,
    /// By name, as served at `/hooks/NAME`.
    pub webhooks: BTreeMap<String, Webhook>,
    /// Every valid playbook of the playbooks folder, by name: what the API
    /// lists and starts.
    pub playbooks: BTreeMap<String, Arc<Playbook>>,
    /// `[users]` of the config: who may decide which approvals.
    pub users: BTreeMap<String, UserConfig>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `max_queued`: how many runs may wait before triggers answer 503.
    pub backlog: Backlog,
    /// Told once per run queued, so an idle worker claims it at once.
    pub wake: Arc<Notify>,
    /// What `/metrics` renders; none when no recorder was installed.
    pub metrics: Option<PrometheusHandle>,
    /// Every installed plugin, by name, as it loaded at start (its
    /// `aerie plugin inspect --json` view), or why it did not.
    pub plugins: BTreeMap<String, Result<Value, String>>,
    /// What a posted playbook is validated against: the plugins, people and
    /// playbooks of the site, as at start.
    pub catalog: Catalog,
    /// `[audit]`'s signing key file and checkpoints file, when set: the
    /// API's verify checks the chain against the latest checkpoint too.
    pub checkpointing: Option<(PathBuf, PathBuf)>,
}

pub fn app(server: Arc<Server>) -> Router {
    Router::new()
        .route("/hooks/{name}", post(hooks::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .nest("/api/v1", api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(server)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("nothing is served at {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}
