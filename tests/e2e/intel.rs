//! The enrichment plugins against their stand-ins: `shodan`, `safebrowsing`,
//! `rdap` and `cape`, each with its key injected by the host (the stand-ins
//! accept nothing else) and its vendor's refusals mapped to errors a
//! playbook can act on.

use std::sync::Arc;

use aerie_engine::ErrorCode;
use aerie_runtime::Plugin;
use serde_json::{Value, json};

use crate::harness::{Site, grant, reported as refused};

/// A site with the shipped `plugin` granted the stand-in `router`, its
/// credential (if any) bound to `secret`.
async fn site(
    plugin: &str,
    router: axum::Router,
    credential: Option<(&str, &str)>,
) -> (Site, Arc<Plugin>, tokio::task::JoinHandle<()>) {
    let (addr, server) = aerie_tests::serve(router).await.unwrap();
    let site = Site::new();
    let extra = match credential {
        Some((name, secret)) => {
            let file = site.file("secret", secret);
            format!(
                "credentials.{name} = {{ file = {:?} }}\n",
                file.display().to_string()
            )
        }
        None => String::new(),
    };
    site.shipped(plugin)
        .config(&grant(plugin, &format!("http://{addr}"), &extra));
    let loaded = site.load(plugin).await;
    (site, loaded, server)
}

async fn ok(plugin: &Plugin, action: &str, input: Value) -> Value {
    match plugin.call(action, &input).await.result {
        Ok(output) => output,
        Err(e) => panic!("{action} {input}: {e}"),
    }
}

#[tokio::test]
async fn shodan_reads_a_host_and_knows_an_unknown_one() {
    let shodan = aerie_tests::shodan::StandIn::new("shodan-key-0123456789");
    let (_site, plugin, _server) = site(
        "shodan",
        shodan.router(),
        Some(("api_key", "shodan-key-0123456789")),
    )
    .await;
    let tor = ok(&plugin, "host", json!({ "ip": "185.220.101.1" })).await;
    assert_eq!(tor["ports"], json!([22, 443, 9001]));
    assert_eq!(tor["malicious"], true, "tagged c2: {tor}");
    assert_eq!(tor["vulns"], json!(["CVE-2023-38408"]));
    assert_eq!(tor["services"][2]["port"], 9001);
    let google = ok(&plugin, "host", json!({ "ip": "8.8.8.8" })).await;
    assert_eq!(
        (google["verdict"].as_str(), google["org"].as_str()),
        (Some("clean"), Some("Google LLC"))
    );
    let unknown = ok(&plugin, "host", json!({ "ip": "192.0.2.1" })).await;
    assert_eq!(
        (unknown["found"].as_bool(), unknown["verdict"].as_str()),
        (Some(false), Some("unknown"))
    );
    assert_eq!(shodan.asked(), ["185.220.101.1", "8.8.8.8", "192.0.2.1"]);
    let (code, message, _) = refused(&plugin, "host", json!({ "ip": "not-an-ip" })).await;
    assert_eq!(code, ErrorCode::InvalidInput, "{message}");

    let (_site, wrong, _server) = site(
        "shodan",
        shodan.router(),
        Some(("api_key", "wrong-key-000000")),
    )
    .await;
    let (code, message, _) = refused(&wrong, "host", json!({ "ip": "8.8.8.8" })).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(
        message.contains("Please provide a valid API key"),
        "{message}"
    );
}

