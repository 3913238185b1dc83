//! Host ports: a node takes a pod only if none of the pod's host ports is
//! already bound there (kube-scheduler's NodePorts).

use super::Reason;
use crate::scheduler::cache::{HostPort, NodeInfo};

/// Whether every port in `wanted` is free on `node`.
pub fn check(wanted: &[HostPort], node: &NodeInfo) -> Result<(), Reason> {
    let taken = wanted
        .iter()
        .any(|w| node.ports.keys().any(|used| used.conflicts(w)));
    if taken {
        Err(Reason::HostPorts)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::{host_ports, Cache};
    use serde_json::json;

    fn with_port(
        name: &str,
        port: i32,
        ip: &str,
    ) -> std::sync::Arc<k8s_openapi::api::core::v1::Pod> {
        pod(
            name,
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": port, "hostIP": ip}]}]}),
        )
    }

    #[test]
    fn a_taken_port_refuses_the_node() {
        let mut c = Cache::default();
        c.apply_node(&node("n", "2", "4Gi", json!({})));
        c.assume(with_port("a", 8080, ""), "n");
        let n = c.node("n").unwrap();
        assert_eq!(
            check(&host_ports(&with_port("b", 8080, "127.0.0.1")), n),
            Err(Reason::HostPorts)
        );
        assert_eq!(check(&host_ports(&with_port("b", 8081, "")), n), Ok(()));
        assert_eq!(check(&[], n), Ok(()));
    }
}
