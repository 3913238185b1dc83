//! Writes: create, update (whole object or status), patch, bind.
//!
//! The server owns some fields: `uid`, `creationTimestamp`, `generation`
//! (moved only by spec changes), `deletionTimestamp`, and — for resources
//! with a status subresource — `status` on main-resource writes and
//! everything but `status` on status writes.

use std::net::Ipv4Addr;

use axum::http::StatusCode;
use axum::response::Response;
use nuage_model::meta;
use nuage_model::patch::{self, PatchType};
use nuage_model::registry::{self, ResourceType};
use serde_json::{json, Value};

use super::admit::{admit, duplicates_in, validate};
use super::{json_response, Ctx};
use crate::namespaces::NamespaceState;
use crate::request::{self, FieldValidation};
use crate::status::{ApiError, ApiResult};
use crate::ApiState;

/// How often a patch is retried when another writer got in between.
const PATCH_RETRIES: usize = 8;

pub(super) async fn create(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let mut obj = request::decode_body(&ctx.headers, &body)?;
    let fv = FieldValidation::from_query(&ctx.query)?;
    let dups = duplicates_in(&ctx.headers, &body);
    let warnings = admit(ctx.target.rt, &mut obj, ctx.ns(), fv, &dups)?;
    let created = create_object(&ctx.state, ctx.target.rt, obj, ctx.dry_run()).await?;
    Ok(json_response(StatusCode::CREATED, &created, &warnings))
}

/// Creates an admitted object: server-owned fields, namespace checks,
/// allocation, validation, store.
pub(super) async fn create_object(
    state: &ApiState,
    rt: &'static ResourceType,
    mut obj: Value,
    dry_run: bool,
) -> ApiResult<Value> {
    // A generated name may collide with an existing one: like the
    // apiserver (RetryGenerateName), try a few fresh suffixes.
    let mut generated_from = None;
    if meta::name(&obj).is_none() {
        if let Some(prefix) = meta::meta_str(&obj, "generateName").map(generate_base) {
            meta::set_meta(&mut obj, "name", format!("{prefix}{}", random_suffix()));
            generated_from = Some(prefix);
        } else {
            return Err(ApiError::invalid(
                rt,
                "",
                &[nuage_model::validate::FieldError {
                    kind: nuage_model::validate::FieldErrorType::Required,
                    field: "metadata.name".into(),
                    message: "metadata.name: Required value: name or generateName is required"
                        .into(),
                }],
            ));
        }
    }
    let name = meta::name(&obj).unwrap_or_default().to_string();
    if rt.namespaced {
        let ns = meta::namespace(&obj).unwrap_or_default().to_string();
        check_namespace_open(state, &ns, rt, &name).await?;
    }
    {
        let m = meta::metadata_mut(&mut obj);
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if obj_has_spec(&obj) {
            meta::metadata_mut(&mut obj).insert("generation".into(), json!(1));
        }
    }
    initial_status(rt, &mut obj);
    if rt.kind == "Service" {
        allocate_cluster_ip(state, &mut obj).await?;
    }
    validate(rt, &obj)?;
    if dry_run {
        return Ok(obj);
    }
    let Some(prefix) = generated_from else {
        return state.objects.create(rt, obj).await;
    };
    let mut attempts = 0;
    loop {
        match state.objects.create(rt, obj.clone()).await {
            Err(e) if e.reason == "AlreadyExists" && attempts < GENERATE_NAME_RETRIES => {
                attempts += 1;
                meta::set_meta(&mut obj, "name", format!("{prefix}{}", random_suffix()));
            }
            other => return other,
        }
    }
}

/// How many fresh suffixes a colliding generated name gets.
const GENERATE_NAME_RETRIES: usize = 7;

/// The part of `generateName` kept: at most 58 characters, so the name
/// with its 5-character suffix stays within 63.
fn generate_base(prefix: &str) -> String {
    prefix.chars().take(58).collect()
}

fn obj_has_spec(obj: &Value) -> bool {
    obj.get("spec").is_some()
}

