//! A loaded plugin: its manifest, the operator's grant resolved into policy, the
//! pre-instantiated component, and the call path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerie_manifest::{Apply, Limits, Manifest, OriginPattern, PluginGrant, World};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{Component, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::{ErrorCode, PluginError, PluginInstance, PluginPre};
use crate::broker::{Broker, Credential, Journal, NetworkPolicy, RequestRecord};
use crate::error::{CallError, Fault, LoadError};
use crate::runtime::{EPOCH_TICK, Runtime};
use crate::secrets::{Redactor, Secret};
use crate::state::{CallState, MemoryLimiter};

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

/// An instance kept between calls of a plugin that opted in to reuse, with the
/// store it lives in.
struct Warm {
    store: Store<CallState>,
    instance: PluginInstance,
    journal: Arc<Mutex<Journal>>,
}

/// A plugin ready to be called. Each call gets a fresh instance, unless the
/// manifest opts in to reuse (`[instances] reuse = true`, step plugins only):
/// then calls take an idle warm instance when there is one, and instances that
/// finish a call cleanly go back to a pool of at most `instances.max`. An
/// instance that trapped or ran out of time is dropped, never reused.
pub struct Plugin {
    pub manifest: Manifest,
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
    warm: Mutex<Vec<Warm>>,
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

    /// Loads the plugin whose manifest is at `manifest_path`, under `grant`.
    pub async fn load(
        runtime: &Runtime,
        manifest_path: &Path,
        grant: &PluginGrant,
    ) -> Result<Plugin, LoadError> {
        let manifest = Manifest::from_file(manifest_path)?;
        let name = manifest.name.clone();
        let grant_error = |message: String| LoadError::Grant {
            plugin: name.clone(),
            message,
        };

        let settings = resolve_settings(&manifest, grant).map_err(grant_error)?;
        let limits = grant.limits.apply(manifest.limits);
        if limits.memory_mb > aerie_manifest::Limits::MAX_MEMORY_MB {
            return Err(grant_error(format!(
                "memory_mb may be at most {}",
                aerie_manifest::Limits::MAX_MEMORY_MB
            )));
        }
        let data_dir = match &grant.data {
            Some(dir) if !dir.is_dir() => {
                return Err(grant_error(format!(
                    "data folder {} does not exist",
                    dir.display()
                )));
            }
            other => other.clone(),
        };

        let render = |entry: &str, field: &str| -> Result<OriginPattern, LoadError> {
            let rendered = minijinja::Environment::new()
                .render_str(entry, &settings)
                .map_err(|e| grant_error(format!("{field} entry `{entry}`: {e}")))?;
            OriginPattern::parse(&rendered).map_err(|e| grant_error(format!("{field}: {e}")))
        };
        let operator = grant
            .allow
            .iter()
            .map(|o| OriginPattern::parse(o).map_err(|e| grant_error(format!("allow: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut allowed = manifest
            .network
            .allow
            .iter()
            .map(|entry| render(entry, "network.allow"))
            .collect::<Result<Vec<_>, _>>()?;
        for origin in &operator {
            if !allowed.contains(origin) {
                allowed.push(origin.clone());
            }
        }
        if manifest.world == World::Step && !operator.is_empty() {
            return Err(grant_error(
                "aerie.toml grants origins to a step plugin, which has no network".to_owned(),
            ));
        }

        for granted in grant.credentials.keys() {
            if !manifest.credentials.contains_key(granted) {
                return Err(grant_error(format!(
                    "aerie.toml binds credential `{granted}`, which plugin.toml does not declare"
                )));
            }
        }
        let mut credentials = Vec::new();
        let mut credential_info = Vec::new();
        let mut unconfigured = Vec::new();
        for (cred_name, spec) in &manifest.credentials {
            let hosts = spec
                .hosts
                .iter()
                .map(|h| render(h, &format!("credentials.{cred_name}.hosts")))
                .collect::<Result<Vec<_>, _>>()?;
            let source = grant.credentials.get(cred_name);
            credential_info.push(CredentialInfo {
                name: cred_name.clone(),
                apply: describe_apply(&spec.apply),
                hosts: hosts.iter().map(ToString::to_string).collect(),
                bound_to: source.map(ToString::to_string),
            });
            // A secret that cannot be read does not stop the plugin loading (so
            // playbooks can be validated without secrets); its calls fail instead.
            match source.map(Secret::resolve) {
                Some(Ok(secret)) => credentials.push(Credential {
                    name: cred_name.clone(),
                    apply: spec.apply.clone(),
                    hosts,
                    secret,
                }),
                Some(Err(why)) => unconfigured.push(format!("credential `{cred_name}`: {why}")),
                None => {}
            }
        }
        let redactor = Redactor::new(credentials.iter().map(|c| c.secret.clone()));
        let extra_roots = match &grant.ca_file {
            None => Vec::new(),
            Some(path) => {
                use rustls::pki_types::pem::PemObject as _;
                let pem = std::fs::read(path)
                    .map_err(|e| grant_error(format!("ca_file {}: {e}", path.display())))?;
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| grant_error(format!("ca_file {}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(grant_error(format!(
                        "ca_file {} holds no PEM certificate",
                        path.display()
                    )));
                }
                certs
            }
        };
        let tls = crate::broker::tls_config(extra_roots).map_err(grant_error)?;

        let component_path = manifest.component_path(manifest_path);
        let component_error = |message: String| LoadError::Component {
            path: component_path.clone(),
            message,
        };
        let bytes = std::fs::read(&component_path).map_err(|e| {
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
            component_error(format!("does not export aerie:plugin/plugin@0.1.0: {e:#}"))
        })?;

        let policy = Arc::new(NetworkPolicy {
            plugin: manifest.name.clone(),
            allowed: allowed.clone(),
            operator,
            credentials,
            max_response_bytes: limits.max_response_kb * 1024,
            redactor: redactor.clone(),
            tls,
        });
        let manifest_warm = manifest.instances.warm();
        let mut plugin = Plugin {
            allowed: allowed.iter().map(ToString::to_string).collect(),
            manifest,
            manifest_path: manifest_path.to_owned(),
            component_path,
            sha256,
            actions: Vec::new(),
            limits,
            credentials: credential_info,
            data_dir,
            unconfigured: (!unconfigured.is_empty()).then(|| unconfigured.join("; ")),
            validators: BTreeMap::new(),
            runtime: runtime.clone(),
            pre,
            policy,
            settings: Arc::new(settings),
            redactor,
            warm: Mutex::new(Vec::new()),
            warm_max: manifest_warm,
        };
        plugin.describe().await?;
        Ok(plugin)
    }

    /// Asks the component what it offers and checks that against the manifest.
    async fn describe(&mut self) -> Result<(), LoadError> {
        let path = self.component_path.clone();
        let component_error = |message: String| LoadError::Component {
            path: path.clone(),
            message,
        };
        let (mut store, _journal) = self
            .new_store()
            .map_err(|e| component_error(e.to_string()))?;
        let info = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .aerie_plugin_plugin()
                .call_describe(&mut store)
                .await
        };
        let info = tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), info)
            .await
            .map_err(|_| {
                component_error("describe did not finish within the plugin's deadline".to_owned())
            })?
            .map_err(|e| component_error(format!("describe failed: {e:#}")))?;

