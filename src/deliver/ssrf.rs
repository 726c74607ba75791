//! The SSRF guard: a webhook may only reach global addresses, plus the CIDRs
//! an operator lists in `allow_targets`. Names are resolved *by the guard* and
//! only vetted addresses reach the connector, so a DNS answer cannot swap in
//! an internal address after the check.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Address blocks that are never global (RFC 6890 and friends).
static NON_GLOBAL: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|s| s.parse().expect("valid CIDR"))
    .collect()
});

/// Why a target was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("refused target {addr}: not a global address and not in allow_targets")]
pub struct BlockedTarget {
    pub addr: IpAddr,
}

/// Whether `addr` may be contacted given the operator's `allow`.
pub fn check(addr: IpAddr, allow: &[IpNet]) -> Result<(), BlockedTarget> {
    let addr = canonical(addr);
    if allow.iter().any(|n| n.contains(&addr)) || is_global(addr) {
        Ok(())
    } else {
        Err(BlockedTarget { addr })
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

fn is_global(addr: IpAddr) -> bool {
    !NON_GLOBAL.iter().any(|n| n.contains(&addr))
}

/// A resolver that drops every address the guard refuses, failing the lookup
/// when none is left.
#[derive(Clone)]
pub struct GuardedResolver {
    allow: Arc<Vec<IpNet>>,
}

impl GuardedResolver {
    pub fn new(allow: Vec<IpNet>) -> Self {
        GuardedResolver {
            allow: Arc::new(allow),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut refused = None;
            let ok: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match check(a.ip(), &allow) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some(e) => Box::new(e),
                    None => format!("{} resolved to no address", name.as_str()).into(),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(a: &str, allow: &[&str]) -> bool {
        let allow: Vec<IpNet> = allow.iter().map(|s| s.parse().unwrap()).collect();
        check(a.parse().unwrap(), &allow).is_ok()
    }

    #[test]
    fn refuses_internal_addresses_by_default() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!ok(a, &[]), "{a} should be refused");
        }
    }

    #[test]
    fn allows_global_addresses() {
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(ok(a, &[]), "{a} should be allowed");
        }
    }

    #[test]
    fn allow_targets_open_exactly_their_cidr() {
        assert!(ok("127.0.0.1", &["127.0.0.0/8"]));
        assert!(ok("::ffff:127.0.0.1", &["127.0.0.0/8"]));
        assert!(!ok("10.0.0.1", &["127.0.0.0/8"]));
        assert!(ok("10.9.9.9", &["10.9.0.0/16"]));
        assert!(!ok("10.10.0.1", &["10.9.0.0/16"]));
    }
}
