//! Owner-reference cascades of a delete, done by the API server itself.
//!
//! Kubernetes leaves this to its garbage collector; until nuage has one, a
//! delete carries out its `propagationPolicy` here, so `kubectl delete`
//! never waits on a finalizer no one removes:
//! - `Orphan`: dependents lose their owner reference, then the owner goes;
//! - `Foreground`: dependents go first, then the owner;
//! - `Background` (the default): the owner goes, then its dependents.
//!
//! Dependents are looked for in the owner's namespace (owner references never
//! cross namespaces) among every namespaced resource.

use std::sync::Arc;

use nuage_model::meta;
use nuage_model::registry::{self, ResourceType};
use serde_json::Value;

use crate::status::ApiResult;
use crate::ApiState;

/// How deep a cascade follows owners of owners.
const MAX_DEPTH: usize = 8;

/// The objects whose `ownerReferences` name `uid`.
async fn dependents(
    state: &ApiState,
    ns: &str,
    uid: &str,
) -> ApiResult<Vec<(&'static ResourceType, Value)>> {
    let mut out = Vec::new();
    // Each storage once: autoscaling/v1 and v2 share one.
    for rt in registry::namespaced_storages() {
        let page = state.objects.list(rt, Some(ns), Default::default()).await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|o| owned_by(o, uid))
                .map(|o| (rt, o)),
        );
    }
    Ok(out)
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// Removes the owner reference to `uid` from every dependent.
pub(super) async fn orphan(state: &ApiState, ns: &str, uid: &str) -> ApiResult<()> {
    for (rt, dep) in dependents(state, ns, uid).await? {
        let mut d = dep.clone();
        if let Some(refs) = d
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r["uid"] != uid);
            if refs.is_empty() {
                meta::remove_meta(&mut d, "ownerReferences");
            }
        }
        let rv = meta::resource_version(&dep).unwrap_or(0);
        match state.objects.update(rt, d, rv).await {
            // Changed or gone meanwhile: its new state is its writer's business.
            Err(e) if e.code == 409 || e.code == 404 => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Deletes every dependent of `uid`, and theirs, depth first.
pub(super) fn delete_dependents<'a>(
    state: &'a ApiState,
    ns: &'a str,
    uid: &'a str,
    depth: usize,
) -> futures::future::BoxFuture<'a, ApiResult<()>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        for (rt, dep) in dependents(state, ns, uid).await? {
            let name = meta::name(&dep).unwrap_or_default().to_string();
            let dep_uid = meta::meta_str(&dep, "uid").unwrap_or_default().to_string();
            delete_dependents(state, ns, &dep_uid, depth + 1).await?;
            match state.objects.delete(rt, Some(ns), &name, None).await {
                Err(e) if e.code == 404 => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    })
}

/// Deletes the dependents of `uid` in the background (Background policy).
pub(super) fn spawn_background(state: &Arc<ApiState>, ns: String, uid: String) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Err(e) = delete_dependents(&state, &ns, &uid, 0).await {
            tracing::warn!(namespace = %ns, owner = %uid, error = %e.message, "deleting dependents");
        }
    });
}
