//! Keeps alive simulated nodes `Ready`, and hands the pods of a node that
//! appears (or comes back to life) to the pod workers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nuage_client::informer::Event;
use tokio::sync::watch;
use tracing::Instrument;

use super::pods::queue_pods_of;
use crate::queue::WorkQueue;
use crate::Informers;

/// Node keys are few and writes rare: a couple of workers suffice.
const WORKERS: usize = 2;

/// The readiness worker of simulated nodes.
pub struct ReadyWorker {
    informers: Arc<Informers>,
    queue: WorkQueue<String>,
    pod_queue: WorkQueue<String>,
    /// Alive simulated nodes already seen: the others' pods get queued
    /// when they show up.
    alive: Mutex<HashSet<String>>,
}

impl ReadyWorker {
    /// Registers the node handler (queues simulated nodes, and deleted
    /// ones to forget them).
    pub fn register(informers: &Arc<Informers>, pod_queue: WorkQueue<String>) -> Arc<Self> {
        let queue = WorkQueue::new();
        let q = queue.clone();
        informers.nodes.on_event(move |event| match event {
            Event::Applied(node) if super::is_simulated(node) => {
                q.add(node.metadata.name.clone().unwrap_or_default())
            }
            Event::Applied(_) => {}
            Event::Deleted(node) => q.add(node.metadata.name.clone().unwrap_or_default()),
        });
        Arc::new(Self {
            informers: Arc::clone(informers),
            queue,
            pod_queue,
            alive: Mutex::new(HashSet::new()),
        })
    }

    /// Runs the workers until `stop` (the caches are synced).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let this = Arc::clone(&self);
                tokio::spawn(
                    this.worker()
                        .instrument(tracing::info_span!("simulated-ready", worker = i)),
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

    async fn worker(self: Arc<Self>) {
        while let Some(name) = self.queue.get().await {
            match self.reconcile(&name).await {
                Ok(()) => self.queue.forget(&name),
                Err(e) => {
                    tracing::debug!(node = %name, error = %e, "simulated node status: retrying");
                    self.queue.add_rate_limited(name.clone());
                }
            }
            self.queue.done(&name);
        }
    }

    fn alive(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.alive.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn reconcile(&self, name: &str) -> Result<(), nuage_client::Error> {
        let node = self.informers.nodes.get(name);
        let Some(node) = node.filter(|n| super::is_alive(n)) else {
            // Gone, not simulated, or told to stop: when it is back, it
            // is new again.
            self.alive().remove(name);
            return Ok(());
        };
        if self.alive().insert(name.to_string()) {
            queue_pods_of(&self.informers, &self.pod_queue, name);
        }
        if is_ready(&node) {
            return Ok(());
        }
        let patch = serde_json::json!({ "status": { "conditions": ready_conditions(&node) } });
        match self
            .informers
            .client
            .merge_patch::<Node>(None, name, "/status", &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's conditions with `Ready` made `True` (a merge patch replaces
/// the whole list, so the others are carried over).
fn ready_conditions(node: &Node) -> Vec<NodeCondition> {
    let now = Time(super::now());
    let mut conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Ready")
        .collect();
    conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: Some("KubeletReady".into()),
        message: Some("simulated node is posting ready status".into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_replaces_only_the_ready_condition() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "sim-0" },
            "status": { "conditions": [
                { "type": "MemoryPressure", "status": "False" },
                { "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown" },
            ] },
        }))
        .unwrap();
        assert!(!is_ready(&node));
        let cs = ready_conditions(&node);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].type_, "MemoryPressure");
        assert_eq!(
            (cs[1].type_.as_str(), cs[1].status.as_str()),
            ("Ready", "True")
        );
    }
}
