//! Strict decoding of JSON objects as the typed Kubernetes structs.
//!
//! The API server keeps objects as JSON, but checks each write against the
//! `k8s-openapi` type: unknown fields (for `fieldValidation=Strict|Warn`),
//! wrong types and missing required fields, each reported with the field path
//! as Kubernetes writes it (`spec.containers[0].image`).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What decoding an object as its typed struct found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Paths of fields the type does not have, in document order.
    pub unknown_fields: Vec<String>,
    /// The first structural error, if decoding failed.
    pub error: Option<DecodeError>,
}

/// A structural error in an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("{field}: Required value")]
    Missing {
        /// Path of the missing field.
        field: String,
    },
    /// A field has the wrong type or a malformed value.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the field (empty for the whole object).
        field: String,
        /// What was wrong.
        message: String,
    },
}

/// Decodes `value` as `T`, collecting unknown fields and the first error.
pub fn check_typed<T: DeserializeOwned>(value: &Value) -> Checked {
    let mut unknown = Vec::new();
    let result: Result<T, _> = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(k8s_path(&path.to_string()));
        let de = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize(de)
    };
    let error = result.err().map(|e| {
        let at = k8s_path(&e.path().to_string());
        let message = e.inner().to_string();
        match missing_field(&message) {
            Some(name) => DecodeError::Missing {
                field: join(&at, name),
            },
            None => DecodeError::Invalid { field: at, message },
        }
    });
    Checked {
        unknown_fields: unknown,
        error,
    }
}

/// Rewrites a serde path (`spec.?.containers.?.0.image`, `spec.containers[0]`)
/// the way Kubernetes prints field paths (`spec.containers[0].image`).
pub fn k8s_path(serde_path: &str) -> String {
    let mut out = String::new();
    for seg in serde_path.split('.') {
        if seg == "?" || seg.is_empty() {
            continue;
        }
        if let Some(idx) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            out.push_str(&format!("[{idx}]"));
        } else if seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_kubernetes_paths() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": "i", "bogusField": 1}]}});
        let c = check_typed::<Pod>(&pod);
        assert_eq!(c.error, None);
        assert_eq!(c.unknown_fields, vec!["spec.containers[0].bogusField"]);
    }

    #[test]
    fn missing_required_fields_are_left_to_validation() {
        // k8s-openapi defaults absent required fields; nuage-model's
        // validate module reports them with their paths instead.
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"image": "i"}]}});
        assert_eq!(check_typed::<Pod>(&pod).error, None);
    }

    #[test]
    fn wrong_type_names_its_path() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": 3}]}});
        let c = check_typed::<Pod>(&pod);
        match c.error {
            Some(DecodeError::Invalid { field, .. }) => {
                assert_eq!(field, "spec.containers[0].image")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
