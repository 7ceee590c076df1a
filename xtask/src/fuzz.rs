//! `cargo xtask fuzz [--time SECS] [--seed N] [TARGET...]`: each fuzz target
//! under libFuzzer for a set time (default 60 s each; every target in
//! `fuzz/fuzz_targets/` unless some are named). `--seed` makes the inputs
//! tried the same from run to run (CI uses it, so that its verdict on a commit
//! does not depend on luck; longer runs without it explore more).
//!
//! The targets are built on the stable toolchain the way cargo-fuzz builds
//! them (LLVM's SanitizerCoverage, which rustc exposes on stable, and
//! libfuzzer-sys's bundled libFuzzer), without its sanitizer, which needs
//! nightly. Each runs over `fuzz/corpus/<target>/` (read only: seeds and
//! saved inputs) plus a working corpus in the target folder; a crash, hang or
//! runaway allocation is saved, minimised by libFuzzer, into
//! `fuzz/corpus/<target>/`, where `cargo test -p aerie-fuzz` replays it from
//! then on, and the command fails.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

const INSTRUMENTATION: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg=fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

pub fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut seconds = 60u64;
    let mut seed = None;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                let value = args.next().context("--time needs a number of seconds")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--time {value}: not a number of seconds"))?;
            }
            "--seed" => {
                let value = args.next().context("--seed needs a number")?;
                seed = Some(
                    value
                        .parse::<u32>()
                        .with_context(|| format!("--seed {value}: not a number"))?,
                );
            }
            name => chosen.push(name.to_owned()),
        }
    }
    let all = targets()?;
    for name in &chosen {
        if !all.contains(name) {
            bail!("no fuzz target `{name}`; there are: {}", all.join(", "));
        }
    }
    let targets = if chosen.is_empty() { all } else { chosen };

    // A folder of its own: instrumented artifacts must not mix with the
    // ordinary build's. The target is named so that RUSTFLAGS instrument the
    // fuzzed code only, not build scripts and proc macros (which would not
    // link without libFuzzer).
    let dir = super::target_dir()?.join("fuzz");
    let host = host_triple()?;
    super::run(
        super::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "aerie-fuzz",
                "--features",
                "libfuzzer",
                "--bins",
            ])
            .args(["--target", &host])
            .env("CARGO_TARGET_DIR", &dir)
            .env("RUSTFLAGS", INSTRUMENTATION.join(" ")),
    )?;
    let bin = dir.join(&host).join("release");

    let mut failed = Vec::new();
    for target in &targets {
        let saved = Path::new("fuzz/corpus").join(target);
        let working = dir.join("corpus").join(target);
        // A seeded run starts from the committed corpus alone, so that it
        // tries the same inputs wherever and whenever it runs.
        if seed.is_some() && working.exists() {
            std::fs::remove_dir_all(&working)?;
        }
        std::fs::create_dir_all(&saved)?;
        std::fs::create_dir_all(&working)?;
        println!("fuzz: {target} for {seconds} s");
        let mut fuzzer = Command::new(bin.join(target));
        if let Some(seed) = seed {
            fuzzer.arg(format!("-seed={seed}"));
        }
        let status = fuzzer
            // New inputs go to the first folder, the working one.
            .arg(&working)
            .arg(&saved)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", saved.display()))
            // One input may take 10 s and 2 GiB at most: more is a finding.
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg("-malloc_limit_mb=2048")
            .arg("-print_final_stats=1")
            .status()
            .with_context(|| format!("running the {target} fuzzer"))?;
        if !status.success() {
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzzing found inputs that break {}: saved under fuzz/corpus/<target>/ (crash-*, timeout-*, oom-*); `cargo test -p aerie-fuzz` replays them",
            failed.join(", ")
        );
    }
    Ok(())
}

/// The triple rustc builds for by default, as `rustc -vV` says.
fn host_triple() -> anyhow::Result<String> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

/// Every target, by its file under `fuzz/fuzz_targets/`.
fn targets() -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir("fuzz/fuzz_targets")
        .context("reading fuzz/fuzz_targets")?
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}
