//! The runtime's plugins as the engine sees them: the one adapter between
//! the two rooms, which know nothing of each other.

pub mod cases;

use aerie_engine::{CallSite, ErrorCode, PluginCall, PluginRef, Plugins, StepError};
use aerie_runtime::{CallReport, Plugin, Registry};
use aerie_store::Store;
use serde_json::Value;

/// Every installed plugin, loaded on first use, and the host's built-in
/// actions over its store.
pub struct RuntimePlugins<'a> {
    pub registry: &'a Registry,
    pub store: &'a Store,
}

impl Plugins for RuntimePlugins<'_> {
    async fn call(
        &self,
        site: CallSite<'_>,
        plugin: &str,
        action: &str,
        input: &Value,
    ) -> PluginCall {
        if plugin == cases::NAME {
            return cases::call(self.store, site, action, input).await;
        }
        match self.registry.load(plugin).await {
            Ok(loaded) => plugin_call(&loaded, loaded.call(action, input).await),
            Err(e) => PluginCall::failed(StepError::new(ErrorCode::Internal, e.to_string())),
        }
    }
}

/// What one call of `plugin` did, in the engine's terms.
pub fn plugin_call(plugin: &Plugin, report: CallReport) -> PluginCall {
    PluginCall {
        result: report.result.map_err(|e| StepError {
            code: e.code(),
            message: e.message(),
            retryable: e.retryable(),
        }),
        plugin: Some(PluginRef {
            name: plugin.name().to_owned(),
            version: plugin.version().to_owned(),
            sha256: plugin.sha256.clone(),
        }),
        requests: report.requests,
        logs: report.logs,
    }
}
