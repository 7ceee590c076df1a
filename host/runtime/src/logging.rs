//! `wasi:logging`: a plugin's log lines, secrets redacted, each line and the
//! number of lines per call capped; the run keeps them (the engine caps them
//! again per step).

use aerie_contract::LogLine;

use crate::bindings::logging;
use crate::state::CallState;

/// Log lines kept per call; a plugin that logs more is not stopped, but the rest
/// is dropped and one line says so.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_LINE: usize = 4096;

impl logging::Host for CallState {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
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
                let mut message = self.redactor.redact(&message);
                if message.len() > MAX_LOG_LINE {
                    let cut = (0..=MAX_LOG_LINE)
                        .rev()
                        .find(|&i| message.is_char_boundary(i))
                        .unwrap_or(0);
                    message.truncate(cut);
                    message.push_str(" [truncated]");
                }
                self.logs.push(LogLine {
                    level: level.to_owned(),
                    context: self.redactor.redact(&context),
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
    }
}