/// What `status` a new object starts with (clients cannot set it on create).
fn initial_status(rt: &ResourceType, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let status = match rt.kind {
        "Pod" => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "ReplicationController" | "ReplicaSet" => json!({"replicas": 0}),
        "Deployment" => json!({}),
        "HorizontalPodAutoscaler" => {
            if rt.version == "v1" {
                json!({"currentReplicas": 0, "desiredReplicas": 0})
            } else {
                json!({"desiredReplicas": 0})
            }
        }
        _ => return,
    };
    map.insert("status".into(), status);
}

async fn check_namespace_open(
    state: &ApiState,
    ns: &str,
    rt: &ResourceType,
    name: &str,
) -> ApiResult<()> {
    let terminating = || {
        Err(ApiError::forbidden(
            rt,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        ))
    };
    match state.namespaces.get(ns) {
        Some(NamespaceState::Active) => return Ok(()),
        Some(NamespaceState::Terminating) => return terminating(),
        // Not (yet) seen by the cache: ask the store.
        None => {}
    }
    let nsrt = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    match state.objects.get(nsrt, None, ns).await? {
        None => Err(ApiError::not_found(nsrt, ns)),
        Some(n) if meta::is_deleting(&n) => terminating(),
        Some(_) => Ok(()),
    }
}

pub(super) async fn update(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let mut obj = request::decode_body(&ctx.headers, &body)?;
    let fv = FieldValidation::from_query(&ctx.query)?;
    let rt = ctx.target.rt;
    let dups = duplicates_in(&ctx.headers, &body);
    let warnings = admit(rt, &mut obj, ctx.ns(), fv, &dups)?;
    check_name(&ctx, &obj)?;
    let current = ctx
        .state
        .objects
        .get_existing(rt, ctx.ns(), ctx.name())
        .await?;
    let (code, out) = replace(&ctx.state, rt, &current, obj, Part::Main, ctx.dry_run()).await?;
    Ok(json_response(code, &out, &warnings))
}

pub(super) async fn update_status(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let mut obj = request::decode_body(&ctx.headers, &body)?;
    let rt = ctx.target.rt;
    let fv = FieldValidation::from_query(&ctx.query)?;
    let dups = duplicates_in(&ctx.headers, &body);
    let warnings = admit(rt, &mut obj, ctx.ns(), fv, &dups)?;
    check_name(&ctx, &obj)?;
    let current = ctx
        .state
        .objects
        .get_existing(rt, ctx.ns(), ctx.name())
        .await?;
    let (code, out) = replace(&ctx.state, rt, &current, obj, Part::Status, ctx.dry_run()).await?;
    Ok(json_response(code, &out, &warnings))
}

fn check_name(ctx: &Ctx, obj: &Value) -> ApiResult<()> {
    let body_name = meta::name(obj).unwrap_or_default();
    if body_name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    Ok(())
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Everything but status (for resources with a status subresource).
    Main,
    /// Only status.
    Status,
}

