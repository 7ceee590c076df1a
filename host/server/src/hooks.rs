//! `POST /hooks/NAME`: a webhook's request becomes queued runs, stored before
//! the sender hears `202 {"run": ID}`. Every refusal happens before anything
//! is stored, in the order that costs an unwelcome sender least: the address,
//! the rate, the token, the size, then the body.

pub mod auth;
mod health;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aerie_engine::{
    Playbook, RunBudget, RunStatus, Templates, Trigger, TriggerDedupe, epoch_ms, new_run,
};
use aerie_manifest::{Rate, WebhookConfig};
use aerie_store::{Enqueued, Fold, Guard};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt as _;
use ipnet::IpNet;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::{Server, peer};
pub use auth::Auth;
use health::Health;

/// One served webhook: the operator's rules and the playbook it starts.
pub struct Webhook {
    pub name: String,
    auth: Auth,
    allow_from: Vec<IpNet>,
    max_body: u64,
    limiter: Option<DefaultDirectRateLimiter>,
    playbook: Arc<Playbook>,
    /// Request headers the trigger passes on, lowercase.
    headers: Vec<String>,
    /// The trigger's `dedupe` block, and the templates its key renders with.
    dedupe: Option<(TriggerDedupe, Templates)>,
    pub health: Health,
}

impl Webhook {
    /// The webhook `name` of the config, starting `playbook`, whose trigger
    /// selects `headers`. Refused when the playbook cannot take what a
    /// webhook gives it.
    pub fn new(
        name: &str,
        config: &WebhookConfig,
        auth: Auth,
        playbook: Arc<Playbook>,
        headers: Vec<String>,
    ) -> Result<Webhook, String> {
        if !playbook.inputs.contains_key("body") {
            return Err("its webhook trigger passes the request as `inputs.body`: declare `body` under `inputs:` (type object, say)".to_owned());
        }
        if !headers.is_empty() && !playbook.inputs.contains_key("headers") {
            return Err(
                "its webhook trigger selects headers, passed as `inputs.headers`: declare `headers` (type object) under `inputs:`"
                    .to_owned(),
            );
        }
        let dedupe = match &playbook.trigger {
            Some(Trigger::Webhook {
                dedupe: Some(dedupe),
                ..
            }) => Some((dedupe.clone(), Templates::new())),
            _ => None,
        };
        Ok(Webhook {
            name: name.to_owned(),
            auth,
            allow_from: config.allow_from.clone(),
            max_body: config.max_body,
            limiter: config.rate.map(limiter),
            playbook,
            headers,
            dedupe,
            health: Health::default(),
        })
    }

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }
}

/// The trigger's dedupe key for one request's `input`; a key that renders
/// empty names nothing and is refused.
fn fold_key(
    dedupe: &TriggerDedupe,
    templates: &Templates,
    input: &Value,
) -> Result<String, String> {
    let ctx = json!({ "inputs": input });
    let key = templates
        .render_str(&dedupe.key.text, &ctx, &RunBudget::default())
        .map_err(|e| format!("the trigger's dedupe key: {e}"))?;
    let key = match key {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if aerie_engine::key_names_nothing(&key) {
        return Err(format!(
            "the trigger's dedupe key `{}` rendered `{key}` for this body, which names nothing: the fields it reads are missing",
            dedupe.key.text
        ));
    }
    Ok(key)
}

fn limiter(rate: Rate) -> DefaultDirectRateLimiter {
    let count = std::num::NonZeroU32::new(rate.count).unwrap_or(std::num::NonZeroU32::MIN);
    let period = rate.per / count.get();
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count);
    RateLimiter::direct(quota)
}

/// What a body is: one JSON document, or one per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Json,
    Lines,
}

fn shape(headers: &HeaderMap) -> Result<Shape, ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = given
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Shape::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(Shape::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(Shape::Lines),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type `{given}` is not accepted: send application/json, or application/x-ndjson for one run per line"
            ),
        )),
    }
}

