use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::aerie::plugin::types::{Action, PluginError, PluginInfo};
use crate::error::Error;

/// A plugin: a set of actions. Implement it on a unit struct and pass that to
/// [`export!`](crate::export).
pub trait Plugin {
    fn actions() -> Actions;
}

type Run = Box<dyn Fn(&str) -> Result<String, Error>>;

struct Entry {
    name: &'static str,
    description: &'static str,
    schemas: fn() -> (String, String),
    run: Run,
}

/// The actions a plugin offers, built with [`Actions::action`].
#[derive(Default)]
pub struct Actions {
    entries: Vec<Entry>,
}

impl Actions {
    pub fn new() -> Self {
        Actions::default()
    }

    /// Adds an action. The input is deserialized from the caller's JSON (a
    /// mismatch is an `invalid-input` error naming the field) and the output is
    /// serialized back; both schemas are derived from the types.
    pub fn action<I, O>(
        mut self,
        name: &'static str,
        description: &'static str,
        run: fn(I) -> Result<O, Error>,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        self.entries.push(Entry {
            name,
            description,
            schemas: schemas::<I, O>,
            run: Box::new(move |input| {
                let input: I = serde_json::from_str(input)
                    .map_err(|e| Error::invalid_input(format!("input: {e}")))?;
                let output = run(input)?;
                serde_json::to_string(&output)
                    .map_err(|e| Error::internal(format!("output is not JSON: {e}")))
            }),
        });
        self
    }
}

fn schemas<I: JsonSchema, O: JsonSchema>() -> (String, String) {
    let input = schemars::schema_for!(I);
    let output = schemars::schema_for!(O);
    (
        serde_json::to_string(&input).unwrap_or_default(),
        serde_json::to_string(&output).unwrap_or_default(),
    )
}

#[doc(hidden)]
pub fn describe<P: Plugin>(name: &str, version: &str) -> PluginInfo {
    let actions = P::actions()
        .entries
        .iter()
        .map(|entry| {
            let (input_schema, output_schema) = (entry.schemas)();
            Action {
                name: entry.name.to_owned(),
                description: entry.description.to_owned(),
                input_schema,
                output_schema,
            }
        })
        .collect();
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        actions,
    }
}

#[doc(hidden)]
pub fn invoke<P: Plugin>(action: &str, input: &str) -> Result<String, PluginError> {
    let actions = P::actions();
    let entry = actions
        .entries
        .iter()
        .find(|e| e.name == action)
        .ok_or_else(|| Error::invalid_input(format!("no action `{action}`")))?;
    (entry.run)(input).map_err(PluginError::from)
}
