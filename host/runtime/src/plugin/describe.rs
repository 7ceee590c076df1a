//! `describe` at load: what the component offers, checked against the
//! manifest, with each action's input schema compiled for the calls.

use std::time::Duration;

use serde_json::Value;

use super::{ActionInfo, Plugin};
use crate::error::{Fault, LoadError};

impl Plugin {
    /// Asks the component what it offers and checks that against the manifest.
    pub(super) async fn describe(&mut self) -> Result<(), LoadError> {
        let path = self.component_path.clone();
        let component_error = |message: String| LoadError::Component {
            path: path.clone(),
            message,
        };
        let (mut store, _journal) = self
            .new_store()
            .map_err(|e| component_error(e.to_string()))?;
        let info = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .aerie_plugin_plugin()
                .call_describe(&mut store)
                .await
        };
        let outcome =
            tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), info).await;
        // Said as a call's failure is said (the deadline, the memory limit, a
        // panic), not as wasmtime's backtrace.
        let described = match outcome {
            Ok(Ok(info)) => Ok(info),
            Err(_elapsed) => Err(Fault::Deadline(self.limits.timeout_ms)),
            Ok(Err(trap)) => Err(self.classify_trap(&trap, store.data())),
        };
        let info = described.map_err(|fault| {
            component_error(format!(
                "describe failed: {fault} (limits in plugin.toml, or the operator's [plugins.{}] limits)",
                self.manifest.name
            ))
        })?;

        let mut exported: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
        let mut declared: Vec<&str> = self.manifest.actions.iter().map(String::as_str).collect();
        exported.sort_unstable();
        declared.sort_unstable();
        if exported != declared {
            return Err(component_error(format!(
                "the component offers actions [{}] but plugin.toml declares [{}]",
                exported.join(", "),
                declared.join(", ")
            )));
        }
        for action in info.actions {
            let parse = |text: &str, which: &str| {
                serde_json::from_str::<Value>(text).map_err(|e| {
                    component_error(format!(
                        "action `{}`: {which} schema is not JSON: {e}",
                        action.name
                    ))
                })
            };
            let input_schema = parse(&action.input_schema, "input")?;
            let output_schema = parse(&action.output_schema, "output")?;
            let validator = jsonschema::validator_for(&input_schema).map_err(|e| {
                component_error(format!(
                    "action `{}`: input schema is invalid: {e}",
                    action.name
                ))
            })?;
            self.validators.insert(action.name.clone(), validator);
            self.actions.push(ActionInfo {
                name: action.name,
                description: action.description,
                input_schema,
                output_schema,
            });
        }
        self.actions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }
}
