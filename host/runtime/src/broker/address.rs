//! Which addresses are not public: loopback, private, link-local (where cloud
//! metadata services live), and the IPv6 spellings of each.

use std::net::IpAddr;

/// The IPv4 address an IPv6 one stands for, where it embeds one: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`, deprecated but still routed
/// by some stacks), NAT64 (`64:ff9b::a.b.c.d`, `64:ff9b:1::/48`) and 6to4
/// (`2002:aabb:ccdd::`). Each is judged as that IPv4 address.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let low = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(low(s[6], s[7])),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Names the kind of a non-public address, or `None` for a public one.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local, where cloud metadata services live")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("broadcast or multicast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared address space")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return Some("loopback");
            }
            if let Some(v4) = embedded_ipv4(v6) {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_non_public_addresses() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            (
                "169.254.169.254",
                Some("link-local, where cloud metadata services live"),
            ),
            ("100.64.0.1", Some("shared address space")),
            ("0.0.0.0", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fd00:ec2::254", Some("private (unique local)")),
            ("fe80::1", Some("link-local")),
            ("::ffff:127.0.0.1", Some("loopback")),
            // IPv4 embedded in IPv6 is judged as the IPv4 address.
            ("::127.0.0.1", Some("loopback")),
            ("::10.0.0.1", Some("private")),
            (
                "64:ff9b::169.254.169.254",
                Some("link-local, where cloud metadata services live"),
            ),
            ("64:ff9b:1::a00:1", Some("private")),
            ("2002:c0a8:101::1", Some("private")),
            ("2002:808:808::1", None),
            ("64:ff9b::8.8.8.8", None),
            ("::", Some("unspecified")),
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(non_public(ip.parse().unwrap()), expected, "{ip}");
        }
    }
}
