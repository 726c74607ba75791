//! The SSRF guard: a webhook may only reach global addresses, plus the CIDRs
//! an operator lists in `allow_targets`. Names are resolved *by the guard* and
//! only vetted addresses reach the connector, so a DNS answer cannot swap in
//! an internal address after the check. An IPv6 address that carries an IPv4
//! one (mapped, compatible, NAT64, 6to4) is judged by the IPv4 address too,
//! since a translator on the way delivers it there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Address blocks that are never global (RFC 6890 and friends), with the
/// name a refusal gives them.
static NON_GLOBAL: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("0.0.0.0/8", "\"this network\""),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    ]
    .iter()
    .map(|(s, class)| (s.parse().expect("valid CIDR"), *class))
    .collect()
});

/// Why a target was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("refused target {addr} ({class}): not a global address and not in allow_targets")]
pub struct BlockedTarget {
    pub addr: IpAddr,
    /// The kind of address it is (`loopback`, `private`, ...).
    pub class: &'static str,
}

/// Whether `addr` may be contacted given the operator's `allow`: it, or the
/// IPv4 address it embeds, is listed, or both are global.
pub fn check(addr: IpAddr, allow: &[IpNet]) -> Result<(), BlockedTarget> {
    let embedded = embedded_ipv4(addr).map(IpAddr::V4);
    let listed = |a: IpAddr| allow.iter().any(|n| n.contains(&a));
    let global = is_global(addr) && embedded.is_none_or(is_global);
    if global || listed(addr) || embedded.is_some_and(listed) {
        Ok(())
    } else {
        let class = class_of(addr)
            .or_else(|| embedded.and_then(class_of))
            .unwrap_or("not global");
        Err(BlockedTarget { addr, class })
    }
}

/// The IPv4 address an IPv6 address stands for on the way to its target:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`), NAT64's
/// well-known prefix (`64:ff9b::/96`, RFC 6052) and 6to4 (`2002::/16`, the
/// IPv4 address in bits 16..48, RFC 3056).
fn embedded_ipv4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = addr else { return None };
    let s = v6.segments();
    let last32 = |v6: Ipv6Addr| Ipv4Addr::from_bits(v6.to_bits() as u32);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(last32(v6)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last32(v6)),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from_bits((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// The name of the non-global block `addr` is in, if any.
fn class_of(addr: IpAddr) -> Option<&'static str> {
    NON_GLOBAL
        .iter()
        .find(|(net, _)| net.contains(&addr))
        .map(|(_, class)| *class)
}

fn is_global(addr: IpAddr) -> bool {
    class_of(addr).is_none()
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
    fn ipv6_forms_of_internal_ipv4_are_refused() {
        for a in [
            "::7f00:1",           // IPv4-compatible 127.0.0.1
            "::10.0.0.1",         // the same, dotted
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "2002:7f00:1::",      // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",   // 6to4 of 192.168.1.1
            "fec0::1",            // deprecated site-local
        ] {
            assert!(!ok(a, &[]), "{a} should be refused");
        }
        assert!(ok("64:ff9b::7f00:1", &["127.0.0.0/8"]));
        assert!(ok("64:ff9b::7f00:1", &["64:ff9b::/96"]));
        assert!(ok("64:ff9b::808:808", &[]), "NAT64 of a global address");
        assert!(ok("2002:808:808::1", &[]), "6to4 of a global address");
    }

    #[test]
    fn allow_targets_open_exactly_their_cidr() {
        assert!(ok("127.0.0.1", &["127.0.0.0/8"]));
        assert!(ok("::ffff:127.0.0.1", &["127.0.0.0/8"]));
        assert!(!ok("10.0.0.1", &["127.0.0.0/8"]));
        assert!(ok("10.9.9.9", &["10.9.0.0/16"]));
        assert!(!ok("10.10.0.1", &["10.9.0.0/16"]));
    }

    mod properties {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

        use ipnet::IpNet;
        use proptest::prelude::*;

        use super::super::{NON_GLOBAL, check};

        fn v4_blocks() -> Vec<ipnet::Ipv4Net> {
            NON_GLOBAL
                .iter()
                .filter_map(|(n, _)| match n {
                    IpNet::V4(n) => Some(*n),
                    IpNet::V6(_) => None,
                })
                .collect()
        }

        /// Any address inside one of the non-global IPv4 blocks.
        fn non_global_v4() -> impl Strategy<Value = Ipv4Addr> {
            let blocks = v4_blocks();
            (0..blocks.len(), any::<u32>()).prop_map(move |(i, bits)| {
                let net = blocks[i];
                Ipv4Addr::from_bits(net.network().to_bits() | (bits & net.hostmask().to_bits()))
            })
        }

        fn global_v4() -> impl Strategy<Value = Ipv4Addr> {
            let blocks = v4_blocks();
            any::<u32>()
                .prop_map(Ipv4Addr::from_bits)
                .prop_filter("global", move |a| !blocks.iter().any(|n| n.contains(a)))
        }

        /// Every IPv6 form that carries `v4`; `noise` fills the bits 6to4
        /// leaves to the site (subnet and interface id).
        fn embeddings(v4: Ipv4Addr, noise: u128) -> Vec<Ipv6Addr> {
            let v4 = u128::from(v4.to_bits());
            vec![
                Ipv6Addr::from_bits((0xffff << 32) | v4),
                Ipv6Addr::from_bits(v4),
                Ipv6Addr::from_bits((0x64_ff9b << 96) | v4),
                Ipv6Addr::from_bits((0x2002 << 112) | (v4 << 80) | (noise & ((1 << 80) - 1))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn every_ipv6_form_of_a_non_global_ipv4_is_refused(
                v4 in non_global_v4(),
                noise in any::<u128>(),
            ) {
                prop_assert!(check(IpAddr::V4(v4), &[]).is_err());
                for v6 in embeddings(v4, noise) {
                    prop_assert!(check(IpAddr::V6(v6), &[]).is_err(), "{} carries {}", v6, v4);
                }
            }

            #[test]
            fn every_ipv6_form_of_a_global_ipv4_is_allowed(
                v4 in global_v4(),
                noise in any::<u128>(),
            ) {
                prop_assert!(check(IpAddr::V4(v4), &[]).is_ok());
                for v6 in embeddings(v4, noise) {
                    prop_assert!(check(IpAddr::V6(v6), &[]).is_ok(), "{} carries {}", v6, v4);
                }
            }

            #[test]
            fn site_local_is_refused(low in any::<u128>()) {
                let v6 = Ipv6Addr::from_bits((0xfec0 << 112) | (low >> 10));
                prop_assert!(check(IpAddr::V6(v6), &[]).is_err(), "{}", v6);
            }
        }
    }
}
