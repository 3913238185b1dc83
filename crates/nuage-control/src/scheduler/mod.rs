//! The scheduler: binds each pod without a node (and with the default
//! scheduler's name) to the node that fits it best.
//!
//! The informers' events keep an in-memory [`cache::Cache`] of nodes and
//! the pods on them, and queue the keys of pods to place; one task takes
//! them one at a time and decides against the cache ([`algorithm`]),
//! counts the pod on its node at once ("assume"), and leaves the binding
//! (`pods/binding`) to tasks of its own, several in flight. A pod that fits
//! nowhere gets `PodScheduled=False` with kube-scheduler's message and a
//! `FailedScheduling` Event, and waits in [`unschedulable`] until the
//! cluster changes.

pub mod algorithm;
pub mod cache;
mod cycle;
pub mod filters;
pub mod resources;
pub mod scores;
pub mod unschedulable;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use nuage_client::informer::{key_of, Event};
use tokio::sync::watch;
use tracing::Instrument;

use crate::events::Recorder;
use crate::queue::WorkQueue;
use crate::{Informers, Settings};
use cache::{node_name, Cache};
use unschedulable::Unschedulable;

/// The scheduler's name: pods naming it (or none) are ours.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Whether this scheduler should place `pod`: no node yet, our name, not
/// being deleted, no scheduling gates, not finished.
pub fn is_ours(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec
            .scheduler_name
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
        && spec.scheduling_gates.as_ref().is_none_or(|g| g.is_empty())
        && !cache::is_terminal(pod)
}

/// What the informer handlers and the scheduling task share, under one
/// lock so that a cluster change is either seen by a decision or unparks
/// the pod that decision parked, never lost between the two.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) cache: Cache,
    pub(crate) unschedulable: Unschedulable,
}

/// The scheduler's shared parts.
pub(crate) struct Scheduler {
    pub(crate) informers: Arc<Informers>,
    pub(crate) state: Mutex<State>,
    pub(crate) queue: WorkQueue<String>,
    pub(crate) events: Recorder,
}

impl Scheduler {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues pods that were waiting, each after its remaining back-off.
    fn requeue(&self, keys: Vec<(String, Duration)>) {
        for (key, delay) in keys {
            self.queue.add_after(key, delay);
        }
    }

    fn on_pod(&self, event: &Event<Pod>) {
        match event {
            Event::Applied(pod) => {
                let key = key_of(&pod.metadata);
                if node_name(pod).is_some() {
                    let mut s = self.state();
                    s.unschedulable.remove(&key);
                    if s.cache.apply_pod(pod) {
                        // It finished: its room may fit a waiting pod.
                        let keys = s.unschedulable.unpark_all(Instant::now());
                        drop(s);
                        self.requeue(keys);
                    }
                    return;
                }
                if !is_ours(pod) {
                    return;
                }
                let mut s = self.state();
                if s.unschedulable.parked_unchanged(&key, pod) {
                    return;
                }
                let delay = s.unschedulable.unpark(&key, Instant::now());
                drop(s);
                self.queue.add_after(key, delay);
            }
            Event::Deleted(pod) => {
                let key = key_of(&pod.metadata);
                let mut s = self.state();
                s.unschedulable.remove(&key);
                if s.cache.remove_pod(&key) {
                    let keys = s.unschedulable.unpark_all(Instant::now());
                    drop(s);
                    self.requeue(keys);
                }
            }
        }
    }

    fn on_node(&self, event: &Event<Node>) {
        let mut s = self.state();
        match event {
            Event::Applied(node) => {
                if s.cache.apply_node(node) {
                    let keys = s.unschedulable.unpark_all(Instant::now());
                    drop(s);
                    self.requeue(keys);
                }
            }
            Event::Deleted(node) => {
                s.cache
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }
}

/// Registers the scheduler's handlers and starts its task.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let scheduler = Arc::new(Scheduler {
        informers: Arc::clone(informers),
        state: Mutex::new(State::default()),
        queue: WorkQueue::new(),
        events: Recorder::new(informers.client.clone(), SCHEDULER_NAME),
    });
    let s = Arc::clone(&scheduler);
    informers.pods.on_event(move |e| s.on_pod(e));
    let s = Arc::clone(&scheduler);
    informers.nodes.on_event(move |e| s.on_node(e));
    tokio::spawn(cycle::run(scheduler, stop).instrument(tracing::info_span!("scheduler")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache::tests::pod;
    use serde_json::json;

    #[test]
    fn only_unbound_pods_for_the_default_scheduler_are_ours() {
        assert!(is_ours(&pod("p", json!({}))));
        assert!(is_ours(&pod(
            "p",
            json!({"schedulerName": "default-scheduler"})
        )));
        assert!(!is_ours(&pod("p", json!({"schedulerName": "other"}))));
        assert!(!is_ours(&pod("p", json!({"nodeName": "n1"}))));
        assert!(!is_ours(&pod(
            "p",
            json!({"schedulingGates": [{"name": "wait"}]})
        )));
    }
}
