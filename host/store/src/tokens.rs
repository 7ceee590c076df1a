//! API tokens: made here, shown once, kept only as their SHA-256.

use aerie_engine::{epoch_ms, now};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::Store;
use crate::error::{Doing as _, Result, StoreError};

/// What every token starts with, so a leaked one is recognisable (secret
/// scanners key on such prefixes).
pub const TOKEN_PREFIX: &str = "aerie_";

/// A token as listed: never the token itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub created_at: String,
    /// Milliseconds since the Unix epoch; `None` never expires.
    pub expires_ms: Option<i64>,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// A new token acting as `user`, valid until `expires_ms` (or forever).
    /// The token is returned once; the store keeps only its hash.
    pub async fn create_token(
        &self,
        user: &str,
        expires_ms: Option<i64>,
    ) -> Result<(TokenInfo, String)> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| StoreError::Failed {
            doing: "drawing a token from the system's random source".to_owned(),
            source: e.to_string().into(),
        })?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let info = TokenInfo {
            id: uuid::Uuid::now_v7().to_string(),
            user: user.to_owned(),
            created_at: now(),
            expires_ms,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, hash, user_name, created_at, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&info.id)
        .bind(digest(&token))
        .bind(&info.user)
        .bind(&info.created_at)
        .bind(info.expires_ms)
        .execute(&self.pool)
        .await
        .doing("storing the token")?;
        Ok((info, token))
    }

    /// The user `token` acts as, if it is a token this store made and it
    /// has not expired. The lookup is by hash, so the comparison never sees
    /// the token and takes no time that depends on it.
    pub async fn token_user(&self, token: &str) -> Result<Option<String>> {
        let found: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT user_name, expires_ms FROM api_tokens WHERE hash = $1")
                .bind(digest(token))
                .fetch_optional(&self.pool)
                .await
                .doing("looking up a token")?;
        Ok(found.and_then(|(user, expires)| match expires {
            Some(at) if at <= epoch_ms() => None,
            _ => Some(user),
        }))
    }
}
