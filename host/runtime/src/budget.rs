//! The host memory one call may make the host hold.
//!
//! A guest's linear memory is capped by the memory limiter, but what it asks
//! the host to keep on its behalf lives outside that cap: header sets created
//! through wasi:http (one per `fields` resource, each up to wasmtime's field
//! limit), bodies buffered on their way in or out, log lines, stderr. Every
//! host interface that keeps bytes for the guest charges them here; the call's
//! budget is the plugin's memory limit, so a plugin may make the host hold no
//! more than it may hold itself. Charges last for the call: what the guest
//! frees is not refunded (header sets given to a request are consumed by it),
//! which errs on the side of stopping a plugin early.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a call's charges are for, named in the error that stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    HeaderFields,
    RequestBodies,
    ResponseHeaders,
    ResponseBodies,
    Logs,
    Stderr,
}

impl Charge {
    fn as_str(self) -> &'static str {
        match self {
            Charge::HeaderFields => "header fields the plugin created",
            Charge::RequestBodies => "request bodies the plugin wrote",
            Charge::ResponseHeaders => "response headers",
            Charge::ResponseBodies => "response bodies buffered for the plugin",
            Charge::Logs => "log lines",
            Charge::Stderr => "stderr",
        }
    }
}

/// What a header map is charged: the bytes of its names and values.
pub(crate) fn header_bytes(map: &http::HeaderMap) -> usize {
    map.iter().map(|(k, v)| k.as_str().len() + v.len()).sum()
}

/// The fixed cost charged for each resource the guest creates, whatever it
/// holds: a table slot and the bookkeeping around it.
pub(crate) const RESOURCE_COST: usize = 64;

#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// The first charge that did not fit; it is the call's fault.
    exceeded: Mutex<Option<Exceeded>>,
}

/// The charge that passed the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "host memory: {what} passed the call's budget of {limit_mib} MiB (the plugin's memory limit; {used} bytes charged)"
)]
pub struct Exceeded {
    pub what: &'static str,
    pub limit_mib: usize,
    pub used: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
            exceeded: Mutex::new(None),
        }
    }

    /// Charges `bytes` for `what`; past the budget, nothing is charged, the
    /// first such charge is remembered, and the caller stops what it was doing.
    pub(crate) fn charge(&self, what: Charge, bytes: usize) -> Result<(), Exceeded> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let wanted = used.saturating_add(bytes);
            if wanted > self.limit {
                let exceeded = Exceeded {
                    what: what.as_str(),
                    limit_mib: self.limit >> 20,
                    used: wanted,
                };
                let mut first = self.exceeded.lock().unwrap_or_else(|e| e.into_inner());
                return Err(first.get_or_insert(exceeded).clone());
            }
            match self.used.compare_exchange_weak(
                used,
                wanted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back what a transient buffer held (a body chunk the guest read).
    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// The charge that stopped the call, if one did.
    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A warm instance starts each call with the whole budget.
    pub(crate) fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
        *self.exceeded.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_names_the_first_overrun() {
        let budget = Budget::new(2 << 20);
        budget.charge(Charge::HeaderFields, 1 << 20).unwrap();
        budget.charge(Charge::Logs, 1 << 20).unwrap();
        let err = budget.charge(Charge::Stderr, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host memory: stderr passed the call's budget of 2 MiB (the plugin's memory limit; 2097153 bytes charged)"
        );
        // A later overrun does not replace the first.
        budget.charge(Charge::Logs, 10).unwrap_err();
        assert_eq!(budget.exceeded().unwrap().what, "stderr");
        assert_eq!(budget.used(), 2 << 20);

        budget.release(1 << 20);
        budget.charge(Charge::ResponseBodies, 1 << 20).unwrap();
        budget.reset();
        assert_eq!((budget.used(), budget.exceeded()), (0, None));
    }
}
