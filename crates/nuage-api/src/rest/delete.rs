//! Deletes: one object, a collection, and a namespace's whole content.
//!
//! An object with finalizers is only marked (`deletionTimestamp`) and goes
//! once they are removed. A pod bound to a node is marked too, with its grace
//! period; the node agent removes it once its containers stopped. A namespace
//! goes `Terminating`, loses its content, then goes.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use nuage_model::meta;
use nuage_model::registry::{self, ResourceType};
use serde_json::{json, Value};

use super::gc;
use super::read::collect;
use super::write::now_rfc3339;
use super::{json_response, Ctx};
use crate::request;
use crate::status::{ApiError, ApiResult};
use crate::ApiState;

/// Kinds whose deletion cascades to objects they own (the controllers'
/// kinds); deleting anything else skips the search for dependents.
const OWNER_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "Service",
];

/// What a client asked of a deletion (`DeleteOptions` and query).
#[derive(Default)]
struct Options {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<i64>,
}

fn options(ctx: &Ctx, body: &[u8]) -> ApiResult<Options> {
    let mut o = Options {
        grace_period: ctx.query.int("gracePeriodSeconds")?,
        propagation: ctx.query.get("propagationPolicy").map(str::to_string),
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = request::decode_body(&ctx.headers, body)?;
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace_period = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(p.to_string());
        }
        o.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
    }
    if let Some(p) = &o.propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy must be one of Orphan, Background, Foreground; got {p:?}"
            )));
        }
    }
    Ok(o)
}

pub(super) async fn delete(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let opts = options(&ctx, &body)?;
    let out = delete_one(
        &ctx.state,
        ctx.target.rt,
        ctx.ns(),
        ctx.name(),
        &opts,
        ctx.dry_run(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &out, &[]))
}

/// The finalizer that holds an owner while its dependents are deleted.
const FOREGROUND: &str = "foregroundDeletion";

async fn delete_one(
    state: &Arc<ApiState>,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    opts: &Options,
    dry_run: bool,
) -> ApiResult<Value> {
    for _ in 0..8 {
        let current = state.objects.get_existing(rt, ns, name).await?;
        if let Some(uid) = &opts.uid {
            if meta::meta_str(&current, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict_msg(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::meta_str(&current, "uid").unwrap_or_default()
                    ),
                ));
            }
        }
        let rv = meta::resource_version(&current).unwrap_or(0);
        if opts.resource_version.is_some_and(|want| want != rv) {
            return Err(ApiError::conflict(rt, name));
        }
        if dry_run {
            return Ok(current);
        }
        let finalizers = meta::finalizers(&current);
        let graceful = rt.kind == "Pod"
            && opts.grace_period != Some(0)
            && current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
        let is_namespace = rt.kind == "Namespace";
        let foreground = opts.propagation.as_deref() == Some("Foreground")
            && ns.is_some()
            && OWNER_KINDS.contains(&rt.kind);
        if foreground && !graceful {
            // As the apiserver does: the owner first gets deletionTimestamp
            // and the `foregroundDeletion` finalizer (so its controller
            // stops making dependents), then its dependents go, then the
            // finalizer, which deletes it once no other finalizer is left.
            let mut marked = current.clone();
            let m = meta::metadata_mut(&mut marked);
            let done_dependents = finalizers.iter().any(|f| f == FOREGROUND);
            if done_dependents {
                let uid = meta::meta_str(&current, "uid")
                    .unwrap_or_default()
                    .to_string();
                gc::delete_dependents(state, ns.unwrap_or_default(), &uid).await?;
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FOREGROUND).collect();
                if rest.is_empty() {
                    m.remove("finalizers");
                } else {
                    m.insert("finalizers".into(), json!(rest));
                }
            } else {
                m.entry("deletionTimestamp")
                    .or_insert_with(|| json!(now_rfc3339()));
                m.entry("deletionGracePeriodSeconds").or_insert(json!(0));
                let mut with = finalizers.clone();
                with.push(FOREGROUND.to_string());
                m.insert("finalizers".into(), json!(with));
            }
            let last = done_dependents && meta::finalizers(&marked).is_empty();
            let written = if last {
                state.objects.delete(rt, ns, name, Some(rv)).await
            } else {
                state.objects.update(rt, marked, rv).await
            };
            match written {
                Ok(out) if done_dependents => return Ok(out),
                Ok(_)
                | Err(ApiError {
                    reason: "Conflict", ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        if finalizers.is_empty() && !graceful && !is_namespace {
            let cascade = ns.filter(|_| OWNER_KINDS.contains(&rt.kind));
            let uid = meta::meta_str(&current, "uid")
                .unwrap_or_default()
                .to_string();
            if let Some(ns) = cascade {
                match opts.propagation.as_deref() {
                    Some("Orphan") => gc::orphan(state, ns, &uid).await?,
                    Some("Foreground") => gc::delete_dependents(state, ns, &uid).await?,
                    _ => {}
                }
            }
            match state.objects.delete(rt, ns, name, Some(rv)).await {
                Err(e) if e.reason == "Conflict" => continue,
                Ok(gone) => {
                    if let (Some(ns), None | Some("Background")) =
                        (cascade, opts.propagation.as_deref())
                    {
                        gc::spawn_background(state, ns.to_string(), uid);
                    }
                    return Ok(gone);
                }
                Err(e) => return Err(e),
            }
        }
        if meta::is_deleting(&current) && meta::finalizers(&current) == finalizers {
            return Ok(current);
        }
        let mut marked = current.clone();
        {
            let m = meta::metadata_mut(&mut marked);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                let grace = if graceful {
                    opts.grace_period.unwrap_or_else(|| {
                        current
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                            .unwrap_or(30)
                    })
                } else {
                    0
                };
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if finalizers.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), json!(finalizers));
            }
        }
        if is_namespace {
            marked["status"]["phase"] = json!("Terminating");
        }
        match state.objects.update(rt, marked, rv).await {
            Ok(out) => {
                if is_namespace {
                    let state = Arc::clone(state);
                    let name = name.to_string();
                    tokio::spawn(async move {
                        if let Err(e) = finalize_namespace(&state, &name).await {
                            tracing::warn!(namespace = %name, error = %e.message, "namespace finalization");
                        }
                    });
                }
                return Ok(out);
            }
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}

