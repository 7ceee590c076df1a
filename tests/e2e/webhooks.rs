//! Webhook triggers through a real `aerie serve` and a real HTTP client: each
//! guard accepts what it should and refuses the rest, and a refusal stores
//! nothing.

use std::time::Duration;

use aerie_server::hooks::auth::sign;
use serde_json::{Value, json};

use crate::harness::Site;
use crate::served::{Served, finished, get, post_json, request, token};

const ALERT: &str = r#"name: alert
inputs:
  body: { type: object, required: true }
  headers: { type: object }
trigger:
  webhook: { name: alerts, headers: [X-Source] }
steps:
  - id: note
    set:
      ip: "{{ inputs.body.src_ip }}"
      source: "{{ inputs.headers['x-source'] }}"
output: "{{ steps.note.output }}"
"#;

const SIGNED: &str = r#"name: signed
inputs:
  body: { type: object, required: true }
trigger:
  webhook: { name: signed }
steps:
  - id: note
    set: { n: "{{ inputs.body.n }}" }
output: "{{ steps.note.output }}"
"#;

const TOKEN: &str = "alerts-t0ken-5ecret";
const KEY: &str = "hmac-k3y-5ecret";

fn site(extra: &str) -> Site {
    let site = Site::new();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(site.path().join("playbooks/alert.yaml"), ALERT).unwrap();
    std::fs::write(site.path().join("playbooks/signed.yaml"), SIGNED).unwrap();
    site.config(&format!(
        r#"[server]
listen = "127.0.0.1:0"
{extra}
[webhooks.alerts]
auth = {{ bearer = {{ env = "ALERTS_TOKEN" }} }}
allow_from = ["127.0.0.0/8", "::1/128"]
max_body = "4KiB"

[webhooks.signed]
auth = {{ hmac = {{ env = "SIGNED_KEY" }} }}
rate = "8/min"
"#
    ));
    site
}

