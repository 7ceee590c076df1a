//! What one plugin call costs, against the model of the SOAR tools whose every
//! action is a new process.
//!
//! Run with `cargo xtask bench` (it builds the plugins first). Prints, side by
//! side in one run:
//! - a trivial action (`hostile.noop`), each call in a fresh instance;
//! - `ioc-extract.extract` on a 1 KiB alert, each call in a fresh instance,
//!   and in the warm instances it opts in to as shipped;
//! - the same two done by starting `python3` per call (`benches/python/`);
//! - `hostile.fetch` of a 64 KiB answer from a local upstream, without a
//!   credential and with one bound, whose every response the broker scrubs of
//!   the secret's forms (the price of scrubbing).
//!
//! Percentiles come from every individual call's wall time, sorted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aerie_manifest::PluginGrant;
use aerie_runtime::{Plugin, Runtime, RuntimeOptions};
use serde_json::{Value, json};

const ALERT: &str = "Subject: [ALERT] Possible C2 beaconing from FIN-LAPTOP-042\n\
Sensor saw 10.20.4.17 contact 185.220.101.1:443 and 45.9.148.108 every 60s.\n\
DNS: login-paypal-secure[.]com, cdn.sketchy-downloads[.]net, update.microsoft.com.\n\
URL: hxxps://login-paypal-secure[.]com/verify?id=8812 and http://45.9.148.108/gate.php\n\
Dropped file invoice_0423.pdf.exe md5 44d88612fea8a8f36de82e1278abb02f\n\
sha1 3395856ce81f2b7382dee72602f798b642f14140 sha256\n\
275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f.\n\
Reply-To: billing[at]login-paypal-secure[.]com; Cc: soc@example.org.\n\
IPv6 peer 2001:db8:85a3::8a2e:370:7334 seen once. Ticket INC-20931, severity high.\n\
Analyst note: same actor as last week (see 185.220.101.1 in INC-20877). Please block\n\
the domains and the IPs at the perimeter and reset the user's credentials.\n";

struct Stats {
    label: &'static str,
    calls: usize,
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn stats(label: &'static str, mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        label,
        calls: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
        per_second: samples.len() as f64 / total.as_secs_f64(),
    }
}

/// Loads a plugin of the repository; `fresh` drops its `[instances]` opt-in so
/// every call gets a new instance.
async fn load(
    runtime: &Runtime,
    wasm_dir: &Path,
    folder: &str,
    crate_name: &str,
    fresh: bool,
) -> Plugin {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap().keep();
    let mut manifest = std::fs::read_to_string(repo.join(folder).join("plugin.toml")).unwrap();
    if fresh {
        manifest = manifest.replace("reuse = true", "reuse = false");
    }
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(
        wasm_dir.join(format!("{crate_name}.wasm")),
        dir.join("plugin.wasm"),
    )
    .unwrap();
    Plugin::load(runtime, &dir.join("plugin.toml"), &PluginGrant::default())
        .await
        .unwrap()
}

async fn plugin_calls(
    label: &'static str,
    plugin: &Plugin,
    action: &str,
    input: &Value,
    n: usize,
) -> Stats {
    for _ in 0..n / 10 {
        plugin.call(action, input).await.result.unwrap();
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let report = plugin.call(action, input).await;
        samples.push(t.elapsed());
        report.result.unwrap();
    }
    stats(label, samples, start.elapsed())
}

