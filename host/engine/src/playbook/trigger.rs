//! What starts a playbook. Checked here; the server serves webhook, mail and
//! cron triggers, and `aerie run` starts any playbook by hand.

use std::str::FromStr as _;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `trigger: { manual: {} }`, `{ webhook: { name: alerts } }`,
/// `{ mail: { mailbox: soc } }` or `{ cron: "*/5 * * * *" }` (or
/// `{ cron: { schedule, tz, missed, overlap } }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Webhook {
        /// A `[webhooks.NAME]` of aerie.toml, served at `POST /hooks/NAME`;
        /// the operator's config holds its secret, the playbook only its name.
        name: String,
        /// Request headers passed to the run as `inputs.headers` (lowercase).
        headers: Vec<String>,
        /// Repeats folded into the run their key started, before a run starts.
        dedupe: Option<TriggerDedupe>,
    },
    Mail {
        /// A mailbox name from aerie.toml.
        mailbox: String,
    },
    Cron(Schedule),
}

/// Where a de-duplication window is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFrom {
    /// A repeat within the window of the key's first sighting folds.
    First,
    /// A sliding gap: each repeat extends the window, and a gap longer than
    /// it starts anew (the seed's "a 5 min break signifies a new unique alert").
    Last,
}

impl WindowFrom {
    pub const ALL: [(&'static str, WindowFrom); 2] =
        [("first", WindowFrom::First), ("last", WindowFrom::Last)];
}

/// Whether a rendered dedupe key names nothing: empty, or only the
/// separators of a compound key whose fields were all missing (`|`).
pub fn key_names_nothing(key: &str) -> bool {
    !key.chars().any(char::is_alphanumeric)
}

/// `dedupe: { key, window, window_from }` on a webhook trigger: a request
/// whose rendered key repeats one seen within the window starts no run; it
/// is recorded on the run the key started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDedupe {
    /// A template over `inputs.body` and `inputs.headers`.
    pub key: crate::playbook::Text,
    pub window: std::time::Duration,
    pub from: WindowFrom,
}

/// A cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Five fields (minute, hour, day of month, month, day of week), or six
    /// with seconds first.
    pub spec: String,
    /// An IANA time zone (`Europe/London`) the fields are read in; UTC when
    /// not given.
    pub tz: Option<String>,
    pub missed: Missed,
    pub overlap: Overlap,
}

/// What a schedule does with ticks that passed while no server ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Missed {
    /// One run catches up for all of them (the default); the others are
    /// recorded as missed.
    #[default]
    RunOnce,
    /// None runs; each is recorded as missed.
    Skip,
}

impl Missed {
    pub const ALL: [(&'static str, Missed); 2] =
        [("run_once", Missed::RunOnce), ("skip", Missed::Skip)];

    pub fn as_str(self) -> &'static str {
        match self {
            Missed::RunOnce => "run_once",
            Missed::Skip => "skip",
        }
    }
}

/// What a tick does while the playbook's previous run has not finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overlap {
    /// It is recorded as missed (the default): a pull every five minutes
    /// that once takes seven does not run twice at once.
    #[default]
    Skip,
    /// It runs anyway.
    Allow,
}

impl Overlap {
    pub const ALL: [(&'static str, Overlap); 2] =
        [("skip", Overlap::Skip), ("allow", Overlap::Allow)];

    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }
}

impl Schedule {
    /// The schedule every few minutes, in UTC, with the defaults.
    pub fn every(spec: &str) -> Schedule {
        Schedule {
            spec: spec.to_owned(),
            tz: None,
            missed: Missed::default(),
            overlap: Overlap::default(),
        }
    }

    /// The parsed fields and the zone they are read in; the error names the
    /// field or the zone.
    pub fn timetable(&self) -> Result<Timetable, String> {
        let fields = self.spec.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "cron `{}` needs 5 fields (minute hour day month weekday), or 6 with seconds first",
                self.spec
            ));
        }
        let cron = Cron::from_str(&self.spec)
            .map_err(|e| format!("cron `{}`: {}{e}", self.spec, culprit(&self.spec)))?;
        let zone = match &self.tz {
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("cron tz `{name}` is not a time zone (an IANA name such as Europe/London)")
            })?,
            None => TimeZone::UTC,
        };
        Ok(Timetable { cron, zone })
    }
}

/// A schedule, parsed: when it ticks.
#[derive(Debug, Clone)]
pub struct Timetable {
    cron: Cron,
    zone: TimeZone,
}

