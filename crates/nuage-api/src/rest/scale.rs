//! The `scale` subresource: an `autoscaling/v1 Scale` view of `spec.replicas`.

use axum::http::StatusCode;
use axum::response::Response;
use nuage_model::meta;
use nuage_model::patch::PatchType;
use nuage_model::selector::LabelSelector;
use serde_json::{json, Value};

use super::write::{apply_patch, replace, Part};
use super::{json_response, Ctx};
use crate::request;
use crate::status::{ApiError, ApiResult};

/// The Scale of an object with replicas.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_k8s(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = obj.get("metadata").cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
            "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub(super) async fn get(ctx: Ctx) -> ApiResult<Response> {
    let obj = ctx
        .state
        .objects
        .get_existing(ctx.target.rt, ctx.ns(), ctx.name())
        .await?;
    Ok(json_response(StatusCode::OK, &scale_of(&obj), &[]))
}

pub(super) async fn update(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let scale = request::decode_body(&ctx.headers, &body)?;
    let current = ctx
        .state
        .objects
        .get_existing(ctx.target.rt, ctx.ns(), ctx.name())
        .await?;
    write_scale(&ctx, &current, &scale).await
}

pub(super) async fn patch(ctx: Ctx, body: bytes::Bytes) -> ApiResult<Response> {
    let ct = request::content_type(&ctx.headers);
    let ty =
        PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let doc = request::decode_json(&body)?;
    for _ in 0..8 {
        let current = ctx
            .state
            .objects
            .get_existing(ctx.target.rt, ctx.ns(), ctx.name())
            .await?;
        let scale = apply_patch(ty, &scale_of(&current), &doc)?;
        match write_scale(&ctx, &current, &scale).await {
            Err(e)
                if e.reason == "Conflict" && doc.pointer("/metadata/resourceVersion").is_none() =>
            {
                continue
            }
            other => return other,
        }
    }
    Err(ApiError::conflict(ctx.target.rt, ctx.name()))
}

async fn write_scale(ctx: &Ctx, current: &Value, scale: &Value) -> ApiResult<Response> {
    let rt = ctx.target.rt;
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            rt,
            ctx.name(),
            &[nuage_model::validate::FieldError::invalid(
                "spec.replicas",
                &json!(replicas),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = meta::meta_str(scale, "resourceVersion").filter(|s| !s.is_empty()) {
        meta::set_meta(&mut new, "resourceVersion", rv);
    }
    let (_, stored) = replace(&ctx.state, rt, current, new, Part::Main, ctx.dry_run()).await?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored), &[]))
}
