//! Signed plugin bundles, as a vendor and an operator use them: keygen, pack,
//! sign, install under `[trust]`; every way a bundle is refused, named; an
//! upgrade that asks for more held until approved.

use std::path::{Path, PathBuf};

use crate::harness::{Ran, Site, repo, run, wasm};

/// A vendor's folder with the shipped virustotal plugin, its manifest
/// changed by `patch`.
fn vendor_folder(site: &Site, name: &str, patch: impl FnOnce(String) -> String) -> PathBuf {
    let dir = site.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(repo().join("plugins/virustotal/plugin.toml")).unwrap();
    std::fs::write(dir.join("plugin.toml"), patch(manifest)).unwrap();
    std::fs::copy(wasm("virustotal"), dir.join("plugin.wasm")).unwrap();
    std::fs::write(dir.join("README.md"), "# virustotal, by ACME\n").unwrap();
    dir
}

fn aerie(site: &Site, args: &[&str]) -> Ran {
    run(site.aerie().args(args))
}

fn ok(ran: Ran) -> Ran {
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    ran
}

fn refused(ran: Ran, says: &str) {
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    assert!(
        ran.stderr.contains(says),
        "expected `{says}` in: {}",
        ran.stderr
    );
}

/// Packs and signs `dir` with `key` into `file`.
fn signed(site: &Site, dir: &Path, key: &Path, file: &str) -> String {
    let bundle = site.path().join(file).display().to_string();
    ok(aerie(
        site,
        &[
            "plugin",
            "pack",
            &dir.display().to_string(),
            "--out",
            &bundle,
        ],
    ));
    ok(aerie(
        site,
        &[
            "plugin",
            "sign",
            &bundle,
            "--key",
            &key.display().to_string(),
        ],
    ));
    bundle
}

fn public_key(key: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    text.lines().nth(1).unwrap().trim().to_owned()
}

fn version(site: &Site) -> String {
    let ran = ok(aerie(site, &["plugin", "inspect", "virustotal", "--json"]));
    serde_json::from_str::<serde_json::Value>(&ran.stdout).unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_signed_bundle_from_a_trusted_publisher_installs_and_nothing_else_does() {
    let site = Site::new();
    let (acme, mallory) = (
        site.path().join("acme.key"),
        site.path().join("mallory.key"),
    );
    ok(aerie(
        &site,
        &["plugin", "keygen", "--out", &acme.display().to_string()],
    ));
    ok(aerie(
        &site,
        &["plugin", "keygen", "--out", &mallory.display().to_string()],
    ));
    refused(
        aerie(
            &site,
            &["plugin", "keygen", "--out", &acme.display().to_string()],
        ),
        "a key is never overwritten",
    );
    site.config(&format!(
        "[users.ops]\n\n[trust]\nrequire_signed = true\n[trust.keys]\nacme = {:?}\n",
        public_key(&acme)
    ));
    let folder = vendor_folder(&site, "vt", |m| m);
    let bundle = signed(&site, &folder, &acme, "vt.bundle");

    // The trusted publisher's bundle installs, audited.
    let installed = ok(aerie(&site, &["plugin", "install", &bundle, "--as", "ops"]));
    assert!(
        installed.stdout.contains("installed virustotal 0.1.0"),
        "{}",
        installed.stdout
    );
    assert!(site.path().join("plugins/virustotal/README.md").is_file());
    assert_eq!(version(&site), "0.1.0");
    ok(aerie(&site, &["audit", "verify"]));

    // Another key, unsigned, a folder, tampered bytes: each refused by name.
    let foreign = signed(&site, &folder, &mallory, "foreign.bundle");
    refused(
        aerie(&site, &["plugin", "install", &foreign, "--as", "ops"]),
        "which [trust.keys] does not list (trusted: acme)",
    );
    let unsigned = site.path().join("unsigned.bundle").display().to_string();
    ok(aerie(
        &site,
        &[
            "plugin",
            "pack",
            &folder.display().to_string(),
            "--out",
            &unsigned,
        ],
    ));
    refused(
        aerie(&site, &["plugin", "install", &unsigned, "--as", "ops"]),
        "unsigned",
    );
    refused(
        aerie(
            &site,
            &[
                "plugin",
                "install",
                &folder.display().to_string(),
                "--as",
                "ops",
            ],
        ),
        "a plugin folder is unsigned",
    );
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&bundle, bytes).unwrap();
    refused(
        aerie(&site, &["plugin", "install", &bundle, "--as", "ops"]),
        "the signature does not verify with acme's key",
    );
    refused(
        aerie(&site, &["plugin", "install", &foreign, "--as", "mallory"]),
        "`mallory` is not a user",
    );
}

