//! The de-duplication decision: whether a case being opened repeats one its
//! key names within the window, and what the strategy makes of it.

use aerie_engine::rfc3339;
use serde_json::json;
use sqlx::AnyConnection;

use super::write::{Opening, comment, insert, link, subject};
use super::{Created, Dedupe, Strategy, WindowFrom, similar};
use crate::audit::{self, Head};
use crate::error::{Doing as _, Result};

impl Created {
    fn new(id: String) -> Created {
        Created {
            id,
            created: true,
            duplicate_of: None,
            strategy: None,
            similar: Vec::new(),
        }
    }
}

/// The de-duplication decision and its writes, inside the writer's
/// transaction.
pub(super) async fn decide(
    conn: &mut AnyConnection,
    head: &mut Head,
    opening: &Opening<'_>,
    dedupe: Option<&Dedupe>,
) -> Result<Created> {
    let (by, now_ms) = (opening.by, opening.now_ms);
    let Some(dedupe) = dedupe else {
        let id = insert(conn, head, opening, None).await?;
        return Ok(Created::new(id));
    };
    // The chain's lock before the key is read: on PostgreSQL another
    // server's decision on the same key commits first or waits for ours.
    audit::lock_chain(conn).await?;
    let seen: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT case_id, first_ms, last_ms FROM case_keys WHERE key = $1")
            .bind(&dedupe.key)
            .fetch_optional(&mut *conn)
            .await
            .doing("looking up the dedupe key")?;
    let repeats = seen.filter(|(_, first, last)| {
        let since = match dedupe.from {
            WindowFrom::First => *first,
            WindowFrom::Last => *last,
        };
        now_ms.saturating_sub(since) <= dedupe.window_ms
    });
    let Some((original, _, _)) = repeats else {
        // New, or the window (the gap) passed: this case is the key's now.
        let id = insert(conn, head, opening, None).await?;
        sqlx::query(
            "INSERT INTO case_keys (key, case_id, first_ms, last_ms, repeats) VALUES ($1, $2, $3, $3, 0)
             ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id, first_ms = excluded.first_ms,
                last_ms = excluded.last_ms, repeats = 0",
        )
        .bind(&dedupe.key)
        .bind(&id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .doing("recording the dedupe key")?;
        let mut created = Created::new(id);
        if dedupe.strategy == Strategy::Suggest {
            created.strategy = Some(Strategy::Suggest.as_str().to_owned());
            created.similar = similar::attach(conn, head, &created.id, by).await?;
        }
        return Ok(created);
    };
    sqlx::query("UPDATE case_keys SET last_ms = $1, repeats = repeats + 1 WHERE key = $2")
        .bind(now_ms)
        .bind(&dedupe.key)
        .execute(&mut *conn)
        .await
        .doing("counting the repeat")?;
    let strategy = dedupe.strategy;
    let folded = |id: String, created: bool| Created {
        id,
        created,
        duplicate_of: Some(original.clone()),
        strategy: Some(strategy.as_str().to_owned()),
        similar: Vec::new(),
    };
    let at = rfc3339(now_ms);
    match strategy {
        Strategy::Drop => {
            let body = json!({ "key": dedupe.key, "at": at, "strategy": "drop", "by": by });
            audit::append(conn, head, &subject(&original), "case.repeated", &body).await?;
            Ok(folded(original.clone(), false))
        }
        Strategy::DropAndComment => {
            let text = format!(
                "Repeated at {at} (dedupe key `{}`): {}",
                dedupe.key, dedupe.fields
            );
            comment(conn, head, &original, by, &text).await?;
            Ok(folded(original.clone(), false))
        }
        Strategy::Child => {
            let id = insert(conn, head, opening, Some(&original)).await?;
            Ok(folded(id, true))
        }
        Strategy::Link => {
            let id = insert(conn, head, opening, None).await?;
            let reason = format!("dedupe key `{}`", dedupe.key);
            link(conn, head, &id, &original, "duplicate", Some(&reason), by).await?;
            Ok(folded(id, true))
        }
        Strategy::NewAndNote => {
            let id = insert(conn, head, opening, None).await?;
            let reason = format!("dedupe key `{}`", dedupe.key);
            link(
                conn,
                head,
                &original,
                &id,
                "possibly_related",
                Some(&reason),
                by,
            )
            .await?;
            let text = format!(
                "Might be related to case {id} (dedupe key `{}`); if it is the same, close this one as its duplicate: \
                 `aerie cases close {original} --resolution duplicate --duplicate-of {id}`, or the case's \
                 `close_as_duplicate` action in the API.",
                dedupe.key
            );
            comment(conn, head, &original, by, &text).await?;
            Ok(folded(id, true))
        }
        Strategy::Suggest => {
            let id = insert(conn, head, opening, None).await?;
            let similar = similar::attach(conn, head, &id, by).await?;
            Ok(Created {
                similar,
                ..folded(id, true)
            })
        }
    }
}
