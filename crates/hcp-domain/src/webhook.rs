//! Standard Webhooks (standardwebhooks.com) signing: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! endpoint's secret `whsec_<base64>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret as shown to the endpoint's owner.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret (`whsec_` + base64 of the 32 given random bytes).
pub fn secret_from_bytes(bytes: [u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The `webhook-signature` header value of a message; `None` for a malformed secret.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The event type of a work-order transition (`workorder.claim`, `workorder.open`, …).
pub fn workorder_event_type(action: &str) -> String {
    format!("workorder.{action}")
}

/// Whether an endpoint subscribed to `patterns` (`*`, `workorder.*` or exact types) gets
/// `event_type`.
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix(".*").is_some_and(|prefix| event_type.starts_with(&format!("{prefix}.")))
    })
}

/// Why a webhook may not be sent to `ip`: loopback, private and link-local networks (the cloud
/// metadata service at 169.254.169.254 among them), and every other address that is not a
/// public unicast host. `None` for a public address. An endpoint on such an address would let
/// whoever registers webhooks reach the server's own network; `HCP_WEBHOOK_ALLOW_PRIVATE` lifts
/// the rule for deployments whose receivers live there.
pub fn internal_address(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(match () {
                _ if v4.is_loopback() => "loopback",
                _ if v4.is_private() => "private",
                _ if a == 169 && b == 254 && c == 169 => "metadata",
                _ if v4.is_link_local() => "link-local",
                _ if a == 100 && (64..128).contains(&b) => "shared (carrier-grade NAT)",
                _ if v4.is_unspecified() || a == 0 => "unspecified",
                _ if v4.is_broadcast() || v4.is_multicast() || a >= 240 => "not unicast",
                _ if a == 192 && b == 0 && c == 0 => "protocol assignments",
                _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
                _ if v4.is_documentation() => "documentation",
                _ => return None,
            })
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            Some(match () {
                _ if v6.is_loopback() => "loopback",
                _ if v6.is_unspecified() => "unspecified",
                _ if v6.is_multicast() => "not unicast",
                _ if first & 0xfe00 == 0xfc00 => "private",
                _ if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 => "link-local",
                _ if first == 0x2001 && v6.segments()[1] == 0xdb8 => "documentation",
                // NAT64 and 6to4 embed an IPv4 address: judge that one.
                _ if first == 0x64 && v6.segments()[1] == 0xff9b => {
                    let [.., a, b] = v6.segments();
                    return internal_address(IpAddr::V4(std::net::Ipv4Addr::from(((a as u32) << 16) | b as u32)));
                }
                _ if first == 0x2002 => {
                    let [_, a, b, ..] = v6.segments();
                    return internal_address(IpAddr::V4(std::net::Ipv4Addr::from(((a as u32) << 16) | b as u32)));
                }
                _ => return None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(sign("whsec_not base64!", "m", 1, b"x"), None);
    }

    #[test]
    fn subscriptions() {
        let s = |p: &[&str]| p.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&s(&["*"]), "workorder.claim"));
        assert!(subscribed(&s(&["workorder.*"]), "workorder.claim"));
        assert!(subscribed(&s(&["workorder.claim"]), "workorder.claim"));
        assert!(!subscribed(&s(&["workorder.close"]), "workorder.claim"));
        assert!(!subscribed(&s(&["alert.*"]), "workorder.claim"));
        assert!(!subscribed(&s(&["workorder.*"]), "workorders.x"));
    }

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        let why = |s: &str| internal_address(s.parse().unwrap());
        for (ip, reason) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("255.255.255.255", "not unicast"),
            ("224.0.0.1", "not unicast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("fd00:ec2::254", "private"),
            ("fe80::1", "link-local"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
        ] {
            assert_eq!(why(ip), Some(reason), "{ip}");
        }
        for ip in ["8.8.8.8", "114.114.114.114", "172.32.0.1", "100.128.0.1", "2400:3200::1", "2001:4860::8888"] {
            assert_eq!(why(ip), None, "{ip}");
        }
    }
}
