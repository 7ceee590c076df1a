//! `GET /api/v1/playbooks`, `POST /api/v1/playbooks/NAME/runs` and
//! `POST /api/v1/playbooks/validate`.

use std::sync::Arc;

use aerie_engine::{InputType, Playbook, RunStatus, Trigger, new_run};
use aerie_store::{Enqueued, Guard};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Caller};
use crate::Server;
use crate::error::ApiError;

/// The playbooks served: name, description, file, trigger, inputs.
#[utoipa::path(get, path = "/api/v1/playbooks", tag = "playbooks", security(("bearer" = [])),
    responses((status = 200, description = "`{\"playbooks\": [...]}`", body = Value), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn list(_caller: Caller, State(server): State<Arc<Server>>) -> Json<Value> {
    let playbooks: Vec<Value> = server
        .playbooks
        .values()
        .map(|p| {
            let inputs: serde_json::Map<String, Value> = p
                .inputs
                .iter()
                .map(|(name, spec)| {
                    let kind = InputType::ALL
                        .iter()
                        .find(|(_, t)| *t == spec.kind)
                        .map_or("string", |(word, _)| word);
                    let value = json!({
                        "type": kind,
                        "required": spec.required,
                        "default": spec.default,
                        "description": spec.description,
                    });
                    (name.clone(), value)
                })
                .collect();
            let trigger = match &p.trigger {
                Some(Trigger::Webhook { name, .. }) => json!({ "webhook": name }),
                Some(Trigger::Mail { mailbox }) => json!({ "mail": mailbox }),
                Some(Trigger::Cron(schedule)) => json!({ "cron": {
                    "schedule": schedule.spec,
                    "tz": schedule.tz.as_deref().unwrap_or("UTC"),
                    "missed": schedule.missed.as_str(),
                    "overlap": schedule.overlap.as_str(),
                } }),
                Some(Trigger::Manual) | None => json!({ "manual": {} }),
            };
            json!({
                "name": p.name,
                "description": p.description,
                "file": p.path.display().to_string(),
                "trigger": trigger,
                "inputs": inputs,
            })
        })
        .collect();
    Json(json!({ "playbooks": playbooks }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The playbook's inputs (`{}` when left out).
    #[serde(default = "empty")]
    input: Value,
}

fn empty() -> Value {
    json!({})
}

/// Queues a run of the playbook, acting as the caller; answers as a webhook
/// does, once the run is stored.
#[utoipa::path(post, path = "/api/v1/playbooks/{name}/runs", tag = "playbooks",
    params(("name" = String, Path, description = "the playbook"),
        ("Idempotency-Key" = Option<String>, Header, description = "a repeat within a day answers the first run")),
    request_body = Start, security(("bearer" = [])),
    responses((status = 202, description = "`{\"run\": ID}`, once the run is stored", body = Value),
        (status = 400, description = "input the playbook does not take", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such playbook", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn start(
    caller: Caller,
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(start): Body<Start>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let playbook = server
        .playbooks
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no playbook `{name}` is loaded")))?;
    let run = new_run(playbook, &start.input, RunStatus::Queued)
        .map_err(|e| ApiError::bad_request(format!("{e}; nothing was queued")))?;
    let guard = Guard {
        idempotency_key: crate::hooks::idempotency_key(&headers)?,
        ..Guard::default()
    };
    let trigger = format!("api:{}", caller.user);
    let enqueued = server
        .store
        .enqueue(&trigger, playbook.source(), vec![run], guard)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let ids = match enqueued {
        Enqueued::Queued { ids, .. } => {
            // Not refused when the queue is full (a person asked), but counted.
            server.backlog.queued(1).await;
            server.wake.notify_one();
            ids
        }
        Enqueued::Repeated(ids) => ids,
        Enqueued::Replayed => Vec::new(),
    };
    tracing::info!(playbook = %name, user = %caller.user, "queued through the API");
    Ok((StatusCode::ACCEPTED, Json(json!({ "run": ids.first() }))))
}

/// Checks a playbook's text as `aerie playbook validate` does, against the
/// plugins, people and playbooks this server has; nothing is stored or
/// served. Every problem is listed, in the order of the text.
#[utoipa::path(post, path = "/api/v1/playbooks/validate", tag = "playbooks",
    request_body(content = String, content_type = "application/yaml", description = "the playbook's YAML"),
    security(("bearer" = [])),
    responses((status = 200, description = "`{\"valid\", \"name\", \"errors\": [{\"line\", \"column\", \"message\"}]}`", body = Value),
        (status = 400, description = "a body that is not UTF-8 text", body = crate::openapi::ErrorBody),
        (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn validate(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not UTF-8 text (a playbook's YAML): {e}"
        ))
    })?;
    let parsed = Playbook::read(std::path::Path::new("(posted)"), text);
    let name = (!parsed.playbook.name.is_empty()).then(|| parsed.playbook.name.clone());
    let errors: Vec<Value> = match parsed.validate(&server.catalog) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .iter()
            .map(|e| {
                json!({
                    "line": e.at.map(|at| at.line),
                    "column": e.at.map(|at| at.column),
                    "message": e.message,
                })
            })
            .collect(),
    };
    Ok(Json(json!({
        "valid": errors.is_empty(),
        "name": name,
        "errors": errors,
    })))
}
