//! The audit trail: an append-only table where each entry carries the SHA-256 of
//! the one before, so a changed, removed or reordered entry breaks the chain.
//!
//! Entries are appended in the same transaction as the state change they
//! describe; the trail cannot say a step finished that the database does not
//! have, nor the reverse. The chain proves integrity from the first entry to the
//! last; to detect entries forged *after* the last one, keep the latest hash
//! somewhere else (`aerie audit verify` prints it).

use futures_util::TryStreamExt as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use sqlx::AnyConnection;

use aerie_engine::now;

use crate::error::{Doing as _, Result};
use crate::{Backend, Store};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub run_id: String,
    pub kind: String,
    pub body: Value,
    pub hash: String,
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verification {
    /// Every entry matches; `last` is the hash to keep elsewhere.
    Intact { entries: u64, last: String },
    /// The first entry that does not match, and how.
    Broken { seq: i64, why: String },
}

fn digest(prev: &str, at: &str, run_id: &str, kind: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [prev, at, run_id, kind] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(body.as_bytes());
    hex::encode(hasher.finalize())
}

/// The chain's last hash as one write transaction knows it. Valid only inside
/// that transaction, which holds the chain's lock: nobody else can append.
///
/// A buffered head (the writer's) keeps the entries appended and writes them
/// in one statement at [`flush`], before the commit: half the statements of
/// a batch of run writes. Reading the trail inside such a transaction would
/// not see them; nothing does.
#[derive(Debug, Default)]
pub(crate) struct Head {
    last: Option<String>,
    pending: Option<Vec<Entry>>,
}

