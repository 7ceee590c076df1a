//! Every SQL statement aerie runs: the sqlx pool, migrations, and the engine's
//! [`aerie_engine::RunStore`] trait (`run_store`); reading runs back (`runs`).
//!
//! SQLite (a file under the data folder) is the embedded default; PostgreSQL is
//! the same queries through sqlx's `Any` driver, with migrations of its own, and
//! lets several hosts share one queue of runs. Writes happen as a run
//! progresses, so a run's state on disk is never behind by more than the step in
//! flight.

use std::path::Path;

use error::Doing as _;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Connection as _, Executor as _};

pub mod approvals;
pub mod audit;
pub mod cases;
pub mod checkpoint;
mod claim;
pub mod classify;
mod error;
pub mod queue;
mod run_store;
mod runs;
pub use runs::RunFilter;
pub mod schedules;
pub mod tokens;
mod wal;
mod writer;

pub use approvals::{Approval, DecisionError};
pub use cases::{
    CaseChange, CaseError, CaseFilter, CaseUpdate, Created, Dedupe, Find, NewCase, Observable,
    Similar, Strategy, WindowFrom,
};

pub use audit::{AuditEntry, Verification};
pub use checkpoint::Checkpoint;
pub use classify::{Classification, CorrectionError};
pub use error::{Result, StoreError};
pub use queue::{Enqueued, Fold, Guard, Replay};
pub use schedules::Tick;
pub use tokens::TokenInfo;

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a URL names. The queries are the same for both (numbered
/// `$N` parameters, text timestamps and JSON); the few statements that differ
/// ask [`Backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(conn: &sqlx::AnyConnection) -> Backend {
        match conn.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: writer::Writer,
    /// When a claim last looked for runs whose lease expired and found none
    /// (epoch ms; see `claim`).
    quiet: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Who a case opened without an assignee goes to.
    assignment: std::sync::Arc<aerie_engine::Assignment>,
}

/// A run as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub id: String,
    pub playbook: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Store {
    /// Opens the database at `url` and migrates it: `sqlite://PATH` (the file
    /// and its folder are created if needed) or `postgres://USER@HOST/DB`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .doing_with(|| format!("creating {}", dir.display()))?;
            }
            let create = if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            };
            (Backend::Sqlite, format!("{url}{create}"))
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let shown = redact_password(&url);
        // One connection first: the pool would retry a refused connection until
        // its timeout and then report only that it timed out.
        sqlx::AnyConnection::connect(&url)
            .await
            .doing_with(|| format!("opening the store {shown}"))?
            .close()
            .await?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers (the CLI, the UI) never block the writer;
                        // the writer checkpoints it beside its commits (`wal`).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA wal_autocheckpoint = 0;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .doing_with(|| format!("opening the store {shown}"))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        migrator
            .run(&pool)
            .await
            .doing_with(|| format!("migrating the store {shown}"))?;
        Ok(Store {
            writer: writer::Writer::start(pool.clone(), backend),
            pool,
            backend,
            quiet: Default::default(),
            assignment: Default::default(),
        })
    }

    /// The store, assigning the cases opened through it by `assignment`
    /// (the site's `[[cases.assign]]` rules).
    pub fn with_assignment(mut self, assignment: aerie_engine::Assignment) -> Store {
        self.assignment = std::sync::Arc::new(assignment);
        self
    }
}

/// `url` with its password, if any, replaced by `***`: store URLs appear in errors.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Store {
    /// A write transaction that extends the audit chain: no other writer, in
    /// this process or another, runs between its reading the chain's head and
    /// its commit. SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL
    /// takes the chain's advisory lock.
    async fn write(&self) -> Result<Tx<'static>> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .doing("starting a write")?;
        audit::lock_chain(&mut tx).await?;
        Ok(tx)
    }
}
