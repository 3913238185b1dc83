//! What ties a Deployment to its ReplicaSets: the pod template hash that
//! names them (`<deployment>-<hash>`), template equality ignoring that hash
//! (how the current ReplicaSet is found, and how `rollout undo` lands on an
//! old one), and the annotations kubectl reads (`revision`, for `rollout
//! history|undo`; `desired-replicas` and `max-replicas`, for proportional
//! scaling). Pure: no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label (on the ReplicaSet, its selector and its pods) that holds the
/// template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet, copied to its Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that became current again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus max surge when the ReplicaSet was last
/// scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation by which old clients asked for a rollback.
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's client-side apply record.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The longest `revision-history` annotation (Kubernetes' limit).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are not copied to its ReplicaSets: they
/// describe the Deployment or one ReplicaSet, not the template.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// The pod template hash: FNV-32a over the template (and the collision
/// count, which changes the name when two templates collide), encoded as
/// Kubernetes does (`rand.SafeEncodeString` of the decimal value: no
/// vowels, so no words).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serialising the typed template is deterministic: struct fields in
    // declaration order, maps are BTreeMaps.
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |b: u8| {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    };
    bytes.iter().for_each(|b| feed(*b));
    if let Some(c) = collision_count {
        (c as u32).to_le_bytes().iter().for_each(|b| feed(*b));
    }
    safe_encode(&hash.to_string())
}

fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether two templates are the same but for the hash label. Absent,
/// null and empty fields are equal (the API server may store either).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    comparable(a) == comparable(b)
}

fn comparable(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    prune(&mut v);
    v
}

/// Removes nulls, empty objects and empty arrays, recursively.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(map) => {
            map.retain(|_, child| prune(child));
            !map.is_empty()
        }
        Value::Array(items) => {
            items.iter_mut().for_each(|i| {
                prune(i);
            });
            !items.is_empty()
        }
        _ => true,
    }
}

/// A ReplicaSet's revision (0 when absent or not a number).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among `rss`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// An integer annotation of a ReplicaSet (`desired-replicas`,
/// `max-replicas`).
pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key).and_then(|v| v.parse().ok())
}

/// Copies the Deployment's annotations (but those about one object) to the
/// ReplicaSet; whether anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let Some(from) = &d.metadata.annotations else {
        return false;
    };
    let to = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in from {
        if skip_copy(k) || to.get(k) == Some(v) {
            continue;
        }
        to.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Whether the ReplicaSet's `desired-replicas`/`max-replicas` differ from
/// these.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    int_annotation(rs, DESIRED_REPLICAS) != Some(desired)
        || int_annotation(rs, MAX_REPLICAS) != Some(max)
}

/// Sets `desired-replicas` and `max-replicas`; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    if !replicas_annotations_need_update(rs, desired, max) {
        return false;
    }
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    a.insert(DESIRED_REPLICAS.into(), desired.to_string());
    a.insert(MAX_REPLICAS.into(), max.to_string());
    true
}

/// Brings the annotations of the Deployment's current ReplicaSet up to
/// date (`SetNewReplicaSetAnnotations`): the Deployment's own, a revision
/// raised to `new_revision` if lower (keeping the one it had in
/// `revision-history`: it was rolled back to), and, for a ReplicaSet about
/// to be created (`exists` false), the replicas annotations. Whether
/// anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_replicas: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(r)) => r,
        // Not ours to fix: leave a foreign value alone.
        Some(Err(_)) => return changed,
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            append_revision_history(annotations, &old);
        }
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if !exists && set_replicas_annotations(rs, desired, max_replicas) {
        changed = true;
    }
    changed
}

/// Appends `old` to `revision-history`, dropping the oldest entries past
/// the length limit.
fn append_revision_history(annotations: &mut BTreeMap<String, String>, old: &str) {
    let history = annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    let mut entries: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
    entries.push(old);
    while entries.join(",").len() > MAX_REVISION_HISTORY_CHARS && entries.len() > 1 {
        entries.remove(0);
    }
    annotations.insert(REVISION_HISTORY.into(), entries.join(","));
}

/// Sets the Deployment's `revision` annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.into(), revision.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn deployment(annotations: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("a")}
        }))
        .unwrap()
    }

    fn rs(annotations: Value) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "web-x", "annotations": annotations}}))
            .unwrap()
    }

    #[test]
    fn the_hash_is_stable_safe_and_depends_on_template_and_collisions() {
        let a = pod_template_hash(&template("a"), None);
        assert_eq!(a, pod_template_hash(&template("a"), None));
        assert_ne!(a, pod_template_hash(&template("b"), None));
        assert_ne!(a, pod_template_hash(&template("a"), Some(1)));
        assert!(!a.is_empty() && a.len() <= 10);
        assert!(a
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let mut labelled = template("a");
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&labelled, &template("a")));
        assert!(!equal_ignore_hash(&labelled, &template("b")));
        let mut with_empty = template("a");
        with_empty.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignore_hash(&with_empty, &template("a")));
    }

    #[test]
    fn a_new_replica_set_gets_the_revision_and_replicas_annotations() {
        let d = deployment(json!({"kubernetes.io/change-cause": "v2", REVISION: "4"}));
        let mut r = rs(json!({}));
        assert!(set_new_rs_annotations(&d, &mut r, 5, false, 4));
        let a = r.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert!(!a.contains_key(REVISION_HISTORY));
        // Nothing more to do the second time.
        assert!(!set_new_rs_annotations(&d, &mut r, 5, true, 4));
    }

    #[test]
    fn an_old_replica_set_made_current_again_gets_the_next_revision_and_keeps_its_history() {
        let d = deployment(json!({}));
        let mut r = rs(json!({REVISION: "1"}));
        assert!(set_new_rs_annotations(&d, &mut r, 3, true, 4));
        assert_eq!(revision(&r), 3);
        assert_eq!(
            r.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY],
            "1"
        );
        assert!(set_new_rs_annotations(&d, &mut r, 5, true, 4));
        assert_eq!(
            r.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY],
            "1,3"
        );
        // Existing replica sets keep their replicas annotations.
        assert!(int_annotation(&r, DESIRED_REPLICAS).is_none());
        // A lower revision never lowers it.
        assert!(!set_new_rs_annotations(&d, &mut r, 2, true, 4));
        assert_eq!(revision(&r), 5);
    }

    #[test]
    fn max_revision_ignores_missing_and_bad_values() {
        let rss = [
            rs(json!({REVISION: "2"})),
            rs(json!({})),
            rs(json!({REVISION: "x"})),
        ];
        assert_eq!(max_revision(&rss), 2);
        assert_eq!(max_revision(&[]), 0);
    }

    #[test]
    fn deployment_revision_is_set_once() {
        let mut d = deployment(json!({}));
        assert!(set_deployment_revision(&mut d, "2"));
        assert!(!set_deployment_revision(&mut d, "2"));
    }
}
