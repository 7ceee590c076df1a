//! The constructs whose single steps the fuel cannot bound, refused when a
//! template is parsed.
//!
//! - `*` on a string or a list repeats it: `inputs.list * 10**15` is one
//!   instruction and a list of 10^15 items that `in` or `|join` then walks.
//!   `*` is kept for numbers, which is what playbooks multiply; an operand
//!   that is not plainly a number is written `x|int` or `x|float`.
//! - A recursive loop or a macro can call itself with a value it doubled,
//!   one instruction per doubling.
//! - `namespace()` is the one value a loop can change from one pass to the
//!   next, so a loop could double it a hundred thousand times.
//!
//! The check walks minijinja's parsed template in its serialized form, so it
//! names only the few node kinds it looks at.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};

use minijinja::machinery;
use serde_json::Value;

/// Checks a template (text with `{{ }}` and `{% %}`).
pub fn template(text: &str) -> Result<(), String> {
    remembered(Kind::Template, text, || {
        let ast = machinery::parse(text, "<template>", Default::default(), Default::default())
            .map_err(|e| e.to_string())?;
        walk(&serde_json::to_value(&ast).map_err(|e| e.to_string())?)
    })
}

/// Checks one expression (the inside of a `{{ }}`).
pub fn expression(text: &str) -> Result<(), String> {
    remembered(Kind::Expression, text, || {
        let ast = machinery::parse_expr(text).map_err(|e| e.to_string())?;
        walk(&serde_json::to_value(&ast).map_err(|e| e.to_string())?)
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Template,
    Expression,
}

/// Texts that passed. The check costs about three renders of a short
/// template, and a playbook renders the same few texts on every run; the
/// verdict depends on the text alone.
static PASSED: LazyLock<Mutex<HashSet<(Kind, String)>>> = LazyLock::new(Default::default);

/// How many texts [`PASSED`] holds before it starts again.
const REMEMBERED: usize = 4096;

fn remembered(
    kind: Kind,
    text: &str,
    check: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let key = (kind, text.to_owned());
    if PASSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&key)
    {
        return Ok(());
    }
    check()?;
    let mut passed = PASSED.lock().unwrap_or_else(PoisonError::into_inner);
    if passed.len() >= REMEMBERED {
        passed.clear();
    }
    passed.insert(key);
    Ok(())
}

/// Arithmetic that keeps numbers numbers.
const ARITHMETIC: &[&str] = &["Add", "Sub", "Mul", "Div", "FloorDiv", "Rem", "Pow"];

/// Filters whose result is a number (or an error).
const NUMBER_FILTERS: &[&str] = &[
    "int",
    "float",
    "length",
    "count",
    "abs",
    "round",
    "wordcount",
];

fn walk(node: &Value) -> Result<(), String> {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(kind)) = map.get("stmt") {
                statement(kind, node)?;
            }
            if let Some(Value::String(kind)) = map.get("expr") {
                expr(kind, node)?;
            }
            map.values().try_for_each(walk)
        }
        Value::Array(items) => items.iter().try_for_each(walk),
        _ => Ok(()),
    }
}

/// A node is `{"stmt"|"expr": KIND, "inner": [FIELDS, SPAN]}`.
fn fields(node: &Value) -> &Value {
    &node["inner"][0]
}

fn at(node: &Value) -> String {
    let span = &node["inner"][1];
    match (span["start_line"].as_u64(), span["start_col"].as_u64()) {
        (Some(line), Some(col)) => format!(" at line {line}, column {}", col + 1),
        _ => String::new(),
    }
}

fn statement(kind: &str, node: &Value) -> Result<(), String> {
    match kind {
        "Macro" | "CallBlock" => Err(format!(
            "macros are not available in aerie templates{}: a macro can call itself with a value it doubled, which the fuel does not bound",
            at(node)
        )),
        "ForLoop" if fields(node)["recursive"] == true => Err(format!(
            "recursive loops are not available in aerie templates{}: each level can double a value, which the fuel does not bound",
            at(node)
        )),
        _ => Ok(()),
    }
}

