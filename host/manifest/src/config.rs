//! `aerie.toml`: what this site grants. Optional: with no file, [`Config::default`]
//! works (SQLite under `./.aerie/`, plugins from `./plugins`, playbooks from
//! `./playbooks`).
//!
//! ```toml
//! [store]
//! url = "sqlite://.aerie/aerie.db"
//!
//! [plugins.virustotal]
//! settings = { base_url = "http://127.0.0.1:8080" }
//! allow = ["http://127.0.0.1:8080"]
//! credentials.api_key = { env = "VT_API_KEY" }
//! limits = { memory_mb = 64, timeout_ms = 10000 }
//!
//! [limits]            # site ceilings over every manifest's asks (these are the defaults)
//! memory_mb = 256
//! timeout_ms = 30000
//! max_response_kb = 10240
//! max_requests = 100
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cases::CasesConfig;
use crate::error::{self, Error};
use crate::manifest::validate_name;
use crate::origin::OriginPattern;
use crate::server::{ServerConfig, WebhookConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where aerie keeps its database and compiled-plugin cache.
    pub data_dir: PathBuf,
    /// Folder of plugin folders, each with a `plugin.toml`.
    pub plugins_dir: PathBuf,
    pub playbooks_dir: PathBuf,
    pub store: StoreConfig,
    pub engine: EngineConfig,
    /// Site ceilings (`[limits]`): what a manifest may ask for at most. A
    /// vendor's connector does not choose its own ceiling; an operator's
    /// per-plugin `limits` may still grant more.
    pub limits: SiteLimits,
    pub audit: AuditConfig,
    pub plugins: BTreeMap<String, PluginGrant>,
    pub users: BTreeMap<String, UserConfig>,
    /// `aerie serve`: where it listens, TLS, shutdown.
    pub server: ServerConfig,
    /// `[webhooks.NAME]`, served at `POST /hooks/NAME`.
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// `[cases]`: assignment rules.
    pub cases: CasesConfig,
    /// `[trust]`: whose signed plugin bundles this site installs.
    pub trust: TrustConfig,
}

/// `[trust]`: the publishers whose bundles this site trusts, by their
/// minisign public key (the second line of `aerie plugin keygen`'s KEY.pub).
///
/// ```toml
/// [trust]
/// require_signed = true            # refuse unsigned bundles and plugin folders
/// [trust.keys]
/// acme = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    pub require_signed: bool,
    pub keys: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".aerie"),
            plugins_dir: PathBuf::from("plugins"),
            playbooks_dir: PathBuf::from("playbooks"),
            store: StoreConfig::default(),
            engine: EngineConfig::default(),
            limits: SiteLimits::default(),
            audit: AuditConfig::default(),
            plugins: BTreeMap::new(),
            users: BTreeMap::new(),
            server: ServerConfig::default(),
            webhooks: BTreeMap::new(),
            cases: CasesConfig::default(),
            trust: TrustConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; defaults to `sqlite://<data_dir>/aerie.db`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How long a process's hold on a run lasts without renewal; after that,
    /// `aerie runs resume` (or another server) may take the run over.
    pub lease_seconds: f64,
    /// The most items one `for_each` step may run over; more is the step's
    /// error, so a list from outside cannot make a run unbounded.
    pub max_items: usize,
    /// How many runs `aerie serve` executes at once; default the CPUs × 4,
    /// since most steps wait on the network.
    pub workers: Option<usize>,
}

impl EngineConfig {
    /// The bounds of `lease_seconds`: a shorter lease would be renewed more
    /// often than a store write takes; a longer one leaves a dead process's
    /// runs unclaimed for more than a day.
    pub const LEASE_SECONDS: (f64, f64) = (0.1, 86_400.0);

    /// How many runs a server executes at once.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from) * 4)
    }

    /// The lease, within [`Self::LEASE_SECONDS`] (a config is validated
    /// when it is read; a value built by hand is clamped).
    pub fn lease(&self) -> std::time::Duration {
        let (shortest, longest) = Self::LEASE_SECONDS;
        let seconds = if self.lease_seconds.is_nan() {
            shortest
        } else {
            self.lease_seconds.clamp(shortest, longest)
        };
        std::time::Duration::from_secs_f64(seconds)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease_seconds: 15.0,
            max_items: 10_000,
            workers: None,
        }
    }
}

/// `[audit]`: signed checkpoints of the audit chain, kept outside the
/// database so that truncating or rewriting it is detected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 signing key (`aerie audit keygen` writes one); keep it
    /// where the database's writer cannot read or replace it.
    pub signing_key_file: Option<PathBuf>,
    /// Where checkpoints are appended, one JSON line each: a file the
    /// database's writer cannot rewrite (another volume, an append-only log).
    pub checkpoints: Option<PathBuf>,
}

impl AuditConfig {
    /// Both paths, when checkpoints are configured.
    pub fn checkpointing(&self) -> Option<(&Path, &Path)> {
        Some((
            self.signing_key_file.as_deref()?,
            self.checkpoints.as_deref()?,
        ))
    }
}

/// `[limits]`: the site's ceilings over what manifests ask for; each one
/// left out is [`crate::Limits::CEILING`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteLimits(pub crate::Limits);

