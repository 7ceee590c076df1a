//! The credential reaches the upstream and nothing else: not the plugin, not its
//! output, not its logs, not the request records.

use aerie_tests::misc::Upstream;
use serde_json::json;

use crate::harness::{Site, grant, key_file, run};

const SECRET: &str = "vt-secret-4f9a1c77e2";

#[tokio::test]
async fn the_plugin_never_sees_the_secret_it_uses() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let key = site.file("vt.key", &format!("{SECRET}\n"));
    site.hostile("hostile", |m| m)
        .config(&grant("hostile", &origin, &key_file(&key)));
    let plugin = site.load("hostile").await;
    let report = plugin
        .call(
            "observe",
            &json!({"url": format!("{origin}/hello"), "needle": SECRET}),
        )
        .await;
    let output = report.result.unwrap();

    // Inside the sandbox: nothing the plugin could observe contained the secret.
    assert_eq!(output["needle_seen"], json!(false), "{output:#}");
    assert_eq!(output["seen"]["response"]["body"], "hello");
    // On the wire: the broker injected it for the granted origin.
    let sent = upstream.received();
    assert!(
        sent[0].contains(&("x-apikey".to_owned(), SECRET.to_owned())),
        "{sent:?}"
    );
    // And nowhere in what the host keeps.
    let kept = format!("{output} {:?} {:?}", report.requests, report.logs);
    assert!(!kept.contains(SECRET));
}

#[tokio::test]
async fn credentials_go_only_to_their_own_hosts() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let (other, _other_server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let other = format!("http://{other}");
    let site = Site::new();
    let key = site.file("vt.key", SECRET);
    // Both origins are granted, but the credential's hosts are {{ base_url }} only.
    site.hostile("hostile", |m| m).config(&format!(
        "[plugins.hostile]\nsettings = {{ base_url = {origin:?} }}\nallow = [{origin:?}, {other:?}]\ncredentials.api_key = {{ file = {:?} }}\n",
        key.display().to_string()
    ));
    let plugin = site.load("hostile").await;
    plugin
        .call("fetch", &json!({"url": format!("{other}/hello")}))
        .await
        .result
        .unwrap();
    let sent = upstream.received();
    assert!(
        sent[0]
            .iter()
            .all(|(name, value)| name != "x-apikey" && !value.contains(SECRET)),
        "{sent:?}"
    );
}

#[tokio::test]
async fn an_unset_secret_is_a_clear_error_at_call_time() {
    let site = Site::new();
    site.hostile("hostile", |m| m)
        .config("[plugins.hostile]\ncredentials.api_key = { env = \"AERIE_E2E_SURELY_UNSET\" }\n");
    let ran = run(site.aerie().args(["plugin", "call", "hostile", "noop"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"aerie: hostile.noop: internal: not configured: credential `api_key`: it is bound to the environment variable AERIE_E2E_SURELY_UNSET, which is not set");
}

#[tokio::test]
async fn inspect_names_credentials_and_their_binding_but_never_the_value() {
    let site = Site::new();
    site.hostile("hostile", |m| m)
        .config("[plugins.hostile]\ncredentials.api_key = { env = \"AERIE_E2E_KEY\" }\n");
    for args in [
        &["plugin", "inspect", "hostile", "--json"][..],
        &["plugin", "inspect", "hostile"][..],
    ] {
        let ran = run(site.aerie().args(args).env("AERIE_E2E_KEY", SECRET));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(
            ran.stdout.contains("api_key") && ran.stdout.contains("AERIE_E2E_KEY"),
            "{}",
            ran.stdout
        );
        assert!(!ran.stdout.contains(SECRET) && !ran.stderr.contains(SECRET));
    }
}

#[tokio::test]
async fn each_way_of_applying_a_credential_reaches_the_upstream() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let basic = |pair: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let cases = [
        (
            r#"{ header = "X-Auth-Token" }"#,
            ("x-auth-token", SECRET.to_owned()),
        ),
        (r#""bearer""#, ("authorization", format!("Bearer {SECRET}"))),
        (
            r#"{ basic = { username = "svc" } }"#,
            ("authorization", basic(&format!("svc:{SECRET}"))),
        ),
        (r#"{ basic = {} }"#, ("authorization", basic(SECRET))),
    ];
    for (apply, (header, value)) in cases {
        let site = Site::new();
        let plugin = site.hostile_with_credential(apply, &origin, SECRET).await;
        let report = plugin
            .call("fetch", &json!({"url": format!("{origin}/hello")}))
            .await;
        assert_eq!(report.result.unwrap()["status"], 200, "{apply}");
        let sent = upstream.received().pop().unwrap();
        assert!(
            sent.contains(&(header.to_owned(), value.clone())),
            "{apply}: {sent:?}"
        );
        // The guest may not set the header its credential occupies.
        let err = plugin
            .call(
                "fetch",
                &json!({"url": format!("{origin}/hello"), "headers": {header: "forged"}}),
            )
            .await
            .result
            .unwrap_err();
        assert_eq!(err.code().as_str(), "denied", "{apply}");
    }
}

#[tokio::test]
async fn a_query_credential_is_added_to_the_url_and_never_recorded() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    let plugin = site
        .hostile_with_credential(r#"{ query = "apikey" }"#, &origin, SECRET)
        .await;
    let report = plugin
        .call("fetch", &json!({"url": format!("{origin}/hello?x=1")}))
        .await;
    assert_eq!(report.result.unwrap()["status"], 200);
    assert_eq!(
        upstream.paths().pop().unwrap(),
        format!("/hello?x=1&apikey={SECRET}")
    );
    assert_eq!(report.requests[0].url, format!("{origin}/hello?x=1"));
}
