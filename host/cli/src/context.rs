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

    /// The site's store (see [`open_store`]).
    pub async fn store(&self) -> anyhow::Result<aerie_store::Store> {
        open_store(&self.config).await
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

/// The site's store, assigning new cases by its `[[cases.assign]]` rules.
pub async fn open_store(config: &Config) -> anyhow::Result<aerie_store::Store> {
    let assignment = assignment(config)?;
    Ok(aerie_store::Store::open(&config.store_url())
        .await?
        .with_assignment(assignment))
}

/// The `[[cases.assign]]` rules, checked (hours, time zones, groups with
/// members).
pub fn assignment(config: &Config) -> anyhow::Result<aerie_engine::Assignment> {
    let specs: Vec<aerie_engine::RuleSpec<'_>> = config
        .cases
        .assign
        .iter()
        .map(|rule| aerie_engine::RuleSpec {
            kind: rule.kind.as_deref(),
            hours: rule.hours.as_deref(),
            tz: rule.tz.as_deref(),
            to: rule.to.as_deref(),
            round_robin: rule.round_robin.as_deref(),
            members: rule
                .round_robin
                .as_deref()
                .map(|group| config.members(group))
                .unwrap_or_default(),
        })
        .collect();
    aerie_engine::Assignment::new(&specs).map_err(|e| anyhow::anyhow!("aerie.toml: {e}"))
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