/// Replaces `current` by `new` (both as served), keeping server-owned
/// fields. Writes nothing if nothing changed. Removes the object when its
/// deletion is pending and its last finalizer is gone.
pub(super) async fn replace(
    state: &ApiState,
    rt: &'static ResourceType,
    current: &Value,
    mut new: Value,
    part: Part,
    dry_run: bool,
) -> ApiResult<(StatusCode, Value)> {
    let name = meta::name(current).unwrap_or_default().to_string();
    let current_rv = meta::resource_version(current).unwrap_or(0);
    let expected = match meta::meta_str(&new, "resourceVersion") {
        None | Some("") => current_rv,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
    };
    if expected != current_rv {
        return Err(ApiError::conflict(rt, &name));
    }
    // A Deployment's status write may change its annotations (the
    // controller records `deployment.kubernetes.io/revision` there, as the
    // apiserver's deployment status strategy allows), without a new
    // generation.
    let status_annotations = (part == Part::Status && rt.kind == "Deployment")
        .then(|| new.pointer("/metadata/annotations").cloned());
    if part == Part::Status {
        let status = new.get("status").cloned();
        new = current.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    } else if rt.has_subresource("status") {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    keep_server_fields(rt, current, &mut new)?;
    if let Some(annotations) = status_annotations {
        let m = meta::metadata_mut(&mut new);
        match annotations {
            Some(a) => m.insert("annotations".into(), a),
            None => m.remove("annotations"),
        };
    }
    validate(rt, &new)?;
    if strip_rv(current) == strip_rv(&new) {
        return Ok((StatusCode::OK, current.clone()));
    }
    if dry_run {
        return Ok((StatusCode::OK, new));
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        let ns = meta::namespace(&new).map(str::to_string);
        let gone = state
            .objects
            .delete(rt, ns.as_deref(), &name, Some(current_rv))
            .await?;
        return Ok((StatusCode::OK, gone));
    }
    let stored = state.objects.update(rt, new, current_rv).await?;
    Ok((StatusCode::OK, stored))
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    meta::remove_meta(&mut v, "resourceVersion");
    v
}

fn keep_server_fields(rt: &ResourceType, current: &Value, new: &mut Value) -> ApiResult<()> {
    let cur_meta = current.get("metadata").cloned().unwrap_or_default();
    let new_uid = meta::meta_str(new, "uid").map(str::to_string);
    let cur_uid = meta::meta_str(current, "uid")
        .unwrap_or_default()
        .to_string();
    if new_uid
        .as_deref()
        .is_some_and(|u| !u.is_empty() && u != cur_uid)
    {
        return Err(ApiError::conflict_msg(
            rt,
            meta::name(current).unwrap_or_default(),
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {cur_uid}",
                new_uid.unwrap_or_default()
            ),
        ));
    }
    let spec_changed = current.get("spec") != new.get("spec")
        || (rt.kind == "Deployment"
            && current.pointer("/metadata/annotations") != new.pointer("/metadata/annotations"));
    let m = meta::metadata_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match cur_meta.get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    if spec_changed && cur_meta.get("generation").is_some() {
        let g = cur_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        m.insert("generation".into(), json!(g + 1));
    }
    if rt.kind == "Service" {
        // The cluster IP is immutable once allocated.
        if let Some(ip) = current.pointer("/spec/clusterIP").cloned() {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("clusterIP".into(), ip.clone());
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
    }
    Ok(())
}

pub(super) async fn patch(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let ct = request::content_type(&ctx.headers);
    let ty =
        PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let patch_doc = match ty {
        PatchType::Apply => request::decode_yaml(&body)?,
        _ => request::decode_json(&body)?,
    };
    let rt = ctx.target.rt;
    let fv = FieldValidation::from_query(&ctx.query)?;
    let part = if ctx.target.subresource.as_deref() == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    for _ in 0..PATCH_RETRIES {
        let current = ctx.state.objects.get(rt, ctx.ns(), ctx.name()).await?;
        let Some(current) = current else {
            if ty == PatchType::Apply && part == Part::Main {
                return apply_create(&ctx, patch_doc, fv).await;
            }
            return Err(ApiError::not_found(rt, ctx.name()));
        };
        let mut patched = apply_patch(ty, &current, &patch_doc)?;
        // A patch that does not name a resourceVersion applies to whatever
        // is current; one that does is a precondition.
        let pinned = meta::meta_str(&patched, "resourceVersion")
            != meta::meta_str(&current, "resourceVersion");
        if !pinned {
            meta::set_resource_version(&mut patched, meta::resource_version(&current).unwrap_or(0));
        }
        let warnings = admit(rt, &mut patched, ctx.ns(), fv, &[])?;
        check_name(&ctx, &patched)?;
        match replace(&ctx.state, rt, &current, patched, part, ctx.dry_run()).await {
            Ok((code, out)) => return Ok(json_response(code, &out, &warnings)),
            Err(e) if e.reason == "Conflict" && !pinned => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, ctx.name()))
}

async fn apply_create(ctx: &Ctx, doc: Value, fv: FieldValidation) -> ApiResult<Response> {
    let mut obj =
        patch::apply::apply(None, &doc).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if meta::name(&obj).is_none() {
        meta::set_meta(&mut obj, "name", ctx.name());
    }
    check_name(ctx, &obj)?;
    let warnings = admit(ctx.target.rt, &mut obj, ctx.ns(), fv, &[])?;
    let created = create_object(&ctx.state, ctx.target.rt, obj, ctx.dry_run()).await?;
    Ok(json_response(StatusCode::CREATED, &created, &warnings))
}

/// Applies a patch document of type `ty` to `current`.
pub(super) fn apply_patch(ty: PatchType, current: &Value, doc: &Value) -> ApiResult<Value> {
    ty.apply(current, doc)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `POST pods/NAME/binding`: assigns a pod to a node, once.
pub(super) async fn bind(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let binding = request::decode_body(&ctx.headers, &body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("binding target.name is required"))?
        .to_string();
    let rt = ctx.target.rt;
    for _ in 0..PATCH_RETRIES {
        let current = ctx
            .state
            .objects
            .get_existing(rt, ctx.ns(), ctx.name())
            .await?;
        if let Some(bound) = current.pointer("/spec/nodeName").and_then(Value::as_str) {
            if !bound.is_empty() {
                return Err(ApiError::conflict_msg(
                    rt,
                    ctx.name(),
                    &format!("pod {} is already assigned to node {bound:?}", ctx.name()),
                ));
            }
        }
        let mut new = current.clone();
        new["spec"]["nodeName"] = json!(node);
        set_scheduled(&mut new);
        let rv = meta::resource_version(&current).unwrap_or(0);
        match ctx.state.objects.update(rt, new, rv).await {
            Ok(_) => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
                return Ok(json_response(StatusCode::CREATED, &status, &[]));
            }
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, ctx.name()))
}

/// Sets the pod's `PodScheduled` condition True, as the apiserver's
/// binding does (replacing a False one the scheduler left).
fn set_scheduled(pod: &mut Value) {
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": now_rfc3339(),
    });
    let conditions = &mut pod["status"]["conditions"];
    match conditions.as_array_mut() {
        Some(list) => {
            list.retain(|c| c["type"] != "PodScheduled");
            list.push(condition);
        }
        None => *conditions = json!([condition]),
    }
}

