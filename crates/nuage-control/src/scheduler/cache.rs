//! The scheduler's picture of the cluster (kube-scheduler's cache): per
//! node, what it offers and what the pods bound to it — or assumed to be,
//! between a decision and the informer showing the binding — already take.
//! Kept up to date by the informers' events, so deciding for a pod never
//! lists anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use nuage_client::informer::key_of;

use super::resources::{pod_requests, PodRequests, Resources};

/// A host port a pod binds: `protocol`, `ip` (empty for every address) and
/// `port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The host address; empty or `0.0.0.0` for all.
    pub ip: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Whether two bindings collide: same protocol and port, and the same
    /// address or either on every address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wild = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || wild(&self.ip) || wild(&other.ip))
    }
}

/// The host ports of a pod's containers.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p.host_ip.clone().unwrap_or_default(),
                port,
            })
        })
        .collect()
}

/// The uid of the controller owning `pod` (its ownerReference with
/// `controller: true`).
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// A pod counted on a node.
pub struct PodInfo {
    /// The pod as last seen (or as assumed).
    pub pod: Arc<Pod>,
    /// What it takes.
    pub requests: PodRequests,
    /// Its host ports.
    pub host_ports: Vec<HostPort>,
    /// Assumed by the scheduler, not yet seen bound.
    pub assumed: bool,
}

impl PodInfo {
    /// Computes what `pod` takes.
    pub fn new(pod: Arc<Pod>, assumed: bool) -> Self {
        let requests = pod.spec.as_ref().map(pod_requests).unwrap_or_default();
        let host_ports = host_ports(&pod);
        Self {
            pod,
            requests,
            host_ports,
            assumed,
        }
    }

    fn has_required_anti_affinity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty())
    }
}

/// One node and what is bound to it.
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The Node; `None` once deleted while pods still name it (they are
    /// kept counted in case it comes back, as kube-scheduler does).
    pub node: Option<Arc<Node>>,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allowed_pods: i64,
    /// The sum of the requests of the pods counted here.
    pub requested: Resources,
    /// The sum of their scoring CPU (see `PodRequests::non_zero_cpu`).
    pub non_zero_cpu: i64,
    /// The sum of their scoring memory.
    pub non_zero_memory: i64,
    /// Pods counted here, by key.
    pub pods: HashMap<String, PodInfo>,
    /// Host ports in use, with how many pods use each.
    pub ports: HashMap<HostPort, u32>,
    /// Pods here per controller uid (for the default spread).
    pub owners: HashMap<String, u32>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NodeInfo {
    fn empty(name: &str) -> Self {
        Self {
            name: name.to_string(),
            node: None,
            allocatable: Resources::default(),
            allowed_pods: 0,
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            pods: HashMap::new(),
            ports: HashMap::new(),
            owners: HashMap::new(),
            ready: false,
            unschedulable: false,
        }
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&NO_LABELS)
    }

    /// One label of the node.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().get(key).map(String::as_str)
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[])
    }

    /// Sets the Node, returning whether anything the scheduler decides on
    /// changed (a heartbeat alone does not).
    fn set_node(&mut self, node: &Arc<Node>) -> bool {
        let status = node.status.as_ref();
        let allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        let allowed_pods = allocatable
            .and_then(|a| a.get("pods"))
            .and_then(|q| nuage_model::quantity::Quantity::parse(&q.0))
            .map(|q| q.value().clamp(0, i64::MAX as i128) as i64)
            .unwrap_or(110);
        let allocatable = allocatable.map(Resources::from_map).unwrap_or_default();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let old = self.node.as_ref();
        let changed = old.is_none()
            || self.allocatable != allocatable
            || self.allowed_pods != allowed_pods
            || self.ready != ready
            || self.unschedulable != unschedulable
            || old.map(|o| &o.metadata.labels) != Some(&node.metadata.labels)
            || old
                .and_then(|o| o.spec.as_ref())
                .and_then(|s| s.taints.as_ref())
                != node.spec.as_ref().and_then(|s| s.taints.as_ref());
        self.node = Some(Arc::clone(node));
        self.allocatable = allocatable;
        self.allowed_pods = allowed_pods;
        self.ready = ready;
        self.unschedulable = unschedulable;
        changed
    }

    fn add_pod(&mut self, key: String, info: PodInfo) {
        self.requested.add(&info.requests.resources);
        self.non_zero_cpu += info.requests.non_zero_cpu;
        self.non_zero_memory += info.requests.non_zero_memory;
        for p in &info.host_ports {
            *self.ports.entry(p.clone()).or_insert(0) += 1;
        }
        if let Some(owner) = controller_uid(&info.pod) {
            *self.owners.entry(owner.to_string()).or_insert(0) += 1;
        }
        if let Some(old) = self.pods.insert(key, info) {
            // Callers remove first; keep the sums right if one did not.
            self.uncount(&old);
        }
    }

    fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let info = self.pods.remove(key)?;
        self.uncount(&info);
        Some(info)
    }

    fn uncount(&mut self, info: &PodInfo) {
        self.requested.sub(&info.requests.resources);
        self.non_zero_cpu -= info.requests.non_zero_cpu;
        self.non_zero_memory -= info.requests.non_zero_memory;
        for p in &info.host_ports {
            if let Some(n) = self.ports.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.ports.remove(p);
                }
            }
        }
        if let Some(owner) = controller_uid(&info.pod) {
            if let Some(n) = self.owners.get_mut(owner) {
                *n -= 1;
                if *n == 0 {
                    self.owners.remove(owner);
                }
            }
        }
    }
}

