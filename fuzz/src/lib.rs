//! Fuzz targets: every parser of outside input, each a function of raw bytes
//! that must never panic, hang or allocate without bound, and that checks
//! what must hold of its result.
//!
//! `cargo xtask fuzz` builds `fuzz_targets/*` (one libFuzzer binary per
//! function here) with coverage instrumentation and runs each for a set time;
//! `cargo test -p aerie-fuzz` replays the seeds and every input a run saved
//! (`fuzz/corpus/<target>/`, including the crashes it found, minimised) through
//! the same functions, so a fixed crash stays fixed.

use std::path::Path;

use aerie_engine::{Catalog, Playbook, RunBudget, Templates};
use aerie_manifest::{Config, Manifest, Origin, OriginPattern};

/// The broker's address classification and the scrubber, compiled here from
/// the runtime's own files: they use nothing of the runtime but these crates,
/// and this keeps wasmtime out of the instrumented build.
#[path = "../../host/runtime/src/broker/address.rs"]
#[allow(dead_code)]
mod address;
#[path = "../../host/runtime/src/scrub.rs"]
#[allow(dead_code)]
mod scrub;

/// A fuzz target: raw bytes in, a panic on anything that must not happen.
pub type Target = fn(&[u8]);

/// The targets by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 9] = [
    ("playbook", playbook),
    ("manifest", manifest),
    ("config", config),
    ("fasttext", fasttext),
    ("origin", origin),
    ("scrub", scrub),
    ("schema", schema),
    ("template", template),
    ("bundle", bundle),
];

/// A playbook file: read, then validated against an empty catalog (every
/// plugin unknown), which exercises the checks after the parse too.
pub fn playbook(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Playbook::read(Path::new("fuzz.yaml"), text);
    if let Err(errors) = parsed.validate(&Catalog::default()) {
        // Every error renders, with its position.
        let _ = errors.to_string();
    }
}

/// A plugin bundle as a vendor (or anyone) ships it: read whole, or refused
/// with a reason; what is read holds only the files a bundle may, each
/// matching its hash.
pub fn bundle(data: &[u8]) {
    match aerie_manifest::Bundle::parse(data) {
        Ok(bundle) => {
            assert!(bundle.files.contains_key("plugin.wasm"));
            assert!(
                bundle
                    .files
                    .keys()
                    .all(|name| aerie_manifest::BUNDLE_FILES.contains(&name.as_str()))
            );
            let _ = bundle.trusted_comment();
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// A plugin's `plugin.toml`.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Manifest::parse(Path::new("plugin.toml"), text) {
        let _ = e.to_string();
    }
}

/// The operator's `aerie.toml`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(Path::new("aerie.toml"), text) {
        let _ = e.to_string();
    }
}

/// A fastText `.bin` or `.ftz` file: a model that loads also predicts.
pub fn fasttext(data: &[u8]) {
    if let Ok(model) = aerie_fasttext::Model::from_bytes(data) {
        let _ = model.predict("urgent invoice payment overdue", 3, 0.0);
        let _ = model.predict("", 1, 0.0);
    }
}

/// The broker's URL and origin handling: an origin taken from any URL is
/// matched by the pattern of its own text; an allow-list pattern parses or is
/// refused; an address is classified, an IPv6 one that embeds an IPv4 one
/// the same as that address where it is loopback or private.
pub fn origin(data: &[u8]) {
    if data.len() >= 16 {
        let bytes: [u8; 16] = data[..16].try_into().unwrap_or_default();
        let v6 = std::net::Ipv6Addr::from(bytes);
        let kind = address::non_public(v6.into());
        if let Some(v4) = v6.to_ipv4_mapped() {
            assert_eq!(kind, address::non_public(v4.into()), "{v6}");
        }
        let v4 = std::net::Ipv4Addr::from([data[0], data[1], data[2], data[3]]);
        let _ = address::non_public(v4.into());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = OriginPattern::parse(text);
    if let Ok(url) = url::Url::parse(text)
        && let Some(origin) = Origin::from_url(&url)
    {
        let own = origin.to_string();
        let pattern = OriginPattern::parse(&own)
            .unwrap_or_else(|e| panic!("{url}: its origin {own} does not parse back: {e}"));
        assert!(pattern.matches(&origin), "{own} does not match {url}");
    }
}

/// The response scrubber: for a secret (from the first bytes, in an API
/// key's alphabet) and a body split into chunks, the streamed result equals
/// the one-shot one, and neither holds any form of the secret.
pub fn scrub(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len % 48).min(rest.len());
    let (secret, body) = rest.split_at(len);
    // Printable ASCII without the marker's brackets: a secret holding
    // `[REDACTED]`'s own edges could be re-formed by the marker beside it.
    if !secret
        .iter()
        .all(|b| b.is_ascii_graphic() && !b"[]".contains(b))
    {
        return;
    }
    let secret = std::str::from_utf8(secret).unwrap_or_default();
    let Some(patterns) = scrub::Patterns::new([secret]) else {
        return;
    };
    let patterns = std::sync::Arc::new(patterns);
    let whole = patterns.scrub(body).into_owned();

    let mut stream = scrub::StreamScrubber::new(patterns.clone());
    let mut streamed = Vec::new();
    let mut at = 0;
    // Chunk sizes from the body itself, 1 to 64 bytes.
    while at < body.len() {
        let size = usize::from(body[at] % 64) + 1;
        let end = (at + size).min(body.len());
        streamed.extend_from_slice(&stream.push(bytes::Bytes::copy_from_slice(&body[at..end])));
        at = end;
    }
    streamed.extend_from_slice(&stream.finish());
    assert_eq!(streamed, whole, "streamed and whole scrubbing differ");
    assert!(
        !patterns.is_match(&whole),
        "a form of the secret survived scrubbing"
    );
}

/// A plugin's input schema and an input: a vendor's component supplies the
/// schema, a playbook (or a webhook's sender) the input.
pub fn schema(data: &[u8]) {
    let Some(cut) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (schema, input) = (&data[..cut], &data[cut + 1..]);
    let (Ok(schema), Ok(input)) = (
        serde_json::from_slice::<serde_json::Value>(schema),
        serde_json::from_slice::<serde_json::Value>(input),
    ) else {
        return;
    };
    if let Ok(validator) = jsonschema::validator_for(&schema) {
        for error in validator.iter_errors(&input) {
            let _ = error.to_string();
        }
    }
}

/// A playbook template, checked and rendered under the fuel and size limits
/// against a context with some of everything.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let templates = Templates::new();
    if templates.check(text).is_err() {
        return;
    }
    let ctx = serde_json::json!({
        "inputs": {"text": "beacon to 185.220.101.1", "n": 3, "list": [1, "a", null], "map": {"k": "v"}},
        "steps": {"iocs": {"output": {"ipv4": ["1.1.1.1"]}, "status": "succeeded"}},
    });
    let _ = templates.render_str(text, &ctx, &RunBudget::default());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned()
    }

    /// A target's corpus: seeds (some linked from the project's own files:
    /// playbooks, manifests, models) and what fuzzing runs saved, crashes
    /// included.
    pub(crate) fn inputs(target: &str) -> Vec<PathBuf> {
        let dir = repo().join("fuzz/corpus").join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    #[test]
    fn every_saved_input_and_seed_replays_cleanly() {
        for (target, run) in TARGETS {
            let inputs = inputs(target);
            assert!(!inputs.is_empty(), "{target} has no corpus");
            for path in inputs {
                let data = std::fs::read(&path).unwrap();
                run(&data);
            }
        }
    }
}
