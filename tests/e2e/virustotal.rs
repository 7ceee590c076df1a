//! The `virustotal` plugin against the VirusTotal stand-in.

use std::sync::Arc;

use aerie_runtime::Plugin;
use aerie_tests::virustotal::StandIn;
use serde_json::{Value, json};

use crate::harness::{Site, grant, key_file};

const KEY: &str = "test-vt-key-0123456789";

struct Fixture {
    site: Site,
    vt: Arc<StandIn>,
    _server: tokio::task::JoinHandle<()>,
}

async fn fixture(key_given: &str) -> Fixture {
    let vt = StandIn::new(KEY);
    let (addr, server) = aerie_tests::serve(vt.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let key = site.file("vt.key", key_given);
    site.shipped("virustotal")
        .config(&grant("virustotal", &origin, &key_file(&key)));
    Fixture {
        site,
        vt,
        _server: server,
    }
}

async fn lookup(plugin: &Plugin, input: Value) -> Value {
    match plugin.call("lookup", &input).await.result {
        Ok(output) => output,
        Err(e) => panic!("{input}: {e}"),
    }
}

#[tokio::test]
async fn looks_up_every_kind_of_indicator() {
    let f = fixture(KEY).await;
    let plugin = f.site.load("virustotal").await;
    let cases = [
        ("44d88612fea8a8f36de82e1278abb02f", "file", "malicious", 62),
        ("d41d8cd98f00b204e9800998ecf8427e", "file", "clean", 0),
        ("185.220.101.1", "ip", "malicious", 12),
        ("8.8.8.8", "ip", "clean", 0),
        ("sketchy-downloads.net", "domain", "suspicious", 0),
        (
            "http://login-paypal-secure.com/verify",
            "url",
            "malicious",
            9,
        ),
    ];
    for (indicator, kind, verdict, malicious) in cases {
        let out = lookup(&plugin, json!({"indicator": indicator})).await;
        assert_eq!(out["type"], kind, "{out}");
        assert_eq!(out["verdict"], verdict, "{out}");
        assert_eq!(out["malicious"], malicious, "{out}");
        assert_eq!(out["found"], true);
    }
    let paths: Vec<String> = f.vt.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[4], "/api/v3/domains/sketchy-downloads.net");
    // URL ids are the unpadded base64url of the URL.
    assert_eq!(
        paths[5],
        "/api/v3/urls/aHR0cDovL2xvZ2luLXBheXBhbC1zZWN1cmUuY29tL3ZlcmlmeQ"
    );
    assert!(
        f.vt.received()
            .iter()
            .all(|r| r.api_key.as_deref() == Some(KEY))
    );
}

#[tokio::test]
async fn the_full_output_shape() {
    let f = fixture(KEY).await;
    let plugin = f.site.load("virustotal").await;
    let out = lookup(&plugin, json!({"indicator": "185.220.101.1", "type": "ip"})).await;
    insta::assert_json_snapshot!(out, @r#"
    {
      "indicator": "185.220.101.1",
      "type": "ip",
      "found": true,
      "malicious": 12,
      "suspicious": 2,
      "harmless": 50,
      "undetected": 28,
      "verdict": "malicious",
      "link": "https://www.virustotal.com/gui/ip-address/185.220.101.1"
    }
    "#);
}

#[tokio::test]
async fn not_found_is_an_answer_not_an_error() {
    let f = fixture(KEY).await;
    let plugin = f.site.load("virustotal").await;
    let out = lookup(&plugin, json!({"indicator": "never-seen-before.org"})).await;
    assert_eq!(
        (out["found"].clone(), out["verdict"].clone()),
        (json!(false), json!("unknown"))
    );
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let f = fixture("wrong-key-000").await;
    let plugin = f.site.load("virustotal").await;
    let err = plugin
        .call("lookup", &json!({"indicator": "8.8.8.8"}))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code().as_str(), "unauthorized");
    assert!(!err.retryable());
    insta::assert_snapshot!(err, @"virustotal.lookup: unauthorized: VirusTotal refused the API key (WrongCredentialsError: Wrong API key)");
}

#[tokio::test]
async fn an_exhausted_quota_is_rate_limited_and_retryable() {
    let f = fixture(KEY).await;
    f.vt.set_quota(Some(1));
    let plugin = f.site.load("virustotal").await;
    lookup(&plugin, json!({"indicator": "8.8.8.8"})).await;
    let err = plugin
        .call("lookup", &json!({"indicator": "8.8.8.8"}))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code().as_str(), "rate-limited");
    assert!(err.retryable());
}

#[tokio::test]
async fn an_indicator_of_unknown_shape_is_invalid_input() {
    let f = fixture(KEY).await;
    let plugin = f.site.load("virustotal").await;
    let err = plugin
        .call("lookup", &json!({"indicator": "hello world"}))
        .await
        .result
        .unwrap_err();
    insta::assert_snapshot!(err, @r#"virustotal.lookup: invalid-input: cannot tell what `hello world` is: give "type" (file, ip, domain or url)"#);
    assert!(f.vt.received().is_empty());
}
