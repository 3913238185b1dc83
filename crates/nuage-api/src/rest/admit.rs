//! Admission of an incoming object: type and kind checks, unknown fields
//! (`fieldValidation`), namespace, defaults and validation.

use nuage_model::decode::DecodeError;
use nuage_model::registry::ResourceType;
use nuage_model::{defaults, meta, validate};
use serde_json::Value;

use crate::request::FieldValidation;
use crate::status::{ApiError, ApiResult};

/// The body as sent, when it matters to admission: duplicate keys are only
/// visible in the raw JSON.
pub fn duplicates_in(headers: &axum::http::HeaderMap, body: &[u8]) -> Vec<String> {
    match crate::request::content_type(headers).as_str() {
        "application/json" | "" => nuage_model::duplicates::duplicate_fields(body),
        _ => Vec::new(),
    }
}

/// Checks `obj` as a write to `rt` in namespace `ns`, fills defaults, and
/// returns the warnings to send. `duplicates` are the paths of keys the raw
/// body held twice. Nothing is stored here.
pub fn admit(
    rt: &ResourceType,
    obj: &mut Value,
    ns: Option<&str>,
    fv: FieldValidation,
    duplicates: &[String],
) -> ApiResult<Vec<String>> {
    check_type_meta(rt, obj)?;
    if rt.namespaced {
        match (meta::namespace(obj), ns) {
            (None, Some(ns)) => meta::set_meta(obj, "namespace", ns),
            (Some(body_ns), Some(url_ns)) if body_ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {}
        }
    } else {
        meta::remove_meta(obj, "namespace");
    }
    let checked = (rt.check)(obj);
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {detail}",
            rt.kind, rt.version, rt.kind
        ))
    };
    match checked.error {
        Some(DecodeError::Missing { field }) => {
            let name = meta::name(obj).unwrap_or_default().to_string();
            return Err(ApiError::invalid(
                rt,
                &name,
                &[validate::FieldError::required(field)],
            ));
        }
        Some(DecodeError::Invalid { field, message }) => {
            return Err(cannot(if field.is_empty() {
                message
            } else {
                format!("{message} (at {field})")
            }))
        }
        None => {}
    }
    let mut warnings = Vec::new();
    if !checked.unknown_fields.is_empty() || !duplicates.is_empty() {
        let list: Vec<String> = duplicates
            .iter()
            .map(|f| format!("json: duplicate field {f:?}"))
            .chain(
                checked
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field {f:?}")),
            )
            .collect();
        match fv {
            FieldValidation::Strict => {
                return Err(cannot(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )))
            }
            FieldValidation::Warn => warnings = list,
            FieldValidation::Ignore => {}
        }
    }
    defaults::apply(rt.kind, obj);
    Ok(warnings)
}

/// Validates a fully prepared object (names set, defaults applied).
pub fn validate(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let errs = validate::validate(rt.kind, rt.namespaced, obj);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            rt,
            meta::name(obj).unwrap_or_default(),
            &errs,
        ))
    }
}

/// `apiVersion` and `kind` must be those of the URL.
fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {} object, got {}",
            rt.kind,
            type_name(obj)
        )));
    };
    let want_version = rt.api_version();
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}'",
                truncate(&Value::Object(map.clone()).to_string(), 200)
            )))
        }
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )))
        }
        Some(_) => {}
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want_version));
        }
        Some(v) if v != want_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )))
        }
        Some(_) => {}
    }
    if let Some(m) = map.get("metadata") {
        if !m.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: metadata must be an object",
                rt.kind, rt.version, rt.kind
            )));
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
