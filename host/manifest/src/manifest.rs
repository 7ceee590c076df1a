//! `plugin.toml`: what a plugin is and the most it may ask for.
//!
//! ```toml
//! name = "virustotal"
//! version = "0.1.0"
//! world = "integration"
//! description = "Look up files, IPs, domains and URLs in VirusTotal"
//! actions = ["lookup"]
//!
//! [settings.base_url]
//! description = "VirusTotal API origin"
//! default = "https://www.virustotal.com"
//!
//! [network]
//! allow = ["{{ base_url }}"]
//!
//! [credentials.api_key]
//! description = "VirusTotal API key"
//! apply = { header = "x-apikey" }
//! hosts = ["{{ base_url }}"]
//! ```
//!
//! Entries of `network.allow` and `credentials.*.hosts` may be minijinja templates
//! over the plugin's settings; the runtime renders and checks them at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{self, Error};

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: World,
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest's folder.
    #[serde(default = "default_component")]
    pub component: PathBuf,
    /// The actions the component must export; checked against `describe` at load.
    pub actions: Vec<String>,
    /// Non-secret settings the plugin reads through `wasi:config`.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSpec>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub instances: Instances,
}

/// Whether calls share warm instances. By default every call gets a fresh
/// instance: nothing one call leaves in memory is there for the next. A step
/// plugin whose setup is expensive (parsing a model, compiling patterns) may
/// opt in to reuse: a bounded pool of instances kept between calls, so the
/// setup runs once per instance instead of once per call.
///
/// ```toml
/// [instances]
/// reuse = true
/// max = 4        # warm instances kept at most (default: the host's CPUs)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Instances {
    pub reuse: bool,
    pub max: Option<u32>,
}

impl Instances {
    /// Most warm instances kept: `max`, else the host's CPUs; 0 when not reused.
    pub fn warm(&self) -> usize {
        if !self.reuse {
            return 0;
        }
        match self.max {
            Some(max) => max as usize,
            None => std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

fn default_component() -> PathBuf {
    PathBuf::from("plugin.wasm")
}

/// Which WIT world the component targets, and so which imports it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// Pure transformation: no network.
    Step,
    /// May call out through the host's HTTP broker.
    Integration,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Step => "step",
            World::Integration => "integration",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    #[serde(default)]
    pub description: String,
    /// Used when the operator sets nothing; a setting with no default is required.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Origins (`scheme://host[:port]`, templated) the plugin may call.
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    #[serde(default)]
    pub description: String,
    pub apply: Apply,
    /// Origins (templated) whose requests receive this credential, and no others.
    pub hosts: Vec<String>,
}

/// How the broker puts a credential into a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Apply {
    /// `apply = { header = "x-apikey" }`: the secret is the header's value.
    Header(String),
    /// `apply = "bearer"`: `Authorization: Bearer <secret>`.
    Bearer,
    /// `apply = { basic = { username = "api" } }`: `Authorization: Basic`, the
    /// secret is the password. Without a username the secret is `user:password`.
    Basic {
        #[serde(default)]
        username: Option<String>,
    },
    /// `apply = { query = "apikey" }`: appended as a query parameter.
    Query(String),
}

impl Apply {
    /// The request header this credential occupies, which the guest may therefore
    /// never set itself.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            Apply::Header(name) => Some(name),
            Apply::Bearer | Apply::Basic { .. } => Some("authorization"),
            Apply::Query(_) => None,
        }
    }
}

/// Per-call limits. Secure defaults; the operator may override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory a single call may grow to.
    pub memory_mb: u32,
    /// Wall-clock deadline of a single call, network waits included.
    pub timeout_ms: u64,
    /// Largest response body the broker hands the plugin.
    pub max_response_kb: u64,
    /// Most HTTP requests a single call may make; the rest are refused.
    pub max_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            timeout_ms: 10_000,
            max_response_kb: 10 * 1024,
            max_requests: 100,
        }
    }
}

impl Limits {
    /// The site ceilings when aerie.toml names none: a manifest asking for
    /// more gets these.
    pub const CEILING: Limits = Limits {
        memory_mb: 256,
        timeout_ms: 30_000,
        max_response_kb: 10 * 1024,
        max_requests: 100,
    };

    /// These limits, none above `ceiling`.
    pub fn within(self, ceiling: Limits) -> Limits {
        Limits {
            memory_mb: self.memory_mb.min(ceiling.memory_mb),
            timeout_ms: self.timeout_ms.min(ceiling.timeout_ms),
            max_response_kb: self.max_response_kb.min(ceiling.max_response_kb),
            max_requests: self.max_requests.min(ceiling.max_requests),
        }
    }

