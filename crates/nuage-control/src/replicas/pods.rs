//! What the controller asks of a pod: is it active, ready, available, who
//! controls it, and which pods are the least useful (Kubernetes'
//! `ActivePods` ordering, used to choose whom to delete first).

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Whether a pod counts: not being deleted and not finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase(pod), "Succeeded" | "Failed")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The pod's controlling ownerReference, if any.
pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// When the pod became Ready, if it is Ready.
fn ready_since(pod: &Pod) -> Option<Option<&Time>> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref())
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When a Ready pod becomes available (Ready for `min_ready_seconds`):
/// `None` if it is not Ready; a time at or before `now` if it already is.
pub fn available_at(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    if min_ready_seconds <= 0 {
        return Some(now);
    }
    // Ready without a transition time: as Kubernetes, not yet available.
    let since = since?.0;
    since
        .checked_add(SignedDuration::from_secs(min_ready_seconds.into()))
        .ok()
}

/// Whether the pod has been Ready for `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    available_at(pod, min_ready_seconds, now).is_some_and(|t| t <= now)
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Later first, a missing time before any (`afterOrZero`).
fn later_or_missing_first(a: Option<&Time>, b: Option<&Time>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.0.cmp(&a.0),
    }
}

/// Least useful first: unassigned < assigned, Pending < Unknown < Running,
/// not ready < ready, ready for less time < more, more restarts < fewer,
/// newer < older.
pub fn least_useful_first(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => later_or_missing_first(x, y),
            _ => Ordering::Equal,
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            later_or_missing_first(
                a.metadata.creation_timestamp.as_ref(),
                b.metadata.creation_timestamp.as_ref(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn names(mut pods: Vec<Pod>) -> Vec<String> {
        pods.sort_by(least_useful_first);
        pods.into_iter()
            .map(|p| p.metadata.name.unwrap_or_default())
            .collect()
    }

    fn ready(name: &str, since: &str, restarts: i32, created: &str) -> Pod {
        pod(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": restarts}],
            }
        }))
    }

    #[test]
    fn the_least_useful_pods_come_first() {
        let unassigned = pod(
            json!({"metadata": {"name": "unassigned"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
        );
        let pending = pod(
            json!({"metadata": {"name": "pending"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Pending"}}),
        );
        let unknown = pod(
            json!({"metadata": {"name": "unknown"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Unknown"}}),
        );
        let running = pod(
            json!({"metadata": {"name": "running"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Running"}}),
        );
        let recent = ready("recent", "2024-01-01T00:10:00Z", 0, "2024-01-01T00:00:00Z");
        let crashy = ready("crashy", "2024-01-01T00:05:00Z", 3, "2024-01-01T00:00:00Z");
        let newer = ready("newer", "2024-01-01T00:05:00Z", 0, "2024-01-01T00:01:00Z");
        let older = ready("older", "2024-01-01T00:05:00Z", 0, "2024-01-01T00:00:00Z");
        assert_eq!(
            names(vec![
                older, newer, crashy, recent, running, unknown, pending, unassigned
            ]),
            [
                "unassigned",
                "pending",
                "unknown",
                "running",
                "recent",
                "crashy",
                "newer",
                "older"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = ready("p", "2024-01-01T00:00:00Z", 0, "2024-01-01T00:00:00Z");
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, t("2024-01-01T00:00:01Z")));
        assert!(!is_available(&p, 10, t("2024-01-01T00:00:05Z")));
        assert!(is_available(&p, 10, t("2024-01-01T00:00:10Z")));
        let terminal = pod(json!({"metadata": {"name": "t"}, "status": {"phase": "Failed"}}));
        assert!(!is_active(&terminal));
    }
}
