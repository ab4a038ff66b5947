//! Which addresses a webhook may reach: by default only public ones, so a tenant's URL cannot make assay call
//! into the operator's own network (a cloud metadata endpoint, a database, the admin port of a broker).
//! Checked after DNS resolution, by the resolver every connection goes through, so a name that resolves to a
//! private address is refused whatever it is called; literal addresses in URLs are checked before sending.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why an address is not public, or `None` when it is.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64: the IPv4 address it stands for decides.
                let [a, b] = seg[6].to_be_bytes();
                let [c, d] = seg[7].to_be_bytes();
                v4_reason(Ipv4Addr::new(a, b, c, d))
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (carrier-grade NAT)")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

/// Refuses `ip` unless private networks are allowed; the error names the address and why.
pub fn check(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    match not_public(ip) {
        Some(why) if !allow_private => Err(format!(
            "{ip} is a {why} address: webhooks go to public addresses only (allow_private_network = true in the tenants file allows it)"
        )),
        _ => Ok(()),
    }
}

/// The resolver every webhook connection uses: the system's, with every non-public answer refused unless the
/// tenants file allows private networks (read at each resolution, so a reload takes effect at the next attempt).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: Arc<AtomicBool>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private.load(Ordering::Acquire);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match check(a.ip(), allow) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| "no address".into());
                return Err(format!("{host} resolves to no allowed address: {why}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The literal address a URL names, if it names one (these never reach the resolver).
pub fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = a.parse().expect("address");
            assert!(not_public(ip).is_some(), "{a} must not count as public");
            assert!(check(ip, false).is_err() && check(ip, true).is_ok(), "{a}");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(not_public(a.parse().expect("address")), None, "{a} is public");
        }
        let e = check("169.254.169.254".parse().expect("ip"), false).unwrap_err();
        assert!(e.contains("link-local") && e.contains("allow_private_network"), "{e}");
    }
}
