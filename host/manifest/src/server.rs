//! `[server]` and `[webhooks.NAME]` of aerie.toml: where `aerie serve` listens
//! and what each webhook demands of its senders.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8700"          # the default
//! shutdown_grace = "30s"
//! trusted_proxies = ["10.0.0.0/8"]   # whose X-Forwarded-For is believed
//! max_queued = 100000                # more queued runs: 503
//!
//! [webhooks.alerts]                  # POST /hooks/alerts
//! auth = { bearer = { env = "ALERTS_TOKEN" } }   # or { hmac = { file = "/run/secrets/k" } }
//! allow_from = ["127.0.0.0/8", "::1/128"]
//! max_body = "1MiB"
//! rate = "100/s"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config::SecretSource;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long in-flight steps may go on after SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` names the client; every other peer is
    /// the client itself.
    pub trusted_proxies: Vec<IpNet>,
    /// Queued runs beyond which triggers answer 503 with `Retry-After`.
    pub max_queued: u64,
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            max_queued: 100_000,
            tls: None,
        }
    }
}

/// `tls = { cert = PATH, key = PATH, min_version = "1.3" }` (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// One webhook: a URL path, and who may post to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub auth: WebhookAuth,
    /// Source addresses allowed (the socket's peer, or the client a trusted
    /// proxy names); empty allows any.
    #[serde(default)]
    pub allow_from: Vec<IpNet>,
    /// The largest body accepted: `"1MiB"`, `"512KiB"`, or a number of bytes.
    #[serde(default = "default_max_body", deserialize_with = "bytes")]
    pub max_body: u64,
    /// Requests accepted per second or minute: `"100/s"`, `"600/min"`.
    #[serde(default)]
    pub rate: Option<Rate>,
}

fn default_max_body() -> u64 {
    1024 * 1024
}

/// How a webhook's sender proves itself. The secret's value is read by the
/// server at start, never here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum WebhookAuth {
    /// `Authorization: Bearer SECRET`.
    Bearer(SecretSource),
    /// An HMAC-SHA256 of the body with SECRET: `X-Aerie-Signature:
    /// t=UNIX,v1=HEX` over `"{t}.{body}"`, or GitHub's `X-Hub-Signature-256`.
    Hmac(SecretSource),
}

/// `N/s` or `N/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let wrong = || format!("`{text}` is not a rate like 100/s or 600/min");
        let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
        let count: u32 = count.trim().parse().map_err(|_| wrong())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(wrong()),
        };
        if count == 0 {
            return Err(format!(
                "`{text}`: a rate of 0 accepts nothing; remove the webhook instead"
            ));
        }
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `"30s"`, `"500ms"`, `"2m"` (humantime).
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like 30s or 500ms: {e}"))
    })
}

/// `"1MiB"`, `"64KiB"`, `"2MB"` or a whole number of bytes.
fn bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(u64),
        Text(String),
    }
    let text = match Given::deserialize(d)? {
        Given::Number(n) => return Ok(n),
        Given::Text(text) => text,
    };
    let wrong =
        || serde::de::Error::custom(format!("`{text}` is not a size like 1MiB, 512KiB or 65536"));
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(wrong()),
    };
    number.checked_mul(scale).ok_or_else(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::path::Path;

    fn parse(source: &str) -> Result<Config, String> {
        Config::parse(Path::new("aerie.toml"), source).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_webhook_section_parses() {
        let config = parse(
            r#"
[server]
listen = "0.0.0.0:8443"
shutdown_grace = "5s"
trusted_proxies = ["10.0.0.0/8"]
tls = { cert = "c.pem", key = "k.pem", min_version = "1.3" }

[webhooks.alerts]
auth = { bearer = { env = "ALERTS_TOKEN" } }
allow_from = ["127.0.0.0/8", "::1/128"]
rate = "100/s"

[webhooks.github]
auth = { hmac = { file = "/run/secrets/gh" } }
max_body = "25MiB"
"#,
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 8443);
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.server.tls.unwrap().min_version, TlsVersion::Tls13);
        let alerts = &config.webhooks["alerts"];
        assert_eq!(
            alerts.auth,
            WebhookAuth::Bearer(SecretSource::Env("ALERTS_TOKEN".into()))
        );
        assert_eq!(alerts.allow_from.len(), 2);
        assert_eq!(alerts.max_body, 1024 * 1024);
        assert_eq!(
            alerts.rate,
            Some(Rate {
                count: 100,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(config.webhooks["github"].max_body, 25 * 1024 * 1024);
        let defaults = parse("").unwrap().server;
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:8700");
    }

    #[test]
    fn bad_values_name_the_line() {
        insta::assert_snapshot!(
            parse("[webhooks.a]\nauth = { bearer = { env = \"T\" } }\nallow_from = [\"10.0.0.0/33\"]\n").unwrap_err(),
            @"aerie.toml:3:15: invalid IP address syntax"
        );
        insta::assert_snapshot!(
            parse("[webhooks.a]\nauth = { bearer = { env = \"T\" } }\nrate = \"fast\"\n").unwrap_err(),
            @"aerie.toml:3:8: `fast` is not a rate like 100/s or 600/min"
        );
        insta::assert_snapshot!(
            parse("[webhooks.a]\nauth = { bearer = { env = \"T\" } }\nmax_body = \"1 lot\"\n").unwrap_err(),
            @"aerie.toml:3:12: `1 lot` is not a size like 1MiB, 512KiB or 65536"
        );
        insta::assert_snapshot!(
            parse("[webhooks.a]\nauth = { basic = { env = \"T\" } }\n").unwrap_err(),
            @"aerie.toml:2:10: unknown variant `basic`, expected `bearer` or `hmac`"
        );
        insta::assert_snapshot!(
            parse("[webhooks.a]\nallow_from = []\n").unwrap_err(),
            @"aerie.toml:1:1: missing field `auth`"
        );
        insta::assert_snapshot!(
            parse("[webhooks.\"a b\"]\nauth = { bearer = { env = \"T\" } }\n").unwrap_err(),
            @"aerie.toml: webhooks.a b: webhook name `a b` may use only a-z, 0-9, `-` and `_` (it is a URL path segment)"
        );
        insta::assert_snapshot!(
            parse("[server]\nlisten = \"localhost\"\n").unwrap_err(),
            @"aerie.toml:2:10: invalid socket address syntax"
        );
    }
}
