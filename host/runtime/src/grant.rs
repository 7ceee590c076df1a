//! What one plugin may do, worked out from what its manifest asks for and
//! what the operator granted, without any I/O: a call is possible only if the
//! manifest declares it and the operator granted it, and a refusal says which
//! side is missing what.
//!
//! Reading files (the component, a CA bundle, secrets) and checking folders
//! is the loader's; this is the policy it then enforces.

use std::collections::BTreeMap;

use aerie_manifest::{Apply, Limits, Manifest, OriginPattern, PluginGrant, SecretSource, World};

/// The outcome of matching a manifest against the operator's grant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grant {
    /// Manifest defaults overlaid with the operator's values, every declared
    /// setting present.
    pub settings: BTreeMap<String, String>,
    pub limits: Limits,
    /// Every origin the plugin may call: the manifest's, rendered with the
    /// settings, then the operator's.
    pub allowed: Vec<OriginPattern>,
    /// The operator's own origins: only these may reach non-public addresses.
    pub operator: Vec<OriginPattern>,
    pub credentials: Vec<CredentialGrant>,
}

/// One declared credential: how it is applied, to which origins, and where
/// the operator keeps its secret (`None`: not bound).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CredentialGrant {
    pub name: String,
    pub apply: Apply,
    pub hosts: Vec<OriginPattern>,
    pub source: Option<SecretSource>,
}

/// Instructions a manifest template may run (an origin needs a handful).
const TEMPLATE_FUEL: u64 = 10_000;

/// The longest origin a manifest template may render.
const MAX_ORIGIN: usize = 4096;

