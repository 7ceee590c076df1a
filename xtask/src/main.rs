//! `cargo xtask`: the project's entry points, so a fresh machine needs only cargo.
//!
//! - `cargo xtask build`: the host in release, every plugin for wasm32-wasip2,
//!   each installed as `plugins/<name>/plugin.wasm` where the host looks.
//! - `cargo xtask demo [TEXT]`: build, then run `playbooks/enrich-ioc.yaml` on
//!   the embedded default store; against a local VirusTotal stand-in unless
//!   `VT_API_KEY` is set, in which case against the real API.
//! - `cargo xtask demo-enrichment [TEXT]`: build, then the enrichment-only
//!   service against local stand-ins of every service it calls (see
//!   `enrichment.rs`).
//! - `cargo xtask test`: build the plugins and run every test.
//! - `cargo xtask bench`: the benchmarks behind BENCHMARKS.md.
//! - `cargo xtask fuzz [--time SECS] [--seed N] [TARGET...]`: the fuzz targets under
//!   libFuzzer (see `fuzz.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

mod enrichment;
mod fuzz;

/// Shipped plugins: crate name and folder under `plugins/`.
const PLUGINS: &[&str] = &[
    "ioc-extract",
    "virustotal",
    "fasttext",
    "keyword-match",
    "jira",
    "shodan",
    "safebrowsing",
    "rdap",
    "cape",
    "elastic",
    "snipeit",
    "panos",
];
/// Guest crates only the tests use.
const TEST_PLUGINS: &[&str] = &["hostile"];
const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> std::process::ExitCode {
    match xtask() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn xtask() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::env::set_current_dir(workspace_root()?)?;
    match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("demo") => demo(args.get(1).map(String::as_str)),
        Some("demo-enrichment") => enrichment::demo(args.get(1).map(String::as_str)),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask build | demo [TEXT] | demo-enrichment [TEXT] | test [CARGO TEST ARGS] | bench | fuzz [--time SECS] [--seed N] [TARGET...]"
            );
            std::process::exit(2);
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// The workspace being worked on, asked of cargo at run time: a path compiled
/// into this binary would be wrong when a target folder is shared between
/// checkouts (a CI clone and a working tree) and cargo reuses the binary.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("cargo locate-project")?;
    if !out.status.success() {
        bail!(
            "cargo locate-project: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let manifest = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    Ok(manifest.parent().context("workspace root")?.to_owned())
}

fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata")?;
    Ok(PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("target_directory")?,
    ))
}

/// Installs the wasm target when the toolchain lacks it.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", WASM_TARGET])),
        // No rustup: trust the toolchain, and let cargo say if the target is missing.
        Err(_) => Ok(()),
    }
}

const REFERENCE: &str = "host/fasttext/tests/reference";

/// The official fastText in a venv under the target folder (built from source
/// with g++ the first time, a minute or two), for the parity references.
fn fasttext_venv() -> anyhow::Result<PathBuf> {
    let venv = target_dir()?.join("fasttext-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import fasttext"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        let pip = || {
            let mut pip = Command::new(&python);
            pip.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]);
            pip
        };
        run(pip().arg("-r").arg(format!("{REFERENCE}/requirements.txt")))?;
        // Its build needs pybind11 from the venv, hence no build isolation.
        run(pip().args(["--no-build-isolation", "fasttext==0.9.2"]))?;
    }
    Ok(python)
}

/// The committed expected predictions are what the official fastText predicts
/// for the committed models: checked against the real thing when PyPI can be
/// reached. When it cannot, the parity test still runs on the committed files.
fn check_fasttext_reference() -> anyhow::Result<Option<PathBuf>> {
    let python = match fasttext_venv() {
        Ok(python) => python,
        Err(e) => {
            eprintln!(
                "xtask: could not install the official fastText ({e:#}); the parity test \
                 uses the committed expected predictions unchecked"
            );
            return Ok(None);
        }
    };
    run(Command::new(&python)
        .arg("make_reference.py")
        .arg("--check")
        .current_dir(REFERENCE))
    .context("the official fastText disagrees with the committed reference predictions")?;
    Ok(Some(python))
}

/// Debian packages the tests run: PostgreSQL, whose throwaway servers the
/// store tests start (see `tests/src/postgres.rs`), and the `minisign` tool,
/// which checks that plugin bundle signatures are minisign's. Installs those
/// missing, with one `apt-get update`.
fn ensure_packages() -> anyhow::Result<()> {
    let postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| version.path().join("bin/initdb").is_file());
    let minisign = Command::new("minisign")
        .arg("-v")
        .output()
        .is_ok_and(|out| out.status.success());
    let missing: Vec<&str> = [("postgresql", postgres), ("minisign", minisign)]
        .into_iter()
        .filter(|(_, installed)| !installed)
        .map(|(package, _)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing Debian's {} for the tests",
        missing.join(" and ")
    );
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| {
        format!(
            "installing {}; install them by hand where apt-get cannot run",
            missing.join(", ")
        )
    })
}

