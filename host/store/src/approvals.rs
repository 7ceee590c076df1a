//! Approvals: opened by the engine when a run reaches an `approval` step,
//! decided by people through the CLI, and timed out by their deadline.
//!
//! A decision that settles an approval puts its run back in the queue
//! (`running`, lease expired), so the deciding process — or any other — resumes
//! it.

use crate::error::{Doing as _, Result};
use aerie_engine::{
    ApprovalRequest, ApprovalState, Decider, OnTimeout, Outcome, RunRecord, epoch_ms, tally,
};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use aerie_engine::now;

use sqlx::AnyConnection;

use crate::audit::{self, Head};
use crate::{Store, Tx};

/// An approval as `aerie approvals list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: String,
    pub run_id: String,
    pub step_id: String,
    pub message: String,
    pub approvers: Vec<String>,
    pub required: i64,
    pub approvals: Vec<String>,
    pub deadline_ms: Option<i64>,
    pub status: String,
}

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no approval `{0}`")]
    Unknown(String),
    #[error("approval `{id}` is already {status}")]
    Settled { id: String, status: String },
    #[error("{user} may not decide approval `{id}`: the approvers are {approvers}")]
    NotApprover {
        id: String,
        user: String,
        approvers: String,
    },
    #[error("{user} has already decided approval `{id}`")]
    Twice { id: String, user: String },
}

fn on_timeout_text(on_timeout: OnTimeout) -> &'static str {
    match on_timeout {
        OnTimeout::Reject => "reject",
        OnTimeout::Approve => "approve",
    }
}

impl Store {
    pub(crate) async fn open_approval(
        &self,
        run_id: &str,
        step_id: &str,
        request: &ApprovalRequest,
    ) -> Result<ApprovalState> {
        let mut tx = self.write().await?;
        let mut head = Head::default();
        let existing = sqlx::query("SELECT id FROM approvals WHERE run_id = $1 AND step_id = $2")
            .bind(run_id)
            .bind(step_id)
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_none() {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO approvals (id, run_id, step_id, message, approvers, required, deadline_ms, on_timeout,
                                        status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
            )
            .bind(&id)
            .bind(run_id)
            .bind(step_id)
            .bind(&request.message)
            .bind(serde_json::to_string(&request.approvers)?)
            .bind(request.required as i64)
            .bind(request.deadline_ms)
            .bind(on_timeout_text(request.on_timeout))
            .bind(now())
            .execute(&mut *tx)
            .await
            .doing("opening the approval")?;
            let body = json!({ "approval": id, "step": step_id, "request": request });
            audit::append(&mut tx, &mut head, run_id, "approval.requested", &body).await?;
        }
        expire(&mut tx, &mut head, Some(run_id)).await?;
        let state = state(&mut tx, run_id, step_id).await?;
        tx.commit().await?;
        Ok(state)
    }

    pub(crate) async fn mark_waiting(&self, run: &RunRecord) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE runs SET status = 'waiting', lease_owner = NULL, lease_until = NULL WHERE id = $1")
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            &mut audit::Head::default(),
            &run.id,
            "run.waiting",
            &json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Decides every pending approval past its deadline by its `on_timeout`,
    /// which puts its run back in the queue: the server does it on a timer,
    /// `aerie resume` before it claims.
    /// Returns how many were decided.
    pub async fn expire_approvals(&self) -> Result<u64> {
        let settled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = settled.clone();
        self.writer
            .submit(Box::new(move |conn, head| {
                let counted = counted.clone();
                Box::pin(async move {
                    let n = expire(conn, head, None).await?;
                    counted.store(n, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                })
            }))
            .await?;
        let settled = settled.load(std::sync::atomic::Ordering::Relaxed);
        if settled > 0 {
            self.resumable();
        }
        Ok(settled)
    }

    /// Pending approvals, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<Approval>> {
        let mut tx = self.write().await?;
        let timed_out = expire(&mut tx, &mut Head::default(), None).await?;
        tx.commit().await?;
        if timed_out > 0 {
            self.resumable();
        }
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, message, approvers, required, deadline_ms, status
             FROM approvals WHERE status = 'pending' ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let approvals = sqlx::query_scalar(
                "SELECT \"user\" FROM approval_decisions WHERE approval_id = $1 AND approve = 1 ORDER BY at",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            pending.push(Approval {
                id,
                run_id: r.try_get("run_id")?,
                step_id: r.try_get("step_id")?,
                message: r.try_get("message")?,
                approvers: serde_json::from_str(r.try_get::<&str, _>("approvers")?)?,
                required: r.try_get("required")?,
                approvals,
                deadline_ms: r.try_get("deadline_ms")?,
                status: r.try_get("status")?,
            });
        }
        Ok(pending)
    }

