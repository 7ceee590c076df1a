//! The HTTP broker: only granted origins, no private addresses unless the
//! operator says so, no guest-set credentials, capped responses, and a record of
//! every request. A refusal sends nothing.

use aerie_runtime::Fault;
use aerie_tests::misc::Upstream;
use serde_json::json;

use crate::harness::{Site, grant};

/// The hostile plugin whose `base_url` setting points at `upstream`, with the
/// operator's `allow` as given.
fn site(base_url: &str, allow: &[&str]) -> Site {
    let site = Site::new();
    let allow = allow
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    site.hostile("hostile", |m| m).config(&format!(
        "[plugins.hostile]\nsettings = {{ base_url = {base_url:?} }}\nallow = [{allow}]\n"
    ));
    site
}

/// A local upstream and the hostile plugin granted its origin.
struct Granted {
    upstream: std::sync::Arc<Upstream>,
    addr: std::net::SocketAddr,
    origin: String,
    site: Site,
    _server: tokio::task::JoinHandle<()>,
}

async fn granted() -> Granted {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = site(&origin, &[&origin]);
    Granted {
        upstream,
        addr,
        origin,
        site,
        _server,
    }
}

#[tokio::test]
async fn a_granted_origin_is_reached_and_recorded() {
    let Granted {
        upstream,
        origin,
        site,
        _server,
        ..
    } = granted().await;
    let plugin = site.load("hostile").await;
    let report = plugin
        .call("fetch", &json!({"url": format!("{origin}/hello")}))
        .await;
    let output = report.result.unwrap();
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], "hello");
    assert_eq!(report.requests.len(), 1);
    let request = &report.requests[0];
    assert_eq!(
        (request.method.as_str(), request.status, request.bytes),
        ("GET", Some(200), 5)
    );
    assert_eq!(request.url, format!("{origin}/hello"));
    assert_eq!(request.refused, None);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn an_undeclared_origin_is_denied_and_nothing_is_sent() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    // The plugin may reach its base_url, but asks for another port on the host.
    let other = aerie_tests::serve(upstream.router()).await.unwrap().0;
    let origin = format!("http://{addr}");
    let site = site(&origin, &[&origin]);
    let plugin = site.load("hostile").await;
    let report = plugin
        .call("fetch", &json!({"url": format!("http://{other}/hello")}))
        .await;
    let err = report.result.unwrap_err();
    assert!(matches!(err.fault, Fault::Denied(_)), "{err}");
    let message = err
        .to_string()
        .replace(&addr.to_string(), "ALLOWED")
        .replace(&other.to_string(), "OTHER");
    insta::assert_snapshot!(message, @"hostile.fetch: denied: http://OTHER is not an allowed origin for plugin `hostile` (allowed: http://ALLOWED, https://example.com; grant more with `allow` under [plugins.hostile] in aerie.toml)");
    assert!(upstream.received().is_empty(), "nothing may be sent");
    assert_eq!(report.requests[0].status, None);
    assert!(report.requests[0].refused.is_some());
}

#[tokio::test]
async fn loopback_needs_the_operators_explicit_grant() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    // The manifest allows {{ base_url }}, but the operator did not list it.
    let site = site(&origin, &[]);
    let plugin = site.load("hostile").await;
    let err = plugin
        .call("fetch", &json!({"url": format!("{origin}/hello")}))
        .await
        .result
        .unwrap_err();
    let message = err.to_string().replace(&addr.to_string(), "ADDR");
    insta::assert_snapshot!(message, @"hostile.fetch: denied: http://ADDR resolves to 127.0.0.1 (loopback); only an origin the operator lists under [plugins.hostile] allow in aerie.toml may reach such an address");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn cloud_metadata_is_denied_even_when_the_manifest_allows_it() {
    let site = site("http://169.254.169.254", &[]);
    let plugin = site.load("hostile").await;
    let started = std::time::Instant::now();
    let err = plugin
        .call(
            "fetch",
            &json!({"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}),
        )
        .await
        .result
        .unwrap_err();
    insta::assert_snapshot!(err, @"hostile.fetch: denied: http://169.254.169.254:80 resolves to 169.254.169.254 (link-local, where cloud metadata services live); only an origin the operator lists under [plugins.hostile] allow in aerie.toml may reach such an address");
    // Refused before any connection attempt, not after a connect timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn guest_set_credential_headers_are_refused() {
    let Granted {
        upstream,
        origin,
        site,
        _server,
        ..
    } = granted().await;
    let plugin = site.load("hostile").await;
    for header in [
        "Authorization",
        "X-Api-Key",
        "Cookie",
        "Proxy-Authorization",
    ] {
        let err = plugin
            .call(
                "fetch",
                &json!({"url": format!("{origin}/hello"), "headers": {header: "stolen"}}),
            )
            .await
            .result
            .unwrap_err();
        assert_eq!(err.code().as_str(), "denied", "{header}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("header `{header}` is reserved")),
            "{err}"
        );
    }
    assert!(upstream.received().is_empty());
    // An ordinary header passes.
    let ok = plugin
        .call(
            "fetch",
            &json!({"url": format!("{origin}/hello"), "headers": {"X-Request-Id": "42"}}),
        )
        .await;
    assert_eq!(ok.result.unwrap()["status"], 200);
    assert!(upstream.received()[0].contains(&("x-request-id".to_owned(), "42".to_owned())));
}

#[tokio::test]
async fn a_response_over_the_cap_is_cut_off() {
    let Granted {
        addr,
        origin,
        site,
        _server,
        ..
    } = granted().await;
    let plugin = site.load("hostile").await;
    // 64 KiB cap in the manifest.
    assert_eq!(
        plugin
            .call("fetch", &json!({"url": format!("{origin}/bytes/65536")}))
            .await
            .result
            .unwrap()["status"],
        200
    );
    let err = plugin
        .call("fetch", &json!({"url": format!("{origin}/bytes/200000")}))
        .await
        .result
        .unwrap_err();
    let message = err.to_string().replace(&addr.to_string(), "ADDR");
    insta::assert_snapshot!(message, @"hostile.fetch: denied: the response from http://ADDR is 200000 bytes, over the 65536-byte cap");
    assert_eq!(
        plugin.call("noop", &json!({})).await.result.unwrap(),
        json!({})
    );
}

#[tokio::test]
async fn a_slow_upstream_runs_into_the_call_deadline() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.hostile("hostile", |m| m).config(&grant(
        "hostile",
        &origin,
        "limits = { timeout_ms = 300 }\n",
    ));
    let plugin = site.load("hostile").await;
    let err = plugin
        .call("fetch", &json!({"url": format!("{origin}/slow/5000")}))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err.fault, Fault::Deadline(300)), "{err}");
}

