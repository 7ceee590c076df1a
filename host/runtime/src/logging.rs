//! `wasi:logging`: a plugin's log lines, secrets redacted, each line and the
//! number of lines per call capped; the run keeps them (the engine caps them
//! again per step).

use aerie_contract::LogLine;

use crate::bindings::logging;
use crate::budget::Charge;
use crate::state::CallState;

/// Log lines kept per call; a plugin that logs more is not stopped, but the rest
/// is dropped and one line says so.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_LINE: usize = 4096;
/// A line's context is a module name or so; more is cut.
const MAX_CONTEXT: usize = 256;

/// `text` cut to at most `max` bytes (on a character boundary) and marked,
/// in an allocation of its own size: truncating in place would keep the
/// whole of a megabyte line alive.
fn shortened(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    const MARK: &str = " [truncated]";
    let mut short = String::with_capacity(cut + MARK.len());
    short.push_str(&text[..cut]);
    short.push_str(MARK);
    short
}

impl logging::Host for CallState {
    fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        let level = match level {
            logging::Level::Trace => "trace",
            logging::Level::Debug => "debug",
            logging::Level::Info => "info",
            logging::Level::Warn => "warn",
            logging::Level::Error => "error",
            logging::Level::Critical => "critical",
        };
        match self.logs.len() {
            n if n < MAX_LOG_LINES => {
                // Redacted whole, then cut: a cut first could leave half a
                // secret where the redactor no longer sees it.
                let message = shortened(self.redactor.redact(&message), MAX_LOG_LINE);
                let context = shortened(self.redactor.redact(&context), MAX_CONTEXT);
                self.budget
                    .charge(Charge::Logs, message.len() + context.len())?;
                self.logs.push(LogLine {
                    level: level.to_owned(),
                    context,
                    message,
                    at: aerie_contract::now(),
                });
            }
            n if n == MAX_LOG_LINES => self.logs.push(LogLine {
                level: "warn".to_owned(),
                context: "aerie".to_owned(),
                message: format!("more than {MAX_LOG_LINES} log lines; the rest were dropped"),
                at: aerie_contract::now(),
            }),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_into_an_allocation_of_its_own_size() {
        let long = "é".repeat(1 << 19); // 1 MiB
        let cut = shortened(long, MAX_LOG_LINE);
        assert!(cut.ends_with(" [truncated]"));
        assert!(cut.len() <= MAX_LOG_LINE + " [truncated]".len());
        assert_eq!(cut.capacity(), cut.len());
        assert_eq!(shortened("short".to_owned(), 10), "short");
    }
}
