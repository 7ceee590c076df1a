//! What every command needs: the operator config; and, for those that load
//! plugins, the runtime and the registry, made on first use: the runtime's
//! pooling allocator reserves address space for its instance slots, which
//! `aerie runs list` or `audit verify` have no use for.

use std::path::{Path, PathBuf};

use aerie_manifest::Config;
use aerie_runtime::{Registry, Runtime, RuntimeOptions};
use anyhow::Context as _;

pub struct Context {
    pub config: Config,
    registry: std::sync::OnceLock<Registry>,
}

/// The config named by `--config`/`AERIE_CONFIG`, else `./aerie.toml` if there
/// is one, else the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::from_file(path)?),
        None if Path::new("aerie.toml").is_file() => {
            Ok(Config::from_file(Path::new("aerie.toml"))?)
        }
        None => Ok(Config::default()),
    }
}

impl Context {
    pub fn open(config_path: Option<&Path>) -> anyhow::Result<Context> {
        Ok(Context {
            config: load_config(config_path)?,
            registry: std::sync::OnceLock::new(),
        })
    }

    /// The installed plugins, with the runtime that runs them.
    pub fn registry(&self) -> anyhow::Result<&Registry> {
        if let Some(registry) = self.registry.get() {
            return Ok(registry);
        }
        let registry = open_registry(&self.config)?;
        Ok(self.registry.get_or_init(|| registry))
    }
}

/// A runtime and the plugins folder of `config`.
pub fn open_registry(config: &Config) -> anyhow::Result<Registry> {
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache_dir(config)),
    })?;
    Registry::open(runtime, config).context("opening the plugins folder")
}

fn cache_dir(config: &Config) -> PathBuf {
    config.data_dir.join("cache")
}