/// Whether a pod no longer holds its node's resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The node a pod is bound to, if any.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// One controller's pods across the cluster, for the default spread
/// without a walk over every node.
#[derive(Default, Debug)]
pub struct OwnerSpread {
    /// Nodes holding n ≥ 1 of its pods, by n.
    pub per_node: BTreeMap<u32, usize>,
    /// Its pods per zone (the node's zone when the pod was counted).
    pub per_zone: HashMap<String, i64>,
}

impl OwnerSpread {
    /// Nodes holding at least one of its pods.
    pub fn nodes(&self) -> usize {
        self.per_node.values().sum()
    }

    fn moved(&mut self, from: u32, to: u32) {
        if from > 0 {
            if let Some(n) = self.per_node.get_mut(&from) {
                *n -= 1;
                if *n == 0 {
                    self.per_node.remove(&from);
                }
            }
        }
        if to > 0 {
            *self.per_node.entry(to).or_insert(0) += 1;
        }
    }
}

/// Every node and the pods on it.
#[derive(Default)]
pub struct Cache {
    /// Nodes in a stable order (sampling walks it round-robin).
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pod key → the node it is counted on.
    pod_node: HashMap<String, String>,
    /// Pods with required anti-affinity terms (key → node): few, and every
    /// decision must check them.
    anti_affinity: HashMap<String, String>,
    /// Per controller uid: where its pods are.
    owner_spread: HashMap<String, OwnerSpread>,
    /// The zone each counted pod of a controller was counted in.
    pod_zone: HashMap<String, String>,
    /// Existing nodes per zone label value.
    zone_nodes: HashMap<String, usize>,
    /// Existing nodes with a hostname label.
    hostname_nodes: usize,
}

/// The zone label.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The hostname label.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

impl Cache {
    /// Every node, deleted ones still holding pods included.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The number of existing nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.node.is_some()).count()
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Pods with required anti-affinity terms and their nodes.
    pub fn anti_affinity_pods(&self) -> impl Iterator<Item = (&PodInfo, &NodeInfo)> {
        self.anti_affinity.iter().filter_map(|(key, node)| {
            let n = self.node(node)?;
            Some((n.pods.get(key)?, n))
        })
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo::empty(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    /// Where a controller's pods are (`None`: it has none counted).
    pub fn owner_spread(&self, uid: &str) -> Option<&OwnerSpread> {
        self.owner_spread.get(uid)
    }

    /// Existing nodes per zone.
    pub fn zone_nodes(&self) -> &HashMap<String, usize> {
        &self.zone_nodes
    }

    /// Existing nodes with a hostname label.
    pub fn hostname_nodes(&self) -> usize {
        self.hostname_nodes
    }

    /// Counts an existing node's zone and hostname labels in (`sign` 1) or
    /// out (-1).
    fn count_labels(&mut self, name: &str, sign: i64) {
        let Some(info) = self.node(name).filter(|n| n.node.is_some()) else {
            return;
        };
        let zone = info.label(ZONE_LABEL).map(str::to_string);
        let hostname = info.label(HOSTNAME_LABEL).is_some();
        if let Some(zone) = zone {
            let n = self.zone_nodes.entry(zone.clone()).or_insert(0);
            *n = n.saturating_add_signed(sign as isize);
            if *n == 0 {
                self.zone_nodes.remove(&zone);
            }
        }
        if hostname {
            self.hostname_nodes = self.hostname_nodes.saturating_add_signed(sign as isize);
        }
    }

    /// Adds or updates a Node; true when the change could let a pod fit.
    pub fn apply_node(&mut self, node: &Arc<Node>) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.count_labels(&name, -1);
        let changed = self.node_mut(&name).set_node(node);
        self.count_labels(&name, 1);
        changed
    }

    /// Removes a Node (its pods stay counted until they go).
    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        self.count_labels(name, -1);
        self.nodes[i].node = None;
        if self.nodes[i].pods.is_empty() {
            self.drop_node(i);
        }
    }

