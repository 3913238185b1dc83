//! One scheduling decision (kube-scheduler's `schedulePod`): work out what
//! the pod needs once, run the filters over the nodes — cheapest first,
//! starting where the last decision stopped and stopping once enough
//! feasible nodes are found on large clusters — then score the feasible
//! ones and pick the best (ties at random).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use super::cache::{host_ports, Cache, NodeInfo};
use super::filters::inter_pod::InterPod;
use super::filters::node_affinity::NodeAffinity;
use super::filters::spread::Spread;
use super::filters::taints::{self, UNSCHEDULABLE_TAINT};
use super::filters::{fit, host_ports as ports, node_state, Reason};
use super::resources::pod_requests;
use super::scores;

/// Score weights, kube-scheduler's defaults.
const WEIGHT_TAINTS: f64 = 3.0;
const WEIGHT_NODE_AFFINITY: f64 = 2.0;
const WEIGHT_SPREAD: f64 = 2.0;
const WEIGHT_LEAST_ALLOCATED: f64 = 1.0;
const WEIGHT_BALANCED: f64 = 1.0;

/// Why a pod fits nowhere: the reasons and how many nodes gave each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// The number of nodes.
    pub nodes: usize,
    /// Reason → number of nodes that gave it.
    pub reasons: HashMap<Reason, usize>,
}

impl FitError {
    /// kube-scheduler's message: "0/3 nodes are available: 1 node(s) had
    /// untolerated taint {k: v}, 2 Insufficient memory. preemption: 0/3
    /// nodes are available: 3 Preemption is not helpful for scheduling."
    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        // kube-scheduler sorts the "<count> <reason>" strings.
        parts.sort();
        format!(
            "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.",
            parts.join(", "),
            n = self.nodes
        )
    }
}

/// How many feasible nodes to find before scoring (kube-scheduler's
/// `numFeasibleNodesToFind` with the adaptive `percentageOfNodesToScore`):
/// every node below 100, then 50% falling by 1% per 125 nodes to 5%, and
/// never fewer than 100.
pub fn nodes_to_find(nodes: usize) -> usize {
    if nodes < 100 {
        return nodes;
    }
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(100)
}

/// The decision-maker: remembers where to start the next search and a
/// random state for ties.
pub struct Algorithm {
    next_start: usize,
    rng: u64,
}

impl Default for Algorithm {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self {
            next_start: 0,
            rng: seed | 1,
        }
    }
}