/// `http://user:password@host/`: refused before anything is sent, and the
/// password is not recorded.
#[tokio::test]
async fn credentials_in_a_url_are_refused_and_not_recorded() {
    let Granted {
        upstream,
        addr,
        origin,
        site,
        _server,
        ..
    } = granted().await;
    let plugin = site.load("hostile").await;
    let report = plugin
        .call(
            "fetch",
            &json!({"url": format!("http://admin:hunter2@{addr}/hello")}),
        )
        .await;
    let err = report.result.unwrap_err();
    assert!(matches!(err.fault, Fault::Denied(_)), "{err}");
    assert!(
        err.to_string().contains("a URL with credentials in it"),
        "{err}"
    );
    assert_eq!(upstream.received().len(), 0, "nothing was sent");
    assert_eq!(report.requests[0].url, format!("{origin}/hello"));
    assert!(!format!("{err} {:?}", report.requests).contains("hunter2"));
}

/// An IPv4 address written as IPv6 (`[::127.0.0.1]`) is judged as the IPv4
/// address it stands for.
#[tokio::test]
async fn ipv4_inside_ipv6_is_still_loopback() {
    let site = site("http://[::127.0.0.1]:8080", &[]);
    let plugin = site.load("hostile").await;
    let err = plugin
        .call("fetch", &json!({"url": "http://[::127.0.0.1]:8080/"}))
        .await
        .result
        .unwrap_err();
    assert!(
        err.to_string().contains("resolves to ::7f00:1 (loopback)"),
        "{err}"
    );
}

/// A call's requests are capped (limits.max_requests): the rest are refused,
/// not sent, and one record says so.
#[tokio::test]
async fn a_call_may_make_only_so_many_requests() {
    let upstream = Upstream::new();
    let (addr, _server) = aerie_tests::serve(upstream.router()).await.unwrap();
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.hostile("hostile", |m| m).config(&format!(
        "[plugins.hostile]\nsettings = {{ base_url = {origin:?} }}\nallow = [{origin:?}]\nlimits = {{ max_requests = 5 }}\n"
    ));
    let plugin = site.load("hostile").await;
    let report = plugin
        .call("flood", &json!({"url": format!("{origin}/hello"), "n": 50}))
        .await;
    assert_eq!(
        report.result.unwrap(),
        json!({"answered": 5, "refused": 45})
    );
    assert_eq!(upstream.received().len(), 5);
    assert_eq!(report.requests.len(), 6);
    assert_eq!(
        report.requests[5].refused.as_deref(),
        Some("more than 5 requests in one call (limits.max_requests)")
    );
}

/// TRACE (and TRACK) would have the upstream echo the request, injected
/// credentials included: refused, nothing sent.
#[tokio::test]
async fn trace_is_refused() {
    let Granted {
        upstream,
        origin,
        site,
        _server,
        ..
    } = granted().await;
    let plugin = site.load("hostile").await;
    for method in ["TRACE", "track"] {
        let report = plugin
            .call(
                "fetch",
                &json!({"url": format!("{origin}/hello"), "method": method}),
            )
            .await;
        let err = report.result.unwrap_err();
        assert!(matches!(err.fault, Fault::Denied(_)), "{method}: {err}");
        assert!(
            err.to_string()
                .contains("is refused: the upstream would echo"),
            "{err}"
        );
    }
    assert_eq!(upstream.received().len(), 0, "nothing was sent");
}
