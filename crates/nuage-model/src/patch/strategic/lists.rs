//! List merging for strategic merge patch: by merge key, as a set of
//! scalars, or by replacement, following `mergeSlice` in patch.go.

use serde_json::{Map, Value};

use super::{ItemKind, Merger, DIRECTIVE};
use crate::patch::keys::ListStrategy;
use crate::patch::order::{normalize, same_value, Identity};
use crate::patch::{abbreviate, PatchError};

impl Merger<'_> {
    pub(super) fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        field: &str,
    ) -> Result<Vec<Value>, PatchError> {
        self.within(field, |m| match m.strategy() {
            ListStrategy::Replace => m.build_items(patch),
            strategy => m.merge_list_items(original, patch, strategy),
        })
    }

    /// A replacing list: items carrying `$patch` are dropped, objects cleaned.
    fn build_items(&mut self, patch: Vec<Value>) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(patch.len());
        for item in patch {
            match item {
                Value::Object(map) if map.contains_key(DIRECTIVE) => {}
                Value::Object(map) => out.push(Value::Object(self.merge_map(Map::new(), map)?)),
                other => out.push(other),
            }
        }
        Ok(out)
    }

    fn merge_list_items(
        &mut self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        if self.item_kind(&original, &patch)? != ItemKind::Object {
            let server_order = original.clone();
            for item in patch.iter() {
                if !original.iter().any(|o| same_value(o, item)) {
                    original.push(item.clone());
                }
            }
            // Go deduplicates the live items too.
            let mut merged: Vec<Value> = Vec::with_capacity(original.len());
            for item in original {
                if !merged.iter().any(|m| same_value(m, &item)) {
                    merged.push(item);
                }
            }
            return Ok(normalize(merged, &patch, &server_order, Identity::Value));
        }
        let ListStrategy::MergeByKey(key) = strategy else {
            return Err(self.unmergeable("it holds objects but has no merge key"));
        };

        let mut plain = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let Value::Object(map) = item else { continue };
            let Some(directive) = map.get(DIRECTIVE) else {
                plain.push(map);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let id = self.key_of(&map, key)?;
                    original.retain(|o| !o.get(key).is_some_and(|v| same_value(v, id)));
                }
                Some("replace") => replace = true,
                Some("merge") => {}
                _ => {
                    return Err(PatchError::UnknownDirective {
                        directive: abbreviate(directive),
                        path: self.dotted(),
                    })
                }
            }
        }
        if replace {
            return plain
                .into_iter()
                .map(|item| Ok(Value::Object(self.merge_map(Map::new(), item)?)))
                .collect();
        }

        let server_order = original.clone();
        let mut patch_order = Vec::with_capacity(plain.len());
        for item in plain {
            let id = self.key_of(&item, key)?.clone();
            let found = original
                .iter()
                .position(|o| o.get(key).is_some_and(|v| same_value(v, &id)));
            let mut marker = Map::new();
            marker.insert(key.to_string(), id);
            patch_order.push(Value::Object(marker));
            match found {
                Some(i) => {
                    let live = match std::mem::take(&mut original[i]) {
                        Value::Object(live) => live,
                        _ => Map::new(),
                    };
                    original[i] = Value::Object(self.merge_map(live, item)?);
                }
                None => original.push(Value::Object(self.merge_map(Map::new(), item)?)),
            }
        }
        for item in &original {
            if let Value::Object(map) = item {
                self.key_of(map, key)?;
            }
        }
        Ok(normalize(
            original,
            &patch_order,
            &server_order,
            Identity::Key(key),
        ))
    }

    pub(super) fn key_of<'v>(
        &self,
        item: &'v Map<String, Value>,
        key: &'static str,
    ) -> Result<&'v Value, PatchError> {
        item.get(key).ok_or_else(|| PatchError::MissingMergeKey {
            list: self.dotted(),
            key,
            item: abbreviate(&Value::Object(item.clone())),
        })
    }

    /// The common kind of the items of `lists`; lists of lists and mixed
    /// kinds cannot merge.
    pub(super) fn item_kind(
        &self,
        original: &[Value],
        patch: &[Value],
    ) -> Result<ItemKind, PatchError> {
        let mut kind = None;
        for item in original.iter().chain(patch) {
            let this = match item {
                Value::Object(_) => ItemKind::Object,
                Value::Array(_) => return Err(self.unmergeable("lists of lists are not supported")),
                Value::Null => ItemKind::Scalar(0),
                Value::Bool(_) => ItemKind::Scalar(1),
                Value::Number(_) => ItemKind::Scalar(2),
                Value::String(_) => ItemKind::Scalar(3),
            };
            match kind {
                None => kind = Some(this),
                Some(k) if k != this => {
                    return Err(self.unmergeable("its items have different types"))
                }
                Some(_) => {}
            }
        }
        Ok(kind.unwrap_or(ItemKind::Object))
    }
}

