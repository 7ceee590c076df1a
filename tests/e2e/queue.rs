//! The server's queue is durable: what a webhook acknowledged survives a
//! SIGKILL, SIGTERM lets runs in flight finish, and a run stopped at the end
//! of the grace period is released, not lost.

use std::time::Duration;

use aerie_tests::misc::Upstream;
use serde_json::Value;

use crate::harness::{Site, grant};
use crate::served::{Served, finished, get, post_json, token};

const SLOW: &str = r#"name: slow
inputs:
  body: { type: object, required: true }
trigger:
  webhook: { name: slow }
steps:
  - id: wait
    uses: hostile.fetch
    with: { url: "{{ inputs.body.url }}" }
  - id: done
    set: { body: "{{ steps.wait.output.body }}" }
output: "{{ steps.done.output }}"
"#;

const TOKEN: &str = "slow-hook-token";

/// A site whose `slow` webhook runs a step that takes `millis`.
async fn site(server: &str) -> (Site, String, tokio::task::JoinHandle<()>) {
    let upstream = Upstream::new();
    let (addr, task) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.hostile("hostile", |m| m).config(&format!(
        "[engine]\nlease_seconds = 1\n\n[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\
         [webhooks.slow]\nauth = {{ bearer = {{ env = \"SLOW_TOKEN\" }} }}\n\n{}",
        grant("hostile", &origin, "limits = { timeout_ms = 20000 }\n")
    ));
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(site.path().join("playbooks/slow.yaml"), SLOW).unwrap();
    (site, origin, task)
}

fn serve(site: &Site) -> Served {
    Served::start(site, &[("SLOW_TOKEN", TOKEN)])
}

async fn start_slow(served: &Served, origin: &str, millis: u64) -> String {
    let auth = format!("Bearer {TOKEN}");
    let body = format!(r#"{{"url": "{origin}/slow/{millis}"}}"#);
    let answer = post_json(
        served.addr,
        "/hooks/slow",
        &[("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    answer.body["run"].as_str().unwrap().to_owned()
}

fn show(site: &Site, id: &str) -> Value {
    let out = site
        .aerie()
        .args(["runs", "show", id, "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_acknowledged_before_a_sigkill_is_finished_by_the_next_server() {
    let (site, origin, _upstream) = site("").await;
    let first = serve(&site);
    let id = start_slow(&first, &origin, 1500).await;
    // Killed right after the 202: the run is queued or mid-step.
    first.kill();
    let status = show(&site, &id)["status"].clone();
    assert!(status == "queued" || status == "running", "{status}");

    let second = serve(&site);
    let api = token(&site, "alice");
    let run = finished(second.addr, &api, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["body"], "late");
    let verified = site.aerie().args(["audit", "verify"]).output().unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_run_in_flight_finish() {
    let (site, origin, _upstream) = site("").await;
    let served = serve(&site);
    let api = token(&site, "alice");
    let id = start_slow(&served, &origin, 1500).await;
    wait_running(&served, &api, &id).await;
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let run = show(&site, &id);
    assert_eq!(
        run["status"], "succeeded",
        "the run in flight was cut short: {run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_still_going_after_the_grace_is_released_and_resumed() {
    let (site, origin, _upstream) = site("shutdown_grace = \"300ms\"\n").await;
    let served = serve(&site);
    let api = token(&site, "alice");
    let id = start_slow(&served, &origin, 4000).await;
    wait_running(&served, &api, &id).await;
    let started = std::time::Instant::now();
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "it waited for the run, not the grace"
    );
    assert_eq!(show(&site, &id)["status"], "running");

    // Released: the next server claims it at once, not after the lease.
    let next = serve(&site);
    let run = finished(next.addr, &api, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

async fn wait_running(served: &Served, api: &str, id: &str) {
    for _ in 0..200 {
        let run = get(served.addr, &format!("/api/v1/runs/{id}"), Some(api))
            .await
            .body;
        if run["status"] == "running" && run["steps"][0]["status"] == "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} never started its step");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_run_whose_playbook_no_longer_reads_fails_once() {
    let (site, _origin, _upstream) = site("").await;
    let url = format!("sqlite://{}", site.path().join(".aerie/aerie.db").display());
    let store = aerie_store::Store::open(&url).await.unwrap();
    let playbook = aerie_engine::Playbook::parse(std::path::Path::new("slow.yaml"), SLOW).unwrap();
    let run = aerie_engine::new_run(
        &playbook,
        &serde_json::json!({ "body": {} }),
        aerie_engine::RunStatus::Queued,
    )
    .unwrap();
    let id = run.id.clone();
    // As a store written by an older aerie might hold it.
    store
        .enqueue("test", "steps: [ {", vec![run], Default::default())
        .await
        .unwrap();
    drop(store);

    let served = serve(&site);
    let api = token(&site, "alice");
    let failed = finished(served.addr, &api, &id).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("its stored playbook does not read"),
        "{failed}"
    );
}
