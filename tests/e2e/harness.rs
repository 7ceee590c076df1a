//! A throw-away aerie site per test: a folder with `plugins/` and `aerie.toml`,
//! the shared runtime, and the `aerie` binary pointed at the folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock};

use aerie_manifest::Config;
use aerie_runtime::{Plugin, Registry, Runtime, RuntimeOptions};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The target folder this test binary was built into (`…/target/debug`'s parent).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/e2e-HASH
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// The built component for the crate `name`.
pub fn wasm(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let dir = std::env::var_os("AERIE_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm32-wasip2").join("plugin"));
    let path = dir.join(&file);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo xtask test`, which builds the plugins first",
        path.display()
    );
    path
}

/// The `aerie` binary built next to this test.
pub fn aerie_bin() -> PathBuf {
    let path = target_dir().join("debug").join("aerie");
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask test` builds it",
        path.display()
    );
    path
}

/// One runtime for all tests: compiling is cached, and each runtime reserves
/// address space for its instance pool.
pub fn runtime() -> Runtime {
    static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
        Runtime::new(&RuntimeOptions {
            cache_dir: Some(target_dir().join("aerie-test-cache")),
        })
        .unwrap()
    });
    RUNTIME.clone()
}

pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(site.path().join("plugins")).unwrap();
        site
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Installs `wasm` under `plugins/<folder>/` with the given manifest.
    pub fn plugin(&self, folder: &str, manifest: &str, wasm: &Path) -> &Self {
        let dir = self.path().join("plugins").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
        std::fs::copy(wasm, dir.join("plugin.wasm")).unwrap();
        self
    }

    /// Installs one of the repository's plugins as shipped.
    pub fn shipped(&self, name: &str) -> &Self {
        let manifest =
            std::fs::read_to_string(repo().join("plugins").join(name).join("plugin.toml")).unwrap();
        self.plugin(name, &manifest, &wasm(name))
    }

    /// Installs every plugin the repository ships (each folder of
    /// `plugins/`), as shipped; returns their names.
    pub fn shipped_all(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(repo().join("plugins"))
            .unwrap()
            .flatten()
            .filter(|entry| entry.path().join("plugin.toml").is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            self.shipped(name);
        }
        names
    }

    /// Installs the hostile test plugin, with `patch` applied to its manifest.
    pub fn hostile(&self, folder: &str, patch: impl FnOnce(String) -> String) -> &Self {
        let manifest =
            std::fs::read_to_string(repo().join("tests/plugins/hostile/plugin.toml")).unwrap();
        self.plugin(folder, &patch(manifest), &wasm("hostile"))
    }

    /// The hostile plugin granted `origin`, its `api_key` credential applied
    /// as `apply` (a manifest `apply` value) and bound to a file holding
    /// `secret`.
    pub async fn hostile_with_credential(
        &self,
        apply: &str,
        origin: &str,
        secret: &str,
    ) -> Arc<Plugin> {
        let key = self.file("key", secret);
        self.hostile("hostile", |m| {
            m.replace(
                r#"apply = { header = "x-apikey" }"#,
                &format!("apply = {apply}"),
            )
        })
        .config(&grant("hostile", origin, &key_file(&key)));
        self.load("hostile").await
    }

    pub fn config(&self, toml: &str) -> &Self {
        std::fs::write(self.path().join("aerie.toml"), toml).unwrap();
        self
    }

    /// Writes a file in the site and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn parsed_config(&self) -> Config {
        let path = self.path().join("aerie.toml");
        let mut config = if path.is_file() {
            Config::from_file(&path).unwrap()
        } else {
            Config::default()
        };
        config.plugins_dir = self.path().join("plugins");
        config.data_dir = self.path().join(".aerie");
        config
    }

    pub fn registry(&self) -> Registry {
        Registry::open(runtime(), &self.parsed_config()).unwrap()
    }

    pub async fn load(&self, name: &str) -> Arc<Plugin> {
        match self.registry().load(name).await {
            Ok(plugin) => plugin,
            Err(e) => panic!("loading {name}: {e}"),
        }
    }

    /// A connection to the site's SQLite store with the audit trail's
    /// triggers dropped: what someone holding the database file can do.
    pub async fn tamper(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", self.path().join(".aerie/aerie.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for trigger in ["audit_no_update", "audit_no_delete"] {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn
    }

    /// The `aerie` binary, run inside the site.
    pub fn aerie(&self) -> Command {
        let mut command = Command::new(aerie_bin());
        command
            .current_dir(self.path())
            .env_remove("AERIE_CONFIG")
            .env_remove("AERIE_LOG");
        command
    }
}

/// The `aerie.toml` section granting `plugin` the origin of a local stand-in:
/// its `base_url` setting and an operator `allow` entry (loopback needs one),
/// followed by `extra` lines of the same section.
pub fn grant(plugin: &str, origin: &str, extra: &str) -> String {
    format!(
        "[plugins.{plugin}]\nsettings = {{ base_url = {origin:?} }}\nallow = [{origin:?}]\n{extra}"
    )
}

/// The credential line binding `api_key` to the secret in `path`.
pub fn key_file(path: &Path) -> String {
    format!(
        "credentials.api_key = {{ file = {:?} }}\n",
        path.display().to_string()
    )
}

/// Output of a finished command, for assertions.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Ran {
    let out = command.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn run_with_stdin(command: &mut Command, stdin: &str) -> Ran {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `command` and returns its output with the peak resident memory of
/// its process in KiB, as the kernel counted it (`wait4`'s `ru_maxrss`).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which std does not offer with its rusage"
)]
pub fn run_measured(command: &mut Command) -> (Ran, u64) {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (std's Child is never
    // waited on after this), and both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let ran = Ran {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (ran, usage.ru_maxrss as u64)
}

/// The plugin's own error for `action` with `input` — its code, message and
/// whether a retry may help; anything else (success, a denial, a trap) fails
/// the test.
pub async fn reported(
    plugin: &Plugin,
    action: &str,
    input: serde_json::Value,
) -> (aerie_engine::ErrorCode, String, bool) {
    match plugin.call(action, &input).await.result {
        Err(aerie_runtime::CallError {
            fault:
                aerie_runtime::Fault::Reported {
                    code,
                    message,
                    retryable,
                },
            ..
        }) => (code, message, retryable),
        other => panic!("{action} {input}: not the plugin's own error: {other:?}"),
    }
}
