//! Durable execution: a run whose process is killed mid-step is finished by
//! `aerie runs resume`, without repeating a step that had succeeded.

use std::time::{Duration, Instant};

use aerie_tests::misc::Upstream;
use serde_json::Value;

use crate::harness::{Site, grant, run};

const PLAYBOOK: &str = r#"name: slow
inputs:
  url: { required: true }
steps:
  - id: first
    uses: ioc-extract.extract
    with: { text: "seen 192.0.2.7" }
  - id: slow
    uses: hostile.fetch
    with: { url: "{{ inputs.url }}" }
  - id: last
    set: { ip: "{{ steps.first.output.ipv4[0] }}", body: "{{ steps.slow.output.body }}" }
output: "{{ steps.last.output }}"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_is_resumed_without_repeating_finished_steps() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let section = grant("hostile", &origin, "limits = { timeout_ms = 20000 }\n");
    site.shipped("ioc-extract")
        .hostile("hostile", |m| m)
        .config(&format!("[engine]\nlease_seconds = 1\n\n{section}"));
    site.file("slow.yaml", PLAYBOOK);
    let input = format!(r#"{{"url": "{origin}/slow/1500"}}"#);

    let mut child = site
        .aerie()
        .args(["run", "slow.yaml", "--input", &input])
        .spawn()
        .unwrap();
    // Wait until the slow step's request is in flight, then kill the process.
    let deadline = Instant::now() + Duration::from_secs(60);
    while upstream.received().is_empty() {
        assert!(Instant::now() < deadline, "the slow step never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let aerie = |args: &'static [&'static str]| {
        let mut command = site.aerie();
        command.args(args);
        tokio::task::spawn_blocking(move || run(&mut command))
    };
    let listed = aerie(&["runs", "list", "--json"]).await.unwrap();
    let runs: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        runs[0]["status"], "running",
        "the killed run is still on record"
    );
    let id = runs[0]["id"].as_str().unwrap().to_owned();

    // Its lease has not expired yet: nobody may take it over.
    let early = aerie(&["runs", "resume"]).await.unwrap();
    assert_eq!((early.code, early.stdout.trim()), (0, "no run to resume"));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resumed = aerie(&["runs", "resume", "--json"]).await.unwrap();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let resumed: Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert_eq!(resumed[0]["id"], id.as_str());
    assert_eq!(resumed[0]["status"], "succeeded");
    assert_eq!(
        resumed[0]["output"],
        serde_json::json!({"ip": "192.0.2.7", "body": "late"})
    );
    let attempts: Vec<(&str, u64)> = resumed[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["attempts"].as_u64().unwrap()))
        .collect();
    // `first` had succeeded: not run again. `slow` was interrupted: run again.
    assert_eq!(attempts, [("first", 1), ("slow", 2), ("last", 0)]);
    assert_eq!(upstream.received().len(), 2);

    let export = aerie_export(&site, &id).await;
    let started = |step: &str| {
        export["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "step.started" && e["body"]["step"] == step)
            .count()
    };
    assert_eq!((started("first"), started("slow")), (1, 2));
    assert!(
        export["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "run.resumed")
    );
    let verify = aerie(&["audit", "verify"]).await.unwrap();
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

async fn aerie_export(site: &Site, id: &str) -> Value {
    let mut command = site.aerie();
    command.args(["audit", "export", "--format", "json", "--run", id]);
    let ran = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap()
}
