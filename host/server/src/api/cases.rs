//! `/api/v1/cases`: the cases as `aerie cases` and the `case.*` actions work
//! them. A body is what the action's `with:` takes (the case named by the
//! path, not the body), read by the same [`input`] and made by the same
//! [`Store::change_case`], so the rules and their messages are one. A change
//! is made by the token's user, who must be a user of `[users]`, as the
//! CLI's `--as` must.
//!
//! [`Store::change_case`]: aerie_store::Store::change_case

use std::sync::Arc;

use aerie_engine::epoch_ms;
use aerie_store::cases::input;
use aerie_store::{CaseError, CaseFilter, Observable, StoreError};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Caller};
use crate::Server;
use crate::error::ApiError;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

const UNAUTHORIZED: &str = "no token, or one unknown or expired";

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `open` or `closed`.
    status: Option<String>,
    /// The case type: Enrichment, Investigation, ...
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// At most this many (1 to 1000; 100).
    limit: Option<u32>,
}

/// Cases, newest first, each with its links (as `aerie cases list --json`).
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{\"cases\": [{id, title, type, severity, status, resolution, assignee, tags, parent, links, ...}]}`", body = Value),
        (status = 400, description = "a filter that is not one", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody)))]
pub async fn list(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    if let Some(status) = query
        .status
        .as_deref()
        .filter(|s| !["open", "closed"].contains(s))
    {
        return Err(ApiError::bad_request(format!(
            "status `{status}` is not open or closed"
        )));
    }
    let filter = CaseFilter {
        status: query.status,
        kind: query.kind,
        limit,
    };
    let cases = server
        .store
        .cases(&filter)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "cases": cases })))
}

/// Opens a case, or folds it into the one its `dedupe` key repeats (the
/// body of `case.create`).
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", security(("bearer" = [])),
    request_body(content = Value, description = "`{title, type, severity?, description?, tags?, assignee?, observables?: [{kind, value}], dedupe?: {key, window, window_from?, strategy?}}`"),
    responses((status = 201, description = "a case was opened: `{id, created: true, duplicate_of?, strategy?, similar?}`", body = Value),
        (status = 200, description = "folded into an existing case, nothing opened: `{id, created: false, duplicate_of, strategy}`", body = Value),
        (status = 400, description = "what is wrong with the body, by name", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn create(
    caller: Caller,
    State(server): State<Arc<Server>>,
    Body(body): Body<Value>,
) -> Answer {
    let user = changer(&server, &caller)?;
    let change = input::change("create", &body, None, epoch_ms()).map_err(refused)?;
    let created = server
        .store
        .change_case(change, user, None)
        .await
        .map_err(refused)?;
    let status = if created["created"] == true {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created)))
}

/// A case with its comments, observables, tasks, links and children; a
/// `possibly_related` note carries the one call that closes this case as the
/// other's duplicate.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    responses((status = 200, description = "the case, as `aerie cases show ID --json`", body = Value),
        (status = 404, description = "no such case", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody)))]
