//! Durable runs per second: a three-step playbook over a trivial plugin, every
//! step's state and every audit entry written to SQLite as it happens.
//!
//! Run with `cargo xtask bench`. Prints runs/s and the p50/p99 latency of one
//! run, one run at a time and with several in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerie_engine::{CallSite, Playbook, PluginCall, Plugins, Runner};
use aerie_manifest::PluginGrant;
use aerie_runtime::{Plugin, Runtime, RuntimeOptions};
use aerie_store::Store;
use serde_json::{Value, json};

const PLAYBOOK: &str = r#"name: three
inputs:
  n: { type: integer, required: true }
steps:
  - id: a
    uses: hostile.noop
  - id: b
    uses: hostile.noop
  - id: c
    set: { n: "{{ inputs.n }}" }
output: "{{ steps.c.output.n }}"
"#;

struct One(Arc<Plugin>);

impl Plugins for One {
    async fn call(
        &self,
        _site: CallSite<'_>,
        _plugin: &str,
        action: &str,
        input: &Value,
    ) -> PluginCall {
        aerie::wiring::plugin_call(&self.0, self.0.call(action, input).await)
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn measure(
    label: &str,
    plugins: &Arc<One>,
    store: &Store,
    playbook: &Arc<Playbook>,
    runs: usize,
    in_flight: usize,
) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = runs / in_flight;
    for t in 0..in_flight {
        let (plugins, store, playbook) = (plugins.clone(), store.clone(), playbook.clone());
        tasks.spawn(async move {
            let runner = Runner::new(&*plugins, &store);
            let mut latencies = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let t0 = Instant::now();
                let run = runner
                    .run(&playbook, &json!({ "n": t * per_task + i }))
                    .await
                    .unwrap();
                latencies.push(t0.elapsed());
                assert_eq!(run.output, json!(t * per_task + i));
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let total = start.elapsed();
    latencies.sort_unstable();
    println!(
        "{label:<44} {:>6} runs {:>9.0} runs/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let wasm_dir = std::path::PathBuf::from(
        std::env::var("AERIE_WASM_DIR").expect("run with `cargo xtask bench`"),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::copy(
            repo.join("tests/plugins/hostile/plugin.toml"),
            dir.path().join("plugin.toml"),
        )
        .unwrap();
        std::fs::copy(
            wasm_dir.join("hostile.wasm"),
            dir.path().join("plugin.wasm"),
        )
        .unwrap();
        let runtime = Runtime::new(&RuntimeOptions::default()).unwrap();
        let plugin = Plugin::load(
            &runtime,
            &dir.path().join("plugin.toml"),
            &PluginGrant::default(),
        )
        .await
        .unwrap();
        let plugins = Arc::new(One(Arc::new(plugin)));
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await
        .unwrap();
        let playbook =
            Arc::new(Playbook::parse(std::path::Path::new("three.yaml"), PLAYBOOK).unwrap());

        measure("warm-up", &plugins, &store, &playbook, 200, 1).await;
        measure(
            "three-step run, one at a time",
            &plugins,
            &store,
            &playbook,
            2000,
            1,
        )
        .await;
        measure(
            "three-step run, 8 in flight",
            &plugins,
            &store,
            &playbook,
            4000,
            8,
        )
        .await;
        measure(
            "three-step run, 32 in flight",
            &plugins,
            &store,
            &playbook,
            4000,
            32,
        )
        .await;

        // The same on a local PostgreSQL server (fsync on, as shipped).
        let server = match aerie_tests::postgres::Postgres::start() {
            Ok(server) => server,
            Err(e) => {
                println!("PostgreSQL: not measured: {e:#}");
                return;
            }
        };
        let store = Store::open(&server.database("bench").unwrap())
            .await
            .unwrap();
        measure("postgres warm-up", &plugins, &store, &playbook, 200, 1).await;
        for (runs, in_flight) in [(1000, 1), (4000, 8), (4000, 32)] {
            let name = format!("postgres: three-step run, {in_flight} in flight");
            measure(&name, &plugins, &store, &playbook, runs, in_flight).await;
        }
    });
}
