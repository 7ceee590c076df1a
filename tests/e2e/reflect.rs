//! An upstream that reflects the request hands back what the broker injected;
//! the guest must still never hold the secret, in any form the upstream
//! writes it in. (TRACE, which reflects by definition, is refused outright:
//! `broker::trace_is_refused`.)

use aerie_tests::misc::Upstream;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::harness::{Site, grant, key_file};

const SECRET: &str = "vt-secret/4f9a+1c77e2";

/// The forms the echo upstream writes a value in.
fn forms(value: &str) -> Vec<String> {
    let percent: String = value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    vec![
        value.to_owned(),
        STANDARD.encode(value),
        URL_SAFE_NO_PAD.encode(value),
        hex::encode(value),
        percent,
    ]
}

#[tokio::test]
async fn a_reflecting_upstream_never_hands_the_plugin_its_key() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let basic = |pair: &str| format!("Basic {}", STANDARD.encode(pair));
    // Each way of applying a credential, and the value it puts on the wire.
    let cases = [
        (r#"{ header = "x-apikey" }"#, SECRET.to_owned()),
        (r#""bearer""#, format!("Bearer {SECRET}")),
        (
            r#"{ basic = { username = "svc" } }"#,
            basic(&format!("svc:{SECRET}")),
        ),
        (r#"{ basic = {} }"#, basic(SECRET)),
        (
            r#"{ query = "apikey" }"#,
            format!(
                "/echo?apikey={}",
                SECRET.replace('/', "%2F").replace('+', "%2B")
            ),
        ),
    ];
    for (apply, wire) in cases {
        let site = Site::new();
        let plugin = site.hostile_with_credential(apply, &origin, SECRET).await;
        let mut needles = forms(SECRET);
        needles.extend(forms(&wire));
        needles.push(STANDARD.encode(format!("svc:{SECRET}")));
        let report = plugin
            .call(
                "observe",
                &json!({"url": format!("{origin}/echo"), "needle": SECRET, "needles": needles}),
            )
            .await;
        let output = report.result.unwrap();

        // The upstream got the credential and reflected it...
        let received = upstream.received().pop().unwrap();
        let path = upstream.paths().pop().unwrap();
        assert!(
            received.iter().any(|(_, v)| v == &wire) || path == wire,
            "{apply}: not injected: {received:?} {path}"
        );
        // ...but nothing the guest held contained it, in any form.
        assert_eq!(output["needle_seen"], json!(false), "{apply}: {output:#}");
        assert_eq!(output["needles_seen"], json!([]), "{apply}: {output:#}");

        // The rest of the response is intact and still JSON.
        let response = &output["seen"]["response"];
        assert_eq!(response["status"], 200, "{apply}");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{apply}: the scrubbed body is not JSON: {e}"));
        assert!(
            body["links"]["self"].as_str().unwrap().starts_with("/echo"),
            "{apply}: {body}"
        );
        let echoed = body["echo"].to_string();
        assert!(echoed.contains("[REDACTED]"), "{apply}: {echoed}");
        let headers = response["headers"].to_string();
        if apply.contains("query") {
            // The whole `apikey=…` pair is a protected value.
            assert!(
                headers.contains(r#""/echo?[REDACTED]""#),
                "{apply}: {headers}"
            );
        } else {
            assert!(headers.contains("[REDACTED]"), "{apply}: {headers}");
        }
    }
}

#[tokio::test]
async fn a_plugin_with_credentials_gets_only_answers_the_host_can_scrub() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let key = site.file("key", SECRET);
    site.hostile("hostile", |m| m)
        .config(&grant("hostile", &origin, &key_file(&key)));
    let plugin = site.load("hostile").await;
    // The guest asks for gzip; the upstream is asked for identity.
    let ok = plugin
        .call(
            "fetch",
            &json!({"url": format!("{origin}/hello"), "headers": {"accept-encoding": "gzip"}}),
        )
        .await;
    assert_eq!(ok.result.unwrap()["status"], 200);
    let sent = upstream.received().pop().unwrap();
    assert!(
        sent.contains(&("accept-encoding".to_owned(), "identity".to_owned())),
        "{sent:?}"
    );
    // An upstream that compresses anyway is refused before the guest reads.
    let report = plugin
        .call("fetch", &json!({"url": format!("{origin}/gzip")}))
        .await;
    let err = report.result.unwrap_err();
    assert_eq!(err.code().as_str(), "denied", "{err}");
    assert!(err.to_string().contains("is `gzip`-encoded"), "{err}");
}

#[tokio::test]
async fn a_plugin_without_credentials_gets_responses_untouched() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.hostile("hostile", |m| m)
        .config(&grant("hostile", &origin, ""));
    let plugin = site.load("hostile").await;
    let output = plugin
        .call("fetch", &json!({"url": format!("{origin}/echo?q=1")}))
        .await
        .result
        .unwrap();
    let headers = output["headers"].to_string();
    assert!(headers.contains("content-length"), "{headers}");
    assert!(!output["body"].as_str().unwrap().contains("[REDACTED]"));
}
