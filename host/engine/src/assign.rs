//! Who a new case goes to when it names nobody: the site's assignment rules
//! (`[[cases.assign]]` in aerie.toml), the first that matches the case's type
//! and the time of day. A rule names a user, or a group whose members take
//! turns (the turn is kept by the store, so servers sharing it agree).
//!
//! The seed's SOC assigns by time of day: the day shift's analysts in office
//! hours, the on-call engineer at night.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The rules, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    kind: Option<String>,
    hours: Option<Hours>,
    target: Target,
}

/// Local minutes since midnight, from and to (a span past midnight wraps).
#[derive(Debug, Clone)]
struct Hours {
    from: u16,
    to: u16,
    zone: TimeZone,
}

#[derive(Debug, Clone)]
enum Target {
    User(String),
    /// The group's members, by name, who take turns.
    Turns {
        group: String,
        members: Vec<String>,
    },
}

/// What a rule says for a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick<'a> {
    User(&'a str),
    /// The member whose turn it is; `key` names the rule's turn counter.
    Turn {
        key: String,
        members: &'a [String],
    },
}

/// One rule as the operator wrote it.
#[derive(Debug, Clone, Default)]
pub struct RuleSpec<'a> {
    /// Cases of this type only (any type when absent).
    pub kind: Option<&'a str>,
    /// `08:00-17:00`, local to `tz` (UTC when absent).
    pub hours: Option<&'a str>,
    pub tz: Option<&'a str>,
    /// A user, or:
    pub to: Option<&'a str>,
    /// a group whose members (`members`) take turns.
    pub round_robin: Option<&'a str>,
    pub members: Vec<String>,
}

impl Assignment {
    /// The rules, checked: each names one user or one group with members,
    /// hours as `HH:MM-HH:MM` and a time zone that exists.
    pub fn new(specs: &[RuleSpec<'_>]) -> Result<Assignment, String> {
        let mut rules = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let whose = format!("cases.assign[{index}]");
            let target = match (spec.to, spec.round_robin) {
                (Some(user), None) => Target::User(user.to_owned()),
                (None, Some(group)) if spec.members.is_empty() => {
                    return Err(format!(
                        "{whose}: group `{group}` has no members in [users] to take turns"
                    ));
                }
                (None, Some(group)) => {
                    let mut members = spec.members.clone();
                    members.sort();
                    members.dedup();
                    Target::Turns {
                        group: group.to_owned(),
                        members,
                    }
                }
                _ => {
                    return Err(format!(
                        "{whose}: give one of `to` (a user) or `round_robin` (a group)"
                    ));
                }
            };
            let hours = match spec.hours {
                None if spec.tz.is_some() => {
                    return Err(format!("{whose}: `tz` goes with `hours`"));
                }
                None => None,
                Some(hours) => {
                    Some(Hours::parse(hours, spec.tz).map_err(|e| format!("{whose}: {e}"))?)
                }
            };
            rules.push(Rule {
                kind: spec.kind.map(str::to_owned),
                hours,
                target,
            });
        }
        Ok(Assignment { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the first rule matching a case of type `kind` at `now_ms` says;
    /// nothing when none matches.
    pub fn pick(&self, kind: &str, now_ms: i64) -> Option<Pick<'_>> {
        let (index, rule) = self.rules.iter().enumerate().find(|(_, rule)| {
            rule.kind
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case(kind))
                && rule.hours.as_ref().is_none_or(|h| h.holds(now_ms))
        })?;
        Some(match &rule.target {
            Target::User(user) => Pick::User(user),
            Target::Turns { group, members } => Pick::Turn {
                key: format!("{index}:{group}"),
                members,
            },
        })
    }
}

impl Hours {
    fn parse(text: &str, tz: Option<&str>) -> Result<Hours, String> {
        let minutes = |part: &str| -> Option<u16> {
            let (h, m) = part.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
        };
        let (from, to) = text
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
            .filter(|(a, b)| a != b)
            .ok_or_else(|| {
                format!("`hours = \"{text}\"`: give a span of local time, `08:00-17:00`")
            })?;
        let zone = match tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("`tz = \"{name}\"` is not a time zone (an IANA name such as Europe/Berlin)")
            })?,
        };
        Ok(Hours { from, to, zone })
    }

    fn holds(&self, now_ms: i64) -> bool {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return false;
        };
        let local = now.to_zoned(self.zone.clone());
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if self.from < self.to {
            (self.from..self.to).contains(&minute)
        } else {
            // Past midnight: 22:00-06:00.
            minute >= self.from || minute < self.to
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 (a Monday) at `hh:mm` UTC.
    fn at(hh: i64, mm: i64) -> i64 {
        1_796_601_600_000 + (hh * 60 + mm) * 60_000
    }

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_first_rule_matching_type_and_hour_decides() {
        let rules = Assignment::new(&[
            RuleSpec {
                kind: Some("Phishing"),
                to: Some("pat"),
                ..RuleSpec::default()
            },
            RuleSpec {
                hours: Some("08:00-17:00"),
                tz: Some("Europe/Berlin"),
                round_robin: Some("day"),
                members: members(&["bob", "alice", "bob"]),
                ..RuleSpec::default()
            },
            RuleSpec {
                hours: Some("17:00-08:00"),
                tz: Some("Europe/Berlin"),
                to: Some("oncall"),
                ..RuleSpec::default()
            },
        ])
        .unwrap();
        assert_eq!(rules.pick("phishing", at(3, 0)), Some(Pick::User("pat")));
        // 09:30 UTC is 10:30 in Berlin: the day shift, in turns, sorted once.
        let day = rules.pick("Investigation", at(9, 30));
        let names = members(&["alice", "bob"]);
        assert_eq!(
            day,
            Some(Pick::Turn {
                key: "1:day".to_owned(),
                members: &names
            })
        );
        // 16:30 UTC is 17:30 in Berlin: past the day shift, the night's span wraps midnight.
        assert_eq!(
            rules.pick("Investigation", at(16, 30)),
            Some(Pick::User("oncall"))
        );
        assert_eq!(
            rules.pick("Investigation", at(2, 0)),
            Some(Pick::User("oncall"))
        );
        assert_eq!(Assignment::default().pick("x", at(2, 0)), None);
    }

    #[test]
    fn a_rule_that_cannot_be_followed_is_refused_by_name() {
        let refused = |spec: RuleSpec<'_>| Assignment::new(&[spec]).unwrap_err();
        assert!(refused(RuleSpec::default()).contains("give one of `to`"));
        assert!(
            refused(RuleSpec {
                round_robin: Some("night"),
                ..RuleSpec::default()
            })
            .contains("`night` has no members")
        );
        assert!(
            refused(RuleSpec {
                to: Some("a"),
                hours: Some("9-5"),
                ..RuleSpec::default()
            })
            .contains("`08:00-17:00`")
        );
        assert!(
            refused(RuleSpec {
                to: Some("a"),
                hours: Some("08:00-17:00"),
                tz: Some("Mars/Olympus"),
                ..RuleSpec::default()
            })
            .contains("not a time zone")
        );
        assert!(
            refused(RuleSpec {
                to: Some("a"),
                tz: Some("UTC"),
                ..RuleSpec::default()
            })
            .contains("`tz` goes with `hours`")
        );
    }
}
