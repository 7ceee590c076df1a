//! A loaded plugin: its manifest, the operator's grant resolved into policy
//! (see `grant`), the pre-instantiated component, and its calls.
//!
//! - `describe`: what the component offers, checked at load;
//! - `instance`: a call's store, armed with its limits;
//! - `pool`: warm instances for plugins that reuse them;
//! - `call`: one call, its checks, and what stopped the plugin.

mod call;
mod describe;
mod instance;
mod pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_manifest::{Apply, Limits, Manifest, PluginGrant, World};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::bindings::PluginPre;
use crate::broker::{Credential, NetworkPolicy, RequestRecord};
use crate::error::{CallError, LoadError};
use crate::runtime::Runtime;
use crate::secrets::{Redactor, Secret};
use crate::state::CallState;

/// Where a plugin's granted data folder appears inside the sandbox.
pub const DATA_MOUNT: &str = "/data";

/// One action as the plugin describes it.
#[derive(Debug, Clone, Serialize)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Value,
}

/// A credential as `aerie plugin inspect` shows it: never the value.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialInfo {
    pub name: String,
    pub apply: String,
    pub hosts: Vec<String>,
    /// Where the operator bound it (`env VT_API_KEY`), or `None` when unbound.
    pub bound_to: Option<String>,
}

pub use aerie_contract::LogLine;

/// Everything one call produced. The requests and logs are there whether the
/// call succeeded or not: a failed call is audited too.
#[derive(Debug)]
pub struct CallReport {
    pub result: Result<Value, CallError>,
    pub requests: Vec<RequestRecord>,
    pub logs: Vec<LogLine>,
    pub elapsed: Duration,
}

/// A plugin ready to be called. Each call gets a fresh instance, unless the
/// manifest opts in to reuse (`[instances] reuse = true`, step plugins only):
/// then calls take an idle warm instance when there is one, and instances that
/// finish a call cleanly go back to a pool of at most `instances.max`. An
/// instance that trapped or ran out of time is dropped, never reused.
pub struct Plugin {
    /// The manifest, its `name` the one the plugin is called by (an
    /// instance's own name).
    pub manifest: Manifest,
    /// The installed plugin this is an instance of, if it is one.
    pub instance_of: Option<String>,
    pub manifest_path: PathBuf,
    pub component_path: PathBuf,
    /// SHA-256 of the component file, for the audit trail.
    pub sha256: String,
    pub actions: Vec<ActionInfo>,
    pub limits: Limits,
    pub credentials: Vec<CredentialInfo>,
    /// Every origin the plugin may call, rendered.
    pub allowed: Vec<String>,
    pub data_dir: Option<PathBuf>,
    /// Why calls cannot run yet (a bound secret that cannot be read), if so.
    pub unconfigured: Option<String>,
    validators: BTreeMap<String, jsonschema::Validator>,
    runtime: Runtime,
    pre: PluginPre<CallState>,
    policy: Arc<NetworkPolicy>,
    settings: Arc<BTreeMap<String, String>>,
    redactor: Redactor,
    warm: Mutex<Vec<pool::Warm>>,
    warm_max: usize,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn world(&self) -> World {
        self.manifest.world
    }

    /// The redactor for this plugin's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Loads the plugin whose manifest is at `manifest_path`, under `grant`:
    /// works out what it may do, reads what that names (the data folder, a CA
    /// bundle, secrets), compiles the component and asks it to describe itself.
    pub async fn load(
        runtime: &Runtime,
        manifest_path: &Path,
        grant: &PluginGrant,
    ) -> Result<Plugin, LoadError> {
        Plugin::load_as(runtime, manifest_path, grant, None).await
    }

    /// Loads the plugin at `manifest_path` as the instance `name`, under the
    /// instance's own `grant`: its calls, logs, errors and records say `name`,
    /// and it keeps its own credentials and warm instances.
    pub async fn load_instance(
        runtime: &Runtime,
        manifest_path: &Path,
        grant: &PluginGrant,
        name: &str,
    ) -> Result<Plugin, LoadError> {
        Plugin::load_as(runtime, manifest_path, grant, Some(name)).await
    }