impl Head {
    pub(crate) fn buffered() -> Head {
        Head {
            last: None,
            pending: Some(Vec::new()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    at: String,
    run_id: String,
    kind: String,
    body: String,
    prev: String,
    hash: String,
}

/// The PostgreSQL advisory lock that serializes appends to the chain.
const CHAIN_LOCK: i64 = 0x0061_6572_6965; // "aerie" in ASCII

/// Holds the chain until the transaction ends, so no other process appends
/// between this one reading the head and committing. SQLite's BEGIN IMMEDIATE
/// already holds the database's one write lock.
pub(crate) async fn lock_chain(conn: &mut AnyConnection) -> Result<()> {
    if Backend::of(conn) == Backend::Postgres {
        // count(*) so the row has a type every driver decodes (the lock's own is void).
        sqlx::query("SELECT count(*) FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
            .bind(CHAIN_LOCK)
            .execute(&mut *conn)
            .await
            .doing("locking the audit chain")?;
    }
    Ok(())
}

/// Appends one entry inside the caller's (write) transaction.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    head: &mut Head,
    run_id: &str,
    kind: &str,
    body: &Value,
) -> Result<()> {
    let prev = match head.last.take() {
        Some(prev) => prev,
        None => {
            lock_chain(conn).await?;
            sqlx::query_scalar("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or_else(|| GENESIS.to_owned())
        }
    };
    let at = now();
    let body = body.to_string();
    let hash = digest(&prev, &at, run_id, kind, &body);
    head.last = Some(hash.clone());
    let entry = Entry {
        at,
        run_id: run_id.to_owned(),
        kind: kind.to_owned(),
        body,
        prev,
        hash,
    };
    match &mut head.pending {
        Some(pending) => pending.push(entry),
        None => insert(conn, std::slice::from_ref(&entry)).await?,
    }
    Ok(())
}

/// Writes what a buffered head holds, in the order appended.
pub(crate) async fn flush(conn: &mut AnyConnection, head: &mut Head) -> Result<()> {
    let pending = head
        .pending
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    // Six parameters a row, well inside both databases' limits.
    for rows in pending.chunks(1000) {
        insert(conn, rows).await?;
    }
    Ok(())
}

/// One INSERT of `rows`; their `seq` follows their order.
async fn insert(conn: &mut AnyConnection, rows: &[Entry]) -> Result<()> {
    let mut sql =
        String::from("INSERT INTO audit (at, run_id, kind, body, prev_hash, hash) VALUES ");
    for n in 0..rows.len() {
        let p = n * 6;
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        query = query
            .bind(&row.at)
            .bind(&row.run_id)
            .bind(&row.kind)
            .bind(&row.body)
            .bind(&row.prev)
            .bind(&row.hash);
    }
    query
        .execute(&mut *conn)
        .await
        .doing("appending to the audit trail")?;
    Ok(())
}

impl Store {
    /// Appends an event about something that is not a run (`plugin:NAME`,
    /// say) to the audit chain, in a transaction of its own.
    pub async fn record_event(&self, subject: &str, kind: &str, body: &Value) -> Result<()> {
        let shared = std::sync::Arc::new((subject.to_owned(), kind.to_owned(), body.clone()));
        self.writer
            .submit(Box::new(move |conn, head| {
                let shared = shared.clone();
                Box::pin(async move {
                    let (subject, kind, body) = &*shared;
                    append(conn, head, subject, kind, body).await
                })
            }))
            .await
    }

    /// Recomputes the chain from the first entry; names the first that differs.
    pub async fn verify_audit(&self) -> Result<Verification> {
        let mut rows = sqlx::query(
            "SELECT seq, at, run_id, kind, body, prev_hash, hash FROM audit ORDER BY seq",
        )
        .fetch(&self.pool);
        let mut prev = GENESIS.to_owned();
        let mut entries = 0u64;
        while let Some(row) = rows.try_next().await? {
            let seq: i64 = row.try_get("seq")?;
            // A column of the wrong type (a file edited by hand) breaks the
            // trail at that entry; it is reported, never a panic.
            let text = |column: &str| -> Result<String, Verification> {
                row.try_get::<String, _>(column)
                    .map_err(|e| Verification::Broken {
                        seq,
                        why: format!("its `{column}` cannot be read as text ({e})"),
                    })
            };
            let read = || -> Result<[String; 6], Verification> {
                Ok([
                    text("prev_hash")?,
                    text("hash")?,
                    text("at")?,
                    text("run_id")?,
                    text("kind")?,
                    text("body")?,
                ])
            };
            let [stored_prev, hash, at, run_id, kind, body] = match read() {
                Ok(columns) => columns,
                Err(broken) => return Ok(broken),
            };
            if stored_prev != prev {
                return Ok(Verification::Broken {
                    seq,
                    why: "it does not follow the entry before it (an entry was removed, inserted or reordered)".to_owned(),
                });
            }
            let expected = digest(&prev, &at, &run_id, &kind, &body);
            if expected != hash {
                return Ok(Verification::Broken {
                    seq,
                    why: "its content does not match its hash (it was changed)".to_owned(),
                });
            }
            prev = hash;
            entries += 1;
        }
        Ok(Verification::Intact {
            entries,
            last: prev,
        })
    }

    /// How many entries the chain has and the last one's hash (the genesis
    /// hash for an empty chain), read without verifying anything.
    pub async fn audit_head(&self) -> Result<(u64, String)> {
        let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
            .fetch_one(&self.pool)
            .await?;
        let head: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok((
            u64::try_from(entries).unwrap_or(0),
            head.unwrap_or_else(|| GENESIS.to_owned()),
        ))
    }

    /// The hash of entry `n` of the chain (1-based, in chain order), if the
    /// chain has so many.
    pub async fn audit_hash_at(&self, n: u64) -> Result<Option<String>> {
        if n == 0 {
            return Ok(Some(GENESIS.to_owned()));
        }
        let offset = i64::try_from(n - 1).unwrap_or(i64::MAX);
        Ok(
            sqlx::query_scalar("SELECT hash FROM audit ORDER BY seq LIMIT 1 OFFSET $1")
                .bind(offset)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A run's entries, in order.
    pub async fn audit_entries(&self, run_id: &str) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, run_id, kind, body, hash FROM audit WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditEntry {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    run_id: row.try_get("run_id")?,
                    kind: row.try_get("kind")?,
                    body: serde_json::from_str(row.try_get::<&str, _>("body")?)?,
                    hash: row.try_get("hash")?,
                })
            })
            .collect()
    }
}