impl Timetable {
    /// The ticks after `after_ms` up to and including `until_ms`, oldest
    /// first, at most `limit` of them (the oldest).
    pub fn ticks(&self, after_ms: i64, until_ms: i64, limit: usize) -> Vec<i64> {
        let Ok(after) = Timestamp::from_millisecond(after_ms) else {
            return Vec::new();
        };
        self.cron
            .iter_after(after.to_zoned(self.zone.clone()))
            .map(|tick| tick.timestamp().as_millisecond())
            .take_while(|&tick| tick <= until_ms)
            .take(limit)
            .collect()
    }

    /// The latest tick at or before `until_ms`.
    pub fn latest(&self, until_ms: i64) -> Option<i64> {
        let until = Timestamp::from_millisecond(until_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&until, true)
            .ok()
            .map(|tick| tick.timestamp().as_millisecond())
    }

    /// The first tick after `after_ms`.
    pub fn next(&self, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|tick| tick.timestamp().as_millisecond())
    }
}

/// Which field of a pattern croner refuses, as `the minute field `61`: `:
/// croner's own error does not say. Each field is tried alone, the others
/// `*`.
fn culprit(spec: &str) -> String {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let names: &[&str] = if fields.len() == 6 {
        &[
            "second",
            "minute",
            "hour",
            "day of month",
            "month",
            "day of week",
        ]
    } else {
        &["minute", "hour", "day of month", "month", "day of week"]
    };
    for (i, field) in fields.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        if Cron::from_str(&probe.join(" ")).is_err() {
            return format!("the {} field `{field}`: ", names[i]);
        }
    }
    String::new()
}

impl Trigger {
    /// What is wrong with the trigger's values, if anything.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Trigger::Manual | Trigger::Mail { .. } => Ok(()),
            Trigger::Webhook { name, headers, .. } => {
                aerie_contract::check_webhook_name(name)?;
                match headers.iter().find(|h| {
                    h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }) {
                    Some(header) => Err(format!("webhook header `{header}` is not a header name")),
                    None => Ok(()),
                }
            }
            Trigger::Cron(schedule) => schedule.timetable().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn ticks_follow_the_fields_in_the_zone() {
        let every_five = Schedule::every("*/5 * * * *").timetable().unwrap();
        assert_eq!(
            every_five.ticks(ms("2026-12-02T10:03:00Z"), ms("2026-12-02T10:20:00Z"), 10),
            [
                ms("2026-12-02T10:05:00Z"),
                ms("2026-12-02T10:10:00Z"),
                ms("2026-12-02T10:15:00Z"),
                ms("2026-12-02T10:20:00Z")
            ]
        );
        assert_eq!(
            every_five
                .ticks(ms("2026-12-02T10:03:00Z"), ms("2026-12-02T10:20:00Z"), 2)
                .len(),
            2
        );
        assert_eq!(
            every_five.latest(ms("2026-12-02T10:07:00Z")),
            Some(ms("2026-12-02T10:05:00Z"))
        );
        assert_eq!(
            every_five.next(ms("2026-12-02T10:05:00Z")),
            Some(ms("2026-12-02T10:10:00Z"))
        );
        // 08:00 in London is 08:00 UTC in winter and 07:00 UTC in summer.
        let london = Schedule {
            tz: Some("Europe/London".to_owned()),
            ..Schedule::every("0 8 * * *")
        }
        .timetable()
        .unwrap();
        assert_eq!(
            london.next(ms("2026-12-02T00:00:00Z")),
            Some(ms("2026-12-02T08:00:00Z"))
        );
        assert_eq!(
            london.next(ms("2026-07-01T00:00:00Z")),
            Some(ms("2026-07-01T07:00:00Z"))
        );
        // Sunday is 0 and 7; day of month OR day of week, as in Vixie cron.
        let sunday = Schedule::every("0 0 * * 7").timetable().unwrap();
        assert_eq!(
            sunday.next(ms("2026-12-02T00:00:00Z")),
            Some(ms("2026-12-06T00:00:00Z"))
        );
        let seconds = Schedule::every("*/10 * * * * *").timetable().unwrap();
        assert_eq!(
            seconds.next(ms("2026-12-02T00:00:01Z")),
            Some(ms("2026-12-02T00:00:10Z"))
        );
    }

    #[test]
    fn a_bad_schedule_names_what_is_wrong() {
        for (spec, tz, message) in [
            ("* * * *", None, "needs 5 fields"),
            ("61 * * * *", None, "cron `61 * * * *`: "),
            ("* * * * MONDAY", None, "cron `* * * * MONDAY`: "),
            (
                "0 8 * * *",
                Some("Mars/Olympus"),
                "cron tz `Mars/Olympus` is not a time zone",
            ),
        ] {
            let schedule = Schedule {
                tz: tz.map(str::to_owned),
                ..Schedule::every(spec)
            };
            let err = schedule.timetable().unwrap_err();
            assert!(err.contains(message), "{spec}: {err}");
        }
    }
}
