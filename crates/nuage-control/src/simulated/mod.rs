//! Simulated nodes (the role of Kubernetes' kwok): Node objects with no
//! agent behind them, which the control plane keeps alive itself so that
//! scheduling and controllers can be tested and measured at scale on one
//! machine (`nuage sim nodes --count 1000`).
//!
//! For every node labelled [`SIMULATED_LABEL`]`=true`, unless its
//! [`HEARTBEAT_ANNOTATION`] is `"false"`, this controller does what its
//! kubelet would:
//!
//! - renews its Lease in `kube-node-lease` every 10 s (`lease`: one task
//!   for all nodes, renewals sent a bounded number at a time);
//! - keeps its `Ready` condition `True` (`ready`);
//! - makes the pods bound to it Running, with an address from the node's
//!   `spec.podCIDR`, and finalizes their deletion (`pods`).
//!
//! With the annotation set to `"false"` the node behaves as one whose
//! agent died: no renewal, no status, no pod work (its pods stay as they
//! are, Terminating ones included) until the annotation goes. Nodes
//! without the label are never touched, and nothing here creates nodes.

mod addresses;
mod lease;
mod pods;
mod ready;
mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;

use crate::{Informers, Settings};

/// The label that marks a node as simulated (value `"true"`).
pub const SIMULATED_LABEL: &str = "nuage.io/simulated";
/// Set to `"false"` on a simulated node to stop its heartbeat, as if its
/// agent had died.
pub const HEARTBEAT_ANNOTATION: &str = "nuage.io/simulated-heartbeat";

/// Whether `node` is a simulated node.
pub fn is_simulated(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SIMULATED_LABEL))
        .is_some_and(|v| v == "true")
}

/// Whether `node` is simulated and its simulated agent is alive (not told
/// to stop heartbeating).
pub fn is_alive(node: &Node) -> bool {
    is_simulated(node)
        && node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(HEARTBEAT_ANNOTATION))
            .is_none_or(|v| v != "false")
}

/// Now, as the time type of k8s-openapi.
fn now() -> k8s_openapi::jiff::Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or_default()
}

/// Starts the simulated nodes' heartbeats, readiness and pods.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pods = pods::PodWorkers::register(informers);
    let ready = ready::ReadyWorker::register(informers, pods.queue());
    let lease = lease::Heartbeats::new(informers);
    let informers = Arc::clone(informers);
    tokio::spawn(async move {
        // Handlers are registered; work starts once the caches are full.
        let synced = async {
            informers.pods.wait_synced().await;
            informers.nodes.wait_synced().await;
        };
        let mut stopped = stop.clone();
        tokio::select! {
            _ = synced => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        tokio::join!(
            pods.run(stop.clone()),
            ready.run(stop.clone()),
            lease.run(stop)
        );
    })
}
