//! Who is asking: the socket's peer, or the client a trusted proxy names in
//! `X-Forwarded-For`. Anyone can write that header, so it is believed only
//! from the proxies the operator listed.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the nearest address in `X-Forwarded-For` that is not one of
/// the trusted proxies (each proxy appends the address it saw, so the
/// rightmost entries are the most trustworthy).
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

/// Whether `client` may use something restricted to `allowed` (empty: anyone).
pub fn allowed(client: IpAddr, allowed: &[IpNet]) -> bool {
    // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
        v4 => v4,
    };
    allowed.is_empty() || allowed.iter().any(|net| net.contains(&client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let spoofed = forwarded("127.0.0.1");
        // An untrusted peer's header is ignored.
        assert_eq!(
            client(ip("203.0.113.9"), &spoofed, &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(client(ip("203.0.113.9"), &spoofed, &[]), ip("203.0.113.9"));
        // Through a trusted proxy: the nearest untrusted hop, not the
        // leftmost entry a client may have forged.
        let chain = forwarded("127.0.0.1, 198.51.100.7, 10.1.1.1");
        assert_eq!(client(ip("10.0.0.2"), &chain, &proxies), ip("198.51.100.7"));
        assert_eq!(
            client(ip("10.0.0.2"), &HeaderMap::new(), &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn allow_lists_take_both_families() {
        let list: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(allowed(ip("127.0.0.1"), &list));
        assert!(allowed(ip("::1"), &list));
        assert!(allowed(ip("::ffff:127.0.0.5"), &list));
        assert!(!allowed(ip("192.0.2.1"), &list));
        assert!(!allowed(ip("::2"), &list));
        assert!(allowed(ip("192.0.2.1"), &[]));
    }
}
