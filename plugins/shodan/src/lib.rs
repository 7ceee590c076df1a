//! `shodan`: what Shodan has seen on an IP address (`GET /shodan/host/{ip}`).
//!
//! The API key never reaches this code: the broker adds it as the `key`
//! query parameter on the way out.

use std::net::IpAddr;

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

struct Shodan;

impl Plugin for Shodan {
    fn actions() -> Actions {
        Actions::new().action("host", "Look an IP address up in Shodan", host)
    }
}

aerie_sdk::export!(Shodan);

/// Tags Shodan gives hosts it has seen doing harm.
const HARMFUL_TAGS: &[&str] = &["c2", "malware", "compromised"];
/// Services listed at most; a host can have hundreds.
const MAX_SERVICES: usize = 50;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub ip: String,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Output {
    pub ip: String,
    /// Shodan has a record of it.
    pub found: bool,
    pub ports: Vec<u64>,
    pub hostnames: Vec<String>,
    pub org: Option<String>,
    pub isp: Option<String>,
    pub asn: Option<String>,
    pub os: Option<String>,
    pub country: Option<String>,
    pub tags: Vec<String>,
    /// CVE ids Shodan associates with the host's services.
    pub vulns: Vec<String>,
    /// `{port, transport, product}` of each service seen, at most 50.
    pub services: Vec<Value>,
    /// A tag says it does harm: c2, malware or compromised.
    pub malicious: bool,
    /// `malicious`, `clean` or `unknown` (not in Shodan).
    pub verdict: String,
}

#[derive(Deserialize)]
struct Host {
    #[serde(default)]
    ports: Vec<u64>,
    #[serde(default)]
    hostnames: Vec<String>,
    org: Option<String>,
    isp: Option<String>,
    asn: Option<String>,
    os: Option<String>,
    country_code: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// A list, or (with `minify=false` on some plans) a map keyed by CVE.
    #[serde(default)]
    vulns: Value,
    #[serde(default)]
    data: Vec<Value>,
}

fn host(input: Input) -> Result<Output, Error> {
    let ip: IpAddr = input
        .ip
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(format!("`{}` is not an IP address", input.ip)))?;
    let base = aerie_sdk::setting("base_url").unwrap_or_else(|| "https://api.shodan.io".to_owned());
    let response = http::get(&format!("{}/shodan/host/{ip}", base.trim_end_matches('/')))
        .header("accept", "application/json")
        .send()?;
    let not_found = Output {
        ip: ip.to_string(),
        verdict: "unknown".to_owned(),
        ..Output::default()
    };
    match response.status {
        200 => {}
        404 => return Ok(not_found),
        status => return Err(api_error(status, &response)),
    }
    let host: Host = response.json()?;
    let vulns = match host.vulns {
        Value::Array(list) => list
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let services = host
        .data
        .iter()
        .take(MAX_SERVICES)
        .map(|banner| {
            serde_json::json!({
                "port": banner["port"],
                "transport": banner["transport"],
                "product": banner["product"],
            })
        })
        .collect();
    let malicious = host.tags.iter().any(|t| HARMFUL_TAGS.contains(&t.as_str()));
    Ok(Output {
        ip: ip.to_string(),
        found: true,
        ports: host.ports,
        hostnames: host.hostnames,
        org: host.org,
        isp: host.isp,
        asn: host.asn,
        os: host.os,
        country: host.country_code,
        tags: host.tags,
        vulns,
        services,
        malicious,
        verdict: if malicious { "malicious" } else { "clean" }.to_owned(),
    })
}

/// Shodan's `{"error": "..."}` with the code its status means.
fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<Value>()
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("status {status}"));
    match status {
        401 => Error::unauthorized(format!("Shodan refused the API key ({detail})")),
        // Keys without a membership get 403 on host lookups.
        403 => Error::unauthorized(format!(
            "Shodan denied the lookup; host lookups need a paid membership ({detail})"
        )),
        429 => Error::rate_limited(format!("Shodan's rate limit ({detail})")),
        400 => Error::invalid_input(format!("Shodan refused the request ({detail})")),
        500..=599 => Error::upstream(format!("Shodan failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("Shodan answered {status} ({detail})")),
    }
}
