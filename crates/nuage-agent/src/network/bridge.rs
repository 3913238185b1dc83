//! The bridge: created once, re-used after restarts, holding the gateway
//! address; and the routes that keep the pod CIDR on this host.

use std::path::Path;

use super::ip::{self, Batch};
use super::ipam::Cidr;
use super::{NetworkError, Result};

/// Metric of the `unreachable` route for the pod CIDR: above the bridge's
/// connected route (metric 0), so it only matters while the bridge is down
/// or gone.
pub(crate) const UNREACHABLE_METRIC: u32 = 4096;

/// Checks that a name is safe as an interface name, a file name and a word
/// in an `ip` batch line.
pub(crate) fn check_name(what: &'static str, value: &str, max_len: usize) -> Result<()> {
    let reason = if value.is_empty() && what != "netns prefix" {
        Some("must not be empty")
    } else if value.len() > max_len {
        Some("is too long")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("may only hold letters, digits, '-', '_' and '.'")
    } else if value.starts_with('.') {
        Some("must not start with '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetworkError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether a network interface of that name exists in the host namespace.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Creates the bridge if absent, gives it the gateway address, sets it up
/// and adds the `unreachable` fallback route. Idempotent.
pub(crate) async fn ensure(bridge: &str, cidr: Cidr) -> Result<()> {
    check_overlap(bridge, cidr).await?;
    let mut batch = Batch::new();
    if link_exists(bridge) {
        if !Path::new("/sys/class/net")
            .join(bridge)
            .join("bridge")
            .exists()
        {
            return Err(NetworkError::InvalidName {
                what: "bridge",
                value: bridge.to_string(),
                reason: "an interface of that name exists and is not a bridge",
            });
        }
    } else {
        // A fixed MAC: otherwise the bridge takes the lowest MAC of its
        // ports, which changes as pods come and go and leaves stale
        // gateway entries in the pods' ARP caches.
        batch.push(format!(
            "link add {bridge} address {} type bridge",
            bridge_mac(bridge)
        ));
    }
    let gateway = std::net::Ipv4Addr::from(cidr.first_host());
    batch
        .push(format!(
            "addr replace {gateway}/{} dev {bridge}",
            cidr.prefix
        ))
        .push(format!("link set {bridge} up"))
        .push(format!(
            "route replace unreachable {cidr} metric {UNREACHABLE_METRIC}"
        ));
    batch.run().await
}

/// Deletes the bridge and the fallback route. Idempotent.
pub(crate) async fn remove(bridge: &str, cidr: Cidr) -> Result<()> {
    if link_exists(bridge) {
        let mut batch = Batch::new();
        batch.push(format!("link del {bridge}"));
        batch.run().await?;
    }
    let mut batch = Batch::new();
    batch.push(format!(
        "route del unreachable {cidr} metric {UNREACHABLE_METRIC}"
    ));
    match batch.run().await {
        // ESRCH: the route was not there.
        Err(NetworkError::Ip { stderr, .. }) if stderr.contains("No such process") => Ok(()),
        other => other,
    }
}

/// Refuses a pod CIDR that overlaps a route of the host's main table on
/// another interface (the default route aside): such a CIDR would shadow a
/// real network or be shadowed by it.
async fn check_overlap(bridge: &str, cidr: Cidr) -> Result<()> {
    let routes = ip::json(&["-4", "route", "show", "table", "main"]).await?;
    for route in routes.as_array().into_iter().flatten() {
        let Some(dst) = route.get("dst").and_then(|d| d.as_str()) else {
            continue;
        };
        if dst == "default" {
            continue;
        }
        let dev = route.get("dev").and_then(|d| d.as_str());
        let kind = route.get("type").and_then(|t| t.as_str());
        let ours =
            dev == Some(bridge) || (kind == Some("unreachable") && Cidr::parse(dst) == Some(cidr));
        if ours {
            continue;
        }
        if Cidr::parse(dst).is_some_and(|other| other.overlaps(&cidr)) {
            return Err(NetworkError::CidrOverlap {
                cidr: cidr.to_string(),
                route: match (kind, dev) {
                    (_, Some(dev)) => format!("{dst} dev {dev}"),
                    (Some(kind), None) => format!("{kind} {dst}"),
                    (None, None) => dst.to_string(),
                },
            });
        }
    }
    Ok(())
}

/// A locally administered unicast MAC derived from the bridge's name, so it
/// stays the same across agent restarts and re-creations (FNV-1a).
fn bridge_mac(bridge: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bridge.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let b = hash.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("bridge", "nuage0", 15).is_ok());
        assert!(check_name("bridge", "", 15).is_err());
        assert!(check_name("bridge", "a-name-far-too-long", 15).is_err());
        assert!(check_name("bridge", "br 0", 15).is_err());
        assert!(check_name("netns prefix", "", 64).is_ok());
        assert!(check_name("netns prefix", "../x", 64).is_err());
    }

    #[test]
    fn bridge_mac_is_stable_and_local() {
        assert_eq!(bridge_mac("nuage0"), bridge_mac("nuage0"));
        assert_ne!(bridge_mac("nuage0"), bridge_mac("nuage1"));
        assert!(bridge_mac("nuage0").starts_with("02:"));
    }
}
