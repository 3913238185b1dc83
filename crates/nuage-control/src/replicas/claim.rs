//! Which pods an owner owns (client-go's `PodControllerRefManager`):
//! pods it controls and its selector matches are kept; pods it controls
//! that no longer match are released (their ownerReference removed);
//! matching pods that no controller owns are adopted (the ownerReference
//! added). Pods another controller owns are never touched.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use nuage_client::Client;
use serde_json::json;

use super::owner::{Kind, Owner};
use super::pods;

/// Claims from `candidates` (active pods of the owner's namespace) and
/// returns the pods `owner` owns afterwards. Stops at the first failed
/// write (the reconcile is retried).
pub async fn claim(
    client: &Client,
    owner: &Owner,
    candidates: Vec<Arc<Pod>>,
) -> Result<Vec<Arc<Pod>>, nuage_client::Error> {
    let mut owned = Vec::new();
    // Read once, from the API, whether the owner still exists as we know it
    // before adopting: the cache may not know it is being deleted yet.
    let mut can_adopt: Option<bool> = None;
    for pod in candidates {
        let matches = owner
            .selector
            .matches(pod.metadata.labels.as_ref().unwrap_or(&Default::default()));
        match pods::controller_of(&pod) {
            Some(r) if r.uid == owner.uid => {
                if matches {
                    owned.push(pod);
                } else if !owner.deleting {
                    release(client, owner, &pod).await?;
                }
            }
            Some(_) => {}
            None if matches && !owner.deleting => {
                let allowed = match can_adopt {
                    Some(a) => a,
                    None => {
                        let a = still_current(client, owner).await?;
                        can_adopt = Some(a);
                        a
                    }
                };
                if allowed && adopt(client, owner, &pod).await? {
                    owned.push(pod);
                }
            }
            None => {}
        }
    }
    Ok(owned)
}

/// Whether the owner exists with the same uid and is not being deleted.
async fn still_current(client: &Client, owner: &Owner) -> Result<bool, nuage_client::Error> {
    let ns = Some(owner.namespace.as_str());
    let meta = match owner.kind {
        Kind::ReplicationController => client
            .get::<ReplicationController>(ns, &owner.name)
            .await?
            .map(|o| o.metadata),
        Kind::ReplicaSet => client
            .get::<ReplicaSet>(ns, &owner.name)
            .await?
            .map(|o| o.metadata),
    };
    Ok(meta.is_some_and(|m| {
        m.uid.as_deref() == Some(owner.uid.as_str()) && m.deletion_timestamp.is_none()
    }))
}

/// Adds the owner's controller reference; `false` if the pod is gone.
async fn adopt(client: &Client, owner: &Owner, pod: &Pod) -> Result<bool, nuage_client::Error> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(owner.controller_ref());
    tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), owner = %owner.key(), kind = owner.kind.name(), "adopting pod");
    patch_refs(client, pod, serde_json::to_value(refs).unwrap_or_default()).await
}

/// Removes the owner's reference.
async fn release(client: &Client, owner: &Owner, pod: &Pod) -> Result<(), nuage_client::Error> {
    let refs: Vec<_> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != owner.uid)
        .cloned()
        .collect();
    tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), owner = %owner.key(), kind = owner.kind.name(), "releasing pod");
    let refs = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(refs).unwrap_or_default()
    };
    patch_refs(client, pod, refs).await.map(drop)
}

/// Sets the pod's ownerReferences, guarded by the resourceVersion the
/// decision was made on (a concurrent change makes it a conflict, retried
/// on a fresher cache). `false` if the pod is gone.
async fn patch_refs(
    client: &Client,
    pod: &Pod,
    refs: serde_json::Value,
) -> Result<bool, nuage_client::Error> {
    let patch = json!({
        "metadata": {
            "ownerReferences": refs,
            "resourceVersion": pod.metadata.resource_version,
        }
    });
    match client
        .merge_patch::<Pod>(
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            "",
            &patch,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
