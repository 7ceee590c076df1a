//! Signed plugin bundles, the vendor's and the operator's loop:
//! `aerie plugin keygen | pack | sign | install | approve | remove`.
//!
//! A bundle is a tar of `bundle.json` (name, version, world, the contract
//! and each file's SHA-256), `plugin.toml`, `plugin.wasm` and the README. Its
//! signature is a minisign signature beside it (`FILE.minisig`): the `minisign`
//! tool verifies it too, and its trusted comment binds the bundle's name and
//! version. The operator trusts publishers' public keys in `[trust.keys]`.
//!
//! Installing checks, in order: the signature (against the trusted keys; with
//! `require_signed`, none is refused), the files against `bundle.json`, the
//! manifest, and the component itself — loaded and described under this
//! site's grant before anything is copied. An upgrade that asks for more than
//! the installed version (a new origin, a credential, the network, larger
//! limits) is held under `plugins/.pending/NAME` until `aerie plugin approve
//! NAME`; both are audited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aerie_manifest::{BUNDLE_FILES, Bundle, Manifest, widened};
use anyhow::{Context as _, bail};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::context::Context;

/// Where held upgrades wait, inside the plugins folder (no `plugin.toml` at
/// its top, so the registry never loads from it).
const PENDING: &str = ".pending";

pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let public = public_path(out);
    for path in [out, public.as_path()] {
        if path.exists() {
            bail!("{} exists: a key is never overwritten", path.display());
        }
    }
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow::anyhow!("generating a key: {e}"))?;
    let secret = pair
        .sk
        .to_box(Some("aerie plugin signing key"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public_box = pair.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_private(out, secret.to_string().as_bytes())?;
    std::fs::write(&public, public_box.to_string())?;
    outln!(
        "wrote {} (secret: keep it off the machines that run plugins) and {}",
        out.display(),
        public.display()
    )?;
    outln!(
        "trust it with [trust.keys] PUBLISHER = {:?}",
        pair.pk.to_base64()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn pack(dir: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let files = folder_files(dir)?;
    let packed = Bundle::pack(
        &files,
        aerie_runtime::CONTRACT,
        &format!("aerie {}", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    std::fs::write(out, packed)?;
    let bundle = Bundle::parse(&std::fs::read(out)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    outln!(
        "packed {} {} into {}",
        bundle.manifest.name,
        bundle.manifest.version,
        out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A plugin folder's files as a bundle holds them: its manifest, its
/// component (where the manifest says), its README if it has one.
fn folder_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let manifest_path = dir.join("plugin.toml");
    let manifest = Manifest::from_file(&manifest_path)?;
    let component = manifest.component_path(&manifest_path);
    let mut files = BTreeMap::new();
    files.insert("plugin.toml".to_owned(), std::fs::read(&manifest_path)?);
    files.insert(
        "plugin.wasm".to_owned(),
        std::fs::read(&component).with_context(|| {
            format!(
                "{}: build the plugin first (`cargo xtask build`)",
                component.display()
            )
        })?,
    );
    if let Ok(readme) = std::fs::read(dir.join("README.md")) {
        files.insert("README.md".to_owned(), readme);
    }
    Ok(files)
}

pub fn sign(file: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let bundle = read(file)?;
    let text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let secret = minisign::SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_unencrypted_secret_key())
        .map_err(|e| {
            anyhow::anyhow!(
                "{} is not an unencrypted minisign secret key: {e}",
                key.display()
            )
        })?;
    let trusted = bundle.trusted_comment();
    let signature = minisign::sign(
        None,
        &secret,
        std::fs::File::open(file)?,
        Some(&trusted),
        None,
    )
    .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let out = signature_path(file);
    std::fs::write(&out, signature.to_string())?;
    outln!("signed {} into {}", file.display(), out.display())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn install(ctx: &Context, path: &Path, user: &str) -> anyhow::Result<ExitCode> {
    known(ctx, user)?;
    let (files, publisher) = if path.is_dir() {
        if ctx.config.trust.require_signed {
            bail!(
                "{}: a plugin folder is unsigned, and [trust] require_signed refuses it: install a signed bundle",
                path.display()
            );
        }
        let files = folder_files(path)?;
        (files, None)
    } else {
        // The signature is checked on the bytes before anything in them is read.
        let signed = verify(ctx, path)?;
        let bundle = read(path)?;
        if let Some((_, comment)) = &signed
            && *comment != bundle.trusted_comment()
        {
            bail!(
                "{}: signed as `{comment}`, but the bundle is `{}`",
                path.display(),
                bundle.trusted_comment()
            );
        }
        (bundle.files, signed.map(|(publisher, _)| publisher))
    };
    let manifest = Manifest::parse(
        Path::new("plugin.toml"),
        std::str::from_utf8(&files["plugin.toml"])?,
    )?;
    let name = manifest.name.clone();
    // The component is loaded and described before anything is installed.
    let staging = tempfile::tempdir()?;
    write_files(staging.path(), &files)?;
    match ctx.registry()?.load_path(staging.path()).await {
        Ok(_) => {}
        // Sound, but waiting for this site's settings: installable.
        Err(e @ aerie_runtime::LoadError::Unconfigured { .. }) => {
            outln!("note: {e}")?;
        }
        Err(e) => bail!("{name} {} would not load here: {e}", manifest.version),
    }

    let target = ctx.config.plugins_dir.join(&name);
    let wider = match Manifest::from_file(&target.join("plugin.toml")) {
        Ok(installed) => widened(&installed, &manifest),
        Err(_) => Vec::new(),
    };
    let store = ctx.store().await?;
    let mut event = json!({
        "by": user, "version": manifest.version, "publisher": publisher,
        "sha256": hex::encode(Sha256::digest(&files["plugin.wasm"])),
    });
    if !wider.is_empty() && target.exists() {
        let pending = ctx.config.plugins_dir.join(PENDING).join(&name);
        let _ = std::fs::remove_dir_all(&pending);
        write_files(&pending, &files)?;
        event["asks_for_more"] = json!(wider);
        store
            .record_event(&format!("plugin:{name}"), "plugin.held", &event)
            .await?;
        outln!(
            "held: {name} {} asks for more than the installed version:",
            manifest.version
        )?;
        for line in &wider {
            outln!("  + {line}")?;
        }
        outln!("`aerie plugin approve {name} --as USER` installs it")?;
        return Ok(ExitCode::SUCCESS);
    }
    replace(&target, &files)?;
    store
        .record_event(&format!("plugin:{name}"), "plugin.installed", &event)
        .await?;
    outln!(
        "installed {name} {} in {}",
        manifest.version,
        target.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(ctx: &Context, name: &str, user: &str) -> anyhow::Result<ExitCode> {
    known(ctx, user)?;
    let pending = ctx.config.plugins_dir.join(PENDING).join(name);
    let manifest = Manifest::from_file(&pending.join("plugin.toml"))
        .map_err(|_| anyhow::anyhow!("no upgrade of `{name}` is held for approval"))?;
    let target = ctx.config.plugins_dir.join(name);
    let wider = Manifest::from_file(&target.join("plugin.toml"))
        .map(|installed| widened(&installed, &manifest))
        .unwrap_or_default();
    let mut files = BTreeMap::new();
    for file in BUNDLE_FILES {
        if let Ok(bytes) = std::fs::read(pending.join(file)) {
            files.insert((*file).to_owned(), bytes);
        }
    }
    replace(&target, &files)?;
    std::fs::remove_dir_all(&pending)?;
    let event = json!({ "by": user, "version": manifest.version, "approved": wider });
    ctx.store()
        .await?
        .record_event(&format!("plugin:{name}"), "plugin.approved", &event)
        .await?;
    outln!("approved and installed {name} {}", manifest.version)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(ctx: &Context, name: &str, user: &str) -> anyhow::Result<ExitCode> {
    known(ctx, user)?;
    let target = ctx.config.plugins_dir.join(name);
    let manifest = Manifest::from_file(&target.join("plugin.toml")).map_err(|_| {
        anyhow::anyhow!(
            "no plugin `{name}` is installed in {}",
            ctx.config.plugins_dir.display()
        )
    })?;
    // Nothing that would break is left behind: instances of it, playbooks calling it.
    let instances: Vec<&String> = ctx
        .config
        .plugins
        .iter()
        .filter(|(_, grant)| grant.plugin.as_deref() == Some(name))
        .map(|(instance, _)| instance)
        .collect();
    if !instances.is_empty() {
        bail!(
            "`{name}` has instances in aerie.toml ([plugins.{}]): remove them first",
            instances
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("], [plugins.")
        );
    }
    let users: Vec<String> = super::playbook::playbook_files(&ctx.config.playbooks_dir)
        .into_iter()
        .filter(|path| {
            aerie_engine::Playbook::from_file(path).is_ok_and(|playbook| {
                playbook.all_steps().iter().any(|step| {
                    matches!(&step.kind, aerie_engine::StepKind::Uses(uses) if uses.plugin == name)
                })
            })
        })
        .map(|path| path.display().to_string())
        .collect();
    if !users.is_empty() {
        bail!("{} call `{name}`: change them first", users.join(", "));
    }
    let gone = ctx.config.plugins_dir.join(format!(".{name}.removed"));
    let _ = std::fs::remove_dir_all(&gone);
    std::fs::rename(&target, &gone)?;
    std::fs::remove_dir_all(&gone)?;
    let _ = std::fs::remove_dir_all(ctx.config.plugins_dir.join(PENDING).join(name));
    let event = json!({ "by": user, "version": manifest.version });
    ctx.store()
        .await?
        .record_event(&format!("plugin:{name}"), "plugin.removed", &event)
        .await?;
    outln!("removed {name} {}", manifest.version)?;
    Ok(ExitCode::SUCCESS)
}

/// The bundle at `path`, read whole and checked.
fn read(path: &Path) -> anyhow::Result<Bundle> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Bundle::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The publisher whose trusted key signed the bundle at `path`, and the
/// signature's trusted comment; none for an unsigned bundle where the site
/// allows one.
fn verify(ctx: &Context, path: &Path) -> anyhow::Result<Option<(String, String)>> {
    let signature_file = signature_path(path);
    let trust = &ctx.config.trust;
    let Ok(text) = std::fs::read_to_string(&signature_file) else {
        if trust.require_signed {
            bail!(
                "{}: unsigned (no {}), and [trust] require_signed refuses it",
                path.display(),
                signature_file.display()
            );
        }
        return Ok(None);
    };
    let signature = minisign::SignatureBox::from_string(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a minisign signature: {e}",
            signature_file.display()
        )
    })?;
    let key_id = hex::encode_upper(signature.keynum());
    for (publisher, key) in &trust.keys {
        let key = minisign::PublicKey::from_base64(key).map_err(|e| {
            anyhow::anyhow!("[trust.keys] {publisher}: not a minisign public key: {e}")
        })?;
        if key.keynum() != signature.keynum() {
            continue;
        }
        minisign::verify(
            &key,
            &signature,
            std::fs::File::open(path)?,
            true,
            false,
            false,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: the signature does not verify with {publisher}'s key: {e}",
                path.display()
            )
        })?;
        let comment = signature.trusted_comment().unwrap_or_default();
        return Ok(Some((publisher.clone(), comment)));
    }
    bail!(
        "{}: signed by key {key_id}, which [trust.keys] does not list (trusted: {})",
        path.display(),
        if trust.keys.is_empty() {
            "none".to_owned()
        } else {
            trust.keys.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    )
}

/// Changes name who made them: a user of the config.
fn known(ctx: &Context, user: &str) -> anyhow::Result<()> {
    if !ctx.config.users.contains_key(user) {
        bail!("`{user}` is not a user in [users] of the config");
    }
    Ok(())
}

fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// Puts `files` in place of the plugin folder `target`: written beside it,
/// then renamed over it, so a running server never reads a half-written one.
fn replace(target: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    let parent = target.parent().context("the plugins folder")?;
    let name = target
        .file_name()
        .context("a plugin folder name")?
        .to_string_lossy();
    let fresh = parent.join(format!(".{name}.new"));
    let old = parent.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&fresh);
    write_files(&fresh, files)?;
    if target.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(target, &old)?;
    }
    std::fs::rename(&fresh, target)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn public_path(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

fn signature_path(bundle: &Path) -> PathBuf {
    PathBuf::from(format!("{}.minisig", bundle.display()))
}

/// Writes a secret only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
