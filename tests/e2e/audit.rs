//! The audit trail: every run event chained by SHA-256, verified, exported, and
//! a tampered, removed or inserted entry detected.

use serde_json::Value;
use sqlx::Connection as _;

use crate::harness::{Site, run};

const PLAYBOOK: &str = r#"name: triage
inputs:
  text: { required: true }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.text }}" }
  - id: count
    set: { ips: "{{ steps.iocs.output.ipv4 | length }}" }
  - id: quiet
    if: "{{ steps.count.output.ips > 5 }}"
    log: "many IPs"
output:
  ips: "{{ steps.count.output.ips }}"
"#;

fn site_with_runs(n: usize) -> (Site, Vec<String>) {
    let site = Site::new();
    site.shipped("ioc-extract");
    site.file("triage.yaml", PLAYBOOK);
    let ids = (0..n)
        .map(|i| {
            let ran = run(site
                .aerie()
                .args(["run", "triage.yaml", "--json", "--input"])
                .arg(format!(r#"{{"text": "10.0.0.{i} and 10.0.1.{i}"}}"#)));
            assert_eq!(ran.code, 0, "{}", ran.stderr);
            let out: Value = serde_json::from_str(&ran.stdout).unwrap();
            assert_eq!(out["output"]["ips"], 2);
            out["id"].as_str().unwrap().to_owned()
        })
        .collect();
    (site, ids)
}

async fn tamper(site: &Site, sql: &str) {
    let mut conn = site.tamper().await;
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[test]
fn every_run_event_is_in_an_intact_chain() {
    let (site, ids) = site_with_runs(2);
    let ran = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.starts_with("audit trail intact: "),
        "{}",
        ran.stdout
    );

    let ran = run(site
        .aerie()
        .args(["audit", "export", "--run", &ids[1], "--format", "json"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let export: Value = serde_json::from_str(&ran.stdout).unwrap();
    let kinds: Vec<&str> = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run.started",
            // The plugin step, as each attempt starts and when it ends; a
            // `set` step and a skipped one only once they are finished.
            "step.started",
            "step.finished",
            "step.finished",
            "step.finished",
            "run.finished"
        ]
    );
    let step = &export["audit"][2]["body"];
    assert_eq!(step["plugin"]["name"], "ioc-extract");
    assert_eq!(step["plugin"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        step["output"]["ipv4"],
        serde_json::json!(["10.0.0.1", "10.0.1.1"])
    );
}

#[test]
fn the_markdown_export_reads_as_a_checklist() {
    let (site, ids) = site_with_runs(1);
    let ran = run(site.aerie().args(["audit", "export", "--run", &ids[0]]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let md = ran.stdout;
    assert!(
        md.starts_with(&format!("# Run {} — triage: succeeded", ids[0])),
        "{md}"
    );
    assert!(
        md.contains("- [x] **iocs** — succeeded, by ioc-extract 0.1.0 (sha256 "),
        "{md}"
    );
    assert!(
        md.contains("- [x] **count** — succeeded, by built-in"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] **quiet** — skipped, by built-in"),
        "{md}"
    );
    assert!(md.contains("Output: `{\"ips\":2}`"), "{md}");

    let ran = run(site
        .aerie()
        .args(["audit", "export", "--run", "no-such-run"]));
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (1, "aerie: no run `no-such-run`")
    );
}

#[test]
fn runs_list_and_show() {
    let (site, ids) = site_with_runs(2);
    let ran = run(site.aerie().args(["runs", "list", "--json"]));
    let list: Value = serde_json::from_str(&ran.stdout).unwrap();
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[1].as_str(), ids[0].as_str()], "newest first");
    let ran = run(site.aerie().args(["runs", "show", &ids[0], "--json"]));
    let shown: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["steps"][2]["status"], "skipped");
}

#[tokio::test]
async fn a_changed_entry_is_named() {
    let (site, _) = site_with_runs(2);
    tamper(&site, "UPDATE audit SET body = replace(body, '10.0.0.1', '10.9.9.9') WHERE kind = 'step.finished' AND body LIKE '%10.0.0.1%'").await;
    let ran = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"aerie: audit entry 9 does not match: its content does not match its hash (it was changed)");
}

#[tokio::test]
async fn a_removed_entry_is_named() {
    let (site, _) = site_with_runs(2);
    tamper(&site, "DELETE FROM audit WHERE seq = 4").await;
    let ran = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"aerie: audit entry 5 does not match: it does not follow the entry before it (an entry was removed, inserted or reordered)");
}

#[tokio::test]
async fn the_trail_refuses_changes_through_sql() {
    let (site, _) = site_with_runs(1);
    let url = format!("sqlite://{}", site.path().join(".aerie/aerie.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let err = sqlx::query("UPDATE audit SET body = '{}' WHERE seq = 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the audit trail is append-only"),
        "{err}"
    );
    let err = sqlx::query("DELETE FROM audit")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the audit trail is append-only"),
        "{err}"
    );
}

/// A column of the wrong type (the file edited by hand) breaks the trail at
/// its entry: reported as a broken trail, never a panic.
#[tokio::test]
async fn an_entry_of_the_wrong_type_is_a_broken_trail() {
    let (site, _) = site_with_runs(1);
    tamper(&site, "UPDATE audit SET body = X'00FF' WHERE seq = 3").await;
    let ran = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.starts_with(
            "aerie: audit entry 3 does not match: its `body` cannot be read as text ("
        ),
        "{}",
        ran.stderr
    );
}

/// A damaged status is an error naming the run and the value: read as
/// `pending` it would run a finished step again.
#[tokio::test]
async fn a_damaged_status_is_named_not_guessed() {
    let (site, ids) = site_with_runs(1);
    tamper(
        &site,
        "UPDATE steps SET status = 'Succeeded' WHERE step_id = 'count'",
    )
    .await;
    tamper(&site, "UPDATE runs SET status = 'running', lease_until = 0").await;
    let ran = run(site.aerie().args(["runs", "resume"]));
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert_eq!(
        ran.stderr.trim(),
        format!(
            "aerie: run {} is damaged in the store: step `count` status: `Succeeded` is not a step status",
            ids[0]
        )
    );
}
