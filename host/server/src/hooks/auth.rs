//! How a webhook's sender proves itself: a bearer token, or an HMAC-SHA256
//! signature of the body. The secret never leaves this module; refusals say
//! what was wrong with the request, never anything about the secret.

use std::time::Duration;

use aerie_store::Replay;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// How far a signature's timestamp may be from the server's clock.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

/// A webhook's secret, as the server holds it.
pub enum Auth {
    /// Only the token's SHA-256 is kept: comparing digests takes the same
    /// time whatever the token's length or its first wrong byte.
    Bearer([u8; 32]),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Auth::Bearer(***)",
            Auth::Hmac(_) => "Auth::Hmac(***)",
        })
    }
}

/// A request that passed.
#[derive(Debug)]
pub struct Passed {
    /// Set for a timestamped signature: it may not be accepted again.
    pub replay: Option<Replay>,
}

impl Auth {
    pub fn bearer(token: &str) -> Auth {
        Auth::Bearer(Sha256::digest(token.as_bytes()).into())
    }

    pub fn hmac(key: &str) -> Auth {
        Auth::Hmac(key.as_bytes().to_vec())
    }

    /// Whether the body must be read before [`Auth::check`] can decide.
    pub fn needs_body(&self) -> bool {
        matches!(self, Auth::Hmac(_))
    }

    /// Checks the request; `now` is seconds since the Unix epoch.
    pub fn check(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Passed, String> {
        match self {
            Auth::Bearer(expected) => {
                let given = bearer_token(headers).ok_or("no `Authorization: Bearer` token")?;
                let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
                if bool::from(given.ct_eq(expected)) {
                    Ok(Passed { replay: None })
                } else {
                    Err("the bearer token is not this webhook's".to_owned())
                }
            }
            Auth::Hmac(key) => {
                if let Some(signature) = header(headers, "x-aerie-signature") {
                    return timestamped(key, signature, body, now);
                }
                if let Some(signature) = header(headers, "x-hub-signature-256") {
                    let hex = signature
                        .strip_prefix("sha256=")
                        .ok_or("`X-Hub-Signature-256` must be `sha256=HEX`")?;
                    return verify(key, &[body], hex)
                        .map(|()| Passed { replay: None })
                        .map_err(|()| "the body's signature does not match".to_owned());
                }
                Err("no `X-Aerie-Signature` (or `X-Hub-Signature-256`) header".to_owned())
            }
        }
    }
}

/// The token of `Authorization: Bearer TOKEN`, for webhooks and the API alike.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `t=UNIX,v1=HEX[,v1=HEX]` over `"{t}.{body}"`: several `v1` let a sender
/// sign with an old and a new key while the secret is rotated.
fn timestamped(key: &[u8], signature: &str, body: &[u8], now: i64) -> Result<Passed, String> {
    let mut t = None;
    let mut signed = Vec::new();
    for part in signature.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signed.push(value),
            _ => {}
        }
    }
    let t = t.ok_or("`X-Aerie-Signature` has no `t=UNIX` timestamp")?;
    if signed.is_empty() {
        return Err("`X-Aerie-Signature` has no `v1=HEX` signature".to_owned());
    }
    let window = WINDOW.as_secs() as i64;
    if (now - t).abs() > window {
        return Err(format!(
            "the signature's timestamp is {}s from the server's clock; at most {window}s is accepted",
            now - t
        ));
    }
    let prefix = format!("{t}.");
    if !signed
        .iter()
        .any(|hex| verify(key, &[prefix.as_bytes(), body], hex).is_ok())
    {
        return Err("the body's signature does not match".to_owned());
    }
    Ok(Passed {
        replay: Some(Replay {
            digest: hex::encode(Sha256::digest(signature.as_bytes())),
            until_ms: (t + window + 1) * 1000,
        }),
    })
}

fn verify(key: &[u8], parts: &[&[u8]], hex: &str) -> Result<(), ()> {
    let expected = hex::decode(hex.trim()).map_err(|_| ())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| ())?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected).map_err(|_| ())
}

/// `X-Aerie-Signature` for `body` at `t`: what a sender computes (and tests).
pub fn sign(key: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_compared_whole() {
        let auth = Auth::bearer("s3cret-token");
        assert!(
            auth.check(
                &headers(&[("authorization", "Bearer s3cret-token")]),
                b"",
                0
            )
            .is_ok()
        );
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
            "",
        ] {
            let error = auth
                .check(&headers(&[("authorization", wrong)]), b"", 0)
                .unwrap_err();
            assert!(!error.contains("s3cret"), "{error}");
        }
        assert_eq!(
            auth.check(&HeaderMap::new(), b"", 0).unwrap_err(),
            "no `Authorization: Bearer` token"
        );
    }

    #[test]
    fn signatures_hold_within_the_window_only() {
        let auth = Auth::hmac("key");
        let now = 1_800_000_000;
        let body = br#"{"a":1}"#;
        let good = sign(b"key", now - 10, body);
        let passed = auth
            .check(&headers(&[("x-aerie-signature", &good)]), body, now)
            .unwrap();
        let replay = passed.replay.unwrap();
        assert_eq!(replay.until_ms, (now - 10 + 301) * 1000);

        let tampered = auth.check(
            &headers(&[("x-aerie-signature", &good)]),
            br#"{"a":2}"#,
            now,
        );
        assert_eq!(tampered.unwrap_err(), "the body's signature does not match");
        let other_key = sign(b"other", now, body);
        assert!(
            auth.check(&headers(&[("x-aerie-signature", &other_key)]), body, now)
                .is_err()
        );
        let old = sign(b"key", now - 301, body);
        assert_eq!(
            auth.check(&headers(&[("x-aerie-signature", &old)]), body, now)
                .unwrap_err(),
            "the signature's timestamp is 301s from the server's clock; at most 300s is accepted"
        );
        // A rotated key: the old signature beside the new one.
        let both = format!(
            "{},v1={}",
            sign(b"other", now, body),
            &good.rsplit_once("v1=").unwrap().1
        );
        assert!(
            auth.check(&headers(&[("x-aerie-signature", &both)]), body, now)
                .is_err()
        );
        let rotated = format!("{},v1=00ff", sign(b"key", now, body));
        assert!(
            auth.check(&headers(&[("x-aerie-signature", &rotated)]), body, now)
                .is_ok()
        );
    }

    #[test]
    fn github_style_signatures_are_checked() {
        let auth = Auth::hmac("key");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"payload");
        let hex = hex::encode(mac.finalize().into_bytes());
        let ok = headers(&[("x-hub-signature-256", &format!("sha256={hex}"))]);
        assert!(auth.check(&ok, b"payload", 0).unwrap().replay.is_none());
        assert!(auth.check(&ok, b"payloaD", 0).is_err());
        assert_eq!(
            auth.check(&HeaderMap::new(), b"payload", 0).unwrap_err(),
            "no `X-Aerie-Signature` (or `X-Hub-Signature-256`) header"
        );
    }
}
