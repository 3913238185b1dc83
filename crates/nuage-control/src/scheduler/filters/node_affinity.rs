//! `nodeSelector` and node affinity: the required terms filter nodes, the
//! preferred ones add their weights to the score (kube-scheduler's
//! NodeAffinity).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use super::Reason;
use crate::scheduler::cache::NodeInfo;

/// A pod's node constraints, borrowed from its spec.
pub struct NodeAffinity<'a> {
    selector: Option<&'a BTreeMap<String, String>>,
    /// `None`: no required affinity; `Some(terms)`: one must match.
    required: Option<&'a [NodeSelectorTerm]>,
    preferred: Vec<(i32, &'a NodeSelectorTerm)>,
}

impl<'a> NodeAffinity<'a> {
    /// Reads `pod`'s node selector and node affinity.
    pub fn new(pod: &'a Pod) -> Self {
        let spec = pod.spec.as_ref();
        let affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        Self {
            selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .filter(|s| !s.is_empty()),
            required: affinity
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|r| r.node_selector_terms.as_slice()),
            preferred: affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|p| p.iter().map(|t| (t.weight, &t.preference)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether every node passes (no node selector, no required terms).
    pub fn allows_every_node(&self) -> bool {
        self.selector.is_none() && self.required.is_none()
    }

    /// Whether the pod has preferences to score.
    pub fn has_preferences(&self) -> bool {
        !self.preferred.is_empty()
    }

    /// Whether `node` matches the selector and one of the required terms.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let labels = node.labels();
        if let Some(selector) = self.selector {
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return false;
            }
        }
        match self.required {
            None => true,
            Some(terms) => terms.iter().any(|t| term_matches(t, node)),
        }
    }

    /// The filter.
    pub fn check(&self, node: &NodeInfo) -> Result<(), Reason> {
        if self.matches(node) {
            Ok(())
        } else {
            Err(Reason::NodeAffinity)
        }
    }

    /// The sum of the weights of the preferred terms `node` matches.
    pub fn preference(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, t)| term_matches(t, node))
            .map(|(w, _)| *w as i64)
            .sum()
    }
}

/// A term matches when all its expressions and fields do; an empty term
/// matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, node.label(&r.key)))
        && fields.iter().all(|r| {
            // `metadata.name` is the only field node affinity selects on.
            let value = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, value)
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(number), values) else {
                return false;
            };
            let Some(bound) = number(bound) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::Cache;
    use serde_json::json;

    fn cache() -> Cache {
        let mut c = Cache::default();
        c.apply_node(&node(
            "a",
            "1",
            "1Gi",
            json!({"zone": "z1", "cores": "8", "disk": "ssd"}),
        ));
        c.apply_node(&node("b", "1", "1Gi", json!({"zone": "z2", "cores": "32"})));
        c
    }

    fn matching(c: &Cache, spec: serde_json::Value) -> Vec<String> {
        let p = pod("p", spec);
        let a = NodeAffinity::new(&p);
        let mut names: Vec<String> = c
            .nodes()
            .iter()
            .filter(|n| a.matches(n))
            .map(|n| n.name.clone())
            .collect();
        names.sort();
        names
    }

    fn required(exprs: serde_json::Value, fields: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs, "matchFields": fields}]}}}})
    }

    #[test]
    fn node_selector_needs_every_label() {
        let c = cache();
        assert_eq!(matching(&c, json!({"nodeSelector": {"zone": "z1"}})), ["a"]);
        assert_eq!(
            matching(&c, json!({"nodeSelector": {"zone": "z1", "disk": "hdd"}})),
            Vec::<String>::new()
        );
        assert_eq!(matching(&c, json!({})), ["a", "b"]);
    }

    #[test]
    fn required_terms_and_their_operators() {
        let c = cache();
        let e = |op: &str, values: serde_json::Value, key: &str| {
            required(
                json!([{"key": key, "operator": op, "values": values}]),
                json!([]),
            )
        };
        assert_eq!(matching(&c, e("In", json!(["z2", "z3"]), "zone")), ["b"]);
        assert_eq!(matching(&c, e("NotIn", json!(["z2"]), "zone")), ["a"]);
        assert_eq!(matching(&c, e("Exists", json!(null), "disk")), ["a"]);
        assert_eq!(matching(&c, e("DoesNotExist", json!(null), "disk")), ["b"]);
        assert_eq!(matching(&c, e("Gt", json!(["16"]), "cores")), ["b"]);
        assert_eq!(matching(&c, e("Lt", json!(["16"]), "cores")), ["a"]);
        assert_eq!(
            matching(&c, e("Gt", json!(["x"]), "cores")),
            Vec::<String>::new()
        );
        let by_name = required(
            json!([]),
            json!([{"key": "metadata.name", "operator": "In", "values": ["b"]}]),
        );
        assert_eq!(matching(&c, by_name), ["b"]);
        let empty_term = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{}]}}}});
        assert_eq!(matching(&c, empty_term), Vec::<String>::new());
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let c = cache();
        let p = pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}},
                {"weight": 3, "preference": {"matchExpressions": [{"key": "cores", "operator": "Exists"}]}},
            ]}}}),
        );
        let a = NodeAffinity::new(&p);
        assert_eq!(a.preference(c.node("a").unwrap()), 3);
        assert_eq!(a.preference(c.node("b").unwrap()), 13);
    }
}
