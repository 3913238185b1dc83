//! JSON merge patch (RFC 7386), `application/merge-patch+json`: objects merge
//! recursively, `null` deletes a key, anything else (lists included)
//! replaces. `kubectl label`, `annotate` and `patch --type merge` send it.

use serde_json::Value;

use super::{json_type, PatchError};

/// Applies a JSON merge patch. The patch must be an object: RFC 7386 would
/// let a scalar replace the whole document, which is never a valid object.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject {
            what: "merge patch",
            found: json_type(patch),
        });
    }
    let mut merged = original.clone();
    json_patch::merge(&mut merged, patch);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_objects_and_deletes_nulls() {
        let live = json!({"metadata": {"name": "a", "labels": {"app": "web", "old": "x"}}, "spec": {"ports": [1, 2]}});
        let patch =
            json!({"metadata": {"labels": {"old": null, "new": "y"}}, "spec": {"ports": [3]}});
        assert_eq!(
            merge_patch(&live, &patch).unwrap(),
            json!({"metadata": {"name": "a", "labels": {"app": "web", "new": "y"}}, "spec": {"ports": [3]}})
        );
    }

    #[test]
    fn deleting_a_missing_key_is_fine() {
        let live = json!({"a": 1});
        assert_eq!(merge_patch(&live, &json!({"b": null})).unwrap(), live);
        assert_eq!(merge_patch(&live, &json!({})).unwrap(), live);
    }

    #[test]
    fn object_replaces_scalar_and_nulls_inside_new_objects_vanish() {
        let live = json!({"a": "x"});
        assert_eq!(
            merge_patch(&live, &json!({"a": {"b": 1, "c": null}})).unwrap(),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn patch_must_be_an_object() {
        for bad in [json!([]), json!("x"), json!(null), json!(1)] {
            assert!(matches!(
                merge_patch(&json!({}), &bad),
                Err(PatchError::NotAnObject { .. })
            ));
        }
    }
}
