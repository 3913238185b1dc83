//! Resource amounts as the scheduler adds and compares them: what a pod
//! requests (kube-scheduler's `computePodResourceRequest`) and what a node
//! offers, in integers (millicores, bytes, counts) so that checking a node
//! is a few comparisons.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use nuage_model::quantity::Quantity;

/// The GPU resource name nuage's agent reports.
pub const GPU: &str = "nvidia.com/gpu";

/// CPU a container without a CPU request counts as when scoring (100m, as
/// kube-scheduler): otherwise pods without requests would all pile on one
/// node.
const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory a container without a memory request counts as when scoring.
const DEFAULT_MEMORY: i64 = 200 << 20;

/// Amounts of the resources the scheduler checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// `nvidia.com/gpu` devices.
    pub gpu: i64,
    /// Other extended resources (`example.com/foo`, `hugepages-2Mi`), by
    /// name; usually empty.
    pub scalars: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `requests`, `limits`, `allocatable` or `overhead` map.
    /// Unparsable quantities count as zero (the API validated them).
    pub fn from_map(map: &BTreeMap<String, K8sQuantity>) -> Self {
        let mut r = Self::default();
        for (name, q) in map {
            r.set(name, quantity(name, q));
        }
        r
    }

    /// The amount of resource `name`.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            GPU => self.gpu,
            other => self.scalars.get(other).copied().unwrap_or(0),
        }
    }

    fn set(&mut self, name: &str, v: i64) {
        match name {
            "cpu" => self.milli_cpu = v,
            "memory" => self.memory = v,
            "ephemeral-storage" => self.ephemeral_storage = v,
            GPU => self.gpu = v,
            // The pod count is not a request; nodes' `pods` is read apart.
            "pods" => {}
            other => {
                self.scalars.insert(other.to_string(), v);
            }
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.gpu += other.gpu;
        for (k, v) in &other.scalars {
            *self.scalars.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.gpu -= other.gpu;
        for (k, v) in &other.scalars {
            *self.scalars.entry(k.clone()).or_insert(0) -= v;
        }
        self.scalars.retain(|_, v| *v != 0);
    }

    /// Raises each amount of `self` to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.gpu = self.gpu.max(other.gpu);
        for (k, v) in &other.scalars {
            let e = self.scalars.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// A quantity in the unit the scheduler counts `name` in.
fn quantity(name: &str, q: &K8sQuantity) -> i64 {
    let Some(q) = Quantity::parse(&q.0) else {
        return 0;
    };
    let v = if name == "cpu" { q.milli() } else { q.value() };
    v.clamp(0, i64::MAX as i128) as i64
}

/// What a pod asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// The requests checked against allocatable.
    pub resources: Resources,
    /// CPU and memory for scoring, a container without a request counting
    /// as 100m and 200Mi.
    pub non_zero_cpu: i64,
    /// See `non_zero_cpu`.
    pub non_zero_memory: i64,
}

/// A container's requests: `requests`, each missing one taken from
/// `limits` (the API server's defaulting, applied here too in case a
/// client bypassed it).
fn container_requests(c: &Container) -> Resources {
    let Some(res) = &c.resources else {
        return Resources::default();
    };
    let mut r = res
        .limits
        .as_ref()
        .map(Resources::from_map)
        .unwrap_or_default();
    if let Some(requests) = &res.requests {
        for (name, q) in requests {
            r.set(name, quantity(name, q));
        }
    }
    r
}

fn non_zero(r: &Resources) -> (i64, i64) {
    let cpu = if r.milli_cpu == 0 {
        DEFAULT_MILLI_CPU
    } else {
        r.milli_cpu
    };
    let memory = if r.memory == 0 {
        DEFAULT_MEMORY
    } else {
        r.memory
    };
    (cpu, memory)
}

/// A pod's requests: the sum of its containers, or more if an init
/// container needs more while it runs (sidecars — init containers with
/// `restartPolicy: Always` — keep running and add up), plus `overhead`.
pub fn pod_requests(spec: &PodSpec) -> PodRequests {
    let mut sum = Resources::default();
    let (mut cpu, mut memory) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        let (c, m) = non_zero(&r);
        cpu += c;
        memory += m;
        sum.add(&r);
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    let (mut sidecar_cpu, mut sidecar_memory) = (0, 0);
    let (mut init_cpu, mut init_memory) = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let (c_cpu, c_mem) = non_zero(&r);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sidecar_cpu += c_cpu;
            sidecar_memory += c_mem;
            init_peak.max_with(&sidecars);
        } else {
            let mut during = sidecars.clone();
            during.add(&r);
            init_peak.max_with(&during);
        }
        init_cpu = init_cpu.max(sidecar_cpu + c_cpu);
        init_memory = init_memory.max(sidecar_memory + c_mem);
    }
    sum.add(&sidecars);
    sum.max_with(&init_peak);
    cpu = (cpu + sidecar_cpu).max(init_cpu);
    memory = (memory + sidecar_memory).max(init_memory);
    if let Some(overhead) = &spec.overhead {
        let o = Resources::from_map(overhead);
        sum.add(&o);
        cpu += o.milli_cpu;
        memory += o.memory;
    }
    PodRequests {
        resources: sum,
        non_zero_cpu: cpu,
        non_zero_memory: memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn containers_add_up_and_limits_stand_in_for_requests() {
        let s = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}}},
        ]}));
        let r = pod_requests(&s);
        assert_eq!(r.resources.milli_cpu, 1250);
        assert_eq!(r.resources.memory, (64 << 20) + (1 << 30));
        assert_eq!(r.resources.gpu, 1);
        assert_eq!(r.non_zero_cpu, 1250);
    }

    #[test]
    fn init_containers_count_by_their_peak() {
        let s = spec(json!({
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}}],
        }));
        let r = pod_requests(&s).resources;
        assert_eq!((r.milli_cpu, r.memory), (2000, 100 << 20));
    }

    #[test]
    fn sidecars_add_to_the_containers() {
        let s = spec(json!({
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}],
            "overhead": {"cpu": "10m"},
        }));
        assert_eq!(pod_requests(&s).resources.milli_cpu, 610);
    }

    #[test]
    fn pods_without_requests_score_as_small_ones() {
        let s = spec(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        let r = pod_requests(&s);
        assert_eq!(r.resources, Resources::default());
        assert_eq!((r.non_zero_cpu, r.non_zero_memory), (200, 400 << 20));
    }
}
