//! Pod networking: a bridge nuage owns (`nuage0` by default) holding the
//! gateway address of the node's pod CIDR, a network namespace per pod with
//! a veth into the bridge and an address from the CIDR, and host ports
//! forwarded to pods.
//!
//! Links, addresses and routes are made by iproute2's `ip` in batch mode
//! (`ip -batch -`, `ip -n NS -batch -`): attaching a pod costs two short
//! processes. The in-process alternative (netlink from Rust) would save those
//! two processes but needs a thread moved into each new namespace with
//! `setns` and a bind mount made by hand; `ip` already does both correctly.
//!
//! Routing decisions (see [`PodNetwork::setup`]):
//! - pod ↔ pod traffic is bridged (layer 2), host ↔ pod traffic is local, so
//!   `net.ipv4.ip_forward` is left as it is: nothing here needs it. Where
//!   `br_netfilter` is loaded with `net.bridge.bridge-nf-call-iptables=1`,
//!   bridged frames cross the host's iptables/nftables FORWARD hook: a host
//!   whose FORWARD policy is DROP (Docker sets one) must accept traffic with
//!   input and output on the bridge.
//! - the bridge's connected route covers the pod CIDR, and an `unreachable`
//!   route for the same CIDR with a higher metric takes over while the bridge
//!   is down or absent, so a packet for a pod address never follows the
//!   host's default route, even while nuage is not running.
//!
//! State: the addresses handed out live as one file per address under
//! `state_dir` (see [`ipam`]); the namespaces live in `/run/netns`; the host
//! port forwarders live in this process only (the agent sets them again when
//! it re-adopts a pod).

mod bridge;
mod error;
mod hostport;
mod ip;
pub mod ipam;
mod pod;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::instrument;

pub use error::NetworkError;
pub use hostport::{HostPort, Protocol};

use hostport::Forwarders;
use ipam::{Cidr, Pool};

/// The range process-runtime pods get their loopback addresses from.
pub const LOOPBACK_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 77, 0, 0), 16);

/// Result of this module's operations.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// How the node's pod network is laid out.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The bridge's interface name (at most 15 characters).
    pub bridge: String,
    /// The pod CIDR: network address and prefix length (at most 30).
    pub pod_cidr: (Ipv4Addr, u8),
    /// Where allocated addresses are recorded; survives agent restarts.
    pub state_dir: PathBuf,
    /// Prefix of the network namespaces' names (`/run/netns/<prefix><uid…>`).
    pub netns_prefix: String,
}

impl NetworkConfig {
    /// The defaults (`nuage0`, `10.88.0.0/16`, namespaces `nuage-…`) with
    /// state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetworkConfig {
            bridge: "nuage0".to_string(),
            pod_cidr: (Ipv4Addr::new(10, 88, 0, 0), 16),
            state_dir: state_dir.into(),
            netns_prefix: "nuage-".to_string(),
        }
    }
}

/// A pod's place on the network, as [`PodNetwork::attach`] made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The pod's network namespace (`/run/netns/NAME`), for the runtime.
    pub netns: PathBuf,
    /// The pod's address (its `podIP`).
    pub ip: Ipv4Addr,
}

/// The node's pod network: the bridge, the pods' namespaces and addresses,
/// the loopback addresses of process-runtime pods, and host ports.
pub struct PodNetwork {
    config: NetworkConfig,
    cidr: Cidr,
    pods: Pool,
    loopbacks: Pool,
    forwarders: Forwarders,
    /// One lock per pod uid being attached or detached, so two calls for
    /// the same pod never interleave while different pods proceed together.
    pod_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// No bridge, no namespaces: loopback addresses only (no root).
    host_only: bool,
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PodNetwork {
    /// Makes the bridge ready (creating it if absent, re-using it after an
    /// agent restart), gives it the CIDR's first address, sets it up and
    /// routes the CIDR to it, with an `unreachable` fallback route.
    ///
    /// Refuses a CIDR that overlaps a route the host already has on another
    /// interface: pods would shadow (or be shadowed by) real networks.
    #[instrument(skip_all, fields(bridge = %config.bridge))]
    pub async fn setup(config: NetworkConfig) -> Result<Self> {
        let cidr = Cidr::new(config.pod_cidr.0, config.pod_cidr.1)?;
        if cidr.prefix > 30 {
            return Err(NetworkError::InvalidCidr {
                cidr: cidr.to_string(),
                reason: "a pod CIDR needs a prefix of at most /30".into(),
            });
        }
        bridge::check_name("bridge", &config.bridge, 15)?;
        // Names are built as prefix + 12 characters and must stay within
        // the kernel's limits on netns file names (no real limit) and our
        // own batch syntax (no spaces).
        bridge::check_name("netns prefix", &config.netns_prefix, 64)?;
        bridge::ensure(&config.bridge, cidr).await?;
        Self::with_pools(config, cidr, false)
    }

    /// A network for an agent without root: no bridge or namespaces (every
    /// `attach` fails with [`NetworkError::HostOnly`]), loopback addresses
    /// for `process` pods, and host ports.
    pub fn host_only(config: NetworkConfig) -> Result<Self> {
        let cidr = Cidr::new(config.pod_cidr.0, config.pod_cidr.1)?;
        Self::with_pools(config, cidr, true)
    }

    fn with_pools(config: NetworkConfig, cidr: Cidr, host_only: bool) -> Result<Self> {
        let pods = Pool::new(
            config.state_dir.join("pod-ips"),
            cidr.first_host() + 1,
            cidr.last_host(),
        );
        let lo = Cidr::new(LOOPBACK_CIDR.0, LOOPBACK_CIDR.1)?;
        let loopbacks = Pool::new(
            config.state_dir.join("loopback-ips"),
            lo.first_host(),
            lo.last_host(),
        );
        Ok(PodNetwork {
            config,
            cidr,
            pods,
            loopbacks,
            forwarders: Forwarders::default(),
            pod_locks: Mutex::new(HashMap::new()),
            host_only,
        })
    }

    /// The configuration this network was set up with.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The host's address on the bridge: every pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.cidr.first_host())
    }

