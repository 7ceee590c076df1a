//! `panos`: a PAN-OS firewall's logs for an IP address over a time range,
//! through its XML API — a log query is a job: `type=log&log-type=...&query=`
//! enqueues it and answers its id, `type=log&action=get&job-id=` is polled
//! until the job is `FIN` and the entries are there (the firewall then
//! deletes the job). The API key travels in `X-PAN-KEY`, added by the broker.
//!
//! The address is checked to be one before it enters the query, so a value
//! cannot change the filter.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerie_sdk::{Actions, Error, ErrorCode, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct PanOs;

impl Plugin for PanOs {
    fn actions() -> Actions {
        Actions::new().action(
            "logs",
            "Traffic or threat logs for an IP address (source or destination)",
            logs,
        )
    }
}

aerie_sdk::export!(PanOs);

/// The most entries one query asks for (PAN-OS allows 5000).
const MAX_LOGS: u32 = 500;
/// How long the job is waited for, polled with backoff.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    Traffic,
    Threat,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The address, as source or destination.
    pub ip: String,
    /// How far back: `1h`, `24h`, `7d` (24h).
    #[serde(default = "day")]
    pub since: String,
    /// traffic (the default) or threat.
    #[serde(rename = "type", default = "traffic")]
    pub kind: LogType,
    /// The most entries (1 to 500; 100).
    #[serde(default = "hundred")]
    pub max: u32,
}

fn day() -> String {
    "24h".to_owned()
}

fn traffic() -> LogType {
    LogType::Traffic
}

fn hundred() -> u32 {
    100
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    pub ip: String,
    pub count: usize,
    /// `{time, src, dst, dport, app, action, rule, threat?}`, as the firewall lists them.
    pub entries: Vec<Value>,
    /// The query the firewall ran.
    pub query: String,
}

fn logs(input: Input) -> Result<Output, Error> {
    let ip: IpAddr = input
        .ip
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(format!("`{}` is not an IP address", input.ip)))?;
    if !(1..=MAX_LOGS).contains(&input.max) {
        return Err(Error::invalid_input(format!(
            "`max` must be 1 to {MAX_LOGS}, not {}",
            input.max
        )));
    }
    let since = since(&input.since)?;
    let base = aerie_sdk::setting("base_url")
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| Error::invalid_input("the `base_url` setting is not set"))?;
    let api = format!("{}/api/", base.trim_end_matches('/'));
    let query = format!(
        "(addr in {ip}) and (receive_time geq '{}')",
        firewall_time(since)?
    );
    let log_type = match input.kind {
        LogType::Traffic => "traffic",
        LogType::Threat => "threat",
    };
    let enqueued = get(&format!(
        "{api}?type=log&log-type={log_type}&nlogs={}&query={}",
        input.max,
        http::encode(&query)
    ))?;
    let job = text(&enqueued, "job").ok_or_else(|| Error::upstream("the firewall named no job"))?;
    if !job.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::upstream(format!(
            "the firewall named the job `{job}`"
        )));
    }
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        let polled = get(&format!("{api}?type=log&action=get&job-id={job}"))?;
        let finished = text(&polled, "status").as_deref() == Some("FIN");
        if finished {
            let entries = entries(&polled, input.kind);
            return Ok(Output {
                ip: ip.to_string(),
                count: entries.len(),
                entries,
                query,
            });
        }
        if started.elapsed() >= WAIT {
            // Best effort: the firewall need not keep working on it.
            let _ = get(&format!("{api}?type=log&action=finish&job-id={job}"));
            return Err(Error::new(
                ErrorCode::Timeout,
                format!(
                    "the firewall's log job {job} did not finish in {} s",
                    WAIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// One API call; its XML when the firewall says `success`.
fn get(url: &str) -> Result<String, Error> {
    let response = http::get(url).header("accept", "application/xml").send()?;
    let body = response.text()?;
    let document = roxmltree::Document::parse(&body).map_err(|e| {
        Error::upstream(format!(
            "the firewall answered {} with something that is not XML: {e}",
            response.status
        ))
    })?;
    let root = document.root_element();
    if root.attribute("status") == Some("success") && response.status == 200 {
        return Ok(body);
    }
    let message: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("msg") || n.has_tag_name("line"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let detail = if message.is_empty() {
        format!("status {}", response.status)
    } else {
        message.join("; ")
    };
    Err(match (response.status, root.attribute("code")) {
        (401 | 403, _) | (_, Some("403")) => {
            Error::unauthorized(format!("the firewall refused the API key ({detail})"))
        }
        (429, _) => Error::rate_limited(format!("the firewall's rate limit ({detail})")),
        (500..=599, _) => {
            Error::upstream(format!("the firewall failed ({detail})")).retryable(true)
        }
        _ => Error::upstream(format!("the firewall refused the query ({detail})")),
    })
}

/// The text of the first element named `tag`.
fn text(xml: &str, tag: &str) -> Option<String> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let found = document.descendants().find(|n| n.has_tag_name(tag))?;
    found.text().map(|t| t.trim().to_owned())
}

fn entries(xml: &str, kind: LogType) -> Vec<Value> {
    let Ok(document) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    document
        .descendants()
        .filter(|n| n.has_tag_name("entry"))
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .children()
                    .find(|c| c.has_tag_name(name))
                    .and_then(|c| c.text())
                    .map(str::to_owned)
            };
            let mut row = json!({
                "time": field("receive_time"),
                "src": field("src"),
                "dst": field("dst"),
                "dport": field("dport"),
                "app": field("app"),
                "action": field("action"),
                "rule": field("rule"),
            });
            if kind == LogType::Threat {
                row["threat"] = json!(field("threatid"));
                row["severity"] = json!(field("severity"));
            }
            row
        })
        .collect()
}

/// `24h`, `7d` as a duration.
fn since(text: &str) -> Result<Duration, Error> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: u64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::invalid_input(format!("`since: {text}`: give a span like 1h, 24h or 7d"))
    })?;
    match unit {
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        "d" => Ok(Duration::from_secs(number * 86_400)),
        _ => Err(Error::invalid_input(format!(
            "`since: {text}`: give a span like 1h, 24h or 7d"
        ))),
    }
}

/// Now less `ago`, as PAN-OS writes times in a filter (`2026/12/04 10:00:00`,
/// the firewall's clock taken as UTC).
fn firewall_time(ago: Duration) -> Result<String, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::internal("the clock is before 1970"))?;
    let seconds = now.saturating_sub(ago).as_secs() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    Ok(format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

/// Days since 1970-01-01 as a date (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_792), (2026, 12, 5));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn entries_and_errors_are_read_from_the_xml() {
        let xml = r#"<response status="success"><result><job><status>FIN</status></job><log><logs count="1" progress="100"><entry logid="7"><receive_time>2026/12/05 10:00:00</receive_time><src>10.0.0.5</src><dst>185.220.101.1</dst><dport>443</dport><app>ssl</app><action>allow</action><rule>outbound</rule></entry></logs></log></result></response>"#;
        let rows = entries(xml, LogType::Traffic);
        assert_eq!(rows[0]["dst"], "185.220.101.1");
        assert_eq!(text(xml, "status").as_deref(), Some("FIN"));
    }
}
