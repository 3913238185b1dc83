//! JSON patch (RFC 6902), `application/json-patch+json`: a list of `add`,
//! `remove`, `replace`, `move`, `copy` and `test` operations, applied in
//! order and all or nothing.

use serde_json::Value;

use super::PatchError;

/// Applies a JSON patch; any failing operation fails the whole patch.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_array() {
        return Err(PatchError::InvalidJsonPatch(format!(
            "expected a list of operations, not {}",
            super::json_type(patch)
        )));
    }
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut patched = original.clone();
    // Patching a copy makes the crate's undo log (and its `unreachable!`)
    // unnecessary: on error the copy is dropped.
    json_patch::patch_unsafe(&mut patched, &operations)
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_operations_in_order() {
        let live = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let ops = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "y"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "d"}},
            {"op": "copy", "from": "/spec/containers/0/name", "path": "/metadata/labels/c"},
            {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/moved"},
        ]);
        assert_eq!(
            json_patch(&live, &ops).unwrap(),
            json!({
                "metadata": {"labels": {"c": "c", "moved": "2"}},
                "spec": {"containers": [{"name": "c", "image": "y"}, {"name": "d"}]}
            })
        );
    }

    #[test]
    fn bad_path_fails_and_names_it() {
        let live = json!({"spec": {}});
        let err =
            json_patch(&live, &json!([{"op": "remove", "path": "/spec/missing"}])).unwrap_err();
        assert!(matches!(err, PatchError::JsonPatchFailed(_)));
        assert!(err.to_string().contains("/spec/missing"), "{err}");
        let err =
            json_patch(&live, &json!([{"op": "test", "path": "/spec", "value": 1}])).unwrap_err();
        assert!(err.to_string().contains("value did not match"), "{err}");
    }

    #[test]
    fn malformed_patches_are_rejected() {
        let live = json!({});
        for bad in [
            json!({"op": "add", "path": "/a", "value": 1}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "no-slash", "value": 1}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([1]),
        ] {
            assert!(
                matches!(
                    json_patch(&live, &bad),
                    Err(PatchError::InvalidJsonPatch(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn failure_leaves_nothing_half_applied() {
        let live = json!({"a": 1});
        let ops =
            json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zzz"}]);
        assert!(json_patch(&live, &ops).is_err());
        assert_eq!(live, json!({"a": 1}));
        assert_eq!(json_patch(&live, &json!([])).unwrap(), live);
    }
}
