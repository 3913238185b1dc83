//! A node's health as the controller judges it: when it was last heard
//! from, what its conditions become when it falls silent, and which taints
//! its Ready condition calls for. Pure, apart from reading the clock the
//! caller passes in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The taint of a node whose agent stopped heartbeating.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose agent reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The conditions set to `Unknown` when the agent falls silent.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The last sign of life seen from one node.
#[derive(Debug, Clone)]
struct Probe {
    lease_renewed: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    /// When a change of either was observed, on this process's clock: the
    /// agent's clock may be skewed, ours measures the silence.
    seen_at: Instant,
}

/// When each node was last heard from (its Lease renewed, or its Ready
/// condition's heartbeat moved).
#[derive(Debug, Default)]
pub struct Heartbeats {
    probes: HashMap<String, Probe>,
}

impl Heartbeats {
    /// Records what `node` and its `lease` say now and returns how long
    /// the node has been silent. A node seen for the first time counts as
    /// just heard from: after a restart every node gets a full grace.
    pub fn observe(&mut self, node: &Node, lease: Option<&Lease>, now: Instant) -> Duration {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease_renewed = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let heartbeat = ready_condition(node)
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let probe = self.probes.entry(name).or_insert(Probe {
            lease_renewed,
            heartbeat,
            seen_at: now,
        });
        if probe.lease_renewed != lease_renewed || probe.heartbeat != heartbeat {
            probe.lease_renewed = lease_renewed;
            probe.heartbeat = heartbeat;
            probe.seen_at = now;
        }
        now.saturating_duration_since(probe.seen_at)
    }

    /// Forgets a deleted node.
    pub fn forget(&mut self, node: &str) {
        self.probes.remove(node);
    }
}

/// The node's `Ready` condition.
pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The status of the node's `Ready` condition (`"Unknown"` if absent).
pub fn ready_status(node: &Node) -> &str {
    ready_condition(node).map_or("Unknown", |c| c.status.as_str())
}

/// The conditions of a node that fell silent: Ready and the pressure
/// conditions become `Unknown` (those never posted are added so), other
/// conditions stay. `None` when they are all `Unknown` already.
pub fn silent_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for kind in WATCHED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// Whether `key` is one of the taints this controller manages.
fn managed(taint: &Taint) -> bool {
    (taint.key == UNREACHABLE || taint.key == NOT_READY)
        && (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
}

/// The node's taints as its Ready status calls for: `unreachable` when
/// `Unknown`, `not-ready` when `False` (each NoSchedule and NoExecute),
/// none of them when `True`. Other taints are kept as they are, and so is
/// a wanted taint already present (with its `timeAdded`, which starts the
/// pods' tolerations). `None` when nothing changes.
pub fn wanted_taints(node: &Node, ready: &str, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let key = match ready {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || Some(t.key.as_str()) == key)
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    // Only NoExecute taints time the pods' tolerations.
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (out != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    fn ready_node() -> Node {
        node(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "2025-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False"},
            ]},
        }))
    }

    #[test]
    fn silence_is_measured_from_the_last_change_seen() {
        let mut hb = Heartbeats::default();
        let n = ready_node();
        let t0 = Instant::now();
        assert_eq!(hb.observe(&n, None, t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(hb.observe(&n, None, later), Duration::from_secs(5));
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"renewTime": "2025-01-01T00:00:10.000000Z"},
        }))
        .unwrap();
        assert_eq!(hb.observe(&n, Some(&lease), later), Duration::ZERO);
        assert_eq!(
            hb.observe(&n, Some(&lease), later + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_silent_node_goes_unknown_and_gets_the_unreachable_taints() {
        let n = ready_node();
        let now = Timestamp::UNIX_EPOCH;
        let conditions = silent_conditions(&n, now).unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        // The heartbeat stays what the agent last posted.
        assert!(ready.last_heartbeat_time.is_some());
        let never = conditions
            .iter()
            .find(|c| c.type_ == "PIDPressure")
            .unwrap();
        assert_eq!(never.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(conditions.len(), 4);

        let taints = wanted_taints(&n, "Unknown", now).unwrap();
        let keys: Vec<(&str, &str)> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        assert!(taints[2].time_added.is_some() && taints[1].time_added.is_none());
        // Tainted already: nothing to write.
        let mut tainted = n.clone();
        tainted.spec.as_mut().unwrap().taints = Some(taints.clone());
        assert!(wanted_taints(&tainted, "Unknown", now).is_none());
        // Not ready replaces unreachable; ready removes both, keeps others.
        let nr = wanted_taints(&tainted, "False", now).unwrap();
        assert!(nr.iter().all(|t| t.key != UNREACHABLE));
        assert_eq!(nr.iter().filter(|t| t.key == NOT_READY).count(), 2);
        let back = wanted_taints(&tainted, "True", now).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].key, "dedicated");
    }
}