/// Builds the guest crates; returns the folder holding their `.wasm` files.
fn build_plugins(crates: &[&str]) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    let mut command = cargo();
    command.args(["build", "--profile", "plugin", "--target", WASM_TARGET]);
    for name in crates {
        command.args(["-p", name]);
    }
    run(&mut command)?;
    Ok(target_dir()?.join(WASM_TARGET).join("plugin"))
}

fn wasm_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

fn build() -> anyhow::Result<()> {
    let dir = build_plugins(PLUGINS)?;
    for name in PLUGINS {
        let to = Path::new("plugins").join(name).join("plugin.wasm");
        std::fs::copy(wasm_file(&dir, name), &to)
            .with_context(|| format!("installing {}", to.display()))?;
        println!("installed {}", to.display());
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "aerie",
        "-p",
        "aerie-tests",
        "--bin",
        "aerie",
        "--bin",
        "vt-standin",
        "--bin",
        "standins",
    ]))
}

const DEMO_TEXT: &str = "Phishing report: the mail from billing@login-paypal-secure[.]com links to \
hxxp://login-paypal-secure[.]com/verify; the attachment (MD5 44d88612fea8a8f36de82e1278abb02f) \
beacons to 185.220.101.1 and resolves names via 8.8.8.8.";

fn demo(text: Option<&str>) -> anyhow::Result<()> {
    build()?;
    let release = target_dir()?.join("release");
    let data = Path::new(".aerie");
    std::fs::create_dir_all(data)?;
    let config = data.join("demo.toml");
    let mut aerie = Command::new(release.join("aerie"));
    let input = serde_json::json!({ "text": text.unwrap_or(DEMO_TEXT) }).to_string();

    let mut stand_in = None;
    if std::env::var_os("VT_API_KEY").is_some() {
        println!("VT_API_KEY is set: looking up in the real VirusTotal API");
        std::fs::write(
            &config,
            "[plugins.virustotal]\ncredentials.api_key = { env = \"VT_API_KEY\" }\n",
        )?;
    } else {
        let key = format!("demo-{}", std::process::id());
        let mut child = Command::new(release.join("vt-standin"))
            .arg(&key)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the VirusTotal stand-in")?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().context("stand-in stdout")?),
            &mut line,
        )?;
        let url = line.trim().to_owned();
        println!("VT_API_KEY is not set: using the VirusTotal stand-in at {url}");
        std::fs::write(
            &config,
            format!(
                "[plugins.virustotal]\nsettings = {{ base_url = \"{url}\" }}\nallow = [\"{url}\"]\ncredentials.api_key = {{ env = \"VT_API_KEY\" }}\n"
            ),
        )?;
        aerie.env("VT_API_KEY", key);
        stand_in = Some(child);
    }
    let status = aerie
        .arg("--config")
        .arg(&config)
        .args(["run", "playbooks/enrich-ioc.yaml", "--input", &input])
        .status();
    if let Some(mut child) = stand_in {
        let _ = child.kill();
        let _ = child.wait();
    }
    if !status?.success() {
        bail!("the demo run failed");
    }
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    ensure_packages()?;
    let python = check_fasttext_reference()?;
    let all: Vec<&str> = PLUGINS.iter().chain(TEST_PLUGINS).copied().collect();
    let dir = build_plugins(&all)?;
    // The end-to-end tests run the debug `aerie` binary as a user would.
    run(cargo().args(["build", "-p", "aerie"]))?;
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .args(extra)
        .env("AERIE_WASM_DIR", &dir);
    if let Some(python) = python {
        // The training tests have the official fastText load a Rust-trained model.
        test.env("AERIE_FASTTEXT_PYTHON", python);
    }
    run(&mut test)
}

fn bench(extra: &[String]) -> anyhow::Result<()> {
    let dir = build_plugins(&["ioc-extract", "hostile", "fasttext"])?;
    // Plugin calls (host/runtime/benches), durable runs (tests/benches) and
    // cases at scale (host/store/benches).
    for package in ["aerie-runtime", "aerie-tests", "aerie-store"] {
        run(cargo()
            .args(["bench", "-p", package])
            .args(extra)
            .env("AERIE_WASM_DIR", &dir))?;
    }
    fasttext_bench(&dir)
}

