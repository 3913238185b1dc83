//! Nodes that take no new pods: not Ready, or cordoned
//! (`kubectl cordon` sets `spec.unschedulable`).

use super::Reason;
use crate::scheduler::cache::NodeInfo;

/// Whether `node` takes new pods at all. A pod tolerating the
/// `node.kubernetes.io/unschedulable` taint still goes on a cordoned node
/// (DaemonSet pods do), as with kube-scheduler's NodeUnschedulable plugin.
pub fn check(node: &NodeInfo, tolerates_unschedulable: bool) -> Result<(), Reason> {
    if !node.ready {
        return Err(Reason::NotReady);
    }
    if node.unschedulable && !tolerates_unschedulable {
        return Err(Reason::Unschedulable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::node;
    use crate::scheduler::cache::Cache;
    use serde_json::json;

    #[test]
    fn not_ready_and_cordoned_nodes_are_refused() {
        let mut c = Cache::default();
        c.apply_node(&node("ok", "1", "1Gi", json!({})));
        let mut cordoned = (*node("cordoned", "1", "1Gi", json!({}))).clone();
        cordoned.spec = Some(serde_json::from_value(json!({"unschedulable": true})).unwrap());
        c.apply_node(&std::sync::Arc::new(cordoned));
        let mut down = (*node("down", "1", "1Gi", json!({}))).clone();
        down.status.as_mut().unwrap().conditions =
            Some(serde_json::from_value(json!([{"type": "Ready", "status": "Unknown"}])).unwrap());
        c.apply_node(&std::sync::Arc::new(down));
        assert_eq!(check(c.node("ok").unwrap(), false), Ok(()));
        assert_eq!(
            check(c.node("cordoned").unwrap(), false),
            Err(Reason::Unschedulable)
        );
        assert_eq!(check(c.node("cordoned").unwrap(), true), Ok(()));
        assert_eq!(check(c.node("down").unwrap(), false), Err(Reason::NotReady));
    }
}
