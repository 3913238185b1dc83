//! Required pod affinity and anti-affinity (kube-scheduler's
//! InterPodAffinity filter): a pod's anti-affinity keeps it out of the
//! topology domains (hostname, zone, any node label) holding a pod it
//! selects; an existing pod's anti-affinity keeps out the pods it selects;
//! a pod's affinity needs, in the node's domain, a pod it selects.
//!
//! The domains are worked out once per pod (`InterPod::new`, O(pods) and
//! only for pods with such terms or when some bound pod has
//! anti-affinity); checking a node is then a set lookup.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use nuage_model::selector::LabelSelector;

use super::{label_selector, Reason};
use crate::scheduler::cache::{Cache, NodeInfo};

/// Which namespaces a term looks in.
enum Namespaces {
    All,
    Listed(Vec<String>),
}

/// A parsed affinity term.
struct Term {
    selector: LabelSelector,
    namespaces: Namespaces,
    topology_key: String,
}

impl Term {
    /// `owner_ns` is the namespace of the pod the term belongs to: the
    /// default when the term names none.
    fn new(t: &PodAffinityTerm, owner_ns: &str) -> Self {
        let listed: Vec<String> = t.namespaces.clone().unwrap_or_default();
        // Namespace labels are not cached: an empty namespaceSelector
        // (every namespace) is honoured, a non-empty one is not.
        let all = t.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        });
        let namespaces = if all {
            Namespaces::All
        } else if listed.is_empty() {
            Namespaces::Listed(vec![owner_ns.to_string()])
        } else {
            Namespaces::Listed(listed)
        };
        Self {
            selector: label_selector(t.label_selector.as_ref()),
            namespaces,
            topology_key: t.topology_key.clone(),
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let in_ns = match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Listed(l) => l.iter().any(|n| n == ns),
        };
        static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        in_ns
            && self
                .selector
                .matches(pod.metadata.labels.as_ref().unwrap_or(&NONE))
    }
}

fn required_terms(pod: &Pod, anti: bool) -> Vec<Term> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| Term::new(t, ns))
        .collect()
}

/// Domain values (per topology key) a pod may not, or must, go to.
#[derive(Default)]
pub struct InterPod {
    /// The pod's anti-affinity: domains holding a pod it selects.
    anti: HashMap<String, HashSet<String>>,
    /// Existing pods' anti-affinity: domains of pods selecting this pod.
    existing: HashMap<String, HashSet<String>>,
    /// The pod's affinity: per term, domains holding a pod it selects.
    affinity: Vec<(String, HashSet<String>)>,
    /// No pod matches the affinity anywhere but the pod matches its own
    /// terms (the first of a group): any node with the keys will do.
    affinity_self: bool,
}

impl InterPod {
    /// Works out the domains for `pod` from what `cache` holds.
    pub fn new(pod: &Pod, cache: &Cache) -> Self {
        let mut s = Self::default();
        for (existing, node) in cache.anti_affinity_pods() {
            for t in required_terms(&existing.pod, true) {
                if let (true, Some(v)) = (t.matches(pod), node.label(&t.topology_key)) {
                    s.existing
                        .entry(t.topology_key.clone())
                        .or_default()
                        .insert(v.to_string());
                }
            }
        }
        let anti = required_terms(pod, true);
        let affinity = required_terms(pod, false);
        if anti.is_empty() && affinity.is_empty() {
            return s;
        }
        s.affinity = affinity
            .iter()
            .map(|t| (t.topology_key.clone(), HashSet::new()))
            .collect();
        for node in cache.nodes() {
            for info in node.pods.values() {
                for t in &anti {
                    if let (true, Some(v)) = (t.matches(&info.pod), node.label(&t.topology_key)) {
                        s.anti
                            .entry(t.topology_key.clone())
                            .or_default()
                            .insert(v.to_string());
                    }
                }
                for (i, t) in affinity.iter().enumerate() {
                    if let (true, Some(v)) = (t.matches(&info.pod), node.label(&t.topology_key)) {
                        s.affinity[i].1.insert(v.to_string());
                    }
                }
            }
        }
        s.affinity_self = !affinity.is_empty()
            && s.affinity.iter().all(|(_, d)| d.is_empty())
            && affinity.iter().all(|t| t.matches(pod));
        s
    }