        let mut exported: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
        let mut declared: Vec<&str> = self.manifest.actions.iter().map(String::as_str).collect();
        exported.sort_unstable();
        declared.sort_unstable();
        if exported != declared {
            return Err(component_error(format!(
                "the component offers actions [{}] but plugin.toml declares [{}]",
                exported.join(", "),
                declared.join(", ")
            )));
        }
        for action in info.actions {
            let parse = |text: &str, which: &str| {
                serde_json::from_str::<Value>(text).map_err(|e| {
                    component_error(format!(
                        "action `{}`: {which} schema is not JSON: {e}",
                        action.name
                    ))
                })
            };
            let input_schema = parse(&action.input_schema, "input")?;
            let output_schema = parse(&action.output_schema, "output")?;
            let validator = jsonschema::validator_for(&input_schema).map_err(|e| {
                component_error(format!(
                    "action `{}`: input schema is invalid: {e}",
                    action.name
                ))
            })?;
            self.validators.insert(action.name.clone(), validator);
            self.actions.push(ActionInfo {
                name: action.name,
                description: action.description,
                input_schema,
                output_schema,
            });
        }
        self.actions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    fn new_store(&self) -> anyhow::Result<(Store<CallState>, Arc<Mutex<Journal>>)> {
        let stderr = crate::stderr::Stderr::default();
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false);
        if let Some(dir) = &self.data_dir {
            wasi.preopened_dir(dir, DATA_MOUNT, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)?;
        }
        let journal = Arc::new(Mutex::new(Journal::default()));
        let state = CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            broker: Broker {
                policy: self.policy.clone(),
                journal: journal.clone(),
            },
            settings: self.settings.clone(),
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes(),
                hit: false,
            },
            logs: Vec::new(),
            stderr,
            redactor: self.redactor.clone(),
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        self.arm(&mut store);
        store.epoch_deadline_trap();
        Ok((store, journal))
    }

    /// Sets the call's CPU deadline, counted from now.
    fn arm(&self, store: &mut Store<CallState>) {
        let ticks = self
            .limits
            .timeout_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            + 1;
        store.set_epoch_deadline(ticks);
    }

    /// An idle warm instance, made ready for a new call.
    fn take_warm(&self) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        self.arm(&mut warm.store);
        let state = warm.store.data_mut();
        state.logs.clear();
        state.limiter.hit = false;
        state.stderr.clear();
        Some(warm)
    }

    /// Most warm instances kept between calls; 0 when every call gets a fresh one.
    pub fn warm_max(&self) -> usize {
        self.warm_max
    }

    /// How many warm instances are idle now.
    pub fn idle_instances(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Runs `action` on `input` in a fresh instance.
    pub async fn call(&self, action: &str, input: &Value) -> CallReport {
        let started = Instant::now();
        let error = |fault: Fault| CallError {
            plugin: self.manifest.name.clone(),
            action: action.to_owned(),
            fault,
        };
        if let Some(why) = &self.unconfigured {
            return CallReport {
                result: Err(error(Fault::Unconfigured(why.clone()))),
                requests: Vec::new(),
                logs: Vec::new(),
                elapsed: started.elapsed(),
            };
        }
        let Some(validator) = self.validators.get(action) else {
            let offered = self
                .actions
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return CallReport {
                result: Err(error(Fault::UnknownAction {
                    action: action.to_owned(),
                    offered,
                })),
                requests: Vec::new(),
                logs: Vec::new(),
                elapsed: started.elapsed(),
            };
        };
        if let Some(problem) = validator.iter_errors(input).next() {
            let at = problem.instance_path.to_string();
            let at = if at.is_empty() {
                "input".to_owned()
            } else {
                format!("input{at}")
            };
            return CallReport {
                result: Err(error(Fault::InvalidInput(format!("{at}: {problem}")))),
                requests: Vec::new(),
                logs: Vec::new(),
                elapsed: started.elapsed(),
            };
        }

        let (mut store, journal, instance) = match self.take_warm() {
            Some(warm) => (warm.store, warm.journal, Some(warm.instance)),
            None => match self.new_store() {
                Ok((store, journal)) => (store, journal, None),
                Err(e) => {
                    return CallReport {
                        result: Err(error(Fault::Host(format!("{e:#}")))),
                        requests: Vec::new(),
                        logs: Vec::new(),
                        elapsed: started.elapsed(),
                    };
                }
            },
        };
        let input_text = input.to_string();
        let outcome = {
            let run = async {
                let instance = match instance {
                    Some(instance) => instance,
                    None => self.pre.instantiate_async(&mut store).await?,
                };
                let result = instance
                    .aerie_plugin_plugin()
                    .call_invoke(&mut store, action, &input_text)
                    .await?;
                Ok::<_, wasmtime::Error>((result, instance))
            };
            // Epoch interruption stops a guest burning CPU; this stops one
            // waiting on the network past its deadline.
            tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), run).await
        };
        let journal_records =
            std::mem::take(&mut *journal.lock().unwrap_or_else(|e| e.into_inner()));
        let logs = std::mem::take(&mut store.data_mut().logs);
        let result = match outcome {
            Err(_elapsed) => Err(Fault::Deadline(self.limits.timeout_ms)),
            Ok(Err(trap)) => Err(self.classify_trap(&trap, store.data())),
            Ok(Ok((returned, instance))) => {
                // A call that returned, even with its own error, leaves the
                // instance sound; one that trapped or timed out does not.
                self.keep_warm(Warm {
                    store,
                    instance,
                    journal,
                });
                match returned {
                    Err(reported) => {
                        Err(self.reported(reported, journal_records.refusal.as_deref()))
                    }
                    Ok(text) => serde_json::from_str::<Value>(&text)
                        .map(|output| self.redactor.redact_json(output))
                        .map_err(|e| Fault::Reported {
                            code: aerie_contract::ErrorCode::Internal,
                            message: format!("the plugin's output is not JSON: {e}"),
                            retryable: false,
                        }),
                }
            }
        };
        CallReport {
            result: result.map_err(error),
            requests: journal_records.records(),
            logs,
            elapsed: started.elapsed(),
        }
    }

    /// Returns an instance to the pool when the plugin reuses instances and
    /// the pool has room; otherwise drops it.
    fn keep_warm(&self, warm: Warm) {
        if self.warm_max == 0 {
            return;
        }
        let mut pool = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.warm_max {
            pool.push(warm);
        }
    }

    /// Says what stopped the guest: the memory cap, the deadline, a stack
    /// overflow, a panic (its message comes from the guest's stderr) or another
    /// trap.
    fn classify_trap(&self, err: &wasmtime::Error, state: &CallState) -> Fault {
        if state.limiter.hit {
            return Fault::Memory(self.limits.memory_mb);
        }
        match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Fault::Deadline(self.limits.timeout_ms),
            Some(wasmtime::Trap::StackOverflow) => Fault::StackOverflow,
            // Languages with a shadow stack in linear memory (Rust, C) overflow
            // it into an out-of-bounds access rather than a wasm stack overflow.
            Some(wasmtime::Trap::MemoryOutOfBounds) => Fault::Trap(
                "out-of-bounds memory access (a plugin bug; unbounded recursion overflows the stack this way)"
                    .to_owned(),
            ),
            trap => {
                let stderr = state.stderr.contents();
                match panic_message(&String::from_utf8_lossy(&stderr)) {
                    Some(message) => Fault::Panic(self.redactor.redact(&message)),
                    None => {
                        let what = trap.map_or_else(|| format!("{err}"), |t| t.to_string());
                        Fault::Trap(self.redactor.redact(what.lines().next().unwrap_or_default()))
                    }
                }
            }
        }
    }

    /// The plugin's own error. When the broker refused a request during the call,
    /// the refusal is the real cause and is reported as `denied` with the rule.
    fn reported(&self, err: PluginError, refusal: Option<&str>) -> Fault {
        if let Some(refusal) = refusal {
            return Fault::Denied(self.redactor.redact(refusal));
        }
        Fault::Reported {
            code: code_of(err.code),
            message: self.redactor.redact(&err.message),
            retryable: err.retryable,
        }
    }
}

