//! The filters: whether a pod may go on a node, each in its own module,
//! cheapest first. A node failing one filter is not checked by the next
//! (as kube-scheduler's framework); the reasons feed the
//! `FailedScheduling` message.

pub mod fit;
pub mod host_ports;
pub mod inter_pod;
pub mod node_affinity;
pub mod node_state;
pub mod spread;
pub mod taints;

use std::fmt;

/// Why a node cannot take a pod, worded as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The node's Ready condition is not True.
    NotReady,
    /// `spec.unschedulable` (cordoned).
    Unschedulable,
    /// Not enough of one resource left (`cpu`, `memory`, …).
    Insufficient(String),
    /// The node holds as many pods as it allows.
    TooManyPods,
    /// `nodeSelector` or required node affinity does not match.
    NodeAffinity,
    /// A NoSchedule or NoExecute taint the pod does not tolerate.
    Taint {
        /// The taint's key.
        key: String,
        /// The taint's value.
        value: String,
    },
    /// A host port the pod wants is taken.
    HostPorts,
    /// The pod's required anti-affinity matches a pod in the domain.
    PodAntiAffinity,
    /// A pod in the domain has anti-affinity against this pod.
    ExistingAntiAffinity,
    /// The pod's required affinity finds no pod in the domain.
    PodAffinity,
    /// A `DoNotSchedule` topology spread constraint would be exceeded.
    Spread,
    /// The node lacks a label a `DoNotSchedule` constraint spreads over.
    SpreadMissingLabel,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::Insufficient(r) => write!(f, "Insufficient {r}"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::HostPorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::PodAntiAffinity => f.write_str("node(s) didn't match pod anti-affinity rules"),
            Reason::ExistingAntiAffinity => {
                f.write_str("node(s) didn't satisfy existing pods anti-affinity rules")
            }
            Reason::PodAffinity => f.write_str("node(s) didn't match pod affinity rules"),
            Reason::Spread => f.write_str("node(s) didn't match pod topology spread constraints"),
            Reason::SpreadMissingLabel => f.write_str(
                "node(s) didn't match pod topology spread constraints (missing required label)",
            ),
        }
    }
}

/// Converts a `k8s-openapi` label selector into a matcher; a missing one
/// selects nothing (as for affinity terms and spread constraints).
pub fn label_selector(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> nuage_model::selector::LabelSelector {
    use nuage_model::selector::LabelSelector;
    let Some(s) = selector else {
        return LabelSelector::nothing();
    };
    serde_json::to_value(s)
        .ok()
        .and_then(|v| LabelSelector::from_label_selector(&v).ok())
        .unwrap_or_else(LabelSelector::nothing)
}
