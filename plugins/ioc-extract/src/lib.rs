//! `ioc-extract`: finds indicators of compromise in free text.
//!
//! Defanged indicators (`hxxp`, `[.]`, `(.)`, `[at]`, `[:]`) are re-fanged first.
//! Each list keeps the order of first appearance without duplicates; hashes are
//! lower-case, domains are lower-case and end in a suffix from the public suffix
//! list, so a file name such as `invoice.pdf` is not a domain. The host of a URL
//! and the domain of an e-mail address are listed under `domains` too, since an
//! analyst looks those up on their own.
//!
//! The manifest opts in to warm instances, so the patterns are compiled once
//! per instance, not on every call. That makes `regex` the right engine: slow
//! to compile (4 ms in a fresh instance) but its automata match a 1 KiB alert
//! in about 25 µs, where `regex-lite`, quick to compile, takes over 600 µs
//! (BENCHMARKS.md). Word boundaries are ASCII (`(?-u:\b)`), as indicators are.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use aerie_sdk::{Actions, Error, Plugin};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

struct IocExtract;

impl Plugin for IocExtract {
    fn actions() -> Actions {
        Actions::new().action(
            "extract",
            "Extract IPs, domains, URLs, e-mail addresses and file hashes from text",
            |input: Input| Ok::<_, Error>(extract(&input.text)),
        )
    }
}

aerie_sdk::export!(IocExtract);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Free text: an e-mail body, an alert, a report.
    pub text: String,
}

#[derive(Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct Indicators {
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    pub domains: Vec<String>,
    pub urls: Vec<String>,
    pub emails: Vec<String>,
    pub md5: Vec<String>,
    pub sha1: Vec<String>,
    pub sha256: Vec<String>,
    /// Every indicator above once, as a case holds it: `{kind, value}` with
    /// kind `ip`, `domain`, `url`, `email` or `hash`. A playbook's
    /// `for_each` takes this list whole.
    pub observables: Vec<Observable>,
}

#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Observable {
    pub kind: &'static str,
    pub value: String,
    /// An address of a private, loopback, link-local or shared (CGNAT)
    /// network: one's own, not to be sent to outside services.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

/// Whether `ip` belongs to a network that is nobody's on the internet.
fn internal(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            let [a, b, ..] = ip.octets();
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

static REFANG: LazyLock<[(Regex, &str); 5]> = LazyLock::new(|| {
    [
        (
            Regex::new(r"(?i)(?-u:\b)h(?:xx|\*\*)p(s?)(?-u:\b)").unwrap(),
            "http$1",
        ),
        (
            Regex::new(r"\[\s*\.\s*\]|\(\s*\.\s*\)|\{\s*\.\s*\}|\[dot\]|\(dot\)").unwrap(),
            ".",
        ),
        (
            Regex::new(r"(?i)\[\s*(?:at|@)\s*\]|\(\s*(?:at|@)\s*\)").unwrap(),
            "@",
        ),
        (Regex::new(r"\[:\]|\[://\]").unwrap(), ":"),
        // `[:]//` above becomes `://`; a lone `[://]` too.
        (Regex::new(r":(/?)//").unwrap(), "://"),
    ]
});

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)(?-u:\b)https?://[^\s<>"'`\])}|\\^]+"#).unwrap());
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[A-Za-z0-9._%+-]+@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})(?-u:\b)")
        .unwrap()
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)").unwrap()
});
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*").unwrap());
static HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)[0-9A-Fa-f]{32,64}(?-u:\b)").unwrap());
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9](?-u:\b)")
        .unwrap()
});

/// Reverses common defanging so the patterns below see real indicators.
pub fn refang(text: &str) -> String {
    REFANG
        .iter()
        .fold(text.to_owned(), |text, (pattern, with)| {
            pattern.replace_all(&text, *with).into_owned()
        })
}

