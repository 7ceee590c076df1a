//! Similar cases: open cases that share a case's observables, weighted so
//! that rare indicators count more than common ones.
//!
//! An observable's weight is its inverse case frequency, `ln((N + 1) / df)`
//! over the N cases of which df hold it, and nothing when it is in more than
//! half of them (the proxy's own address, the corporate domain) or the
//! operator marked it as ignored. A candidate's score is the weight of what
//! it shares over the weight of everything the case holds: 1.0 shares all
//! that says anything, 0.0 nothing.

use std::collections::{BTreeMap, HashMap};

use aerie_engine::now;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyConnection;

use super::Observable;
use super::write::link;
use crate::Store;
use crate::audit::{self, Head};
use crate::error::{Doing as _, Result};

/// An open case like another, with what they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similar {
    pub id: String,
    pub title: String,
    /// 0.0 to 1.0.
    pub score: f64,
    pub shared: Vec<Observable>,
}

/// Below this many cases, how often an observable appears says nothing about
/// it, and every shared one counts.
const MIN_CASES: i64 = 10;
/// Candidates are found through observables held by at most this many
/// cases: a case that shares only indicators more common than that is not
/// looked for (they weigh little, and reading them all would not scale).
const RARE_ENOUGH: i64 = 1_000;
/// Candidates scored in full, the most promising first.
const CANDIDATES: usize = 200;
/// Similar cases a `suggest` attaches.
pub(super) const ATTACHED: usize = 5;

fn weight(df: i64, total: i64) -> f64 {
    if total >= MIN_CASES && df * 2 > total {
        return 0.0;
    }
    ((total + 1) as f64 / df.max(1) as f64).ln()
}

/// The open cases most like case `id`, best first.
pub(super) async fn similar_to(
    conn: &mut AnyConnection,
    id: &str,
    limit: usize,
) -> Result<Vec<Similar>> {
    let total: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'cases'")
        .fetch_one(&mut *conn)
        .await
        .doing("reading the number of cases")?;
    let held: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT o.kind, o.value, COALESCE(n.cases, 1),
                CASE WHEN i.kind IS NULL THEN 0 ELSE 1 END
         FROM case_observables o
         LEFT JOIN observable_counts n ON n.kind = o.kind AND n.value = o.value
         LEFT JOIN ignored_observables i ON i.kind = o.kind AND i.value = o.value
         WHERE o.case_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .doing("reading the case's observables")?;
    let mut weights = HashMap::new();
    let mut everything = 0.0;
    let mut rare = Vec::new();
    for (kind, value, df, ignored) in held {
        let w = if ignored == 1 { 0.0 } else { weight(df, total) };
        if w <= 0.0 {
            continue;
        }
        everything += w;
        if df <= RARE_ENOUGH {
            rare.push((kind.clone(), value.clone(), w));
        }
        weights.insert(Observable { kind, value }, w);
    }
    // Candidates by what the rare observables alone give them.
    let mut partial: HashMap<String, f64> = HashMap::new();
    for (kind, value, w) in &rare {
        let holders: Vec<String> = sqlx::query_scalar(
            "SELECT o.case_id FROM case_observables o JOIN cases c ON c.id = o.case_id
             WHERE o.kind = $1 AND o.value = $2 AND o.case_id <> $3 AND c.status = 'open'
             LIMIT $4",
        )
        .bind(kind)
        .bind(value)
        .bind(id)
        .bind(RARE_ENOUGH)
        .fetch_all(&mut *conn)
        .await
        .doing("finding cases that share an observable")?;
        for holder in holders {
            *partial.entry(holder).or_default() += w;
        }
    }
    let mut candidates: Vec<(String, f64)> = partial.into_iter().collect();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    candidates.truncate(CANDIDATES);
    let mut found = Vec::with_capacity(candidates.len());
    for (candidate, _) in candidates {
        let theirs: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT o.kind, o.value, c.title FROM case_observables o JOIN cases c ON c.id = o.case_id
             WHERE o.case_id = $1",
        )
        .bind(&candidate)
        .fetch_all(&mut *conn)
        .await
        .doing("reading a similar case")?;
        let mut title = String::new();
        let mut shared = BTreeMap::new();
        for (kind, value, t) in theirs {
            title = t;
            let observable = Observable { kind, value };
            if let Some(w) = weights.get(&observable) {
                shared.insert(observable, *w);
            }
        }
        let score = shared.values().sum::<f64>() / everything;
        found.push(Similar {
            id: candidate,
            title,
            score: (score * 1000.0).round() / 1000.0,
            shared: shared.into_keys().collect(),
        });
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    found.truncate(limit);
    Ok(found)
}

/// Finds the cases most like `id` and links it to each (`similar`, with the
/// score and the shared indicators as the reason).
pub(super) async fn attach(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    by: &str,
) -> Result<Vec<Similar>> {
    let similar = similar_to(conn, id, ATTACHED).await?;
    for case in &similar {
        let shared: Vec<String> = case
            .shared
            .iter()
            .map(|o| format!("{} {}", o.kind, o.value))
            .collect();
        let reason = format!("score {:.3}; shares {}", case.score, shared.join(", "));
        link(conn, head, id, &case.id, "similar", Some(&reason), by).await?;
    }
    Ok(similar)
}

impl Store {
    /// The open cases most like case `id`, best first.
    pub async fn similar_cases(&self, id: &str, limit: usize) -> Result<Vec<Similar>> {
        let mut conn = self.pool.acquire().await.doing("reading similar cases")?;
        super::write::exists(&mut conn, id).await?;
        similar_to(&mut conn, id, limit).await
    }

    /// Marks `observable` as saying nothing about which cases belong
    /// together (or, with `ignored` false, as counting again), as `by`.
    pub async fn ignore_observable(
        &self,
        observable: &Observable,
        ignored: bool,
        reason: Option<&str>,
        by: &str,
    ) -> Result<()> {
        super::check_kinds(std::slice::from_ref(observable))?;
        let shared =
            std::sync::Arc::new((observable.clone(), reason.map(str::to_owned), by.to_owned()));
        self.writer
            .submit(Box::new(move |conn, head| {
                let shared = shared.clone();
                Box::pin(async move {
                    let (observable, reason, by) = &*shared;
                    if ignored {
                        sqlx::query(
                            "INSERT INTO ignored_observables (kind, value, reason, marked_by, at)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason,
                                marked_by = excluded.marked_by, at = excluded.at",
                        )
                        .bind(&observable.kind)
                        .bind(&observable.value)
                        .bind(reason)
                        .bind(by)
                        .bind(now())
                        .execute(&mut *conn)
                        .await
                        .doing("ignoring the observable")?;
                    } else {
                        sqlx::query(
                            "DELETE FROM ignored_observables WHERE kind = $1 AND value = $2",
                        )
                        .bind(&observable.kind)
                        .bind(&observable.value)
                        .execute(&mut *conn)
                        .await
                        .doing("counting the observable again")?;
                    }
                    let subject = format!("observable:{}:{}", observable.kind, observable.value);
                    let body = json!({ "by": by, "ignored": ignored, "reason": reason });
                    audit::append(conn, head, &subject, "observable.ignored", &body).await
                })
            }))
            .await
    }

    /// The observables marked as ignored: `(observable, reason)`.
    pub async fn ignored_observables(&self) -> Result<Vec<(Observable, Option<String>)>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT kind, value, reason FROM ignored_observables ORDER BY kind, value",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading the ignored observables")?;
        Ok(rows
            .into_iter()
            .map(|(kind, value, reason)| (Observable { kind, value }, reason))
            .collect())
    }
}
