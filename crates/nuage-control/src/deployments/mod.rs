//! The Deployment controller, as Kubernetes' (`pkg/controller/deployment`):
//! each Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`,
//! one per template it has had; the one matching the current template is
//! "new", the others "old". A rolling update grows the new one and shrinks
//! the old ones within maxSurge/maxUnavailable; Recreate empties the old
//! ones, waits for their pods to be gone, then fills the new one. Revision
//! annotations make `kubectl rollout history|undo` work; the Progressing
//! and Available conditions make `kubectl rollout status` work.
//!
//! Layout: `plan` (rollout arithmetic), `status` (status and conditions),
//! `revision` (hash, template equality, annotations) are pure; `replica_sets`
//! writes ReplicaSets (claim, create, scale, clean up); `sync` is one
//! reconcile. The ReplicaSet controller makes the pods.

mod plan;
mod replica_sets;
mod revision;
mod status;
mod sync;

use std::sync::{Arc, Weak};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use nuage_client::informer::{key_of, Event};
use nuage_client::Client;
use nuage_model::selector::LabelSelector;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::events::Recorder;
use crate::queue::WorkQueue;
use crate::{Informers, Settings};

/// Deployments reconciled at once (Kubernetes' default is 5).
const WORKERS: usize = 4;

/// Why a reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed (a conflict means a stale cache: retry).
    #[error(transparent)]
    Api(#[from] nuage_client::Error),
    /// The Deployment cannot be acted on as written.
    #[error("invalid deployment: {0}")]
    Invalid(String),
    /// The new ReplicaSet's name is taken by another template; the
    /// collision count was raised so the next try picks another name.
    #[error("replica set {0} exists with another template")]
    HashCollision(String),
}

/// The controller's shared state.
pub(crate) struct Controller {
    informers: Arc<Informers>,
    client: Client,
    events: Recorder,
    queue: WorkQueue<String>,
}

/// Registers the Deployment controller's handlers and spawns its workers.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let ctl = Arc::new(Controller {
        informers: Arc::clone(informers),
        client: informers.client.clone(),
        events: Recorder::new(informers.client.clone(), "deployment-controller"),
        queue: WorkQueue::new(),
    });
    register_handlers(&ctl);
    let span = tracing::info_span!("deployment-controller");
    tokio::spawn(
        async move {
            let synced = async {
                ctl.informers.deployments.wait_synced().await;
                ctl.informers.replica_sets.wait_synced().await;
                ctl.informers.pods.wait_synced().await;
            };
            tokio::select! {
                _ = synced => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| tokio::spawn(worker(Arc::clone(&ctl)).in_current_span()))
                .collect();
            let _ = stop.wait_for(|s| *s).await;
            ctl.queue.shut_down();
            for w in workers {
                let _ = w.await;
            }
        }
        .instrument(span),
    )
}

/// Handlers only enqueue the key of the Deployment concerned. They hold the
/// controller weakly: the informers outlive it.
fn register_handlers(ctl: &Arc<Controller>) {
    let weak = Arc::downgrade(ctl);
    ctl.informers
        .deployments
        .on_event(move |e: &Event<Deployment>| {
            if let Some(ctl) = weak.upgrade() {
                let (Event::Applied(d) | Event::Deleted(d)) = e;
                ctl.queue.add(key_of(&d.metadata));
            }
        });
    let weak = Arc::downgrade(ctl);
    ctl.informers
        .replica_sets
        .on_event(move |e: &Event<ReplicaSet>| {
            let (Event::Applied(rs) | Event::Deleted(rs)) = e;
            on_replica_set(&weak, rs);
        });
    let weak = Arc::downgrade(ctl);
    ctl.informers.pods.on_event(move |e: &Event<Pod>| {
        if let Event::Deleted(pod) = e {
            on_pod_deleted(&weak, pod);
        }
    });
}

/// The controller reference (`controller: true`) of an object.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Its owner Deployment, or, for an orphan, every Deployment of its
/// namespace that selects it (one may adopt it).
fn on_replica_set(weak: &Weak<Controller>, rs: &ReplicaSet) {
    let Some(ctl) = weak.upgrade() else {
        return;
    };
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    match controller_of(&rs.metadata) {
        Some(owner) if owner.kind == "Deployment" => {
            ctl.queue.add(format!("{ns}/{}", owner.name));
        }
        Some(_) => {}
        None => {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let selecting = ctl.informers.deployments.filter(|d| {
                d.metadata.namespace.as_deref() == Some(ns.as_str())
                    && selector_of(d).is_ok_and(|s| !s.is_everything() && s.matches(&labels))
            });
            for d in selecting {
                ctl.queue.add(key_of(&d.metadata));
            }
        }
    }
}

/// A Recreate rollout waits for the old pods to be gone: tell it when one
/// goes.
fn on_pod_deleted(weak: &Weak<Controller>, pod: &Pod) {
    let Some(ctl) = weak.upgrade() else {
        return;
    };
    let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet") else {
        return;
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(rs) = ctl
        .informers
        .replica_sets
        .get(&format!("{ns}/{}", owner.name))
    else {
        return;
    };
    let Some(d_ref) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") else {
        return;
    };
    let key = format!("{ns}/{}", d_ref.name);
    let recreate = ctl.informers.deployments.get(&key).is_some_and(|d| {
        d.spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate")
    });
    if recreate {
        ctl.queue.add(key);
    }
}

/// The Deployment's label selector.
pub(crate) fn selector_of(d: &Deployment) -> Result<LabelSelector, SyncError> {
    let value = d
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.selector).unwrap_or_default())
        .unwrap_or_default();
    LabelSelector::from_label_selector(&value).map_err(|e| SyncError::Invalid(e.to_string()))
}

/// Takes keys until the queue shuts down; failures come back with
/// back-off, stuck rollouts come back at their deadline.
async fn worker(ctl: Arc<Controller>) {
    while let Some(key) = ctl.queue.get().await {
        let span = tracing::debug_span!("sync", deployment = %key);
        match ctl.sync(&key).instrument(span).await {
            Ok(recheck) => {
                ctl.queue.forget(&key);
                if let Some(after) = recheck {
                    ctl.queue.add_after(key.clone(), after);
                }
            }
            Err(e) => {
                let conflict = matches!(&e, SyncError::Api(a) if a.is_conflict());
                if conflict {
                    tracing::debug!(deployment = %key, error = %e, "sync conflict; retrying");
                } else {
                    tracing::warn!(deployment = %key, error = %e, "sync failed; retrying");
                }
                ctl.queue.add_rate_limited(key.clone());
            }
        }
        ctl.queue.done(&key);
    }
}
