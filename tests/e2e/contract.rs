//! Released contract versions keep working: a component built against
//! `aerie:plugin@0.1.0` and committed (tests/fixtures/contract-0.1.0) is
//! loaded and called by this host, its credential injected as ever.

use serde_json::json;

use crate::harness::{Site, grant, key_file, repo};

#[tokio::test]
async fn a_component_built_against_0_1_0_still_loads_and_runs() {
    let fixture = repo().join("tests/fixtures/contract-0.1.0/virustotal");
    let manifest = std::fs::read_to_string(fixture.join("plugin.toml")).unwrap();
    let vt = aerie_tests::virustotal::StandIn::new("vt-key-0123456789");
    let (addr, _server) = aerie_tests::serve(vt.router()).await.unwrap();
    let site = Site::new();
    let key = site.file("vt.key", "vt-key-0123456789");
    site.plugin("virustotal", &manifest, &fixture.join("plugin.wasm"))
        .config(&grant(
            "virustotal",
            &format!("http://{addr}"),
            &key_file(&key),
        ));
    let plugin = site.load("virustotal").await;
    let output = plugin
        .call("lookup", &json!({ "indicator": "185.220.101.1" }))
        .await
        .result
        .expect("the 0.1.0 component's lookup");
    assert_eq!(output["verdict"], "malicious");
    assert_eq!(output["malicious"], 12);
    assert_eq!(
        vt.received()[0].api_key.as_deref(),
        Some("vt-key-0123456789")
    );
}
