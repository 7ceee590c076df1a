//! What a webhook did since the server started: how many requests it took
//! and refused, and the last of each, for `GET /api/v1/triggers`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Health {
    accepted: AtomicU64,
    refused: AtomicU64,
    last: Mutex<Last>,
}

#[derive(Debug, Default)]
struct Last {
    accepted: Option<String>,
    refusal: Option<Value>,
}

impl Health {
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.last.lock().unwrap_or_else(|e| e.into_inner()).accepted = Some(aerie_engine::now());
    }

    /// A refusal's status and message (never the credential: messages name
    /// what was wrong, not what was sent).
    pub fn refused(&self, status: u16, message: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.last.lock().unwrap_or_else(|e| e.into_inner()).refusal =
            Some(json!({ "at": aerie_engine::now(), "status": status, "message": message }));
    }

    pub fn to_json(&self) -> Value {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "accepted": self.accepted.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "last_accepted": last.accepted,
            "last_refusal": last.refusal,
        })
    }
}