impl Algorithm {
    fn random(&mut self) -> u64 {
        // xorshift64: ties need spreading, not cryptography.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The node `pod` should go on, or why none fits.
    pub fn schedule(&mut self, pod: &Pod, cache: &Cache) -> Result<String, FitError> {
        let total = cache.node_count();
        let mut err = FitError {
            nodes: total,
            reasons: HashMap::new(),
        };
        if total == 0 {
            return Err(err);
        }
        let spec = pod.spec.as_ref();
        let requests = spec.map(pod_requests).unwrap_or_default();
        let wanted_ports = host_ports(pod);
        let tolerations = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
        let cordon_taint = k8s_openapi::api::core::v1::Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerates_cordon = taints::tolerated(tolerations, &cordon_taint);
        let affinity = NodeAffinity::new(pod);
        let inter_pod = InterPod::new(pod, cache);
        let spread = Spread::new(pod, cache, &affinity);

        let nodes = cache.nodes();
        let to_find = nodes_to_find(total);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find.min(nodes.len()));
        let mut looked = 0;
        for i in 0..nodes.len() {
            looked += 1;
            let node = &nodes[(self.next_start + i) % nodes.len()];
            if node.node.is_none() {
                continue;
            }
            let verdict = node_state::check(node, tolerates_cordon)
                .and_then(|()| affinity.check(node))
                .and_then(|()| taints::check(tolerations, node))
                .map_err(|r| vec![r])
                .and_then(|()| fit::check(&requests, node))
                .and_then(|()| ports::check(&wanted_ports, node).map_err(|r| vec![r]))
                .and_then(|()| inter_pod.check(node).map_err(|r| vec![r]))
                .and_then(|()| spread.check(node).map_err(|r| vec![r]));
            match verdict {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err(reasons) => {
                    for r in reasons {
                        *err.reasons.entry(r).or_insert(0) += 1;
                    }
                }
            }
        }
        self.next_start = (self.next_start + looked) % nodes.len();
        match feasible.len() {
            0 => return Err(err),
            1 => return Ok(feasible[0].name.clone()),
            _ => {}
        }

        let mut total_scores: Vec<f64> = feasible
            .iter()
            .map(|n| {
                WEIGHT_LEAST_ALLOCATED * scores::least_allocated(&requests, n)
                    + WEIGHT_BALANCED * scores::balanced_allocation(&requests, n)
            })
            .collect();
        let mut add = |raw: Vec<f64>, weight: f64| {
            for (t, r) in total_scores.iter_mut().zip(raw) {
                *t += weight * r;
            }
        };
        if affinity.has_preferences() {
            let mut raw: Vec<f64> = feasible
                .iter()
                .map(|n| affinity.preference(n) as f64)
                .collect();
            scores::normalize_higher_better(&mut raw);
            add(raw, WEIGHT_NODE_AFFINITY);
        }
        let mut raw: Vec<f64> = feasible
            .iter()
            .map(|n| taints::intolerable_preferences(tolerations, n) as f64)
            .collect();
        scores::normalize_lower_better(&mut raw);
        add(raw, WEIGHT_TAINTS);
        if spread.scores() {
            let mut raw: Vec<f64> = feasible.iter().map(|n| spread.raw_score(n)).collect();
            scores::normalize_lower_better(&mut raw);
            add(raw, WEIGHT_SPREAD);
        }

        // The best score; among equals, each as likely (reservoir sampling).
        let mut best = 0;
        let mut ties = 1u64;
        for i in 1..feasible.len() {
            let (s, b) = (total_scores[i], total_scores[best]);
            if s > b + 1e-9 {
                best = i;
                ties = 1;
            } else if (s - b).abs() <= 1e-9 {
                ties += 1;
                if self.random().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        Ok(feasible[best].name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod, pod_with};
    use serde_json::json;

    #[test]
    fn the_sample_shrinks_with_the_cluster() {
        assert_eq!(nodes_to_find(3), 3);
        assert_eq!(nodes_to_find(100), 100);
        assert_eq!(nodes_to_find(1000), 420);
        assert_eq!(nodes_to_find(5000), 500);
        assert_eq!(nodes_to_find(10000), 500);
    }

    #[test]
    fn the_message_counts_nodes_per_reason() {
        let mut c = Cache::default();
        c.apply_node(&node("small-1", "1", "1Gi", json!({})));
        c.apply_node(&node("small-2", "1", "1Gi", json!({})));
        let mut t = (*node("tainted", "64", "64Gi", json!({}))).clone();
        t.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        c.apply_node(&std::sync::Arc::new(t));
        let p = pod(
            "big",
            json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "2Gi"}}}]}),
        );
        let err = Algorithm::default().schedule(&p, &c).unwrap_err();
        assert_eq!(
            err.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient memory. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            Algorithm::default()
                .schedule(&p, &Cache::default())
                .unwrap_err()
                .message(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn the_emptiest_node_wins_and_owned_pods_spread_over_zones() {
        let mut c = Cache::default();
        for (n, z) in [("a", "za"), ("b", "zb"), ("c", "zc")] {
            c.apply_node(&node(
                n,
                "8",
                "16Gi",
                json!({"topology.kubernetes.io/zone": z}),
            ));
        }
        let mut algo = Algorithm::default();
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for i in 0..6 {
            let p = pod_with(
                &format!("web-{i}"),
                json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web", "uid": "u", "controller": true}]}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}),
            );
            let n = algo.schedule(&p, &c).unwrap();
            c.assume(p, &n);
            *per_node.entry(n).or_default() += 1;
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            [2, 2, 2],
            "{per_node:?}"
        );
    }

    #[test]
    fn preferred_affinity_and_soft_taints_steer() {
        let mut c = Cache::default();
        c.apply_node(&node("plain", "8", "16Gi", json!({})));
        c.apply_node(&node("ssd", "8", "16Gi", json!({"disk": "ssd"})));
        let mut soft = (*node("soft", "8", "16Gi", json!({"disk": "ssd"}))).clone();
        soft.spec = Some(
            serde_json::from_value(json!({"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}))
                .unwrap(),
        );
        c.apply_node(&std::sync::Arc::new(soft));
        let p = pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
        );
        for _ in 0..10 {
            assert_eq!(Algorithm::default().schedule(&p, &c).unwrap(), "ssd");
        }
    }

    #[test]
    fn large_clusters_are_sampled_round_robin() {
        let mut c = Cache::default();
        for i in 0..1000 {
            c.apply_node(&node(&format!("n{i:04}"), "8", "16Gi", json!({})));
        }
        let mut algo = Algorithm::default();
        let p = pod("p", json!({}));
        algo.schedule(&p, &c).unwrap();
        assert_eq!(algo.next_start, 420);
        let started = std::time::Instant::now();
        for _ in 0..200 {
            algo.schedule(&p, &c).unwrap();
        }
        // A regression guard, generous for debug builds on a loaded machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
