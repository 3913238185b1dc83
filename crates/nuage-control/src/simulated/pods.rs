//! Pods bound to simulated nodes: made Running (with an address from the
//! node's range) and, once deleted gracefully, finalized with a delete of
//! grace 0 — the two things a kubelet must do for a pod to come and go.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use nuage_client::informer::{key_of, Event, Informer};
use tokio::sync::watch;
use tracing::Instrument;

use super::addresses::{fallback_cidr, Addresses};
use super::status::{host_network, is_running, running_patch};
use crate::queue::WorkQueue;
use crate::Informers;

/// Pods handled at once: status writes are small, and the API commits
/// concurrent writes together, so parallel requests are what makes
/// thousands of pods per second possible.
const WORKERS: usize = 16;
/// When to look again at a pod whose node's range has no free address.
const FULL_RANGE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// The workers that run pods on simulated nodes.
pub struct PodWorkers {
    informers: Arc<Informers>,
    queue: WorkQueue<String>,
    addresses: Mutex<Addresses>,
}

impl PodWorkers {
    /// Registers the pod handler (queues pods of alive simulated nodes that
    /// need work, and deleted pods that held an address).
    pub fn register(informers: &Arc<Informers>) -> Arc<Self> {
        let queue = WorkQueue::new();
        let q = queue.clone();
        let nodes = Arc::clone(&informers.nodes);
        informers.pods.on_event(move |event| match event {
            Event::Applied(pod) => {
                if needs_work(&nodes, pod) {
                    q.add(key_of(&pod.metadata));
                }
            }
            Event::Deleted(pod) => {
                let had_address = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_ref())
                    .is_some();
                if had_address && node_of(&nodes, pod).is_some() {
                    q.add(key_of(&pod.metadata));
                }
            }
        });
        Arc::new(Self {
            informers: Arc::clone(informers),
            queue,
            addresses: Mutex::new(Addresses::default()),
        })
    }

    /// The queue of pod keys (the readiness worker adds the pods of a node
    /// that comes back).
    pub fn queue(&self) -> WorkQueue<String> {
        self.queue.clone()
    }

    /// Runs the workers until `stop` (the caches are synced).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.record_existing_addresses();
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let this = Arc::clone(&self);
                let stop = stop.clone();
                tokio::spawn(
                    this.worker(stop)
                        .instrument(tracing::info_span!("simulated-pods", worker = i)),
                )
            })
            .collect();
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
        self.queue.shut_down();
        for w in workers {
            let _ = w.await;
        }
    }

    /// Addresses that pods already hold (from before a restart) are not
    /// handed out again.
    fn record_existing_addresses(&self) {
        let nodes = &self.informers.nodes;
        let pods = self.informers.pods.filter(|p| {
            p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some() && !host_network(p)
        });
        let mut addresses = self.lock();
        for pod in pods {
            let Some(node) = node_of(nodes, &pod) else {
                continue;
            };
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let Some(ip) = ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                addresses.record(
                    &key_of(&pod.metadata),
                    pod.metadata.uid.as_deref().unwrap_or_default(),
                    node.metadata.name.as_deref().unwrap_or_default(),
                    ip,
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Addresses> {
        self.addresses.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn worker(self: Arc<Self>, stop: watch::Receiver<bool>) {
        while let Some(key) = self.queue.get().await {
            if *stop.borrow() {
                self.queue.done(&key);
                break;
            }
            match self.reconcile(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(e) => {
                    tracing::debug!(pod = %key, error = %e, "simulated pod: retrying");
                    self.queue.add_rate_limited(key.clone());
                }
            }
            self.queue.done(&key);
        }
    }

    async fn reconcile(&self, key: &str) -> Result<(), nuage_client::Error> {
        let Some(pod) = self.informers.pods.get(key) else {
            self.lock().release(key);
            return Ok(());
        };
        let Some(node) = node_of(&self.informers.nodes, &pod) else {
            return Ok(());
        };
        if !super::is_alive(&node) {
            return Ok(());
        }
        let ns = pod.metadata.namespace.as_deref();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            // The containers are "stopped" at once: confirm the deletion
            // as the kubelet does once they are, with grace 0 and the uid
            // (never a newer pod of the same name).
            self.informers
                .client
                .delete::<Pod>(ns, name, Some(0), Some(uid))
                .await?;
            self.lock().release(key);
            return Ok(());
        }
        if finished(&pod) || is_running(&pod) {
            return Ok(());
        }
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let host_ip = host_ip(&node);
        let pod_ip = if host_network(&pod) {
            host_ip.clone()
        } else {
            let cidr = node
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .unwrap_or_else(|| fallback_cidr(node_name));
            match self.lock().assign(key, uid, node_name, &cidr) {
                Some(ip) => ip.to_string(),
                None => {
                    // More pods than the range holds (the node's pod
                    // capacity is above its range): look again later,
                    // when pods may have gone.
                    tracing::warn!(pod = %key, node = node_name, cidr, "no free simulated pod address");
                    self.queue.add_after(key.to_string(), FULL_RANGE_RETRY);
                    return Ok(());
                }
            }
        };
        let now = now_rfc3339();
        let patch = running_patch(&pod, &pod_ip, &host_ip, &now);
        match self
            .informers
            .client
            .merge_patch::<Pod>(ns, name, "/status", &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                self.lock().release(key);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The simulated node `pod` is bound to, if it is bound to one.
fn node_of(nodes: &Informer<Node>, pod: &Pod) -> Option<Arc<Node>> {
    let name = pod.spec.as_ref()?.node_name.as_deref()?;
    nodes.get(name).filter(|n| super::is_simulated(n))
}

/// Succeeded or Failed: a simulated node leaves those alone.
fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the pod is on an alive simulated node and is not yet what that
/// node would make it (Running, or gone once deleted).
fn needs_work(nodes: &Informer<Node>, pod: &Pod) -> bool {
    let Some(node) = node_of(nodes, pod) else {
        return false;
    };
    super::is_alive(&node)
        && (pod.metadata.deletion_timestamp.is_some() || !(finished(pod) || is_running(pod)))
}

/// Queues the pods on `node` that need work (a node that appeared or came
/// back to life).
pub fn queue_pods_of(informers: &Informers, queue: &WorkQueue<String>, node: &str) {
    let nodes = &informers.nodes;
    let pods = informers.pods.filter(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node) && needs_work(nodes, p)
    });
    for pod in pods {
        queue.add(key_of(&pod.metadata));
    }
}

/// The node's InternalIP (what pods report as `hostIP`).
fn host_ip(node: &Node) -> String {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Now, to the second, as Kubernetes writes times.
pub fn now_rfc3339() -> String {
    let now = super::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}
