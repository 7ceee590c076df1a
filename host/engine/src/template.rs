//! One templating language everywhere: minijinja.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type
//! (a list stays a list, a number a number); any other string renders as text.
//! Objects and lists are rendered element by element.

use std::sync::atomic::{AtomicU64, Ordering};

use aerie_template::RenderError;
use minijinja::Environment;
use serde_json::Value;

/// Instructions one template may run: far above what a playbook's templates
/// need (a loop over a thousand items is tens of thousands), far below a loop
/// that would hold a worker for minutes.
const FUEL: u64 = 1_000_000;

/// The most one template may render to, in bytes (JSON for a sole
/// expression's value).
pub const MAX_RENDERED: usize = aerie_template::MAX_SIZE;

/// What all the templates of one run may use together: a hundred templates
/// at the limit of one, and 128 MiB rendered. A `for_each` of ten thousand
/// items, each rendering a runaway template just under its own fuel, would
/// otherwise hold a worker for minutes.
pub const RUN_FUEL: u64 = 100 * FUEL;
pub const RUN_RENDERED: u64 = 128 << 20;

/// One run's template budget, spent by every render in it.
#[derive(Debug)]
pub struct RunBudget {
    limits: (u64, u64),
    fuel: AtomicU64,
    rendered: AtomicU64,
}

impl Default for RunBudget {
    fn default() -> Self {
        RunBudget::new(RUN_FUEL, RUN_RENDERED)
    }
}

impl RunBudget {
    pub fn new(fuel: u64, rendered: u64) -> Self {
        RunBudget {
            limits: (fuel, rendered),
            fuel: AtomicU64::new(fuel),
            rendered: AtomicU64::new(rendered),
        }
    }

    /// Takes `fuel` and `bytes` from what is left; an error once either is
    /// gone (a render already done is not undone: the next one fails).
    fn spend(&self, text: &str, fuel: u64, bytes: usize) -> Result<(), String> {
        let take = |left: &AtomicU64, amount: u64| {
            left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                l.checked_sub(amount)
            })
            .is_ok()
        };
        if !take(&self.fuel, fuel) {
            self.fuel.store(0, Ordering::Relaxed);
            return Err(format!(
                "`{text}`: the run's templates used up its budget of {} instructions (each template may use {FUEL})",
                self.limits.0
            ));
        }
        if !take(&self.rendered, bytes as u64) {
            self.rendered.store(0, Ordering::Relaxed);
            return Err(format!(
                "`{text}`: the run's templates rendered more than its budget of {} MiB",
                self.limits.1 >> 20
            ));
        }
        Ok(())
    }
}

