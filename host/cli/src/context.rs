//! What every command needs: the operator config, the runtime and the plugins.

use std::path::{Path, PathBuf};

use aerie_manifest::Config;
use aerie_runtime::{Registry, Runtime, RuntimeOptions};
use anyhow::Context as _;

pub struct Context {
    pub config: Config,
    pub registry: Registry,
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
        let config = load_config(config_path)?;
        let runtime = Runtime::new(&RuntimeOptions {
            cache_dir: Some(cache_dir(&config)),
        })?;
        let registry = Registry::open(runtime, &config).context("opening the plugins folder")?;
        Ok(Context { config, registry })
    }
}

fn cache_dir(config: &Config) -> PathBuf {
    config.data_dir.join("cache")
}
