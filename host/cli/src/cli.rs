use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// aerie runs security playbooks whose integrations are sandboxed WebAssembly
/// components.
#[derive(Debug, Parser)]
#[command(name = "aerie", version, about)]
pub struct Cli {
    /// The operator config; defaults to ./aerie.toml when present, else built-in
    /// defaults.
    #[arg(long, global = true, env = "AERIE_CONFIG")]
    pub config: Option<PathBuf>,

    /// More logging on stderr (-v, -vv). AERIE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How log lines on stderr are written: `text` for a person, `json` (one
    /// object per line, with the run and step they belong to) for a log
    /// shipper.
    #[arg(long, global = true, env = "AERIE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhooks, the API and the workers that run queued runs,
    /// until SIGTERM or Ctrl-C.
    Serve {
        /// Where to listen, over `[server] listen` (port 0: any free port).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Run one playbook once and print the run.
    Run(RunArgs),
    /// Check playbooks.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// Inspect and call plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Past and current runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Decisions runs are waiting for.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Review classification runs: correct them, report on a month.
    #[command(subcommand)]
    Classify(ClassifyCommand),
    /// fastText models: train one.
    #[command(subcommand)]
    Model(ModelCommand),
    /// API tokens for scripts and the API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Cases: what belongs together, and the repeats folded into them.
    #[command(subcommand)]
    Cases(CasesCommand),
}

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Cases, newest first.
    List {
        /// `open` or `closed`.
        #[arg(long)]
        status: Option<String>,
        /// Enrichment, Investigation, Phishing, ...
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One case with its comments, observables and relations.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Open a case by hand.
    Open {
        #[arg(long)]
        title: String,
        #[arg(long = "type")]
        kind: String,
        /// low, medium (the default), high, critical.
        #[arg(long, default_value = "medium")]
        severity: String,
        #[arg(long, default_value = "")]
        description: String,
        /// `KIND:VALUE` (ip, domain, url, hash, email, host, user); repeatable.
        #[arg(long = "observable", value_name = "KIND:VALUE")]
        observables: Vec<String>,
        /// A tag; repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        assignee: Option<String>,
        /// Fold it into the case this key opened within `--window`, as
        /// `case.create`'s `dedupe` does.
        #[arg(long, value_name = "KEY", requires = "window")]
        dedupe_key: Option<String>,
        /// 5m, 1h, 7d.
        #[arg(long, requires = "dedupe_key")]
        window: Option<String>,
        /// `first` (a fixed window, the default) or `last` (a sliding gap).
        #[arg(long, requires = "dedupe_key")]
        window_from: Option<String>,
        /// drop, drop_and_comment (the default), child, link, new_and_note, suggest.
        #[arg(long, requires = "dedupe_key")]
        strategy: Option<String>,
        /// Print what happened as JSON (`case.create`'s output).
        #[arg(long)]
        json: bool,
        /// Who opens it: a user of [users].
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Change fields of an open case; observables are added.
    Update {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, conflicts_with = "unassign")]
        assignee: Option<String>,
        /// Leave the case with nobody assigned.
        #[arg(long)]
        unassign: bool,
        /// The case's tags, all of them (repeatable; replaces those it had).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// `KIND:VALUE`, added; repeatable.
        #[arg(long = "observable", value_name = "KIND:VALUE")]
        observables: Vec<String>,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Add a task to a case's checklist, or mark one done.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["add", "done", "undone"])))]
    Task {
        id: String,
        /// A new task's title.
        #[arg(long, value_name = "TITLE")]
        add: Option<String>,
        /// Mark task N done.
        #[arg(long, value_name = "N")]
        done: Option<i64>,
        /// Mark task N not done again.
        #[arg(long, value_name = "N")]
        undone: Option<i64>,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// The open cases most like this one by shared observables.
    Similar {
        id: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Mark an observable as saying nothing about which cases belong
    /// together (the proxy's address, the company's domain).
    Ignore {
        #[arg(value_name = "KIND:VALUE")]
        observable: String,
        #[arg(long)]
        reason: Option<String>,
        /// Count it again.
        #[arg(long)]
        undo: bool,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Comment on a case.
    Comment {
        id: String,
        #[arg(long)]
        text: String,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Close a case with a resolution (`benign`, `escalated`, `duplicate`, ...).
    Close {
        id: String,
        #[arg(long)]
        resolution: String,
        /// Close it as this case's duplicate, linking the two.
        #[arg(long, value_name = "ID")]
        duplicate_of: Option<String>,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Link case A to case B.
    Link {
        a: String,
        b: String,
        /// `linked` (the default), `duplicate`, `possibly_related`, ...
        #[arg(long, default_value = "linked")]
        kind: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token acting as USER and print it, once: the store keeps only
    /// its hash.
    Create {
        /// The user the token acts as (approvals are that user's).
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// How long it is valid: `30d`, `12h` (default: until revoked).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Train a supervised fastText model and write it as a .bin the official
    /// fastText (and the fasttext plugin) loads.
    Train(TrainArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: one example per line, `__label__NAME` tokens and text.
    #[arg(long, required_unless_present = "from_corrections")]
    pub input: Option<PathBuf>,
    /// Add every corrected or confirmed classification in the store.
    #[arg(long)]
    pub from_corrections: bool,
    /// The classifying playbook whose runs --from-corrections reads.
    #[arg(long, default_value = "recategorise-email")]
    pub playbook: String,
    #[arg(long)]
    pub output: PathBuf,
    /// Lines to measure precision at one on after training.
    #[arg(long)]
    pub test: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub epoch: u32,
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    #[arg(long, default_value_t = 100)]
    pub dim: usize,
    #[arg(long, default_value_t = 1)]
    pub word_ngrams: u32,
    #[arg(long, default_value_t = 0)]
    pub minn: u32,
    #[arg(long, default_value_t = 0)]
    pub maxn: u32,
    #[arg(long, value_enum, default_value = "softmax")]
    pub loss: LossArg,
    #[arg(long, default_value_t = 2_000_000)]
    pub bucket: u32,
    /// Training threads; default: the CPUs.
    #[arg(long)]
    pub thread: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub min_count: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LossArg {
    Softmax,
    Hs,
    Ova,
    Ns,
}

#[derive(Debug, Subcommand)]
pub enum ClassifyCommand {
    /// Record the label a classification run should have given (the same label
    /// confirms it).
    Correct {
        run_id: String,
        #[arg(long)]
        label: String,
        /// Who corrects: a user from [users] in aerie.toml.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// Accept a label the classifiers do not know yet (a new category
        /// for the next training).
        #[arg(long)]
        new: bool,
    },
    /// A month's classifications: how each was decided, corrections, accuracy,
    /// per-label precision and recall, and the confusion matrix.
    Report {
        /// YYYY-MM
        #[arg(long)]
        month: String,
        /// The classifying playbook.
        #[arg(long, default_value = "recategorise-email")]
        playbook: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending approvals, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve; once enough approvers have, the run goes on in this process.
    Approve(Decision),
    /// Reject; the run goes on with `approved: false`.
    Reject(Decision),
}

#[derive(Debug, Args)]
pub struct Decision {
    pub id: String,
    /// Who decides: a user from [users] in aerie.toml.
    #[arg(long = "as", value_name = "USER")]
    pub user: String,
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The most recent runs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run with its steps.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Finish runs whose process died: every running run whose lease expired,
    /// or only ID. Steps that succeeded are not run again.
    Resume {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; name the first entry that does not match, and
    /// check it against the latest signed checkpoint when `[audit]` is set (exit 1).
    Verify,
    /// Sign a checkpoint of the chain now, append it to `[audit] checkpoints`
    /// and print it, for an external witness.
    Checkpoint,
    /// Write a new checkpoint signing key to FILE (and its public key to FILE.pub).
    Keygen {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// A run as a checklist a person reads: every step, what ran it, when, how
    /// long, what came out.
    Export {
        #[arg(long)]
        run: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Md)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Md,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A playbook file, or the name of one in the playbooks folder.
    pub playbook: String,
    /// The playbook's inputs: JSON, or @FILE (@- for stdin).
    #[arg(long)]
    pub input: Option<String>,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Check playbooks; print every error as file:line:column and exit 1 if any.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// What is installed.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A plugin's world, actions and schemas, allowed origins, credentials (never
    /// their values), limits and component hash.
    Inspect {
        /// An installed plugin's name, or a plugin folder or plugin.toml path.
        plugin: String,
        #[arg(long)]
        json: bool,
    },
    /// Call one action and print its JSON result.
    Call {
        plugin: String,
        action: String,
        /// The action's input: JSON, or @FILE (@- for stdin).
        #[arg(long, conflicts_with = "jsonl")]
        input: Option<String>,
        /// Read one JSON input per stdin line; print one JSON result per line, in
        /// order. A failed line prints {"error": {"code", "message"}} and the
        /// command exits 1 at the end.
        #[arg(long)]
        jsonl: bool,
    },
    /// Make a signing key: KEY (secret) and KEY.pub (minisign format).
    Keygen {
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
    },
    /// Pack a built plugin folder into one bundle file.
    Pack {
        dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a bundle: writes FILE.minisig.
    Sign {
        file: PathBuf,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Install a bundle (checked against [trust]) or a plugin folder into the
    /// plugins folder; an upgrade asking for more is held for approval.
    Install {
        path: PathBuf,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Install a held upgrade, approving what it newly asks for.
    Approve {
        name: String,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Uninstall a plugin no playbook or instance uses.
    Remove {
        name: String,
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
}
