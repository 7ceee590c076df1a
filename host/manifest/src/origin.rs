//! Origins (`scheme://host:port`) and the allow-list patterns that match them.
//!
//! The grammar follows Spin's outbound-HTTP allow-list: a scheme, a host and an
//! optional port; the host may start with `*.` to allow any subdomain (never the
//! bare parent, never an IP). No paths: policy is per origin.

use std::fmt;

/// A concrete origin a request goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute URL, with the scheme's default port filled in.
    /// A name's root dot is dropped (`example.com.` is `example.com`); a name
    /// with an empty label (`https://./`, `http://12../`, which the URL parser
    /// accepts) has no origin: trimmed, it would be empty or read as another
    /// host (`12` is the address 0.0.0.12).
    pub fn from_url(url: &url::Url) -> Option<Origin> {
        let scheme = url.scheme().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(d) => {
                let name = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
                if name.split('.').any(str::is_empty)
                    || !matches!(url::Host::parse(&name), Ok(url::Host::Domain(_)))
                {
                    return None;
                }
                name
            }
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some(Origin {
            scheme,
            host,
            port: url.port_or_known_default()?,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// One entry of an allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: String,
    host: HostPattern,
    port: u16,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Subdomains(String),
}

impl OriginPattern {
    /// Parses `scheme://host[:port]`; a trailing `/` is tolerated, a path is not.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` is not an origin: expected scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("`{text}`: only http and https are supported")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{text}`: an allowed origin has no path, query or user part"
            ));
        }
        let (host, wildcard) = match rest.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        // Let the URL parser handle ports and IPv6 brackets.
        let url = url::Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| format!("`{text}`: {e}"))?;
        let origin = Origin::from_url(&url).ok_or_else(|| format!("`{text}`: no host"))?;
        let port = url.port().unwrap_or(default_port);
        let host = if wildcard {
            if origin.host.parse::<std::net::IpAddr>().is_ok() {
                return Err(format!(
                    "`{text}`: a wildcard cannot apply to an IP address"
                ));
            }
            HostPattern::Subdomains(origin.host)
        } else {
            HostPattern::Exact(origin.host)
        };
        Ok(OriginPattern {
            scheme,
            host,
            port,
            text: text.to_owned(),
        })
    }

    pub fn matches(&self, origin: &Origin) -> bool {
        self.scheme == origin.scheme
            && self.port == origin.port
            && match &self.host {
                HostPattern::Exact(h) => *h == origin.host,
                HostPattern::Subdomains(parent) => origin
                    .host
                    .strip_suffix(parent.as_str())
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::from_url(&url::Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn a_host_of_dots_has_no_origin() {
        // Found by the `origin` fuzz target: the trailing-dot trim left "".
        for url in [
            "https://./",
            "http://../x",
            "https:/./u4ffff:%7D27]0.1..0;8443/path",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            assert_eq!(Origin::from_url(&parsed), None, "{url}");
        }
        assert_eq!(origin("https://example.com./").host, "example.com");
    }

    #[test]
    fn patterns_match_by_scheme_host_and_port() {
        let cases = [
            (
                "https://www.virustotal.com",
                "https://www.virustotal.com/api/v3/x",
                true,
            ),
            (
                "https://www.virustotal.com",
                "https://www.virustotal.com:443/",
                true,
            ),
            (
                "https://www.virustotal.com",
                "http://www.virustotal.com/",
                false,
            ),
            (
                "https://www.virustotal.com",
                "https://www.virustotal.com:8443/",
                false,
            ),
            (
                "https://www.virustotal.com",
                "https://virustotal.com/",
                false,
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/a", true),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/a", true),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8081/a", false),
            (
                "https://*.atlassian.net",
                "https://acme.atlassian.net/rest",
                true,
            ),
            (
                "https://*.atlassian.net",
                "https://atlassian.net/rest",
                false,
            ),
            (
                "https://*.atlassian.net",
                "https://evilatlassian.net/rest",
                false,
            ),
            ("http://[::1]:9000", "http://[::1]:9000/", true),
            ("HTTPS://Example.COM", "https://example.com/", true),
        ];
        for (pattern, url, expected) in cases {
            let p = OriginPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(&origin(url)), expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn malformed_patterns_say_why() {
        for (pattern, expected) in [
            ("www.virustotal.com", "expected scheme://host[:port]"),
            ("ftp://example.com", "only http and https"),
            ("https://example.com/api", "no path"),
            ("https://*.10.0.0.1", "wildcard cannot apply to an IP"),
            ("https://user@example.com", "no path, query or user"),
        ] {
            let err = OriginPattern::parse(pattern).unwrap_err();
            assert!(err.contains(expected), "{pattern}: {err}");
        }
    }
}