fn expr(kind: &str, node: &Value) -> Result<(), String> {
    let fields = fields(node);
    match kind {
        "BinOp" if fields["op"] == "Mul" => {
            if number(&fields["left"]) && number(&fields["right"]) {
                Ok(())
            } else {
                Err(format!(
                    "`*`{} multiplies numbers only in aerie templates: write `x|int * 60` for a number from the input (repeating a string or a list with `*` makes work the fuel does not bound)",
                    at(node)
                ))
            }
        }
        "Call"
            if fields["expr"]["expr"] == "Var"
                && fields["expr"]["inner"][0]["id"] == "namespace" =>
        {
            Err(format!(
                "namespace() is not available in aerie templates{}: a loop could grow it on every pass, which the fuel does not bound; use a filter such as `select` or `sum`",
                at(node)
            ))
        }
        _ => Ok(()),
    }
}

/// Whether an expression is plainly a number: a literal, arithmetic on
/// numbers, or a filter that makes one.
fn number(node: &Value) -> bool {
    let fields = fields(node);
    match node["expr"].as_str() {
        Some("Const") => fields["value"].is_number(),
        Some("UnaryOp") => fields["op"] == "Neg" && number(&fields["expr"]),
        Some("BinOp") => {
            fields["op"]
                .as_str()
                .is_some_and(|op| ARITHMETIC.contains(&op))
                && number(&fields["left"])
                && number(&fields["right"])
        }
        Some("Filter") => fields["name"]
            .as_str()
            .is_some_and(|name| NUMBER_FILTERS.contains(&name)),
        Some("IfExpr") => {
            number(&fields["true_expr"])
                && (fields["false_expr"].is_null() || number(&fields["false_expr"]))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_multiply_and_strings_and_lists_do_not_repeat() {
        for ok in [
            "n|int * 60",
            "(inputs.minutes|int) * 60 + 1",
            "-(x|float) * 2.5",
            "items|length * (3 if big else 2)",
            "2 ** 10 * 3",
            "inputs.a + inputs.b",
        ] {
            assert_eq!(expression(ok), Ok(()), "{ok}");
        }
        for refused in [
            "inputs.list * 8 ** 8 * 9",
            "'a' * 100000000",
            "[1] * 1000",
            "3 * inputs.text",
            "(x|string) * 9",
            "x * 2 if y else 3",
        ] {
            let err = expression(refused).unwrap_err();
            assert!(err.contains("multiplies numbers only"), "{refused}: {err}");
        }
        let err = template("ok\n  {{ s * 3 }}").unwrap_err();
        assert!(err.starts_with("`*` at line 2, column 6 "), "{err}");
    }

    #[test]
    fn recursion_and_namespaces_are_refused() {
        let err =
            template("{% for a in [x] recursive %}{{ loop([a ~ a]) }}{% endfor %}").unwrap_err();
        assert!(
            err.starts_with("recursive loops are not available"),
            "{err}"
        );
        let err = template("{% macro m(a) %}{{ m(a ~ a) }}{% endmacro %}").unwrap_err();
        assert!(err.starts_with("macros are not available"), "{err}");
        let err = template(
            "{% set n = namespace(a='a') %}{% for i in range(99) %}{% set n.a = n.a ~ n.a %}{% endfor %}",
        )
        .unwrap_err();
        assert!(err.starts_with("namespace() is not available"), "{err}");
        // Plain loops, conditions and bindings are fine.
        assert_eq!(
            template(
                "{% for i in items %}{% set x = i ~ '!' %}{% if x %}{{ x }}{% endif %}{% endfor %}"
            ),
            Ok(())
        );
    }

    #[test]
    fn a_syntax_error_is_an_error() {
        assert!(template("{% if %}").is_err());
        assert!(expression("a +").is_err());
    }
}
