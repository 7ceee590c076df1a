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
mod error;
mod imports;
mod plugin;
mod registry;
mod runtime;
pub mod secrets;
mod state;
mod stderr;

pub use broker::RequestRecord;
pub use error::{CallError, Fault, LoadError};
pub use plugin::{ActionInfo, CallReport, CredentialInfo, LogLine, Plugin};
pub use registry::{Registry, RegistryError};
pub use runtime::{Runtime, RuntimeOptions};
pub use secrets::Redactor;
