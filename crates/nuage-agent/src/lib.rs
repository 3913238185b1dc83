//! The node agent (the kubelet's role): registers this host as a Node, keeps
//! its Lease and conditions current, runs the Pods bound to it through a
//! container runtime, and serves their logs and exec sessions to the API
//! server.
//!
//! It owns: the pod lifecycle on one node, the runtimes (`oci` over runc or
//! crun, `process`), the local image store, pod networking (bridge, network
//! namespaces, addresses), volumes and probes. It does not own scheduling or
//! controllers (those live in the control plane) and talks to the API only
//! through `nuage-client`, over HTTP, whether it runs inside `nuage server`
//! or on another host.

pub mod agent;
pub mod host;
pub mod images;
mod mounts;
pub mod network;
pub mod node;
pub mod pods;
pub mod probes;
pub mod reset;
pub mod runtime;
pub mod server;
pub mod volumes;

/// Now, as the timestamps of Kubernetes objects are typed.
pub(crate) fn now() -> k8s_openapi::jiff::Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or_default()
}
