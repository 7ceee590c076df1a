//! `cargo xtask demo-enrichment [TEXT]`: the enrichment-only service on a
//! fresh machine, against local stand-ins of VirusTotal, RDAP, Shodan, Safe
//! Browsing, CAPE, Jira and Elasticsearch: the text's indicators become Enrichment cases,
//! the malicious ones Jira issues; the cases are printed.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

const DEMO_TEXT: &str = "proxy: 10.1.2.3 beaconed to 185.220.101.1 after visiting \
hxxp://login-paypal-secure[.]com/verify; its resolver is 8.8.8.8";

pub fn demo(text: Option<&str>) -> anyhow::Result<()> {
    super::build()?;
    let release = super::target_dir()?.join("release");
    let site = Path::new(".aerie/enrichment-demo");
    // A fresh store each time, so what is printed is this run's.
    if site.exists() {
        std::fs::remove_dir_all(site).with_context(|| format!("clearing {}", site.display()))?;
    }
    std::fs::create_dir_all(site)?;
    let mut stand_ins = Command::new(release.join("standins"))
        .arg(site)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the stand-ins")?;
    let mut grants = String::new();
    let mut lines =
        std::io::BufReader::new(stand_ins.stdout.take().context("stand-ins' stdout")?).lines();
    for line in lines.by_ref() {
        let line = line?;
        if line == "# ready" {
            break;
        }
        grants.push_str(&line);
        grants.push('\n');
    }
    let config = site.join("aerie.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n\n[users.demo]\n\n{grants}",
            site.display().to_string()
        ),
    )?;
    println!(
        "the stand-ins serve on 127.0.0.1; the config is {}",
        config.display()
    );
    let aerie = |args: &[&str]| -> anyhow::Result<std::process::ExitStatus> {
        Ok(Command::new(release.join("aerie"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .status()?)
    };
    let input = serde_json::json!({ "body": { "text": text.unwrap_or(DEMO_TEXT) } }).to_string();
    let ran = aerie(&["run", "playbooks/enrichment-only.yaml", "--input", &input]);
    let listed = ran.and_then(|ran| {
        println!("\nthe cases it opened:");
        aerie(&["cases", "list"]).map(|listed| (ran, listed))
    });
    let _ = stand_ins.kill();
    let _ = stand_ins.wait();
    let (ran, _) = listed?;
    if !ran.success() {
        bail!("the enrichment run failed");
    }
    println!(
        "\n`aerie --config {} cases show ID` shows one with its enrichment report.",
        config.display()
    );
    Ok(())
}
