//! The installed plugins: every `plugins_dir/*/plugin.toml`, each loaded on first
//! use and then kept. A plugin that fails to load does not stop the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aerie_manifest::{Config, Manifest};
use tokio::sync::OnceCell;

use crate::error::LoadError;
use crate::plugin::Plugin;
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no plugin `{name}` in {} (installed: {installed})", dir.display())]
    Unknown {
        name: String,
        dir: PathBuf,
        installed: String,
    },
    #[error(transparent)]
    Load(Arc<LoadError>),
    #[error("{}: {cause}", dir.display())]
    Dir { dir: PathBuf, cause: std::io::Error },
    #[error("[plugins.{name}] is an instance of `{of}`, {why}")]
    Instance {
        name: String,
        of: String,
        why: String,
    },
}

impl RegistryError {
    /// The plugin is installed and sound, but needs settings this site has
    /// not given it yet.
    pub fn is_unconfigured(&self) -> bool {
        matches!(self, RegistryError::Load(e) if matches!(**e, LoadError::Unconfigured { .. }))
    }
}

struct Entry {
    manifest_path: PathBuf,
    /// The installed plugin this entry is an instance of.
    instance_of: Option<String>,
    loaded: OnceCell<Result<Arc<Plugin>, Arc<LoadError>>>,
}

/// The plugins under a folder, with the operator's grants.
pub struct Registry {
    runtime: Runtime,
    config: Config,
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// Finds the plugins under `config.plugins_dir`. Cheap: nothing is compiled
    /// until [`Registry::load`]. A missing folder means no plugins.
    pub fn open(runtime: Runtime, config: &Config) -> Result<Registry, RegistryError> {
        let dir = &config.plugins_dir;
        let mut entries = BTreeMap::new();
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(cause) => {
                return Err(RegistryError::Dir {
                    dir: dir.clone(),
                    cause,
                });
            }
        };
        for item in listing.into_iter().flatten().flatten() {
            let manifest_path = item.path().join("plugin.toml");
            if !manifest_path.is_file() {
                continue;
            }
            // The folder name is only a fallback: the manifest says the name.
            let name = Manifest::from_file(&manifest_path)
                .map(|m| m.name)
                .unwrap_or_else(|_| item.file_name().to_string_lossy().into_owned());
            entries.insert(
                name,
                Entry {
                    manifest_path,
                    instance_of: None,
                    loaded: OnceCell::new(),
                },
            );
        }
        // Instances: the same component once more, under the grant of their
        // own name.
        for (name, grant) in &config.plugins {
            let Some(of) = &grant.plugin else { continue };
            let refused = |why: &str| RegistryError::Instance {
                name: name.clone(),
                of: of.clone(),
                why: why.to_owned(),
            };
            if entries.contains_key(name) {
                return Err(refused("but an installed plugin has that name"));
            }
            let Some(base) = entries.get(of).filter(|e| e.instance_of.is_none()) else {
                return Err(refused(&format!(
                    "which is not installed in {}",
                    dir.display()
                )));
            };
            let manifest_path = base.manifest_path.clone();
            entries.insert(
                name.clone(),
                Entry {
                    manifest_path,
                    instance_of: Some(of.clone()),
                    loaded: OnceCell::new(),
                },
            );
        }
        Ok(Registry {
            runtime,
            config: config.clone(),
            entries,
        })
    }

    /// Names of the installed plugins, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The installed plugin `name` is an instance of, if it is one.
    pub fn instance_of(&self, name: &str) -> Option<&str> {
        self.entries.get(name)?.instance_of.as_deref()
    }

    pub fn manifest_path(&self, name: &str) -> Option<&Path> {
        self.entries.get(name).map(|e| e.manifest_path.as_path())
    }

    /// Loads (once) and returns the plugin called `name`.
    pub async fn load(&self, name: &str) -> Result<Arc<Plugin>, RegistryError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| RegistryError::Unknown {
                name: name.to_owned(),
                dir: self.config.plugins_dir.clone(),
                installed: if self.entries.is_empty() {
                    "none".to_owned()
                } else {
                    self.entries.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })?;
        entry
            .loaded
            .get_or_init(|| async {
                let grant = self.config.grant(name);
                let loaded = match &entry.instance_of {
                    None => Plugin::load(&self.runtime, &entry.manifest_path, &grant).await,
                    Some(_) => {
                        Plugin::load_instance(&self.runtime, &entry.manifest_path, &grant, name)
                            .await
                    }
                };
                loaded.map(Arc::new).map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(RegistryError::Load)
    }

    /// Loads a plugin from a folder or a `plugin.toml` path, outside the registry.
    pub async fn load_path(&self, path: &Path) -> Result<Plugin, LoadError> {
        let manifest_path = if path.is_dir() {
            path.join("plugin.toml")
        } else {
            path.to_owned()
        };
        let manifest = Manifest::from_file(&manifest_path)?;
        Plugin::load(
            &self.runtime,
            &manifest_path,
            &self.config.grant(&manifest.name),
        )
        .await
    }
}
