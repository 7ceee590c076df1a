//! Cron triggers through a real `aerie serve`: a schedule fires by itself,
//! and its runs are read back through the API. The catch-up, skip, overlap
//! and one-tick-across-hosts rules are tested with a fake clock in
//! `aerie_server::schedules`.

use std::time::{Duration, Instant};

use crate::harness::Site;
use crate::served::{Served, get, token};

const EVERY_SECOND: &str = r#"name: heartbeat
trigger:
  cron: { schedule: "* * * * * *", overlap: allow }
steps:
  - id: beat
    set: { ok: true }
output: "{{ steps.beat.output.ok }}"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_fires_by_itself_and_its_runs_are_listed() {
    let site = Site::new();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(site.path().join("playbooks/heartbeat.yaml"), EVERY_SECOND).unwrap();
    site.config("[server]\nlisten = \"127.0.0.1:0\"\n");
    let served = Served::start(&site, &[]);
    let alice = token(&site, "alice");
    // The first look only records the time; every second after it fires.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = get(served.addr, "/api/v1/runs?limit=100", Some(&alice)).await;
        assert_eq!(runs.status, 200, "{:?}", runs.body);
        let list = runs.body["runs"].as_array().cloned().unwrap_or_default();
        let done = list
            .iter()
            .filter(|r| r["playbook"] == "heartbeat" && r["status"] == "succeeded")
            .count();
        if done >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", runs.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Filtered, one page at a time.
    let page = |query: String| {
        let alice = alice.clone();
        async move { get(served.addr, &format!("/api/v1/runs?{query}"), Some(&alice)).await }
    };
    let first = page("playbook=heartbeat&status=succeeded&limit=1".to_owned()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let newest = first.body["runs"][0].clone();
    assert_eq!(newest["status"], "succeeded");
    assert_eq!(first.body["next"], newest["id"]);
    let second = page(format!(
        "playbook=heartbeat&status=succeeded&limit=1&before={}",
        newest["id"].as_str().unwrap()
    ))
    .await;
    let older = &second.body["runs"][0];
    assert_ne!(older["id"], newest["id"], "{:?}", second.body);
    assert!(older["started_at"].as_str() <= newest["started_at"].as_str());
    assert_eq!(
        page("playbook=nope".to_owned()).await.body["runs"],
        serde_json::json!([])
    );
    let bad = page("status=sideways".to_owned()).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("status `sideways` is not one of")
    );
    assert_eq!(page("before=nope".to_owned()).await.status, 400);

    let triggers = get(served.addr, "/api/v1/triggers", Some(&alice)).await;
    let schedule = &triggers.body["schedules"][0];
    assert_eq!(schedule["playbook"], "heartbeat", "{:?}", triggers.body);
    assert_eq!(schedule["schedule"], "* * * * * *");
    assert_eq!(schedule["overlap"], "allow");
    assert!(
        schedule["last_tick"].is_string() && schedule["next_tick"].is_string(),
        "{schedule}"
    );
    assert!(schedule["missed"].is_number(), "{schedule}");
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}
