//! What starts a playbook. Checked here; the server serves webhook, mail and
//! cron triggers, and `aerie run` starts any playbook by hand.

/// `trigger: { manual: {} }`, `{ webhook: { name: alerts } }`,
/// `{ mail: { mailbox: soc } }` or `{ cron: "*/5 * * * *" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Webhook {
        /// A `[webhooks.NAME]` of aerie.toml, served at `POST /hooks/NAME`;
        /// the operator's config holds its secret, the playbook only its name.
        name: String,
        /// Request headers passed to the run as `inputs.headers` (lowercase).
        headers: Vec<String>,
    },
    Mail {
        /// A mailbox name from aerie.toml.
        mailbox: String,
    },
    /// Five fields: minute, hour, day of month, month, day of week.
    Cron(String),
}

impl Trigger {
    /// What is wrong with the trigger's values, if anything.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Trigger::Manual | Trigger::Mail { .. } => Ok(()),
            Trigger::Webhook { name, headers } => {
                let valid =
                    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
                if name.is_empty() || !name.chars().all(valid) {
                    return Err(format!(
                        "webhook name `{name}` may use only a-z, 0-9, `-` and `_` (it is a URL path segment)"
                    ));
                }
                match headers.iter().find(|h| {
                    h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }) {
                    Some(header) => Err(format!("webhook header `{header}` is not a header name")),
                    None => Ok(()),
                }
            }
            Trigger::Cron(spec) => {
                let fields: Vec<&str> = spec.split_whitespace().collect();
                let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
                if fields.len() != 5 {
                    return Err(format!(
                        "cron `{spec}` needs 5 fields (minute hour day month weekday)"
                    ));
                }
                for (field, (low, high)) in fields.iter().zip(ranges) {
                    cron_field(field, low, high)
                        .map_err(|why| format!("cron `{spec}`: `{field}` {why}"))?;
                }
                Ok(())
            }
        }
    }
}

/// One cron field: `*`, `*/N`, or a comma list of `A`, `A-B`, `A-B/N`.
fn cron_field(field: &str, low: u32, high: u32) -> Result<(), String> {
    let number = |text: &str| -> Result<u32, String> {
        let n: u32 = text
            .parse()
            .map_err(|_| format!("has `{text}`, which is not a number"))?;
        if (low..=high).contains(&n) {
            Ok(n)
        } else {
            Err(format!("has {n}, outside {low}-{high}"))
        }
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            let step: u32 = step
                .parse()
                .map_err(|_| format!("has step `{step}`, which is not a number"))?;
            if step == 0 {
                return Err("has a step of 0".to_owned());
            }
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) if number(a)? > number(b)? => {
                return Err(format!("has the empty range {range}"));
            }
            Some(_) => {}
            None => {
                number(range)?;
            }
        }
    }
    Ok(())
}