    /// Records `decider`'s decision, if the engine's rules let them decide.
    /// Returns the approval's run when the decision settled it (by the
    /// engine's tally), so the caller can resume the run.
    pub async fn decide(
        &self,
        approval_id: &str,
        decider: Decider<'_>,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<Option<String>> {
        let user = decider.user;
        let mut tx = self.write().await?;
        let mut head = Head::default();
        let timed_out = expire(&mut tx, &mut head, None).await?;
        let Some(row) = sqlx::query(
            "SELECT run_id, step_id, approvers, required, status FROM approvals WHERE id = $1",
        )
        .bind(approval_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(DecisionError::Unknown(approval_id.to_owned()).into());
        };
        let run_id: String = row.try_get("run_id")?;
        let status: String = row.try_get("status")?;
        if status != "pending" {
            return Err(DecisionError::Settled {
                id: approval_id.to_owned(),
                status,
            }
            .into());
        }
        let approvers: Vec<String> = serde_json::from_str(row.try_get::<&str, _>("approvers")?)?;
        if !decider.may_decide(&approvers) {
            return Err(DecisionError::NotApprover {
                id: approval_id.to_owned(),
                user: user.to_owned(),
                approvers: approvers.join(", "),
            }
            .into());
        }
        let inserted = sqlx::query(
            "INSERT INTO approval_decisions (approval_id, \"user\", approve, comment, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(approval_id)
        .bind(user)
        .bind(i64::from(approve))
        .bind(comment)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(DecisionError::Twice {
                id: approval_id.to_owned(),
                user: user.to_owned(),
            }
            .into());
        }
        let body = json!({ "approval": approval_id, "user": user, "approve": approve, "comment": comment });
        audit::append(&mut tx, &mut head, &run_id, "approval.decided", &body).await?;

        let decisions: Vec<i64> =
            sqlx::query_scalar("SELECT approve FROM approval_decisions WHERE approval_id = $1")
                .bind(approval_id)
                .fetch_all(&mut *tx)
                .await?;
        let decisions: Vec<bool> = decisions.into_iter().map(|approve| approve == 1).collect();
        let required = u32::try_from(row.try_get::<i64, _>("required")?).unwrap_or(u32::MAX);
        let settled = tally(required, &decisions);
        if let Some(outcome) = settled {
            settle(&mut tx, &mut head, approval_id, &run_id, outcome, comment).await?;
        }
        tx.commit().await?;
        if settled.is_some() || timed_out > 0 {
            self.resumable();
        }
        Ok(settled.map(|_| run_id))
    }
}

/// Sets the approval's outcome and hands its run back to the queue.
async fn settle(
    conn: &mut AnyConnection,
    head: &mut Head,
    approval_id: &str,
    run_id: &str,
    outcome: Outcome,
    comment: Option<&str>,
) -> Result<bool> {
    let outcome = outcome.as_str();
    // Only a pending approval settles: on PostgreSQL two hosts may find the
    // same approval past its deadline, and the second one's update waits for the
    // first and then matches nothing.
    let settled = sqlx::query(
        "UPDATE approvals SET status = $1, comment = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
    )
    .bind(outcome)
    .bind(comment)
    .bind(now())
    .bind(approval_id)
    .execute(&mut *conn)
    .await?;
    if settled.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE runs SET status = 'running', lease_owner = NULL, lease_until = 0 WHERE id = $1 AND status = 'waiting'")
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    audit::append(
        conn,
        head,
        run_id,
        "approval.settled",
        &json!({ "approval": approval_id, "outcome": outcome }),
    )
    .await?;
    Ok(true)
}

/// Decides every pending approval past its deadline by its `on_timeout`;
/// returns how many.
pub(crate) async fn expire(
    conn: &mut AnyConnection,
    head: &mut Head,
    run_id: Option<&str>,
) -> Result<u64> {
    let due = sqlx::query(
        "SELECT id, run_id, on_timeout FROM approvals
         WHERE status = 'pending' AND deadline_ms IS NOT NULL AND deadline_ms <= $1 AND ($2 IS NULL OR run_id = $2)",
    )
    .bind(epoch_ms())
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut settled = 0;
    for row in due {
        let on_timeout = if row.try_get::<&str, _>("on_timeout")? == "approve" {
            OnTimeout::Approve
        } else {
            OnTimeout::Reject
        };
        let outcome = Outcome::on_timeout(on_timeout);
        let decided = settle(
            conn,
            head,
            row.try_get("id")?,
            row.try_get("run_id")?,
            outcome,
            Some("timed out"),
        )
        .await?;
        settled += u64::from(decided);
    }
    Ok(settled)
}

/// The approval's state as the engine sees it.
async fn state(tx: &mut Tx<'_>, run_id: &str, step_id: &str) -> Result<ApprovalState> {
    let row =
        sqlx::query("SELECT id, status, comment FROM approvals WHERE run_id = $1 AND step_id = $2")
            .bind(run_id)
            .bind(step_id)
            .fetch_one(&mut **tx)
            .await?;
    let status: String = row.try_get("status")?;
    if status == "pending" {
        return Ok(ApprovalState::Pending);
    }
    let decided_by: Vec<String> = sqlx::query_scalar(
        "SELECT \"user\" FROM approval_decisions WHERE approval_id = $1 ORDER BY at, \"user\"",
    )
    .bind(row.try_get::<&str, _>("id")?)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ApprovalState::Decided {
        approved: status == "approved",
        decided_by,
        comment: row.try_get("comment")?,
    })
}
