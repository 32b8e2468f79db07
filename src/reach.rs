//! Where shelfcast's HTTP requests may go: an answer never chooses the server a credential goes to.
//!
//! - **Redirects** are followed only within the origin (scheme, host, port) of the request that
//!   got them, at most [`MAX_REDIRECTS`] times; one to another origin fails the request.
//! - **Pagination** (`next-url`) stays on the source's own origin unless the source lists the other
//!   origin in `allow-origins`; a page on another origin is fetched without the credential.
//! - **Never https → http**, allowed origin or not.
//! - **Link-local and cloud metadata addresses** (169.254.0.0/16, fe80::/10, fd00:ec2::254 and the
//!   IPv4-mapped forms) are refused for sources and webhooks, as a URL's literal address and as
//!   what a host name resolves to, unless the source or webhook sets `allow-link-local = true`.
//!   Loopback and private networks stay allowed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::Url;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// What a source or webhook allows beyond its own origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Other origins pagination may go to (without the credential).
    pub origins: Vec<url::Origin>,
    /// Link-local and metadata addresses are allowed.
    pub link_local: bool,
}

/// Whether `ip` is link-local or a cloud metadata address.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_link_local(IpAddr::V4(v4));
            }
            let aws_metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == aws_metadata
        }
    }
}

/// Checks a URL before it is requested: http(s), and no link-local literal address (unless allowed).
pub fn check_url(url: &Url, reach: &Reach) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{}` is not http or https", without_credentials(url)));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(ip) = ip
        && is_link_local(ip)
        && !reach.link_local
    {
        return Err(format!(
            "`{}` is a link-local or metadata address; set allow-link-local = true to allow it",
            without_credentials(url)
        ));
    }
    Ok(())
}

/// Whether a request may go from `from` to `to` (a redirect or the next page); `origins`: other
/// origins allowed besides `from`'s own.
pub fn may_follow(from: &Url, to: &Url, origins: &[url::Origin], reach: &Reach) -> Result<(), String> {
    check_url(to, reach)?;
    if from.scheme() == "https" && to.scheme() != "https" {
        return Err(format!("`{}` would leave https for {}", without_credentials(to), to.scheme()));
    }
    if to.origin() != from.origin() && !origins.contains(&to.origin()) {
        return Err(format!(
            "`{}` is on another origin than `{}`",
            without_credentials(to),
            from.origin().ascii_serialization()
        ));
    }
    Ok(())
}

/// Whether `a` and `b` share scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// A URL for messages: without user, password or query.
pub fn without_credentials(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// reqwest's redirect policy: same origin, no downgrade, no link-local, at most [`MAX_REDIRECTS`].
pub fn redirect_policy(reach: Reach) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let Some(first) = attempt.previous().first().cloned() else {
            return attempt.follow();
        };
        match may_follow(&first, attempt.url(), &[], &reach) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(format!("redirect refused: {why}")),
        }
    })
}

/// A resolver that drops link-local and metadata addresses (unless allowed), so a host name
/// cannot lead there either.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    reach: Reach,
}

impl GuardedResolver {
    /// A resolver for `reach`.
    pub fn new(reach: Reach) -> Arc<Self> {
        Arc::new(Self { reach })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.reach.link_local;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found.iter().copied().filter(|a| allow || !is_link_local(a.ip())).collect();
            if kept.is_empty() && !found.is_empty() {
                let msg = format!(
                    "{host} resolves only to link-local or metadata addresses; set allow-link-local = true to allow it"
                );
                return Err(msg.into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn metadata_addresses_are_refused_and_loopback_is_not() {
        let none = Reach::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let err = check_url(&u(bad), &none).unwrap_err();
            assert!(err.contains("allow-link-local"), "{bad}: {err}");
        }
        for good in ["http://127.0.0.1:8080/x", "http://[::1]/x", "https://10.0.0.7/x", "https://example.com/x"] {
            check_url(&u(good), &none).unwrap();
        }
        let allowed = Reach { link_local: true, ..Reach::default() };
        check_url(&u("http://169.254.169.254/"), &allowed).unwrap();
    }

    #[test]
    fn only_the_same_origin_or_an_allowed_one_and_never_down_to_http() {
        let r = Reach::default();
        let from = u("https://erp.example.com/api?page=1");
        may_follow(&from, &u("https://erp.example.com/api?page=2"), &[], &r).unwrap();
        for bad in ["https://evil.example.com/x", "https://erp.example.com:8443/x", "http://erp.example.com/x"] {
            assert!(may_follow(&from, &u(bad), &[], &r).is_err(), "{bad}");
        }
        let cdn = u("https://cdn.example.com/").origin();
        may_follow(&from, &u("https://cdn.example.com/p2"), std::slice::from_ref(&cdn), &r).unwrap();
        let plain = u("http://cdn.example.com/").origin();
        let err = may_follow(&from, &u("http://cdn.example.com/p2"), &[plain], &r).unwrap_err();
        assert!(err.contains("leave https"), "{err}");
    }
}
