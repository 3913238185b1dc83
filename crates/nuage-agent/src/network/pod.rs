//! A pod's namespace and veth: made, re-adopted, removed.
//!
//! Names derive from the pod uid alone, so a restarted agent finds what its
//! predecessor made: the namespace is `<prefix><key>` and the host side of
//! the veth `nv<key>`, where the key is the uid's first 12 letters and
//! digits (a UUID's first 48 bits; interface names allow 15 bytes).

use std::path::{Path, PathBuf};

use tracing::debug;

use super::bridge::{check_name, link_exists};
use super::ip::Batch;
use super::{NetworkError, PodAttachment, PodNetwork, Result};

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Prefix of the host side of every pod veth.
const VETH_PREFIX: &str = "nv";

/// How many characters of the uid go into names.
const KEY_LEN: usize = 12;

fn key(pod_uid: &str) -> Result<String> {
    let key: String = pod_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(KEY_LEN)
        .collect();
    if key.is_empty() {
        return Err(NetworkError::InvalidName {
            what: "pod uid",
            value: pod_uid.to_string(),
            reason: "holds no letter or digit",
        });
    }
    Ok(key)
}

/// The pod's network namespace name.
pub(crate) fn netns_name(prefix: &str, pod_uid: &str) -> Result<String> {
    Ok(format!("{prefix}{}", key(pod_uid)?))
}

/// The host side of the pod's veth.
pub(crate) fn veth_name(pod_uid: &str) -> Result<String> {
    Ok(format!("{VETH_PREFIX}{}", key(pod_uid)?))
}

/// The bridge a host interface is enslaved to, if any.
fn master_of(link: &str) -> Option<String> {
    let target = std::fs::read_link(Path::new("/sys/class/net").join(link).join("master")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Whether a host interface is administratively up (IFF_UP).
fn is_up(link: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(link).join("flags"))
        .ok()
        .and_then(|flags| u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 == 1)
}

pub(crate) async fn attach(net: &PodNetwork, pod_uid: &str) -> Result<PodAttachment> {
    let netns = netns_name(&net.config.netns_prefix, pod_uid)?;
    let veth = veth_name(pod_uid)?;
    let netns_path = PathBuf::from(NETNS_DIR).join(&netns);
    let bridge = &net.config.bridge;

    let (ip, new_ip) = net.pods.allocate(pod_uid)?;
    let netns_existed = netns_path.exists();
    let mut veth_existed = link_exists(&veth);

    let mut host = Batch::new();
    if !netns_existed {
        if veth_existed {
            // Its peer sits in a namespace nobody can name any more (one
            // deleted while a process still held it): start over.
            host.push(format!("link del {veth}"));
            veth_existed = false;
        }
        host.push(format!("netns add {netns}"));
    }
    if !veth_existed {
        // The peer is born inside the namespace with its final name: no
        // move and no rename afterwards.
        host.push(format!(
            "link add {veth} type veth peer name eth0 netns {netns}"
        ));
    }
    if !veth_existed || master_of(&veth).as_deref() != Some(bridge.as_str()) || !is_up(&veth) {
        host.push(format!("link set {veth} master {bridge} up"));
    }
    let gateway = net.gateway();
    let mut inside = Batch::in_netns(&netns);
    if netns_existed && veth_existed && new_ip {
        // The state forgot this pod (a wiped state dir) but its namespace
        // survived: drop the address it had before taking the new one.
        inside.push("addr flush dev eth0 scope global".into());
    }
    inside
        .push("link set lo up".into())
        .push(format!("addr replace {ip}/{} dev eth0", net.cidr.prefix))
        .push("link set eth0 up".into())
        .push(format!("route replace default via {gateway} dev eth0"));

    let made = async {
        host.run().await?;
        inside.run().await
    }
    .await;
    if let Err(e) = made {
        undo(
            net,
            pod_uid,
            &netns,
            &veth,
            !netns_existed,
            !veth_existed,
            new_ip,
        )
        .await;
        return Err(e);
    }
    debug!(%ip, %netns, %veth, new_ip, "pod attached");
    Ok(PodAttachment {
        netns: netns_path,
        ip,
    })
}

/// Removes what a failed attach made, keeping what was there before it.
async fn undo(
    net: &PodNetwork,
    pod_uid: &str,
    netns: &str,
    veth: &str,
    made_netns: bool,
    made_veth: bool,
    made_ip: bool,
) {
    let mut batch = Batch::new();
    if made_veth && link_exists(veth) {
        batch.push(format!("link del {veth}"));
    }
    if made_netns && Path::new(NETNS_DIR).join(netns).exists() {
        batch.push(format!("netns del {netns}"));
    }
    if let Err(e) = batch.run().await {
        tracing::warn!(error = %e, pod_uid, "cleaning up after a failed attach");
    }
    if made_ip {
        if let Err(e) = net.pods.release(pod_uid) {
            tracing::warn!(error = %e, pod_uid, "freeing the address of a failed attach");
        }
    }
}

pub(crate) async fn detach(net: &PodNetwork, pod_uid: &str) -> Result<()> {
    let netns = netns_name(&net.config.netns_prefix, pod_uid)?;
    let veth = veth_name(pod_uid)?;
    let mut batch = Batch::new();
    if link_exists(&veth) {
        batch.push(format!("link del {veth}"));
    }
    if Path::new(NETNS_DIR).join(&netns).exists() {
        // A process still inside keeps the namespace alive until it exits;
        // the name goes now, so a new attach starts afresh.
        batch.push(format!("netns del {netns}"));
    }
    batch.run().await?;
    net.pods.release(pod_uid)
}

/// Removes every namespace with the network's prefix (or, with an empty
/// prefix, every namespace of a recorded pod) and every veth on the bridge
/// or named for a recorded pod.
pub(crate) async fn remove_all(net: &PodNetwork) -> Result<()> {
    let prefix = &net.config.netns_prefix;
    let recorded: Vec<String> = net.pods.list()?.into_iter().map(|(uid, _)| uid).collect();
    let mut namespaces: Vec<String> = Vec::new();
    if !prefix.is_empty() {
        if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(prefix.as_str()) {
                    namespaces.push(name);
                }
            }
        }
    }
    for uid in &recorded {
        let name = netns_name(prefix, uid)?;
        if Path::new(NETNS_DIR).join(&name).exists() && !namespaces.contains(&name) {
            namespaces.push(name);
        }
    }
    let mut veths: Vec<String> = Vec::new();
    let ports = Path::new("/sys/class/net")
        .join(&net.config.bridge)
        .join("brif");
    if let Ok(entries) = std::fs::read_dir(ports) {
        veths.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    for uid in &recorded {
        let name = veth_name(uid)?;
        if link_exists(&name) && !veths.contains(&name) {
            veths.push(name);
        }
    }
    let mut batch = Batch::new();
    for veth in &veths {
        check_name("veth", veth, 15)?;
        batch.push(format!("link del {veth}"));
    }
    for netns in &namespaces {
        check_name("netns", netns, 255)?;
        batch.push(format!("netns del {netns}"));
    }
    batch.run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_uid() {
        let uid = "3f2a1b4c-9d8e-4f00-8a7b-112233445566";
        let (netns, veth) = (netns_name("nuage-", uid).unwrap(), veth_name(uid).unwrap());
        assert_eq!(netns, "nuage-3f2a1b4c9d8e");
        assert_eq!(veth, "nv3f2a1b4c9d8e");
        assert!(veth.len() <= 15);
        assert!(veth_name("--").is_err());
    }
}
