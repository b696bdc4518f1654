//! The client's address: the TCP peer, or — only when that peer is a trusted proxy
//! (`HCP_TRUSTED_PROXIES`) — the address the proxy reports in `X-Forwarded-For` or `Forwarded`.
//!
//! Per-address limits (login failures, the citizen's link endpoints) key on [`ClientAddr`]. Behind
//! a load balancer every peer is the balancer, so without trusted proxies all citizens would share
//! one bucket; with them, a forwarded header from anyone else is ignored (it is the client's word).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::ApiError;

/// The networks whose peers may report the client's address (`HCP_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// A comma-separated list of addresses or networks (`10.0.0.0/8, 127.0.0.1`); empty trusts none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                IpNet::from_str(s)
                    .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an address or a network (e.g. 10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(Arc::new(nets)))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that reached us from `peer` with `headers`: walking the forwarded
    /// chain from the nearest hop, the first address that is not a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_chain(headers).into_iter().rev() {
            let Some(hop) = hop else { break };
            client = canonical(hop);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of the forwarded chain, farthest first: `X-Forwarded-For` when present, else the
/// `for=` of `Forwarded` (RFC 7239). A hop that is not an address (`unknown`, an obfuscated name,
/// garbage) is `None`: the walk stops there and keeps the last trusted hop's view.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().flat_map(|v| v.split(',')).map(|h| parse_hop(h.trim())).collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip);
    }
    if let Ok(sock) = SocketAddr::from_str(hop) {
        return Some(sock.ip());
    }
    let inner = hop.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok()
}

/// The client's address of a request (see the module doc). Needs the server's connect info; a
/// request without it (an in-process test router) is refused rather than given a shared bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal("no peer address (served without connect info)".into()))?;
        let trusted = parts.extensions.get::<TrustedProxies>().cloned().unwrap_or_default();
        Ok(ClientAddr(trusted.client(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        let h = headers(&[("x-forwarded-for", "9.9.9.9"), ("forwarded", "for=8.8.8.8")]);
        assert_eq!(none.client(ip("203.0.113.7"), &h), ip("203.0.113.7"));
        let lb = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(lb.client(ip("203.0.113.7"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_reports_the_nearest_untrusted_hop() {
        let lb = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // The client may prepend anything; only what our proxies appended counts.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.2.3")]);
        assert_eq!(lb.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        assert_eq!(lb.client(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.4"));
        // Several header lines are one list.
        let h = headers(&[("x-forwarded-for", "198.51.100.4"), ("x-forwarded-for", "10.1.2.3")]);
        assert_eq!(lb.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        // RFC 7239, with ports and IPv6.
        let h = headers(&[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https, for=10.9.9.9")]);
        assert_eq!(lb.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=10.0.0.1")]);
        assert_eq!(lb.client(ip("10.0.0.1"), &h), ip("192.0.2.60"));
        // No header: the proxy itself; garbage stops the walk at the last trusted hop.
        assert_eq!(lb.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.4, nonsense, 10.1.2.3")]);
        assert_eq!(lb.client(ip("10.0.0.1"), &h), ip("10.1.2.3"));
    }

    #[test]
    fn the_list_is_checked() {
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
        assert_eq!(TrustedProxies::parse("127.0.0.1, ::1, 172.16.0.0/12").unwrap().0.len(), 3);
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
