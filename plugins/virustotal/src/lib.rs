//! `virustotal`: looks indicators up in the VirusTotal API v3.
//!
//! The API key never reaches this code: the manifest declares the credential
//! `api_key`, applied as the `x-apikey` header to `{{ base_url }}`, and the host's
//! broker adds it to each request on the way out.

use std::net::IpAddr;

use aerie_sdk::{Actions, Error, Plugin, http};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

struct VirusTotal;

impl Plugin for VirusTotal {
    fn actions() -> Actions {
        Actions::new().action(
            "lookup",
            "Look a file hash, IP address, domain or URL up in VirusTotal",
            lookup,
        )
    }
}

aerie_sdk::export!(VirusTotal);

const DEFAULT_BASE_URL: &str = "https://www.virustotal.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Ip,
    Domain,
    Url,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// A hash (MD5, SHA-1, SHA-256), an IP address, a domain or a URL.
    pub indicator: String,
    /// Inferred from the indicator when absent.
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
}

#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Output {
    pub indicator: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub found: bool,
    pub malicious: u64,
    pub suspicious: u64,
    pub harmless: u64,
    pub undetected: u64,
    /// `malicious`, `suspicious`, `clean` or `unknown` (not in VirusTotal).
    pub verdict: String,
    /// The indicator's page in the VirusTotal web interface.
    pub link: String,
}

#[derive(Debug, Default, Deserialize)]
struct Stats {
    #[serde(default)]
    malicious: u64,
    #[serde(default)]
    suspicious: u64,
    #[serde(default)]
    harmless: u64,
    #[serde(default)]
    undetected: u64,
}

#[derive(Deserialize)]
struct Object {
    data: ObjectData,
}

#[derive(Deserialize)]
struct ObjectData {
    id: String,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Default, Deserialize)]
struct Attributes {
    #[serde(default)]
    last_analysis_stats: Stats,
}

#[derive(Deserialize)]
struct ApiError {
    error: ApiErrorBody,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn lookup(input: Input) -> Result<Output, Error> {
    let indicator = input.indicator.trim().to_owned();
    let kind = match input.kind {
        Some(kind) => kind,
        None => infer(&indicator)?,
    };
    let (collection, id, gui) = match kind {
        Kind::File => ("files", indicator.to_ascii_lowercase(), "file"),
        Kind::Ip => ("ip_addresses", indicator.clone(), "ip-address"),
        Kind::Domain => ("domains", indicator.to_ascii_lowercase(), "domain"),
        Kind::Url => (
            "urls",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&indicator),
            "url",
        ),
    };
    let base = aerie_sdk::setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let base = base.trim_end_matches('/');
    let response = http::get(&format!("{base}/api/v3/{collection}/{id}"))
        .header("accept", "application/json")
        .send()?;

    let not_found = Output {
        indicator: indicator.clone(),
        kind,
        found: false,
        malicious: 0,
        suspicious: 0,
        harmless: 0,
        undetected: 0,
        verdict: "unknown".to_owned(),
        link: format!(
            "https://www.virustotal.com/gui/search/{}",
            http::encode(&indicator)
        ),
    };
    match response.status {
        200 => {}
        404 => return Ok(not_found),
        status => return Err(api_error(status, &response)),
    }
    let object: Object = response.json()?;
    let stats = object.data.attributes.last_analysis_stats;
    let verdict = if stats.malicious > 0 {
        "malicious"
    } else if stats.suspicious > 0 {
        "suspicious"
    } else {
        "clean"
    };
    Ok(Output {
        indicator,
        kind,
        found: true,
        malicious: stats.malicious,
        suspicious: stats.suspicious,
        harmless: stats.harmless,
        undetected: stats.undetected,
        verdict: verdict.to_owned(),
        link: format!("https://www.virustotal.com/gui/{gui}/{}", object.data.id),
    })
}

fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<ApiError>()
        .map(|e| format!("{}: {}", e.error.code, e.error.message))
        .unwrap_or_else(|_| format!("status {status}"));
    match status {
        401 | 403 => Error::unauthorized(format!("VirusTotal refused the API key ({detail})")),
        429 => Error::rate_limited(format!("VirusTotal quota exceeded ({detail})")),
        400 => Error::invalid_input(format!("VirusTotal rejected the indicator ({detail})")),
        500..=599 => Error::upstream(format!("VirusTotal failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("VirusTotal answered {status} ({detail})")),
    }
}

/// The indicator's type from its shape: an IP, a hex hash of 32/40/64 digits, a
/// URL with a scheme, or else a domain.
pub fn infer(indicator: &str) -> Result<Kind, Error> {
    if indicator.parse::<IpAddr>().is_ok() {
        return Ok(Kind::Ip);
    }
    if matches!(indicator.len(), 32 | 40 | 64) && indicator.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Kind::File);
    }
    let lower = indicator.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Kind::Url);
    }
    let domain_like = indicator.contains('.')
        && !indicator.starts_with('.')
        && indicator
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if domain_like {
        return Ok(Kind::Domain);
    }
    Err(Error::invalid_input(format!(
        "cannot tell what `{indicator}` is: give \"type\" (file, ip, domain or url)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_the_type_from_the_shape() {
        for (indicator, kind) in [
            ("8.8.8.8", Kind::Ip),
            ("2001:db8::1", Kind::Ip),
            ("d41d8cd98f00b204e9800998ecf8427e", Kind::File),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", Kind::File),
            (
                "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                Kind::File,
            ),
            ("https://evil.example.com/x", Kind::Url),
            ("evil.example.com", Kind::Domain),
        ] {
            assert_eq!(infer(indicator).unwrap(), kind, "{indicator}");
        }
        assert_eq!(
            infer("not an indicator").unwrap_err().code,
            aerie_sdk::ErrorCode::InvalidInput
        );
    }

    #[test]
    fn percent_encodes_search_links() {
        assert_eq!(http::encode("http://a b/"), "http%3A%2F%2Fa%20b%2F");
    }
}
