//! The `jira` plugin against the Jira stand-in, Cloud (v3, Basic
//! EMAIL:API_TOKEN) and Data Center (v2, Bearer PAT): create, comment,
//! transition, search with paging, attach; Jira's 401, 404, 410 and 429 as
//! the errors a playbook can act on. The plugin sets no `Authorization`: the
//! stand-in accepting a request shows the host injected the credential.

use std::sync::Arc;

use aerie_engine::ErrorCode;
use aerie_runtime::Plugin;
use aerie_tests::jira::StandIn;
use serde_json::{Value, json};

use crate::harness::{Site, grant};

const EMAIL: &str = "soc-bot@customer.example";
const TOKEN: &str = "ATATT3xFfGF0-cloud-token-0123456789";
const PAT: &str = "NjM0OTk2-datacenter-pat-0123456789";

struct Fixture {
    site: Site,
    jira: Arc<StandIn>,
    _server: tokio::task::JoinHandle<()>,
}

/// A site with the shipped plugin granted the stand-in, as `deployment`,
/// with `credential` (`api_token` or `pat`) bound to `secret`.
async fn fixture(jira: Arc<StandIn>, deployment: &str, credential: &str, secret: &str) -> Fixture {
    let (addr, server) = aerie_tests::serve(jira.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let secret = site.file("jira.secret", secret);
    let config = grant(
        "jira",
        &origin,
        &format!(
            "credentials.{credential} = {{ file = {:?} }}\n",
            secret.display().to_string()
        ),
    )
    .replace(
        &format!("settings = {{ base_url = {origin:?} }}"),
        &format!(
            "settings = {{ base_url = {origin:?}, deployment = {deployment:?}, project = \"SOC\" }}"
        ),
    );
    site.shipped("jira").config(&config);
    Fixture {
        site,
        jira,
        _server: server,
    }
}

async fn cloud() -> Fixture {
    fixture(
        StandIn::cloud(EMAIL, TOKEN),
        "cloud",
        "api_token",
        &format!("{EMAIL}:{TOKEN}"),
    )
    .await
}

async fn ok(plugin: &Plugin, action: &str, input: Value) -> Value {
    match plugin.call(action, &input).await.result {
        Ok(output) => output,
        Err(e) => panic!("jira.{action} {input}: {e}"),
    }
}

/// The plugin's own error: its code, message and whether a retry may help.
struct Refused {
    code: ErrorCode,
    message: String,
    retryable: bool,
}

async fn failed(plugin: &Plugin, action: &str, input: Value) -> Refused {
    let (code, message, retryable) = crate::harness::reported(plugin, action, input).await;
    Refused {
        code,
        message,
        retryable,
    }
}

#[tokio::test]
async fn an_investigation_is_opened_worked_and_searched_on_cloud() {
    let f = cloud().await;
    let plugin = f.site.load("jira").await;
    let created = ok(
        &plugin,
        "create_issue",
        json!({
            "type": "Investigation",
            "summary": "Malicious IOC 185.220.101.1",
            "description": "Enrichment summary\n\nVirusTotal: malicious (12)\nShodan: 22/tcp open",
            "labels": ["aerie", "enrichment"],
        }),
    )
    .await;
    assert_eq!(created["key"], "SOC-1");
    assert!(created["url"].as_str().unwrap().ends_with("/browse/SOC-1"));
    let issue = &f.jira.issues()[0];
    // v3 takes the description as an ADF document, a paragraph per block.
    assert_eq!(issue.fields["description"]["type"], "doc");
    assert_eq!(
        issue.fields["description"]["content"][1]["content"][2]["text"],
        "Shodan: 22/tcp open"
    );
    assert_eq!(issue.fields["issuetype"]["name"], "Investigation");

    let commented = ok(
        &plugin,
        "comment",
        json!({ "issue": "SOC-1", "text": "SIEM: 3 hits in 4 weeks" }),
    )
    .await;
    assert_eq!(commented["issue"], "SOC-1");
    let moved = ok(
        &plugin,
        "transition",
        json!({ "issue": "SOC-1", "to": "in progress", "comment": "taken" }),
    )
    .await;
    assert_eq!(moved["status"], "In Progress");
    assert_eq!(moved["transition"]["name"], "Start Progress");
    assert_eq!(f.jira.issues()[0].status, "In Progress");
    let nowhere = failed(
        &plugin,
        "transition",
        json!({ "issue": "SOC-1", "to": "Reopened" }),
    )
    .await;
    assert_eq!(nowhere.code, ErrorCode::InvalidInput);
    assert!(
        nowhere.message.contains("Resolve (to Done)"),
        "{}",
        nowhere.message
    );

    let attached = ok(&plugin, "attach", json!({
        "issue": "SOC-1", "filename": "siem-hits.json", "content": "{\"hits\": 3}", "content_type": "application/json",
    }))
    .await;
    assert_eq!(attached["attachments"][0]["filename"], "siem-hits.json");
    let (name, mime, bytes) = &f.jira.issues()[0].attachments[0];
    assert_eq!(
        (name.as_str(), mime.as_str(), bytes.as_slice()),
        (
            "siem-hits.json",
            "application/json",
            b"{\"hits\": 3}".as_slice()
        )
    );

    // Search pages through /search/jql by nextPageToken: 120 issues, two pages.
    for n in 0..119 {
        ok(
            &plugin,
            "create_issue",
            json!({ "summary": format!("noise {n}"), "labels": ["bulk"] }),
        )
        .await;
    }
    let found = ok(
        &plugin,
        "search",
        json!({ "jql": "project = SOC AND labels = bulk", "max_results": 1000 }),
    )
    .await;
    assert_eq!(found["count"], 119);
    assert_eq!(found["truncated"], false);
    assert_eq!(found["issues"][118]["summary"], "noise 118");
    let capped = ok(
        &plugin,
        "search",
        json!({ "jql": "project = SOC", "max_results": 30 }),
    )
    .await;
    assert_eq!(
        (capped["count"].as_u64(), capped["truncated"].as_bool()),
        (Some(30), Some(true))
    );
    let searches: Vec<String> = f
        .jira
        .received()
        .into_iter()
        .filter(|r| r.contains("search"))
        .collect();
    assert_eq!(searches, ["POST /rest/api/3/search/jql"; 3]);
}

#[tokio::test]
async fn data_center_takes_v2_text_and_a_bearer_token() {
    let f = fixture(StandIn::data_center(PAT), "datacenter", "pat", PAT).await;
    let plugin = f.site.load("jira").await;
    ok(
        &plugin,
        "create_issue",
        json!({ "summary": "Phish", "description": "plain text here" }),
    )
    .await;
    assert_eq!(f.jira.issues()[0].fields["description"], "plain text here");
    ok(
        &plugin,
        "comment",
        json!({ "issue": "SOC-1", "text": "wiki text" }),
    )
    .await;
    for n in 0..3 {
        ok(
            &plugin,
            "create_issue",
            json!({ "summary": format!("more {n}") }),
        )
        .await;
    }
    let found = ok(
        &plugin,
        "search",
        json!({ "jql": "project = SOC", "max_results": 1000 }),
    )
    .await;
    assert_eq!(found["count"], 4);
    assert!(
        f.jira
            .received()
            .contains(&"POST /rest/api/2/search".to_owned())
    );
}

#[tokio::test]
async fn jiras_refusals_are_errors_a_playbook_can_act_on() {
    // A wrong token: unauthorized, with Jira's words and which binding to check.
    let f = fixture(
        StandIn::cloud(EMAIL, TOKEN),
        "cloud",
        "api_token",
        &format!("{EMAIL}:wrong"),
    )
    .await;
    let plugin = f.site.load("jira").await;
    let refused = failed(&plugin, "create_issue", json!({ "summary": "x" })).await;
    assert_eq!(refused.code, ErrorCode::Unauthorized);
    assert!(
        refused.message.contains("You are not authenticated"),
        "{}",
        refused.message
    );
    assert!(!refused.retryable);

    let f = cloud().await;
    let plugin = f.site.load("jira").await;
    let missing = failed(
        &plugin,
        "comment",
        json!({ "issue": "SOC-404", "text": "hi" }),
    )
    .await;
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert!(
        missing.message.contains("Issue does not exist"),
        "{}",
        missing.message
    );
    // Jira's field errors are named.
    let bad = failed(
        &plugin,
        "create_issue",
        json!({ "project": "NOPE", "summary": "x" }),
    )
    .await;
    assert_eq!(bad.code, ErrorCode::InvalidInput);
    assert!(
        bad.message.contains("project: valid project is required"),
        "{}",
        bad.message
    );
    // A key that would step out of its path never leaves the plugin.
    let odd = failed(
        &plugin,
        "comment",
        json!({ "issue": "../../serverInfo", "text": "x" }),
    )
    .await;
    assert_eq!(odd.code, ErrorCode::InvalidInput);

    // 429 with Retry-After is rate-limited and retryable; the next call goes through.
    f.jira.throttle(1);
    let limited = failed(&plugin, "create_issue", json!({ "summary": "x" })).await;
    assert_eq!(limited.code, ErrorCode::RateLimited);
    assert!(limited.retryable);
    assert!(
        limited.message.contains("retry after 1 s"),
        "{}",
        limited.message
    );
    ok(&plugin, "create_issue", json!({ "summary": "x" })).await;
}

/// A client still on the removed `/rest/api/3/search` gets Jira's 410; the
/// plugin never asks it, and says so if a server answers the new one so.
#[tokio::test]
async fn the_removed_search_answers_410_and_the_plugin_uses_the_new_one() {
    let jira = StandIn::cloud(EMAIL, TOKEN);
    let (addr, _server) = aerie_tests::serve(jira.router()).await.unwrap();
    let basic = format!("Basic {}", base64_of(&format!("{EMAIL}:{TOKEN}")));
    let gone = crate::served::request(
        addr,
        "POST",
        "/rest/api/3/search",
        &[("authorization", &basic)],
        "{\"jql\":\"project = SOC\"}",
    )
    .await;
    assert_eq!(gone.status, 410);
    assert!(
        gone.body["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("/rest/api/3/search/jql")
    );

    let f = cloud().await;
    let plugin = f.site.load("jira").await;
    let empty = failed(&plugin, "search", json!({ "jql": " " })).await;
    assert_eq!(empty.code, ErrorCode::InvalidInput);
    let found = ok(&plugin, "search", json!({ "jql": "project = SOC" })).await;
    assert_eq!(found["count"], 0);
    assert!(
        f.jira
            .received()
            .iter()
            .all(|r| !r.ends_with("/rest/api/3/search"))
    );
}

/// An answer that is not JSON is an upstream error that shows what came back.
#[tokio::test]
async fn an_answer_that_is_not_json_is_named() {
    let router = axum::Router::new().route(
        "/rest/api/3/issue",
        axum::routing::post(|| async {
            (axum::http::StatusCode::CREATED, "<html>maintenance</html>")
        }),
    );
    let (addr, _server) = aerie_tests::serve(router).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.shipped("jira").config(&grant("jira", &origin, ""));
    let plugin = site.load("jira").await;
    let e = failed(
        &plugin,
        "create_issue",
        json!({ "project": "SOC", "summary": "x" }),
    )
    .await;
    assert_eq!(e.code, ErrorCode::Upstream);
    assert!(
        e.message.contains("not the JSON expected")
            && e.message.contains("<html>maintenance</html>"),
        "{}",
        e.message
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
