//! A playbook's declared inputs, and binding a run's input to them.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub kind: InputType,
    pub required: bool,
    pub default: Option<Value>,
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InputType {
    #[default]
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl InputType {
    pub const ALL: [(&'static str, InputType); 6] = [
        ("string", InputType::String),
        ("number", InputType::Number),
        ("integer", InputType::Integer),
        ("boolean", InputType::Boolean),
        ("object", InputType::Object),
        ("array", InputType::Array),
    ];

    fn described(self) -> &'static str {
        match self {
            InputType::String => "a string",
            InputType::Number => "a number",
            InputType::Integer => "an integer",
            InputType::Boolean => "a boolean",
            InputType::Object => "an object",
            InputType::Array => "an array",
        }
    }

    fn fits(self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Number => value.is_number(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Boolean => value.is_boolean(),
            InputType::Object => value.is_object(),
            InputType::Array => value.is_array(),
        }
    }
}

/// Applies defaults and checks a run's input against the declaration.
pub(crate) fn bind(declared: &BTreeMap<String, InputSpec>, given: &Value) -> Result<Value, String> {
    let Value::Object(given) = given else {
        return Err("the playbook's input must be a JSON object".to_owned());
    };
    if let Some(unknown) = given.keys().find(|k| !declared.contains_key(*k)) {
        let names = declared.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(format!("unknown input `{unknown}` (declared: {names})"));
    }
    let mut bound = serde_json::Map::new();
    for (name, spec) in declared {
        let value = match given.get(name).or(spec.default.as_ref()) {
            Some(value) => value.clone(),
            None if spec.required => return Err(format!("input `{name}` is required")),
            None => Value::Null,
        };
        if !value.is_null() && !spec.kind.fits(&value) {
            return Err(format!(
                "input `{name}` must be {}, got {value}",
                spec.kind.described()
            ));
        }
        bound.insert(name.clone(), value);
    }
    Ok(Value::Object(bound))
}
