//! Signed checkpoints (`[audit]`): the chain alone cannot show that its last
//! entries were deleted, or that it was rewritten with every hash recomputed;
//! checked against a checkpoint signed with a key kept outside the database,
//! both are detected, and so are a removed checkpoint and a wrong key.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row as _;

use crate::harness::{Ran, Site, run};

const PLAYBOOK: &str = r#"name: triage
inputs:
  text: { required: true }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.text }}" }
output: "{{ steps.iocs.output.ipv4 }}"
"#;

fn aerie(site: &Site, args: &[&str]) -> Ran {
    run(site.aerie().args(args))
}

/// A site with `[audit]` set, a key made by `aerie audit keygen`, and two runs.
fn site() -> Site {
    let site = Site::new();
    site.shipped("ioc-extract");
    site.file("triage.yaml", PLAYBOOK);
    let made = aerie(&site, &["audit", "keygen", "--out", "audit.key"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    site.config("[audit]\nsigning_key_file = \"audit.key\"\ncheckpoints = \"checkpoints.jsonl\"\n");
    for i in 0..2 {
        let input = format!(r#"{{"text": "seen 10.0.0.{i}"}}"#);
        let ran = aerie(&site, &["run", "triage.yaml", "--input", &input]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    site
}

fn verify(site: &Site) -> Ran {
    aerie(site, &["audit", "verify"])
}

#[test]
fn every_run_ends_with_a_signed_checkpoint_that_verify_checks() {
    let site = site();
    let lines = std::fs::read_to_string(site.path().join("checkpoints.jsonl")).unwrap();
    let checkpoints: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(checkpoints.len(), 2, "one per run: {lines}");
    let public = std::fs::read_to_string(site.path().join("audit.pub")).unwrap();
    assert_eq!(checkpoints[1]["key"], public.trim());
    let ran = verify(&site);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let entries = checkpoints[1]["entries"].as_u64().unwrap();
    assert!(
        ran.stdout
            .contains(&format!("the first {entries} match the checkpoint of")),
        "{}",
        ran.stdout
    );
    // `aerie audit checkpoint` signs one now, for a witness.
    let signed = aerie(&site, &["audit", "checkpoint"]);
    let signed: Value = serde_json::from_str(&signed.stdout).unwrap();
    assert_eq!(signed["entries"], entries);
}

#[tokio::test]
async fn deleting_the_last_entries_is_detected() {
    let site = site();
    let mut conn = site.tamper().await;
    sqlx::query("DELETE FROM audit WHERE seq > (SELECT max(seq) - 3 FROM audit)")
        .execute(&mut conn)
        .await
        .unwrap();
    let ran = verify(&site);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("entries were removed"),
        "{}",
        ran.stderr
    );
    // Nothing signs over it: neither a witness's request nor the next run.
    let checkpoints = || std::fs::read_to_string(site.path().join("checkpoints.jsonl")).unwrap();
    let before = checkpoints();
    let ran = aerie(&site, &["audit", "checkpoint"]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("not signing a checkpoint"),
        "{}",
        ran.stderr
    );
    let ran = aerie(
        &site,
        &["run", "triage.yaml", "--input", r#"{"text": "10.9.9.9"}"#],
    );
    assert!(
        ran.stderr.contains("not signing a checkpoint"),
        "{}",
        ran.stderr
    );
    assert_eq!(checkpoints(), before);
    assert_eq!(verify(&site).code, 1);
}

/// Change an entry and recompute every hash after it, as someone who knows
/// the (public) chaining rule would: the chain verifies on its own, the
/// checkpoint does not.
#[tokio::test]
async fn a_rewritten_chain_is_detected() {
    let site = site();
    let mut conn = site.tamper().await;
    let rows = sqlx::query("SELECT seq, at, run_id, kind, body FROM audit ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut prev = aerie_store::audit::GENESIS.to_owned();
    for (i, row) in rows.iter().enumerate() {
        let seq: i64 = row.get("seq");
        let mut body: String = row.get("body");
        if i == 2 {
            body = body.replace("10.0.0.0", "10.6.6.6");
        }
        let mut hasher = Sha256::new();
        for part in [
            &prev,
            &row.get::<String, _>("at"),
            &row.get::<String, _>("run_id"),
            &row.get::<String, _>("kind"),
        ] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(body.as_bytes());
        let hash = hex::encode(hasher.finalize());
        sqlx::query("UPDATE audit SET body = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&body)
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = hash;
    }
    let ran = verify(&site);
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert!(
        ran.stderr.contains("the chain was rewritten"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_removed_checkpoint_file_or_a_wrong_key_fails_verification() {
    let site = site();
    std::fs::rename(
        site.path().join("checkpoints.jsonl"),
        site.path().join("kept.jsonl"),
    )
    .unwrap();
    let ran = verify(&site);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("no checkpoint in"), "{}", ran.stderr);

    std::fs::rename(
        site.path().join("kept.jsonl"),
        site.path().join("checkpoints.jsonl"),
    )
    .unwrap();
    let made = aerie(&site, &["audit", "keygen", "--out", "other.key"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    site.config("[audit]\nsigning_key_file = \"other.key\"\ncheckpoints = \"checkpoints.jsonl\"\n");
    let ran = verify(&site);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr
            .contains("its signature does not verify with the configured key"),
        "{}",
        ran.stderr
    );
}