/// fastText side by side, one thread each: the official Python binding, the
/// Rust engine natively, and the plugin through `aerie plugin call --jsonl`.
fn fasttext_bench(wasm_dir: &Path) -> anyhow::Result<()> {
    let python = fasttext_venv()?;
    let work = target_dir()?.join("fasttext-bench");
    let bench_py = |step: &str| -> anyhow::Result<String> {
        let out = Command::new(&python)
            .args(["bench.py", step])
            .arg(&work)
            .current_dir(REFERENCE)
            .output()?;
        if !out.status.success() {
            bail!("bench.py {step}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    bench_py("prepare")?;
    let official = bench_py("predict")?;
    let official_training = bench_py("train")?;

    let native = cargo()
        .args(["bench", "-p", "aerie-fasttext", "--bench", "predict"])
        .env("AERIE_FASTTEXT_BENCH_DIR", &work)
        .stderr(Stdio::inherit())
        .output()?;
    if !native.status.success() {
        bail!("the native fastText benchmark failed");
    }
    let native = String::from_utf8(native.stdout)?;
    let native = native
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_default()
        .to_owned();

    run(cargo().args(["build", "--release", "-p", "aerie"]))?;
    let aerie = target_dir()?.join("release/aerie");
    let site = work.join("site");
    let plugin_dir = site.join("plugins/fasttext");
    std::fs::create_dir_all(&plugin_dir)?;
    std::fs::copy(
        "plugins/fasttext/plugin.toml",
        plugin_dir.join("plugin.toml"),
    )?;
    std::fs::copy(
        wasm_file(wasm_dir, "fasttext"),
        plugin_dir.join("plugin.wasm"),
    )?;
    std::fs::write(
        site.join("aerie.toml"),
        format!(
            "[plugins.fasttext]\ndata = {:?}\nsettings = {{ model = \"model.bin\" }}\nlimits = {{ memory_mb = 1024 }}\n",
            work.display().to_string()
        ),
    )?;
    let texts = std::fs::read_to_string(work.join("texts.txt"))?;
    let texts: Vec<&str> = texts.lines().collect();
    const PREDICTIONS: usize = 50_000;
    let lines = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "{}\n",
                    serde_json::json!({ "text": texts[i % texts.len()] })
                )
            })
            .collect()
    };
    let timed = |input: String| -> anyhow::Result<f64> {
        use std::io::Write as _;
        let started = std::time::Instant::now();
        let mut child = Command::new(&aerie)
            .args(["plugin", "call", "fasttext", "classify", "--jsonl"])
            .current_dir(&site)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
        if !child.wait()?.success() {
            bail!("aerie plugin call failed");
        }
        Ok(started.elapsed().as_secs_f64())
    };
    // One line: process start, plugin load, model parse. The difference is
    // what the further predictions cost.
    let fixed = timed(lines(1))?;
    let total = timed(lines(PREDICTIONS))?;
    let plugin_rate = (PREDICTIONS - 1) as f64 / (total - fixed);

    // Training: the same data and parameters as bench.py's, by thread count.
    let mut rust_training = Vec::new();
    for threads in ["1", "2"] {
        let started = std::time::Instant::now();
        let out = Command::new(&aerie)
            .args([
                "model",
                "train",
                "--dim",
                "50",
                "--word-ngrams",
                "2",
                "--minn",
                "2",
            ])
            .args([
                "--maxn", "4", "--bucket", "500000", "--epoch", "5", "--lr", "0.5",
            ])
            .args(["--thread", threads])
            .arg("--input")
            .arg(work.join("train.txt"))
            .arg("--output")
            .arg(work.join("rust-trained.bin"))
            .arg("--test")
            .arg(format!("{REFERENCE}/valid.txt"))
            .stderr(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("aerie model train failed");
        }
        let seconds = started.elapsed().as_secs_f64();
        let said = String::from_utf8_lossy(&out.stdout);
        let precision = said
            .lines()
            .filter(|l| l.starts_with("precision at 1"))
            .find_map(|l| l.split(": ").nth(1)?.split(' ').next())
            .unwrap_or("?")
            .to_owned();
        rust_training.push(format!(
            "\"{threads}\": {{\"seconds\": {seconds:.3}, \"accuracy\": {precision}}}"
        ));
    }

    println!(
        "\nfastText, one thread each; model and texts in {}",
        work.display()
    );
    println!("official (Python binding over C++)           {official}");
    println!("aerie-fasttext (native Rust)                 {native}");
    println!(
        "fasttext plugin (aerie plugin call --jsonl)  {{\"predictions\": {PREDICTIONS}, \"seconds\": {total:.3}, \"fixed_seconds\": {fixed:.3}, \"per_second\": {plugin_rate:.0}}}"
    );
    println!("official training, seconds and precision at 1 by threads  {official_training}");
    println!(
        "aerie model train (process included)        {{{}}}",
        rust_training.join(", ")
    );
    Ok(())
}
