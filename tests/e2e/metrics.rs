//! `/metrics` through a real `aerie serve`, read back with a Prometheus text
//! parser: runs by playbook and status, trigger fires and refusals, plugin
//! calls and steps as histograms, the queue and the workers.

use prometheus_parse::{Sample, Scrape, Value};

use crate::harness::Site;
use crate::served::{Served, finished, get, post_json, token};

const ALERT: &str = r#"name: alert
inputs:
  body: { type: object, required: true }
trigger:
  webhook: { name: alerts }
steps:
  - id: noop
    uses: hostile.noop
    with: {}
output: "{{ steps.noop.status }}"
"#;

const TOKEN: &str = "metrics-t0ken-5ecret";

fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn number(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n)) => *n,
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

/// How many observations a histogram holds: its `+Inf` bucket.
fn observations(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Histogram(buckets)) => buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map_or(0.0, |b| b.count),
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_the_server_did() {
    let site = Site::new();
    site.hostile("hostile", |m| m);
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(site.path().join("playbooks/alert.yaml"), ALERT).unwrap();
    site.config(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[engine]\nworkers = 3\n\n[webhooks.alerts]\nauth = { bearer = { env = \"ALERTS_TOKEN\" } }\n",
    );
    let served = Served::start(&site, &[("ALERTS_TOKEN", TOKEN)]);
    let alice = token(&site, "alice");
    let bearer = format!("Bearer {TOKEN}");
    let accepted = post_json(
        served.addr,
        "/hooks/alerts",
        &[("authorization", &bearer)],
        "{\"n\": 1}",
    )
    .await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let refused = post_json(
        served.addr,
        "/hooks/alerts",
        &[("authorization", "Bearer wrong")],
        "{}",
    )
    .await;
    assert_eq!(refused.status, 401);
    let run = finished(served.addr, &alice, accepted.body["run"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let answer = get(served.addr, "/metrics", None).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        answer.header("content-type")
    );
    let text = answer.body.as_str().unwrap().to_owned();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();

    assert_eq!(
        number(
            &scrape,
            "aerie_runs_total",
            &[("playbook", "alert"), ("status", "succeeded")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        number(
            &scrape,
            "aerie_trigger_fires_total",
            &[("trigger", "webhook:alerts")]
        ),
        1.0
    );
    assert_eq!(
        number(
            &scrape,
            "aerie_trigger_refusals_total",
            &[("trigger", "webhook:alerts"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        observations(
            &scrape,
            "aerie_plugin_call_seconds",
            &[("plugin", "hostile"), ("action", "noop")]
        ),
        1.0
    );
    assert_eq!(
        observations(
            &scrape,
            "aerie_step_seconds",
            &[
                ("playbook", "alert"),
                ("step", "noop"),
                ("status", "succeeded")
            ]
        ),
        1.0
    );
    assert_eq!(observations(&scrape, "aerie_worker_run_seconds", &[]), 1.0);
    assert_eq!(number(&scrape, "aerie_queue_depth", &[]), 0.0);
    assert_eq!(number(&scrape, "aerie_workers", &[]), 3.0);
    assert_eq!(number(&scrape, "aerie_store_up", &[]), 1.0);
    // Nothing about the webhook's secret is in them.
    assert!(!text.contains(TOKEN));
    served.terminate();
}
