//! Classification runs and the analysts' corrections of them: what
//! `aerie classify correct` writes and `aerie classify report` reads.
//!
//! A classification is a succeeded run whose output has a `label` (and, as
//! `recategorise-email` gives them, `probability` and `decided_by`).

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};
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
    /// The text that was classified, when the run's input had `subject`/`body`.
    pub text: Option<String>,
    pub corrected: Option<String>,
    pub corrected_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    #[error("no run `{0}`")]
    Unknown(String),
    #[error("run `{0}` is not a classification: it has not succeeded with a `label` in its output")]
    NotClassified(String),
}

fn classified(
    run_id: &str,
    started_at: String,
    input: &Value,
    output: &Value,
) -> Option<Classification> {
    let label = output.get("label")?.as_str()?.to_owned();
    let text = ["subject", "body"]
        .iter()
        .filter_map(|k| input.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>();
    Some(Classification {
        run_id: run_id.to_owned(),
        started_at,
        label,
        probability: output.get("probability").and_then(Value::as_f64),
        decided_by: output
            .get("decided_by")
            .and_then(Value::as_str)
            .map(str::to_owned),
        text: (!text.is_empty()).then(|| text.join(" ")),
        corrected: None,
        corrected_by: None,
    })
}

impl Store {
    /// Records that run `run_id` should have been labelled `label`; returns the
    /// label it had.
    pub async fn correct(&self, run_id: &str, label: &str, user: &str) -> anyhow::Result<String> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT status, input, output, started_at FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CorrectionError::Unknown(run_id.to_owned()))?;
        let parse = |column: &str| -> Result<Value, sqlx::Error> {
            Ok(row
                .try_get::<Option<String>, _>(column)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null))
        };
        let succeeded = row.try_get::<String, _>("status")? == "succeeded";
        let started_at: String = row.try_get("started_at")?;
        let (input, output) = (parse("input")?, parse("output")?);
        let predicted = succeeded
            .then(|| classified(run_id, started_at, &input, &output))
            .flatten()
            .ok_or_else(|| CorrectionError::NotClassified(run_id.to_owned()))?
            .label;
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
        .context("recording the correction")?;
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
    ) -> anyhow::Result<Vec<Classification>> {
        let rows = sqlx::query(
            "SELECT r.id, r.input, r.output, r.started_at, c.label AS corrected, c.corrected_by
             FROM runs r LEFT JOIN corrections c ON c.run_id = r.id
             WHERE r.playbook = $1 AND r.status = 'succeeded' AND r.started_at LIKE $2
             ORDER BY r.started_at, r.id",
        )
        .bind(playbook)
        // Timestamps are RFC 3339 text: a month is a prefix.
        .bind(month.map_or_else(|| "%".to_owned(), |m| format!("{m}-%")))
        .fetch_all(&self.pool)
        .await?;
        let json = |text: Option<String>| -> Value {
            text.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null)
        };
        let mut classifications = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let started_at = row.try_get("started_at")?;
            let (input, output) = (json(row.try_get("input")?), json(row.try_get("output")?));
            let Some(mut c) = classified(&id, started_at, &input, &output) else {
                continue;
            };
            c.corrected = row.try_get("corrected")?;
            c.corrected_by = row.try_get("corrected_by")?;
            classifications.push(c);
        }
        Ok(classifications)
    }

    /// Every corrected or confirmed classification of `playbook`, for training:
    /// (the text, the label an analyst gave it).
    pub async fn reviewed(&self, playbook: &str) -> anyhow::Result<Vec<(String, String)>> {
        let all = self.classifications(playbook, None).await?;
        Ok(all
            .into_iter()
            .filter_map(|c| Some((c.text?, c.corrected?)))
            .collect())
    }
}
