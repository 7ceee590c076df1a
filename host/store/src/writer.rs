//! Group commit: one task owns the write path and folds every write that is
//! waiting into one transaction.
//!
//! A durable run writes its state at every step; with many runs in flight, a
//! transaction per write queues them all on SQLite's single writer. Here each
//! write still waits until its own change is committed — durability is the same
//! — but the writes of concurrent runs share a commit. Writes fail rarely (a
//! bug, a full disk); when one in a batch does, the batch is rolled back and
//! each write is run again in a transaction of its own, so only the failing one
//! is lost and reported to its caller.

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;

use crate::Backend;
use crate::audit::{self, Head};
use crate::error::{Result, StoreError};
use crate::wal::Checkpoints;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

/// One write: statements run on the writer's connection, inside its transaction,
/// with the audit chain's head as that transaction knows it. `Fn`, because a
/// write may run twice (see the module docs).
pub(crate) type Op = Box<
    dyn for<'c> Fn(&'c mut AnyConnection, &'c mut Head) -> BoxFuture<'c, Result<()>> + Send + Sync,
>;

struct Job {
    op: Op,
    done: oneshot::Sender<Result<()>>,
}

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        let wal = (backend == Backend::Sqlite).then(|| Checkpoints::new(pool.clone()));
        tokio::spawn(run(pool, queue, wal));
        Writer { jobs }
    }

    /// Runs `op` in the next transaction; returns once it is committed.
    pub(crate) async fn submit(&self, op: Op) -> Result<()> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job { op, done })
            .map_err(|_| StoreError::WriterStopped)?;
        committed.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<Job>, mut wal: Option<Checkpoints>) {
    // The writer keeps its connection between batches.
    let mut held: Option<PoolConnection<Any>> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if held.is_none() {
            held = pool.acquire().await.ok();
        }
        let outcome = match held.as_mut() {
            Some(conn) => commit(conn, &mut batch).await,
            None => failed(batch.len(), "no database connection".to_owned()),
        };
        if outcome.commit.is_err() {
            // Start the next batch on a fresh connection.
            held = None;
        } else if let Some(wal) = wal.as_mut() {
            wal.committed();
        }
        for (job, result) in batch.into_iter().zip(outcome.results) {
            let result = match &outcome.commit {
                Ok(()) => result,
                Err(e) => Err(StoreError::Write(format!("committing: {e}"))),
            };
            // The caller may have gone (its run was cancelled); nothing to tell.
            let _ = job.done.send(result);
        }
    }
}

struct Outcome {
    results: Vec<Result<()>>,
    commit: Result<(), String>,
}

fn failed(jobs: usize, e: String) -> Outcome {
    Outcome {
        results: (0..jobs)
            .map(|_| Err(StoreError::Write(e.clone())))
            .collect(),
        commit: Err(e),
    }
}

async fn commit(conn: &mut AnyConnection, batch: &mut [Job]) -> Outcome {
    let jobs = batch.len();
    let all = transaction(conn, batch.iter().map(|job| &job.op)).await;
    match all {
        Ok(results) if results.iter().all(Result::is_ok) => Outcome {
            results,
            commit: Ok(()),
        },
        // Only one write: its own error is the answer.
        Ok(results) if jobs == 1 => Outcome {
            results,
            commit: Ok(()),
        },
        Err(e) if jobs == 1 => failed(1, e),
        // Something failed: each write again, alone.
        _ => {
            let mut results = Vec::with_capacity(jobs);
            for job in batch.iter() {
                let result = match transaction(conn, std::iter::once(&job.op)).await {
                    Ok(mut one) => one.pop().unwrap_or(Ok(())),
                    Err(e) => Err(StoreError::Write(e.to_string())),
                };
                results.push(result);
            }
            Outcome {
                results,
                commit: Ok(()),
            }
        }
    }
}

/// Runs `ops` in one transaction and commits if every one succeeded, else rolls
/// back. The outer error is a failure of the transaction itself. On SQLite the
/// transaction is IMMEDIATE — the write lock from the start, so no other process
/// extends the audit chain between reading its head and appending; PostgreSQL
/// takes the chain's lock at the first append instead.
async fn transaction<'o>(
    conn: &mut AnyConnection,
    ops: impl Iterator<Item = &'o Op>,
) -> Result<Vec<Result<()>>, String> {
    let begin = match Backend::of(conn) {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    sqlx::query(begin)
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Head::buffered();
    let mut results = Vec::new();
    for op in ops {
        let result = op(conn, &mut head).await;
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    let end = if results.iter().all(Result::is_ok) {
        if let Err(e) = audit::flush(conn, &mut head).await {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(e.to_string());
        }
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    if let Err(e) = sqlx::query(end).execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err(e.to_string());
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(x: i64) -> Op {
        Box::new(move |conn, _| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(x)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
    }

    #[tokio::test]
    async fn a_failing_write_is_undone_alone_and_the_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        sqlx::any::install_default_drivers();
        let pool = AnyPool::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        let writer = Writer::start(pool.clone(), Backend::Sqlite);

        // Submitted together, so the writer takes them as one batch.
        let (a, b, c) = tokio::join!(
            writer.submit(insert(1)),
            writer.submit(insert(1)),
            writer.submit(insert(2))
        );
        assert!(a.is_ok());
        let b = b.unwrap_err();
        let cause = std::error::Error::source(&b).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("UNIQUE constraint failed")),
            "{b}: {cause:?}"
        );
        assert!(c.is_ok());
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows, [1, 2]);

        // Alone, a failing write rolls back and the next one still works.
        assert!(writer.submit(insert(2)).await.is_err());
        writer.submit(insert(3)).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 3);
    }
}
