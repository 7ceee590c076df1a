//! The builtin filters that take a size, with the size checked before the
//! work: `replace`, `join` and `indent` by the length of what they would
//! build, `batch`, `slice`, `tojson` and `format` by the number they are
//! given. Each then calls minijinja's own.

use minijinja::value::{Kwargs, Rest, StringInput, Value};
use minijinja::{Environment, Error, ErrorKind, State, filters};

use crate::MAX_SIZE;

/// The most batches, slices or fill items a filter may make.
const MAX_ITEMS: usize = 100_000;

/// The widest indent `tojson` may use: every level of a deep value pays it
/// on every line.
const MAX_JSON_INDENT: i64 = 8;

/// The widest field or precision `format` may pad to.
const MAX_FORMAT_WIDTH: u64 = 1024;

pub(crate) fn install(env: &mut Environment) {
    env.add_filter("replace", replace);
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("batch", batch);
    env.add_filter("slice", slice);
    env.add_filter("tojson", tojson);
    env.add_filter("format", format);
    // Refused when the template is parsed (guard.rs); this is for a
    // template rendered without that check.
    env.add_function("namespace", |_: Rest<Value>| -> Result<Value, Error> {
        Err(refused("namespace() is not available in aerie templates"))
    });
}

fn refused(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn too_big(filter: &str, bytes: usize) -> Error {
    refused(format!(
        "{filter} would make {bytes} bytes; a template value may be at most {} KiB",
        MAX_SIZE / 1024
    ))
}

fn replace(
    state: &State,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
) -> Result<Value, Error> {
    let (text, pattern) = (value.as_str(), from.as_str());
    let count = if pattern.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(pattern).count()
    };
    let bytes = (text.len() - count * pattern.len())
        .saturating_add(count.saturating_mul(to.as_str().len()));
    if bytes > MAX_SIZE {
        return Err(too_big("replace", bytes));
    }
    filters::replace(state, value, from, to)
}

fn join(state: &State, value: &Value, joiner: Option<StringInput<'_>>) -> Result<Value, Error> {
    let separator = joiner.as_ref().map_or(0, |j| j.as_str().len());
    if let Ok(items) = value.try_iter() {
        let mut bytes = 0usize;
        for (index, item) in items.enumerate() {
            let len = item
                .as_str()
                .map_or_else(|| item.to_string().len(), str::len);
            bytes = bytes
                .saturating_add(len)
                .saturating_add(if index > 0 { separator } else { 0 });
            if bytes > MAX_SIZE {
                return Err(too_big("join", bytes));
            }
        }
    }
    filters::join(state, value, joiner)
}

fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let width = match width {
        Some(width) => width,
        None => kwargs.get::<Option<usize>>("width")?.unwrap_or(4),
    };
    let first = match first {
        Some(first) => first,
        None => kwargs.get::<Option<bool>>("first")?.unwrap_or(false),
    };
    let blank = match blank {
        Some(blank) => blank,
        None => kwargs.get::<Option<bool>>("blank")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let text = value.as_str();
    let lines = text.split('\n').count();
    let bytes = text.len().saturating_add(lines.saturating_mul(width));
    if bytes > MAX_SIZE {
        return Err(too_big("indent", bytes));
    }
    filters::indent(
        value,
        Some(width),
        Some(first),
        Some(blank),
        Kwargs::from_iter(std::iter::empty::<(&str, Value)>()),
    )
}

fn many(filter: &str, count: usize) -> Result<(), Error> {
    if count > MAX_ITEMS {
        return Err(refused(format!(
            "{filter}({count}): at most {MAX_ITEMS} in a template"
        )));
    }
    Ok(())
}

fn batch(state: &State, value: Value, count: usize, fill: Option<Value>) -> Result<Value, Error> {
    many("batch", count)?;
    filters::batch(state, value, count, fill)
}

fn slice(state: &State, value: Value, count: usize, fill: Option<Value>) -> Result<Value, Error> {
    many("slice", count)?;
    filters::slice(state, value, count, fill)
}

fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(indent) => Some(indent),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    kwargs.assert_all_used()?;
    if let Some(width) = indent.as_ref().and_then(|i| i64::try_from(i.clone()).ok())
        && width > MAX_JSON_INDENT
    {
        return Err(refused(format!(
            "tojson(indent={width}): at most {MAX_JSON_INDENT} in a template"
        )));
    }
    filters::tojson(
        value,
        indent,
        Kwargs::from_iter(std::iter::empty::<(&str, Value)>()),
    )
}

fn format(state: &State, format: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(spec) = format.as_str() {
        // Every width, precision and position is a run of digits; none needs
        // to be large.
        let widest = spec
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| !run.is_empty())
            .map(|run| run.parse::<u64>().unwrap_or(u64::MAX))
            .max();
        if let Some(width) = widest
            && width > MAX_FORMAT_WIDTH
        {
            return Err(refused(format!(
                "format: a width of {width} is over {MAX_FORMAT_WIDTH}"
            )));
        }
    }
    filters::format(state, format, args)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{MAX_SIZE, environment, render};

    fn rendered(text: &str) -> Result<String, String> {
        let ctx = json!({"text": "beacon to 185.220.101.1", "list": [1, "a", null], "big": "x".repeat(600_000)});
        render(&environment(1_000_000), text, &ctx, MAX_SIZE)
            .map(|r| r.text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_sized_filters_refuse_before_they_build() {
        for (text, message) in [
            ("{{ big|replace('', big) }}", "replace would make"),
            (
                "{{ big|replace('x', 'yy') }}",
                "replace would make 1200000 bytes",
            ),
            ("{{ range(100000)|join(big) }}", "join would make"),
            (
                "{{ big|indent(2) ~ text|indent(100000000) }}",
                "indent would make",
            ),
            (
                "{{ list|batch(1000000000000000, 'x') }}",
                "batch(1000000000000000): at most 100000",
            ),
            (
                "{{ list|slice(1000000000000000, 'x') }}",
                "slice(1000000000000000): at most 100000",
            ),
            (
                "{{ list|tojson(indent=1000000000) }}",
                "tojson(indent=1000000000): at most 8",
            ),
            (
                "{{ '%999999999999s'|format(text) }}",
                "format: a width of 999999999999 is over 1024",
            ),
            ("{{ namespace(a=1) }}", "namespace() is not available"),
        ] {
            let err = rendered(text).unwrap_err();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn the_sized_filters_still_work() {
        assert_eq!(
            rendered("{{ text|replace('185', 'x') }}").unwrap(),
            "beacon to x.220.101.1"
        );
        assert_eq!(rendered("{{ [1, 2, 3]|join(', ') }}").unwrap(), "1, 2, 3");
        assert_eq!(
            rendered("{{ 'a\nb'|indent(2, first=true) }}").unwrap(),
            "  a\n  b"
        );
        assert_eq!(
            rendered("{{ [1, 2, 3]|batch(2, 0)|list }}").unwrap(),
            "[[1, 2], [3, 0]]"
        );
        assert_eq!(
            rendered("{{ [1, 2, 3]|slice(2)|list }}").unwrap(),
            "[[1, 2], [3]]"
        );
        assert_eq!(
            rendered("{{ {'a': 1}|tojson(indent=2) }}").unwrap(),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(rendered("{{ '%5s|'|format('ab') }}").unwrap(), "   ab|");
    }
}
