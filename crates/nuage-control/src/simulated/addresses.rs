//! Fake pod addresses for simulated nodes: each node hands out addresses
//! from its own `spec.podCIDR`, so two running pods never share one. No
//! route or interface exists for them: they only have to look real.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// A pod's address on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lease {
    uid: String,
    node: String,
    ip: Ipv4Addr,
}

/// Which address each pod (by `namespace/name` key) holds on which node.
#[derive(Default)]
pub struct Addresses {
    by_pod: HashMap<String, Lease>,
    used: HashMap<String, BTreeSet<Ipv4Addr>>,
}

impl Addresses {
    /// Records an address a pod already has (seen in its status), so that
    /// it is not handed out again.
    pub fn record(&mut self, key: &str, uid: &str, node: &str, ip: Ipv4Addr) {
        self.release(key);
        self.used.entry(node.to_string()).or_default().insert(ip);
        self.by_pod.insert(
            key.to_string(),
            Lease {
                uid: uid.to_string(),
                node: node.to_string(),
                ip,
            },
        );
    }

    /// The pod's address on `node` from `cidr` (`a.b.c.d/n`): the one it
    /// holds, else the lowest free one after the network address and the
    /// gateway. `None` if the range is full or not a CIDR.
    pub fn assign(&mut self, key: &str, uid: &str, node: &str, cidr: &str) -> Option<Ipv4Addr> {
        if let Some(l) = self.by_pod.get(key) {
            if l.uid == uid && l.node == node {
                return Some(l.ip);
            }
        }
        self.release(key);
        let (base, size) = parse_cidr(cidr)?;
        let used = self.used.entry(node.to_string()).or_default();
        // .0 is the network, .1 the (imaginary) gateway, the last the
        // broadcast address.
        let ip = (2..size.saturating_sub(1))
            .map(|i| Ipv4Addr::from(base + i))
            .find(|ip| !used.contains(ip))?;
        used.insert(ip);
        self.by_pod.insert(
            key.to_string(),
            Lease {
                uid: uid.to_string(),
                node: node.to_string(),
                ip,
            },
        );
        Some(ip)
    }

    /// Frees the pod's address (it is gone).
    pub fn release(&mut self, key: &str) {
        if let Some(l) = self.by_pod.remove(key) {
            if let Some(used) = self.used.get_mut(&l.node) {
                used.remove(&l.ip);
                if used.is_empty() {
                    self.used.remove(&l.node);
                }
            }
        }
    }
}

/// `10.128.3.0/24` → (the network as a number, the number of addresses).
fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, bits) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if !(8..=30).contains(&bits) {
        return None;
    }
    let mask = u32::MAX << (32 - bits);
    Some((u32::from(ip) & mask, 1 << (32 - bits)))
}

/// A stand-in range for a simulated node without `spec.podCIDR`: a /24 in
/// 10.128.0.0/9 picked from its name (two such nodes may share one; their
/// pods' addresses are fake anyway).
pub fn fallback_cidr(node: &str) -> String {
    // FNV-1a: stable across runs, unlike the std hasher.
    let h = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let block = h % (1 << 15);
    format!("10.{}.{}.0/24", 128 + (block >> 8), block & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_per_node_and_reused_after_release() {
        let mut a = Addresses::default();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            a.assign("ns/p1", "u1", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.2"))
        );
        assert_eq!(
            a.assign("ns/p2", "u2", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.3"))
        );
        // The same pod asks again: same address.
        assert_eq!(
            a.assign("ns/p1", "u1", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.2"))
        );
        // Another node has its own range.
        assert_eq!(
            a.assign("ns/p3", "u3", "n2", "10.128.1.0/24"),
            Some(ip("10.128.1.2"))
        );
        a.release("ns/p1");
        assert_eq!(
            a.assign("ns/p4", "u4", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.2"))
        );
        // A recreated pod (new uid) gets a fresh assignment.
        a.record("ns/p5", "u5", "n1", ip("10.128.0.9"));
        assert_eq!(
            a.assign("ns/p6", "u6", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.4"))
        );
        assert_eq!(
            a.assign("ns/p5", "u7", "n1", "10.128.0.0/24"),
            Some(ip("10.128.0.5"))
        );
    }

    #[test]
    fn a_full_range_gives_none() {
        let mut a = Addresses::default();
        // A /30 has 4 addresses: network, gateway, one pod, broadcast.
        assert!(a.assign("ns/a", "a", "n", "10.0.0.0/30").is_some());
        assert_eq!(a.assign("ns/b", "b", "n", "10.0.0.0/30"), None);
        assert_eq!(a.assign("ns/c", "c", "n", "nonsense"), None);
    }

    #[test]
    fn fallback_ranges_are_in_the_simulated_block() {
        let c = fallback_cidr("some-node");
        assert!(c.starts_with("10.") && c.ends_with(".0/24"), "{c}");
        let second: u32 = c.split('.').nth(1).unwrap().parse().unwrap();
        assert!((128..256).contains(&second));
        assert_eq!(c, fallback_cidr("some-node"));
    }
}
