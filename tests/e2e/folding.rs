//! A webhook trigger's `dedupe` block folds repeats before a run starts —
//! the seed's resent alert, the stateless repeat, compound keys, the sliding
//! gap — each repeat recorded on the run its key started.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Site;
use crate::served::{Answer, Served, finished, get, post_json, request, token};

const TOKEN: &str = "fold-t0ken-0123";

fn site(window: &str, from: &str) -> Site {
    let site = Site::new();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(
        site.path().join("playbooks/vuln.yaml"),
        format!(
            r#"name: vuln
inputs:
  body: {{ type: object, required: true }}
trigger:
  webhook:
    name: scanner
    dedupe: {{ key: "{{{{ inputs.body.ip }}}}|{{{{ inputs.body.cve }}}}", window: {window}, window_from: {from} }}
steps:
  - {{ id: note, set: "{{{{ inputs.body.ip }}}} {{{{ inputs.body.cve }}}}" }}
output: "{{{{ steps.note.output }}}}"
"#
        ),
    )
    .unwrap();
    site.config(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[users.alice]\n\n[webhooks.scanner]\nauth = { bearer = { env = \"SCANNER_TOKEN\" } }\n",
    );
    site
}

async fn post(served: &Served, body: &Value) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    post_json(
        served.addr,
        "/hooks/scanner",
        &[("authorization", &auth)],
        &body.to_string(),
    )
    .await
}

fn alert(ip: &str, cve: &str, at: &str) -> Value {
    json!({ "ip": ip, "cve": cve, "timestamp": at, "severity": "high" })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_and_a_stateless_repeat_fold_into_the_first_run() {
    let site = site("1h", "first");
    let served = Served::start(&site, &[("SCANNER_TOKEN", TOKEN)]);
    let api = token(&site, "alice");

    let first = post(&served, &alert("10.0.0.5", "CVE-2024-3400", "12:00")).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let run = first.body["run"].as_str().unwrap().to_owned();
    // The same alert resent, then "it's 13:00 and I'm still seeing this".
    for at in ["12:00", "13:00"] {
        let repeat = post(&served, &alert("10.0.0.5", "CVE-2024-3400", at)).await;
        assert_eq!(repeat.status, 200, "{:?}", repeat.body);
        assert_eq!(repeat.body, json!({ "run": run, "folded": true }));
    }
    // The compound key: the same host with another CVE, another host with the same CVE.
    let other_cve = post(&served, &alert("10.0.0.5", "CVE-2023-4966", "12:01")).await;
    let other_host = post(&served, &alert("10.0.0.6", "CVE-2024-3400", "12:01")).await;
    assert_eq!((other_cve.status, other_host.status), (202, 202));
    assert_ne!(other_cve.body["run"], other_host.body["run"]);

    // NDJSON: a line repeating an earlier key, and two lines repeating each other.
    let lines = [
        alert("10.0.0.5", "CVE-2024-3400", "14:00"),
        alert("10.0.0.7", "CVE-2024-3400", "14:00"),
        alert("10.0.0.7", "CVE-2024-3400", "14:00"),
    ]
    .map(|l| l.to_string())
    .join("\n");
    let auth = format!("Bearer {TOKEN}");
    let batch = request(
        served.addr,
        "POST",
        "/hooks/scanner",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        lines,
    )
    .await;
    assert_eq!(batch.status, 202, "{:?}", batch.body);
    assert_eq!(batch.body["runs"][0], run.as_str());
    assert_eq!(batch.body["runs"][1], batch.body["runs"][2]);
    assert_eq!(batch.body["folded"], json!([0, 2]));

    // Four runs in all; each repeat is on the first run's audit trail.
    let listed = get(served.addr, "/api/v1/runs?playbook=vuln", Some(&api)).await;
    assert_eq!(
        listed.body["runs"].as_array().unwrap().len(),
        4,
        "{:?}",
        listed.body
    );
    assert_eq!(
        finished(served.addr, &api, &run).await["status"],
        "succeeded"
    );
    let audit = get(
        served.addr,
        &format!("/api/v1/runs/{run}/audit"),
        Some(&api),
    )
    .await;
    let repeats: Vec<&Value> = audit.body["audit"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", audit.body))
        .iter()
        .filter(|e| e["kind"] == "run.repeated")
        .collect();
    assert_eq!(repeats.len(), 3, "{:?}", audit.body);
    assert_eq!(repeats[0]["body"]["key"], "10.0.0.5|CVE-2024-3400");
    // The resend is byte for byte the first body; the later repeat is not.
    assert_ne!(
        repeats[0]["body"]["body_sha256"],
        repeats[1]["body"]["body_sha256"]
    );

    // A key that renders empty is refused by name, and nothing is queued.
    let empty = post(&served, &json!({ "severity": "low" })).await;
    assert_eq!(empty.status, 400, "{:?}", empty.body);
    assert!(
        empty.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rendered `|` for this body, which names nothing"),
        "{:?}",
        empty.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sliding_gap_longer_than_the_window_starts_a_new_run() {
    let site = site("3s", "last");
    let served = Served::start(&site, &[("SCANNER_TOKEN", TOKEN)]);
    let same = alert("10.0.0.9", "CVE-2024-3400", "now");
    let first = post(&served, &same).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    // Repeats a second apart keep extending the window past its first 3 s.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let repeat = post(&served, &same).await;
        assert_eq!(repeat.status, 200, "{:?}", repeat.body);
        assert_eq!(repeat.body["run"], first.body["run"]);
    }
    // A gap longer than the window: the alert is new again.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let again = post(&served, &same).await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_ne!(again.body["run"], first.body["run"]);
}