#[tokio::test]
async fn safe_browsing_checks_urls_and_domains_in_one_request() {
    let sb = aerie_tests::safebrowsing::StandIn::new("sb-key-0123456789");
    let (_site, plugin, _server) = site(
        "safebrowsing",
        sb.router(),
        Some(("api_key", "sb-key-0123456789")),
    )
    .await;
    let listed = ok(
        &plugin,
        "check",
        json!({ "urls": ["http://login-paypal-secure.com/verify", "example.com"] }),
    )
    .await;
    assert_eq!(listed["malicious"], true);
    assert_eq!(
        listed["matches"],
        json!([{ "url": "http://login-paypal-secure.com/verify", "threat_type": "SOCIAL_ENGINEERING", "platform": "ANY_PLATFORM" }])
    );
    assert_eq!(
        sb.asked(),
        [
            "http://login-paypal-secure.com/verify",
            "http://example.com/"
        ]
    );
    let clean = ok(
        &plugin,
        "check",
        json!({ "urls": ["https://example.org/"] }),
    )
    .await;
    assert_eq!(
        (clean["verdict"].as_str(), clean["checked"].as_u64()),
        (Some("clean"), Some(1))
    );
    let (code, ..) = refused(&plugin, "check", json!({ "urls": [] })).await;
    assert_eq!(code, ErrorCode::InvalidInput);

    let (_site, wrong, _server) = site(
        "safebrowsing",
        sb.router(),
        Some(("api_key", "wrong-key-000000")),
    )
    .await;
    let (code, message, _) = refused(&wrong, "check", json!({ "urls": ["example.com"] })).await;
    assert_eq!(code, ErrorCode::Unauthorized, "{message}");
}

