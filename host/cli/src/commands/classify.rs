//! `aerie classify correct | report`: the human side of classification. Every
//! prediction is a run; an analyst's correction (or confirmation) of one is
//! stored beside it and audited; the report measures the month against them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use std::path::Path;

use aerie_engine::Playbook;
use aerie_store::{Classification, Store};
use anyhow::Context as _;
use serde::Serialize;

use crate::cli::ClassifyCommand;
use crate::context::Context;

pub async fn run(ctx: &Context, command: ClassifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClassifyCommand::Correct {
            run_id,
            label,
            user,
            new,
        } => {
            if !ctx.config.users.contains_key(&user) {
                anyhow::bail!("`{user}` is not a user in [users] of the config");
            }
            let label = label.trim();
            if label.is_empty() || label.contains(char::is_whitespace) {
                anyhow::bail!("`{label}` is not a label: one word, such as Phishing");
            }
            let store = ctx.store().await?;
            if !new
                && let Some((playbook, known)) = known_labels(ctx, &store, &run_id).await?
                && !known.contains(label)
            {
                anyhow::bail!(
                    "`{label}` is not a label of `{playbook}` ({}); \
                     add --new to start a new category",
                    known.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            let predicted = store.correct(&run_id, label, &user).await?;
            if predicted == label {
                outln!("{user} confirmed run {run_id}: {label}")?;
            } else {
                outln!("{user} corrected run {run_id}: {predicted} -> {label}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClassifyCommand::Report {
            month,
            playbook,
            json,
        } => {
            let valid = month.len() == 7
                && month.as_bytes()[4] == b'-'
                && month[..4].bytes().all(|b| b.is_ascii_digit())
                && matches!(month[5..].parse::<u8>(), Ok(1..=12));
            if !valid {
                eprintln!("aerie: --month `{month}` is not YYYY-MM, such as 2026-11");
                return Ok(ExitCode::from(2));
            }
            let store = ctx.store().await?;
            let report = Report::of(
                &month,
                &playbook,
                store.classifications(&playbook, Some(&month)).await?,
            );
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                out!("{}", report.table())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The labels an analyst may give run `run_id`, with its playbook's name:
/// those the playbook's `classification:` names, those its label sources
/// list (each a plugin action answering `{"labels": [...]}`), and those the
/// playbook's runs have had. `None` when the run is unknown or no
/// classification (the correction then says why), or when nothing names any.
async fn known_labels(
    ctx: &Context,
    store: &Store,
    run_id: &str,
) -> anyhow::Result<Option<(String, BTreeSet<String>)>> {
    let Some((name, definition)) = store.definition(run_id).await? else {
        return Ok(None);
    };
    let playbook = Playbook::parse(Path::new("(stored definition)"), &definition)?;
    let Some(spec) = &playbook.classification else {
        return Ok(None);
    };
    let mut known: BTreeSet<String> = spec.labels.iter().cloned().collect();
    for source in &spec.labels_from {
        let what = format!("{}.{}", source.plugin, source.action);
        let plugin = ctx.registry()?.load(&source.plugin).await?;
        let output = plugin
            .call(&source.action, &serde_json::json!({}))
            .await
            .result
            .with_context(|| format!("listing the labels with {what}"))?;
        let labels = output["labels"]
            .as_array()
            .and_then(|labels| {
                labels
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Option<Vec<_>>>()
            })
            .with_context(|| format!("{what} answered {output}, not {{\"labels\": [...]}}"))?;
        known.extend(labels.into_iter().map(str::to_owned));
    }
    known.extend(store.labels_seen(&name).await?);
    Ok((!known.is_empty()).then_some((name, known)))
}

/// What a month of classifications looked like, measured against the
/// analysts' corrections. Accuracy, precision and recall count only reviewed
/// predictions (corrected or confirmed): the others have no known truth.
#[derive(Debug, Serialize)]
pub struct Report {
    pub month: String,
    pub playbook: String,
    pub predictions: usize,
    /// How many each path decided: `fasttext`, `keyword-match`, `default`.
    pub decided_by: BTreeMap<String, usize>,
    pub reviewed: usize,
    /// Reviewed with a different label than predicted.
    pub corrected: usize,
    /// Share of reviewed predictions that were right; null with none reviewed.
    pub accuracy: Option<f64>,
    pub labels: Vec<LabelScore>,
    /// `confusion[actual][predicted]`, over reviewed predictions.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub runs: Vec<Classification>,
}

#[derive(Debug, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub predicted: usize,
    pub actual: usize,
    pub correct: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Report {
    fn of(month: &str, playbook: &str, runs: Vec<Classification>) -> Report {
        let mut decided_by = BTreeMap::new();
        for run in &runs {
            let path = run
                .decided_by
                .clone()
                .unwrap_or_else(|| "unknown".to_owned());
            *decided_by.entry(path).or_insert(0) += 1;
        }
        let reviewed: Vec<(&str, &str)> = runs
            .iter()
            .filter_map(|r| Some((r.corrected.as_deref()?, r.label.as_str())))
            .collect();
        let right = reviewed
            .iter()
            .filter(|(actual, predicted)| actual == predicted)
            .count();
        let names: BTreeSet<&str> = reviewed.iter().flat_map(|(a, p)| [*a, *p]).collect();
        let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = names
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    names.iter().map(|p| (p.to_string(), 0)).collect(),
                )
            })
            .collect();
        for (actual, predicted) in &reviewed {
            if let Some(cell) = confusion
                .get_mut(*actual)
                .and_then(|row| row.get_mut(*predicted))
            {
                *cell += 1;
            }
        }
        let labels = names
            .iter()
            .map(|&label| {
                let predicted = reviewed.iter().filter(|(_, p)| *p == label).count();
                let actual = reviewed.iter().filter(|(a, _)| *a == label).count();
                let correct = reviewed
                    .iter()
                    .filter(|(a, p)| *a == label && *p == label)
                    .count();
                LabelScore {
                    label: label.to_owned(),
                    predicted,
                    actual,
                    correct,
                    precision: ratio(correct, predicted),
                    recall: ratio(correct, actual),
                }
            })
            .collect();
        Report {
            month: month.to_owned(),
            playbook: playbook.to_owned(),
            predictions: runs.len(),
            decided_by,
            reviewed: reviewed.len(),
            corrected: reviewed.len() - right,
            accuracy: ratio(right, reviewed.len()),
            labels,
            confusion,
            runs,
        }
    }

    /// The report as a person reads it in a terminal.
    fn table(&self) -> String {
        use std::fmt::Write as _;
        let percent = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
        let mut out = String::new();
        let _ = writeln!(out, "{} classifications by {}", self.month, self.playbook);
        let paths = self
            .decided_by
            .iter()
            .map(|(path, n)| format!("{path} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "predictions  {} ({})",
            self.predictions,
            if paths.is_empty() { "none" } else { &paths }
        );
        let _ = writeln!(
            out,
            "reviewed     {} ({} corrected, {} confirmed)",
            self.reviewed,
            self.corrected,
            self.reviewed - self.corrected
        );
        let _ = writeln!(out, "accuracy     {}", percent(self.accuracy));
        if self.labels.is_empty() {
            let _ = writeln!(
                out,
                "\nnothing reviewed yet: `aerie classify correct RUN --label LABEL --as USER`"
            );
            self.listing(&mut out);
            return out;
        }
        let width = self
            .labels
            .iter()
            .map(|l| l.label.len())
            .max()
            .unwrap_or(5)
            .max(6);
        let _ = writeln!(
            out,
            "\n{:<width$}  {:>9}  {:>6}  {:>9}  {:>6}",
            "label", "predicted", "actual", "precision", "recall"
        );
        for l in &self.labels {
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>6}  {:>9}  {:>6}",
                l.label,
                l.predicted,
                l.actual,
                percent(l.precision),
                percent(l.recall)
            );
        }
        let _ = writeln!(out, "\nconfusion (rows: actual, columns: predicted)");
        let cell = self
            .labels
            .iter()
            .map(|l| l.label.len())
            .max()
            .unwrap_or(1)
            .max(3);
        let mut header = format!("{:<width$}", "");
        for l in &self.labels {
            let _ = write!(header, "  {:>cell$}", l.label);
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for (actual, row) in &self.confusion {
            let mut line = format!("{actual:<width$}");
            for n in row.values() {
                let _ = write!(line, "  {n:>cell$}");
            }
            let _ = writeln!(out, "{line}");
        }
        self.listing(&mut out);
        out
    }

    /// Every prediction of the month, oldest first, with its correction.
    fn listing(&self, out: &mut String) {
        use std::fmt::Write as _;
        if self.runs.is_empty() {
            return;
        }
        let id = self
            .runs
            .iter()
            .map(|r| r.run_id.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let label = self
            .runs
            .iter()
            .map(|r| r.label.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "\n{:<20}  {:<id$}  {:<label$}  {:>6}  {:<13}  corrected",
            "started", "run", "label", "prob", "decided by"
        );
        for r in &self.runs {
            let started: String = r.started_at.chars().take(20).collect();
            let prob = r.probability.map_or("-".to_owned(), |p| format!("{p:.3}"));
            let corrected = match (&r.corrected, &r.corrected_by) {
                (Some(label), Some(by)) if *label == r.label => format!("confirmed by {by}"),
                (Some(label), Some(by)) => format!("{label} by {by}"),
                _ => String::new(),
            };
            let line = format!(
                "{started:<20}  {:<id$}  {:<label$}  {prob:>6}  {:<13}  {corrected}",
                r.run_id,
                r.label,
                r.decided_by.as_deref().unwrap_or("-"),
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, decided_by: &str, corrected: Option<&str>) -> Classification {
        Classification {
            run_id: format!("{label}-{}", corrected.unwrap_or("unreviewed")).to_lowercase(),
            started_at: "2026-11-02T10:00:00Z".to_owned(),
            label: label.to_owned(),
            probability: Some(0.9),
            decided_by: Some(decided_by.to_owned()),
            text: Some("text".to_owned()),
            corrected: corrected.map(str::to_owned),
            corrected_by: corrected.map(|_| "alice".to_owned()),
        }
    }

    #[test]
    fn measures_reviewed_predictions_only() {
        let report = Report::of(
            "2026-11",
            "recategorise-email",
            vec![
                run("Phishing", "fasttext", Some("Phishing")),
                run("Phishing", "fasttext", Some("Spam")),
                run("Spam", "keyword-match", Some("Spam")),
                run("DeviceLost", "fasttext", None),
                run("Unclassified", "default", Some("Phishing")),
            ],
        );
        assert_eq!(report.predictions, 5);
        assert_eq!((report.reviewed, report.corrected), (4, 2));
        assert_eq!(report.accuracy, Some(0.5));
        assert_eq!(report.decided_by["fasttext"], 3);
        let phishing = report
            .labels
            .iter()
            .find(|l| l.label == "Phishing")
            .unwrap();
        // Predicted Phishing twice, right once; actually Phishing twice, found once.
        assert_eq!(
            (phishing.precision, phishing.recall),
            (Some(0.5), Some(0.5))
        );
        let spam = report.labels.iter().find(|l| l.label == "Spam").unwrap();
        assert_eq!((spam.precision, spam.recall), (Some(1.0), Some(0.5)));
        assert_eq!(report.confusion["Spam"]["Phishing"], 1);
        assert_eq!(report.confusion["Phishing"]["Unclassified"], 1);

        insta::assert_snapshot!(report.table(), @r"
2026-11 classifications by recategorise-email
predictions  5 (default 1, fasttext 3, keyword-match 1)
reviewed     4 (2 corrected, 2 confirmed)
accuracy     50.0%

label         predicted  actual  precision  recall
Phishing              2       2      50.0%   50.0%
Spam                  1       2     100.0%   50.0%
Unclassified          1       0       0.0%       -

confusion (rows: actual, columns: predicted)
                  Phishing          Spam  Unclassified
Phishing                 1             0             1
Spam                     1             1             0
Unclassified             0             0             0

started               run                    label           prob  decided by     corrected
2026-11-02T10:00:00Z  phishing-phishing      Phishing       0.900  fasttext       confirmed by alice
2026-11-02T10:00:00Z  phishing-spam          Phishing       0.900  fasttext       Spam by alice
2026-11-02T10:00:00Z  spam-spam              Spam           0.900  keyword-match  confirmed by alice
2026-11-02T10:00:00Z  devicelost-unreviewed  DeviceLost     0.900  fasttext
2026-11-02T10:00:00Z  unclassified-phishing  Unclassified   0.900  default        Phishing by alice
");
    }
}
