//! Node scores, each 0–100, higher better: least allocated (room left) and
//! balanced allocation (CPU and memory used alike), from the cache's
//! scoring requests (kube-scheduler's NodeResourcesFit `LeastAllocated`
//! and NodeResourcesBalancedAllocation); and the normalisations that turn
//! raw counts into 0–100.

use super::cache::NodeInfo;
use super::resources::PodRequests;

/// The best score.
pub const MAX: f64 = 100.0;

fn fractions(req: &PodRequests, node: &NodeInfo) -> Option<(f64, f64)> {
    let (cpu, mem) = (node.allocatable.milli_cpu, node.allocatable.memory);
    if cpu <= 0 || mem <= 0 {
        return None;
    }
    let used_cpu = (node.non_zero_cpu + req.non_zero_cpu) as f64 / cpu as f64;
    let used_mem = (node.non_zero_memory + req.non_zero_memory) as f64 / mem as f64;
    Some((used_cpu.min(1.0), used_mem.min(1.0)))
}

/// The share of CPU and memory left once the pod is placed, averaged.
pub fn least_allocated(req: &PodRequests, node: &NodeInfo) -> f64 {
    match fractions(req, node) {
        Some((cpu, mem)) => MAX * ((1.0 - cpu) + (1.0 - mem)) / 2.0,
        None => 0.0,
    }
}

/// 100 when CPU and memory would be used in the same proportion, less as
/// they diverge (one minus their standard deviation).
pub fn balanced_allocation(req: &PodRequests, node: &NodeInfo) -> f64 {
    match fractions(req, node) {
        Some((cpu, mem)) => MAX * (1.0 - (cpu - mem).abs() / 2.0),
        None => 0.0,
    }
}

/// Scales raw values where higher is better to 0–100 of the highest.
pub fn normalize_higher_better(raw: &mut [f64]) {
    let max = raw.iter().copied().fold(0.0, f64::max);
    for r in raw.iter_mut() {
        *r = if max > 0.0 { MAX * *r / max } else { 0.0 };
    }
}

/// Scales raw values where lower is better to 0–100, the lowest scoring
/// best (kube-scheduler's reverse normalisation).
pub fn normalize_lower_better(raw: &mut [f64]) {
    let max = raw.iter().copied().fold(0.0, f64::max);
    let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
    for r in raw.iter_mut() {
        *r = if max > 0.0 {
            MAX * (max + min - *r) / max
        } else {
            MAX
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::Cache;
    use crate::scheduler::resources::pod_requests;
    use serde_json::json;

    #[test]
    fn emptier_and_better_balanced_nodes_score_higher() {
        let mut c = Cache::default();
        c.apply_node(&node("empty", "4", "4Gi", json!({})));
        c.apply_node(&node("busy", "4", "4Gi", json!({})));
        c.assume(
            pod("x", json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}}]})),
            "busy",
        );
        let p = pod(
            "p",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        let r = pod_requests(p.spec.as_ref().unwrap());
        let (e, b) = (c.node("empty").unwrap(), c.node("busy").unwrap());
        assert!(least_allocated(&r, e) > least_allocated(&r, b));
        assert_eq!(balanced_allocation(&r, e), 100.0);
        assert!(balanced_allocation(&r, b) < 100.0);
    }

    #[test]
    fn normalisations() {
        let mut v = vec![0.0, 5.0, 10.0];
        normalize_higher_better(&mut v);
        assert_eq!(v, [0.0, 50.0, 100.0]);
        let mut v = vec![0.0, 5.0, 10.0];
        normalize_lower_better(&mut v);
        assert_eq!(v, [100.0, 50.0, 0.0]);
        let mut v = vec![0.0, 0.0];
        normalize_lower_better(&mut v);
        assert_eq!(v, [100.0, 100.0]);
    }
}
