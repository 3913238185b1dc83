//! Topology spread (kube-scheduler's PodTopologySpread): a pod's
//! `topologySpreadConstraints` count the pods their selector matches per
//! domain (node label value); `DoNotSchedule` ones refuse a node whose
//! domain would exceed the least-loaded one by more than `maxSkew`,
//! `ScheduleAnyway` ones score nodes with fewer matching pods higher.
//!
//! A pod owned by a controller and without constraints gets the default
//! ones, soft: spread over `kubernetes.io/hostname` (maxSkew 3) and
//! `topology.kubernetes.io/zone` (maxSkew 5), counting the pods of the same
//! controller (kept per node by the cache, so this costs O(nodes)).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use nuage_model::selector::LabelSelector;

use super::node_affinity::NodeAffinity;
use super::{label_selector, Reason};
use crate::scheduler::cache::{controller_uid, Cache, NodeInfo};

/// The hostname label: one domain per node.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// The zone label.
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// Which pods a constraint counts.
enum Counted {
    /// Pods in the pod's namespace matching a label selector.
    Labels(String, LabelSelector),
    /// Pods of one controller (the default spread).
    Owner(String),
}

impl Counted {
    fn on(&self, node: &NodeInfo) -> i64 {
        match self {
            Counted::Owner(uid) => node.owners.get(uid).copied().unwrap_or(0) as i64,
            Counted::Labels(ns, sel) => node
                .pods
                .values()
                .filter(|p| {
                    let m = &p.pod.metadata;
                    m.deletion_timestamp.is_none()
                        && m.namespace.as_deref() == Some(ns.as_str())
                        && m.labels.as_ref().is_some_and(|l| sel.matches(l))
                })
                .count() as i64,
        }
    }
}

struct Constraint {
    max_skew: i64,
    topology_key: String,
    hard: bool,
    counted: Counted,
    /// Per domain value; empty for hostname (the node's own count is read
    /// directly rather than copying every node name).
    counts: HashMap<String, i64>,
    per_node: bool,
    min: i64,
    domains: usize,
    self_match: i64,
}

impl Constraint {
    fn count(&self, node: &NodeInfo) -> Option<i64> {
        let v = node.label(&self.topology_key)?;
        Some(if self.per_node {
            self.counted.on(node)
        } else {
            self.counts.get(v).copied().unwrap_or(0)
        })
    }
}

/// A pod's spread constraints with the counts of the cluster.
#[derive(Default)]
pub struct Spread {
    constraints: Vec<Constraint>,
}

impl Spread {
    /// Counts the pods each of `pod`'s constraints (or the default ones)
    /// selects, over the nodes `affinity` allows.
    pub fn new(pod: &Pod, cache: &Cache, affinity: &NodeAffinity) -> Self {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let declared = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        let mut constraints: Vec<Constraint> = Vec::new();
        let empty = std::collections::BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        for c in declared {
            let sel = label_selector(c.label_selector.as_ref());
            let self_match = i64::from(sel.matches(labels));
            constraints.push(Constraint::empty(
                c.max_skew.max(1) as i64,
                &c.topology_key,
                c.when_unsatisfiable == "DoNotSchedule",
                Counted::Labels(ns.clone(), sel),
                self_match,
                c.min_domains.unwrap_or(1).max(1) as usize,
            ));
        }
        if declared.is_empty() && affinity.allows_every_node() {
            if let Some(uid) = controller_uid(pod) {
                return Self::default_for_owner(uid, cache);
            }
        }
        if declared.is_empty() {
            if let Some(uid) = controller_uid(pod) {
                for (key, skew) in [(HOSTNAME, 3), (ZONE, 5)] {
                    constraints.push(Constraint::empty(
                        skew,
                        key,
                        false,
                        Counted::Owner(uid.to_string()),
                        1,
                        1,
                    ));
                }
            }
        }
        if constraints.is_empty() {
            return Self::default();
        }
        // `domains` holds minDomains until the real count replaces it.
        let min_domains: Vec<usize> = constraints.iter().map(|c| c.domains).collect();
        let mut per_node_min = vec![i64::MAX; constraints.len()];
        let mut per_node_domains = vec![0usize; constraints.len()];
        for node in cache.nodes() {
            if node.node.is_none() || !affinity.matches(node) {
                continue;
            }
            for (i, c) in constraints.iter_mut().enumerate() {
                let Some(v) = node.label(&c.topology_key) else {
                    continue;
                };
                let n = c.counted.on(node);
                if c.per_node {
                    per_node_min[i] = per_node_min[i].min(n);
                    per_node_domains[i] += 1;
                } else if let Some(count) = c.counts.get_mut(v) {
                    *count += n;
                } else {
                    c.counts.insert(v.to_string(), n);
                }
            }
        }
        for (i, c) in constraints.iter_mut().enumerate() {
            let (min, domains) = if c.per_node {
                (per_node_min[i], per_node_domains[i])
            } else {
                (
                    c.counts.values().copied().min().unwrap_or(i64::MAX),
                    c.counts.len(),
                )
            };
            c.domains = domains;
            // Fewer domains than minDomains: the global minimum is 0.
            c.min = if domains < min_domains[i] || min == i64::MAX {
                0
            } else {
                min
            };
        }
        Self { constraints }
    }