    /// The filter.
    pub fn check(&self, node: &NodeInfo) -> Result<(), Reason> {
        let in_any = |sets: &HashMap<String, HashSet<String>>| {
            sets.iter()
                .any(|(key, values)| node.label(key).is_some_and(|v| values.contains(v)))
        };
        if in_any(&self.anti) {
            return Err(Reason::PodAntiAffinity);
        }
        if in_any(&self.existing) {
            return Err(Reason::ExistingAntiAffinity);
        }
        let affinity_ok = if self.affinity_self {
            self.affinity
                .iter()
                .all(|(key, _)| node.label(key).is_some())
        } else {
            self.affinity
                .iter()
                .all(|(key, values)| node.label(key).is_some_and(|v| values.contains(v)))
        };
        if affinity_ok {
            Ok(())
        } else {
            Err(Reason::PodAffinity)
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
        for (n, zone) in [("a1", "za"), ("a2", "za"), ("b1", "zb")] {
            c.apply_node(&node(
                n,
                "4",
                "8Gi",
                json!({"topology.kubernetes.io/zone": zone}),
            ));
        }
        c
    }

    fn term(kind: &str, app: &str, key: &str) -> serde_json::Value {
        json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}})
    }

    fn allowed(c: &Cache, pod: &Pod) -> Vec<String> {
        let ip = InterPod::new(pod, c);
        let mut v: Vec<String> = c
            .nodes()
            .iter()
            .filter(|n| ip.check(n).is_ok())
            .map(|n| n.name.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn anti_affinity_by_hostname_and_zone() {
        let mut c = cluster();
        c.assume(
            pod_with("web-1", json!({"labels": {"app": "web"}}), json!({})),
            "a1",
        );
        let by_host = pod_with(
            "web-2",
            json!({"labels": {"app": "web"}}),
            term("podAntiAffinity", "web", "kubernetes.io/hostname"),
        );
        assert_eq!(allowed(&c, &by_host), ["a2", "b1"]);
        let by_zone = pod_with(
            "web-3",
            json!({"labels": {"app": "web"}}),
            term("podAntiAffinity", "web", "topology.kubernetes.io/zone"),
        );
        assert_eq!(allowed(&c, &by_zone), ["b1"]);
        let other_ns = pod_with(
            "web-4",
            json!({"namespace": "other"}),
            term("podAntiAffinity", "web", "kubernetes.io/hostname"),
        );
        assert_eq!(
            allowed(&c, &other_ns).len(),
            3,
            "terms look in their own namespace"
        );
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let mut c = cluster();
        c.assume(
            pod_with(
                "loner",
                json!({}),
                term("podAntiAffinity", "web", "topology.kubernetes.io/zone"),
            ),
            "b1",
        );
        let web = pod_with("web", json!({"labels": {"app": "web"}}), json!({}));
        assert_eq!(allowed(&c, &web), ["a1", "a2"]);
        assert_eq!(
            InterPod::new(&web, &c).check(c.node("b1").unwrap()),
            Err(Reason::ExistingAntiAffinity)
        );
    }

    #[test]
    fn affinity_needs_a_matching_pod_in_the_domain_except_for_the_first() {
        let mut c = cluster();
        let first = pod_with(
            "db-1",
            json!({"labels": {"app": "db"}}),
            term("podAffinity", "db", "topology.kubernetes.io/zone"),
        );
        assert_eq!(
            allowed(&c, &first).len(),
            3,
            "the first of its group goes anywhere"
        );
        let stranger = pod_with(
            "x",
            json!({}),
            term("podAffinity", "db", "topology.kubernetes.io/zone"),
        );
        assert!(allowed(&c, &stranger).is_empty());
        c.assume(first, "b1");
        assert_eq!(allowed(&c, &stranger), ["b1"]);
    }
}
