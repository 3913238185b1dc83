//! Server-side apply (`application/apply-patch+yaml`), without field
//! ownership.
//!
//! The applied configuration is merged onto the live object: maps merge
//! recursively, lists with a merge key (the strategic-merge-patch keys of
//! [`list_strategy`]) merge item by item, `metadata.finalizers` merges as a
//! set, and every other list is replaced. The applied order wins for the
//! items it names; live-only items keep their place.
//!
//! **Limitation:** Kubernetes records in `metadata.managedFields` which
//! manager set which field, and removes a field when the only manager that
//! set it applies a configuration without it. nuage keeps no field
//! ownership, so a field dropped from an applied configuration stays on the
//! object; remove it with an explicit `null` (which deletes the key here) or
//! another patch. Conflicts between managers are never reported, as if every
//! apply were `--force-conflicts`. Directives such as `$patch` mean nothing
//! to apply and are kept as ordinary fields, for validation to reject.

use serde_json::{Map, Value};

use super::keys::{list_strategy, ListStrategy};
use super::order::{normalize, same_value, Identity};
use super::{json_type, PatchError};

/// Merges an applied configuration onto the live object, or builds the
/// object from it when there is none yet; `null` values delete keys.
pub fn apply(original: Option<&Value>, applied: &Value) -> Result<Value, PatchError> {
    let applied = applied.as_object().ok_or(PatchError::NotAnObject {
        what: "applied configuration",
        found: json_type(applied),
    })?;
    let live = match original {
        None => Map::new(),
        Some(Value::Object(live)) => live.clone(),
        Some(other) => {
            return Err(PatchError::NotAnObject {
                what: "object",
                found: json_type(other),
            })
        }
    };
    let mut path = Vec::new();
    Ok(Value::Object(merge_map(live, applied, &mut path)))
}

fn merge_map(
    mut live: Map<String, Value>,
    applied: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Map<String, Value> {
    for (key, value) in applied {
        if value.is_null() {
            live.remove(key);
            continue;
        }
        path.push(key.clone());
        match live.get_mut(key) {
            Some(slot) => {
                let old = std::mem::take(slot);
                *slot = merge_value(old, value, path);
            }
            None => {
                live.insert(key.clone(), merge_value(Value::Null, value, path));
            }
        }
        path.pop();
    }
    live
}

/// The merge of one applied value onto one live value at `path`.
fn merge_value(live: Value, applied: &Value, path: &mut Vec<String>) -> Value {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            Value::Object(merge_map(live, applied, path))
        }
        (_, Value::Object(applied)) => Value::Object(merge_map(Map::new(), applied, path)),
        (Value::Array(live), Value::Array(applied)) => {
            Value::Array(merge_list(live, applied, path))
        }
        (_, Value::Array(applied)) => Value::Array(merge_list(Vec::new(), applied, path)),
        (_, scalar) => scalar.clone(),
    }
}

fn merge_list(live: Vec<Value>, applied: &[Value], path: &mut Vec<String>) -> Vec<Value> {
    let fields: Vec<&str> = path.iter().map(String::as_str).collect();
    match list_strategy(&fields) {
        ListStrategy::MergeByKey(key) if applied.iter().all(|i| i.get(key).is_some()) => {
            merge_keyed(live, applied, key, path)
        }
        ListStrategy::MergePrimitives
            if applied.iter().all(|i| !i.is_object() && !i.is_array()) =>
        {
            let server_order = live.clone();
            let mut merged = live;
            for item in applied {
                if !item.is_null() && !merged.iter().any(|m| same_value(m, item)) {
                    merged.push(item.clone());
                }
            }
            normalize(merged, applied, &server_order, Identity::Value)
        }
        // Replaced, or not mergeable as declared (an item lacks its key).
        _ => applied
            .iter()
            .map(|item| merge_value(Value::Null, item, path))
            .collect(),
    }
}

fn merge_keyed(
    live: Vec<Value>,
    applied: &[Value],
    key: &'static str,
    path: &mut Vec<String>,
) -> Vec<Value> {
    let server_order = live.clone();
    let mut merged = live;
    for item in applied {
        let id = item.get(key);
        let found = merged
            .iter()
            .position(|m| m.get(key).zip(id).is_some_and(|(a, b)| same_value(a, b)));
        match found {
            Some(i) => {
                let old = std::mem::take(&mut merged[i]);
                merged[i] = merge_value(old, item, path);
            }
            None => merged.push(merge_value(Value::Null, item, path)),
        }
    }
    normalize(merged, applied, &server_order, Identity::Key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 80}]}
            ]}}}
        })
    }

    #[test]
    fn creates_from_nothing_without_nulls() {
        let applied = json!({"metadata": {"name": "a", "annotations": null}, "data": {"k": "v"}});
        assert_eq!(
            apply(None, &applied).unwrap(),
            json!({"metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn merges_containers_by_name_and_keeps_live_fields() {
        let mut live = deployment("nginx:1");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["status"] = json!({"replicas": 2});
        let applied = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2"}, {"name": "sidecar", "image": "envoy"}
        ]}}}});
        let out = apply(Some(&live), &applied).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["status"], json!({"replicas": 2}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn dropped_fields_stay_because_ownership_is_not_tracked() {
        let live = deployment("nginx:1");
        let applied = json!({"metadata": {"name": "web"}});
        assert_eq!(apply(Some(&live), &applied).unwrap(), live);
        let out = apply(Some(&live), &json!({"metadata": {"labels": null}})).unwrap();
        assert_eq!(out["metadata"], json!({"name": "web"}));
    }

    #[test]
    fn replaces_atomic_lists_and_unions_finalizers() {
        let live = json!({"metadata": {"finalizers": ["a"]}, "spec": {"tolerations": [{"key": "x"}], "ports": [
            {"port": 80, "name": "http", "targetPort": 8080}
        ]}});
        let applied = json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"tolerations": [{"key": "y"}], "ports": [
            {"port": 80, "name": "http"}, {"port": 443, "name": "https"}
        ]}});
        let out = apply(Some(&live), &applied).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}])
        );
    }

    #[test]
    fn items_without_key_replace_the_list() {
        let live = json!({"spec": {"containers": [{"name": "a"}]}});
        let out = apply(
            Some(&live),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"image": "x"}]));
    }

    #[test]
    fn type_changes_and_errors() {
        let live = json!({"a": "x", "b": {"c": 1}});
        assert_eq!(
            apply(Some(&live), &json!({"a": {"n": 1}, "b": "s"})).unwrap(),
            json!({"a": {"n": 1}, "b": "s"})
        );
        assert!(matches!(
            apply(None, &json!([])),
            Err(PatchError::NotAnObject { .. })
        ));
        assert!(matches!(
            apply(Some(&json!("s")), &json!({})),
            Err(PatchError::NotAnObject { .. })
        ));
    }
}