    async fn load_as(
        runtime: &Runtime,
        manifest_path: &Path,
        grant: &PluginGrant,
        instance: Option<&str>,
    ) -> Result<Plugin, LoadError> {
        let mut manifest = Manifest::from_file(manifest_path)?;
        let instance_of =
            instance.map(|name| std::mem::replace(&mut manifest.name, name.to_owned()));
        let grant_error = |message: String| LoadError::Grant {
            plugin: manifest.name.clone(),
            message,
        };
        if let Some(setting) = crate::grant::missing_setting(&manifest, grant) {
            return Err(LoadError::Unconfigured {
                plugin: manifest.name.clone(),
                setting,
            });
        }
        let granted = crate::grant::grant(&manifest, grant).map_err(grant_error)?;
        let data_dir = match &grant.data {
            Some(dir) if !dir.is_dir() => {
                return Err(grant_error(format!(
                    "data folder {} does not exist",
                    dir.display()
                )));
            }
            other => other.clone(),
        };
        let mut credentials = Vec::new();
        let mut credential_info = Vec::new();
        let mut unconfigured = Vec::new();
        for credential in granted.credentials {
            credential_info.push(CredentialInfo {
                name: credential.name.clone(),
                apply: describe_apply(&credential.apply),
                hosts: credential.hosts.iter().map(ToString::to_string).collect(),
                bound_to: credential.source.as_ref().map(ToString::to_string),
            });
            // A secret that cannot be read does not stop the plugin loading (so
            // playbooks can be validated without secrets); its calls fail instead.
            match credential.source.as_ref().map(Secret::resolve) {
                Some(Ok(secret)) => credentials.push(Credential {
                    name: credential.name,
                    apply: credential.apply,
                    hosts: credential.hosts,
                    secret,
                }),
                Some(Err(why)) => {
                    unconfigured.push(format!("credential `{}`: {why}", credential.name))
                }
                None => {}
            }
        }
        let redactor = Redactor::new(credentials.iter().flat_map(Credential::protected));
        let extra_roots = match &grant.ca_file {
            None => Vec::new(),
            Some(path) => read_ca_file(path).map_err(grant_error)?,
        };
        let tls = crate::broker::tls_config(extra_roots).map_err(grant_error)?;
        let component_path = manifest.component_path(manifest_path);
        let (pre, sha256) = compile(runtime, &manifest, &component_path).await?;

        let policy = Arc::new(NetworkPolicy {
            plugin: manifest.name.clone(),
            allowed: granted.allowed.clone(),
            operator: granted.operator,
            credentials,
            max_response_bytes: granted.limits.max_response_kb * 1024,
            max_requests: granted.limits.max_requests as usize,
            redactor: redactor.clone(),
            tls,
        });
        let warm_max = manifest.instances.warm();
        let mut plugin = Plugin {
            allowed: granted.allowed.iter().map(ToString::to_string).collect(),
            manifest,
            instance_of,
            manifest_path: manifest_path.to_owned(),
            component_path,
            sha256,
            actions: Vec::new(),
            limits: granted.limits,
            credentials: credential_info,
            data_dir,
            unconfigured: (!unconfigured.is_empty()).then(|| unconfigured.join("; ")),
            validators: BTreeMap::new(),
            runtime: runtime.clone(),
            pre,
            policy,
            settings: Arc::new(granted.settings),
            redactor,
            warm: Mutex::new(Vec::new()),
            warm_max,
        };
        plugin.describe().await?;
        Ok(plugin)
    }
}

/// Reads the component, checks its imports against its world, compiles it
/// (through the runtime's cache) and pre-instantiates it; returns it with
/// the file's SHA-256.
async fn compile(
    runtime: &Runtime,
    manifest: &Manifest,
    component_path: &Path,
) -> Result<(PluginPre<CallState>, String), LoadError> {
    let component_error = |message: String| LoadError::Component {
        path: component_path.to_owned(),
        message,
    };
    let bytes = std::fs::read(component_path).map_err(|e| {
        component_error(format!(
            "{e} (build the plugins with `cargo xtask build`, or set `component` in plugin.toml)"
        ))
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let engine = runtime.engine().clone();
    let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
        .await
        .map_err(|e| component_error(format!("compiling: {e}")))?
        .map_err(|e| component_error(format!("not a valid component: {e:#}")))?;
    for (import, _) in component.component_type().imports(runtime.engine()) {
        crate::imports::check(manifest.world, import).map_err(|why| LoadError::Import {
            plugin: manifest.name.clone(),
            world: manifest.world.as_str(),
            import: import.to_owned(),
            why,
        })?;
    }
    let instance_pre = runtime
        .linker(manifest.world)
        .instantiate_pre(&component)
        .map_err(|e| component_error(format!("cannot be linked: {e:#}")))?;
    let pre = PluginPre::new(instance_pre).map_err(|e| {
        component_error(format!(
            "does not export the plugin interface of {}: {e:#}",
            crate::CONTRACT
        ))
    })?;
    Ok((pre, sha256))
}

/// The operator's private certificate authorities, from a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

fn describe_apply(apply: &Apply) -> String {
    match apply {
        Apply::Header(name) => format!("header {name}"),
        Apply::Bearer => "bearer token".to_owned(),
        Apply::Basic {
            username: Some(user),
        } => format!("basic auth as {user}"),
        Apply::Basic { username: None } => "basic auth".to_owned(),
        Apply::Query(param) => format!("query parameter {param}"),
    }
}
