//! The data of one call's store: WASI context, HTTP broker, settings, logs and
//! the memory limiter. A store lives for exactly one call.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{config, logging};
use crate::broker::Broker;
use crate::plugin::LogLine;
use crate::secrets::Redactor;

/// Log lines kept per call; a plugin that logs more is not stopped, but the rest
/// is dropped and one line says so.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_LINE: usize = 4096;

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

impl logging::Host for CallState {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
        let level = match level {
            logging::Level::Trace => "trace",
            logging::Level::Debug => "debug",
            logging::Level::Info => "info",
            logging::Level::Warn => "warn",
            logging::Level::Error => "error",
            logging::Level::Critical => "critical",
        };
        match self.logs.len() {
            n if n < MAX_LOG_LINES => {
                let mut message = self.redactor.redact(&message);
                if message.len() > MAX_LOG_LINE {
                    let cut = (0..=MAX_LOG_LINE)
                        .rev()
                        .find(|&i| message.is_char_boundary(i))
                        .unwrap_or(0);
                    message.truncate(cut);
                    message.push_str(" [truncated]");
                }
                self.logs.push(LogLine {
                    level: level.to_owned(),
                    context: self.redactor.redact(&context),
                    message,
                    at: aerie_contract::now(),
                });
            }
            n if n == MAX_LOG_LINES => self.logs.push(LogLine {
                level: "warn".to_owned(),
                context: "aerie".to_owned(),
                message: format!("more than {MAX_LOG_LINES} log lines; the rest were dropped"),
                at: aerie_contract::now(),
            }),
            _ => {}
        }
    }
}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.settings.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
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
