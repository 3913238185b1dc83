//! The strategic-merge-patch directives that act on a whole map:
//! `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`.

use serde_json::{Map, Value};

use super::{Merger, DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, RETAIN_KEYS, SET_ELEMENT_ORDER};
use crate::patch::keys::ListStrategy;
use crate::patch::order::{normalize, same_value, Identity};
use crate::patch::{abbreviate, json_type, PatchError};

impl Merger<'_> {
    pub(super) fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let Some(retain) = patch.remove(RETAIN_KEYS) else {
            return Ok(());
        };
        let Value::Array(retain) = retain else {
            return Err(self.invalid(
                RETAIN_KEYS,
                format!("must be a list, not {}", json_type(&retain)),
            ));
        };
        let kept = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
        for (k, v) in patch.iter() {
            let directive =
                k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER);
            if !v.is_null() && !directive && !kept(k) {
                return Err(self.invalid(
                    RETAIN_KEYS,
                    format!("the patch sets {k:?}, which the list does not retain"),
                ));
            }
        }
        original.retain(|k, _| kept(k));
        Ok(())
    }

    /// Merges the list named by a `$setElementOrder/<list>` directive and
    /// orders it: listed items in the directive's order, others in live order.
    pub(super) fn set_element_order(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        directive: &str,
        order: Value,
    ) -> Result<(), PatchError> {
        let field = &directive[SET_ELEMENT_ORDER.len()..];
        let Value::Array(order) = order else {
            return Err(self.invalid(
                directive,
                format!("must be a list, not {}", json_type(&order)),
            ));
        };
        let live = match original.get(field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => {
                return Err(self.invalid(
                    directive,
                    format!("{field} is {}, not a list", json_type(other)),
                ))
            }
        };
        let patched = match patch.remove(field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => {
                return Err(self.invalid(
                    directive,
                    format!("the patch's {field} is {}, not a list", json_type(&other)),
                ))
            }
        };
        let identity = self.within(field, |m| match m.strategy() {
            ListStrategy::MergeByKey(key) => Some(Identity::Key(key)),
            ListStrategy::MergePrimitives => Some(Identity::Value),
            ListStrategy::Replace => None,
        });
        if let Some(patched) = &patched {
            self.within(field, |m| {
                m.check_order(patched, &order, identity, directive)
            })?;
        }
        let live_order = match (&live, &patched, identity) {
            (Some(live), Some(patched), Some(Identity::Key(key))) => {
                aliased_live_order(live, patched, key)
            }
            _ => live.clone().unwrap_or_default(),
        };
        let merged = match (live, patched) {
            (None, None) => return Ok(()),
            (Some(live), None) => live,
            (None, Some(patched)) => self.merge_list(Vec::new(), patched, field)?,
            (Some(live), Some(patched)) => self.merge_list(live, patched, field)?,
        };
        let merged = match identity {
            Some(identity) => {
                self.within(field, |m| m.item_kind(&live_order, &merged))?;
                for item in merged.iter().chain(&order) {
                    if identity.of(item).is_none() {
                        return Err(self.within(field, |m| m.missing_identity(identity, item)));
                    }
                }
                normalize(merged, &order, &live_order, identity)
            }
            None => merged,
        };
        match original.get_mut(field) {
            Some(slot) => *slot = Value::Array(merged),
            None => {
                original.insert(field.to_string(), Value::Array(merged));
            }
        }
        Ok(())
    }

    fn missing_identity(&self, identity: Identity, item: &Value) -> PatchError {
        match (identity, item) {
            (Identity::Key(key), Value::Object(map)) => match self.key_of(map, key) {
                Err(err) => err,
                Ok(_) => self.unmergeable("its items have different types"),
            },
            _ => self.unmergeable("its items have different types"),
        }
    }

    /// Checks that the patch list names its items in the same relative order
    /// as the `$setElementOrder` list, and names no item the latter omits.
    fn check_order(
        &self,
        patched: &[Value],
        order: &[Value],
        identity: Option<Identity>,
        directive: &str,
    ) -> Result<(), PatchError> {
        let listed: Vec<&Value> = patched
            .iter()
            .filter(|item| item.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
            .collect();
        let (mut p, mut o) = (0, 0);
        while p < listed.len() && o < order.len() {
            if listed[p].get(DIRECTIVE).is_some() {
                p += 1;
                continue;
            }
            let equal = match identity {
                Some(Identity::Key(key)) => {
                    let (Some(a), Some(b)) = (listed[p].get(key), order[o].get(key)) else {
                        return Err(self.missing_identity(Identity::Key(key), listed[p]));
                    };
                    same_value(a, b)
                }
                _ => same_value(listed[p], &order[o]),
            };
            if equal {
                p += 1;
            }
            o += 1;
        }
        if p < listed.len() {
            return Err(self.invalid(
                directive,
                format!(
                    "the order of the patch list does not match it at {}",
                    abbreviate(listed[p])
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn delete_from_primitive_list(
        &self,
        original: &mut Map<String, Value>,
        field: &str,
        delete: Value,
    ) -> Result<(), PatchError> {
        let (Some(Value::Array(list)), Value::Array(delete)) = (original.get_mut(field), delete)
        else {
            // Nothing to delete from, or nothing to delete.
            return Ok(());
        };
        let kinds_ok = list
            .iter()
            .chain(&delete)
            .all(|v| !v.is_object() && !v.is_array());
        if !kinds_ok {
            return Err(self.invalid(
                &format!("{DELETE_FROM_PRIMITIVE_LIST}{field}"),
                "lists of objects or lists cannot use it".to_string(),
            ));
        }
        list.retain(|item| !delete.iter().any(|d| same_value(d, item)));
        Ok(())
    }
}

/// The live list as Go's `mergePatchIntoOriginal` sees it when it orders a
/// `$setElementOrder` list. Go deletes items by shifting the live slice's
/// backing array in place and appends new items into the freed tail, so the
/// "live order" it sorts server-only items by is the live list after
/// deletions, with new items in the vacated slots. Reproducing this keeps
/// nuage's order identical to the API server's.
fn aliased_live_order(live: &[Value], patch: &[Value], key: &'static str) -> Vec<Value> {
    let same_key = |item: &Value, id: &Value| item.get(key).is_some_and(|v| same_value(v, id));
    let mut backing = live.to_vec();
    let mut len = backing.len();
    for item in patch {
        if item.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
            continue;
        }
        let Some(id) = item.get(key) else { continue };
        while let Some(k) = backing[..len].iter().position(|o| same_key(o, id)) {
            for i in k..len - 1 {
                backing[i] = backing[i + 1].clone();
            }
            len -= 1;
        }
    }
    let mut current: Vec<Value> = backing[..len].to_vec();
    for item in patch {
        if item.get(DIRECTIVE).is_some() {
            continue;
        }
        let Some(id) = item.get(key) else { continue };
        if !current.iter().any(|o| same_key(o, id)) {
            if let Some(slot) = backing.get_mut(current.len()) {
                *slot = item.clone();
            }
            current.push(item.clone());
        }
    }
    backing
}

#[cfg(test)]
mod tests {
    use crate::patch::strategic::strategic_merge_patch;
    use crate::patch::PatchError;
    use serde_json::{json, Value};

    fn smp(original: Value, patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(&original, &patch)
    }

    #[test]
    fn retain_keys_switches_deployment_strategy() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
        assert_eq!(
            smp(live.clone(), patch).unwrap(),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}});
        assert_eq!(
            smp(live.clone(), bad).unwrap_err().to_string(),
            "invalid $retainKeys at spec.strategy: the patch sets \"rollingUpdate\", which the list does not retain"
        );
        let bad = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert!(matches!(
            smp(live, bad),
            Err(PatchError::InvalidDirective { .. })
        ));
    }

    #[test]
    fn retain_keys_on_volumes() {
        let live = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let patch = json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}});
        assert_eq!(
            smp(live, patch).unwrap(),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}})
        );
    }

    #[test]
    fn set_element_order_reorders_with_server_only_items() {
        let live =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "sidecar"}, {"name": "b"}]}});
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
        let out = smp(live, patch).unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // "sidecar" came before "b" in the live list, so it stays before it.
        assert_eq!(names, ["sidecar", "b", "a"]);
    }

    #[test]
    fn set_element_order_with_deletion_matches_go() {
        // Go orders server-only items by the live list as rewritten in place
        // by the deletion ("4" takes the place of "2"): 3 ends up after 4.
        let live = json!({"l": {"containers": [{"name": 1}, {"name": 2, "o": "b"}, {"name": 4, "o": "c"}]}});
        let patch = json!({"l": {"$setElementOrder/containers": [{"name": 2}, {"name": 3}],
            "containers": [{"name": 3}, {"$patch": "delete", "name": 1}]}});
        assert_eq!(
            smp(live, patch).unwrap()["l"]["containers"],
            json!([{"name": 2, "o": "b"}, {"name": 4, "o": "c"}, {"name": 3}])
        );
    }

    #[test]
    fn set_element_order_for_primitives_and_new_lists() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}});
        assert_eq!(
            smp(live, patch).unwrap()["metadata"]["finalizers"],
            json!(["c", "b", "a"])
        );
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "x"}], "containers": [{"name": "x", "image": "i"}]}});
        assert_eq!(
            smp(json!({}), patch).unwrap(),
            json!({"spec": {"containers": [{"name": "x", "image": "i"}]}})
        );
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "x"}]}});
        assert_eq!(smp(json!({}), patch).unwrap(), json!({"spec": {}}));
    }

    #[test]
    fn set_element_order_errors() {
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let mismatch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]}});
        assert!(matches!(
            smp(live.clone(), mismatch),
            Err(PatchError::InvalidDirective { .. })
        ));
        let not_listed = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "c"}]}});
        assert!(matches!(
            smp(live.clone(), not_listed),
            Err(PatchError::InvalidDirective { .. })
        ));
        let not_a_list = json!({"spec": {"$setElementOrder/containers": {"name": "a"}}});
        assert!(matches!(
            smp(live.clone(), not_a_list),
            Err(PatchError::InvalidDirective { .. })
        ));
        let keyless = json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}});
        assert!(matches!(
            smp(live.clone(), keyless),
            Err(PatchError::MissingMergeKey { .. })
        ));
        let patch_not_list =
            json!({"spec": {"$setElementOrder/containers": [], "containers": null}});
        assert!(matches!(
            smp(live, patch_not_list),
            Err(PatchError::InvalidDirective { .. })
        ));
    }

    #[test]
    fn delete_from_primitive_list() {
        let live =
            json!({"metadata": {"finalizers": ["a", "b", "a"]}, "spec": {"args": ["x", "y"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zzz"]},
            "spec": {"$deleteFromPrimitiveList/args": ["x"], "$deleteFromPrimitiveList/missing": ["q"]}});
        assert_eq!(
            smp(live, patch).unwrap(),
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"args": ["y"]}})
        );
        let objects = json!({"spec": {"containers": [{"name": "a"}]}});
        let patch = json!({"spec": {"$deleteFromPrimitiveList/containers": [{"name": "a"}]}});
        assert!(matches!(
            smp(objects, patch),
            Err(PatchError::InvalidDirective { .. })
        ));
    }
}
