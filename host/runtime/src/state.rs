//! The data of one call's store: WASI context, HTTP broker, settings, logs and
//! the memory limiter. A store lives for exactly one call (or, for a plugin
//! that reuses instances, is reset between calls). The host interfaces it
//! serves live one a module: `logging`, `settings`, `broker`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use aerie_contract::LogLine;

use crate::broker::Broker;
use crate::budget::Budget;
use crate::secrets::Redactor;

pub(crate) struct CallState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub broker: Broker,
    pub settings: Arc<BTreeMap<String, String>>,
    pub limiter: MemoryLimiter,
    pub logs: Vec<LogLine>,
    pub stderr: crate::stderr::Stderr,
    pub redactor: Redactor,
    /// Host memory the call may make the host hold.
    pub budget: Arc<Budget>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.broker,
        }
    }
}

/// Caps linear memory per call and remembers whether the cap was what stopped
/// the plugin, so the error can say so.
pub(crate) struct MemoryLimiter {
    pub max_bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
