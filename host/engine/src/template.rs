//! One templating language everywhere: minijinja.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type
//! (a list stays a list, a number a number); any other string renders as text.
//! Objects and lists are rendered element by element.

use minijinja::Environment;
use serde_json::Value;

/// Instructions one template may run: far above what a playbook's templates
/// need (a loop over a thousand items is tens of thousands), far below a loop
/// that would hold a worker for minutes.
const FUEL: u64 = 1_000_000;

/// The most one template may render to, in bytes (JSON for a sole
/// expression's value).
pub const MAX_RENDERED: usize = 1 << 20;

/// A writer that only counts, to size a value without building its text.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_big(text: &str, bytes: usize) -> String {
    format!(
        "`{text}` renders to {bytes} bytes; a template may render at most {} KiB",
        MAX_RENDERED / 1024
    )
}

/// The template environment playbooks are rendered with.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(FUEL));
        Templates { env }
    }

    /// The expression inside a string that is exactly `{{ expr }}`.
    pub fn sole_expression(text: &str) -> Option<&str> {
        let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
        (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
    }

    /// Checks a template's syntax; returns the variables it reads, dotted
    /// (`steps.iocs.output`).
    pub fn check(&self, text: &str) -> Result<Vec<String>, String> {
        let vars = match Self::sole_expression(text) {
            Some(expr) => self
                .env
                .compile_expression(expr)
                .map_err(|e| e.to_string())?
                .undeclared_variables(true),
            None => self
                .env
                .template_from_str(text)
                .map_err(|e| e.to_string())?
                .undeclared_variables(true),
        };
        let mut vars: Vec<String> = vars.into_iter().collect();
        vars.sort();
        Ok(vars)
    }

    /// Renders a string against `ctx`, keeping the type of a sole expression.
    pub fn render_str(&self, text: &str, ctx: &Value) -> Result<Value, String> {
        if let Some(expr) = Self::sole_expression(text) {
            let value = self
                .env
                .compile_expression(expr)
                .and_then(|e| e.eval(ctx))
                .map_err(|e| format!("`{text}`: {e}"))?;
            if value.is_undefined() {
                return Ok(Value::Null);
            }
            if let Some(string) = value.as_str()
                && string.len() > MAX_RENDERED
            {
                return Err(too_big(text, string.len()));
            }
            let value = serde_json::to_value(&value).map_err(|e| format!("`{text}`: {e}"))?;
            let mut size = Counter(0);
            serde_json::to_writer(&mut size, &value).map_err(|e| format!("`{text}`: {e}"))?;
            if size.0 > MAX_RENDERED {
                return Err(too_big(text, size.0));
            }
            return Ok(value);
        }
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(Value::String(text.to_owned()));
        }
        let rendered = self
            .env
            .render_str(text, ctx)
            .map_err(|e| format!("`{text}`: {e}"))?;
        if rendered.len() > MAX_RENDERED {
            return Err(too_big(text, rendered.len()));
        }
        Ok(Value::String(rendered))
    }

    /// Renders every string inside `value`.
    pub fn render(&self, value: &Value, ctx: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(text) => self.render_str(text, ctx)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render(v, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Whether a condition holds: Jinja truthiness of the rendered value.
    pub fn truthy(&self, text: &str, ctx: &Value) -> Result<bool, String> {
        let value = self.render_str(text, ctx)?;
        Ok(minijinja::Value::from_serialize(&value).is_true())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let t = Templates::new();
        let ctx =
            json!({"steps": {"iocs": {"output": {"ipv4": ["1.1.1.1"], "md5": ["x"]}}}, "n": 3});
        assert_eq!(
            t.render_str("{{ steps.iocs.output.ipv4 + steps.iocs.output.md5 }}", &ctx)
                .unwrap(),
            json!(["1.1.1.1", "x"])
        );
        assert_eq!(t.render_str(" {{ n * 2 }} ", &ctx).unwrap(), json!(6));
        assert_eq!(t.render_str("{{ n > 2 }}", &ctx).unwrap(), json!(true));
        assert_eq!(t.render_str("n is {{ n }}", &ctx).unwrap(), json!("n is 3"));
        assert_eq!(t.render_str("plain", &ctx).unwrap(), json!("plain"));
        assert_eq!(t.render_str("{{ missing }}", &ctx).unwrap(), Value::Null);
        assert_eq!(
            t.render(&json!({"a": ["{{ n }}", {"b": "x{{ n }}"}]}), &ctx)
                .unwrap(),
            json!({"a": [3, {"b": "x3"}]})
        );
    }

    #[test]
    fn check_reports_syntax_errors_and_variables() {
        let t = Templates::new();
        assert_eq!(
            t.check("{{ steps.a.output.x + inputs.text }}").unwrap(),
            ["inputs.text", "steps.a.output.x"]
        );
        assert!(
            t.check("{{ steps.a. }}")
                .unwrap_err()
                .contains("syntax error")
        );
        assert!(t.check("hello {% if %}").is_err());
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel_and_a_huge_one_is_refused() {
        let t = Templates::new();
        let ctx = json!({});
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let err = t.render_str(looping, &ctx).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        let err = t.render_str("{{ 'a' * 2000000 }}", &ctx).unwrap_err();
        assert_eq!(
            err,
            "`{{ 'a' * 2000000 }}` renders to 2000000 bytes; a template may render at most 1024 KiB"
        );
        let err = t.render_str("x{{ 'a' * 2000000 }}", &ctx).unwrap_err();
        assert!(
            err.ends_with("renders to 2000001 bytes; a template may render at most 1024 KiB"),
            "{err}"
        );
        let err = t
            .render_str("{{ ['aaaaaaaaaa'] * 200000 }}", &ctx)
            .unwrap_err();
        assert!(
            err.contains("a template may render at most 1024 KiB"),
            "{err}"
        );
        // Ordinary work is far inside both limits.
        let items: Vec<u32> = (0..1000).collect();
        let ctx = json!({ "items": items });
        let out = t
            .render_str("{% for i in items %}{{ i }},{% endfor %}", &ctx)
            .unwrap();
        assert!(out.as_str().unwrap().starts_with("0,1,2,"));
    }

    #[test]
    fn truthiness_follows_jinja() {
        let t = Templates::new();
        let ctx = json!({"list": [], "full": [1], "s": ""});
        assert!(!t.truthy("{{ list }}", &ctx).unwrap());
        assert!(t.truthy("{{ full }}", &ctx).unwrap());
        assert!(!t.truthy("{{ s }}", &ctx).unwrap());
        assert!(t.truthy("{{ full | length == 1 }}", &ctx).unwrap());
    }
}
