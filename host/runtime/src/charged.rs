//! The wasi:http functions that make the host keep bytes for the guest,
//! linked over wasmtime-wasi-http's own so each charges the call's
//! [`Budget`](crate::budget::Budget) before delegating to it.
//!
//! wasmtime caps each header set (its field size limit) and the number of
//! resources, but not their product: tens of thousands of 64 KiB header sets
//! are within both. Charging at creation bounds the sum.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::types;
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{FieldMap, WasiHttpView};

use crate::budget::{Charge, RESOURCE_COST, header_bytes};
use crate::state::CallState;

/// The wasi:http version wasmtime-wasi-http links; a component importing an
/// older 0.2 release is linked to it. Overriding under another name would
/// add an instance beside it and charge nothing: the header-flood test in
/// `tests/e2e/sandbox.rs` fails if this ever drifts.
const TYPES: &str = "wasi:http/types@0.2.12";

/// What an outgoing body may buffer: one write of at most this size (the
/// broker's hooks set it), charged when the body is taken.
pub(crate) const OUTGOING_CHUNK: usize = 64 * 1024;

type HeaderResult<T> = Result<T, types::HeaderError>;

/// wasmtime's result for a `header-error` function as the guest receives it:
/// its own error as the WIT value, a trap as a trap.
fn lowered<T>(
    http: &mut wasmtime_wasi_http::WasiHttpCtxView<'_>,
    result: Result<T, wasmtime_wasi_http::p2::HeaderError>,
) -> wasmtime::Result<(HeaderResult<T>,)> {
    Ok((match result {
        Ok(value) => Ok(value),
        Err(e) => Err(types::Host::convert_header_error(http, e)?),
    },))
}

/// Re-links the charging functions into `linker`, which already holds
/// wasmtime-wasi-http's.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;

    types.func_wrap(
        "[constructor]fields",
        |mut store: StoreContextMut<'_, CallState>, (): ()| {
            let state = store.data_mut();
            state.budget.charge(Charge::HeaderFields, RESOURCE_COST)?;
            Ok((types::HostFields::new(&mut state.http())?,))
        },
    )?;

    types.func_wrap(
        "[static]fields.from-list",
        |mut store: StoreContextMut<'_, CallState>, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let state = store.data_mut();
            let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            state
                .budget
                .charge(Charge::HeaderFields, RESOURCE_COST + bytes)?;
            let mut http = state.http();
            let result = types::HostFields::from_list(&mut http, entries);
            lowered(&mut http, result)
        },
    )?;

    types.func_wrap(
        "[method]fields.set",
        |mut store: StoreContextMut<'_, CallState>,
         (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let state = store.data_mut();
            let bytes = name.len() + values.iter().map(Vec::len).sum::<usize>();
            state.budget.charge(Charge::HeaderFields, bytes)?;
            let mut http = state.http();
            let result = types::HostFields::set(&mut http, fields, name, values);
            lowered(&mut http, result)
        },
    )?;

    types.func_wrap(
        "[method]fields.append",
        |mut store: StoreContextMut<'_, CallState>,
         (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            let state = store.data_mut();
            state
                .budget
                .charge(Charge::HeaderFields, name.len() + value.len())?;
            let mut http = state.http();
            let result = types::HostFields::append(&mut http, fields, name, value);
            lowered(&mut http, result)
        },
    )?;

    types.func_wrap(
        "[method]fields.clone",
        |mut store: StoreContextMut<'_, CallState>, (fields,): (Resource<FieldMap>,)| {
            let state = store.data_mut();
            let bytes = header_bytes(state.table.get(&fields)?);
            state
                .budget
                .charge(Charge::HeaderFields, RESOURCE_COST + bytes)?;
            Ok((types::HostFields::clone(&mut state.http(), fields)?,))
        },
    )?;

    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store: StoreContextMut<'_, CallState>,
         (request,): (Resource<HostOutgoingRequest>,)| {
            let state = store.data_mut();
            state
                .budget
                .charge(Charge::RequestBodies, RESOURCE_COST + OUTGOING_CHUNK)?;
            let body: Result<Resource<HostOutgoingBody>, ()> =
                types::HostOutgoingRequest::body(&mut state.http(), request)?;
            Ok((body,))
        },
    )?;
    Ok(())
}