    /// The pod CIDR (network address, prefix length).
    pub fn cidr(&self) -> (Ipv4Addr, u8) {
        (self.cidr.network, self.cidr.prefix)
    }

    /// The path of the pod's network namespace (whether or not it exists).
    pub fn netns_path(&self, pod_uid: &str) -> Result<PathBuf> {
        Ok(
            PathBuf::from(pod::NETNS_DIR)
                .join(pod::netns_name(&self.config.netns_prefix, pod_uid)?),
        )
    }

    /// Every pod address recorded in the state, with its pod uid: after a
    /// restart the agent detaches the pods the API no longer knows.
    pub fn allocations(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        self.pods.list()
    }

    /// Gives the pod a network namespace with `lo` up and `eth0` on the
    /// bridge, holding an address from the pod CIDR and a default route via
    /// the gateway.
    ///
    /// Idempotent: a pod that already has its namespace, veth and address
    /// gets them back unchanged (this is how a restarted agent re-adopts its
    /// pods). A failed attach removes what it made.
    #[instrument(skip(self), fields(bridge = %self.config.bridge))]
    pub async fn attach(&self, pod_uid: &str) -> Result<PodAttachment> {
        if self.host_only {
            return Err(NetworkError::HostOnly);
        }
        let lock = self.pod_lock(pod_uid);
        let result = {
            let _held = lock.lock().await;
            match pod::attach(self, pod_uid).await {
                // The bridge may have been removed under us (by hand, or by
                // another program): make it again once and retry.
                Err(NetworkError::Ip { .. }) if !bridge::link_exists(&self.config.bridge) => {
                    tracing::warn!(bridge = %self.config.bridge, "the bridge is gone: making it again");
                    bridge::ensure(&self.config.bridge, self.cidr).await?;
                    pod::attach(self, pod_uid).await
                }
                other => other,
            }
        };
        self.release_pod_lock(pod_uid, lock);
        result
    }

    /// Removes the pod's veth and namespace, frees its address and stops its
    /// host ports. Idempotent.
    #[instrument(skip(self), fields(bridge = %self.config.bridge))]
    pub async fn detach(&self, pod_uid: &str) -> Result<()> {
        self.forwarders.clear(pod_uid);
        if self.host_only {
            return Ok(());
        }
        let lock = self.pod_lock(pod_uid);
        let result = {
            let _held = lock.lock().await;
            pod::detach(self, pod_uid).await
        };
        self.release_pod_lock(pod_uid, lock);
        result
    }

    /// Forwards each host port to `pod_ip` from a listener in this process,
    /// replacing the pod's previous set (unchanged sets keep their
    /// listeners and connections). A port that cannot be bound is an error,
    /// and then none of the pod's host ports is active.
    pub async fn set_host_ports(
        &self,
        pod_uid: &str,
        ports: Vec<HostPort>,
        pod_ip: Ipv4Addr,
    ) -> Result<()> {
        self.forwarders.set(pod_uid, ports, pod_ip).await
    }

    /// Stops the pod's host port forwarders and closes their connections.
    pub fn clear_host_ports(&self, pod_uid: &str) {
        self.forwarders.clear(pod_uid);
    }

    /// A loopback address of its own for a pod of the `process` runtime
    /// (host network), from 127.77.0.0/16; the same one again if the pod
    /// already has one.
    pub fn allocate_loopback(&self, pod_uid: &str) -> Result<Ipv4Addr> {
        // Linux routes all of 127.0.0.0/8 to `lo`: the address needs no
        // configuration to be bound.
        Ok(self.loopbacks.allocate(pod_uid)?.0)
    }

    /// Frees the pod's loopback address. Idempotent.
    pub fn release_loopback(&self, pod_uid: &str) -> Result<()> {
        self.loopbacks.release(pod_uid)
    }

    /// Removes every namespace with this network's prefix, every veth on
    /// the bridge or named for a recorded pod, the bridge, its routes and
    /// the recorded addresses (`nuage node reset`, test cleanup).
    #[instrument(skip(self), fields(bridge = %self.config.bridge))]
    pub async fn reset(&self) -> Result<()> {
        self.forwarders.clear_all();
        if !self.host_only {
            pod::remove_all(self).await?;
            bridge::remove(&self.config.bridge, self.cidr).await?;
        }
        self.pods.clear()?;
        self.loopbacks.clear()?;
        // The state dir itself goes only when nothing else lives in it.
        let _ = std::fs::remove_dir(&self.config.state_dir);
        Ok(())
    }

    fn pod_lock(&self, pod_uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .pod_locks
            .lock()
            .expect("pod lock table is never poisoned: no panics under it");
        locks.entry(pod_uid.to_string()).or_default().clone()
    }

    fn release_pod_lock(&self, pod_uid: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self
            .pod_locks
            .lock()
            .expect("pod lock table is never poisoned: no panics under it");
        // Two references left (the table's and ours): nobody else waits.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(pod_uid);
        }
    }
}
