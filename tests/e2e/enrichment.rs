//! The enrichment-only service (`playbooks/enrichment-only.yaml`) as it is
//! served: IOCs posted to its webhook, enriched by the VirusTotal, RDAP,
//! Shodan, Safe Browsing and CAPE stand-ins, escalated to the Jira stand-in
//! when malicious — a benign IOC, a malicious log line, and the same IOC
//! again folding into its case.

use serde_json::{Value, json};

use crate::harness::{Site, repo};
use crate::served::{Served, finished, get, post_json, token};

const HOOK_TOKEN: &str = "enrichment-hook-token";

async fn submit(served: &Served, api: &str, body: Value) -> Value {
    let auth = format!("Bearer {HOOK_TOKEN}");
    let answer = post_json(
        served.addr,
        "/hooks/enrichment",
        &[("authorization", &auth)],
        &body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let run = finished(served.addr, api, answer.body["run"].as_str().unwrap()).await;
    assert_eq!(
        run["status"],
        "succeeded",
        "{}",
        serde_json::to_string_pretty(&run).unwrap()
    );
    run
}

async fn case(served: &Served, api: &str, id: &str) -> Value {
    let answer = get(served.addr, &format!("/api/v1/cases/{id}"), Some(api)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

fn texts(case: &Value) -> Vec<String> {
    case["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn iocs_are_enriched_escalated_when_malicious_and_folded_when_repeated() {
    let site = Site::new();
    for plugin in [
        "ioc-extract",
        "virustotal",
        "rdap",
        "shodan",
        "safebrowsing",
        "cape",
        "jira",
        "elastic",
    ] {
        site.shipped(plugin);
    }
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::copy(
        repo().join("playbooks/enrichment-only.yaml"),
        site.path().join("playbooks/enrichment-only.yaml"),
    )
    .unwrap();
    let stand_ins = aerie_tests::enrichment::StandIns::start(site.path())
        .await
        .unwrap();
    site.config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[users.alice]\n\n[webhooks.enrichment]\nauth = {{ bearer = {{ env = \"HOOK_TOKEN\" }} }}\n\n{}",
        stand_ins.config
    ));
    let served = Served::start(&site, &[("HOOK_TOKEN", HOOK_TOKEN)]);
    let api = token(&site, "alice");

    // Benign: a case opened, enriched, closed benign; nothing for Jira.
    let benign = submit(&served, &api, json!({ "ioc": "8.8.8.8" })).await;
    assert_eq!(benign["output"]["malicious"], json!([]));
    let google = benign["output"]["cases"][0].as_str().unwrap().to_owned();
    let shown = case(&served, &api, &google).await;
    assert_eq!(
        (shown["status"].as_str(), shown["resolution"].as_str()),
        (Some("closed"), Some("benign"))
    );
    assert_eq!(shown["type"], "Enrichment");
    assert_eq!(
        shown["observables"],
        json!([{ "kind": "ip", "value": "8.8.8.8" }])
    );
    let report = &texts(&shown)[0];
    assert!(report.contains("VirusTotal: clean"), "{report}");
    assert!(report.contains("RDAP: Google LLC"), "{report}");
    assert!(report.contains("Shodan: ports 53, 443"), "{report}");
    assert!(
        report.ends_with("Verdict: nothing malicious found"),
        "{report}"
    );
    assert!(stand_ins.jira.issues().is_empty());

    // Malicious: a log line with an IP, a URL and its domain. Jira throttles
    // the first create once; the step's retry goes through.
    stand_ins.jira.throttle(1);
    let line =
        "proxy: 10.1.2.3 beaconed to 185.220.101.1 after hxxp://login-paypal-secure[.]com/verify";
    let malicious = submit(&served, &api, json!({ "text": line })).await;
    assert_eq!(
        malicious["output"]["malicious"],
        json!([
            "185.220.101.1",
            "login-paypal-secure.com",
            "http://login-paypal-secure.com/verify"
        ])
    );
    assert_eq!(
        malicious["output"]["jira"],
        json!(["SOC-1", "SOC-2", "SOC-3"])
    );
    let issues = stand_ins.jira.issues();
    assert_eq!(issues.len(), 3);
    // What the SIEM saw of the address in the last four weeks (three of its
    // four events), attached to its issue.
    let (name, mime, bytes) = &issues[0].attachments[0];
    assert_eq!(
        (name.as_str(), mime.as_str()),
        ("siem-last-4-weeks.json", "application/json")
    );
    let siem: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(siem["total"], 3, "{siem}");
    assert_eq!(siem["hits"][0]["source"]["host"]["name"], "ws-042");
    assert_eq!(
        stand_ins.siem.searched()[0]["query"]["bool"]["filter"][1]["multi_match"]["query"],
        "185.220.101.1"
    );
    assert_eq!(issues[0].fields["issuetype"]["name"], "Investigation");
    assert_eq!(
        issues[0].fields["summary"],
        "Malicious ip 185.220.101.1 (VirusTotal, Shodan)"
    );
    let description = issues[2].fields["description"].to_string();
    assert!(
        description.contains("Safe Browsing: listed as SOCIAL_ENGINEERING")
            && description.contains("CAPE: malscore 8.5, phishing_page"),
        "{description}"
    );
    // The private address in the line went to no outside service.
    assert_eq!(stand_ins.shodan.asked(), ["8.8.8.8", "185.220.101.1"]);
    assert_eq!(
        stand_ins.cape.submitted(),
        ["http://login-paypal-secure.com/verify"]
    );
    let url_case = malicious["output"]["cases"][2].as_str().unwrap().to_owned();
    let shown = case(&served, &api, &url_case).await;
    assert_eq!(
        (shown["status"].as_str(), shown["resolution"].as_str()),
        (Some("closed"), Some("escalated"))
    );
    assert_eq!(shown["severity"], "high");
    assert_eq!(shown["tags"], json!(["enrichment", "jira:SOC-3"]));
    assert!(
        texts(&shown)
            .iter()
            .any(|t| t.starts_with("Escalated: Jira SOC-3")),
        "{shown}"
    );

    // The same IOC again: no new case; its case is enriched again and says so.
    let cases_before = get(served.addr, "/api/v1/cases?limit=1000", Some(&api))
        .await
        .body["cases"]
        .as_array()
        .unwrap()
        .len();
    let again = submit(&served, &api, json!({ "ioc": "8.8.8.8" })).await;
    assert_eq!(again["output"]["cases"], json!([google]));
    let cases_after = get(served.addr, "/api/v1/cases?limit=1000", Some(&api))
        .await
        .body["cases"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cases_after, cases_before);
    let comments = texts(&case(&served, &api, &google).await);
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(comments[1].starts_with("Repeated at"), "{comments:?}");
    assert!(
        comments[2].starts_with("Enrichment of ip 8.8.8.8"),
        "{comments:?}"
    );
    assert_eq!(stand_ins.jira.issues().len(), 3);
}
