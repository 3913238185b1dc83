//! Kubernetes strategic merge patch, as kubectl 1.32 sends it for
//! client-side `apply`, `patch`, `set image`, `rollout restart` and `cordon`.
//!
//! Follows k8s.io/apimachinery `pkg/util/strategicpatch/patch.go` (v0.32.4)
//! with `MergeParallelList` and `IgnoreUnmatchedNulls` on, as the API server
//! applies patches. Maps merge recursively and `null` deletes a key; lists
//! merge according to [`list_strategy`]: by merge key, as a set of scalars, or
//! (the default) replaced. Directives:
//!
//! - `$patch: replace` in a map or a list item replaces instead of merging;
//!   `$patch: delete` empties a map or removes the list item with the same
//!   merge key; `$patch: merge` is the default and changes nothing.
//! - `$setElementOrder/<list>` gives the final order of the patched items.
//! - `$deleteFromPrimitiveList/<list>` removes scalars from a merged list.
//! - `$retainKeys` clears every key of the live map it does not name.
//!
//! Deliberate differences from Go, which decodes the result into a typed
//! struct that silently drops leftovers: values added where the live object
//! had nothing are cleaned of directives and nulls; `$patch: replace` on a
//! map absent from the live object adds the map (Go drops it); `$patch:
//! merge` is accepted anywhere (Go rejects it); a null
//! `$deleteFromPrimitiveList` list deletes nothing (Go deletes the list).

use serde_json::{Map, Value};

mod directives;
mod lists;

pub use super::keys::{list_strategy, merge_key, ListStrategy};
use super::{abbreviate, json_type, PatchError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to a live object; both must be JSON objects.
pub fn strategic_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    strategic_merge_patch_with(original, patch, &list_strategy)
}

/// [`strategic_merge_patch`] with another list schema (tests use the one of
/// the Go test suite).
pub(crate) fn strategic_merge_patch_with(
    original: &Value,
    patch: &Value,
    schema: &dyn Fn(&[&str]) -> ListStrategy,
) -> Result<Value, PatchError> {
    let original = original.as_object().ok_or(PatchError::NotAnObject {
        what: "object",
        found: json_type(original),
    })?;
    let patch = patch.as_object().ok_or(PatchError::NotAnObject {
        what: "strategic merge patch",
        found: json_type(patch),
    })?;
    let mut merger = Merger {
        schema,
        path: Vec::new(),
    };
    Ok(Value::Object(
        merger.merge_map(original.clone(), patch.clone())?,
    ))
}

/// What a map's `$patch` asks for.
#[derive(PartialEq)]
enum MapDirective {
    Merge,
    Replace,
    Delete,
}

/// The kind of the items of a list, which must all agree.
#[derive(PartialEq, Clone, Copy)]
enum ItemKind {
    Object,
    Scalar(u8),
}

struct Merger<'s> {
    schema: &'s dyn Fn(&[&str]) -> ListStrategy,
    /// Field names from the root to the map or list being merged.
    path: Vec<String>,
}