/// The contract's error code for the one the WIT bindings generated.
fn code_of(code: ErrorCode) -> aerie_contract::ErrorCode {
    use aerie_contract::ErrorCode as Code;
    match code {
        ErrorCode::InvalidInput => Code::InvalidInput,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Unauthorized => Code::Unauthorized,
        ErrorCode::RateLimited => Code::RateLimited,
        ErrorCode::Upstream => Code::Upstream,
        ErrorCode::Timeout => Code::Timeout,
        ErrorCode::Denied => Code::Denied,
        ErrorCode::Internal => Code::Internal,
    }
}

/// Rust's panic report on stderr is `thread '…' panicked at FILE:LINE:COL:`
/// followed by the message; returns `MESSAGE (at FILE:LINE:COL)`.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    let header = lines.find(|l| l.contains("panicked at"))?;
    let location = header
        .split("panicked at")
        .nth(1)?
        .trim()
        .trim_end_matches(':');
    let message = lines.next().unwrap_or("").trim();
    Some(format!("{message} (at {location})"))
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

/// The plugin's settings: manifest defaults overlaid with the operator's values.
fn resolve_settings(
    manifest: &Manifest,
    grant: &PluginGrant,
) -> Result<BTreeMap<String, String>, String> {
    let granted = grant.settings_text();
    if let Some(unknown) = granted.keys().find(|k| !manifest.settings.contains_key(*k)) {
        let known = manifest
            .settings
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "aerie.toml sets `{unknown}`, which plugin.toml does not declare (declared: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known
            }
        ));
    }
    let mut settings = BTreeMap::new();
    for (key, spec) in &manifest.settings {
        match granted.get(key).or(spec.default.as_ref()) {
            Some(value) => {
                settings.insert(key.clone(), value.clone());
            }
            None => {
                return Err(format!(
                    "setting `{key}` has no default; set it under [plugins.{}] settings in aerie.toml",
                    manifest.name
                ));
            }
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_panic_message_and_location() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nboom: bad input\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom: bad input (at src/lib.rs:12:5)"
        );
        assert_eq!(panic_message("just noise"), None);
    }
}
