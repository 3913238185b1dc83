//! Resources: the pod's requests must fit in what the node allocates minus
//! what its pods (bound or assumed) request, for every resource, and the
//! node must allow one more pod (kube-scheduler's NodeResourcesFit).

use super::Reason;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::resources::{PodRequests, GPU};

/// Every resource the pod lacks on `node` (all of them, as kube-scheduler
/// reports, so the message says "Insufficient cpu, Insufficient memory").
pub fn check(req: &PodRequests, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    let r = &req.resources;
    let free = |name: &str| node.allocatable.get(name) - node.requested.get(name);
    let mut lacking = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        lacking.push(Reason::TooManyPods);
    }
    for (name, want) in [
        ("cpu", r.milli_cpu),
        ("memory", r.memory),
        ("ephemeral-storage", r.ephemeral_storage),
        (GPU, r.gpu),
    ] {
        if want > 0 && want > free(name) {
            lacking.push(Reason::Insufficient(name.to_string()));
        }
    }
    for (name, want) in &r.scalars {
        if *want > 0 && *want > free(name) {
            lacking.push(Reason::Insufficient(name.clone()));
        }
    }
    if lacking.is_empty() {
        Ok(())
    } else {
        Err(lacking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::Cache;
    use crate::scheduler::resources::pod_requests;
    use serde_json::json;

    fn wants(cpu: &str, memory: &str, extra: serde_json::Value) -> PodRequests {
        let mut r = json!({"cpu": cpu, "memory": memory});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let p = pod(
            "p",
            json!({"containers": [{"name": "c", "resources": {"requests": r}}]}),
        );
        pod_requests(p.spec.as_ref().unwrap())
    }

    #[test]
    fn requests_fit_in_what_is_left() {
        let mut c = Cache::default();
        c.apply_node(&node("n", "2", "4Gi", json!({})));
        c.assume(
            pod(
                "x",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]}),
            ),
            "n",
        );
        let n = c.node("n").unwrap();
        assert_eq!(check(&wants("500m", "4Gi", json!({})), n), Ok(()));
        assert_eq!(
            check(&wants("501m", "5Gi", json!({})), n),
            Err(vec![
                Reason::Insufficient("cpu".into()),
                Reason::Insufficient("memory".into())
            ])
        );
        assert_eq!(
            check(&wants("0", "0", json!({"nvidia.com/gpu": "1"})), n),
            Err(vec![Reason::Insufficient("nvidia.com/gpu".into())])
        );
    }

    #[test]
    fn the_pod_count_is_a_limit() {
        let mut c = Cache::default();
        let mut small = (*node("n", "2", "4Gi", json!({}))).clone();
        let alloc = small.status.as_mut().unwrap().allocatable.as_mut().unwrap();
        alloc.insert(
            "pods".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        );
        c.apply_node(&std::sync::Arc::new(small));
        assert_eq!(
            check(&wants("0", "0", json!({})), c.node("n").unwrap()),
            Ok(())
        );
        c.assume(pod("x", json!({})), "n");
        assert_eq!(
            check(&wants("0", "0", json!({})), c.node("n").unwrap()),
            Err(vec![Reason::TooManyPods])
        );
    }
}