impl Default for SiteLimits {
    fn default() -> Self {
        SiteLimits(crate::Limits::CEILING)
    }
}

impl<'de> Deserialize<'de> for SiteLimits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = LimitsOverride::deserialize(d)?;
        Ok(SiteLimits(given.apply(crate::Limits::CEILING)))
    }
}

/// What the operator grants one plugin, or one instance of a plugin: the
/// same component installed once more under another name, with settings,
/// credentials and limits of its own (`[plugins.jira-eu] plugin = "jira"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrant {
    /// The installed plugin this is an instance of; none for the plugin
    /// itself.
    pub plugin: Option<String>,
    /// Non-secret settings, visible to the plugin through `wasi:config`.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Extra origins. Only an origin listed here may resolve to a loopback,
    /// private or link-local address.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Where each credential's secret lives. Values are never read here.
    #[serde(default)]
    pub credentials: BTreeMap<String, SecretSource>,
    #[serde(default)]
    pub limits: LimitsOverride,
    /// A read-only folder the plugin sees as `/data`.
    pub data: Option<PathBuf>,
    /// The site's ceilings ([`Config::limits`]), filled in by [`Config::grant`].
    #[serde(skip)]
    pub ceiling: SiteLimits,
    /// Extra certificate authorities (PEM) trusted for this plugin's HTTPS
    /// origins, beside the public ones: an on-premises server's private CA.
    pub ca_file: Option<PathBuf>,
}

/// Where a secret lives: `{ env = "VT_API_KEY" }` or `{ file = "/run/secrets/vt" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value: the one place a secret is read, by the runtime
    /// (credentials) and the server (webhook keys), which hold it from then on.
    /// File contents lose one trailing newline, as `echo key > file` adds one.
    pub fn read(&self) -> Result<String, String> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("it is bound to the environment variable {var}, which is not set")
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("it is bound to the file {}: {e}", path.display()))?,
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(format!("its source ({self}) is empty"));
        }
        Ok(value.to_owned())
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "env {var}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_response_kb: Option<u64>,
    pub max_requests: Option<u32>,
}

impl LimitsOverride {
    pub fn apply(&self, base: crate::Limits) -> crate::Limits {
        crate::Limits {
            memory_mb: self.memory_mb.unwrap_or(base.memory_mb),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            max_response_kb: self.max_response_kb.unwrap_or(base.max_response_kb),
            max_requests: self.max_requests.unwrap_or(base.max_requests),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        Config::parse(path, &error::read(path)?)
    }

    pub fn parse(path: &Path, source: &str) -> Result<Config, Error> {
        let config: Config = error::parse_toml(path, source)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let (shortest, longest) = EngineConfig::LEASE_SECONDS;
        if !(shortest..=longest).contains(&self.engine.lease_seconds) {
            return Err(Error::invalid(
                path,
                "engine.lease_seconds",
                format!(
                    "must be between {shortest} and {longest} (a day), not {}",
                    self.engine.lease_seconds
                ),
            ));
        }
        if self.engine.max_items == 0 {
            return Err(Error::invalid(
                path,
                "engine.max_items",
                "must be at least 1",
            ));
        }
        if self.engine.workers == Some(0) {
            return Err(Error::invalid(path, "engine.workers", "must be at least 1"));
        }
        self.limits.0.validate(path, "limits")?;
        if self.audit.signing_key_file.is_some() != self.audit.checkpoints.is_some() {
            return Err(Error::invalid(
                path,
                "audit",
                "give both `signing_key_file` and `checkpoints`, or neither",
            ));
        }
        for name in self.webhooks.keys() {
            aerie_contract::check_webhook_name(name)
                .map_err(|m| Error::invalid(path, format!("webhooks.{name}"), m))?;
        }
        for (index, rule) in self.cases.assign.iter().enumerate() {
            if let Some(user) = rule.to.as_ref().filter(|u| !self.users.contains_key(*u)) {
                return Err(Error::invalid(
                    path,
                    format!("cases.assign[{index}].to"),
                    format!("`{user}` is not a user in [users]"),
                ));
            }
        }
        for (name, grant) in &self.plugins {
            validate_name(name).map_err(|m| Error::invalid(path, format!("plugins.{name}"), m))?;
            if let Some(base) = &grant.plugin {
                validate_name(base)
                    .map_err(|m| Error::invalid(path, format!("plugins.{name}.plugin"), m))?;
                if base == name {
                    return Err(Error::invalid(
                        path,
                        format!("plugins.{name}.plugin"),
                        "a plugin is not an instance of itself: leave `plugin` out",
                    ));
                }
                if let Some(built_in) = crate::manifest::BUILT_IN.iter().find(|b| *b == name) {
                    return Err(Error::invalid(
                        path,
                        format!("plugins.{name}"),
                        format!(
                            "`{built_in}` names the built-in actions; an instance takes another name"
                        ),
                    ));
                }
                if self.plugins.get(base).is_some_and(|g| g.plugin.is_some()) {
                    return Err(Error::invalid(
                        path,
                        format!("plugins.{name}.plugin"),
                        format!("`{base}` is itself an instance: name the installed plugin"),
                    ));
                }
            }
            for origin in &grant.allow {
                OriginPattern::parse(origin)
                    .map_err(|m| Error::invalid(path, format!("plugins.{name}.allow"), m))?;
            }
            for (key, value) in &grant.settings {
                if setting_text(value).is_none() {
                    return Err(Error::invalid(
                        path,
                        format!("plugins.{name}.settings.{key}"),
                        "settings are strings, numbers or booleans",
                    ));
                }
            }
            grant
                .limits
                .apply(crate::Limits::default())
                .validate(path, &format!("plugins.{name}.limits"))?;
        }
        Ok(())
    }

    /// The members of `group` in `[users]`, by name.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, user)| user.groups.iter().any(|g| g == group))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The database URL, defaulting to SQLite under the data folder.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("aerie.db").display()),
        }
    }

    /// The grant for `plugin`, or the empty grant, under the site's ceilings.
    pub fn grant(&self, plugin: &str) -> PluginGrant {
        PluginGrant {
            ceiling: self.limits,
            ..self.plugins.get(plugin).cloned().unwrap_or_default()
        }
    }
}