#[tokio::test]
async fn rdap_reads_networks_and_domains_and_follows_a_redirect() {
    let rdap = aerie_tests::rdap::StandIn::new();
    let (_site, plugin, _server) = site("rdap", rdap.router(), None).await;
    let network = ok(&plugin, "lookup", json!({ "query": "185.220.101.1" })).await;
    assert_eq!(network["kind"], "ip");
    assert_eq!(network["name"], "TOR-EXITS");
    assert_eq!(network["holder"], "Tor exit relay operator");
    assert_eq!(network["abuse"], json!(["abuse@holder.example"]));
    let domain = ok(
        &plugin,
        "lookup",
        json!({ "query": "Login-PayPal-Secure.com." }),
    )
    .await;
    assert_eq!(domain["kind"], "domain");
    assert_eq!(domain["registered"], "2026-11-30T08:12:00Z");
    assert_eq!(domain["registrar"], "Cheap Names Inc.");
    assert_eq!(domain["nameservers"], json!(["ns1.registrar.example"]));
    let moved = ok(&plugin, "lookup", json!({ "query": "203.0.113.5" })).await;
    assert_eq!(moved["name"], "TEST-NET-3");
    let unknown = ok(
        &plugin,
        "lookup",
        json!({ "query": "nothing-here.example" }),
    )
    .await;
    assert_eq!(unknown["found"], false);
    assert_eq!(
        rdap.asked(),
        [
            "/ip/185.220.101.1",
            "/domain/login-paypal-secure.com",
            "/ip/203.0.113.5",
            "/registry/ip/203.0.113.5",
            "/domain/nothing-here.example"
        ]
    );
    let (code, ..) = refused(&plugin, "lookup", json!({ "query": "not a name" })).await;
    assert_eq!(code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn rdap_asks_the_server_the_operators_bootstrap_names() {
    let authority = aerie_tests::rdap::StandIn::new();
    let (addr, _server) = aerie_tests::serve(authority.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    // IANA's file shape (RFC 9224): the /8 to the stand-in, with a path.
    let data = site.path().join("rdap-data");
    std::fs::create_dir_all(&data).unwrap();
    let bootstrap = json!({ "version": "1.0", "services": [
        [["185.0.0.0/8"], [format!("{origin}/")]],
        [["0.0.0.0/0"], ["https://rdap.arin.net/registry/"]],
    ] });
    std::fs::write(data.join("ipv4.json"), bootstrap.to_string()).unwrap();
    // base_url points nowhere that answers: only the bootstrap can route it.
    site.shipped("rdap").config(&format!(
        "[plugins.rdap]\nsettings = {{ base_url = \"http://127.0.0.1:9\" }}\nallow = [{origin:?}]\ndata = {:?}\n",
        data.display().to_string()
    ));
    let plugin = site.load("rdap").await;
    let network = ok(&plugin, "lookup", json!({ "query": "185.220.101.1" })).await;
    assert_eq!(network["handle"], "NET-185-220-100-0-1");
    assert_eq!(authority.asked(), ["/ip/185.220.101.1"]);
}

#[tokio::test]
async fn cape_detonates_a_url_and_reports_once_it_is_written() {
    let cape = aerie_tests::cape::StandIn::new("cape-token-0123456789", 2);
    let (_site, plugin, _server) = site(
        "cape",
        cape.router(),
        Some(("api_token", "Token cape-token-0123456789")),
    )
    .await;
    let submitted = ok(
        &plugin,
        "submit",
        json!({ "url": "http://login-paypal-secure.com/verify" }),
    )
    .await;
    assert_eq!(submitted["available"], true);
    let task = submitted["task_id"].as_u64().unwrap();
    assert_eq!(cape.submitted(), ["http://login-paypal-secure.com/verify"]);
    // Running: a retryable error, so a step's `retry:` polls with backoff.
    for _ in 0..2 {
        let (code, message, retryable) =
            refused(&plugin, "report", json!({ "task_id": task })).await;
        assert_eq!((code, retryable), (ErrorCode::Timeout, true), "{message}");
        assert!(message.contains("`running`: not reported yet"), "{message}");
    }
    let report = ok(&plugin, "report", json!({ "task_id": task })).await;
    assert_eq!(
        (report["malscore"].as_f64(), report["verdict"].as_str()),
        (Some(8.5), Some("malicious"))
    );
    assert_eq!(report["signatures"][0]["name"], "phishing_page");

    let held = ok(
        &plugin,
        "submit",
        json!({ "hash": aerie_tests::cape::EICAR_SHA256 }),
    )
    .await;
    assert_eq!(
        held,
        json!({ "target": aerie_tests::cape::EICAR_SHA256, "task_id": 7, "available": true, "existing": true })
    );
    let eicar = ok(&plugin, "report", json!({ "task_id": 7 })).await;
    assert_eq!(eicar["detections"], json!(["EICAR"]));
    let absent = ok(
        &plugin,
        "submit",
        json!({ "hash": "d41d8cd98f00b204e9800998ecf8427e" }),
    )
    .await;
    assert_eq!(
        absent,
        json!({ "target": "d41d8cd98f00b204e9800998ecf8427e", "task_id": null, "available": false, "existing": false })
    );
    let (code, message, _) = refused(&plugin, "report", json!({ "task_id": 999 })).await;
    assert_eq!(code, ErrorCode::Upstream);
    assert!(message.contains("Task does not exist"), "{message}");
    let (code, ..) = refused(&plugin, "submit", json!({ "url": "ftp://x.example/" })).await;
    assert_eq!(code, ErrorCode::InvalidInput);

    let (_site, wrong, _server) =
        site("cape", cape.router(), Some(("api_token", "Token wrong"))).await;
    let (code, message, _) = refused(&wrong, "report", json!({ "task_id": 7 })).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(message.contains("Invalid token"), "{message}");
}

#[tokio::test]
async fn elastic_finds_an_indicators_events_over_a_span_and_reads_no_query_syntax() {
    let es = aerie_tests::elastic::StandIn::new("siem-key-0123456789");
    let (_site, plugin, _server) = site(
        "elastic",
        es.router(),
        Some(("api_key", "ApiKey siem-key-0123456789")),
    )
    .await;
    let month = ok(
        &plugin,
        "search",
        json!({ "indicator": "185.220.101.1", "since": "4w" }),
    )
    .await;
    assert_eq!(
        (month["total"].as_u64(), month["truncated"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(month["hits"][0]["id"], "e1", "newest first: {month}");
    let day = ok(&plugin, "search", json!({ "indicator": "185.220.101.1" })).await;
    assert_eq!(day["total"], 0, "24h by default: {day}");
    let host = ok(
        &plugin,
        "search",
        json!({ "host": "ws-042", "since": "7d", "size": 1 }),
    )
    .await;
    assert_eq!(
        (host["total"].as_u64(), host["truncated"].as_bool()),
        (Some(3), Some(true))
    );
    // A value that would be syntax in a query string is only a phrase here.
    let hostile = ok(
        &plugin,
        "search",
        json!({ "indicator": "*) OR (*", "since": "8w" }),
    )
    .await;
    assert_eq!(hostile["total"], 0);
    assert_eq!(
        es.searched()[3]["query"]["bool"]["filter"][1]["multi_match"]["query"],
        "*) OR (*"
    );
    let (code, message, _) = refused(
        &plugin,
        "search",
        json!({ "indicator": "x", "index": "nothing-*" }),
    )
    .await;
    assert_eq!(code, ErrorCode::NotFound, "{message}");
    let (code, ..) = refused(
        &plugin,
        "search",
        json!({ "indicator": "x", "since": "soon" }),
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidInput);
    let (code, ..) = refused(&plugin, "search", json!({ "since": "4w" })).await;
    assert_eq!(code, ErrorCode::InvalidInput);

    let (_site, wrong, _server) = site(
        "elastic",
        es.router(),
        Some(("api_key", "ApiKey wrong-000000")),
    )
    .await;
    let (code, message, _) = refused(&wrong, "search", json!({ "indicator": "x" })).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(message.contains("unable to authenticate"), "{message}");
}

#[tokio::test]
async fn snipeit_finds_a_machine_by_hostname_serial_or_tag() {
    let snipe = aerie_tests::snipeit::StandIn::new("snipe-token-0123456789");
    let (_site, plugin, _server) = site(
        "snipeit",
        snipe.router(),
        Some(("api_token", "snipe-token-0123456789")),
    )
    .await;
    let by_name = ok(&plugin, "hardware", json!({ "hostname": "ws-042" })).await;
    assert_eq!(
        by_name["total"], 2,
        "a search finds the old machine too: {by_name}"
    );
    assert_eq!(by_name["assets"][0]["assigned_to"], "Jane Doe");
    assert_eq!(by_name["assets"][0]["model"], "Latitude 7440");
    let by_serial = ok(&plugin, "hardware", json!({ "serial": "5CG1717ABC" })).await;
    assert_eq!(by_serial["assets"][0]["name"], "ws-017");
    let by_tag = ok(&plugin, "hardware", json!({ "asset_tag": "ASSET-0042" })).await;
    assert_eq!(
        (
            by_tag["total"].as_u64(),
            by_tag["assets"][0]["location"].as_str()
        ),
        (Some(1), Some("Berlin HQ"))
    );
    let unknown = ok(&plugin, "hardware", json!({ "asset_tag": "ASSET-9999" })).await;
    assert_eq!(
        unknown["total"], 0,
        "Snipe-IT's 200 error is no asset: {unknown}"
    );
    let (code, ..) = refused(&plugin, "hardware", json!({ "serial": ".." })).await;
    assert_eq!(code, ErrorCode::InvalidInput);
    let (code, ..) = refused(
        &plugin,
        "hardware",
        json!({ "serial": "a", "asset_tag": "b" }),
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidInput);

    let (_site, wrong, _server) = site(
        "snipeit",
        snipe.router(),
        Some(("api_token", "wrong-token-000")),
    )
    .await;
    let (code, message, _) = refused(&wrong, "hardware", json!({ "hostname": "ws" })).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(message.contains("Unauthenticated"), "{message}");
}

#[tokio::test]
async fn panos_queries_a_log_job_and_polls_it_until_it_is_done() {
    let fw = aerie_tests::panos::StandIn::new("pan-key-0123456789", 2);
    let (_site, plugin, _server) = site(
        "panos",
        fw.router(),
        Some(("api_key", "pan-key-0123456789")),
    )
    .await;
    let found = ok(
        &plugin,
        "logs",
        json!({ "ip": "185.220.101.1", "since": "24h" }),
    )
    .await;
    assert_eq!(found["count"], 2, "{found}");
    assert_eq!(found["entries"][1]["app"], "tor");
    assert_eq!(found["entries"][1]["action"], "deny");
    let query = &fw.queries()[0];
    assert!(
        query.starts_with("(addr in 185.220.101.1) and (receive_time geq '20"),
        "{query}"
    );
    let none = ok(&plugin, "logs", json!({ "ip": "192.0.2.1" })).await;
    assert_eq!(none["count"], 0);
    // Only an address enters the query.
    let (code, ..) = refused(
        &plugin,
        "logs",
        json!({ "ip": "1.2.3.4) or (addr in 0.0.0.0/0" }),
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidInput);

    let (_site, wrong, _server) =
        site("panos", fw.router(), Some(("api_key", "wrong-key-00000"))).await;
    let (code, message, _) = refused(&wrong, "logs", json!({ "ip": "185.220.101.1" })).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    assert!(message.contains("Invalid Credential"), "{message}");
}
