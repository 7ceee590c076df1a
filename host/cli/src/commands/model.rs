//! `aerie model train`: fastText's supervised training in Rust, from a file of
//! labelled lines, from the analysts' corrections in the store, or both.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aerie_fasttext::{Loss, Model, TrainArgs as Params, train};
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{LossArg, ModelCommand};
use crate::context::Context;

pub async fn run(ctx: &Context, command: ModelCommand) -> anyhow::Result<ExitCode> {
    let ModelCommand::Train(args) = command;
    let mut text = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the training data {}", path.display()))?,
        None => String::new(),
    };
    if args.from_corrections {
        let store = ctx.store().await?;
        let reviewed = store.reviewed(&args.playbook).await?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for (line, label) in &reviewed {
            // One example per line: the classified text's own line breaks go.
            let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
            text.push_str(&format!("__label__{label} {words}\n"));
        }
        eprintln!(
            "{} corrected or confirmed classifications of `{}` from the store",
            reviewed.len(),
            args.playbook
        );
    }
    let params = Params {
        epoch: args.epoch,
        lr: args.lr,
        dim: args.dim,
        word_ngrams: args.word_ngrams,
        minn: args.minn,
        maxn: args.maxn,
        loss: match args.loss {
            LossArg::Softmax => Loss::Softmax,
            LossArg::Hs => Loss::Hs,
            LossArg::Ova => Loss::Ova,
            LossArg::Ns => Loss::Ns,
        },
        bucket: args.bucket,
        threads: args.thread.unwrap_or(Params::default().threads),
        min_count: args.min_count,
        ..Params::default()
    };

    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    // Training takes the CPUs; nothing else in this command waits on the runtime.
    let trained = train(&text, &params, &|p| {
        bar.set_position((p.done * 1000.0) as u64);
        bar.set_message(format!(
            "lr {:.6} loss {:.4} words/s/thread {:.0}",
            p.lr, p.loss, p.words_per_second_per_thread
        ));
    });
    bar.finish_and_clear();
    let model = trained.context("training")?;
    model
        .save(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    outln!(
        "wrote {}: {} words, {} labels, {:.2} s",
        args.output.display(),
        model.words(),
        model.labels().count(),
        started.elapsed().as_secs_f64()
    )?;
    if let Some(path) = &args.test {
        let valid = std::fs::read_to_string(path)
            .with_context(|| format!("reading the test data {}", path.display()))?;
        let (right, lines) = precision_at_one(&model, &valid);
        outln!(
            "precision at 1 on {}: {:.3} ({right} of {lines})",
            path.display(),
            right as f64 / lines.max(1) as f64
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Lines whose best label is one of their own labels, and lines with a label.
fn precision_at_one(model: &Model, text: &str) -> (usize, usize) {
    let mut right = 0;
    let mut lines = 0;
    for line in text.lines() {
        let (labels, words): (Vec<&str>, Vec<&str>) = line
            .split_whitespace()
            .partition(|t| t.starts_with("__label__"));
        if labels.is_empty() {
            continue;
        }
        lines += 1;
        let best = model.predict(&words.join(" "), 1, 0.0);
        if best
            .first()
            .is_some_and(|p| labels.iter().any(|l| l["__label__".len()..] == p.label))
        {
            right += 1;
        }
    }
    (right, lines)
}
