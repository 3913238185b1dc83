//! Taints and tolerations: a node's NoSchedule and NoExecute taints keep
//! off every pod that does not tolerate them; PreferNoSchedule ones only
//! lower the node's score (kube-scheduler's TaintToleration).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::Reason;
use crate::scheduler::cache::NodeInfo;

/// The taint cordoned nodes carry in Kubernetes; a pod tolerating it may
/// go on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Whether `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule or NoExecute taint of `node` not tolerated.
pub fn check(tolerations: &[Toleration], node: &NodeInfo) -> Result<(), Reason> {
    match node.taints().iter().find(|t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(tolerations, t)
    }) {
        Some(t) => Err(Reason::Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

/// How many PreferNoSchedule taints of `node` are not tolerated (fewer is
/// better).
pub fn intolerable_preferences(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations, t))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::node;
    use crate::scheduler::cache::Cache;
    use serde_json::json;

    fn tolerations(v: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    fn tainted(taints: serde_json::Value) -> Cache {
        let mut n = (*node("n", "1", "1Gi", json!({}))).clone();
        n.spec = Some(serde_json::from_value(json!({ "taints": taints })).unwrap());
        let mut c = Cache::default();
        c.apply_node(&std::sync::Arc::new(n));
        c
    }

    #[test]
    fn untolerated_hard_taints_refuse_the_node() {
        let c = tainted(json!([
            {"key": "gpu", "value": "yes", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ]));
        let n = c.node("n").unwrap();
        assert_eq!(
            check(&[], n),
            Err(Reason::Taint {
                key: "gpu".into(),
                value: "yes".into()
            })
        );
        assert_eq!(
            Reason::Taint {
                key: "gpu".into(),
                value: "yes".into()
            }
            .to_string(),
            "node(s) had untolerated taint {gpu: yes}"
        );
        let equal = tolerations(json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]));
        assert_eq!(check(&equal, n), Ok(()));
        let wrong = tolerations(json!([{"key": "gpu", "value": "no"}]));
        assert!(check(&wrong, n).is_err());
        let exists = tolerations(json!([{"key": "gpu", "operator": "Exists"}]));
        assert_eq!(check(&exists, n), Ok(()));
        let all = tolerations(json!([{"operator": "Exists"}]));
        assert_eq!(check(&all, n), Ok(()));
        let other_effect =
            tolerations(json!([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]));
        assert!(check(&other_effect, n).is_err());
        assert_eq!(intolerable_preferences(&equal, n), 1);
        assert_eq!(intolerable_preferences(&all, n), 0);
    }

    #[test]
    fn no_execute_taints_refuse_too() {
        let c = tainted(json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]));
        assert!(check(&[], c.node("n").unwrap()).is_err());
    }
}
