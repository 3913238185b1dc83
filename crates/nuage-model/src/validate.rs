//! Validation beyond types: names, labels, and the per-kind rules clients
//! rely on (`pkg/apis/core/validation`), each error with its field path.

use std::collections::HashSet;

use serde_json::Value;

use crate::meta;
use crate::selector::{
    validate_dns1123_label, validate_dns1123_subdomain, validate_label_key, validate_label_value,
    LabelSelector,
};

/// How a field is wrong, as Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    /// A required field is absent.
    Required,
    /// A field's value is not acceptable.
    Invalid,
    /// A list holds the same key twice.
    Duplicate,
    /// A value outside a fixed set.
    NotSupported,
}

impl FieldErrorType {
    /// The `reason` of the Status cause (`FieldValueRequired`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of failure.
    pub kind: FieldErrorType,
    /// The field path (`spec.containers[0].image`).
    pub field: String,
    /// The full message (`spec.containers[0].image: Required value`).
    pub message: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            kind: FieldErrorType::Required,
            message: format!("{field}: Required value"),
            field,
        }
    }

    /// A field's value is wrong, with the reason.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Self {
            kind: FieldErrorType::Invalid,
            message: format!("{field}: Invalid value: {shown}: {detail}"),
            field,
        }
    }

    /// A duplicate key in a list.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let field = field.into();
        Self {
            kind: FieldErrorType::Duplicate,
            message: format!("{field}: Duplicate value: {value}"),
            field,
        }
    }
}

/// Validates an object of `kind` about to be stored; an empty list means valid.
pub fn validate(kind: &str, namespaced: bool, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    object_meta(kind, namespaced, obj, &mut errs);
    match kind {
        "Pod" => pod_spec(obj.get("spec"), "spec", &mut errs),
        "ReplicationController" => rc(obj, &mut errs),
        "ReplicaSet" | "Deployment" => workload(obj, &mut errs),
        "Service" => service(obj, &mut errs),
        _ => {}
    }
    errs
}

fn object_meta(kind: &str, namespaced: bool, obj: &Value, errs: &mut Vec<FieldError>) {
    match meta::name(obj) {
        None => errs.push(FieldError::required("metadata.name")),
        Some(name) => {
            // Namespaces and Services become DNS labels; the rest are subdomains.
            let check = if matches!(kind, "Namespace" | "Service") {
                validate_dns1123_label(name)
            } else {
                validate_dns1123_subdomain(name)
            };
            if let Err(msg) = check {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    &Value::from(name),
                    &msg,
                ));
            }
        }
    }
    if namespaced && meta::namespace(obj).is_none() {
        errs.push(FieldError::required("metadata.namespace"));
    }
    labels_at(obj.pointer("/metadata/labels"), "metadata.labels", errs);
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for k in ann.keys() {
            if let Err(msg) = validate_label_key(k) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::from(k.as_str()),
                    &msg,
                ));
            }
        }
    }
}

fn labels_at(labels: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        if let Err(msg) = validate_label_key(k) {
            errs.push(FieldError::invalid(path, &Value::from(k.as_str()), &msg));
        }
        let v = v.as_str().unwrap_or_default();
        if let Err(msg) = validate_label_value(v) {
            errs.push(FieldError::invalid(path, &Value::from(v), &msg));
        }
    }
}