    fn drop_node(&mut self, i: usize) {
        let gone = self.nodes.swap_remove(i);
        self.index.remove(&gone.name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Applies a pod's new state; true when it freed room on a node (it
    /// finished, or moved).
    pub fn apply_pod(&mut self, pod: &Arc<Pod>) -> bool {
        let key = key_of(&pod.metadata);
        match node_name(pod) {
            Some(node) if !is_terminal(pod) => {
                let node = node.to_string();
                self.remove_pod(&key);
                self.place(key, node, PodInfo::new(Arc::clone(pod), false));
                false
            }
            Some(_) => self.remove_pod(&key),
            // Unbound: an assumed copy stays until the binding shows up
            // or the bind fails.
            None => false,
        }
    }

    fn place(&mut self, key: String, node: String, info: PodInfo) {
        if info.has_required_anti_affinity() {
            self.anti_affinity.insert(key.clone(), node.clone());
        }
        self.pod_node.insert(key.clone(), node.clone());
        let owner = controller_uid(&info.pod).map(str::to_string);
        let target = self.node_mut(&node);
        let zone = target.label(ZONE_LABEL).map(str::to_string);
        target.add_pod(key.clone(), info);
        if let Some(owner) = owner {
            let now = target.owners.get(&owner).copied().unwrap_or(0);
            let spread = self.owner_spread.entry(owner).or_default();
            spread.moved(now.saturating_sub(1), now);
            if let Some(zone) = zone {
                *spread.per_zone.entry(zone.clone()).or_insert(0) += 1;
                self.pod_zone.insert(key, zone);
            }
        }
    }

    /// Forgets a pod; true when it was counted on a node.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(node) = self.pod_node.remove(key) else {
            return false;
        };
        self.anti_affinity.remove(key);
        let zone = self.pod_zone.remove(key);
        let Some(&i) = self.index.get(&node) else {
            return false;
        };
        if let Some(info) = self.nodes[i].remove_pod(key) {
            if let Some(owner) = controller_uid(&info.pod) {
                let now = self.nodes[i].owners.get(owner).copied().unwrap_or(0);
                if let Some(spread) = self.owner_spread.get_mut(owner) {
                    spread.moved(now + 1, now);
                    if let Some(zone) = zone {
                        if let Some(n) = spread.per_zone.get_mut(&zone) {
                            *n -= 1;
                            if *n <= 0 {
                                spread.per_zone.remove(&zone);
                            }
                        }
                    }
                    if spread.per_node.is_empty() && spread.per_zone.is_empty() {
                        self.owner_spread.remove(owner);
                    }
                }
            }
        }
        if self.nodes[i].node.is_none() && self.nodes[i].pods.is_empty() {
            self.drop_node(i);
        }
        true
    }

