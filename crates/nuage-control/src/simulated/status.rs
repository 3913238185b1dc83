//! The status a simulated node reports for a pod: Running, every container
//! started and ready, init containers completed — what the kubelet writes
//! once a pod is up, without anything running.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// The condition types a running pod has, all `True`.
const CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Whether the pod already shows what [`running_patch`] would write (so
/// nothing needs doing).
pub fn is_running(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        && status.container_statuses.as_ref().is_some_and(|cs| {
            cs.len() == containers
                && cs
                    .iter()
                    .all(|c| c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// Whether the pod uses the node's network (its address is the node's).
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The merge patch for `pods/status` that makes `pod` Running at `pod_ip`
/// on a node at `host_ip`; `now` is an RFC 3339 time. Times already set
/// (start, transitions) are kept.
pub fn running_patch(pod: &Pod, pod_ip: &str, host_ip: &str, now: &str) -> Value {
    let status = pod.status.as_ref();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| now.to_string());
    let conditions: Vec<Value> = CONDITIONS
        .iter()
        .map(|kind| {
            let since = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == *kind && c.status == "True"))
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.to_string());
            json!({ "type": kind, "status": "True", "lastTransitionTime": since })
        })
        .collect();
    let spec = pod.spec.as_ref();
    let image_id = |image: &str| format!("sim://{image}");
    let container_id = |name: &str| format!("sim://{uid}/{name}");
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            json!({
                "name": c.name,
                "image": image,
                "imageID": image_id(&image),
                "containerID": container_id(&c.name),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": { "running": { "startedAt": started } },
            })
        })
        .collect();
    let mut patch = json!({
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{ "ip": host_ip }],
            "podIP": pod_ip,
            "podIPs": [{ "ip": pod_ip }],
            "startTime": started,
            "containerStatuses": containers,
        }
    });
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    if !inits.is_empty() {
        let inits: Vec<Value> = inits
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                json!({
                    "name": c.name,
                    "image": image,
                    "imageID": image_id(&image),
                    "containerID": container_id(&c.name),
                    "ready": true,
                    "started": false,
                    "restartCount": 0,
                    "state": { "terminated": {
                        "exitCode": 0, "reason": "Completed",
                        "startedAt": started, "finishedAt": started,
                    } },
                })
            })
            .collect();
        patch["status"]["initContainerStatuses"] = Value::Array(inits);
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "default", "uid": "u-1" },
            "spec": {
                "nodeName": "sim-0",
                "initContainers": [{ "name": "init", "image": "busybox" }],
                "containers": [{ "name": "a", "image": "nginx:1" }, { "name": "b", "image": "redis" }],
            },
            "status": {
                "phase": "Pending",
                "conditions": [{ "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" }],
            },
        }))
        .unwrap()
    }

    #[test]
    fn the_patch_makes_every_container_running_and_keeps_transition_times() {
        let p = pod();
        assert!(!is_running(&p));
        let patch = running_patch(&p, "10.128.0.2", "127.128.0.1", "2026-02-02T00:00:00Z");
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.128.0.2");
        assert_eq!(s["hostIPs"][0]["ip"], "127.128.0.1");
        assert_eq!(s["containerStatuses"].as_array().unwrap().len(), 2);
        assert_eq!(s["containerStatuses"][1]["containerID"], "sim://u-1/b");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let scheduled = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(scheduled["lastTransitionTime"], "2026-01-01T00:00:00Z");

        // Applied, the pod counts as running.
        let mut v = serde_json::to_value(&p).unwrap();
        v["status"] = patch["status"].clone();
        let applied: Pod = serde_json::from_value(v).unwrap();
        assert!(is_running(&applied));
    }
}