pub async fn show(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut case = server
        .store
        .case(&id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no case `{id}`")))?;
    if case["status"] == "open"
        && let Some(links) = case["links"].as_array_mut()
    {
        for link in links
            .iter_mut()
            .filter(|l| l["kind"] == "possibly_related" && l["direction"] == "to")
        {
            link["close_as_duplicate"] = json!({
                "method": "POST",
                "path": format!("/api/v1/cases/{id}/close"),
                "body": { "resolution": "duplicate", "duplicate_of": link["case"] },
            });
        }
    }
    Ok(Json(case))
}

/// Changes fields of an open case (the body of `case.update`, without `id`):
/// `assignee: null` unassigns; observables are added.
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    request_body(content = Value, description = "any of `{title, severity, assignee, tags, description, observables}`"),
    responses((status = 200, description = "`{id, changed: [field, ...]}`", body = Value),
        (status = 400, description = "what is wrong with the body", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such case", body = crate::openapi::ErrorBody),
        (status = 409, description = "the case is closed", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn update(
    caller: Caller,
    state: State<Arc<Server>>,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer {
    make(caller, state, "update", named(body, &[("id", id.into())])?).await
}

/// Adds a comment as the token's user: `{text}`.
#[utoipa::path(post, path = "/api/v1/cases/{id}/comments", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    request_body(content = Value, description = "`{text}`"),
    responses((status = 201, description = "`{id, comment}` (the comment's number)", body = Value),
        (status = 400, description = "no text, or a field that is not one", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such case", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn comment(
    caller: Caller,
    state: State<Arc<Server>>,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer {
    created(make(caller, state, "comment", named(body, &[("id", id.into())])?).await)
}

/// Adds a task to the case's checklist: `{title}`.
#[utoipa::path(post, path = "/api/v1/cases/{id}/tasks", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    request_body(content = Value, description = "`{title}`"),
    responses((status = 201, description = "`{id, task}` (the task's number)", body = Value),
        (status = 400, description = "no title", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such case", body = crate::openapi::ErrorBody),
        (status = 409, description = "the case is closed", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn add_task(
    caller: Caller,
    state: State<Arc<Server>>,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer {
    created(make(caller, state, "task", named(body, &[("id", id.into())])?).await)
}

/// Marks a task done as the token's user, or not done again: `{done}`
/// (true when left out).
#[utoipa::path(patch, path = "/api/v1/cases/{id}/tasks/{task}", tag = "cases",
    params(("id" = String, Path, description = "the case"), ("task" = i64, Path, description = "the task's number")), security(("bearer" = [])),
    request_body(content = Value, description = "`{done: bool}`"),
    responses((status = 200, description = "`{id, task, done}`", body = Value),
        (status = 404, description = "no such case or task", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn mark_task(
    caller: Caller,
    state: State<Arc<Server>>,
    Path((id, task)): Path<(String, i64)>,
    Body(body): Body<Value>,
) -> Answer {
    let body = named(body, &[("id", id.into()), ("task", task.into())])?;
    make(caller, state, "task", body).await
}

/// Links this case to another: `{to, kind?, reason?}` (`linked` by default;
/// `duplicate`, `possibly_related`, ...).
#[utoipa::path(post, path = "/api/v1/cases/{id}/links", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    request_body(content = Value, description = "`{to, kind?, reason?}`"),
    responses((status = 201, description = "`{id, to, kind}`", body = Value),
        (status = 400, description = "a case linked to itself, a field that is not one", body = crate::openapi::ErrorBody),
        (status = 404, description = "either case does not exist", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn link(
    caller: Caller,
    state: State<Arc<Server>>,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer {
    created(make(caller, state, "link", named(body, &[("id", id.into())])?).await)
}

/// Closes the case: `{resolution}`, or `{resolution, duplicate_of}` to close
/// it as another's duplicate and link the two in the same change.
#[utoipa::path(post, path = "/api/v1/cases/{id}/close", tag = "cases", params(("id" = String, Path, description = "the case")), security(("bearer" = [])),
    request_body(content = Value, description = "`{resolution, duplicate_of?}`"),
    responses((status = 200, description = "`{id, resolution, duplicate_of?}`", body = Value),
        (status = 400, description = "no resolution", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such case, or no case `duplicate_of`", body = crate::openapi::ErrorBody),
        (status = 409, description = "already closed", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn close(
    caller: Caller,
    state: State<Arc<Server>>,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer {
    make(caller, state, "close", named(body, &[("id", id.into())])?).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// At most this many (1 to 50; 5).
    limit: Option<usize>,
}

/// The open cases most like this one by shared observables, best first:
/// rare indicators weigh most, ignored and common ones nothing.
#[utoipa::path(get, path = "/api/v1/cases/{id}/similar", tag = "cases", params(("id" = String, Path, description = "the case"), SimilarQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{\"similar\": [{id, title, score, shared: [{kind, value}]}]}`", body = Value),
        (status = 404, description = "no such case", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody)))]
pub async fn similar(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    query: Result<Query<SimilarQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 50, not {limit}"
        )));
    }
    let similar = server
        .store
        .similar_cases(&id, limit)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "similar": similar })))
}

/// Cases by id, dedupe key, or observable (the body of `case.find`).
#[utoipa::path(post, path = "/api/v1/cases/find", tag = "cases", security(("bearer" = [])),
    request_body(content = Value, description = "`{id}`, `{key}`, or `{observable: {kind, value}, type?, closed_within?}`"),
    responses((status = 200, description = "`{found, cases}`", body = Value),
        (status = 400, description = "not one way of naming cases", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody)))]
pub async fn find(
    _caller: Caller,
    State(server): State<Arc<Server>>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let find = input::find(&body, epoch_ms()).map_err(refused)?;
    let cases = server.store.find_cases(&find).await.map_err(refused)?;
    Ok(Json(json!({ "found": cases.len(), "cases": cases })))
}

/// The observables marked as saying nothing about which cases belong
/// together.
#[utoipa::path(get, path = "/api/v1/observables/ignored", tag = "cases", security(("bearer" = [])),
    responses((status = 200, description = "`{\"ignored\": [{kind, value, reason}]}`", body = Value),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody)))]
pub async fn ignored(
    _caller: Caller,
    State(server): State<Arc<Server>>,
) -> Result<Json<Value>, ApiError> {
    let ignored = server
        .store
        .ignored_observables()
        .await
        .map_err(|e| ApiError::store(&e))?;
    let ignored: Vec<Value> = ignored
        .into_iter()
        .map(|(o, reason)| json!({ "kind": o.kind, "value": o.value, "reason": reason }))
        .collect();
    Ok(Json(json!({ "ignored": ignored })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// ip, domain, url, hash, email, host or user.
    kind: String,
    value: String,
    /// True (the default) to ignore it, false to count it again.
    #[serde(default = "yes")]
    ignored: bool,
    /// Why, for the audit and the next analyst.
    reason: Option<String>,
}

fn yes() -> bool {
    true
}

/// Marks an observable as ignored for similarity (the proxy's address, the
/// company's domain), or counts it again; audited.
#[utoipa::path(post, path = "/api/v1/observables/ignored", tag = "cases", security(("bearer" = [])),
    request_body = Ignore,
    responses((status = 200, description = "`{kind, value, ignored}`", body = Value),
        (status = 400, description = "a kind that is not one", body = crate::openapi::ErrorBody),
        (status = 401, description = UNAUTHORIZED, body = crate::openapi::ErrorBody),
        (status = 403, description = "the token's user is not in [users]", body = crate::openapi::ErrorBody)))]
pub async fn ignore(
    caller: Caller,
    State(server): State<Arc<Server>>,
    Body(ignore): Body<Ignore>,
) -> Result<Json<Value>, ApiError> {
    let user = changer(&server, &caller)?;
    let observable = Observable {
        kind: ignore.kind,
        value: ignore.value,
    };
    server
        .store
        .ignore_observable(&observable, ignore.ignored, ignore.reason.as_deref(), user)
        .await
        .map_err(refused)?;
    Ok(Json(
        json!({ "kind": observable.kind, "value": observable.value, "ignored": ignore.ignored }),
    ))
}

/// Makes the change `case.ACTION` with `body` asks for, as the caller.
async fn make(
    caller: Caller,
    State(server): State<Arc<Server>>,
    action: &str,
    body: Value,
) -> Answer {
    let user = changer(&server, &caller)?;
    let change = input::change(action, &body, None, epoch_ms()).map_err(refused)?;
    let output = server
        .store
        .change_case(change, user, None)
        .await
        .map_err(refused)?;
    Ok((StatusCode::OK, Json(output)))
}

/// A change that adds something answers 201.
fn created(answer: Answer) -> Answer {
    answer.map(|(_, body)| (StatusCode::CREATED, body))
}

/// The body with the fields the path names (the case, the task); the body
/// naming them too is refused rather than one silently winning.
fn named(body: Value, fields: &[(&str, Value)]) -> Result<Value, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    for (name, value) in fields {
        if body.contains_key(*name) {
            return Err(ApiError::bad_request(format!(
                "`{name}` is named by the path; leave it out of the body"
            )));
        }
        body.insert((*name).to_owned(), value.clone());
    }
    Ok(Value::Object(body))
}

/// Who makes a change: the token's user, if `[users]` knows them.
fn changer<'a>(server: &Server, caller: &'a Caller) -> Result<&'a str, ApiError> {
    if !server.users.contains_key(&caller.user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "`{}` is not a user in [users] of the config, so changes no case",
                caller.user
            ),
        ));
    }
    Ok(&caller.user)
}

/// A refused change as the caller's mistake, by what was wrong; the store
/// failing as the store failing.
fn refused(e: impl Into<StoreError>) -> ApiError {
    let e = e.into();
    let StoreError::Case(case) = &e else {
        return ApiError::store(&e);
    };
    match case {
        CaseError::Unknown(_) | CaseError::UnknownTask { .. } => ApiError::not_found(e.to_string()),
        CaseError::Closed(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}