/// Matches `manifest` against `grant`; the error names what disagrees.
pub(crate) fn grant(manifest: &Manifest, grant: &PluginGrant) -> Result<Grant, String> {
    let settings = settings(manifest, grant)?;
    // A manifest asks, within the site's ceilings; the operator's own
    // per-plugin values stand, above a ceiling too. Both files bound their
    // limits when they are read.
    let limits = grant.limits.apply(manifest.limits.within(grant.ceiling.0));
    // A manifest's templates are a vendor's code run at load: bounded, so a
    // looping one is an error, not a hung `aerie plugin list`.
    let env = aerie_template::environment(TEMPLATE_FUEL);
    let context = serde_json::to_value(&settings).map_err(|e| e.to_string())?;
    let render = |entry: &str, field: &str| -> Result<OriginPattern, String> {
        let rendered = aerie_template::render(&env, entry, &context, MAX_ORIGIN)
            .map_err(|e| format!("{field} entry `{entry}`: {e}"))?;
        OriginPattern::parse(&rendered.text).map_err(|e| format!("{field}: {e}"))
    };
    let operator = grant
        .allow
        .iter()
        .map(|o| OriginPattern::parse(o).map_err(|e| format!("allow: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if manifest.world == World::Step && !operator.is_empty() {
        return Err("aerie.toml grants origins to a step plugin, which has no network".to_owned());
    }
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
    if let Some(granted) = grant
        .credentials
        .keys()
        .find(|granted| !manifest.credentials.contains_key(*granted))
    {
        return Err(format!(
            "aerie.toml binds credential `{granted}`, which plugin.toml does not declare"
        ));
    }
    let credentials = manifest
        .credentials
        .iter()
        .map(|(name, spec)| {
            let hosts = spec
                .hosts
                .iter()
                .map(|h| render(h, &format!("credentials.{name}.hosts")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CredentialGrant {
                name: name.clone(),
                apply: spec.apply.clone(),
                hosts,
                source: grant.credentials.get(name).cloned(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Grant {
        settings,
        limits,
        allowed,
        operator,
        credentials,
    })
}

/// The plugin's settings: manifest defaults overlaid with the operator's values.
fn settings(manifest: &Manifest, grant: &PluginGrant) -> Result<BTreeMap<String, String>, String> {
    let granted = grant.settings_text();
    if let Some(unknown) = granted.keys().find(|k| !manifest.settings.contains_key(*k)) {
        let known = manifest.settings.keys().cloned().collect::<Vec<_>>();
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        return Err(format!(
            "aerie.toml sets `{unknown}`, which plugin.toml does not declare (declared: {known})"
        ));
    }
    manifest
        .settings
        .iter()
        .map(
            |(key, spec)| match granted.get(key).or(spec.default.as_ref()) {
                Some(value) => Ok((key.clone(), value.clone())),
                None => Err(unset(&manifest.name, key)),
            },
        )
        .collect()
}

/// The first setting of `manifest` with no default that `grant` leaves unset.
pub(crate) fn missing_setting(manifest: &Manifest, grant: &PluginGrant) -> Option<String> {
    manifest
        .settings
        .iter()
        .find(|(key, spec)| spec.default.is_none() && !grant.settings.contains_key(*key))
        .map(|(key, _)| key.clone())
}

pub(crate) fn unset(plugin: &str, setting: &str) -> String {
    format!(
        "setting `{setting}` has no default; set it under [plugins.{plugin}] settings in aerie.toml"
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const JIRA: &str = r#"
name = "jira"
version = "1.0.0"
world = "integration"
actions = ["create"]

[settings.base_url]
default = "https://jira.example.com"
[settings.project]

[network]
allow = ["{{ base_url }}"]

[credentials.token]
apply = "bearer"
hosts = ["{{ base_url }}"]
"#;

    const CLASSIFIER: &str = r#"
name = "classify"
version = "1.0.0"
world = "step"
actions = ["classify"]
"#;

    fn granted(manifest: &str, operator: &str) -> Result<Grant, String> {
        let manifest = Manifest::parse(Path::new("plugin.toml"), manifest).unwrap();
        let config = aerie_manifest::Config::parse(Path::new("aerie.toml"), operator).unwrap();
        grant(&manifest, &config.grant(&manifest.name))
    }

    fn origins(patterns: &[OriginPattern]) -> Vec<String> {
        patterns.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_manifest_asks_and_the_operator_grants() {
        let jira = "[plugins.jira]\nsettings = { project = \"SOC\" }\n";
        let on_prem = "[plugins.jira]\nsettings = { project = \"SOC\", base_url = \"http://10.0.0.5:8080\" }\nallow = [\"http://10.0.0.5:8080\"]\ncredentials.token = { env = \"JIRA_TOKEN\" }\n";
        for (manifest, operator, allowed, operator_origins, bound) in [
            (JIRA, jira, vec!["https://jira.example.com"], vec![], None),
            (
                JIRA,
                on_prem,
                vec!["http://10.0.0.5:8080"],
                vec!["http://10.0.0.5:8080"],
                Some(SecretSource::Env("JIRA_TOKEN".into())),
            ),
            (CLASSIFIER, "", vec![], vec![], None),
        ] {
            let grant = granted(manifest, operator).unwrap();
            assert_eq!(origins(&grant.allowed), allowed, "{operator}");
            assert_eq!(origins(&grant.operator), operator_origins, "{operator}");
            assert_eq!(
                grant.credentials.first().and_then(|c| c.source.clone()),
                bound
            );
        }
        let grant = granted(JIRA, on_prem).unwrap();
        assert_eq!(grant.settings["project"], "SOC");
        assert_eq!(
            origins(&grant.credentials[0].hosts),
            ["http://10.0.0.5:8080"]
        );
    }

    #[test]
    fn a_manifest_asks_within_the_sites_ceilings_and_the_operator_decides() {
        let greedy = format!(
            "{CLASSIFIER}\n[limits]\nmemory_mb = 4096\ntimeout_ms = 600000\nmax_requests = 5\n"
        );
        let limits = |operator: &str| {
            let l = granted(&greedy, operator).unwrap().limits;
            (l.memory_mb, l.timeout_ms, l.max_requests)
        };
        // The defaults' ceilings: 256 MiB, 30 s; asking for less is kept.
        assert_eq!(limits(""), (256, 30_000, 5));
        // A site with other ceilings.
        assert_eq!(limits("[limits]\nmemory_mb = 1024\n"), (1024, 30_000, 5));
        // The operator's own grant for this plugin stands above a ceiling.
        assert_eq!(
            limits("[plugins.classify]\nlimits = { memory_mb = 2048, timeout_ms = 60000 }\n"),
            (2048, 60_000, 5)
        );
    }

    #[test]
    fn a_looping_manifest_template_is_an_error_not_a_hang() {
        let looping = JIRA.replace(
            r#"allow = ["{{ base_url }}"]"#,
            r#"allow = ["{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ base_url }}"]"#,
        );
        let err = granted(
            &looping,
            "[plugins.jira]\nsettings = { project = \"SOC\" }\n",
        )
        .unwrap_err();
        assert!(err.starts_with("network.allow entry `{% for i"), "{err}");
        assert!(err.contains("fuel"), "{err}");
        // One instruction that would build gigabytes is refused before it runs.
        for (entry, message) in [
            (
                "{{ base_url ~ ('x' * 100000000) }}",
                "multiplies numbers only",
            ),
            ("{{ [1]|batch(1000000000000000) }}", "at most 100000"),
            (
                "{% for i in range(10000) %}{{ base_url }}{% endfor %}",
                "renders to more than 4 KiB",
            ),
        ] {
            let manifest = JIRA.replace(
                r#"allow = ["{{ base_url }}"]"#,
                &format!("allow = [{entry:?}]"),
            );
            let err = granted(
                &manifest,
                "[plugins.jira]\nsettings = { project = \"SOC\" }\n",
            )
            .unwrap_err();
            assert!(err.contains(message), "{entry}: {err}");
        }
    }

    #[test]
    fn a_refusal_names_what_disagrees() {
        for (manifest, operator, expected) in [
            (
                JIRA,
                "",
                "setting `project` has no default; set it under [plugins.jira] settings in aerie.toml",
            ),
            (
                JIRA,
                "[plugins.jira]\nsettings = { project = \"SOC\", colour = \"red\" }\n",
                "aerie.toml sets `colour`, which plugin.toml does not declare (declared: base_url, project)",
            ),
            (
                CLASSIFIER,
                "[plugins.classify]\nsettings = { model = \"m.bin\" }\n",
                "aerie.toml sets `model`, which plugin.toml does not declare (declared: none)",
            ),
            (
                JIRA,
                "[plugins.jira]\nsettings = { project = \"SOC\" }\ncredentials.password = { env = \"X\" }\n",
                "aerie.toml binds credential `password`, which plugin.toml does not declare",
            ),
            (
                CLASSIFIER,
                "[plugins.classify]\nallow = [\"https://example.com\"]\n",
                "aerie.toml grants origins to a step plugin, which has no network",
            ),
            (
                JIRA,
                "[plugins.jira]\nsettings = { project = \"SOC\", base_url = \"not a url\" }\n",
                "network.allow: `not a url` is not an origin: expected scheme://host[:port]",
            ),
        ] {
            assert_eq!(
                granted(manifest, operator).unwrap_err(),
                expected,
                "{operator}"
            );
        }
    }
}