pub(super) async fn delete_collection(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let opts = options(&ctx, &body)?;
    let rt = ctx.target.rt;
    let (items, rv, _) = collect(&ctx).await?;
    let mut deleted = Vec::new();
    for item in items {
        let name = meta::name(&item).unwrap_or_default().to_string();
        let ns = meta::namespace(&item).map(str::to_string);
        match delete_one(&ctx.state, rt, ns.as_deref(), &name, &opts, ctx.dry_run()).await {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": rt.list_kind(),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

/// Deletes everything in namespace `ns` (every namespaced resource),
/// immediately; returns how many objects remain (those with finalizers).
///
/// Boxed: deleting a namespace spawns this, and this deletes objects, so the
/// future type would otherwise be defined in terms of itself.
fn delete_namespace_contents<'a>(
    state: &'a Arc<ApiState>,
    ns: &'a str,
) -> futures::future::BoxFuture<'a, ApiResult<usize>> {
    Box::pin(delete_namespace_contents_inner(state, ns))
}

async fn delete_namespace_contents_inner(state: &Arc<ApiState>, ns: &str) -> ApiResult<usize> {
    let mut remaining = 0;
    // Each storage once: autoscaling/v1 and v2 share one.
    for rt in registry::namespaced_storages() {
        let page = state.objects.list(rt, Some(ns), Default::default()).await?;
        for item in page.items {
            let name = meta::name(&item).unwrap_or_default().to_string();
            let opts = Options {
                grace_period: Some(0),
                ..Default::default()
            };
            match delete_one(state, rt, Some(ns), &name, &opts, false).await {
                Ok(v) if meta::is_deleting(&v) => remaining += 1,
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(remaining)
}

/// Finishes the deletion of namespaces left `Terminating` by a previous run.
pub async fn resume_namespace_finalization(state: &Arc<ApiState>) -> ApiResult<()> {
    let nsrt = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    let page = state.objects.list(nsrt, None, Default::default()).await?;
    for ns in page.items.iter().filter(|n| meta::is_deleting(n)) {
        let name = meta::name(ns).unwrap_or_default().to_string();
        let state = Arc::clone(state);
        tokio::spawn(async move {
            if let Err(e) = finalize_namespace(&state, &name).await {
                tracing::warn!(namespace = %name, error = %e.message, "namespace finalization");
            }
        });
    }
    Ok(())
}

/// The namespace controller's work for one namespace: empty it, then
/// remove it. Retries while finalizers hold objects back.
async fn finalize_namespace(state: &Arc<ApiState>, ns: &str) -> ApiResult<()> {
    let nsrt = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        let remaining = delete_namespace_contents(state, ns).await?;
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
    loop {
        let Some(current) = state.objects.get(nsrt, None, ns).await? else {
            return Ok(());
        };
        let rv = meta::resource_version(&current).unwrap_or(0);
        let mut fin = current.clone();
        if let Some(spec) = fin.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("finalizers".into(), json!([]));
        }
        if !meta::finalizers(&current).is_empty() {
            // Other controllers' finalizers on the namespace itself.
            match state.objects.update(nsrt, fin, rv).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => {
                    other?;
                    return Ok(());
                }
            }
        }
        match state.objects.delete(nsrt, None, ns, Some(rv)).await {
            Err(e) if e.reason == "Conflict" => continue,
            other => {
                other?;
                return Ok(());
            }
        }
    }
}
