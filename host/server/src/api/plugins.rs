//! `GET /api/v1/plugins` and `/plugins/NAME`: the plugins this server loaded
//! when it started, as `aerie plugin list --json` and `aerie plugin inspect
//! NAME --json` show them (a plugin that did not load, with the reason).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::Caller;
use crate::Server;
use crate::error::ApiError;

/// Each plugin in brief.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", security(("bearer" = [])),
    responses((status = 200, description = "`{\"plugins\": [{name, version, world, actions, description, error}]}`", body = Value),
        (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn list(State(server): State<Arc<Server>>, _: Caller) -> Json<Value> {
    let plugins: Vec<Value> = server
        .plugins
        .iter()
        .map(|(name, view)| match view {
            Ok(view) => json!({
                "name": name,
                "version": view["version"],
                "world": view["world"],
                "actions": view["actions"]
                    .as_array()
                    .map(|actions| actions.iter().map(|a| a["name"].clone()).collect::<Vec<_>>()),
                "description": view["description"],
                "error": null,
            }),
            Err(error) => json!({ "name": name, "error": error }),
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}

/// One plugin whole: actions with their schemas, granted origins, limits.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "the plugin")), security(("bearer" = [])),
    responses((status = 200, description = "the plugin, as `aerie plugin inspect NAME --json` prints it", body = Value),
        (status = 404, description = "no such plugin", body = crate::openapi::ErrorBody),
        (status = 409, description = "the plugin did not load; the message says why", body = crate::openapi::ErrorBody),
        (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(server): State<Arc<Server>>,
    _: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match server.plugins.get(&name) {
        Some(Ok(view)) => Ok(Json(view.clone())),
        Some(Err(error)) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not_loaded",
            format!("plugin `{name}` did not load: {error}"),
        )),
        None => Err(ApiError::not_found(format!(
            "no plugin `{name}` is installed"
        ))),
    }
}
