//! One view of a ReplicationController or a ReplicaSet: the controller's
//! logic is the same for both, only the selector's shape, the API path and
//! the Event source differ.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ObjectReference, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as K8sSelector, OwnerReference, Time,
};
use nuage_model::selector::{LabelSelector, Operator, Requirement, SelectorError};

/// Which of the two kinds an owner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `v1` ReplicationController.
    ReplicationController,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
}

impl Kind {
    /// The object kind, as in ownerReferences.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReplicationController => "ReplicationController",
            Self::ReplicaSet => "ReplicaSet",
        }
    }

    /// The apiVersion, as in ownerReferences.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::ReplicationController => "v1",
            Self::ReplicaSet => "apps/v1",
        }
    }

    /// The Event source, as Kubernetes names these controllers.
    pub fn component(self) -> &'static str {
        match self {
            Self::ReplicationController => "replication-controller",
            Self::ReplicaSet => "replicaset-controller",
        }
    }

    /// The kind an ownerReference names, if it is one of ours.
    pub fn of_reference(r: &OwnerReference) -> Option<Self> {
        match (r.kind.as_str(), r.api_version.as_str()) {
            ("ReplicationController", "v1") => Some(Self::ReplicationController),
            ("ReplicaSet", "apps/v1") => Some(Self::ReplicaSet),
            _ => None,
        }
    }
}

/// The status fields both kinds share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Active pods owned.
    pub replicas: i32,
    /// Of which labelled with every template label.
    pub fully_labeled: i32,
    /// Of which Ready.
    pub ready: i32,
    /// Of which Ready for at least `minReadySeconds`.
    pub available: i32,
    /// The generation this status describes.
    pub observed_generation: i64,
    /// Conditions (only `ReplicaFailure` is set by the controller).
    pub conditions: Vec<Condition>,
}

/// A status condition (same shape for both kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `ReplicaFailure`.
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// `FailedCreate`, `FailedDelete`.
    pub reason: String,
    /// The API's message.
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: Option<Time>,
}

/// What the controller needs of an RC or RS.
#[derive(Debug, Clone)]
pub struct Owner {
    /// RC or RS.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (ownerReferences point to it).
    pub uid: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// The pods it selects.
    pub selector: LabelSelector,
    /// What new pods are made of.
    pub template: Option<PodTemplateSpec>,
    /// Whether it is being deleted (then it neither creates nor adopts).
    pub deleting: bool,
    /// Its status as last written.
    pub status: Status,
}

impl Owner {
    /// Reads a ReplicationController; its selector is a label map (an
    /// empty one selects nothing here: adopting every pod of the
    /// namespace is never what was meant).
    pub fn from_rc(rc: &ReplicationController) -> Result<Self, SelectorError> {
        let selector = rc_selector(rc)?;
        let spec = rc.spec.clone().unwrap_or_default();
        let status = rc.status.clone().unwrap_or_default();
        Ok(Self {
            kind: Kind::ReplicationController,
            namespace: rc.metadata.namespace.clone().unwrap_or_default(),
            name: rc.metadata.name.clone().unwrap_or_default(),
            uid: rc.metadata.uid.clone().unwrap_or_default(),
            generation: rc.metadata.generation.unwrap_or(0),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector,
            template: spec.template,
            deleting: rc.metadata.deletion_timestamp.is_some(),
            status: Status {
                replicas: status.replicas,
                fully_labeled: status.fully_labeled_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
                conditions: status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| Condition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason.unwrap_or_default(),
                        message: c.message.unwrap_or_default(),
                        last_transition_time: c.last_transition_time,
                    })
                    .collect(),
            },
        })
    }

    /// Reads a ReplicaSet; its selector is a `metav1.LabelSelector`.
    pub fn from_rs(rs: &ReplicaSet) -> Result<Self, SelectorError> {
        let selector = rs_selector(rs)?;
        let spec = rs.spec.clone().unwrap_or_default();
        let status = rs.status.clone().unwrap_or_default();
        Ok(Self {
            kind: Kind::ReplicaSet,
            namespace: rs.metadata.namespace.clone().unwrap_or_default(),
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            generation: rs.metadata.generation.unwrap_or(0),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector,
            template: spec.template,
            deleting: rs.metadata.deletion_timestamp.is_some(),
            status: Status {
                replicas: status.replicas,
                fully_labeled: status.fully_labeled_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
                conditions: status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| Condition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason.unwrap_or_default(),
                        message: c.message.unwrap_or_default(),
                        last_transition_time: c.last_transition_time,
                    })
                    .collect(),
            },
        })
    }

    /// `namespace/name`, the informer and queue key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The ownerReference its pods carry.
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.kind.api_version().into(),
            kind: self.kind.name().into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// A reference for Events about it.
    pub fn object_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.kind.api_version().into()),
            kind: Some(self.kind.name().into()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: Some(self.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// The labels every pod it creates carries.
    pub fn template_labels(&self) -> BTreeMap<String, String> {
        self.template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

/// An RC's selector, without reading the rest of it (informer handlers
/// match every orphan pod against every RC of its namespace).
pub fn rc_selector(rc: &ReplicationController) -> Result<LabelSelector, SelectorError> {
    match rc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    {
        Some(map) => map_selector(map),
        None => Ok(LabelSelector::nothing()),
    }
}

/// An RS's selector (null when it has no spec: selects nothing).
pub fn rs_selector(rs: &ReplicaSet) -> Result<LabelSelector, SelectorError> {
    match rs.spec.as_ref() {
        Some(spec) => label_selector(&spec.selector),
        None => Ok(LabelSelector::nothing()),
    }
}

/// `{k: v}` as `k=v,…`.
fn map_selector(map: &BTreeMap<String, String>) -> Result<LabelSelector, SelectorError> {
    let reqs = map
        .iter()
        .map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.clone()]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LabelSelector::from_requirements(reqs))
}

/// A `metav1.LabelSelector` as a matcher: null selects nothing, `{}`
/// everything (as `metav1.LabelSelectorAsSelector`).
pub fn label_selector(s: &K8sSelector) -> Result<LabelSelector, SelectorError> {
    let mut reqs = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        reqs.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
    }
    for e in s.match_expressions.iter().flatten() {
        let op = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => return Err(SelectorError::UnknownOperator(other.to_string())),
        };
        reqs.push(Requirement::new(
            &e.key,
            op,
            e.values.clone().unwrap_or_default(),
        )?);
    }
    Ok(LabelSelector::from_requirements(reqs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rs_selectors_combine_labels_and_expressions() {
        let s = label_selector(&K8sSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into(), "edge".into()]),
            }]),
        })
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!s.matches(&labels(&[("tier", "front")])));
    }

    #[test]
    fn an_rc_without_selector_selects_nothing() {
        let rc = ReplicationController::default();
        let o = Owner::from_rc(&rc).unwrap();
        assert!(!o.selector.matches(&labels(&[("app", "x")])));
        assert!(!o.selector.matches(&BTreeMap::new()));
        assert_eq!(o.replicas, 1);
    }
}
