//! What a plugin makes the host hold for it is charged to a budget the size of
//! its memory limit: header sets, bodies, logs, stderr. Past it the call stops
//! with an error that names what overran, the host's memory stays near a normal
//! call's, and the plugin serves the next call.

use aerie_runtime::Fault;
use serde_json::json;

use crate::harness::{Site, run_measured};

/// The flood's deadline: these tests measure memory, and a busy machine
/// (CI building beside them) must not turn them into a timeout.
const UNHURRIED: &str = "[plugins.hostile]\nlimits = { timeout_ms = 60000 }\n";

#[tokio::test]
async fn a_flood_of_header_sets_stops_at_the_budget() {
    let site = Site::new();
    site.hostile("hostile", |m| m).config(UNHURRIED);
    let plugin = site.load("hostile").await;
    // Ten 64 KiB sets are well within the 32 MiB budget.
    let held = plugin
        .call("headers", &json!({"sets": 10, "kb": 64}))
        .await
        .result
        .unwrap();
    assert_eq!(held, json!({"held": 10}));

    // Four thousand are 250 MiB: each is within wasmtime's per-set limit and
    // their count within its resource limit, but not their sum.
    let err = plugin
        .call("headers", &json!({"sets": 4000, "kb": 64}))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err.fault, Fault::HostMemory(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("hostile.headers: internal: stopped: host memory: header fields the plugin created passed the call's budget of 32 MiB"),
        "{message}"
    );
    let still = plugin.call("noop", &json!({})).await.result.unwrap();
    assert_eq!(still, json!({}));
}

#[tokio::test]
async fn holding_too_many_host_resources_is_a_clear_error() {
    let site = Site::new();
    site.hostile("hostile", |m| m).config(UNHURRIED);
    let plugin = site.load("hostile").await;
    // Empty sets cost little each; their number is what runs out.
    let err = plugin
        .call("headers", &json!({"sets": 50_000, "kb": 0}))
        .await
        .result
        .unwrap_err();
    insta::assert_snapshot!(err, @"hostile.headers: internal: stopped: the plugin held more than 10000 host resources (header sets, requests, streams) at once");
    assert_eq!(
        plugin.call("noop", &json!({})).await.result.unwrap(),
        json!({})
    );
}

/// The same flood through the `aerie` binary: its peak memory, as the kernel
/// counts it, stays within a normal call's plus the budget (and slack for the
/// allocator), where before the budget it grew with the flood.
#[test]
fn the_host_stays_near_a_normal_calls_memory() {
    let site = Site::new();
    site.hostile("hostile", |m| m).config(UNHURRIED);
    let call = |action: &str, input: &str| {
        run_measured(
            site.aerie()
                .args(["plugin", "call", "hostile", action, "--input", input]),
        )
    };
    let (normal, normal_kib) = call("noop", "{}");
    assert_eq!(normal.code, 0, "{}", normal.stderr);
    let (flood, flood_kib) = call("headers", r#"{"sets": 8000, "kb": 64}"#);
    assert_eq!(flood.code, 1, "{}", flood.stdout);
    assert!(flood.stderr.contains("host memory"), "{}", flood.stderr);
    let budget_kib = 32 * 1024;
    eprintln!("peak memory: a normal call {normal_kib} KiB, the flood {flood_kib} KiB");
    assert!(
        flood_kib <= normal_kib + 2 * budget_kib,
        "a normal call peaked at {normal_kib} KiB, the flood (500 MiB asked) at {flood_kib} KiB"
    );
}
