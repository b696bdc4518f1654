//! Where webhooks may go: public addresses only, unless `HCP_WEBHOOK_ALLOW_PRIVATE` says the
//! receivers live on an internal network. Checked when an endpoint is added (its host's
//! addresses now) and again at every connection (the addresses the name resolves to then, so a
//! name re-pointed at an internal address after registration still gets nowhere).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hcp_domain::webhook::internal_address;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A refused destination; the message names the kind of address, never the address.
#[derive(Debug)]
pub struct InternalAddress(pub &'static str);

impl std::fmt::Display for InternalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal address ({})", self.0)
    }
}

impl std::error::Error for InternalAddress {}

/// The addresses `host` resolves to now (an IP literal is itself).
async fn addresses(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.map(|a| a.ip()).collect())
}

/// At registration: refuses a URL whose host is, or now resolves to, an internal address. A
/// name that does not resolve yet is accepted (the check at connection still applies).
pub async fn check_url(url: &reqwest::Url) -> Result<(), InternalAddress> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Ok(()) };
    for ip in addresses(host, port).await.unwrap_or_default() {
        if let Some(why) = internal_address(ip) {
            return Err(InternalAddress(why));
        }
    }
    Ok(())
}

/// At connection: an IP literal in the URL never reaches the resolver, so it is checked here.
pub fn check_literal(url: &str) -> Result<(), InternalAddress> {
    let Ok(url) = reqwest::Url::parse(url) else { return Ok(()) };
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>().ok().and_then(internal_address) {
        Some(why) => Err(InternalAddress(why)),
        None => Ok(()),
    }
}

/// The sender's resolver: a name's internal addresses are dropped, and a name with nothing else
/// fails with [`InternalAddress`].
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let all = addresses(name.as_str(), 0).await?;
            let refused = all.iter().find_map(|ip| internal_address(*ip));
            let public: Vec<SocketAddr> =
                all.into_iter().filter(|ip| internal_address(*ip).is_none()).map(|ip| SocketAddr::new(ip, 0)).collect();
            match (public.is_empty(), refused) {
                (true, Some(why)) => Err(Box::new(InternalAddress(why)) as _),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

/// The HTTP client of the sender: no redirects (a 3xx is a failed delivery, never a hop to
/// somewhere else), and unless `allow_private`, only public addresses and no proxy from the
/// environment (a proxy would connect where this check cannot see).
pub fn client(allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let builder = if allow_private { builder } else { builder.no_proxy().dns_resolver(Arc::new(PublicOnly)) };
    builder.build().expect("an HTTP client builds")
}

/// What went wrong with an attempt, as a category for the delivery log and the logs: never the
/// library's text, which names addresses and ports (the log would map the internal network).
pub fn failure_category(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<InternalAddress>() {
            return refused.to_string();
        }
        source = s.source();
    }
    match () {
        _ if e.is_timeout() => "timeout",
        _ if e.is_connect() => "connection failed",
        _ if e.is_body() || e.is_decode() => "response unreadable",
        _ => "request failed",
    }
    .to_owned()
}