    /// The default spread of a controller's pod that may go on any node,
    /// from the cache's per-controller counts: O(zones), where counting
    /// node by node would cost O(nodes) for every pod.
    fn default_for_owner(uid: &str, cache: &Cache) -> Self {
        let spread = cache.owner_spread(uid);
        let mut hostname =
            Constraint::empty(3, HOSTNAME, false, Counted::Owner(uid.to_string()), 1, 1);
        hostname.domains = cache.hostname_nodes();
        hostname.min = match spread {
            // Every node holds some: the least-loaded one's count.
            Some(s) if s.nodes() >= hostname.domains => {
                s.per_node.keys().next().map(|n| i64::from(*n)).unwrap_or(0)
            }
            _ => 0,
        };
        let mut zone = Constraint::empty(5, ZONE, false, Counted::Owner(uid.to_string()), 1, 1);
        for z in cache.zone_nodes().keys() {
            let n = spread.and_then(|s| s.per_zone.get(z)).copied().unwrap_or(0);
            zone.counts.insert(z.clone(), n);
        }
        zone.domains = zone.counts.len();
        zone.min = zone.counts.values().copied().min().unwrap_or(0);
        Self {
            constraints: vec![hostname, zone],
        }
    }

    /// Whether any constraint scores nodes.
    pub fn scores(&self) -> bool {
        self.constraints.iter().any(|c| !c.hard)
    }

    /// The `DoNotSchedule` constraints.
    pub fn check(&self, node: &NodeInfo) -> Result<(), Reason> {
        for c in self.constraints.iter().filter(|c| c.hard) {
            let Some(count) = c.count(node) else {
                return Err(Reason::SpreadMissingLabel);
            };
            if count + c.self_match - c.min > c.max_skew {
                return Err(Reason::Spread);
            }
        }
        Ok(())
    }

    /// The `ScheduleAnyway` constraints' weighted count of matching pods
    /// in `node`'s domains: lower is better (normalised by the caller).
    pub fn raw_score(&self, node: &NodeInfo) -> f64 {
        self.constraints
            .iter()
            .filter(|c| !c.hard)
            .filter_map(|c| {
                let count = c.count(node)?;
                // Domains with more members weigh more: a skew of one pod
                // matters less among 3 zones than among 1,000 nodes.
                let weight = ((c.domains + 2) as f64).ln();
                Some(count as f64 * weight + (c.max_skew - 1) as f64)
            })
            .sum()
    }
}

