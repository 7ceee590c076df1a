//! A plugin that loops, bombs memory, recurses, panics or pokes at its sandbox
//! is stopped with an error that says why, and the same plugin then serves a
//! normal call.

use aerie_runtime::{CallError, Fault, LoadError, Plugin, RegistryError};
use serde_json::{Value, json};

use crate::harness::Site;

/// The hostile plugin with a deadline of `ms`.
fn site_with_deadline(ms: u64) -> Site {
    let site = Site::new();
    site.hostile("hostile", |m| m).config(&format!(
        "[plugins.hostile]\nlimits = {{ timeout_ms = {ms} }}\n"
    ));
    site
}

/// The hostile plugin with a deadline only a real hang reaches: these tests
/// check behaviour, not speed, and a busy machine is slow (speed is in the
/// benchmarks).
fn site() -> Site {
    site_with_deadline(60_000)
}

async fn call(plugin: &Plugin, action: &str, input: Value) -> Result<Value, CallError> {
    plugin.call(action, &input).await.result
}

/// The host still serves: a normal call on the same plugin succeeds.
async fn still_serves(plugin: &Plugin) {
    assert_eq!(call(plugin, "noop", json!({})).await.unwrap(), json!({}));
}

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline() {
    // A short deadline, so the loop is stopped quickly.
    let site = site_with_deadline(500);
    let plugin = site.load("hostile").await;
    let err = call(&plugin, "spin", json!({})).await.unwrap_err();
    assert!(matches!(err.fault, Fault::Deadline(500)), "{err}");
    assert_eq!(err.code().as_str(), "timeout");
    insta::assert_snapshot!(err, @"hostile.spin: timeout: stopped after its 500 ms deadline");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let site = site();
    let plugin = site.load("hostile").await;
    // Within the 32 MiB cap, allocation works.
    assert_eq!(
        call(&plugin, "alloc", json!({"mb": 4})).await.unwrap(),
        json!({"allocated_mb": 4})
    );
    let err = call(&plugin, "alloc", json!({"mb": 1024}))
        .await
        .unwrap_err();
    insta::assert_snapshot!(err, @"hostile.alloc: internal: stopped at its memory limit of 32 MiB");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn unbounded_recursion_is_stopped() {
    let site = site();
    let plugin = site.load("hostile").await;
    assert_eq!(
        call(&plugin, "recurse", json!({"depth": 1000}))
            .await
            .unwrap(),
        json!({"depth": 1001})
    );
    let err = call(&plugin, "recurse", json!({"depth": 1_000_000_000u64}))
        .await
        .unwrap_err();
    insta::assert_snapshot!(err, @"hostile.recurse: internal: plugin trapped: out-of-bounds memory access (a plugin bug; unbounded recursion overflows the stack this way)");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let site = site();
    let plugin = site.load("hostile").await;
    let err = call(
        &plugin,
        "panic",
        json!({"message": "kaboom: the plugin is broken"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code().as_str(), "internal");
    let Fault::Panic(message) = &err.fault else {
        panic!("{err}")
    };
    assert!(
        message.starts_with("kaboom: the plugin is broken (at "),
        "{message}"
    );
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_chatty_plugin_is_not_stopped_for_writing_to_stderr() {
    let site = site();
    let plugin = site.load("hostile").await;
    assert_eq!(
        call(&plugin, "chatty", json!({"kb": 1024})).await.unwrap(),
        json!({"wrote_kb": 1024})
    );
    // After a megabyte of noise, a panic's message is still reported.
    let err = call(&plugin, "panic", json!({"message": "still heard"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err.fault, Fault::Panic(m) if m.starts_with("still heard")),
        "{err}"
    );
}

#[tokio::test]
async fn the_sandbox_has_no_environment_arguments_or_files() {
    let site = site();
    let plugin = site.load("hostile").await;
    let seen = call(&plugin, "observe", json!({"needle": "PATH="}))
        .await
        .unwrap();
    assert_eq!(seen["seen"]["env"], json!([]));
    assert_eq!(seen["seen"]["args"], json!([]));
    assert_eq!(
        seen["seen"]["root"],
        Value::Null,
        "no filesystem is mounted"
    );
    assert_eq!(seen["seen"]["data"], Value::Null);
    assert_eq!(seen["seen"]["etc_passwd"], Value::Null);
    assert_eq!(seen["needle_seen"], json!(false));

    let err = call(&plugin, "read", json!({"path": "/etc/hostname"}))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "not-found");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_granted_data_folder_is_read_only_and_all_there_is() {
    let site = Site::new();
    let data = site.path().join("models");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("model.txt"), "weights").unwrap();
    site.hostile("hostile", |m| m).config(&format!(
        "[plugins.hostile]\ndata = {:?}\n",
        data.display().to_string()
    ));
    let plugin = site.load("hostile").await;
    assert_eq!(
        call(&plugin, "read", json!({"path": "/data/model.txt"}))
            .await
            .unwrap(),
        json!({"text": "weights"})
    );
    let seen = call(&plugin, "observe", json!({"needle": "x"}))
        .await
        .unwrap();
    assert_eq!(seen["seen"]["data"], json!(["model.txt"]));
}

#[tokio::test]
async fn input_is_checked_against_the_schema_before_the_plugin_runs() {
    let site = site();
    let plugin = site.load("hostile").await;
    let err = call(&plugin, "alloc", json!({"mb": "lots"}))
        .await
        .unwrap_err();
    assert!(matches!(err.fault, Fault::InvalidInput(_)), "{err}");
    insta::assert_snapshot!(err, @r#"hostile.alloc: invalid-input: input/mb: "lots" is not of type "integer""#);
    let err = call(&plugin, "launch", json!({})).await.unwrap_err();
    insta::assert_snapshot!(err, @"hostile.launch: no action `launch`; the plugin offers: alloc, chatty, fetch, flood, headers, log, noop, observe, panic, read, recurse, spin");
}

#[tokio::test]
async fn a_step_plugin_that_imports_http_is_refused_at_load() {
    let site = Site::new();
    site.hostile("hostile", |m| {
        let m = m.replace("world = \"integration\"", "world = \"step\"");
        // A step manifest cannot declare a network either.
        let cut = m.find("[network]").unwrap();
        let limits = m.find("[limits]").unwrap();
        format!("{}{}", &m[..cut], &m[limits..])
    });
    let err = site.registry().load("hostile").await.unwrap_err();
    let RegistryError::Load(load) = &err else {
        panic!("{err}")
    };
    let LoadError::Import { import, .. } = &**load else {
        panic!("{err}")
    };
    assert!(import.starts_with("wasi:http/"), "{import}");
    let message = err.to_string().replace(import.as_str(), "IMPORT");
    insta::assert_snapshot!(message, @r#"plugin `hostile` (world step) imports `IMPORT`: a step plugin has no network; declare world = "integration" in plugin.toml if it must call out"#);
}

#[tokio::test]
async fn a_manifest_that_disagrees_with_the_component_is_refused() {
    let site = Site::new();
    site.hostile("hostile", |m| {
        m.replace("\"flood\"]", "\"flood\", \"delete-everything\"]")
    });
    let err = site
        .registry()
        .load("hostile")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("the component offers actions [alloc, chatty, fetch, flood, headers, log, noop, observe, panic, read, recurse, spin] but plugin.toml declares [alloc, chatty, delete-everything, fetch, flood, headers, log, noop, observe, panic, read, recurse, spin]"),
        "{err}"
    );
}

#[tokio::test]
async fn a_restart_reuses_the_compiled_plugin() {
    let site = site();
    let cache = tempfile::tempdir().unwrap();
    let options = aerie_runtime::RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
    };
    let config = site.parsed_config();
    let first = aerie_runtime::Runtime::new(&options).unwrap();
    aerie_runtime::Registry::open(first.clone(), &config)
        .unwrap()
        .load("hostile")
        .await
        .unwrap();
    assert_eq!(first.cache_stats(), Some((0, 1)), "compiled and stored");

    // A new process: same cache folder, no compilation.
    let second = aerie_runtime::Runtime::new(&options).unwrap();
    let plugin = aerie_runtime::Registry::open(second.clone(), &config)
        .unwrap()
        .load("hostile")
        .await
        .unwrap();
    assert_eq!(second.cache_stats(), Some((1, 0)), "loaded from the cache");
    still_serves(&plugin).await;
}

/// A manifest asks within the site's ceilings (`[limits]`): a vendor's
/// connector does not choose its own; the operator's grant for the plugin does.
#[tokio::test]
async fn a_manifest_cannot_grant_itself_more_than_the_site_allows() {
    let greedy = |m: String| m.replace("memory_mb = 32", "memory_mb = 200");
    let site = Site::new();
    site.hostile("hostile", greedy)
        .config("[limits]\nmemory_mb = 100\n");
    let plugin = site.load("hostile").await;
    assert_eq!(
        (plugin.manifest.limits.memory_mb, plugin.limits.memory_mb),
        (200, 100)
    );
    let err = call(&plugin, "alloc", json!({"mb": 150}))
        .await
        .unwrap_err();
    assert!(matches!(err.fault, Fault::Memory(100)), "{err}");

    let site = Site::new();
    site.hostile("hostile", greedy)
        .config("[limits]\nmemory_mb = 100\n\n[plugins.hostile]\nlimits = { memory_mb = 200 }\n");
    let plugin = site.load("hostile").await;
    assert_eq!(
        call(&plugin, "alloc", json!({"mb": 150})).await.unwrap()["allocated_mb"],
        150
    );

    // `aerie plugin inspect` shows both.
    let ran = crate::harness::run(
        site.aerie()
            .args(["plugin", "inspect", "hostile", "--json"]),
    );
    let view: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(view["limits"]["memory_mb"], 200);
    assert_eq!(view["limits_asked"]["memory_mb"], 200);
}

#[tokio::test]
async fn a_describe_that_loops_is_stopped_at_load_with_the_deadline_named() {
    let site = Site::new();
    site.hostile("hostile", |m| m).config(
        "[plugins.hostile]\nsettings = { on_describe = \"spin\" }\nlimits = { timeout_ms = 300 }\n",
    );
    let err = site
        .registry()
        .load("hostile")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("plugin.wasm: describe failed: timeout: stopped after its 300 ms deadline (limits in plugin.toml, or the operator's [plugins.hostile] limits)"),
        "{err}"
    );
    assert!(!err.contains("wasm trap"), "{err}");
}
