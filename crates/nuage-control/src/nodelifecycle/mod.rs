//! The node lifecycle controller: notices nodes that stopped heartbeating
//! and moves their pods away.
//!
//! Nodes: a node whose Lease (`kube-node-lease/<node>`) and Ready
//! heartbeat have not moved for `node_monitor_grace` gets its Ready and
//! pressure conditions set to `Unknown`; its Ready status then decides its
//! taints (`unreachable` or `not-ready`, NoSchedule and NoExecute; none
//! when Ready). Its agent sets Ready back when it returns, which removes
//! them. Simulated nodes are judged the same way: they heartbeat through
//! Leases too.
//!
//! Pods (the taint eviction controller): a pod on a node with NoExecute
//! taints is deleted when its tolerations run out (see [`eviction`]), at
//! once with no grace when the node is unreachable (its agent cannot
//! confirm a graceful stop); its controller recreates it elsewhere. The
//! pods of an unreachable node are marked not Ready first, so Services
//! stop sending them traffic.

pub mod eviction;
pub mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use nuage_client::informer::{key_of, Event};
use nuage_client::Error;
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use crate::events::{self, EventType, Recorder};
use crate::queue::WorkQueue;
use crate::{Informers, Settings};
use eviction::Verdict;
use health::Heartbeats;

/// The longest pause between two looks at every node.
const MAX_MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// The shortest (tests use a grace of seconds).
const MIN_MONITOR_PERIOD: Duration = Duration::from_millis(100);

/// What the controller shares between its handlers and workers.
struct Controller {
    informers: Arc<Informers>,
    settings: Settings,
    nodes: WorkQueue<String>,
    pods: WorkQueue<String>,
    heartbeats: Mutex<Heartbeats>,
    /// Per node, what its pods' fate depends on (NoExecute taints and
    /// Ready status) as last seen: its pods are looked at when it changes.
    pod_inputs: Mutex<HashMap<String, String>>,
    /// When a NoExecute taint without `timeAdded` was first seen.
    taint_seen: Mutex<HashMap<String, Timestamp>>,
    node_events: Recorder,
    eviction_events: Recorder,
}

