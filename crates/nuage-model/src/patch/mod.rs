//! PATCH bodies applied to JSON objects: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902), Kubernetes strategic merge patch and server-side apply.
//!
//! Every engine takes the live object and the patch and returns the new
//! object, or a [`PatchError`] for the API server to answer with 422 (400
//! for undecodable patches). Engines never panic and never mutate their
//! inputs. Decoding the body (YAML for apply) is the caller's job.

pub mod apply;
pub mod json;
mod keys;
pub mod merge;
mod order;
pub mod strategic;

use serde_json::Value;

pub use keys::{list_strategy, merge_key, ListStrategy};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch, or the object, is not the JSON object the engine needs.
    #[error("{what} must be a JSON object, not {found}")]
    NotAnObject {
        /// What was expected to be an object.
        what: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A JSON patch that is not a list of valid operations.
    #[error("invalid json patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation that does not apply (missing path, failed test).
    #[error("json patch {0}")]
    JsonPatchFailed(String),
    /// A list item without the list's merge key.
    #[error("item {item} of list {list} has no merge key {key:?}")]
    MissingMergeKey {
        /// Dotted path of the list.
        list: String,
        /// The merge key.
        key: &'static str,
        /// The offending item, abbreviated.
        item: String,
    },
    /// A `$patch` value other than replace, merge or delete.
    #[error("unknown patch directive {directive} at {path}")]
    UnknownDirective {
        /// The directive value.
        directive: String,
        /// Dotted path where it appeared.
        path: String,
    },
    /// A directive (`$retainKeys`, `$setElementOrder/…`,
    /// `$deleteFromPrimitiveList/…`, `$patch` in a list) used wrongly.
    #[error("invalid {directive} at {path}: {reason}")]
    InvalidDirective {
        /// The directive key.
        directive: String,
        /// Dotted path of the map holding it.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A list whose items cannot be merged (mixed types, lists of lists,
    /// objects without a merge key).
    #[error("cannot merge list {list}: {reason}")]
    UnmergeableList {
        /// Dotted path of the list.
        list: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The four PATCH flavours, told apart by the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value (parameters such as
    /// `charset` ignored); `None` for anything else, including
    /// `application/apply-patch+cbor`, which nuage does not decode.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The canonical `Content-Type` of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// Applies a decoded patch of this type to the live object.
    pub fn apply(self, original: &Value, patch: &Value) -> Result<Value, PatchError> {
        match self {
            PatchType::Merge => merge::merge_patch(original, patch),
            PatchType::Json => json::json_patch(original, patch),
            PatchType::Strategic => strategic::strategic_merge_patch(original, patch),
            PatchType::Apply => apply::apply(Some(original), patch),
        }
    }
}

/// The JSON type name of a value, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value abbreviated for an error message.
fn abbreviate(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 120 {
        let mut cut = 117;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json; charset=utf-8"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("Application/Strategic-Merge-Patch+JSON"),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+cbor"),
            None
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
        for t in [
            PatchType::Merge,
            PatchType::Json,
            PatchType::Strategic,
            PatchType::Apply,
        ] {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
    }

    #[test]
    fn dispatches_by_type() {
        let live = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let want = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        let body = json!({"spec": {"replicas": 2}});
        assert_eq!(PatchType::Merge.apply(&live, &body).unwrap(), want);
        assert_eq!(PatchType::Strategic.apply(&live, &body).unwrap(), want);
        assert_eq!(PatchType::Apply.apply(&live, &body).unwrap(), want);
        let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]);
        assert_eq!(PatchType::Json.apply(&live, &ops).unwrap(), want);
    }

    #[test]
    fn errors_name_the_bad_value() {
        let err = PatchType::Merge.apply(&json!({}), &json!([1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "merge patch must be a JSON object, not an array"
        );
        let long = abbreviate(&json!("é".repeat(100)));
        assert!(long.len() <= 120 && long.ends_with("..."), "{long}");
    }
}
