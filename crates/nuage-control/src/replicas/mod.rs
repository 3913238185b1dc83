//! The ReplicationController and ReplicaSet controllers: one logic for
//! both kinds (`owner`), keeping `spec.replicas` active pods that match the
//! selector. Each reconcile claims pods (`claim`: adopt orphans, release
//! pods that stopped matching), creates or deletes pods unless earlier
//! writes are still unseen (`expectations`, `manage`), and writes the
//! status (`status`).
//!
//! Informer handlers only enqueue owner keys and note which pods appeared
//! or went (for the expectations); reconciles run on [`WORKERS`] workers.

mod claim;
mod expectations;
mod manage;
pub mod owner;
pub mod pods;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use nuage_client::informer::{key_of, Event};
use nuage_client::Client;
use tokio::sync::watch;
use tracing::Instrument;

use crate::events::Recorder;
use crate::queue::WorkQueue;
use crate::{Informers, Settings};
use expectations::Expectations;
use owner::{Kind, Owner};

/// Reconciles running at once (Kubernetes' `--concurrent-replicaset-syncs`).
const WORKERS: usize = 5;
/// How often owners with expired expectations are looked at again.
const SWEEP: Duration = Duration::from_secs(30);

/// An owner in the queue: its kind and `namespace/name`.
pub type OwnerKey = (Kind, String);

/// State shared by the handlers and the workers.
pub struct Controller {
    informers: Arc<Informers>,
    client: Client,
    queue: WorkQueue<OwnerKey>,
    expectations: Expectations<OwnerKey>,
    rc_events: Recorder,
    rs_events: Recorder,
    /// UIDs of the pods seen so far: tells a new pod from a changed one
    /// (the informer reports both as `Applied`).
    seen: Mutex<HashSet<String>>,
    /// When each owner is already due for a look at availability: one
    /// timer per owner, not one per reconcile.
    wakeups: Mutex<HashMap<OwnerKey, Instant>>,
}

/// Starts both controllers: registers the handlers, then spawns the workers,
/// which begin once the informers have synced and end at `stop`.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let client = informers.client.clone();
    let ctl = Arc::new(Controller {
        informers: Arc::clone(informers),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        rc_events: Recorder::new(client.clone(), Kind::ReplicationController.component()),
        rs_events: Recorder::new(client.clone(), Kind::ReplicaSet.component()),
        seen: Mutex::default(),
        wakeups: Mutex::default(),
        client,
    });
    register(&ctl);
    tokio::spawn(run(ctl, stop).instrument(tracing::info_span!("replicas")))
}

fn register(ctl: &Arc<Controller>) {
    let c = Arc::clone(ctl);
    ctl.informers.pods.on_event(move |e| c.on_pod(e));
    let c = Arc::clone(ctl);
    ctl.informers
        .replication_controllers
        .on_event(move |e| c.on_owner(Kind::ReplicationController, e));
    let c = Arc::clone(ctl);
    ctl.informers
        .replica_sets
        .on_event(move |e| c.on_owner(Kind::ReplicaSet, e));
}

async fn run(ctl: Arc<Controller>, mut stop: watch::Receiver<bool>) {
    let synced = async {
        ctl.informers.pods.wait_synced().await;
        ctl.informers.replication_controllers.wait_synced().await;
        ctl.informers.replica_sets.wait_synced().await;
    };
    tokio::select! {
        _ = synced => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(Arc::clone(&ctl)).in_current_span()))
        .collect();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                for key in ctl.expectations.expired() {
                    ctl.queue.add(key);
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    ctl.queue.shut_down();
    for w in workers.drain(..) {
        let _ = w.await;
    }
}

async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        let span = tracing::info_span!("reconcile", kind = key.0.name(), owner = %key.1);
        match ctl.reconcile(&key).instrument(span).await {
            Ok(()) => ctl.queue.forget(&key),
            Err(e) => {
                tracing::debug!(kind = key.0.name(), owner = %key.1, error = %e, "reconcile failed; retrying");
                ctl.queue.add_rate_limited(key.clone());
            }
        }
        ctl.queue.done(&key);
    }
}

impl Controller {
    fn recorder(&self, kind: Kind) -> &Recorder {
        match kind {
            Kind::ReplicationController => &self.rc_events,
            Kind::ReplicaSet => &self.rs_events,
        }
    }

    /// The owner with `key`, from the cache.
    fn owner(&self, key: &OwnerKey) -> Option<Result<Owner, String>> {
        let r = match key.0 {
            Kind::ReplicationController => {
                Owner::from_rc(&*self.informers.replication_controllers.get(&key.1)?)
            }
            Kind::ReplicaSet => Owner::from_rs(&*self.informers.replica_sets.get(&key.1)?),
        };
        Some(r.map_err(|e| e.to_string()))
    }