/// Registers the handlers and spawns the workers and the monitor.
pub fn start(
    informers: &Arc<Informers>,
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let c = Arc::new(Controller {
        informers: Arc::clone(informers),
        settings: settings.clone(),
        nodes: WorkQueue::new(),
        pods: WorkQueue::new(),
        heartbeats: Mutex::default(),
        pod_inputs: Mutex::default(),
        taint_seen: Mutex::default(),
        node_events: Recorder::new(informers.client.clone(), "node-controller"),
        eviction_events: Recorder::new(informers.client.clone(), "taint-eviction-controller"),
    });

    let ctl = Arc::clone(&c);
    informers.nodes.on_event(move |e| match e {
        Event::Applied(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            ctl.nodes.add(name.clone());
            let inputs = pod_inputs(node);
            let changed =
                lock(&ctl.pod_inputs).insert(name.clone(), inputs.clone()) != Some(inputs);
            if changed {
                ctl.queue_pods_of(&name);
            }
        }
        Event::Deleted(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            lock(&ctl.pod_inputs).remove(&name);
            lock(&ctl.heartbeats).forget(&name);
        }
    });
    let ctl = Arc::clone(&c);
    informers.leases.on_event(move |e| {
        if let Event::Applied(lease) = e {
            if lease.metadata.namespace.as_deref() == Some("kube-node-lease") {
                ctl.nodes
                    .add(lease.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    let ctl = Arc::clone(&c);
    informers.pods.on_event(move |e| {
        let Event::Applied(pod) = e else { return };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            return;
        };
        // Only pods on a troubled node have anything to wait for.
        let troubled = lock(&ctl.pod_inputs)
            .get(node)
            .is_some_and(|i| i != HEALTHY);
        if troubled {
            ctl.pods.add(key_of(&pod.metadata));
        }
    });

    tokio::spawn(
        async move {
            let mut stop = stop;
            let synced = async {
                c.informers.nodes.wait_synced().await;
                c.informers.leases.wait_synced().await;
                c.informers.pods.wait_synced().await;
            };
            tokio::select! {
                _ = synced => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let workers = vec![
                tokio::spawn(Arc::clone(&c).node_worker()),
                tokio::spawn(Arc::clone(&c).pod_worker()),
                tokio::spawn(Arc::clone(&c).pod_worker()),
            ];
            // Silence produces no event: look at every node periodically.
            let period =
                (c.settings.node_monitor_grace / 8).clamp(MIN_MONITOR_PERIOD, MAX_MONITOR_PERIOD);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        for n in c.informers.nodes.list() {
                            c.nodes.add(n.metadata.name.clone().unwrap_or_default());
                        }
                    }
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            c.nodes.shut_down();
            c.pods.shut_down();
            for w in workers {
                let _ = w.await;
            }
        }
        .instrument(tracing::info_span!("node-lifecycle-controller")),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`pod_inputs`] of a Ready node without NoExecute taints.
const HEALTHY: &str = "True";

/// What a node's pods' fate depends on, as a comparable string.
fn pod_inputs(node: &Node) -> String {
    let mut s = health::ready_status(node).to_string();
    for t in node.spec.iter().flat_map(|s| s.taints.iter().flatten()) {
        if t.effect == "NoExecute" {
            s.push_str(&format!(
                "|{}={}:{:?}",
                t.key,
                t.value.as_deref().unwrap_or_default(),
                t.time_added.as_ref().map(|t| t.0)
            ));
        }
    }
    s
}

/// Now, as object timestamps are typed (jiff here has no clock of its own).
fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    Timestamp::from_nanosecond(nanos).unwrap_or_default()
}

impl Controller {
    fn queue_pods_of(&self, node: &str) {
        for p in self
            .informers
            .pods
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        {
            self.pods.add(key_of(&p.metadata));
        }
    }

    async fn node_worker(self: Arc<Self>) {
        while let Some(name) = self.nodes.get().await {
            let span = tracing::debug_span!("sync-node", node = %name);
            match self.sync_node(&name).instrument(span).await {
                Ok(()) => self.nodes.forget(&name),
                Err(e) => {
                    tracing::debug!(node = %name, error = %e, "node sync failed; retrying");
                    self.nodes.add_rate_limited(name.clone());
                }
            }
            self.nodes.done(&name);
        }
    }

    async fn pod_worker(self: Arc<Self>) {
        while let Some(key) = self.pods.get().await {
            let span = tracing::debug_span!("sync-pod", pod = %key);
            match self.sync_pod(&key).instrument(span).await {
                Ok(()) => self.pods.forget(&key),
                Err(e) => {
                    tracing::debug!(pod = %key, error = %e, "pod eviction check failed; retrying");
                    self.pods.add_rate_limited(key.clone());
                }
            }
            self.pods.done(&key);
        }
    }

    /// Marks a silent node Unknown, then sets its taints from its Ready
    /// status.
    async fn sync_node(&self, name: &str) -> Result<(), Error> {
        let Some(node) = self.informers.nodes.get(name) else {
            return Ok(());
        };
        let lease = self
            .informers
            .leases
            .get(&format!("kube-node-lease/{name}"));
        let silent_for = lock(&self.heartbeats).observe(&node, lease.as_deref(), Instant::now());
        let client = &self.informers.client;
        let mut node: Node = (*node).clone();
        if silent_for > self.settings.node_monitor_grace {
            if let Some(conditions) = health::silent_conditions(&node, now()) {
                let was = health::ready_status(&node).to_string();
                let patch = json!({
                    "metadata": {"resourceVersion": node.metadata.resource_version},
                    "status": {"conditions": conditions},
                });
                node = client.merge_patch(None, name, "/status", &patch).await?;
                tracing::info!(node = %name, silent_for = ?silent_for, "node stopped heartbeating: Unknown");
                if was != "Unknown" {
                    self.node_events.record(
                        &events::reference(&node),
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
            }
        }
        // A node that never posted a Ready condition is left alone until
        // its grace runs out (then it has one, Unknown).
        let Some(ready) = health::ready_condition(&node).map(|c| c.status.clone()) else {
            return Ok(());
        };
        if let Some(taints) = health::wanted_taints(&node, &ready, now()) {
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            client.merge_patch::<Node>(None, name, "", &patch).await?;
            tracing::info!(node = %name, ready = %ready, "node taints updated");
        }
        Ok(())
    }

    /// Marks a pod of an unreachable node not Ready, and evicts it when its
    /// tolerations of the node's NoExecute taints run out.
    async fn sync_pod(&self, key: &str) -> Result<(), Error> {
        let Some(pod) = self.informers.pods.get(key) else {
            return Ok(());
        };
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return Ok(());
        };
        let Some(node) = self.informers.nodes.get(&node_name) else {
            return Ok(());
        };
        let unreachable = health::ready_condition(&node).is_some_and(|c| c.status == "Unknown");
        if unreachable && crate::endpoints::desired::pod_ready(&pod) {
            self.mark_not_ready(&pod).await?;
        }
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let added = |t: &k8s_openapi::api::core::v1::Taint| {
            *lock(&self.taint_seen)
                .entry(format!("{node_name}|{}|{}", t.key, t.effect))
                .or_insert_with(now)
        };
        let at = match eviction::verdict(&pod, &taints, self.settings.default_toleration, added) {
            Verdict::Stay => return Ok(()),
            Verdict::EvictAt(at) => at,
        };
        let wait = at.duration_since(now());
        if wait.is_positive() {
            // Look again when the toleration runs out (a change of the node
            // before that queues the pod anyway).
            let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(50);
            self.pods.add_after(key.to_string(), wait);
            return Ok(());
        }
        self.evict(&pod, unreachable).await
    }

    async fn mark_not_ready(&self, pod: &Pod) -> Result<(), Error> {
        let mut conditions = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let transition = Some(Time(now()));
        for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            *c = PodCondition {
                status: "False".into(),
                last_transition_time: transition.clone(),
                ..c.clone()
            };
        }
        let patch = json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        let ns = pod.metadata.namespace.as_deref();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.informers
            .client
            .merge_patch::<Pod>(ns, name, "/status", &patch)
            .await?;
        self.node_events.record(
            &events::reference(pod),
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready",
        );
        Ok(())
    }

    async fn evict(&self, pod: &Pod, unreachable: bool) -> Result<(), Error> {
        let ns = pod.metadata.namespace.as_deref();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.eviction_events.record(
            &events::reference(pod),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {}", key_of(&pod.metadata)),
        );
        // An unreachable node's agent cannot confirm a graceful stop.
        let grace = unreachable.then_some(0);
        tracing::info!(pod = %key_of(&pod.metadata), grace = ?grace, "evicting pod from tainted node");
        self.informers
            .client
            .delete::<Pod>(ns, name, grace, pod.metadata.uid.as_deref())
            .await
    }
}
