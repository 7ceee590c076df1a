//! `/api/v1`: what the CLI does against the store, for scripts and the web
//! page. Every call names its user with an API token (`aerie token create`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Server;
use crate::error::ApiError;

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod cases;
pub(crate) mod playbooks;
pub(crate) mod plugins;
pub(crate) mod triggers;

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/audit", get(audit::run))
        .route("/runs/{id}/requests", get(audit::requests))
        .route("/audit/verify", get(audit::verify))
        .route("/playbooks", get(playbooks::list))
        .route("/playbooks/validate", post(playbooks::validate))
        .route("/playbooks/{name}/runs", post(playbooks::start))
        .route("/triggers", get(triggers::list))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}", get(plugins::show))
        .route("/approvals", get(approvals::pending))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/cases", get(cases::list).post(cases::create))
        .route("/cases/find", post(cases::find))
        .route("/cases/{id}", get(cases::show).patch(cases::update))
        .route("/cases/{id}/comments", post(cases::comment))
        .route("/cases/{id}/tasks", post(cases::add_task))
        .route("/cases/{id}/tasks/{task}", patch(cases::mark_task))
        .route("/cases/{id}/links", post(cases::link))
        .route("/cases/{id}/close", post(cases::close))
        .route("/cases/{id}/similar", get(cases::similar))
        .route(
            "/observables/ignored",
            get(cases::ignored).post(cases::ignore),
        )
}

/// A JSON body, or a 400 that names what is wrong with it (serde names the
/// field and the position).
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            // A body that does not parse or does not fit is the caller's
            // mistake alike: 400 (415 stays for a wrong content type).
            Err(rejection) if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Err(ApiError::new(
                    rejection.status(),
                    "unsupported_media_type",
                    rejection.body_text(),
                ))
            }
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// The user an API call acts as, from its `Authorization: Bearer TOKEN`.
pub struct Caller {
    pub user: String,
}

impl FromRequestParts<Arc<Server>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, server: &Arc<Server>) -> Result<Self, ApiError> {
        let token = crate::hooks::auth::bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "no `Authorization: Bearer TOKEN`; `aerie token create --as USER` makes one",
            )
        })?;
        match server.store.token_user(token).await {
            Ok(Some(user)) => Ok(Caller { user }),
            Ok(None) => Err(ApiError::unauthorized("the token is unknown or expired")),
            Err(e) => Err(ApiError::store(&e)),
        }
    }
}

/// The user the token acts as.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "api", security(("bearer" = [])),
    responses((status = 200, description = "`{\"user\": NAME}`", body = Value), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub(crate) async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({ "user": caller.user }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// At most this many (1 to 1000; 50).
    limit: Option<i64>,
    /// queued, running, waiting, succeeded, failed or missed.
    status: Option<String>,
    /// Runs of this playbook only.
    playbook: Option<String>,
    /// A run id: the page after it (a page's `next`).
    before: Option<String>,
}

/// The most runs one page lists.
const MAX_PAGE: i64 = 1000;

/// Runs, newest first, filtered, one page at a time.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"runs\": [{id, playbook, status, started_at, finished_at}], \"next\": ID or null}`", body = Value),
        (status = 400, description = "a filter that is not one, a `before` that names no run", body = crate::openapi::ErrorBody),
        (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub(crate) async fn runs(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    if let Some(status) = &query.status
        && status.parse::<aerie_engine::RunStatus>().is_err()
    {
        return Err(ApiError::bad_request(format!(
            "status `{status}` is not one of queued, running, waiting, succeeded, failed, missed"
        )));
    }
    let before = match &query.before {
        None => None,
        Some(id) => {
            let started_at = server
                .store
                .started_at(id)
                .await
                .map_err(|e| ApiError::store(&e))?
                .ok_or_else(|| ApiError::bad_request(format!("before: there is no run `{id}`")))?;
            Some((started_at, id.clone()))
        }
    };
    let filter = aerie_store::RunFilter {
        status: query.status,
        playbook: query.playbook,
        before,
    };
    let runs = server
        .store
        .runs_where(&filter, limit)
        .await
        .map_err(|e| ApiError::store(&e))?;
    // A full page may have more after it.
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({ "runs": runs, "next": next })))
}

/// A run as `aerie runs show ID --json` prints it: its input, output,
/// steps and logs.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "the run")), security(("bearer" = [])),
    responses((status = 200, description = "the run", body = Value),
        (status = 404, description = "no such run", body = crate::openapi::ErrorBody), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub(crate) async fn run(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match server.store.run(&id).await {
        Ok(Some(run)) => Ok(Json(run)),
        Ok(None) => Err(ApiError::not_found(format!("no run `{id}`"))),
        Err(e) => Err(ApiError::store(&e)),
    }
}
