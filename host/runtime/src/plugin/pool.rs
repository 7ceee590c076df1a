//! Warm instances, for plugins that opt in to reuse (`[instances] reuse`,
//! step plugins only): an instance that returned from a call cleanly goes
//! back to a pool of at most `instances.max`; one that trapped never does.

use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::Plugin;
use crate::bindings::PluginInstance;
use crate::broker::Journal;
use crate::state::CallState;

/// An instance kept between calls, with the store it lives in.
pub(super) struct Warm {
    pub store: Store<CallState>,
    pub instance: PluginInstance,
    pub journal: Arc<Mutex<Journal>>,
}

impl Plugin {
    /// An idle warm instance, made ready for a new call.
    pub(super) fn take_warm(&self) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        self.arm(&mut warm.store);
        let state = warm.store.data_mut();
        state.logs.clear();
        state.limiter.hit = false;
        state.stderr.clear();
        state.budget.reset();
        Some(warm)
    }

    /// Most warm instances kept between calls; 0 when every call gets a fresh one.
    pub fn warm_max(&self) -> usize {
        self.warm_max
    }

    /// How many warm instances are idle now.
    pub fn idle_instances(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Returns an instance to the pool when the plugin reuses instances and
    /// the pool has room; otherwise drops it.
    pub(super) fn keep_warm(&self, warm: Warm) {
        if self.warm_max == 0 {
            return;
        }
        let mut pool = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.warm_max {
            pool.push(warm);
        }
    }
}
