//! `safebrowsing`: URLs and domains checked against Google Safe Browsing's
//! lists with the v4 Lookup API (`POST /v4/threatMatches:find`).
//!
//! A domain is checked as `http://DOMAIN/`, the form the lists hold hosts
//! in. The API key is added by the broker as the `key` query parameter.

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct SafeBrowsing;

impl Plugin for SafeBrowsing {
    fn actions() -> Actions {
        Actions::new().action(
            "check",
            "Check URLs and domains against Safe Browsing's threat lists",
            check,
        )
    }
}

aerie_sdk::export!(SafeBrowsing);

/// The most entries one request may carry (the API's limit).
const MAX_ENTRIES: usize = 500;
const THREAT_TYPES: &[&str] = &[
    "MALWARE",
    "SOCIAL_ENGINEERING",
    "UNWANTED_SOFTWARE",
    "POTENTIALLY_HARMFUL_APPLICATION",
];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// URLs (`https://...`) and bare domains, at most 500.
    pub urls: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// How many entries were checked.
    pub checked: usize,
    /// `{url, threat_type, platform}` for each listed entry.
    pub matches: Vec<Value>,
    pub malicious: bool,
    /// `malicious` or `clean`.
    pub verdict: String,
}

fn check(input: Input) -> Result<Output, Error> {
    if input.urls.is_empty() {
        return Err(Error::invalid_input("`urls` is empty"));
    }
    if input.urls.len() > MAX_ENTRIES {
        return Err(Error::invalid_input(format!(
            "{} entries: Safe Browsing takes at most {MAX_ENTRIES} in one request",
            input.urls.len()
        )));
    }
    let entries: Vec<Value> = input
        .urls
        .iter()
        .map(|u| json!({ "url": as_url(u) }))
        .collect();
    let base = aerie_sdk::setting("base_url")
        .unwrap_or_else(|| "https://safebrowsing.googleapis.com".to_owned());
    let client = aerie_sdk::setting("client_id").unwrap_or_else(|| "aerie".to_owned());
    let body = json!({
        "client": { "clientId": client, "clientVersion": env!("CARGO_PKG_VERSION") },
        "threatInfo": {
            "threatTypes": THREAT_TYPES,
            "platformTypes": ["ANY_PLATFORM"],
            "threatEntryTypes": ["URL"],
            "threatEntries": entries,
        },
    });
    let response = http::post(&format!(
        "{}/v4/threatMatches:find",
        base.trim_end_matches('/')
    ))
    .header("accept", "application/json")
    .json(&body)?
    .send()?;
    if response.status != 200 {
        return Err(api_error(response.status, &response));
    }
    // No match is an empty object: `{}`.
    let found: Value = response.json()?;
    let matches: Vec<Value> = found["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            json!({
                "url": m["threat"]["url"],
                "threat_type": m["threatType"],
                "platform": m["platformType"],
            })
        })
        .collect();
    let malicious = !matches.is_empty();
    Ok(Output {
        checked: entries.len(),
        matches,
        malicious,
        verdict: if malicious { "malicious" } else { "clean" }.to_owned(),
    })
}

/// A bare domain as the URL the lists hold it under.
fn as_url(entry: &str) -> String {
    let entry = entry.trim();
    if entry.contains("://") {
        entry.to_owned()
    } else {
        format!("http://{entry}/")
    }
}

/// Google's `{"error": {"code", "message", "status"}}` with the code its
/// status means.
fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<Value>()
        .ok()
        .map(|v| {
            format!(
                "{}: {}",
                v["error"]["status"].as_str().unwrap_or("?"),
                v["error"]["message"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_else(|| format!("status {status}"));
    match status {
        // Google answers a bad key 400 INVALID_ARGUMENT, not 401.
        400 if detail.contains("API key") => {
            Error::unauthorized(format!("Safe Browsing refused the API key ({detail})"))
        }
        400 => Error::invalid_input(format!("Safe Browsing refused the request ({detail})")),
        401 | 403 => Error::unauthorized(format!("Safe Browsing refused the API key ({detail})")),
        429 => Error::rate_limited(format!("Safe Browsing's quota ({detail})")),
        500..=599 => Error::upstream(format!("Safe Browsing failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("Safe Browsing answered {status} ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_domain_is_checked_as_its_root_url() {
        assert_eq!(super::as_url("evil.example"), "http://evil.example/");
        assert_eq!(
            super::as_url("https://evil.example/x"),
            "https://evil.example/x"
        );
    }
}