fn bodies(shape: Shape, bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    match shape {
        Shape::Json => serde_json::from_slice(bytes)
            .map(|value| vec![value])
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}"))),
        Shape::Lines => {
            let mut values = Vec::new();
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let value = serde_json::from_slice(line).map_err(|e| {
                    ApiError::bad_request(format!(
                        "line {} of the body is not JSON: {e}; nothing was queued",
                        n + 1
                    ))
                })?;
                values.push(value);
            }
            if values.is_empty() {
                return Err(ApiError::bad_request("the body has no JSON lines"));
            }
            Ok(values)
        }
    }
}

/// The most a sender's `Idempotency-Key` may be.
const MAX_KEY: usize = 255;

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= MAX_KEY => {
            Ok(Some(key.trim().to_owned()))
        }
        _ => Err(ApiError::bad_request(format!(
            "`Idempotency-Key` must be 1 to {MAX_KEY} visible ASCII characters"
        ))),
    }
}

/// A webhook: the JSON body becomes `inputs.body` (NDJSON: one run a line).
/// The guards, in order: `allow_from`, `rate`, the credential, `max_body`,
/// the content type, the signature, the playbook's inputs, `max_queued`.
#[utoipa::path(post, path = "/hooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "a `[webhooks.NAME]` of the config"),
        ("Idempotency-Key" = Option<String>, Header, description = "a repeat within a day answers the first runs")),
    request_body(content = Value, content_type = "application/json"),
    responses(
        (status = 202, description = "`{\"run\": ID}` or `{\"runs\": [...]}`, once stored (NDJSON lines folded into earlier runs listed as `folded`)", body = Value),
        (status = 200, description = "folded: the body repeated the trigger's dedupe key within its window; `{\"run\": ID, \"folded\": true}` names the run the key started, and nothing new runs", body = Value),
        (status = 400, description = "a body that does not parse or fit the inputs", body = crate::openapi::ErrorBody),
        (status = 401, description = "a missing or wrong credential", body = crate::openapi::ErrorBody),
        (status = 403, description = "an address outside `allow_from`", body = crate::openapi::ErrorBody),
        (status = 413, description = "over `max_body`", body = crate::openapi::ErrorBody),
        (status = 415, description = "neither JSON nor NDJSON", body = crate::openapi::ErrorBody),
        (status = 429, description = "over the rate; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "the queue is over `max_queued`, or the store is down; see Retry-After", body = crate::openapi::ErrorBody)))]
pub async fn receive(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    // In a task of its own: a sender that hangs up while its runs are being
    // stored drops this handler, and the runs it stored must still be
    // counted (and logged) as fired.
    match tokio::spawn(handle(server, name, request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a webhook's handler failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the webhook's handler failed; see the server's log",
            )
            .into_response()
        }
    }
}

async fn handle(server: Arc<Server>, name: String, request: Request) -> Response {
    let Some(hook) = server.webhooks.get(&name) else {
        return ApiError::not_found(format!("no webhook `{name}` is served here")).into_response();
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let trigger = format!("webhook:{name}");
    match accept(&server, hook, peer, request).await {
        Ok(response) => {
            metrics::counter!("aerie_trigger_fires_total", "trigger" => trigger).increment(1);
            hook.health.accepted();
            response
        }
        Err(refusal) => {
            tracing::warn!(webhook = %name, peer = ?peer, status = refusal.status.as_u16(), reason = %refusal.message, "webhook refused");
            metrics::counter!(
                "aerie_trigger_refusals_total",
                "trigger" => trigger,
                "status" => refusal.status.as_str().to_owned(),
            )
            .increment(1);
            hook.health
                .refused(refusal.status.as_u16(), &refusal.message);
            refusal.into_response()
        }
    }
}

async fn accept(
    server: &Server,
    hook: &Webhook,
    peer: Option<IpAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // Without a socket (an in-process test) there is no peer to allow.
    let client = peer.map(|peer| peer::client(peer, headers, &server.trusted_proxies));
    if !hook.allow_from.is_empty() && !client.is_some_and(|c| peer::allowed(c, &hook.allow_from)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} may not post to this webhook",
                client.map_or("an unknown address".to_owned(), |c| c.to_string())
            ),
        ));
    }
    if let Some(limiter) = &hook.limiter
        && let Err(not_until) = limiter.check()
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this webhook's rate is exceeded; nothing was queued",
        )
        .retry_after(wait));
    }
    let now = epoch_ms() / 1000;
    if !hook.auth.needs_body() {
        hook.auth
            .check(headers, &[], now)
            .map_err(ApiError::unauthorized)?;
    }
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is over this webhook's max_body of {} bytes; nothing was queued",
                hook.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_body) {
        return Err(too_big());
    }
    let shape = shape(headers)?;
    let limit = usize::try_from(hook.max_body).unwrap_or(usize::MAX);
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_big());
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "the body could not be read: {e}"
            )));
        }
    };
    let passed = hook
        .auth
        .check(headers, &bytes, now)
        .map_err(ApiError::unauthorized)?;
    let key = idempotency_key(headers)?;
    let mut runs = Vec::new();
    let mut fold = Vec::new();
    for (n, body) in bodies(shape, &bytes)?.into_iter().enumerate() {
        let line = match shape {
            Shape::Lines => format!("line {}: ", n + 1),
            Shape::Json => String::new(),
        };
        let mut input = json!({ "body": body });
        if !hook.headers.is_empty() {
            input["headers"] = hook
                .headers
                .iter()
                .filter_map(|name| {
                    let value = headers.get(name.as_str())?.to_str().ok()?;
                    Some((name.clone(), Value::from(value)))
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        let run = new_run(&hook.playbook, &input, RunStatus::Queued)
            .map_err(|e| ApiError::bad_request(format!("{line}{e}; nothing was queued")))?;
        if let Some((dedupe, templates)) = &hook.dedupe {
            let key = fold_key(dedupe, templates, &input)
                .map_err(|e| ApiError::bad_request(format!("{line}{e}; nothing was queued")))?;
            fold.push(Some(Fold {
                key,
                window_ms: i64::try_from(dedupe.window.as_millis()).unwrap_or(i64::MAX),
                from: dedupe.from,
                digest: hex::encode(Sha256::digest(input["body"].to_string())),
            }));
        }
        runs.push(run);
    }
    server.backlog.admit(&server.store, runs.len()).await?;
    let guard = Guard {
        idempotency_key: key,
        replay: passed.replay,
        fold,
    };
    let count = runs.len();
    let enqueued = server
        .store
        .enqueue(
            &format!("webhook:{}", hook.name),
            hook.playbook.source(),
            runs,
            guard,
        )
        .await
        .map_err(|e| ApiError::store(&e))?;
    let (ids, folded, repeated) = match enqueued {
        Enqueued::Queued { ids, folded } => {
            let queued = count - folded.len();
            server.backlog.queued(queued).await;
            for _ in 0..queued {
                server.wake.notify_one();
            }
            if !folded.is_empty() {
                metrics::counter!("aerie_trigger_folds_total", "trigger" => format!("webhook:{}", hook.name))
                    .increment(folded.len() as u64);
            }
            tracing::info!(webhook = %hook.name, runs = queued, folded = folded.len(), "queued");
            (ids, folded, false)
        }
        Enqueued::Repeated(ids) => (ids, Vec::new(), true),
        Enqueued::Replayed => {
            return Err(ApiError::unauthorized(
                "this signature was accepted before: a replayed request is refused",
            ));
        }
    };
    // A request folded whole started nothing: 200, naming the run its key
    // started. Lines of NDJSON folded are listed by position.
    let (status, body) = match (shape, ids.as_slice()) {
        (Shape::Json, [id]) if !folded.is_empty() => {
            (StatusCode::OK, json!({ "run": id, "folded": true }))
        }
        (Shape::Json, [id]) => (StatusCode::ACCEPTED, json!({ "run": id })),
        _ if folded.is_empty() => (StatusCode::ACCEPTED, json!({ "runs": ids })),
        _ => (
            StatusCode::ACCEPTED,
            json!({ "runs": ids, "folded": folded }),
        ),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if repeated {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