#[test]
fn an_upgrade_asking_for_more_waits_for_approval_and_one_asking_less_does_not() {
    let site = Site::new();
    let key = site.path().join("acme.key");
    ok(aerie(
        &site,
        &["plugin", "keygen", "--out", &key.display().to_string()],
    ));
    site.config(&format!(
        "[users.ops]\n\n[trust.keys]\nacme = {:?}\n",
        public_key(&key)
    ));
    let first = vendor_folder(&site, "v1", |m| m);
    ok(aerie(
        &site,
        &[
            "plugin",
            "install",
            &signed(&site, &first, &key, "v1.bundle"),
            "--as",
            "ops",
        ],
    ));

    // 0.2.0 asks for a new origin and more memory: held, 0.1.0 still serves.
    let wider = vendor_folder(&site, "v2", |m| {
        m.replace("version = \"0.1.0\"", "version = \"0.2.0\"")
            .replace(
                "allow = [\"{{ base_url }}\"]",
                "allow = [\"{{ base_url }}\", \"https://telemetry.acme.example\"]",
            )
            .replace("memory_mb = 32", "memory_mb = 128")
    });
    let held = ok(aerie(
        &site,
        &[
            "plugin",
            "install",
            &signed(&site, &wider, &key, "v2.bundle"),
            "--as",
            "ops",
        ],
    ));
    assert!(
        held.stdout.contains("held: virustotal 0.2.0")
            && held
                .stdout
                .contains("+ a new origin: https://telemetry.acme.example")
            && held.stdout.contains("+ a larger memory_mb: 128 (was 32)"),
        "{}",
        held.stdout
    );
    assert_eq!(version(&site), "0.1.0");
    refused(
        aerie(&site, &["plugin", "approve", "rdap", "--as", "ops"]),
        "no upgrade of `rdap` is held",
    );
    ok(aerie(
        &site,
        &["plugin", "approve", "virustotal", "--as", "ops"],
    ));
    assert_eq!(version(&site), "0.2.0");

    // 0.3.0 asks for less than 0.2.0: straight in.
    let narrower = vendor_folder(&site, "v3", |m| {
        m.replace("version = \"0.1.0\"", "version = \"0.3.0\"")
    });
    let installed = ok(aerie(
        &site,
        &[
            "plugin",
            "install",
            &signed(&site, &narrower, &key, "v3.bundle"),
            "--as",
            "ops",
        ],
    ));
    assert!(
        installed.stdout.contains("installed virustotal 0.3.0"),
        "{}",
        installed.stdout
    );
    assert_eq!(version(&site), "0.3.0");
    let audit = ok(aerie(&site, &["audit", "verify"]));
    assert!(audit.code == 0);

    // A component that does not load is never installed.
    let broken = vendor_folder(&site, "v4", |m| {
        m.replace("version = \"0.1.0\"", "version = \"0.4.0\"")
    });
    std::fs::write(broken.join("plugin.wasm"), b"\0asm not really").unwrap();
    refused(
        aerie(
            &site,
            &[
                "plugin",
                "install",
                &signed(&site, &broken, &key, "v4.bundle"),
                "--as",
                "ops",
            ],
        ),
        "virustotal 0.4.0 would not load here",
    );
    assert_eq!(version(&site), "0.3.0");
}

#[test]
fn a_plugin_in_use_is_not_removed_and_one_unused_is() {
    let site = Site::new();
    site.shipped("virustotal").shipped("ioc-extract");
    site.config("[users.ops]\n[plugins.vt-eu]\nplugin = \"virustotal\"\n");
    refused(
        aerie(&site, &["plugin", "remove", "virustotal", "--as", "ops"]),
        "`virustotal` has instances in aerie.toml ([plugins.vt-eu])",
    );
    site.config("[users.ops]\n");
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::copy(
        repo().join("playbooks/enrich-ioc.yaml"),
        site.path().join("playbooks/enrich-ioc.yaml"),
    )
    .unwrap();
    refused(
        aerie(&site, &["plugin", "remove", "virustotal", "--as", "ops"]),
        "enrich-ioc.yaml call `virustotal`",
    );
    std::fs::remove_file(site.path().join("playbooks/enrich-ioc.yaml")).unwrap();
    let removed = ok(aerie(
        &site,
        &["plugin", "remove", "virustotal", "--as", "ops"],
    ));
    assert!(
        removed.stdout.contains("removed virustotal 0.1.0"),
        "{}",
        removed.stdout
    );
    let listed = ok(aerie(&site, &["plugin", "list"]));
    assert!(!listed.stdout.contains("virustotal"), "{}", listed.stdout);
    refused(
        aerie(&site, &["plugin", "remove", "virustotal", "--as", "ops"]),
        "no plugin `virustotal` is installed",
    );
    ok(aerie(&site, &["audit", "verify"]));
}

/// A bundle's signature is minisign's: the `minisign` tool (Debian's, which
/// `cargo xtask test` installs) verifies it, trusted comment and all, and
/// refuses the bundle once a byte is added.
#[test]
fn the_minisign_tool_verifies_what_aerie_signs() {
    let site = Site::new();
    let key = site.path().join("acme.key");
    ok(aerie(
        &site,
        &["plugin", "keygen", "--out", &key.display().to_string()],
    ));
    let bundle = signed(&site, &vendor_folder(&site, "vt", |m| m), &key, "vt.bundle");
    let verify = || {
        std::process::Command::new("minisign")
            .args(["-V", "-p", &format!("{}.pub", key.display()), "-m", &bundle])
            .output()
            .expect(
                "the minisign tool is not installed: `cargo xtask test` installs Debian's minisign",
            )
    };
    let verified = verify();
    let said = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(
        verified.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        said.contains("Trusted comment: aerie bundle virustotal 0.1.0"),
        "{said}"
    );
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes.push(b'x');
    std::fs::write(&bundle, bytes).unwrap();
    assert!(!verify().status.success());
}
