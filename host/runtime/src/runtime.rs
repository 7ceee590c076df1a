//! The wasmtime engine shared by every plugin: pooling allocator, async calls,
//! epoch interruption driven by a ticker thread, and an on-disk compile cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aerie_manifest::World;
use anyhow::Context as _;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{config, logging};
use crate::state::CallState;

/// One epoch tick. Deadlines are rounded up to whole ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings for [`Runtime::new`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached, so a restart does not recompile.
    /// `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// The engine and the two linkers, one per world. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    cache: Option<wasmtime::Cache>,
    step: Linker<CallState>,
    integration: Linker<CallState>,
}

impl Runtime {
    pub fn new(options: &RuntimeOptions) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(1 << 20);
        config.async_stack_size(2 << 20);

        // A fresh instance per call is only cheap with pre-reserved slots.
        let mut pool = PoolingAllocationConfig::default();
        // Each memory slot reserves address space for the largest cap, so the
        // slot count bounds concurrent calls, not memory use.
        pool.total_component_instances(128)
            .total_core_instances(1024)
            .max_core_instances_per_component(64)
            .total_memories(128)
            .max_memories_per_component(1)
            .total_tables(512)
            .max_tables_per_component(16)
            .total_stacks(128)
            .max_memory_size(aerie_manifest::Limits::MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let mut cache = None;
        if let Some(dir) = &options.cache_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the compile cache {}", dir.display()))?;
            // wasmtime wants an absolute path; the default data folder is relative.
            let dir = std::path::absolute(dir)
                .with_context(|| format!("resolving the compile cache {}", dir.display()))?;
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(dir);
            let opened = wasmtime::Cache::new(cache_config)
                .map_err(anyhow::Error::from)
                .context("opening the compile cache")?;
            config.cache(Some(opened.clone()));
            cache = Some(opened);
        }

        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("starting the wasm engine")?;
        start_ticker(&engine).context("starting the epoch thread")?;

        let mut step = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut step)?;
        logging::add_to_linker::<_, HasSelf<CallState>>(&mut step, |s| s)?;
        config::add_to_linker::<_, HasSelf<CallState>>(&mut step, |s| s)?;
        let mut integration = step.clone();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut integration)?;
        crate::charged::add_to_linker(&mut integration)?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                cache,
                step,
                integration,
            }),
        })
    }

    /// Compile-cache hits and misses since this runtime started, when caching.
    pub fn cache_stats(&self) -> Option<(usize, usize)> {
        self.inner
            .cache
            .as_ref()
            .map(|c| (c.cache_hits(), c.cache_misses()))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self, world: World) -> &Linker<CallState> {
        match world {
            World::Step => &self.inner.step,
            World::Integration => &self.inner.integration,
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("aerie-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
