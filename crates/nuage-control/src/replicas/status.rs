//! The status an owner reports: counts over the pods it owns, the
//! generation they reflect, and `ReplicaFailure` while creating or deleting
//! pods fails. Written through the `/status` subresource only when it
//! changed.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use nuage_client::Client;
use serde_json::json;

use super::owner::{Condition, Kind, Owner, Status};
use super::pods;

/// The condition type set while pods cannot be created or deleted.
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Why the last attempt to create or delete pods failed.
#[derive(Debug, Clone)]
pub struct ManageError {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    /// The API's message.
    pub message: String,
}

/// The status `owner` should have, owning `owned` (active pods) at `now`.
pub fn calculate(
    owner: &Owner,
    owned: &[Arc<Pod>],
    failure: Option<&ManageError>,
    now: Timestamp,
) -> Status {
    let template = owner.template_labels();
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready = owned.iter().filter(|p| pods::is_ready(p)).count();
    let available = owned
        .iter()
        .filter(|p| pods::is_available(p, owner.min_ready_seconds, now))
        .count();
    let mut conditions = owner.status.conditions.clone();
    let existing = conditions.iter().position(|c| c.type_ == REPLICA_FAILURE);
    match (failure, existing) {
        // As Kubernetes: the first failure's message stays until a
        // reconcile succeeds.
        (Some(f), None) => conditions.push(Condition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: f.reason.into(),
            message: f.message.clone(),
            last_transition_time: Some(Time(now)),
        }),
        (None, Some(i)) => {
            conditions.remove(i);
        }
        _ => {}
    }
    Status {
        replicas: count(owned.len()),
        fully_labeled: count(fully_labeled),
        ready: count(ready),
        available: count(available),
        observed_generation: owner.generation,
        conditions,
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes `status` unless it is what `owner` already reports.
pub async fn write(
    client: &Client,
    owner: &Owner,
    status: &Status,
) -> Result<(), nuage_client::Error> {
    if *status == owner.status {
        return Ok(());
    }
    let conditions: Vec<serde_json::Value> = status
        .conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.type_,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": c.last_transition_time,
            })
        })
        .collect();
    let patch = json!({
        "status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": status.fully_labeled,
            "readyReplicas": status.ready,
            "availableReplicas": status.available,
            "observedGeneration": status.observed_generation,
            // Merge patch: null removes the field.
            "conditions": if conditions.is_empty() { serde_json::Value::Null } else { conditions.into() },
        }
    });
    let ns = Some(owner.namespace.as_str());
    match owner.kind {
        Kind::ReplicationController => client
            .merge_patch::<ReplicationController>(ns, &owner.name, "/status", &patch)
            .await
            .map(drop),
        Kind::ReplicaSet => client
            .merge_patch::<ReplicaSet>(ns, &owner.name, "/status", &patch)
            .await
            .map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(min_ready: i32) -> Owner {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u", "generation": 3},
            "spec": {
                "replicas": 3,
                "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": []}}
            }
        }))
        .unwrap();
        Owner::from_rs(&rs).unwrap()
    }

    fn pod(labels: serde_json::Value, ready_since: Option<&str>) -> Arc<Pod> {
        let conditions = match ready_since {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([]),
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "labels": labels},
                "status": {"phase": "Running", "conditions": conditions}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn counts_follow_labels_readiness_and_min_ready_seconds() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let owned = vec![
            pod(
                json!({"app": "web", "tier": "front"}),
                Some("2024-01-01T00:00:00Z"),
            ),
            pod(json!({"app": "web"}), Some("2024-01-01T00:00:55Z")),
            pod(json!({"app": "web", "tier": "front"}), None),
        ];
        let s = calculate(&owner(10), &owned, None, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled,
                s.ready,
                s.available,
                s.observed_generation
            ),
            (3, 2, 2, 1, 3)
        );
        assert!(s.conditions.is_empty());
    }

    #[test]
    fn replica_failure_is_set_then_cleared() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let mut o = owner(0);
        let err = ManageError {
            reason: "FailedCreate",
            message: "pods \"web-x\" is forbidden: quota".into(),
        };
        let s = calculate(&o, &[], Some(&err), now);
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].reason, "FailedCreate");
        assert_eq!(s.conditions[0].message, err.message);
        o.status = s;
        assert!(calculate(&o, &[], None, now).conditions.is_empty());
    }
}