    fn on_owner<K>(&self, kind: Kind, event: &Event<K>)
    where
        K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        match event {
            Event::Applied(o) => self.queue.add((kind, key_of(o.metadata()))),
            Event::Deleted(o) => {
                let key = (kind, key_of(o.metadata()));
                self.expectations.forget(&key);
                self.queue.add(key);
            }
        }
    }

    fn on_pod(&self, event: &Event<Pod>) {
        let (pod, deleted) = match event {
            Event::Applied(p) => (p, false),
            Event::Deleted(p) => (p, true),
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let new = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if deleted {
                seen.remove(&uid);
                false
            } else {
                seen.insert(uid)
            }
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = pods::controller_of(pod) {
            let Some(kind) = Kind::of_reference(r) else {
                return;
            };
            let key = (kind, format!("{ns}/{}", r.name));
            if deleted || pod.metadata.deletion_timestamp.is_some() {
                // A pod being deleted already counts as gone.
                self.expectations
                    .deletion_observed(&key, &key_of(&pod.metadata));
            } else if new {
                self.expectations.creation_observed(&key);
            }
            self.queue.add(key);
        } else if !deleted && pod.metadata.deletion_timestamp.is_none() {
            // An orphan: whoever selects it may adopt it.
            for key in self.selecting(pod) {
                self.queue.add(key);
            }
        }
    }

    /// The owners in the pod's namespace whose selector matches it.
    fn selecting(&self, pod: &Pod) -> Vec<OwnerKey> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut keys = Vec::new();
        for rc in self
            .informers
            .replication_controllers
            .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
        {
            if owner::rc_selector(&rc).is_ok_and(|s| s.matches(labels)) {
                keys.push((Kind::ReplicationController, key_of(&rc.metadata)));
            }
        }
        for rs in self
            .informers
            .replica_sets
            .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
        {
            if owner::rs_selector(&rs).is_ok_and(|s| s.matches(labels)) {
                keys.push((Kind::ReplicaSet, key_of(&rs.metadata)));
            }
        }
        keys
    }

    /// Reconciles `key` again after `wait`, unless a timer already does so
    /// sooner.
    fn wake_after(&self, key: &OwnerKey, wait: Duration) {
        let at = Instant::now() + wait;
        let mut wakeups = self.wakeups.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        wakeups.retain(|_, t| *t > now);
        if wakeups.get(key).is_some_and(|t| *t <= at) {
            return;
        }
        wakeups.insert(key.clone(), at);
        drop(wakeups);
        self.queue.add_after(key.clone(), wait);
    }

    /// Brings one owner's pods and status to what it declares.
    async fn reconcile(&self, key: &OwnerKey) -> Result<(), String> {
        let owner = match self.owner(key) {
            None => {
                // Deleted: the API's cascade removes its pods.
                self.expectations.forget(key);
                return Ok(());
            }
            Some(Err(e)) => {
                // Retrying cannot fix a bad selector; a new spec will come
                // as an event.
                tracing::warn!(error = %e, "invalid selector; ignoring");
                return Ok(());
            }
            Some(Ok(o)) => o,
        };
        let may_manage = self.expectations.satisfied(key);
        let candidates = self.informers.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(owner.namespace.as_str()) && pods::is_active(p)
        });
        let owned = claim::claim(&self.client, &owner, candidates)
            .await
            .map_err(|e| format!("claiming pods: {e}"))?;
        let failure = if may_manage && !owner.deleting {
            manage::manage(self, key, &owner, &owned).await.err()
        } else {
            None
        };
        let now = crate::events::now();
        let status = status::calculate(&owner, &owned, failure.as_ref(), now);
        if let Err(e) = status::write(&self.client, &owner, &status).await {
            if !e.is_not_found() {
                return Err(format!("writing status: {e}"));
            }
        }
        if let Some(f) = failure {
            return Err(f.message);
        }
        // Pods Ready but not yet for minReadySeconds: look again when the
        // first of them becomes available (no event will say so).
        if owner.min_ready_seconds > 0 {
            let next = owned
                .iter()
                .filter_map(|p| pods::available_at(p, owner.min_ready_seconds, now))
                .filter(|t| *t > now)
                .min();
            if let Some(t) = next {
                let wait = now.duration_until(t).unsigned_abs() + Duration::from_millis(100);
                self.wake_after(key, wait);
            }
        }
        Ok(())
    }
}
