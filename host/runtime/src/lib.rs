//! The sandbox aerie runs plugins in.
//!
//! This crate owns the wasmtime engine and everything a plugin can touch: it
//! loads components (checking their imports against their world and manifest),
//! compiles each once (cached on disk) and pre-instantiates it, and gives every
//! call a fresh instance with its own memory cap and wall-clock deadline. The
//! capabilities a plugin imports are implemented here, one module each:
//! [`broker`] (outbound HTTP policy and credential injection), [`secrets`],
//! settings (`wasi:config`) and logging (`wasi:logging`).
//!
//! ## Fresh instances, and warm ones by choice
//!
//! By default each call instantiates the component anew from its
//! pre-instantiated form (about 30 µs, see BENCHMARKS.md): nothing one call
//! leaves in linear memory — an e-mail body, a lookup result — is there for the
//! next. Some plugins need setup that costs far more than a call: a fastText
//! model is parsed in milliseconds to seconds, and classifying one text takes
//! microseconds. Such a plugin may opt in to reuse in its manifest:
//!
//! ```toml
//! [instances]
//! reuse = true
//! max = 4        # warm instances kept at most (default: the host's CPUs)
//! ```
//!
//! Then a call takes an idle warm instance when there is one (a new one when
//! all are busy), and an instance that returns from a call — with a result or
//! with the plugin's own error — goes back to the pool if fewer than `max` are
//! idle. An instance that trapped (panic, memory cap, deadline) is dropped. The
//! setup thus runs once per instance: once per loaded plugin version when calls
//! come one at a time, at most `max` times under concurrency. Each call still
//! gets its own CPU deadline, memory cap, logs and request journal.
//!
//! What reuse gives up is isolation *between calls of that plugin*: state a call
//! leaves in memory is visible to later calls. That is why only `step` plugins
//! may opt in: they have no network and no credentials, so nothing one call
//! left behind can leave the host through another; and the operator sees the
//! opt-in in `aerie plugin inspect`. Snapshotting an initialized instance
//! (Wizer-style) would parse once for all instances, but needs the component
//! rewritten at build time, and the data folder and settings known then; the
//! pool needs neither.
//!
//! It knows nothing of playbooks, runs or SQL: the engine calls [`Plugin::call`]
//! and gets back JSON, or a [`CallError`] that says whether the plugin reported a
//! failure, the host refused something, or the sandbox stopped the plugin.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use aerie_runtime::{Registry, Runtime, RuntimeOptions};
//!
//! let config = aerie_manifest::Config::default();
//! let runtime = Runtime::new(&RuntimeOptions::default())?;
//! let registry = Registry::open(runtime, &config)?;
//! let plugin = registry.load("ioc-extract").await?;
//! let report = plugin.call("extract", &serde_json::json!({"text": "see 8.8.8.8"})).await;
//! println!("{}", report.result?);
//! # Ok(()) }
//! ```

mod bindings;
pub mod broker;
mod budget;
mod charged;
mod error;
mod grant;
mod imports;
mod logging;
mod plugin;
mod registry;
mod runtime;
mod scrub;
pub mod secrets;
mod settings;
mod state;
mod stderr;

/// The plugin contract this host's bindings are generated from, as a bundle
/// records it.
pub const CONTRACT: &str = "aerie:plugin@0.1.0";

pub use broker::RequestRecord;
pub use error::{CallError, Fault, LoadError};
pub use plugin::{ActionInfo, CallReport, CredentialInfo, LogLine, Plugin};
pub use registry::{Registry, RegistryError};
pub use runtime::{Runtime, RuntimeOptions};
pub use secrets::Redactor;
