//! `GET /api/v1/triggers`: what starts runs here and how it is doing — each
//! webhook's requests taken and refused since this server started (with the
//! last refusal's reason), each schedule's last and next tick and its missed
//! ticks (from the store, so every host agrees).

use std::sync::Arc;

use aerie_engine::{Trigger, epoch_ms};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::Caller;
use crate::Server;
use crate::error::ApiError;

fn time(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

/// Each trigger and how it is doing.
#[utoipa::path(get, path = "/api/v1/triggers", tag = "triggers", security(("bearer" = [])),
    responses((status = 200, description = "`{webhooks: [...], schedules: [...]}`", body = Value), (status = 401, description = "no token, or one unknown or expired", body = crate::openapi::ErrorBody)))]
pub async fn list(State(server): State<Arc<Server>>, _: Caller) -> Result<Json<Value>, ApiError> {
    let webhooks: Vec<Value> = server
        .webhooks
        .values()
        .map(|hook| {
            let mut entry = json!({
                "name": hook.name,
                "path": format!("/hooks/{}", hook.name),
                "playbook": hook.playbook().name,
            });
            if let (Some(entry), Value::Object(health)) =
                (entry.as_object_mut(), hook.health.to_json())
            {
                entry.extend(health);
            }
            entry
        })
        .collect();
    let mut schedules = Vec::new();
    let now = epoch_ms();
    for playbook in server.playbooks.values() {
        let Some(Trigger::Cron(schedule)) = &playbook.trigger else {
            continue;
        };
        let next = schedule.timetable().ok().and_then(|t| t.next(now));
        let last = server
            .store
            .last_tick(&playbook.name)
            .await
            .map_err(|e| ApiError::store(&e))?;
        let missed = server
            .store
            .missed(&playbook.name)
            .await
            .map_err(|e| ApiError::store(&e))?;
        schedules.push(json!({
            "playbook": playbook.name,
            "schedule": schedule.spec,
            "tz": schedule.tz.as_deref().unwrap_or("UTC"),
            "missed_policy": schedule.missed.as_str(),
            "overlap": schedule.overlap.as_str(),
            "last_tick": last.and_then(time),
            "next_tick": next.and_then(time),
            "missed": missed,
        }));
    }
    Ok(Json(
        json!({ "webhooks": webhooks, "schedules": schedules }),
    ))
}
