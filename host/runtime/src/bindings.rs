//! The one place aerie runs `bindgen!`. Generated code stays in this module; the
//! rest of the crate uses the few names re-exported here.

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aerie:plugin/integration",
        exports: { default: async },
        // A log line is charged to the call's host-memory budget; past it,
        // the call stops.
        imports: { "wasi:logging/logging.log": trappable },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
    });
}

pub(crate) use generated::Integration as PluginInstance;
pub(crate) use generated::IntegrationPre as PluginPre;
pub(crate) use generated::aerie::plugin::types::{ErrorCode, PluginError};
pub(crate) use generated::wasi::config::store as config;
pub(crate) use generated::wasi::logging::logging;