impl Constraint {
    fn empty(
        max_skew: i64,
        key: &str,
        hard: bool,
        counted: Counted,
        self_match: i64,
        min_domains: usize,
    ) -> Self {
        Self {
            max_skew,
            topology_key: key.to_string(),
            hard,
            counted,
            counts: HashMap::new(),
            per_node: key == HOSTNAME,
            min: 0,
            domains: min_domains,
            self_match,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod_with};
    use serde_json::json;

    fn cluster() -> Cache {
        let mut c = Cache::default();
        for (n, zone) in [("a1", "za"), ("a2", "za"), ("b1", "zb"), ("c1", "zc")] {
            c.apply_node(&node(n, "4", "8Gi", json!({ZONE: zone})));
        }
        c
    }

    fn web(name: &str, constraints: serde_json::Value) -> std::sync::Arc<Pod> {
        pod_with(
            name,
            json!({"labels": {"app": "web"}}),
            json!({"topologySpreadConstraints": constraints}),
        )
    }

    #[test]
    fn do_not_schedule_keeps_the_skew() {
        let mut c = cluster();
        let hard = json!([{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}]);
        c.assume(web("w1", hard.clone()), "a1");
        let p = web("w2", hard.clone());
        let aff = NodeAffinity::new(&p);
        let s = Spread::new(&p, &c, &aff);
        assert_eq!(s.check(c.node("a2").unwrap()), Err(Reason::Spread));
        assert_eq!(s.check(c.node("b1").unwrap()), Ok(()));
        let mut unlabelled = Cache::default();
        unlabelled.apply_node(&node("x", "1", "1Gi", json!({})));
        let s = Spread::new(&p, &unlabelled, &aff);
        assert_eq!(
            s.check(unlabelled.node("x").unwrap()),
            Err(Reason::SpreadMissingLabel)
        );
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let mut c = cluster();
        let soft = json!([{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "web"}}}]);
        c.assume(web("w1", soft.clone()), "a1");
        let p = web("w2", soft);
        let aff = NodeAffinity::new(&p);
        let s = Spread::new(&p, &c, &aff);
        assert!(s.scores());
        assert!(s.raw_score(c.node("a2").unwrap()) > s.raw_score(c.node("b1").unwrap()));
        assert_eq!(
            s.check(c.node("a2").unwrap()),
            Ok(()),
            "soft: never a filter"
        );
    }

    #[test]
    fn the_default_spread_from_cache_counts_equals_the_node_walk() {
        let mut c = cluster();
        let owned = |name: &str, extra: serde_json::Value| {
            pod_with(
                name,
                json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "rs", "uid": "rs-uid", "controller": true}]}),
                extra,
            )
        };
        // Every node (and then some) holds pods of the owner; one moves off.
        for (i, n) in ["a1", "a1", "a2", "b1", "c1", "c1", "c1"]
            .iter()
            .enumerate()
        {
            c.assume(owned(&format!("p{i}"), json!({})), n);
        }
        c.remove_pod("default/p6");
        // The fast path: no node affinity.
        let fast_pod = owned("new", json!({}));
        let fast = Spread::new(&fast_pod, &c, &NodeAffinity::new(&fast_pod));
        // The walk: an affinity every node passes, which takes the slow path.
        let walk_pod = owned(
            "new",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "Exists"}]}]}}}}),
        );
        let walk = Spread::new(&walk_pod, &c, &NodeAffinity::new(&walk_pod));
        for n in ["a1", "a2", "b1", "c1"] {
            let node = c.node(n).unwrap();
            assert_eq!(fast.raw_score(node), walk.raw_score(node), "node {n}");
        }
        for (f, w) in fast.constraints.iter().zip(&walk.constraints) {
            assert_eq!((f.min, f.domains), (w.min, w.domains), "{}", f.topology_key);
        }
    }

    #[test]
    fn controller_pods_spread_by_default() {
        let mut c = cluster();
        let owned = |name: &str| {
            pod_with(
                name,
                json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "rs", "uid": "rs-uid", "controller": true}]}),
                json!({}),
            )
        };
        c.assume(owned("p1"), "a1");
        let p = owned("p2");
        let aff = NodeAffinity::new(&p);
        let s = Spread::new(&p, &c, &aff);
        let score = |n: &str| s.raw_score(c.node(n).unwrap());
        assert!(score("a1") > score("a2"), "same node");
        assert!(score("a2") > score("b1"), "same zone");
        assert_eq!(score("b1"), score("c1"));
        let lone = pod_with("lone", json!({}), json!({}));
        assert!(!Spread::new(&lone, &c, &NodeAffinity::new(&lone)).scores());
    }
}