fn serve(site: &Site) -> Served {
    Served::start(site, &[("ALERTS_TOKEN", TOKEN), ("SIGNED_KEY", KEY)])
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn count_runs(site: &Site) -> usize {
    let listed = site
        .aerie()
        .args(["runs", "list", "--json", "--limit", "1000"])
        .output()
        .unwrap();
    serde_json::from_slice::<Vec<Value>>(&listed.stdout)
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_webhook_queues_a_run_that_the_api_reads_back() {
    let site = site("");
    let served = serve(&site);
    let addr = served.addr;
    let api = token(&site, "alice");

    let auth = bearer();
    let answer = post_json(
        addr,
        "/hooks/alerts",
        &[
            ("authorization", &auth),
            ("x-source", "edr"),
            ("x-other", "dropped"),
        ],
        r#"{"src_ip": "198.51.100.4"}"#,
    )
    .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let id = answer.body["run"].as_str().unwrap().to_owned();
    let run = finished(addr, &api, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["output"],
        json!({ "ip": "198.51.100.4", "source": "edr" })
    );
    assert_eq!(run["input"]["headers"], json!({ "x-source": "edr" }));
    assert_eq!(run["steps"][0]["id"], "note");
    // The API answers what the CLI prints.
    let shown = site
        .aerie()
        .args(["runs", "show", &id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown, run);

    // Wrong, missing and malformed tokens: 401, and no run.
    for headers in [
        vec![("authorization", "Bearer alerts-t0ken-5ecre")],
        vec![("authorization", "Basic YWxlcnRzOnQwa2Vu")],
        vec![],
    ] {
        let refused = post_json(addr, "/hooks/alerts", &headers, r#"{"src_ip": "1.2.3.4"}"#).await;
        assert_eq!(refused.status, 401, "{headers:?}: {:?}", refused.body);
        assert_eq!(refused.code(), "unauthorized");
    }
    // The API without a token, or with the webhook's.
    assert_eq!(
        get(addr, &format!("/api/v1/runs/{id}"), None).await.status,
        401
    );
    assert_eq!(
        get(addr, &format!("/api/v1/runs/{id}"), Some(TOKEN))
            .await
            .status,
        401
    );
    assert_eq!(
        get(addr, "/api/v1/whoami", Some(&api)).await.body,
        json!({ "user": "alice" })
    );
    assert_eq!(get(addr, "/api/v1/runs/nope", Some(&api)).await.status, 404);

    // The trigger's health: one taken, three refused, and why the last was.
    let triggers = get(addr, "/api/v1/triggers", Some(&api)).await;
    assert_eq!(triggers.status, 200, "{:?}", triggers.body);
    let hook = &triggers.body["webhooks"][0];
    assert_eq!(hook["name"], "alerts");
    assert_eq!(hook["playbook"], "alert");
    assert_eq!(hook["accepted"], 1);
    assert_eq!(hook["refused"], 3);
    assert!(hook["last_accepted"].is_string(), "{hook}");
    assert_eq!(hook["last_refusal"]["status"], 401, "{hook}");
    assert!(!hook.to_string().contains("t0ken"), "{hook}");
    assert_eq!(get(addr, "/api/v1/triggers", None).await.status, 401);

    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains(TOKEN) && !stderr.contains("t0ken"),
        "{stderr}"
    );
    assert_eq!(count_runs(&site).await, 1);
    let dump = aerie_store::Store::open(&format!(
        "sqlite://{}",
        site.path().join(".aerie/aerie.db").display()
    ))
    .await
    .unwrap()
    .dump()
    .await
    .unwrap();
    assert!(!dump.contains(TOKEN), "the webhook's token is in the store");
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_checked_for_body_time_and_replay() {
    let site = site("");
    let served = serve(&site);
    let addr = served.addr;
    let now = aerie_engine::epoch_ms() / 1000;
    let body = r#"{"n": 1}"#;

    let good = sign(KEY.as_bytes(), now, body.as_bytes());
    let accepted = post_json(addr, "/hooks/signed", &[("x-aerie-signature", &good)], body).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    // The same request again: a replay.
    let replayed = post_json(addr, "/hooks/signed", &[("x-aerie-signature", &good)], body).await;
    assert_eq!(replayed.status, 401);
    assert!(
        replayed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replayed"),
        "{:?}",
        replayed.body
    );
    // A body that is not the one signed, a stale timestamp, another key.
    let tampered = post_json(
        addr,
        "/hooks/signed",
        &[("x-aerie-signature", &good)],
        r#"{"n": 2}"#,
    )
    .await;
    assert_eq!(tampered.status, 401);
    let stale = sign(KEY.as_bytes(), now - 600, body.as_bytes());
    let expired = post_json(
        addr,
        "/hooks/signed",
        &[("x-aerie-signature", &stale)],
        body,
    )
    .await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp"),
        "{:?}",
        expired.body
    );
    let other = sign(b"not the key", now, body.as_bytes());
    assert_eq!(
        post_json(
            addr,
            "/hooks/signed",
            &[("x-aerie-signature", &other)],
            body
        )
        .await
        .status,
        401
    );

    // GitHub's header: an HMAC of the body alone.
    let hub = {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(br#"{"n": 3}"#);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let github = post_json(
        addr,
        "/hooks/signed",
        &[("x-hub-signature-256", &hub)],
        r#"{"n": 3}"#,
    )
    .await;
    assert_eq!(github.status, 202, "{:?}", github.body);

    // Eight a minute: the six requests above took six, refused or not
    // (the rate is checked first, so a flood of bad signatures is cheap).
    let mut limited = None;
    for n in 0..6 {
        let body = format!(r#"{{"n": {}}}"#, 10 + n);
        let signature = sign(KEY.as_bytes(), now, body.as_bytes());
        let answer = post_json(
            addr,
            "/hooks/signed",
            &[("x-aerie-signature", &signature)],
            &body,
        )
        .await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("no 429 within the rate");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0));
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allow_list_judges_the_peer_not_a_forged_header() {
    // 127.0.0.1 is not in the list; a proxy on loopback is trusted in the
    // second server only.
    let site = site("");
    let config = std::fs::read_to_string(site.path().join("aerie.toml"))
        .unwrap()
        .replace(
            r#"allow_from = ["127.0.0.0/8", "::1/128"]"#,
            r#"allow_from = ["192.0.2.0/24"]"#,
        );
    site.config(&config);
    let served = serve(&site);
    let auth = bearer();
    let body = r#"{"src_ip": "1.2.3.4"}"#;
    let refused = post_json(
        served.addr,
        "/hooks/alerts",
        &[("authorization", &auth)],
        body,
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "forbidden"),
        "{:?}",
        refused.body
    );
    let spoofed = post_json(
        served.addr,
        "/hooks/alerts",
        &[("authorization", &auth), ("x-forwarded-for", "192.0.2.9")],
        body,
    )
    .await;
    assert_eq!(
        spoofed.status, 403,
        "a forged X-Forwarded-For from an untrusted peer was believed"
    );
    drop(served);

    site.config(&config.replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    ));
    let served = serve(&site);
    let proxied = post_json(
        served.addr,
        "/hooks/alerts",
        &[("authorization", &auth), ("x-forwarded-for", "192.0.2.9")],
        body,
    )
    .await;
    assert_eq!(proxied.status, 202, "{:?}", proxied.body);
    let outside = post_json(
        served.addr,
        "/hooks/alerts",
        &[
            ("authorization", &auth),
            ("x-forwarded-for", "192.0.2.9, 203.0.113.1"),
        ],
        body,
    )
    .await;
    assert_eq!(
        outside.status, 403,
        "the nearest untrusted hop is the client"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_a_clear_answer_and_store_nothing() {
    let site = site("");
    let served = serve(&site);
    let addr = served.addr;
    let auth = bearer();
    let with_auth = [("authorization", auth.as_str())];

    let malformed = post_json(addr, "/hooks/alerts", &with_auth, r#"{"src_ip": "#).await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{:?}",
        malformed.body
    );
    let wrong_type = request(
        addr,
        "POST",
        "/hooks/alerts",
        &[("authorization", &auth), ("content-type", "text/plain")],
        "hi",
    )
    .await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (415, "unsupported_media_type")
    );
    let not_an_object = post_json(addr, "/hooks/alerts", &with_auth, "[1, 2]").await;
    assert_eq!(not_an_object.status, 400);
    assert!(
        not_an_object.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input `body` must be an object"),
        "{:?}",
        not_an_object.body
    );
    let too_big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(5000));
    let over = post_json(addr, "/hooks/alerts", &with_auth, &too_big).await;
    assert_eq!((over.status, over.code()), (413, "payload_too_large"));
    // A chunked body declares no length: it is cut off as it streams.
    let streamed = chunked(addr, &auth, 100 * 1024 * 1024).await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert_eq!(get(addr, "/hooks/nope", None).await.status, 405);
    let unknown = post_json(addr, "/hooks/nope", &with_auth, "{}").await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    assert_eq!(get(addr, "/nothing/here", None).await.code(), "not_found");
    // One bad line in NDJSON: none of the lines is queued.
    let lines = "{\"src_ip\": \"1.1.1.1\"}\n{\"src_ip\": \n";
    let half = request(
        addr,
        "POST",
        "/hooks/alerts",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        lines,
    )
    .await;
    assert_eq!(half.status, 400);
    assert!(
        half.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2"),
        "{:?}",
        half.body
    );

    assert_eq!(get(addr, "/healthz", None).await.body["status"], "ok");
    let ready = get(addr, "/readyz", None).await;
    assert_eq!(
        (ready.status, ready.body["store"].clone()),
        (200, json!("ok"))
    );
    drop(served);
    assert_eq!(count_runs(&site).await, 0, "a refused request stored a run");
}

/// Streams a chunked body of `size` bytes; returns the first line of the answer.
async fn chunked(addr: std::net::SocketAddr, auth: &str, size: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /hooks/alerts HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let frame = format!("{:x}\r\n", chunk.len());
        // The server answers and closes once the limit is passed; writes
        // after that fail, which is the point.
        if stream.write_all(frame.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_and_ndjson_fan_out() {
    let site = site("");
    let served = serve(&site);
    let addr = served.addr;
    let api = token(&site, "alice");
    let auth = bearer();

    let keyed = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "alert-77"),
    ];
    let first = post_json(addr, "/hooks/alerts", &keyed, r#"{"src_ip": "10.0.0.1"}"#).await;
    let again = post_json(addr, "/hooks/alerts", &keyed, r#"{"src_ip": "10.0.0.1"}"#).await;
    assert_eq!(first.status, 202);
    assert_eq!(again.status, 202);
    assert_eq!(
        first.body["run"], again.body["run"],
        "a retried request started another run"
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = post_json(
        addr,
        "/hooks/alerts",
        &[("authorization", &auth), ("idempotency-key", "alert-78")],
        r#"{"src_ip": "10.0.0.1"}"#,
    )
    .await;
    assert_ne!(other.body["run"], first.body["run"]);

    let lines =
        "{\"src_ip\": \"10.0.0.2\"}\n\n{\"src_ip\": \"10.0.0.3\"}\n{\"src_ip\": \"10.0.0.4\"}\n";
    let fanned = request(
        addr,
        "POST",
        "/hooks/alerts",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        lines,
    )
    .await;
    assert_eq!(fanned.status, 202, "{:?}", fanned.body);
    let ids: Vec<String> = serde_json::from_value(fanned.body["runs"].clone()).unwrap();
    assert_eq!(ids.len(), 3);
    let mut ips = Vec::new();
    for id in &ids {
        ips.push(finished(addr, &api, id).await["output"]["ip"].clone());
    }
    assert_eq!(
        ips,
        [json!("10.0.0.2"), json!("10.0.0.3"), json!("10.0.0.4")]
    );
    drop(served);
    assert_eq!(count_runs(&site).await, 5);
}
