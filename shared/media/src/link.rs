//! Fetching media links (`{"image": {"link": ...}}`) without letting a client
//! reach zapfn's own network (SSRF): only http(s), every address a host name
//! resolves to must be public, redirects are checked the same way, and the
//! connection uses the checked addresses (no second DNS answer to rebind).
//!
//! Loopback, private, link-local, shared (CGNAT) and unique-local addresses are
//! refused unless `allow_private` is set (`ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS=1`,
//! for tests and local development); cloud metadata endpoints, unspecified,
//! multicast, broadcast, documentation and reserved addresses are always refused.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};

use crate::kind::human_size;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Why a link could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link can never be fetched as given (forbidden address, bad scheme,
    /// a 4xx answer, too large): do not retry.
    #[error("{0}")]
    Refused(String),
    /// The host did not answer well now (DNS, connection, timeout, 5xx): retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl LinkError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LinkError::Unavailable(_))
    }
}

/// A fetched link.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    /// The `Content-Type` the server sent.
    pub content_type: Option<String>,
}

/// Why an address may not be reached, or None when it may.
pub fn forbidden_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_private),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => forbidden_v4(v4, allow_private),
            None => forbidden_v6(v6, allow_private),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("a cloud metadata address");
    }
    if a == 0 || ip.is_broadcast() || ip.is_multicast() || a >= 240 || ip.is_documentation() {
        return Some("not a routable public address");
    }
    if (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xFE) == 18) {
        return Some("a reserved address");
    }
    let private = if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_private() || (a == 100 && (b & 0xC0) == 64) {
        Some("a private address")
    } else {
        None
    };
    private.filter(|_| !allow_private)
}

fn forbidden_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0xdb8 {
        return Some("not a routable public address");
    }
    let private = if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else if ip.is_unique_local() || (first & 0xFFC0) == 0xFEC0 {
        Some("a private address")
    } else {
        None
    };
    private.filter(|_| !allow_private)
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Checks a URL before any request: http(s), a host, no literal forbidden address.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), LinkError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LinkError::Refused(format!(
            "only http and https links are fetched, not {}:",
            url.scheme()
        )));
    }
    let host = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(LinkError::Refused("the link has no host".into())),
    };
    match forbidden_address(host, allow_private) {
        Some(reason) => Err(blocked(&host.to_string(), host, reason)),
        None => Ok(()),
    }
}

/// Checks a link as text (see [`check_url`]): what can be refused before any DNS lookup.
pub fn check_link(link: &str, allow_private: bool) -> Result<(), LinkError> {
    let url = Url::parse(link).map_err(|e| LinkError::Refused(format!("not a valid link: {e}")))?;
    check_url(&url, allow_private)
}

fn blocked(host: &str, ip: IpAddr, reason: &str) -> LinkError {
    LinkError::Refused(format!(
        "{host} resolves to {ip}, {reason}: media links must point to public hosts"
    ))
}

/// A refused DNS answer, carried through reqwest's error chain.
#[derive(Debug)]
struct Blocked(LinkError);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Blocked {}

/// Resolves host names and refuses the whole answer if any address is forbidden.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            for address in &addresses {
                if let Some(reason) = forbidden_address(address.ip(), allow_private) {
                    let error: Box<dyn StdError + Send + Sync> =
                        Box::new(Blocked(blocked(&host, address.ip(), reason)));
                    return Err(error);
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Fetches media links under the SSRF guard; cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkFetcher {
    client: reqwest::Client,
    allow_private: bool,
}

impl LinkFetcher {
    /// A fetcher whose requests (body included) end after `timeout`.
    pub fn new(allow_private: bool, timeout: Duration) -> LinkFetcher {
        let policy = Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Blocked(LinkError::Refused(format!(
                    "more than {MAX_REDIRECTS} redirects"
                ))));
            }
            match check_url(attempt.url(), allow_private) {
                Ok(()) => attempt.follow(),
                Err(error) => attempt.error(Blocked(error)),
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(policy)
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent("zapfn-media-fetch")
            .build()
            .expect("TLS backend initialises");
        LinkFetcher {
            client,
            allow_private,
        }
    }

    /// GETs `link`, refusing bodies over `max_bytes` without reading them whole.
    pub async fn fetch(&self, link: &str, max_bytes: u64) -> Result<Fetched, LinkError> {
        check_link(link, self.allow_private)?;
        let mut response = self.client.get(link).send().await.map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("the link answered HTTP {status}");
            return Err(if transient_status(status) {
                LinkError::Unavailable(message)
            } else {
                LinkError::Refused(message)
            });
        }
        let too_large = || {
            LinkError::Refused(format!(
                "the file at the link is over the {} limit",
                human_size(max_bytes)
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > max_bytes)
        {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes: body.freeze(),
            content_type,
        })
    }
}

fn transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// A refusal found anywhere in the error chain, else a transient failure.
fn request_error(error: reqwest::Error) -> LinkError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(Blocked(refusal)) = current.downcast_ref::<Blocked>() {
            return refusal.clone();
        }
        source = current.source();
    }
    if error.is_timeout() {
        return LinkError::Unavailable("the link did not answer in time".into());
    }
    LinkError::Unavailable(format!("could not fetch the link: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, allow_private: bool) -> bool {
        forbidden_address(ip.parse().unwrap(), allow_private).is_some()
    }

    #[test]
    fn private_ranges_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:c0a8:0101::1",
            "::127.0.0.2",
        ] {
            assert!(refused(ip, false), "{ip} should be refused");
            assert!(!refused(ip, true), "{ip} should be allowed by the flag");
        }
    }

    #[test]
    fn metadata_and_unroutable_addresses_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(refused(ip, true), "{ip} must stay refused with the flag");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2607:f8b0::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(ip, false), "{ip}");
        }
    }

    #[test]
    fn urls_need_http_and_a_public_literal_host() {
        let check = |url: &str| check_url(&Url::parse(url).unwrap(), false);
        assert!(check("https://cdn.example.com/a.jpg").is_ok());
        assert!(check("http://8.8.8.8/a.jpg").is_ok());
        let error = check("http://169.254.169.254/latest/meta-data").unwrap_err();
        assert_eq!(
            error.to_string(),
            "169.254.169.254 resolves to 169.254.169.254, a cloud metadata address: media links must point to public hosts"
        );
        assert!(check("http://[::1]:8080/").is_err());
        assert!(check("http://[::ffff:7f00:1]/").is_err());
        assert!(check("http://2130706433/").is_err(), "decimal 127.0.0.1");
        assert!(check("http://0x7f.1/").is_err(), "hex 127.0.0.1");
        assert!(check("file:///etc/passwd").is_err());
        assert!(check("ftp://example.com/a").is_err());
    }
}
