//! How the engine reaches plugins: one narrow trait, implemented by the
//! binary over the runtime and by tests over scripts.

use aerie_contract::{LogLine, RequestRecord};
use serde_json::Value;

use crate::run::{PluginRef, StepError};

/// One plugin call as the engine sees it. The requests and logs are there
/// whether the call succeeded or not: a failed call is audited too.
#[derive(Debug, Clone)]
pub struct PluginCall {
    pub result: Result<Value, StepError>,
    pub plugin: Option<PluginRef>,
    pub requests: Vec<RequestRecord>,
    pub logs: Vec<LogLine>,
}

impl PluginCall {
    /// A call that never reached a plugin.
    pub fn failed(error: StepError) -> PluginCall {
        PluginCall {
            result: Err(error),
            plugin: None,
            requests: Vec::new(),
            logs: Vec::new(),
        }
    }
}

/// Where a call is made from: the run, the step and (for `for_each`) the
/// item. A built-in action that writes uses it to make its change once even
/// when a resumed run calls it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSite<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
    pub item: Option<usize>,
}

impl CallSite<'_> {
    /// `RUN/STEP` or `RUN/STEP/ITEM`.
    pub fn origin(&self) -> String {
        match self.item {
            None => format!("{}/{}", self.run_id, self.step),
            Some(item) => format!("{}/{}/{item}", self.run_id, self.step),
        }
    }
}

/// How the engine reaches plugins.
pub trait Plugins: Sync {
    fn call(
        &self,
        site: CallSite<'_>,
        plugin: &str,
        action: &str,
        input: &Value,
    ) -> impl Future<Output = PluginCall> + Send;
}
