//! `rdap`: registration data for an IP address or a domain (RFC 9083 JSON
//! over RFC 7480 HTTP), the successor of whois.
//!
//! Which server to ask comes from IANA's bootstrap files (RFC 9224) when the
//! operator gives them — `dns.json`, `ipv4.json`, `ipv6.json` from
//! data.iana.org/rdap/ in the plugin's data folder — else from the
//! `base_url` setting, a redirector such as rdap.org by default. Redirects
//! are followed (three at most), each to an origin the operator granted.

mod bootstrap;
mod record;

use std::net::IpAddr;

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

struct Rdap;

impl Plugin for Rdap {
    fn actions() -> Actions {
        Actions::new().action(
            "lookup",
            "Who holds an IP address or a domain, since when, and whom to tell about abuse",
            lookup,
        )
    }
}

aerie_sdk::export!(Rdap);

const MAX_REDIRECTS: usize = 3;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// An IPv4 or IPv6 address, or a domain name.
    pub query: String,
}

fn lookup(input: Input) -> Result<record::Output, Error> {
    let query = input
        .query
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let (kind, path) = match query.parse::<IpAddr>() {
        Ok(ip) => (record::Kind::Ip, format!("ip/{ip}")),
        Err(_) if is_domain(&query) => (record::Kind::Domain, format!("domain/{query}")),
        Err(_) => {
            return Err(Error::invalid_input(format!(
                "`{}` is neither an IP address nor a domain name",
                input.query
            )));
        }
    };
    let base = match bootstrap::server(&query, kind)? {
        Some(server) => server,
        None => aerie_sdk::setting("base_url").unwrap_or_else(|| "https://rdap.org".to_owned()),
    };
    let mut url = format!("{}/{path}", base.trim_end_matches('/'));
    for _ in 0..=MAX_REDIRECTS {
        let response = http::get(&url)
            .header("accept", "application/rdap+json, application/json")
            .send()?;
        match response.status {
            200 => {
                let body: Value = response.json()?;
                return Ok(record::read(&query, kind, &body));
            }
            301 | 302 | 303 | 307 | 308 => {
                let location = response
                    .header("location")
                    .ok_or_else(|| Error::upstream(format!("{url} redirected nowhere")))?;
                url = resolve(&url, location);
            }
            404 => return Ok(record::Output::not_found(&query, kind)),
            status => return Err(api_error(status, &response)),
        }
    }
    Err(Error::upstream(format!(
        "more than {MAX_REDIRECTS} redirects looking up `{query}`"
    )))
}

/// A `Location` against the URL it answered: absolute as it is, `/path` on
/// the same origin, anything else beside the current path.
fn resolve(current: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let origin_end = current
        .find("://")
        .and_then(|scheme| current[scheme + 3..].find('/').map(|p| scheme + 3 + p))
        .unwrap_or(current.len());
    if location.starts_with('/') {
        return format!("{}{location}", &current[..origin_end]);
    }
    let directory = current
        .rfind('/')
        .filter(|&d| d >= origin_end)
        .unwrap_or(origin_end);
    format!("{}/{location}", &current[..directory])
}

fn is_domain(name: &str) -> bool {
    name.contains('.')
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// RFC 9083's `{"errorCode", "title", "description"}`.
fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<Value>()
        .ok()
        .and_then(|v| {
            v["title"]
                .as_str()
                .or(v["description"][0].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("status {status}"));
    match status {
        400 => Error::invalid_input(format!("the RDAP server refused the query ({detail})")),
        429 => Error::rate_limited(format!("the RDAP server's rate limit ({detail})")),
        500..=599 => Error::upstream(format!("the RDAP server failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("the RDAP server answered {status} ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_resolves_against_the_url_it_answered() {
        let at = "https://rdap.org/ip/1.2.3.4";
        assert_eq!(
            super::resolve(at, "https://rdap.apnic.net/ip/1.2.3.4"),
            "https://rdap.apnic.net/ip/1.2.3.4"
        );
        assert_eq!(
            super::resolve(at, "/registry/ip/1.2.3.4"),
            "https://rdap.org/registry/ip/1.2.3.4"
        );
        assert_eq!(super::resolve(at, "other"), "https://rdap.org/ip/other");
        assert_eq!(super::resolve("http://h:8/", "x"), "http://h:8/x");
    }
}