/// The variable a sole expression's value is set to, so that it is evaluated
/// as a template (whose fuel can be read back) and keeps its type.
const VALUE: &str = "__aerie_value";

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
        let mut env = aerie_template::environment(FUEL);
        env.set_keep_trailing_newline(true);
        Templates { env }
    }

    /// The expression inside a string that is exactly `{{ expr }}`.
    pub fn sole_expression(text: &str) -> Option<&str> {
        let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
        (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
    }

    /// Checks a template's syntax and that it does only what the fuel
    /// bounds; returns the variables it reads, dotted (`steps.iocs.output`).
    pub fn check(&self, text: &str) -> Result<Vec<String>, String> {
        let vars = match Self::sole_expression(text) {
            Some(expr) => {
                let vars = self
                    .env
                    .compile_expression(expr)
                    .map_err(|e| e.to_string())?
                    .undeclared_variables(true);
                aerie_template::guard::expression(expr)?;
                vars
            }
            None => {
                let vars = self
                    .env
                    .template_from_str(text)
                    .map_err(|e| e.to_string())?
                    .undeclared_variables(true);
                aerie_template::guard::template(text)?;
                vars
            }
        };
        let mut vars: Vec<String> = vars.into_iter().collect();
        vars.sort();
        Ok(vars)
    }

    /// Renders a string against `ctx`, keeping the type of a sole expression,
    /// and spends what it used from the run's `budget`.
    pub fn render_str(&self, text: &str, ctx: &Value, budget: &RunBudget) -> Result<Value, String> {
        if let Some(expr) = Self::sole_expression(text) {
            aerie_template::guard::expression(expr).map_err(|e| format!("`{text}`: {e}"))?;
            let wrapped = format!("{{% set {VALUE} = ({expr}) %}}");
            let template = self
                .env
                .template_from_str(&wrapped)
                .map_err(|e| format!("`{text}`: {e}"))?;
            let captured = template
                .render_captured(ctx)
                .map_err(|e| format!("`{text}`: {e}"))?;
            let fuel = captured.state().fuel_levels().map_or(0, |(used, _)| used);
            let value = captured.state().lookup(VALUE).unwrap_or_default();
            if value.is_undefined() || value.is_none() {
                budget.spend(text, fuel, 0)?;
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
            budget.spend(text, fuel, size.0)?;
            return Ok(value);
        }
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(Value::String(text.to_owned()));
        }
        let rendered =
            aerie_template::render(&self.env, text, ctx, MAX_RENDERED).map_err(|e| match e {
                RenderError::TooBig { .. } => format!(
                    "`{text}` renders to more than {} KiB, the most a template may",
                    MAX_RENDERED / 1024
                ),
                other => format!("`{text}`: {other}"),
            })?;
        budget.spend(text, rendered.fuel, rendered.text.len())?;
        Ok(Value::String(rendered.text))
    }

    /// Renders every string inside `value`.
    pub fn render(&self, value: &Value, ctx: &Value, budget: &RunBudget) -> Result<Value, String> {
        Ok(match value {
            Value::String(text) => self.render_str(text, ctx, budget)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render(v, ctx, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render(v, ctx, budget)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Whether a condition holds: Jinja truthiness of the rendered value.
    pub fn truthy(&self, text: &str, ctx: &Value, budget: &RunBudget) -> Result<bool, String> {
        let value = self.render_str(text, ctx, budget)?;
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
            t.render_str(
                "{{ steps.iocs.output.ipv4 + steps.iocs.output.md5 }}",
                &ctx,
                &RunBudget::default()
            )
            .unwrap(),
            json!(["1.1.1.1", "x"])
        );
        assert_eq!(
            t.render_str(" {{ n|int * 2 }} ", &ctx, &RunBudget::default())
                .unwrap(),
            json!(6)
        );
        assert_eq!(
            t.render_str("{{ n > 2 }}", &ctx, &RunBudget::default())
                .unwrap(),
            json!(true)
        );
        assert_eq!(
            t.render_str("n is {{ n }}", &ctx, &RunBudget::default())
                .unwrap(),
            json!("n is 3")
        );
        assert_eq!(
            t.render_str("plain", &ctx, &RunBudget::default()).unwrap(),
            json!("plain")
        );
        assert_eq!(
            t.render_str("{{ missing }}", &ctx, &RunBudget::default())
                .unwrap(),
            Value::Null
        );
        assert_eq!(
            t.render(
                &json!({"a": ["{{ n }}", {"b": "x{{ n }}"}]}),
                &ctx,
                &RunBudget::default()
            )
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
        let err = t
            .render_str(looping, &ctx, &RunBudget::default())
            .unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        // A value past the limit: `*` may not repeat strings or lists
        // (aerie-template's guard), so the big value comes from the input.
        let ctx = json!({"big": "a".repeat(600_000), "list": vec!["aaaaaaaaaa"; 200_000]});
        let err = t
            .render_str("{{ big ~ big }}", &ctx, &RunBudget::default())
            .unwrap_err();
        assert_eq!(
            err,
            "`{{ big ~ big }}` renders to 1200000 bytes; a template may render at most 1024 KiB"
        );
        let err = t
            .render_str("x{{ big }}{{ big }}", &ctx, &RunBudget::default())
            .unwrap_err();
        assert_eq!(
            err,
            "`x{{ big }}{{ big }}` renders to more than 1024 KiB, the most a template may"
        );
        let err = t
            .render_str("{{ list }}", &ctx, &RunBudget::default())
            .unwrap_err();
        assert!(
            err.contains("a template may render at most 1024 KiB"),
            "{err}"
        );
        let err = t
            .render_str("{{ ['a'] * 200000 }}", &ctx, &RunBudget::default())
            .unwrap_err();
        assert!(err.contains("multiplies numbers only"), "{err}");
        // Ordinary work is far inside both limits.
        let items: Vec<u32> = (0..1000).collect();
        let ctx = json!({ "items": items });
        let out = t
            .render_str(
                "{% for i in items %}{{ i }},{% endfor %}",
                &ctx,
                &RunBudget::default(),
            )
            .unwrap();
        assert!(out.as_str().unwrap().starts_with("0,1,2,"));
    }

    #[test]
    fn a_run_spends_one_budget_across_its_templates() {
        let t = Templates::new();
        let ctx = json!({});
        // A run's budget of five templates at their limit (the default is a
        // hundred; fewer keeps the test quick).
        let budget = RunBudget::new(5 * FUEL, RUN_RENDERED);
        // Each of these is within one template's fuel; together they pass
        // the run's, and the run stops at the first that does not fit.
        let heavy = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}";
        let mut rendered = 0;
        let err = loop {
            match t.render_str(heavy, &ctx, &budget) {
                Ok(_) => rendered += 1,
                Err(e) => break e,
            }
            assert!(rendered < 10_000, "the run's budget was never spent");
        };
        assert!(
            err.ends_with("the run's templates used up its budget of 5000000 instructions (each template may use 1000000)"),
            "{err}"
        );
        assert!((5..50).contains(&rendered), "{rendered}");
        // So does what templates render.
        let budget = RunBudget::new(RUN_FUEL, 4 << 20);
        let ctx = json!({"big": "a".repeat(1_000_000)});
        let big = "{{ big }}";
        let rendered = (0..10)
            .take_while(|_| t.render_str(big, &ctx, &budget).is_ok())
            .count();
        assert_eq!(rendered, 4);
        let err = t.render_str(big, &ctx, &budget).unwrap_err();
        assert!(
            err.ends_with("rendered more than its budget of 4 MiB"),
            "{err}"
        );
    }

    #[test]
    fn a_sole_expression_with_block_delimiters_in_a_string_is_one_value() {
        let t = Templates::new();
        let out = t
            .render_str(
                "{{ 'a %} b' ~ x }}",
                &json!({"x": 1}),
                &RunBudget::default(),
            )
            .unwrap();
        assert_eq!(out, json!("a %} b1"));
    }

    #[test]
    fn truthiness_follows_jinja() {
        let t = Templates::new();
        let ctx = json!({"list": [], "full": [1], "s": ""});
        assert!(!t.truthy("{{ list }}", &ctx, &RunBudget::default()).unwrap());
        assert!(t.truthy("{{ full }}", &ctx, &RunBudget::default()).unwrap());
        assert!(!t.truthy("{{ s }}", &ctx, &RunBudget::default()).unwrap());
        assert!(
            t.truthy("{{ full | length == 1 }}", &ctx, &RunBudget::default())
                .unwrap()
        );
    }
}
