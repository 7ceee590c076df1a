//! The guest's stderr, kept (up to a cap) to explain a panic.
//!
//! wasmtime's `MemoryOutputPipe` traps the guest once its capacity is full, so a
//! chatty plugin would fail for printing. This pipe keeps the first
//! [`Stderr::CAPACITY`] bytes and drops the rest; the guest never notices.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::budget::{Budget, Charge};

#[derive(Debug, Clone)]
pub(crate) struct Stderr {
    kept: Arc<Mutex<Vec<u8>>>,
    /// What is kept is charged to the call's budget; past it, the rest is
    /// dropped like what passes the capacity.
    budget: Arc<Budget>,
}

impl Stderr {
    pub(crate) const CAPACITY: usize = 64 * 1024;

    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Stderr {
            kept: Arc::default(),
            budget,
        }
    }

    /// What the guest wrote, up to the cap.
    pub(crate) fn contents(&self) -> Vec<u8> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets what was written: a warm instance starts each call afresh.
    pub(crate) fn clear(&self) {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl IsTerminal for Stderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Stderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Stderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = Self::CAPACITY.saturating_sub(kept.len());
        let keep = buf.len().min(room);
        if keep > 0 && self.budget.charge(Charge::Stderr, keep).is_ok() {
            kept.extend_from_slice(&buf[..keep]);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
