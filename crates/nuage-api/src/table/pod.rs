//! The cells of a pod's row: a port of `printPod`, the most involved
//! printer (init containers, sidecars, restarts, the status reason).

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::cells::{age, int, items, or_none, text, timestamp};
use super::human_duration;

/// `printPod`.
pub(super) fn cells(pod: &Value, now: OffsetDateTime) -> Vec<Value> {
    let init_specs = items(pod, "/spec/initContainers");
    // Sidecars: init containers that keep running.
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = items(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<OffsetDateTime> = None;
    let mut sidecar_last_restart: Option<OffsetDateTime> = None;

    let phase = text(pod, "/status/phase");
    // A pod always has a phase in Kubernetes (Pending from creation on);
    // one nuage has not yet touched may lack its status.
    let mut reason = if phase.is_empty() { "Pending" } else { phase }.to_string();
    if !text(pod, "/status/reason").is_empty() {
        reason = text(pod, "/status/reason").to_string();
    }
    for condition in items(pod, "/status/conditions") {
        if text(condition, "/type") == "PodScheduled"
            && text(condition, "/reason") == "SchedulingGated"
        {
            reason = "SchedulingGated".into();
        }
    }

    let mut initializing = false;
    for (i, status) in items(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int(status, "/restartCount");
        restarts += count;
        let finished = timestamp(status.pointer("/lastState/terminated/finishedAt"));
        last_restart = last_restart.max(finished);
        let sidecar = restartable(text(status, "/name"));
        if sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = sidecar_last_restart.max(finished);
        }
        let terminated = status
            .pointer("/state/terminated")
            .filter(|t| t.is_object());
        let waiting = status.pointer("/state/waiting").filter(|w| w.is_object());
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && status.get("started") == Some(&Value::Bool(true)) {
            if status.get("ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match text(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if let Some(w) =
            waiting.filter(|w| !matches!(text(w, "/reason"), "" | "PodInitializing"))
        {
            format!("Init:{}", text(w, "/reason"))
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || has_condition(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for status in items(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = last_restart.max(timestamp(
                status.pointer("/lastState/terminated/finishedAt"),
            ));
            let waiting = status.pointer("/state/waiting").filter(|w| w.is_object());
            let terminated = status
                .pointer("/state/terminated")
                .filter(|t| t.is_object());
            if let Some(w) = waiting.filter(|w| !text(w, "/reason").is_empty()) {
                reason = text(w, "/reason").to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if status.get("ready") == Some(&Value::Bool(true))
                && status
                    .pointer("/state/running")
                    .is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        // Some container still runs: the pod is not "Completed" yet.
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let pod_ip = items(pod, "/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    let gates = items(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, "/conditionType");
                items(pod, "/status/conditions")
                    .iter()
                    .find(|c| text(c, "/type") == wanted)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(text(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(pod, now)),
        json!(or_none(pod_ip)),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

/// Whether the pod's condition `kind` is `True`.
fn has_condition(pod: &Value, kind: &str) -> bool {
    items(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}
