use std::path::PathBuf;

use aerie_contract::ErrorCode;

/// Why a plugin could not be loaded. Each names the plugin (or its file) and what
/// to change.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] aerie_manifest::Error),
    #[error("{}: {message}", path.display())]
    Component { path: PathBuf, message: String },
    /// The component imports something its world or manifest does not allow.
    #[error("plugin `{plugin}` (world {world}) imports `{import}`: {why}")]
    Import {
        plugin: String,
        world: &'static str,
        import: String,
        why: String,
    },
    /// The operator's grant or the manifest's templates do not fit together.
    #[error("plugin `{plugin}`: {message}")]
    Grant { plugin: String, message: String },
    /// A setting the plugin needs has no default and the site sets none: the
    /// plugin is fine, this site has not configured it yet.
    #[error("plugin `{plugin}`: {}", crate::grant::unset(plugin, setting))]
    Unconfigured { plugin: String, setting: String },
}

/// Why one call failed. `plugin` and `action` say where; [`Fault`] says who is
/// to blame: the plugin's own report, a host refusal, or the sandbox stopping it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{plugin}.{action}: {fault}")]
pub struct CallError {
    pub plugin: String,
    pub action: String,
    pub fault: Fault,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    /// The plugin returned an error (code from the WIT `error-code`).
    #[error("{code}: {message}")]
    Reported {
        code: ErrorCode,
        message: String,
        retryable: bool,
    },
    /// The broker refused a request by policy; nothing was sent.
    #[error("denied: {0}")]
    Denied(String),
    /// The input does not match the action's schema; the plugin was not run.
    #[error("invalid-input: {0}")]
    InvalidInput(String),
    #[error("no action `{action}`; the plugin offers: {offered}")]
    UnknownAction { action: String, offered: String },
    #[error("timeout: stopped after its {0} ms deadline")]
    Deadline(u64),
    #[error("internal: stopped at its memory limit of {0} MiB")]
    Memory(u32),
    /// The plugin made the host hold more for it than its budget allows.
    #[error("internal: stopped: {0}")]
    HostMemory(String),
    #[error("internal: stack overflow (unbounded recursion?)")]
    StackOverflow,
    #[error("internal: plugin panicked: {0}")]
    Panic(String),
    #[error("internal: plugin trapped: {0}")]
    Trap(String),
    /// The operator's configuration does not let the plugin run (a bound secret
    /// cannot be read).
    #[error("internal: not configured: {0}")]
    Unconfigured(String),
    /// The host could not run the plugin at all (instantiation failed).
    #[error("internal: {0}")]
    Host(String),
}

impl Fault {
    /// The kind, as `/metrics` labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Reported { .. } => "reported",
            Fault::Denied(_) => "denied",
            Fault::InvalidInput(_) => "invalid_input",
            Fault::UnknownAction { .. } => "unknown_action",
            Fault::Deadline(_) => "deadline",
            Fault::Memory(_) => "memory",
            Fault::HostMemory(_) => "host_memory",
            Fault::StackOverflow => "stack_overflow",
            Fault::Panic(_) => "panic",
            Fault::Trap(_) => "trap",
            Fault::Unconfigured(_) => "unconfigured",
            Fault::Host(_) => "host",
        }
    }
}

impl CallError {
    /// The error code as the WIT spells it, so that policy, plugin bugs and
    /// upstream failures stay distinguishable for the playbook and the analyst.
    pub fn code(&self) -> ErrorCode {
        match &self.fault {
            Fault::Reported { code, .. } => *code,
            Fault::Denied(_) => ErrorCode::Denied,
            Fault::InvalidInput(_) | Fault::UnknownAction { .. } => ErrorCode::InvalidInput,
            Fault::Deadline(_) => ErrorCode::Timeout,
            Fault::Memory(_)
            | Fault::HostMemory(_)
            | Fault::StackOverflow
            | Fault::Panic(_)
            | Fault::Trap(_)
            | Fault::Unconfigured(_)
            | Fault::Host(_) => ErrorCode::Internal,
        }
    }

    /// Whether trying again may help: only what the plugin itself marked so.
    pub fn retryable(&self) -> bool {
        matches!(
            self.fault,
            Fault::Reported {
                retryable: true,
                ..
            }
        )
    }

    /// The message without the `plugin.action: code:` prefix.
    pub fn message(&self) -> String {
        let full = self.fault.to_string();
        let prefix = format!("{}: ", self.code());
        full.strip_prefix(&prefix)
            .map(str::to_owned)
            .unwrap_or(full)
    }
}
