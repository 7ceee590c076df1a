//! `wasi:config`: the plugin's non-secret settings, as the operator resolved
//! them (manifest defaults overlaid with aerie.toml). Secrets are never here.

use crate::bindings::config;
use crate::state::CallState;

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
