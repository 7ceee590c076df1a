//! A call's store: the WASI context (no sockets, the read-only data folder),
//! the broker, settings, logs and the memory limiter, armed with the call's
//! CPU deadline.

use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;

use super::{DATA_MOUNT, Plugin};
use crate::broker::{Broker, Journal};
use crate::budget::Budget;
use crate::runtime::EPOCH_TICK;
use crate::state::{CallState, MemoryLimiter};

/// Most resources (handles: header sets, requests, streams, pollables) a
/// guest may hold at once. A normal call holds a few dozen; wasmtime's default
/// is a million.
pub(crate) const MAX_RESOURCES: usize = 10_000;

impl Plugin {
    pub(super) fn new_store(&self) -> anyhow::Result<(Store<CallState>, Arc<Mutex<Journal>>)> {
        let budget = Arc::new(Budget::new(self.limits.memory_bytes()));
        let stderr = crate::stderr::Stderr::new(budget.clone());
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false);
        if let Some(dir) = &self.data_dir {
            wasi.preopened_dir(dir, DATA_MOUNT, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)?;
        }
        let journal = Arc::new(Mutex::new(Journal::default()));
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = CallState {
            wasi: wasi.build(),
            table,
            http: WasiHttpCtx::new(),
            broker: Broker {
                policy: self.policy.clone(),
                journal: journal.clone(),
                budget: budget.clone(),
            },
            settings: self.settings.clone(),
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes(),
                hit: false,
            },
            logs: Vec::new(),
            stderr,
            redactor: self.redactor.clone(),
            budget,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        self.arm(&mut store);
        store.epoch_deadline_trap();
        Ok((store, journal))
    }

    /// Sets the call's CPU deadline, counted from now.
    pub(super) fn arm(&self, store: &mut Store<CallState>) {
        let ticks = self
            .limits
            .timeout_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            + 1;
        store.set_epoch_deadline(ticks);
    }
}
