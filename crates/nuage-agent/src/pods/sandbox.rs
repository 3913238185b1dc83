//! A pod's sandbox: what its containers share — the network namespace and
//! address, host ports, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`,
//! and the volumes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::context::Context;
use crate::network::HostPort;
use crate::runtime::Mount;
use crate::volumes::{self, PreparedVolume};

/// The shared part of a pod on this node.
pub struct Sandbox {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Its network namespace (`None`: the host's network).
    pub netns: Option<PathBuf>,
    uid: String,
    dir: PathBuf,
    volumes: BTreeMap<String, PreparedVolume>,
}

impl Sandbox {
    /// Makes (or, after an agent restart, finds again) the sandbox of `pod`.
    /// `process` runtimes get a loopback address on the host's network.
    pub async fn create(ctx: &Context, pod: &Pod, process: bool) -> Result<Self, String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dir = ctx.pods_dir.join(&uid);
        std::fs::create_dir_all(dir.join("etc"))
            .map_err(|e| format!("create pod directory {}: {e}", dir.display()))?;
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network == Some(true);
        let (ip, netns) = if process {
            let ip = ctx
                .network
                .allocate_loopback(&uid)
                .map_err(|e| format!("allocate a loopback address: {e}"))?;
            (ip, None)
        } else if host_network {
            let ip = ctx.host_ip.parse().unwrap_or(Ipv4Addr::LOCALHOST);
            (ip, None)
        } else {
            let a = ctx
                .network
                .attach(&uid)
                .await
                .map_err(|e| format!("failed to set up pod network: {e}"))?;
            (a.ip, Some(a.netns))
        };
        let sandbox = Self {
            ip,
            netns,
            uid: uid.clone(),
            dir: dir.clone(),
            volumes: BTreeMap::new(),
        };
        let hosts = format!(
            "# Kubernetes-managed hosts file (nuage).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{name}\n"
        );
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for (file, text) in [
            ("hosts", hosts),
            ("hostname", format!("{name}\n")),
            ("resolv.conf", resolv),
        ] {
            if let Err(e) = std::fs::write(dir.join("etc").join(file), text) {
                sandbox.destroy(ctx).await;
                return Err(format!("write /etc/{file} for the pod: {e}"));
            }
        }
        let host_ports: Vec<HostPort> = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let host_port = u16::try_from(p.host_port?).ok()?;
                let container_port = u16::try_from(p.container_port).ok()?;
                let mut hp = if p.protocol.as_deref() == Some("UDP") {
                    HostPort::udp(host_port, container_port)
                } else {
                    HostPort::tcp(host_port, container_port)
                };
                if let Some(ip) = p.host_ip.as_deref().and_then(|s| s.parse().ok()) {
                    hp.host_ip = ip;
                }
                Some(hp)
            })
            .collect();
        // Host-network pods (and process pods) already listen on the host.
        if !host_ports.is_empty() && sandbox.netns.is_some() {
            if let Err(e) = ctx.network.set_host_ports(&uid, host_ports, ip).await {
                sandbox.destroy(ctx).await;
                return Err(format!("host port: {e}"));
            }
        }
        let mut sandbox = sandbox;
        match volumes::prepare(&ctx.client, pod, &dir).await {
            Ok(v) => sandbox.volumes = v,
            Err(e) => {
                let message = e.to_string();
                sandbox.destroy(ctx).await;
                return Err(message);
            }
        }
        Ok(sandbox)
    }

    /// The bind mounts of one container: its volumes and the pod's files.
    pub fn mounts_for(&self, container: &Container) -> Result<Vec<Mount>, String> {
        let mut mounts =
            volumes::mounts_for(container, &self.volumes).map_err(|e| e.to_string())?;
        for file in ["hosts", "hostname", "resolv.conf"] {
            let destination = format!("/etc/{file}");
            if mounts.iter().any(|m| m.destination == destination) {
                continue;
            }
            mounts.push(Mount {
                source: self.dir.join("etc").join(file),
                destination,
                read_only: false,
            });
        }
        Ok(mounts)
    }

    /// Removes the network attachment, host ports and volumes.
    pub async fn destroy(self, ctx: &Context) {
        Self::destroy_by_uid(ctx, &self.uid).await;
    }

    /// Removes whatever sandbox `uid` has (also one made by an earlier agent).
    pub async fn destroy_by_uid(ctx: &Context, uid: &str) {
        ctx.network.clear_host_ports(uid);
        if let Err(e) = ctx.network.detach(uid).await {
            tracing::warn!(pod = %uid, error = %e, "detach pod network");
        }
        let _ = ctx.network.release_loopback(uid);
        let dir = ctx.pods_dir.join(uid);
        if let Err(e) = volumes::cleanup(&dir).await {
            tracing::warn!(pod = %uid, error = %e, "clean up volumes");
        }
        ctx.release(uid);
    }
}
