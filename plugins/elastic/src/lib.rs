//! `elastic`: a SIEM's events in Elasticsearch — those that mention an
//! indicator, or come from a host, over a time range (`POST
//! /{index}/_search` with a query the plugin builds).
//!
//! The indicator is matched as a phrase across the events' fields
//! (`multi_match`, lenient), so it is data, never query syntax: a value like
//! `*) OR (*` finds itself, not everything. The credential — an API key or a
//! read-only user — is added by the host's broker.

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Elastic;

impl Plugin for Elastic {
    fn actions() -> Actions {
        Actions::new().action(
            "search",
            "Events mentioning an indicator, or from a host, over the last hours or weeks",
            search,
        )
    }
}

aerie_sdk::export!(Elastic);

/// The most events one search returns.
const MAX_SIZE: u32 = 500;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// An IP, domain, URL, hash... matched as a phrase in any field.
    pub indicator: Option<String>,
    /// A host name, matched against `host.name`.
    pub host: Option<String>,
    /// How far back: `24h`, `7d`, `4w` (24h).
    #[serde(default = "day")]
    pub since: String,
    /// The most events to return (1 to 500; 50).
    #[serde(default = "fifty")]
    pub size: u32,
    /// The index or pattern; the `index` setting when absent.
    pub index: Option<String>,
}

fn day() -> String {
    "24h".to_owned()
}

fn fifty() -> u32 {
    50
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Events that matched, as Elasticsearch counts them.
    pub total: u64,
    /// `eq`, or `gte` when Elasticsearch stopped counting.
    pub relation: String,
    /// `{index, id, timestamp, source}`, newest first.
    pub hits: Vec<Value>,
    /// More matched than were returned.
    pub truncated: bool,
}

fn search(input: Input) -> Result<Output, Error> {
    let base = aerie_sdk::setting("base_url")
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| Error::invalid_input("the `base_url` setting is not set"))?;
    let index = input
        .index
        .or_else(|| aerie_sdk::setting("index"))
        .unwrap_or_else(|| "logs-*".to_owned());
    if index.is_empty()
        || !index
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*,".contains(&b))
    {
        return Err(Error::invalid_input(format!(
            "`{index}` is not an index name or pattern"
        )));
    }
    let time_field = aerie_sdk::setting("time_field").unwrap_or_else(|| "@timestamp".to_owned());
    let since = since(&input.since)?;
    if !(1..=MAX_SIZE).contains(&input.size) {
        return Err(Error::invalid_input(format!(
            "`size` must be 1 to {MAX_SIZE}, not {}",
            input.size
        )));
    }
    let mut filter = vec![json!({ "range": { &time_field: { "gte": format!("now-{since}") } } })];
    match (
        input.indicator.as_deref().map(str::trim),
        input.host.as_deref().map(str::trim),
    ) {
        (None | Some(""), None | Some("")) => {
            return Err(Error::invalid_input("give `indicator`, `host`, or both"));
        }
        (indicator, host) => {
            if let Some(indicator) = indicator.filter(|i| !i.is_empty()) {
                filter.push(json!({ "multi_match": { "query": indicator, "type": "phrase", "fields": ["*"], "lenient": true } }));
            }
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                filter.push(json!({ "term": { "host.name": host } }));
            }
        }
    }
    let body = json!({
        "size": input.size,
        "track_total_hits": true,
        "sort": [{ &time_field: { "order": "desc" } }],
        "query": { "bool": { "filter": filter } },
    });
    let response = http::post(&format!("{}/{index}/_search", base.trim_end_matches('/')))
        .header("accept", "application/json")
        .json(&body)?
        .send()?;
    if response.status != 200 {
        return Err(api_error(response.status, &response));
    }
    let answer: Value = response.json()?;
    let hits: Vec<Value> = answer["hits"]["hits"]
        .as_array()
        .ok_or_else(|| Error::upstream("Elasticsearch's answer has no hits"))?
        .iter()
        .map(|hit| {
            json!({
                "index": hit["_index"],
                "id": hit["_id"],
                "timestamp": hit["_source"][&time_field],
                "source": hit["_source"],
            })
        })
        .collect();
    let total = answer["hits"]["total"]["value"]
        .as_u64()
        .unwrap_or(hits.len() as u64);
    Ok(Output {
        truncated: total > hits.len() as u64,
        relation: answer["hits"]["total"]["relation"]
            .as_str()
            .unwrap_or("eq")
            .to_owned(),
        total,
        hits,
    })
}

/// `24h`, `7d`, `4w` as Elasticsearch date math (`24h`, `7d`, `28d`).
fn since(text: &str) -> Result<String, Error> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: u32 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::invalid_input(format!("`since: {text}`: give a span like 24h, 7d or 4w"))
    })?;
    match unit {
        "m" | "h" | "d" => Ok(format!("{number}{unit}")),
        "w" => Ok(format!("{}d", number * 7)),
        _ => Err(Error::invalid_input(format!(
            "`since: {text}`: give a span like 24h, 7d or 4w"
        ))),
    }
}

/// Elasticsearch's `{"error": {"type", "reason"}, "status"}`.
fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<Value>()
        .ok()
        .map(|v| {
            format!(
                "{}: {}",
                v["error"]["type"].as_str().unwrap_or("error"),
                v["error"]["reason"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_else(|| format!("status {status}"));
    match status {
        400 => Error::invalid_input(format!("Elasticsearch refused the search ({detail})")),
        401 | 403 => {
            Error::unauthorized(format!("Elasticsearch refused the credential ({detail})"))
        }
        404 => Error::not_found(format!("Elasticsearch has no such index ({detail})")),
        429 => Error::rate_limited(format!("Elasticsearch is rejecting searches ({detail})")),
        500..=599 => Error::upstream(format!("Elasticsearch failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("Elasticsearch answered {status} ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_become_date_math() {
        assert_eq!(super::since("4w").unwrap(), "28d");
        assert_eq!(super::since("24h").unwrap(), "24h");
        assert!(super::since("soon").is_err());
        assert!(super::since("0d").is_err());
    }
}