/// A local upstream answering every request with `body`, one connection per
/// request as the broker makes them. Returns its origin.
async fn upstream(body: &'static str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0; 8192];
                let mut read = 0;
                // The request has no body: it ends at the blank line.
                while !request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut request[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    origin
}

/// The hostile plugin granted `origin`, with its `api_key` credential bound
/// to a file when `credential`.
async fn granted(runtime: &Runtime, wasm_dir: &Path, origin: &str, credential: bool) -> Plugin {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap().keep();
    let manifest = std::fs::read_to_string(repo.join("tests/plugins/hostile/plugin.toml")).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(wasm_dir.join("hostile.wasm"), dir.join("plugin.wasm")).unwrap();
    std::fs::write(dir.join("key"), "bench-secret-0f9a8b7c6d5e").unwrap();
    let mut config = format!(
        "[plugins.hostile]\nsettings = {{ base_url = {origin:?} }}\nallow = [{origin:?}]\nlimits = {{ max_response_kb = 1024 }}\n"
    );
    if credential {
        config += &format!(
            "credentials.api_key = {{ file = {:?} }}\n",
            dir.join("key").display().to_string()
        );
    }
    let config = aerie_manifest::Config::parse(&dir.join("aerie.toml"), &config).unwrap();
    Plugin::load(runtime, &dir.join("plugin.toml"), &config.grant("hostile"))
        .await
        .unwrap()
}

/// The interpreter itself, not a version-manager shim in front of it.
fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

fn python_calls(label: &'static str, script: &Path, input: &Value, n: usize) -> Option<Stats> {
    let python = python()?;
    let text = input.to_string();
    let once = || -> Option<Duration> {
        let t = Instant::now();
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        std::io::Write::write_all(&mut child.stdin.take()?, text.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        serde_json::from_slice::<Value>(&out.stdout).ok()?;
        Some(t.elapsed())
    };
    once()?;
    let start = Instant::now();
    let samples = (0..n).map(|_| once()).collect::<Option<Vec<_>>>()?;
    Some(stats(label, samples, start.elapsed()))
}

fn print(rows: &[Stats]) {
    println!(
        "{:<52} {:>7} {:>11} {:>11} {:>11}",
        "", "calls", "p50", "p99", "calls/s"
    );
    for r in rows {
        println!(
            "{:<52} {:>7} {:>9.1}µs {:>9.1}µs {:>11.0}",
            r.label,
            r.calls,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.per_second
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let wasm_dir =
        PathBuf::from(std::env::var("AERIE_WASM_DIR").expect("run with `cargo xtask bench`"));
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(&RuntimeOptions::default()).unwrap();

    let rows = tokio.block_on(async {
        let hostile = load(
            &runtime,
            &wasm_dir,
            "tests/plugins/hostile",
            "hostile",
            true,
        )
        .await;
        let ioc = load(
            &runtime,
            &wasm_dir,
            "plugins/ioc-extract",
            "ioc_extract",
            true,
        )
        .await;
        let ioc_warm = load(
            &runtime,
            &wasm_dir,
            "plugins/ioc-extract",
            "ioc_extract",
            false,
        )
        .await;
        let alert = json!({ "text": ALERT });
        // JSON-like text with no secret in it: scrubbing scans it all and
        // replaces nothing, the common case.
        let body: &'static str =
            "{\"data\": {\"attributes\": {\"last_analysis_stats\": {\"malicious\": 0}}}} "
                .repeat(64 * 1024 / 64)
                .leak();
        let origin = upstream(body).await;
        let fetch = json!({ "url": format!("{origin}/") });
        let plain = granted(&runtime, &wasm_dir, &origin, false).await;
        let scrubbed = granted(&runtime, &wasm_dir, &origin, true).await;
        let mut rows = vec![
            plugin_calls(
                "fetch 64 KiB from 127.0.0.1, no credential",
                &plain,
                "fetch",
                &fetch,
                2_000,
            )
            .await,
            plugin_calls(
                "fetch 64 KiB from 127.0.0.1, credential (scrubbed)",
                &scrubbed,
                "fetch",
                &fetch,
                2_000,
            )
            .await,
            plugin_calls(
                "trivial action, fresh instance per call",
                &hostile,
                "noop",
                &json!({}),
                20_000,
            )
            .await,
            plugin_calls(
                "ioc-extract on a 1 KiB alert, fresh instance per call",
                &ioc,
                "extract",
                &alert,
                2_000,
            )
            .await,
            plugin_calls(
                "ioc-extract on a 1 KiB alert, warm instance (as shipped)",
                &ioc_warm,
                "extract",
                &alert,
                20_000,
            )
            .await,
        ];
        rows.extend(python_calls(
            "trivial action, python3 process per call",
            &python.join("noop.py"),
            &json!({}),
            200,
        ));
        rows.extend(python_calls(
            "ioc extraction, python3 process per call",
            &python.join("ioc_extract.py"),
            &alert,
            200,
        ));
        rows
    });
    print(&rows);
}
