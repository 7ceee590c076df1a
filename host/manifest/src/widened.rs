//! What an upgrade newly asks for: the capabilities a plugin's new manifest
//! holds that its installed one did not. An operator approves a wider
//! upgrade before it runs; a narrower or equal one goes straight in.

use crate::{Manifest, World};

/// Each way `new` asks for more than `old`, for a person to read; empty when
/// it asks for the same or less.
pub fn widened(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut more = Vec::new();
    if old.world == World::Step && new.world == World::Integration {
        more.push(
            "the network: it becomes an integration plugin (it was a step plugin, with no network)"
                .to_owned(),
        );
    }
    for origin in new
        .network
        .allow
        .iter()
        .filter(|o| !old.network.allow.contains(o))
    {
        more.push(format!("a new origin: {origin}"));
    }
    for (name, credential) in &new.credentials {
        match old.credentials.get(name) {
            None => more.push(format!(
                "a new credential `{name}`, sent to {}",
                credential.hosts.join(", ")
            )),
            Some(before) => {
                for host in credential
                    .hosts
                    .iter()
                    .filter(|h| !before.hosts.contains(h))
                {
                    more.push(format!("credential `{name}` sent to a new host: {host}"));
                }
                if before.apply != credential.apply {
                    more.push(format!(
                        "credential `{name}` applied another way: {:?} (was {:?})",
                        credential.apply, before.apply
                    ));
                }
            }
        }
    }
    let limits = [
        (
            "memory_mb",
            u64::from(old.limits.memory_mb),
            u64::from(new.limits.memory_mb),
        ),
        ("timeout_ms", old.limits.timeout_ms, new.limits.timeout_ms),
        (
            "max_response_kb",
            old.limits.max_response_kb,
            new.limits.max_response_kb,
        ),
        (
            "max_requests",
            u64::from(old.limits.max_requests),
            u64::from(new.limits.max_requests),
        ),
    ];
    for (limit, before, after) in limits {
        if after > before {
            more.push(format!("a larger {limit}: {after} (was {before})"));
        }
    }
    more
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "name = \"vt\"\nversion = \"1.0.0\"\nworld = \"integration\"\nactions = [\"lookup\"]\n{extra}"
        );
        Manifest::parse(std::path::Path::new("plugin.toml"), &text).unwrap()
    }

    #[test]
    fn an_upgrade_asking_for_more_is_named_and_one_asking_less_is_not() {
        let old = manifest(
            "[network]\nallow = [\"https://www.virustotal.com\"]\n[credentials.api_key]\napply = { header = \"x-apikey\" }\nhosts = [\"https://www.virustotal.com\"]\n[limits]\nmemory_mb = 32\n",
        );
        let wider = manifest(
            "[network]\nallow = [\"https://www.virustotal.com\", \"https://exfil.example\"]\n\
             [credentials.api_key]\napply = { header = \"x-apikey\" }\nhosts = [\"https://www.virustotal.com\", \"https://exfil.example\"]\n\
             [credentials.token]\napply = \"bearer\"\nhosts = [\"https://exfil.example\"]\n[limits]\nmemory_mb = 512\n",
        );
        assert_eq!(
            widened(&old, &wider),
            [
                "a new origin: https://exfil.example",
                "credential `api_key` sent to a new host: https://exfil.example",
                "a new credential `token`, sent to https://exfil.example",
                "a larger memory_mb: 512 (was 32)",
            ]
        );
        let narrower = manifest("[network]\nallow = []\n[limits]\nmemory_mb = 16\n");
        assert!(widened(&old, &narrower).is_empty());
        assert!(widened(&old, &old).is_empty());
    }

    #[test]
    fn a_step_plugin_that_becomes_an_integration_asks_for_the_network() {
        let step = Manifest::parse(
            std::path::Path::new("plugin.toml"),
            "name = \"x\"\nversion = \"1\"\nworld = \"step\"\nactions = [\"a\"]\n",
        )
        .unwrap();
        let integration = Manifest::parse(
            std::path::Path::new("plugin.toml"),
            "name = \"x\"\nversion = \"2\"\nworld = \"integration\"\nactions = [\"a\"]\n",
        )
        .unwrap();
        assert!(widened(&step, &integration)[0].starts_with("the network"));
    }
}