    /// The largest memory cap a manifest or operator may set; the pooling
    /// allocator reserves this much address space per slot.
    pub const MAX_MEMORY_MB: u32 = 4096;
    pub const MAX_MEMORY_BYTES: usize = Self::MAX_MEMORY_MB as usize * 1024 * 1024;

    pub fn memory_bytes(&self) -> usize {
        self.memory_mb as usize * 1024 * 1024
    }

    pub(crate) fn validate(&self, path: &Path, field: &str) -> Result<(), Error> {
        if self.memory_mb == 0 || self.memory_mb > Self::MAX_MEMORY_MB {
            return Err(Error::invalid(
                path,
                format!("{field}.memory_mb"),
                format!(
                    "must be between 1 and {}, got {}",
                    Self::MAX_MEMORY_MB,
                    self.memory_mb
                ),
            ));
        }
        if self.max_requests == 0 {
            return Err(Error::invalid(
                path,
                format!("{field}.max_requests"),
                "must be at least 1",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(Error::invalid(
                path,
                format!("{field}.timeout_ms"),
                "must be positive",
            ));
        }
        Ok(())
    }
}

impl Manifest {
    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Manifest, Error> {
        Manifest::parse(path, &error::read(path)?)
    }

    /// Parses `source` as the manifest at `path` (used in messages).
    pub fn parse(path: &Path, source: &str) -> Result<Manifest, Error> {
        let manifest: Manifest = error::parse_toml(path, source)?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        validate_name(&self.name).map_err(|m| Error::invalid(path, "name", m))?;
        if BUILT_IN.contains(&self.name.as_str()) {
            return Err(Error::invalid(
                path,
                "name",
                format!(
                    "`{}` is the name of aerie's built-in actions (`uses: {}.create`); a plugin may not take it",
                    self.name, self.name
                ),
            ));
        }
        if self.version.trim().is_empty() {
            return Err(Error::invalid(path, "version", "must not be empty"));
        }
        if self.actions.is_empty() {
            return Err(Error::invalid(
                path,
                "actions",
                "a plugin offers at least one action",
            ));
        }
        for action in &self.actions {
            validate_name(action).map_err(|m| Error::invalid(path, "actions", m))?;
        }
        if self.world == World::Step
            && (!self.network.allow.is_empty() || !self.credentials.is_empty())
        {
            return Err(Error::invalid(
                path,
                "world",
                "a step plugin has no network: remove [network] and [credentials] or use world = \"integration\"",
            ));
        }
        if self.instances.reuse && self.world != World::Step {
            return Err(Error::invalid(
                path,
                "instances.reuse",
                "only step plugins may reuse instances: an integration's calls each get a fresh one",
            ));
        }
        if self.instances.max == Some(0) || self.instances.max > Some(64) {
            return Err(Error::invalid(
                path,
                "instances.max",
                "must be between 1 and 64",
            ));
        }
        for (name, cred) in &self.credentials {
            validate_name(name)
                .map_err(|m| Error::invalid(path, format!("credentials.{name}"), m))?;
            if cred.hosts.is_empty() {
                return Err(Error::invalid(
                    path,
                    format!("credentials.{name}.hosts"),
                    "name at least one origin the credential may be sent to",
                ));
            }
            if let Some(header) = cred.apply.header_name()
                && http_header_name_invalid(header)
            {
                return Err(Error::invalid(
                    path,
                    format!("credentials.{name}.apply"),
                    format!("`{header}` is not a valid header name"),
                ));
            }
        }
        self.limits.validate(path, "limits")
    }

    /// The component's path, resolved against the manifest's folder.
    pub fn component_path(&self, manifest_path: &Path) -> PathBuf {
        manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.component)
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Plugin, action and credential names: lower-case ASCII letters, digits, `-` and
/// `_`, starting with a letter, at most 64 characters. They appear in playbooks as
/// `plugin.action`, so no dots.
/// Names of the host's built-in actions, which no plugin may take.
pub const BUILT_IN: &[&str] = &["case"];

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lower-case letters, digits, `-` and `_`, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRUSTOTAL: &str = r#"
name = "virustotal"
version = "0.1.0"
world = "integration"
actions = ["lookup"]

[settings.base_url]
default = "https://www.virustotal.com"

[network]
allow = ["{{ base_url }}"]

[credentials.api_key]
apply = { header = "x-apikey" }
hosts = ["{{ base_url }}"]
"#;

    fn parse(source: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("plugins/x/plugin.toml"), source).map_err(|e| e.to_string())
    }

    #[test]
    fn a_complete_manifest_parses_with_defaults() {
        let m = parse(VIRUSTOTAL).unwrap();
        assert_eq!(m.world, World::Integration);
        assert_eq!(m.component, PathBuf::from("plugin.wasm"));
        assert_eq!(m.limits, Limits::default());
        assert_eq!(
            m.credentials["api_key"].apply,
            Apply::Header("x-apikey".into())
        );
        assert_eq!(
            m.settings["base_url"].default.as_deref(),
            Some("https://www.virustotal.com")
        );
    }

    #[test]
    fn no_plugin_may_take_the_name_of_the_built_in_actions() {
        let case = "name = \"case\"\nversion = \"1\"\nworld = \"step\"\nactions = [\"create\"]\n";
        assert_eq!(
            parse(case).unwrap_err(),
            "plugins/x/plugin.toml: name: `case` is the name of aerie's built-in actions \
             (`uses: case.create`); a plugin may not take it"
        );
    }

    #[test]
    fn only_step_plugins_may_reuse_instances() {
        let step = "name = \"ft\"\nversion = \"1\"\nworld = \"step\"\nactions = [\"classify\"]\n";
        assert_eq!(parse(step).unwrap().instances.warm(), 0);
        let reused = parse(&format!("{step}[instances]\nreuse = true\nmax = 3\n")).unwrap();
        assert_eq!(reused.instances.warm(), 3);
        assert_eq!(
            parse(&format!("{step}[instances]\nreuse = true\nmax = 0\n")).unwrap_err(),
            "plugins/x/plugin.toml: instances.max: must be between 1 and 64"
        );
        assert_eq!(
            parse(&format!("{VIRUSTOTAL}[instances]\nreuse = true\n")).unwrap_err(),
            "plugins/x/plugin.toml: instances.reuse: only step plugins may reuse instances: \
             an integration's calls each get a fresh one"
        );
    }

    #[test]
    fn apply_forms() {
        for (toml, expected) in [
            (r#""bearer""#, Apply::Bearer),
            (r#"{ query = "key" }"#, Apply::Query("key".into())),
            (
                r#"{ basic = { username = "api" } }"#,
                Apply::Basic {
                    username: Some("api".into()),
                },
            ),
            (r#"{ basic = {} }"#, Apply::Basic { username: None }),
        ] {
            let source = VIRUSTOTAL.replace(r#"{ header = "x-apikey" }"#, toml);
            assert_eq!(
                parse(&source).unwrap().credentials["api_key"].apply,
                expected
            );
        }
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        insta::assert_snapshot!(
            parse(&format!("{VIRUSTOTAL}\n[limits]\nmemory_gb = 1\n")).unwrap_err(),
            @"plugins/x/plugin.toml:18:1: unknown field `memory_gb`, expected one of `memory_mb`, `timeout_ms`, `max_response_kb`, `max_requests`"
        );
        insta::assert_snapshot!(
            parse(&VIRUSTOTAL.replace("world = \"integration\"", "world = \"daemon\"")).unwrap_err(),
            @"plugins/x/plugin.toml:4:9: unknown variant `daemon`, expected `step` or `integration`"
        );
        insta::assert_snapshot!(
            parse(&VIRUSTOTAL.replace("name = \"virustotal\"", "name = \"Virus Total\"")).unwrap_err(),
            @"plugins/x/plugin.toml: name: `Virus Total` is not a valid name: use lower-case letters, digits, `-` and `_`, starting with a letter"
        );
        insta::assert_snapshot!(
            parse(&VIRUSTOTAL.replace("world = \"integration\"", "world = \"step\"")).unwrap_err(),
            @r#"plugins/x/plugin.toml: world: a step plugin has no network: remove [network] and [credentials] or use world = "integration""#
        );
        insta::assert_snapshot!(
            parse(&format!("{VIRUSTOTAL}\n[limits]\nmemory_mb = 0\n")).unwrap_err(),
            @"plugins/x/plugin.toml: limits.memory_mb: must be between 1 and 4096, got 0"
        );
        insta::assert_snapshot!(
            parse("name = \"x\"\nversion = \"1\"\nworld = \"step\"\n").unwrap_err(),
            @"plugins/x/plugin.toml:1:1: missing field `actions`"
        );
    }
}