#[cfg(test)]
mod tests {
    use crate::patch::strategic::strategic_merge_patch;
    use serde_json::{json, Value};

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
    fn set_image_merges_the_container_by_name() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox:2"}]}}}}),
        );
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1");
        assert_eq!(containers[0]["env"][1]["name"], "Y");
        assert_eq!(containers[1], json!({"name": "b", "image": "busybox:2"}));
    }

    #[test]
    fn apply_deletes_a_container_and_updates_another() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"image": "nginx:2", "name": "a"}, {"$patch": "delete", "name": "b"}]
        }}}});
        let out = smp(deployment(), patch);
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["ports"][0]["containerPort"], 80);
    }

    #[test]
    fn env_var_deletion_and_order() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "$setElementOrder/env": [{"name": "Z"}, {"name": "X"}],
                "env": [{"name": "Z", "value": "3"}, {"$patch": "delete", "name": "Y"}]}]
        }}}});
        let out = smp(deployment(), patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "Z", "value": "3"}, {"name": "X", "value": "1"}])
        );
    }

    #[test]
    fn container_port_change() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
            "$setElementOrder/ports": [{"containerPort": 8080}],
            "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}]}]}}}});
        let out = smp(deployment(), patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 8080}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [
            {"port": 80, "targetPort": 8080, "protocol": "TCP"}, {"port": 443, "targetPort": 8443, "protocol": "TCP"}
        ]}});
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
        );
        assert_eq!(out["spec"]["ports"][0]["port"], 80);
        assert_eq!(
            out["spec"]["ports"][1],
            json!({"port": 443, "targetPort": 9443, "protocol": "TCP"})
        );
    }

    #[test]
    fn other_lists_are_replaced() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "k2"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "k2"}])
        );
        let out = smp(
            json!({"spec": {"args": ["a", "b"]}}),
            json!({"spec": {"args": ["c", {"$patch": "delete"}]}}),
        );
        assert_eq!(out["spec"]["args"], json!(["c"]));
    }

    #[test]
    fn patch_replace_and_delete_in_lists() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "x"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c", "image": "x"}])
        );
        // Deleting an item that is not there is fine.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "zzz"}]}}}});
        assert_eq!(smp(deployment(), patch), deployment());
    }

    #[test]
    fn conditions_and_owner_references_merge() {
        let pod = json!({
            "metadata": {"ownerReferences": [{"uid": "u1", "name": "rs"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}
        });
        let out = smp(
            pod,
            json!({
                "metadata": {"ownerReferences": [{"uid": "u1", "blockOwnerDeletion": true}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            }),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "u1", "name": "rs", "blockOwnerDeletion": true}])
        );
        assert_eq!(
            out["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["status"]["conditions"][1]["type"], "Initialized");
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        assert_eq!(
            smp(obj.clone(), json!({"metadata": {"finalizers": ["b", "c"]}}))["metadata"]
                ["finalizers"],
            json!(["a", "b", "c"])
        );
        let out = smp(
            obj,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
    }
}
