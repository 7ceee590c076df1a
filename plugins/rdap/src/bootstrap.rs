//! IANA's RDAP bootstrap files (RFC 9224), read from the data folder when the
//! operator puts them there: `{"services": [[[entries...], [urls...]], ...]}`,
//! entries being TLDs (`dns.json`) or CIDR blocks (`ipv4.json`, `ipv6.json`).

use std::net::IpAddr;

use aerie_sdk::Error;
use serde_json::Value;

use crate::record::Kind;

const FOLDER: &str = "/data";

/// The server the bootstrap names for `query`, if the operator gave the file
/// that would: the longest matching block, or the TLD's entry; its `https`
/// URL first.
pub fn server(query: &str, kind: Kind) -> Result<Option<String>, Error> {
    let file = match (kind, query.parse::<IpAddr>()) {
        (Kind::Ip, Ok(IpAddr::V4(_))) => "ipv4.json",
        (Kind::Ip, _) => "ipv6.json",
        (Kind::Domain, _) => "dns.json",
    };
    let path = format!("{FOLDER}/{file}");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let registry: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid_input(format!("{file} in the data folder is not JSON: {e}")))?;
    let services = registry["services"].as_array().ok_or_else(|| {
        Error::invalid_input(format!("{file} in the data folder has no `services` list"))
    })?;
    let mut best: Option<(u32, &Value)> = None;
    for service in services {
        for entry in service[0]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let score = match kind {
                Kind::Domain => tld_match(query, entry),
                Kind::Ip => cidr_match(query, entry),
            };
            if let Some(score) = score.filter(|s| best.is_none_or(|(b, _)| *s > b)) {
                best = Some((score, &service[1]));
            }
        }
    }
    let Some((_, urls)) = best else {
        return Ok(None);
    };
    let urls: Vec<&str> = urls
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Ok(urls
        .iter()
        .find(|u| u.starts_with("https://"))
        .or(urls.first())
        .map(|u| (*u).to_owned()))
}

/// How many labels of `name`'s end `tld` covers.
fn tld_match(name: &str, tld: &str) -> Option<u32> {
    let tld = tld.to_ascii_lowercase();
    (name == tld || name.ends_with(&format!(".{tld}"))).then(|| tld.split('.').count() as u32)
}

/// The prefix length of `block` (`8.0.0.0/8`, `2001:200::/23`) if it holds
/// `ip`.
fn cidr_match(ip: &str, block: &str) -> Option<u32> {
    let (network, bits) = block.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match (ip.parse::<IpAddr>().ok()?, network.parse::<IpAddr>().ok()?) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            (u32::from(ip) & mask == u32::from(net) & mask).then_some(bits)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            (u128::from(ip) & mask == u128::from(net) & mask).then_some(bits)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_tlds_match_by_their_length() {
        assert_eq!(cidr_match("8.8.8.8", "8.0.0.0/8"), Some(8));
        assert_eq!(cidr_match("9.8.8.8", "8.0.0.0/8"), None);
        assert_eq!(cidr_match("2001:db8::1", "2001:db8::/32"), Some(32));
        assert_eq!(cidr_match("8.8.8.8", "0.0.0.0/0"), Some(0));
        assert_eq!(cidr_match("8.8.8.8", "2001:db8::/32"), None);
        assert_eq!(tld_match("evil.co.uk", "uk"), Some(1));
        assert_eq!(tld_match("evil.co.uk", "co.uk"), Some(2));
        assert_eq!(tld_match("evil.uk.com", "uk"), None);
    }
}
