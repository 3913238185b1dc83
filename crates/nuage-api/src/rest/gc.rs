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

use std::collections::{HashMap, HashSet};
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

/// Every object of the namespace that has owners, by owner uid: one list
/// per storage for a whole cascade (looking dependents up per dependent
/// would list the namespace once per object: quadratic).
async fn by_owner(
    state: &ApiState,
    ns: &str,
) -> ApiResult<HashMap<String, Vec<(&'static ResourceType, Value)>>> {
    let mut index: HashMap<String, Vec<(&'static ResourceType, Value)>> = HashMap::new();
    for rt in registry::namespaced_storages() {
        let page = state.objects.list(rt, Some(ns), Default::default()).await?;
        for obj in page.items {
            let owners: Vec<String> = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r["uid"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            for owner in owners {
                index.entry(owner).or_default().push((rt, obj.clone()));
            }
        }
    }
    Ok(index)
}

/// Deletes every dependent of `uid`, and theirs. Each dependent goes
/// before its own dependents, so its controller stops making new ones
/// while they are deleted (a ReplicaSet before its pods).
pub(super) async fn delete_dependents(state: &ApiState, ns: &str, uid: &str) -> ApiResult<()> {
    let index = by_owner(state, ns).await?;
    let mut seen: HashSet<String> = HashSet::from([uid.to_string()]);
    let mut level: Vec<String> = vec![uid.to_string()];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for owner in &level {
            for (rt, dep) in index.get(owner).into_iter().flatten() {
                let dep_uid = meta::meta_str(dep, "uid").unwrap_or_default().to_string();
                if !seen.insert(dep_uid.clone()) {
                    continue;
                }
                let name = meta::name(dep).unwrap_or_default();
                match state.objects.delete(rt, Some(ns), name, None).await {
                    Err(e) if e.code == 404 => {}
                    other => {
                        other?;
                    }
                }
                next.push(dep_uid);
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(())
}

/// Deletes the dependents of `uid` in the background (Background policy).
pub(super) fn spawn_background(state: &Arc<ApiState>, ns: String, uid: String) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Err(e) = delete_dependents(&state, &ns, &uid).await {
            tracing::warn!(namespace = %ns, owner = %uid, error = %e.message, "deleting dependents");
        }
    });
}
