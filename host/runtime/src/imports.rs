//! What a component may import, by world.
//!
//! Checked before linking, so a plugin that asks for more than its world allows
//! is refused with the import named, rather than failing later with a linker
//! message about a missing instance.

use aerie_manifest::World;

/// Interfaces every plugin may import: its WASI basics (clocks, random, its own
/// stdio, the read-only data folder) and aerie's logging and settings. Matched
/// on `namespace:package/interface`, any version.
const BASE: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:logging/logging",
    "wasi:config/store",
    // Types only; a component that uses them in its exports imports them.
    "aerie:plugin/types",
];

/// The network, through the broker only.
const INTEGRATION: &[&str] = &["wasi:http/outgoing-handler", "wasi:http/types"];

/// Checks one import name such as `wasi:http/outgoing-handler@0.2.4`; returns why
/// it is refused.
pub(crate) fn check(world: World, import: &str) -> Result<(), String> {
    let unversioned = import.split('@').next().unwrap_or(import);
    if BASE.contains(&unversioned) {
        return Ok(());
    }
    let is_http = INTEGRATION.contains(&unversioned);
    match world {
        World::Integration if is_http => Ok(()),
        World::Step if is_http => Err(
            "a step plugin has no network; declare world = \"integration\" in plugin.toml if it must call out"
                .to_owned(),
        ),
        _ if unversioned.starts_with("wasi:sockets/") => Err(
            "raw sockets are not available to plugins; use wasi:http, which the host brokers".to_owned(),
        ),
        World::Step => Err("the step world does not provide it".to_owned()),
        World::Integration => Err("the integration world does not provide it".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_world_allows_exactly_its_imports() {
        let cases = [
            (World::Step, "wasi:cli/environment@0.2.6", true),
            (World::Step, "wasi:filesystem/preopens@0.2.0", true),
            (World::Step, "wasi:logging/logging@0.1.0-draft", true),
            (World::Step, "wasi:http/outgoing-handler@0.2.4", false),
            (World::Step, "wasi:http/types@0.2.4", false),
            (World::Integration, "wasi:http/outgoing-handler@0.2.4", true),
            (World::Integration, "wasi:http/types@0.2.12", true),
            (World::Integration, "wasi:sockets/tcp@0.2.0", false),
            (World::Step, "wasi:sockets/ip-name-lookup@0.2.0", false),
            (World::Integration, "acme:evil/backdoor", false),
        ];
        for (world, import, allowed) in cases {
            assert_eq!(check(world, import).is_ok(), allowed, "{world:?} {import}");
        }
    }
}
