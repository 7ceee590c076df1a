//! One templating language for playbooks and manifests: minijinja, with the
//! work a template may do bounded.
//!
//! minijinja's fuel counts instructions, which bounds loops; it does not
//! bound what one instruction builds. Three things close that gap here:
//! [`guard`] refuses, when a template is parsed, the constructs whose single
//! steps do work in proportion to a number the template picks (`*` on a
//! string or a list, recursion); the builtin filters that take a size are
//! capped ([`filters`]); and output is counted while it is written
//! ([`render`]), not after.
//!
//! What is left: a value doubled by one binding after another
//! (`{% set a = a ~ a %}` forty times) grows with the template's length, one
//! doubling per statement. Playbooks and manifests are installed by an
//! operator, and a template that does this is written to.

mod filters;
pub mod guard;

use std::io;

use minijinja::{Environment, Template};
use serde_json::Value;

/// The most one template may render, and the most one capped filter may
/// build, in bytes.
pub const MAX_SIZE: usize = 1 << 20;

/// An environment with `fuel` instructions per render and the capped filters.
pub fn environment(fuel: u64) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(fuel));
    filters::install(&mut env);
    env
}

/// Why a render failed.
#[derive(Debug)]
pub enum RenderError {
    /// The template's own error: syntax, a failed filter, out of fuel.
    Template(minijinja::Error),
    /// A construct [`guard`] refuses.
    Refused(String),
    /// The output passed `limit` bytes; rendering stopped there.
    TooBig { limit: usize },
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Template(e) => write!(f, "{e}"),
            RenderError::Refused(reason) => f.write_str(reason),
            RenderError::TooBig { limit } => write!(
                f,
                "renders to more than {} KiB, the most a template may",
                limit / 1024
            ),
        }
    }
}

/// What a render made, and the fuel it used.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub fuel: u64,
}

/// Renders `text` against `ctx` with `env`, refusing what [`guard`] refuses
/// and stopping once the output passes `limit` bytes.
pub fn render(
    env: &Environment<'static>,
    text: &str,
    ctx: &Value,
    limit: usize,
) -> Result<Rendered, RenderError> {
    guard::template(text).map_err(RenderError::Refused)?;
    let template: Template = env.template_from_str(text).map_err(RenderError::Template)?;
    let mut out = Capped::new(limit);
    let captured = match template.render_captured_to(ctx, &mut out) {
        Ok(captured) => captured,
        Err(_) if out.over => return Err(RenderError::TooBig { limit }),
        Err(e) => return Err(RenderError::Template(e)),
    };
    let fuel = captured.state().fuel_levels().map_or(0, |(used, _)| used);
    drop(captured);
    // minijinja writes whole `str`s; a cut could only come from the cap,
    // which fails the write instead.
    let text = String::from_utf8(out.bytes).map_err(|e| {
        RenderError::Template(minijinja::Error::new(
            minijinja::ErrorKind::WriteFailure,
            e.to_string(),
        ))
    })?;
    Ok(Rendered { text, fuel })
}

/// A writer that fails once more than `limit` bytes are written.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Capped {
    fn new(limit: usize) -> Capped {
        Capped {
            bytes: Vec::new(),
            limit,
            over: false,
        }
    }
}

impl io::Write for &mut Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + bytes.len() > self.limit {
            self.over = true;
            return Err(io::Error::other("over the output limit"));
        }
        self.bytes.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_stops_at_the_limit_while_it_is_written() {
        let env = environment(1_000_000);
        let ctx = json!({"big": "a".repeat(1000)});
        // 100,000 × 1,000 bytes would be 100 MB; the render stops at 1 MiB.
        let err = render(
            &env,
            "{% for i in range(100000) %}{{ big }}{% endfor %}",
            &ctx,
            MAX_SIZE,
        )
        .unwrap_err();
        assert!(
            matches!(err, RenderError::TooBig { limit: MAX_SIZE }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "renders to more than 1024 KiB, the most a template may"
        );
        let ok = render(&env, "{{ big|length }} {{ 'é' }}", &ctx, MAX_SIZE).unwrap();
        assert_eq!(ok.text, "1000 é");
        assert!(ok.fuel > 0);
    }
}