impl Merger<'_> {
    fn dotted(&self) -> String {
        if self.path.is_empty() {
            "the top level".to_string()
        } else {
            self.path.join(".")
        }
    }

    /// The strategy of the list held by the innermost field of `path`.
    fn strategy(&self) -> ListStrategy {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        (self.schema)(&path)
    }

    /// Runs `f` with `field` pushed on the path.
    fn within<T>(&mut self, field: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(field.to_string());
        let out = f(self);
        self.path.pop();
        out
    }

    fn take_map_directive(
        &self,
        patch: &mut Map<String, Value>,
    ) -> Result<MapDirective, PatchError> {
        match patch.remove(DIRECTIVE) {
            None => Ok(MapDirective::Merge),
            Some(value) => match value.as_str() {
                Some("merge") => Ok(MapDirective::Merge),
                Some("replace") => Ok(MapDirective::Replace),
                Some("delete") => Ok(MapDirective::Delete),
                _ => Err(PatchError::UnknownDirective {
                    directive: abbreviate(&value),
                    path: self.dotted(),
                }),
            },
        }
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        match self.take_map_directive(&mut patch)? {
            MapDirective::Replace => return self.merge_map(Map::new(), patch),
            MapDirective::Delete => return Ok(Map::new()),
            MapDirective::Merge => {}
        }
        self.retain_keys(&mut original, &mut patch)?;

        let order_keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for key in order_keys {
            if let Some(order) = patch.remove(&key) {
                self.set_element_order(&mut original, &mut patch, &key, order)?;
            }
        }

        // Deletions from primitive lists go last, after their list merged.
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((field.to_string(), value));
                continue;
            }
            match original.get_mut(&key) {
                Some(slot) => {
                    let old = std::mem::take(slot);
                    match self.merge_field(Some(old), value, &key)? {
                        Some(merged) => *slot = merged,
                        None => {
                            original.remove(&key);
                        }
                    }
                }
                None => {
                    if let Some(added) = self.merge_field(None, value, &key)? {
                        original.insert(key, added);
                    }
                }
            }
        }
        for (field, value) in deletions {
            self.delete_from_primitive_list(&mut original, &field, value)?;
        }
        Ok(original)
    }

    /// The new value of `field`, or `None` to remove it.
    fn merge_field(
        &mut self,
        original: Option<Value>,
        patch: Value,
        field: &str,
    ) -> Result<Option<Value>, PatchError> {
        match (original, patch) {
            (_, Value::Null) => Ok(None),
            (Some(Value::Object(o)), Value::Object(p)) => {
                let merged = self.within(field, |m| m.merge_map(o, p))?;
                Ok(Some(Value::Object(merged)))
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Ok(Some(Value::Array(self.merge_list(o, p, field)?)))
            }
            // Absent, of another type, or a scalar: the patch value wins.
            (_, patch) => self.build(patch, field),
        }
    }

    /// A patch value applied to nothing: directives processed, nulls dropped.
    fn build(&mut self, patch: Value, field: &str) -> Result<Option<Value>, PatchError> {
        match patch {
            Value::Null => Ok(None),
            Value::Object(mut p) => self.within(field, |m| {
                if m.take_map_directive(&mut p)? == MapDirective::Delete {
                    return Ok(None);
                }
                Ok(Some(Value::Object(m.merge_map(Map::new(), p)?)))
            }),
            Value::Array(p) => Ok(Some(Value::Array(self.merge_list(Vec::new(), p, field)?))),
            scalar => Ok(Some(scalar)),
        }
    }

    fn unmergeable(&self, reason: &'static str) -> PatchError {
        PatchError::UnmergeableList {
            list: self.dotted(),
            reason,
        }
    }

    fn invalid(&self, directive: &str, reason: String) -> PatchError {
        PatchError::InvalidDirective {
            directive: directive.to_string(),
            path: self.dotted(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        strategic_merge_patch(&original, &patch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}, "annotations": {"a": "1"}},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"spec": {"containers": [
                    {"name": "a", "image": "nginx:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "b", "image": "busybox"}
                ], "tolerations": [{"key": "k1"}]}}
            }
        })
    }

    #[test]
    fn apply_sets_last_applied_and_replicas() {
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}\n"}},
            "spec": {"replicas": 3}
        });
        let out = smp(deployment(), patch);
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["annotations"]["a"], "1");
        assert!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .is_string()
        );
    }

    #[test]
    fn null_removes_labels_and_unschedulable() {
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"old": null, "missing": null}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        let node = json!({"spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24"}});
        assert_eq!(
            smp(node, json!({"spec": {"unschedulable": null}})),
            json!({"spec": {"podCIDR": "10.0.0.0/24"}})
        );
        let cordoned = smp(
            json!({"spec": {}}),
            json!({"spec": {"unschedulable": true}}),
        );
        assert_eq!(cordoned["spec"]["unschedulable"], true);
    }

    #[test]
    fn rollout_restart_adds_a_template_annotation() {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}});
        let out = smp(deployment(), patch);
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn patch_replace_and_delete_in_maps() {
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "replace", "new": "y"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"new": "y"}));
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({}));
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "merge", "new": "y"}}}),
        );
        assert_eq!(out["metadata"]["labels"]["app"], "web");
        let out = smp(
            json!({"a": 1}),
            json!({"b": {"$patch": "delete"}, "c": {"$patch": "replace", "d": 1}}),
        );
        assert_eq!(out, json!({"a": 1, "c": {"d": 1}}));
        assert_eq!(smp(json!({"a": 1}), json!({"$patch": "delete"})), json!({}));
        assert_eq!(
            smp(json!({"a": 1}), json!({"$patch": "replace", "b": 2})),
            json!({"b": 2})
        );
    }

    #[test]
    fn directives_in_new_values_are_processed_not_stored() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "x", "resources": null}, {"$patch": "delete", "name": "b"}]
        }}}});
        assert_eq!(
            smp(json!({"metadata": {"name": "d"}}), patch),
            json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}})
        );
    }

    #[test]
    fn errors() {
        let err = strategic_merge_patch(&json!({}), &json!([])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strategic merge patch must be a JSON object, not an array"
        );
        assert!(matches!(
            strategic_merge_patch(&json!(null), &json!({})),
            Err(PatchError::NotAnObject { .. })
        ));
        let err = strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "item {\"image\":\"x\"} of list spec.template.spec.containers has no merge key \"name\""
        );
        let err = strategic_merge_patch(&json!({"a": {}}), &json!({"a": {"$patch": "frob"}}))
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown patch directive \"frob\" at a");
        let err = strategic_merge_patch(&json!({}), &json!({"$patch": 1})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown patch directive 1 at the top level"
        );
        let list_err = strategic_merge_patch(
            &json!({"spec": {"containers": [{"name": "a"}]}}),
            &json!({"spec": {"containers": [{"$patch": "explode", "name": "a"}]}}),
        );
        assert!(matches!(list_err, Err(PatchError::UnknownDirective { .. })));
        let mixed = strategic_merge_patch(
            &json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": [1]}}),
        );
        assert_eq!(
            mixed.unwrap_err().to_string(),
            "cannot merge list metadata.finalizers: its items have different types"
        );
        let nested = strategic_merge_patch(
            &json!({"metadata": {"finalizers": [["a"]]}}),
            &json!({"metadata": {"finalizers": []}}),
        );
        assert!(matches!(nested, Err(PatchError::UnmergeableList { .. })));
        let objects = strategic_merge_patch(
            &json!({"metadata": {"finalizers": []}}),
            &json!({"metadata": {"finalizers": [{}]}}),
        );
        assert!(matches!(objects, Err(PatchError::UnmergeableList { .. })));
    }

    #[test]
    fn type_changes_replace() {
        let out = smp(
            json!({"a": {"b": 1}, "c": [1], "d": "s"}),
            json!({"a": "x", "c": {"k": null, "v": 1}, "d": [1]}),
        );
        assert_eq!(out, json!({"a": "x", "c": {"v": 1}, "d": [1]}));
    }

    #[test]
    fn odd_inputs_never_panic() {
        let originals = [
            json!({}),
            deployment(),
            json!({"spec": {"containers": [1, "a", null, [], {}]}}),
        ];
        let patches = [
            json!({"spec": {"containers": [null, {"$patch": null}, {"name": null}]}}),
            json!({"$setElementOrder/": [], "$deleteFromPrimitiveList/": [1], "$retainKeys": []}),
            json!({"spec": {"$setElementOrder/containers": [null, 1, {"name": "a"}]}}),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a"}, {"name": "b"}]}}}}),
            json!({"spec": {"containers": {"$patch": "delete"}}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null, "$setElementOrder/finalizers": ["x"]}}),
        ];
        for original in &originals {
            for patch in &patches {
                let _ = strategic_merge_patch(original, patch);
            }
        }
    }
}
