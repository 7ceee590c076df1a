//! The two TOML files aerie reads: a plugin's `plugin.toml` (what the plugin is and
//! what it may ask for) and the operator's `aerie.toml` (what this site grants).
//!
//! Everything here is parsing and validation: typed structs with
//! `deny_unknown_fields`, validated names, and errors that name the file, the line
//! and the field. No I/O beyond reading the one file asked for; a secret is read
//! only when its holder (the runtime's broker, the server) asks
//! [`SecretSource::read`], never while parsing.

mod bundle;
mod cases;
mod config;
mod error;
mod manifest;
mod origin;
mod server;
mod widened;

pub use bundle::{BUNDLE_FILES, Bundle};
pub use cases::{AssignRule, CasesConfig};
pub use config::{
    AuditConfig, Config, EngineConfig, LimitsOverride, PluginGrant, SecretSource, SiteLimits,
    StoreConfig, TrustConfig, UserConfig,
};
pub use error::{Error, Location};
pub use manifest::{
    Apply, BUILT_IN, CredentialSpec, Limits, Manifest, NetworkSpec, SettingSpec, World,
    validate_name,
};
pub use origin::{Origin, OriginPattern};
pub use server::{Rate, ServerConfig, TlsConfig, TlsVersion, WebhookAuth, WebhookConfig};
pub use widened::widened;