/// Creates namespace `name` if it does not exist (system namespaces at start).
pub async fn ensure_namespace(state: &ApiState, name: &str) -> ApiResult<()> {
    let rt = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    if state.objects.get(rt, None, name).await?.is_some() {
        return Ok(());
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    nuage_model::defaults::apply("Namespace", &mut obj);
    match create_object(state, rt, obj, false).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

async fn allocate_cluster_ip(state: &ApiState, obj: &mut Value) -> ApiResult<()> {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return Ok(());
    }
    let requested = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    if requested == "None" {
        obj["spec"]["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    let _guard = state.ip_alloc.lock().await;
    let svc = registry::lookup("", "v1", "services").expect("services are served");
    let page = state.objects.list(svc, None, Default::default()).await?;
    let used: std::collections::HashSet<String> = page
        .items
        .iter()
        .filter_map(|s| {
            s.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let (base, size) = state.service_range;
    let bad_ip = |detail: &str| {
        ApiError::invalid(
            svc,
            meta::name(obj).unwrap_or_default(),
            &[nuage_model::validate::FieldError::invalid(
                "spec.clusterIP",
                &json!(requested),
                detail,
            )],
        )
    };
    let ip = if !requested.is_empty() {
        let ip: Ipv4Addr = requested
            .parse()
            .map_err(|_| bad_ip("must be a valid IP address"))?;
        let offset = u32::from(ip).wrapping_sub(u32::from(base));
        if offset == 0 || offset >= size {
            return Err(bad_ip("provided IP is not in the valid range"));
        }
        if used.contains(requested) {
            return Err(bad_ip("provided IP is already allocated"));
        }
        ip
    } else {
        // .0 is the network, .1 is kept for the API's own service.
        (2..size.saturating_sub(1))
            .map(|i| Ipv4Addr::from(u32::from(base) + i))
            .find(|ip| !used.contains(&ip.to_string()))
            .ok_or_else(|| ApiError::internal("the service IP range is exhausted"))?
    };
    obj["spec"]["clusterIP"] = json!(ip.to_string());
    obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
    Ok(())
}

/// Five characters from Kubernetes' `generateName` alphabet (no vowels).
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Now as RFC 3339 with seconds, as Kubernetes writes timestamps.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod generate_tests {
    #[test]
    fn generated_names_fit_in_63_characters() {
        let base = super::generate_base(&"x".repeat(80));
        assert_eq!(base.len(), 58);
        assert_eq!(format!("{base}{}", super::random_suffix()).len(), 63);
    }
}
