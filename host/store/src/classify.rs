//! Classification runs and the analysts' corrections of them: what
//! `aerie classify correct` writes and `aerie classify report` reads.
//!
//! A classification is a succeeded run of a playbook with a `classification:`
//! block; the engine stores what it decided (label, probability, which path
//! decided, the text) with the run. Nothing here knows any classifier.

use std::collections::BTreeSet;

use crate::error::{Doing as _, Result, StoreError};
use aerie_engine::Classified;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use aerie_engine::now;

use crate::{Store, audit};

/// One classification run, with its correction if an analyst made one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub run_id: String,
    pub started_at: String,
    pub label: String,
    pub probability: Option<f64>,
    pub decided_by: Option<String>,
    /// The text that was classified, when the playbook names it.
    pub text: Option<String>,
    pub corrected: Option<String>,
    pub corrected_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    #[error("no run `{0}`")]
    Unknown(String),
    #[error(
        "run `{0}` is not a classification: its playbook has no `classification:` or the run did not succeed"
    )]
    NotClassified(String),
}

/// A stored decision, read strictly.
fn decision(run_id: &str, text: &str) -> Result<Classified> {
    serde_json::from_str(text).map_err(|e| StoreError::Damaged {
        run: run_id.to_owned(),
        what: "classification".to_owned(),
        why: e.to_string(),
    })
}

impl Store {
    /// Records that run `run_id` should have been labelled `label`; returns the
    /// label it had.
    pub async fn correct(&self, run_id: &str, label: &str, user: &str) -> Result<String> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT status, classification FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CorrectionError::Unknown(run_id.to_owned()))?;
        let classification: Option<String> = row.try_get("classification")?;
        let classification = match classification {
            Some(text) if row.try_get::<String, _>("status")? == "succeeded" => text,
            _ => return Err(CorrectionError::NotClassified(run_id.to_owned()).into()),
        };
        let predicted = decision(run_id, &classification)?.label;
        sqlx::query(
            "INSERT INTO corrections (run_id, label, corrected_by, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (run_id) DO UPDATE SET label = excluded.label,
                 corrected_by = excluded.corrected_by, at = excluded.at",
        )
        .bind(run_id)
        .bind(label)
        .bind(user)
        .bind(now())
        .execute(&mut *tx)
        .await
        .doing("recording the correction")?;
        let body = json!({ "predicted": predicted, "label": label, "by": user });
        audit::append(
            &mut tx,
            &mut audit::Head::default(),
            run_id,
            "classification.corrected",
            &body,
        )
        .await?;
        tx.commit().await?;
        Ok(predicted)
    }

    /// The classification runs of `playbook` that started in `month`
    /// (`YYYY-MM`; every month when `None`), oldest first, with their
    /// corrections.
    pub async fn classifications(
        &self,
        playbook: &str,
        month: Option<&str>,
    ) -> Result<Vec<Classification>> {
        let rows = sqlx::query(
            "SELECT r.id, r.started_at, r.classification, c.label AS corrected, c.corrected_by
             FROM runs r LEFT JOIN corrections c ON c.run_id = r.id
             WHERE r.playbook = $1 AND r.status = 'succeeded' AND r.classification IS NOT NULL
               AND r.started_at LIKE $2
             ORDER BY r.started_at, r.id",
        )
        .bind(playbook)
        // Timestamps are RFC 3339 text: a month is a prefix.
        .bind(month.map_or_else(|| "%".to_owned(), |m| format!("{m}-%")))
        .fetch_all(&self.pool)
        .await?;
        let mut classifications = Vec::with_capacity(rows.len());
        for row in rows {
            let run_id: String = row.try_get("id")?;
            let decided = decision(&run_id, row.try_get("classification")?)?;
            classifications.push(Classification {
                started_at: row.try_get("started_at")?,
                label: decided.label,
                probability: decided.probability,
                decided_by: decided.decided_by,
                text: decided.text,
                corrected: row.try_get("corrected")?,
                corrected_by: row.try_get("corrected_by")?,
                run_id,
            });
        }
        Ok(classifications)
    }

    /// Every label `playbook`'s runs predicted or an analyst gave one.
    pub async fn labels_seen(&self, playbook: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .classifications(playbook, None)
            .await?
            .into_iter()
            .flat_map(|c| std::iter::once(c.label).chain(c.corrected))
            .collect())
    }

    /// Every corrected or confirmed classification of `playbook`, for training:
    /// (the text, the label an analyst gave it).
    pub async fn reviewed(&self, playbook: &str) -> Result<Vec<(String, String)>> {
        let all = self.classifications(playbook, None).await?;
        Ok(all
            .into_iter()
            .filter_map(|c| Some((c.text?, c.corrected?)))
            .collect())
    }

    /// The playbook a run ran and the definition it ran with.
    pub async fn definition(&self, run_id: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT playbook, definition FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("playbook")?, row.try_get("definition")?)))
            .transpose()
    }
}