fn pod_spec(spec: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec else {
        errs.push(FieldError::required(path));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => errs.push(FieldError::required(format!("{path}.containers"))),
        Some(cs) if cs.is_empty() => errs.push(FieldError::required(format!("{path}.containers"))),
        Some(cs) => {
            let mut names = HashSet::new();
            for (i, c) in cs.iter().enumerate() {
                let at = format!("{path}.containers[{i}]");
                match c.get("name").and_then(Value::as_str) {
                    None | Some("") => errs.push(FieldError::required(format!("{at}.name"))),
                    Some(n) => {
                        if let Err(msg) = validate_dns1123_label(n) {
                            errs.push(FieldError::invalid(
                                format!("{at}.name"),
                                &Value::from(n),
                                &msg,
                            ));
                        }
                        if !names.insert(n) {
                            errs.push(FieldError::duplicate(format!("{at}.name"), &Value::from(n)));
                        }
                    }
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(FieldError::required(format!("{at}.image")));
                }
                for (j, p) in c
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    port_number(
                        p.get("containerPort"),
                        &format!("{at}.ports[{j}].containerPort"),
                        errs,
                    );
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !matches!(rp, "Always" | "OnFailure" | "Never") {
            errs.push(FieldError {
                kind: FieldErrorType::NotSupported,
                field: format!("{path}.restartPolicy"),
                message: format!(
                    "{path}.restartPolicy: Unsupported value: {rp:?}: supported values: \"Always\", \"OnFailure\", \"Never\""
                ),
            });
        }
    }
}

fn port_number(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match v.and_then(Value::as_i64) {
        None => errs.push(FieldError::required(path)),
        Some(p) if !(1..=65535).contains(&p) => errs.push(FieldError::invalid(
            path,
            &Value::from(p),
            "must be between 1 and 65535, inclusive",
        )),
        Some(_) => {}
    }
}

fn replicas(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
        if r < 0 {
            errs.push(FieldError::invalid(
                "spec.replicas",
                &Value::from(r),
                "must be greater than or equal to 0",
            ));
        }
    }
}

fn rc(obj: &Value, errs: &mut Vec<FieldError>) {
    replicas(obj, errs);
    let selector = meta::string_map(obj.pointer("/spec/selector"));
    if selector.is_empty() {
        errs.push(FieldError::required("spec.selector"));
    }
    let Some(template) = obj.pointer("/spec/template") else {
        errs.push(FieldError::required("spec.template"));
        return;
    };
    let labels = meta::string_map(template.pointer("/metadata/labels"));
    if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &serde_json::to_value(&labels).unwrap_or_default(),
            "`selector` does not match template `labels`",
        ));
    }
    labels_at(
        template.pointer("/metadata/labels"),
        "spec.template.metadata.labels",
        errs,
    );
    pod_spec(template.get("spec"), "spec.template.spec", errs);
}

fn workload(obj: &Value, errs: &mut Vec<FieldError>) {
    replicas(obj, errs);
    let Some(sel) = obj.pointer("/spec/selector") else {
        errs.push(FieldError::required("spec.selector"));
        return;
    };
    let Some(template) = obj.pointer("/spec/template") else {
        errs.push(FieldError::required("spec.template"));
        return;
    };
    match LabelSelector::from_k8s(sel) {
        Ok(selector) => {
            if selector.is_everything() {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    sel,
                    "empty selector is invalid for deployment",
                ));
            } else if !selector.matches(&meta::string_map(template.pointer("/metadata/labels"))) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    template.pointer("/metadata/labels").unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        Err(e) => errs.push(FieldError::invalid("spec.selector", sel, &e.to_string())),
    }
    labels_at(
        template.pointer("/metadata/labels"),
        "spec.template.metadata.labels",
        errs,
    );
    pod_spec(template.get("spec"), "spec.template.spec", errs);
}

fn service(obj: &Value, errs: &mut Vec<FieldError>) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errs.push(FieldError {
            kind: FieldErrorType::NotSupported,
            field: "spec.type".into(),
            message: format!("spec.type: Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        });
    }
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    match ports {
        None if ty != "ExternalName" && !headless => errs.push(FieldError::required("spec.ports")),
        Some(ps) if ps.is_empty() && ty != "ExternalName" && !headless => {
            errs.push(FieldError::required("spec.ports"))
        }
        _ => {}
    }
    let mut seen = HashSet::new();
    for (i, p) in ports.into_iter().flatten().enumerate() {
        port_number(p.get("port"), &format!("spec.ports[{i}].port"), errs);
        if let Some(tp) = p.get("targetPort").and_then(Value::as_i64) {
            if !(1..=65535).contains(&tp) {
                errs.push(FieldError::invalid(
                    format!("spec.ports[{i}].targetPort"),
                    &Value::from(tp),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        let key = (
            p.get("port").and_then(Value::as_i64),
            p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string(),
        );
        if !seen.insert(key) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}]"), p));
        }
        if ports.is_some_and(|ps| ps.len() > 1)
            && p.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required(format!("spec.ports[{i}].name")));
        }
    }
    labels_at(obj.pointer("/spec/selector"), "spec.selector", errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_without_image_is_invalid() {
        let pod = json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"containers": [{"name": "c"}]}});
        let errs = validate("Pod", true, &pod);
        assert_eq!(errs, vec![FieldError::required("spec.containers[0].image")]);
    }

    #[test]
    fn bad_label_is_reported_on_metadata_labels() {
        let pod = json!({"metadata": {"name": "a", "namespace": "d", "labels": {"bad key!": "v"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let errs = validate("Pod", true, &pod);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.labels");
    }

    #[test]
    fn rc_selector_must_match_template() {
        let rc = json!({"metadata": {"name": "r", "namespace": "d"},
            "spec": {"selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "y"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let errs = validate("ReplicationController", true, &rc);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_needs_ports() {
        let svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {}});
        assert_eq!(
            validate("Service", true, &svc),
            vec![FieldError::required("spec.ports")]
        );
    }
}