pub fn extract(text: &str) -> Indicators {
    let text = refang(text);
    let mut found = Indicators::default();

    for m in URL.find_iter(&text) {
        let url = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
        push(&mut found.urls, url.to_owned());
    }
    for caps in EMAIL.captures_iter(&text) {
        if is_domain(&caps[1]) {
            push(&mut found.emails, caps[0].to_ascii_lowercase());
        }
    }
    for m in IPV4.find_iter(&text) {
        // Part of a longer dotted run (a version number, an OID) is not an address.
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        let dotted = |c: Option<char>, next: Option<char>| {
            c == Some('.') && next.is_some_and(|n| n.is_ascii_digit())
        };
        if dotted(before, text[..m.start()].chars().nth_back(1))
            || dotted(after, text[m.end()..].chars().nth(1))
        {
            continue;
        }
        if let Ok(ip) = m.as_str().parse::<Ipv4Addr>() {
            push(&mut found.ipv4, ip.to_string());
        }
    }
    for m in IPV6.find_iter(&text) {
        let candidate = m.as_str();
        if candidate.matches(':').count() < 2 {
            continue;
        }
        if let Ok(ip) = candidate.parse::<Ipv6Addr>() {
            push(&mut found.ipv6, ip.to_string());
        }
    }
    for m in HASH.find_iter(&text) {
        let hash = m.as_str().to_ascii_lowercase();
        match hash.len() {
            32 => push(&mut found.md5, hash),
            40 => push(&mut found.sha1, hash),
            64 => push(&mut found.sha256, hash),
            _ => {}
        }
    }
    for m in DOMAIN.find_iter(&text) {
        let domain = m.as_str().to_ascii_lowercase();
        if is_domain(&domain) {
            push(&mut found.domains, domain);
        }
    }
    let lists: [(&'static str, &[String]); 8] = [
        ("ip", &found.ipv4),
        ("ip", &found.ipv6),
        ("domain", &found.domains),
        ("url", &found.urls),
        ("email", &found.emails),
        ("hash", &found.md5),
        ("hash", &found.sha1),
        ("hash", &found.sha256),
    ];
    found.observables = lists
        .iter()
        .flat_map(|(kind, values)| {
            values.iter().map(|value| Observable {
                kind,
                value: value.clone(),
                internal: *kind == "ip" && internal(value),
            })
        })
        .collect();
    found
}

/// A name is a domain when its last label is a public suffix the list knows and
/// there is a label before it (`evil.co.uk`, not `co.uk` or `invoice.pdf`).
fn is_domain(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    match psl::suffix(name.as_bytes()) {
        Some(suffix) => suffix.is_known() && suffix.as_bytes().len() < name.len(),
        None => false,
    }
}

fn push(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_every_kind_in_order_without_duplicates() {
        let text = "Alert: host 10.0.0.5 contacted evil.example.com and 8.8.8.8, then 10.0.0.5 again.\n\
            Payload https://evil.example.com/a/b.exe?x=1, dropped invoice.pdf (MD5 \
            D41D8CD98F00B204E9800998ECF8427E, SHA1 da39a3ee5e6b4b0d3255bfef95601890afd80709, \
            SHA256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855). \
            Reply to attacker@bad-domain.org from 2001:db8::1.";
        let found = extract(text);
        assert_eq!(found.ipv4, ["10.0.0.5", "8.8.8.8"]);
        assert_eq!(found.ipv6, ["2001:db8::1"]);
        assert_eq!(found.domains, ["evil.example.com", "bad-domain.org"]);
        assert_eq!(found.urls, ["https://evil.example.com/a/b.exe?x=1"]);
        assert_eq!(found.emails, ["attacker@bad-domain.org"]);
        assert_eq!(found.md5, ["d41d8cd98f00b204e9800998ecf8427e"]);
        assert_eq!(found.sha1, ["da39a3ee5e6b4b0d3255bfef95601890afd80709"]);
        assert_eq!(
            found.sha256,
            ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]
        );
        let observables: Vec<String> = found
            .observables
            .iter()
            .map(|o| format!("{}:{}", o.kind, o.value))
            .collect();
        assert_eq!(
            observables[..3],
            ["ip:10.0.0.5", "ip:8.8.8.8", "ip:2001:db8::1"]
        );
        assert_eq!(observables[5], "url:https://evil.example.com/a/b.exe?x=1");
        assert_eq!(observables.len(), 10);
        let internal: Vec<&str> = found
            .observables
            .iter()
            .filter(|o| o.internal)
            .map(|o| o.value.as_str())
            .collect();
        assert_eq!(internal, ["10.0.0.5"]);
    }

    #[test]
    fn ones_own_networks_are_internal() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(internal(ip), "{ip}");
        }
        for ip in ["8.8.8.8", "185.220.101.1", "100.128.0.1", "2001:4860::8888"] {
            assert!(!internal(ip), "{ip}");
        }
    }

    #[test]
    fn refangs_defanged_indicators() {
        let found =
            extract("hxxps[:]//malware[.]example(.)net/x and 1.2.3[.]4, mail bob[at]corp[.]com");
        assert_eq!(found.urls, ["https://malware.example.net/x"]);
        assert_eq!(found.ipv4, ["1.2.3.4"]);
        assert_eq!(found.emails, ["bob@corp.com"]);
        assert_eq!(found.domains, ["malware.example.net", "corp.com"]);
    }

    #[test]
    fn file_names_versions_and_times_are_not_indicators() {
        let found =
            extract("see invoice.pdf and report.docx, version 1.2.3.4.5, at 12:30:45, build a.b");
        assert_eq!(found, Indicators::default());
    }

    #[test]
    fn empty_text_has_no_indicators() {
        assert_eq!(extract(""), Indicators::default());
    }
}