impl PluginGrant {
    /// Settings as the text the plugin reads through `wasi:config`.
    pub fn settings_text(&self) -> BTreeMap<String, String> {
        self.settings
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), setting_text(v)?)))
            .collect()
    }
}

/// Scalars as their text; arrays and tables (a keyword plugin's rules, say) as
/// JSON, which is what a plugin parses structured settings from.
fn setting_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => serde_json::to_string(value).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> Result<Config, String> {
        Config::parse(Path::new("aerie.toml"), source).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_plugin_section_parses() {
        let config = parse(
            r#"
[plugins.virustotal]
settings = { base_url = "http://127.0.0.1:8080", retries = 3, rules = [{ label = "Spam", keywords = ["sale"] }] }
allow = ["http://127.0.0.1:8080"]
credentials.api_key = { env = "VT_API_KEY" }
limits = { memory_mb = 64, timeout_ms = 10000 }

[plugins.jira]
credentials.token = { file = "/run/secrets/jira" }
"#,
        )
        .unwrap();
        let vt = &config.plugins["virustotal"];
        assert_eq!(vt.settings_text()["base_url"], "http://127.0.0.1:8080");
        assert_eq!(vt.settings_text()["retries"], "3");
        assert_eq!(
            vt.settings_text()["rules"],
            r#"[{"keywords":["sale"],"label":"Spam"}]"#
        );
        assert_eq!(
            vt.credentials["api_key"],
            SecretSource::Env("VT_API_KEY".into())
        );
        assert_eq!(vt.limits.timeout_ms, Some(10_000));
        assert_eq!(
            config.plugins["jira"].credentials["token"],
            SecretSource::File("/run/secrets/jira".into())
        );
        assert_eq!(config.store_url(), "sqlite://.aerie/aerie.db");
    }

    #[test]
    fn a_lease_outside_its_bounds_is_refused_not_a_panic() {
        for (value, expected) in [
            (
                "1e20",
                "aerie.toml: engine.lease_seconds: must be between 0.1 and 86400 (a day), not 100000000000000000000",
            ),
            (
                "0.01",
                "aerie.toml: engine.lease_seconds: must be between 0.1 and 86400 (a day), not 0.01",
            ),
            (
                "nan",
                "aerie.toml: engine.lease_seconds: must be between 0.1 and 86400 (a day), not NaN",
            ),
        ] {
            let error = parse(&format!("[engine]\nlease_seconds = {value}\n")).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
        let config = parse("[engine]\nlease_seconds = 86400\n").unwrap();
        assert_eq!(
            config.engine.lease(),
            std::time::Duration::from_secs(86_400)
        );
    }

    #[test]
    fn no_file_means_working_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.plugins_dir, PathBuf::from("plugins"));
        assert!(config.plugins.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        insta::assert_snapshot!(
            parse("[plugins.virustotal]\nsettings = {}\nalow = []\n").unwrap_err(),
            @"aerie.toml:3:1: unknown field `alow`, expected one of `plugin`, `settings`, `allow`, `credentials`, `limits`, `data`, `ca_file`"
        );
        insta::assert_snapshot!(
            parse("[plugins.vt]\ncredentials.api_key = { vault = \"x\" }\n").unwrap_err(),
            @"aerie.toml:2:25: unknown variant `vault`, expected `env` or `file`"
        );
        insta::assert_snapshot!(
            parse("[plugins.vt]\nallow = [\"10.0.0.1\"]\n").unwrap_err(),
            @"aerie.toml: plugins.vt.allow: `10.0.0.1` is not an origin: expected scheme://host[:port]"
        );
        insta::assert_snapshot!(
            parse("[stor]\nurl = \"x\"\n").unwrap_err(),
            @"aerie.toml:1:2: unknown field `stor`, expected one of `data_dir`, `plugins_dir`, `playbooks_dir`, `store`, `engine`, `limits`, `audit`, `plugins`, `users`, `server`, `webhooks`, `cases`, `trust`"
        );
    }
}
