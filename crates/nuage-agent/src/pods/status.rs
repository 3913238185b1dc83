//! A pod's status as the kubelet reports it: phase, conditions, addresses
//! and one status per container, computed from what the worker knows.

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as K8sStatus, HostIP, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How one attempt of a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, …
    pub reason: String,
    /// Details (the start error).
    pub message: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds.
    pub finished_at: i64,
    /// `<runtime>://<id>`.
    pub container_id: String,
}

/// What one container of the pod is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// Not running: why (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, …).
    Waiting {
        /// Reason.
        reason: String,
        /// Message.
        message: Option<String>,
    },
    /// Running since (Unix seconds).
    Running {
        /// Unix seconds.
        started_at: i64,
        /// `<runtime>://<id>`.
        container_id: String,
    },
    /// Ended and will not (or not yet) be restarted.
    Terminated(Terminated),
}

/// Everything the status needs about one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Image id (`sha256:…`) once known.
    pub image_id: String,
    /// Now.
    pub current: Current,
    /// The previous attempt's end.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Passed its readiness probe (or has none) while running.
    pub ready: bool,
    /// Passed its startup probe (or has none) while running.
    pub started: bool,
}

/// The pod as a whole.
#[derive(Debug, Clone)]
pub struct PodView {
    /// Init containers, in order.
    pub init: Vec<ContainerView>,
    /// App containers.
    pub containers: Vec<ContainerView>,
    /// Every init container completed.
    pub initialized: bool,
    /// Pod IP once the sandbox exists.
    pub pod_ip: Option<String>,
    /// The node's address.
    pub host_ip: String,
    /// When the agent accepted the pod (Unix seconds).
    pub start_time: i64,
    /// A terminal verdict, e.g. `("Failed", "OutOfmemory", "…")` for a pod
    /// the node rejected.
    pub verdict: Option<(String, String, String)>,
    /// `Always`, `OnFailure`, `Never`.
    pub restart_policy: String,
}

fn time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: Some(time(t.started_at)),
        finished_at: Some(time(t.finished_at)),
        container_id: Some(t.container_id.clone()),
        signal: None,
    }
}

fn container_status(c: &ContainerView) -> K8sStatus {
    let (state, container_id) = match &c.current {
        Current::Waiting { reason, message } => (
            K8sState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..K8sState::default()
            },
            c.last.as_ref().map(|l| l.container_id.clone()),
        ),
        Current::Running {
            started_at,
            container_id,
        } => (
            K8sState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(*started_at)),
                }),
                ..K8sState::default()
            },
            Some(container_id.clone()),
        ),
        Current::Terminated(t) => (
            K8sState {
                terminated: Some(terminated(t)),
                ..K8sState::default()
            },
            Some(t.container_id.clone()),
        ),
    };
    let running = matches!(c.current, Current::Running { .. });
    K8sStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id,
        ready: running && c.ready,
        started: Some(running && c.started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(match &c.last {
            Some(t) => K8sState {
                terminated: Some(terminated(t)),
                ..K8sState::default()
            },
            None => K8sState::default(),
        }),
        ..K8sStatus::default()
    }
}

