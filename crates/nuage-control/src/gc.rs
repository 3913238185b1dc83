//! The garbage collector's sweep: pods and ReplicaSets whose owners are
//! gone are deleted (background propagation), and references to owners
//! that are gone are removed when another owner remains.
//!
//! The API server cascades deletions itself (`propagationPolicy`); this
//! catches what such a one-shot cascade cannot: a dependent created by a
//! controller at the moment its owner was deleted, or one written with an
//! owner reference to an object that never existed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use nuage_client::informer::{key_of, Event};
use nuage_client::Client;
use tokio::sync::watch;

use crate::queue::WorkQueue;
use crate::{Informers, Settings};

/// How long a dependent may point at an owner this process has not seen
/// before the API is asked (the owner may be newer than our caches).
const GRACE: Duration = Duration::from_secs(2);

/// What the sweep looks at.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Dependent {
    Pod(String),
    ReplicaSet(String),
}

/// Registers the handlers and starts the worker.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let queue: WorkQueue<Dependent> = WorkQueue::new();
    let q = queue.clone();
    informers.pods.on_event(move |e| {
        if let Event::Applied(p) = e {
            if has_owners(&p.metadata) {
                q.add_after(Dependent::Pod(key_of(&p.metadata)), GRACE);
            }
        }
    });
    let q = queue.clone();
    informers.replica_sets.on_event(move |e| {
        if let Event::Applied(rs) = e {
            if has_owners(&rs.metadata) {
                q.add_after(Dependent::ReplicaSet(key_of(&rs.metadata)), GRACE);
            }
        }
    });
    // An owner deleted: look at what pointed at it.
    for_deleted_owner(informers, &queue);
    let informers = Arc::clone(informers);
    tokio::spawn(async move {
        tokio::select! {
            _ = informers.pods.wait_synced() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            let key = tokio::select! {
                k = queue.get() => k,
                _ = stop.wait_for(|s| *s) => { queue.shut_down(); return }
            };
            let Some(key) = key else { return };
            match sweep(&informers, &key).await {
                Ok(()) => queue.forget(&key),
                Err(e) => {
                    tracing::debug!(?key, error = %e, "garbage collection retry");
                    queue.add_rate_limited(key.clone());
                }
            }
            queue.done(&key);
        }
    })
}

fn has_owners(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|r| !r.is_empty())
        && meta.deletion_timestamp.is_none()
}

fn for_deleted_owner(informers: &Arc<Informers>, queue: &WorkQueue<Dependent>) {
    let enqueue = |informers: Arc<Informers>, queue: WorkQueue<Dependent>| {
        move |uid: &str| {
            for p in informers.pods.filter(|p| refers_to(&p.metadata, uid)) {
                queue.add(Dependent::Pod(key_of(&p.metadata)));
            }
            for rs in informers
                .replica_sets
                .filter(|r| refers_to(&r.metadata, uid))
            {
                queue.add(Dependent::ReplicaSet(key_of(&rs.metadata)));
            }
        }
    };
    let f = enqueue(Arc::clone(informers), queue.clone());
    informers.replication_controllers.on_event(move |e| {
        if let Event::Deleted(o) = e {
            f(o.metadata.uid.as_deref().unwrap_or_default());
        }
    });
    let f = enqueue(Arc::clone(informers), queue.clone());
    informers.replica_sets.on_event(move |e| {
        if let Event::Deleted(o) = e {
            f(o.metadata.uid.as_deref().unwrap_or_default());
        }
    });
    let f = enqueue(Arc::clone(informers), queue.clone());
    informers.deployments.on_event(move |e| {
        if let Event::Deleted(o) = e {
            f(o.metadata.uid.as_deref().unwrap_or_default());
        }
    });
}

fn refers_to(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

/// Deletes `key` if none of its owners exists any more; drops references
/// to owners that are gone if some remain.
async fn sweep(informers: &Informers, key: &Dependent) -> Result<(), nuage_client::Error> {
    let client = &informers.client;
    let (meta, ns) = match key {
        Dependent::Pod(k) => match informers.pods.get(k) {
            Some(p) => (
                p.metadata.clone(),
                p.metadata.namespace.clone().unwrap_or_default(),
            ),
            None => return Ok(()),
        },
        Dependent::ReplicaSet(k) => match informers.replica_sets.get(k) {
            Some(r) => (
                r.metadata.clone(),
                r.metadata.namespace.clone().unwrap_or_default(),
            ),
            None => return Ok(()),
        },
    };
    if meta.deletion_timestamp.is_some() {
        return Ok(());
    }
    let refs = meta.owner_references.clone().unwrap_or_default();
    let mut alive = Vec::new();
    let mut unknown_kind = false;
    for r in &refs {
        match owner_exists(informers, client, &ns, r).await? {
            Some(true) => alive.push(r.clone()),
            Some(false) => {}
            None => unknown_kind = true,
        }
    }
    // Owners of kinds this sweep does not watch are assumed alive.
    if unknown_kind || alive.len() == refs.len() {
        return Ok(());
    }
    let name = meta.name.clone().unwrap_or_default();
    let uid = meta.uid.clone();
    if alive.is_empty() {
        tracing::info!(dependent = ?key, "deleting a dependent whose owners are gone");
        return match key {
            Dependent::Pod(_) => {
                client
                    .delete::<Pod>(Some(&ns), &name, None, uid.as_deref())
                    .await
            }
            Dependent::ReplicaSet(_) => {
                client
                    .delete::<ReplicaSet>(Some(&ns), &name, None, uid.as_deref())
                    .await
            }
        };
    }
    let patch = serde_json::json!({
        "metadata": { "ownerReferences": alive, "resourceVersion": meta.resource_version }
    });
    let result = match key {
        Dependent::Pod(_) => client
            .merge_patch::<Pod>(Some(&ns), &name, "", &patch)
            .await
            .map(drop),
        Dependent::ReplicaSet(_) => client
            .merge_patch::<ReplicaSet>(Some(&ns), &name, "", &patch)
            .await
            .map(drop),
    };
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Whether the owner exists with that uid: `None` for kinds not watched.
/// The cache answers "yes"; a "no" is confirmed by the API (the owner may
/// be newer than the cache).
async fn owner_exists(
    informers: &Informers,
    client: &Client,
    ns: &str,
    r: &OwnerReference,
) -> Result<Option<bool>, nuage_client::Error> {
    let key = format!("{ns}/{}", r.name);
    let same = |m: &ObjectMeta| m.uid.as_deref() == Some(r.uid.as_str());
    let cached = match (r.api_version.as_str(), r.kind.as_str()) {
        ("v1", "ReplicationController") => informers
            .replication_controllers
            .get(&key)
            .is_some_and(|o| same(&o.metadata)),
        ("apps/v1", "ReplicaSet") => informers
            .replica_sets
            .get(&key)
            .is_some_and(|o| same(&o.metadata)),
        ("apps/v1", "Deployment") => informers
            .deployments
            .get(&key)
            .is_some_and(|o| same(&o.metadata)),
        _ => return Ok(None),
    };
    if cached {
        return Ok(Some(true));
    }
    let live = match r.kind.as_str() {
        "ReplicationController" => client
            .get::<ReplicationController>(Some(ns), &r.name)
            .await?
            .map(|o| o.metadata),
        "ReplicaSet" => client
            .get::<ReplicaSet>(Some(ns), &r.name)
            .await?
            .map(|o| o.metadata),
        _ => client
            .get::<Deployment>(Some(ns), &r.name)
            .await?
            .map(|o| o.metadata),
    };
    Ok(Some(live.as_ref().is_some_and(same)))
}