    /// Counts `pod` on `node` at once, before its binding is written.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let key = key_of(&pod.metadata);
        self.remove_pod(&key);
        self.place(key, node.to_string(), PodInfo::new(pod, true));
    }

    /// Undoes an assumption (the bind failed); a pod already seen bound
    /// stays.
    pub fn forget(&mut self, key: &str) {
        let assumed = self
            .pod_node
            .get(key)
            .and_then(|n| self.node(n))
            .and_then(|n| n.pods.get(key))
            .is_some_and(|p| p.assumed);
        if assumed {
            self.remove_pod(key);
        }
    }

    /// Whether a pod is counted on a node (bound or assumed).
    pub fn is_placed(&self, key: &str) -> bool {
        self.pod_node.contains_key(key)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Ready node with `cpu`, `memory`, room for 110 pods, and `labels`.
    pub fn node(name: &str, cpu: &str, memory: &str, labels: serde_json::Value) -> Arc<Node> {
        let mut l = json!({"kubernetes.io/hostname": name});
        l.as_object_mut()
            .unwrap()
            .extend(labels.as_object().cloned().unwrap_or_default());
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": l},
                "status": {
                    "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }))
            .unwrap(),
        )
    }

    /// A pod named `name` in `default` with `spec`.
    pub fn pod(name: &str, spec: serde_json::Value) -> Arc<Pod> {
        pod_with(name, json!({}), spec)
    }

    /// A pod with extra `metadata` fields.
    pub fn pod_with(name: &str, meta: serde_json::Value, spec: serde_json::Value) -> Arc<Pod> {
        let mut m = json!({"name": name, "namespace": "default"});
        m.as_object_mut()
            .unwrap()
            .extend(meta.as_object().cloned().unwrap_or_default());
        let mut s = json!({"containers": [{"name": "c"}]});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().cloned().unwrap_or_default());
        Arc::new(serde_json::from_value(json!({"metadata": m, "spec": s})).unwrap())
    }

    fn requesting(name: &str, node: &str, cpu: &str, port: Option<i32>) -> Arc<Pod> {
        let mut c = json!({"name": "c", "resources": {"requests": {"cpu": cpu}}});
        if let Some(p) = port {
            c["ports"] = json!([{"containerPort": p, "hostPort": p}]);
        }
        pod(name, json!({"nodeName": node, "containers": [c]}))
    }

    #[test]
    fn bound_pods_add_up_and_finished_ones_free_their_room() {
        let mut c = Cache::default();
        assert!(c.apply_node(&node("n1", "4", "8Gi", json!({}))));
        assert!(
            !c.apply_node(&node("n1", "4", "8Gi", json!({}))),
            "no change"
        );
        c.apply_pod(&requesting("a", "n1", "1", Some(80)));
        c.apply_pod(&requesting("b", "n1", "500m", None));
        let n = c.node("n1").unwrap();
        assert_eq!(n.requested.milli_cpu, 1500);
        assert_eq!(n.pods.len(), 2);
        assert_eq!(n.ports.len(), 1);
        let mut done = (*requesting("a", "n1", "1", Some(80))).clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert!(c.apply_pod(&Arc::new(done)));
        let n = c.node("n1").unwrap();
        assert_eq!((n.requested.milli_cpu, n.ports.len()), (500, 0));
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_seen_bound() {
        let mut c = Cache::default();
        c.apply_node(&node("n1", "4", "8Gi", json!({})));
        c.assume(requesting("a", "", "1", None), "n1");
        assert!(c.is_placed("default/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.forget("default/a");
        assert!(!c.is_placed("default/a"));
        c.assume(requesting("a", "", "1", None), "n1");
        c.apply_pod(&requesting("a", "n1", "1", None));
        c.forget("default/a");
        assert!(c.is_placed("default/a"), "seen bound: no longer assumed");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
    }

    #[test]
    fn a_deleted_node_keeps_its_pods_until_they_go() {
        let mut c = Cache::default();
        c.apply_node(&node("n1", "4", "8Gi", json!({})));
        c.apply_node(&node("n2", "4", "8Gi", json!({})));
        c.apply_pod(&requesting("a", "n1", "1", None));
        c.remove_node("n1");
        c.remove_node("n2");
        assert_eq!(c.node_count(), 0);
        assert_eq!(c.nodes().len(), 1);
        c.apply_node(&node("n1", "4", "8Gi", json!({})));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.remove_node("n1");
        c.remove_pod("default/a");
        assert!(c.nodes().is_empty());
    }

    #[test]
    fn host_ports_conflict_on_any_address() {
        let p = |ip: &str, port| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port,
        };
        assert!(p("", 80).conflicts(&p("127.0.0.1", 80)));
        assert!(p("127.0.0.2", 80).conflicts(&p("127.0.0.2", 80)));
        assert!(!p("127.0.0.2", 80).conflicts(&p("127.0.0.3", 80)));
        assert!(!p("", 80).conflicts(&p("", 81)));
    }
}