/// The pod's phase from its containers (the kubelet's `getPhase`).
fn phase(view: &PodView) -> &'static str {
    if let Some((phase, _, _)) = &view.verdict {
        return if phase == "Failed" {
            "Failed"
        } else {
            "Succeeded"
        };
    }
    if !view.initialized {
        let init_failed_for_good = view.restart_policy == "Never"
            && view
                .init
                .iter()
                .any(|c| matches!(&c.current, Current::Terminated(t) if t.exit_code != 0));
        return if init_failed_for_good {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
    for c in &view.containers {
        match &c.current {
            Current::Running { .. } => running += 1,
            Current::Terminated(t) if t.exit_code == 0 => succeeded += 1,
            Current::Terminated(_) => failed += 1,
            Current::Waiting { .. } => {
                if c.last.is_some() {
                    // Restarting after an exit: counts as running.
                    running += 1
                } else {
                    waiting += 1
                }
            }
        }
    }
    let total = view.containers.len();
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if succeeded + failed == total && total > 0 {
        if failed > 0 {
            "Failed"
        } else {
            "Succeeded"
        }
    } else {
        "Pending"
    }
}

/// Builds the full status; `previous` keeps the transition times of
/// conditions whose value did not change.
pub fn build(view: &PodView, previous: Option<&PodStatus>) -> PodStatus {
    let phase = phase(view);
    let now = crate::now().as_second();
    let all_ready = !view.containers.is_empty()
        && view
            .containers
            .iter()
            .all(|c| matches!(c.current, Current::Running { .. }) && c.ready);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let not_ready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !(matches!(c.current, Current::Running { .. }) && c.ready))
        .map(|c| c.name.as_str())
        .collect();
    let condition = |kind: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" }.to_string();
        let transition = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time(now));
        PodCondition {
            type_: kind.to_string(),
            status,
            reason,
            message,
            last_transition_time: Some(transition),
            last_probe_time: None,
        }
    };
    let ready_reason = || {
        if terminal {
            Some("PodCompleted".to_string())
        } else {
            Some("ContainersNotReady".to_string())
        }
    };
    let ready_message = || {
        (!terminal).then(|| format!("containers with unready status: [{}]", not_ready.join(" ")))
    };
    let pending_init: Vec<&str> = view
        .init
        .iter()
        .filter(|c| !matches!(&c.current, Current::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let ready = all_ready && !terminal;
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            view.pod_ip.is_some(),
            None,
            None,
        ),
        condition(
            "Initialized",
            view.initialized,
            (!view.initialized).then(|| "ContainersNotInitialized".to_string()),
            (!view.initialized).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )
            }),
        ),
        condition(
            "Ready",
            ready,
            (!ready).then(ready_reason).flatten(),
            (!ready).then(ready_message).flatten(),
        ),
        condition(
            "ContainersReady",
            ready,
            (!ready).then(ready_reason).flatten(),
            (!ready).then(ready_message).flatten(),
        ),
        condition("PodScheduled", true, None, None),
    ];
    let (reason, message) = match &view.verdict {
        Some((_, r, m)) => (Some(r.clone()), Some(m.clone())),
        None => (None, None),
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.clone(),
        }]),
        pod_ip: view.pod_ip.clone(),
        pod_ips: view
            .pod_ip
            .as_ref()
            .map(|ip| vec![PodIP { ip: ip.clone() }]),
        start_time: Some(time(view.start_time)),
        init_container_statuses: (!view.init.is_empty())
            .then(|| view.init.iter().map(container_status).collect()),
        container_statuses: Some(view.containers.iter().map(container_status).collect()),
        qos_class: previous.and_then(|p| p.qos_class.clone()),
        reason,
        message,
        ..PodStatus::default()
    }
}

/// The merge patch that makes the server's status equal `status`: lists are
/// replaced whole by a merge patch; scalar fields that are now absent must
/// be nulled explicitly.
pub fn patch(status: &PodStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for key in [
            "reason",
            "message",
            "podIP",
            "podIPs",
            "initContainerStatuses",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": value })
}

/// The restart count and last termination the server remembers for a
/// container (so an agent restart loses no status).
pub fn remembered(pod: &Pod, name: &str, init: bool) -> (i32, Option<Terminated>) {
    let statuses = pod.status.as_ref().and_then(|s| {
        if init {
            s.init_container_statuses.as_ref()
        } else {
            s.container_statuses.as_ref()
        }
    });
    let Some(cs) = statuses.and_then(|v| v.iter().find(|c| c.name == name)) else {
        return (0, None);
    };
    let from = |t: &ContainerStateTerminated| Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|t| t.0.as_second()).unwrap_or(0),
        finished_at: t.finished_at.as_ref().map(|t| t.0.as_second()).unwrap_or(0),
        container_id: t.container_id.clone().unwrap_or_default(),
    };
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(from);
    (cs.restart_count, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(containers: Vec<Current>, policy: &str) -> PodView {
        PodView {
            init: vec![],
            containers: containers
                .into_iter()
                .enumerate()
                .map(|(i, current)| ContainerView {
                    name: format!("c{i}"),
                    image: "busybox".into(),
                    image_id: String::new(),
                    current,
                    last: None,
                    restart_count: 0,
                    ready: true,
                    started: true,
                })
                .collect(),
            initialized: true,
            pod_ip: Some("10.88.0.2".into()),
            host_ip: "127.0.0.1".into(),
            start_time: 0,
            verdict: None,
            restart_policy: policy.into(),
        }
    }

    fn done(code: i32) -> Current {
        Current::Terminated(Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: 0,
            finished_at: 0,
            container_id: "oci://x".into(),
        })
    }

    #[test]
    fn phases() {
        let running = Current::Running {
            started_at: 0,
            container_id: "oci://x".into(),
        };
        let creating = Current::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        assert_eq!(phase(&view(vec![creating.clone()], "Always")), "Pending");
        assert_eq!(
            phase(&view(vec![running.clone(), creating], "Always")),
            "Pending"
        );
        assert_eq!(phase(&view(vec![running.clone()], "Always")), "Running");
        assert_eq!(phase(&view(vec![done(0)], "Never")), "Succeeded");
        assert_eq!(phase(&view(vec![done(0), done(1)], "Never")), "Failed");
        assert_eq!(phase(&view(vec![running, done(0)], "Never")), "Running");
        let status = build(&view(vec![done(0)], "Never"), None);
        let ready = status.conditions.unwrap();
        assert!(ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False"));
    }

    #[test]
    fn patch_nulls_cleared_fields() {
        let p = patch(&build(&view(vec![], "Always"), None));
        assert!(p["status"]["reason"].is_null());
        assert_eq!(p["status"]["phase"], "Pending");
    }
}
