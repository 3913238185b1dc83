//! The agent's Node: registration with capacity, addresses, labels and node
//! info; conditions kept current; and the heartbeat, a `coordination.k8s.io`
//! Lease in `kube-node-lease` renewed every 10 s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use nuage_client::Client;
use tokio::sync::watch;

use crate::host::{self, HostFacts};

/// How often the Lease is renewed (the kubelet's default).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The Lease's duration: the node lifecycle controller's grace period.
const LEASE_SECONDS: i32 = 40;
/// Pods per node (the kubelet's default).
const MAX_PODS: u64 = 110;
/// Memory kept back from pods (the kubelet's default eviction threshold).
const MEMORY_RESERVE: u64 = 100 << 20;
/// Below this much free disk the node reports DiskPressure.
const DISK_PRESSURE_BYTES: u64 = 1 << 30;

/// What the Node says about this agent.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The Node's name.
    pub name: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// The address the API server reaches this agent at.
    pub address: IpAddr,
    /// The agent's port for logs and exec.
    pub port: u16,
    /// The pod CIDR, e.g. `10.88.0.0/16`.
    pub pod_cidr: String,
    /// `nodeInfo.containerRuntimeVersion`, e.g. `crun://1.8.1`.
    pub runtime_version: String,
    /// The data dir (for disk capacity and pressure).
    pub data_dir: PathBuf,
    /// A problem with the runtime that users must see (e.g. "no isolation:
    /// the process runtime is in use").
    pub runtime_warning: Option<String>,
    /// SHA-256 (hex) of the agent's serving certificate: the API server
    /// talks to the agent only if it presents this one.
    pub certificate_sha256: String,
}

/// Creates or updates the Node and returns its uid.
pub async fn register(client: &Client, id: &NodeIdentity) -> anyhow::Result<String> {
    let facts = HostFacts::read(&id.data_dir);
    let labels = labels(id, &facts);
    loop {
        let node = match client.get::<Node>(None, &id.name).await? {
            Some(mut node) => {
                let meta_labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
                meta_labels.extend(labels.clone());
                node.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(annotations(id));
                let spec = node.spec.get_or_insert_with(NodeSpec::default);
                spec.pod_cidr = Some(id.pod_cidr.clone());
                spec.pod_cidrs = Some(vec![id.pod_cidr.clone()]);
                match client.replace(None, &node).await {
                    Ok(n) => n,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let node = Node {
                    metadata: ObjectMeta {
                        name: Some(id.name.clone()),
                        labels: Some(labels.clone()),
                        annotations: Some(annotations(id)),
                        ..ObjectMeta::default()
                    },
                    spec: Some(NodeSpec {
                        pod_cidr: Some(id.pod_cidr.clone()),
                        pod_cidrs: Some(vec![id.pod_cidr.clone()]),
                        ..NodeSpec::default()
                    }),
                    status: None,
                };
                match client.create(None, &node).await {
                    Ok(n) => n,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        update_status(client, id, &facts, None).await?;
        return Ok(uid);
    }
}

/// The pin of the agent's certificate, for the API server's proxy.
fn annotations(id: &NodeIdentity) -> BTreeMap<String, String> {
    BTreeMap::from([(
        crate::server::tls::CERTIFICATE_ANNOTATION.to_string(),
        id.certificate_sha256.clone(),
    )])
}

fn labels(id: &NodeIdentity, facts: &HostFacts) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), id.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), facts.arch.to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            facts.arch.to_string(),
        ),
    ]);
    if let Some(zone) = &id.zone {
        labels.insert("topology.kubernetes.io/zone".into(), zone.clone());
    }
    labels
}

/// The status the node reports now; `previous` keeps transition times of
/// conditions that did not change.
fn status(id: &NodeIdentity, facts: &HostFacts, previous: Option<&NodeStatus>) -> NodeStatus {
    let q = |v: u64| Quantity(v.to_string());
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), q(facts.cpus)),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", facts.memory_bytes / 1024)),
        ),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", facts.disk_bytes / 1024)),
        ),
        ("pods".to_string(), q(MAX_PODS)),
    ]);
    if facts.gpus > 0 {
        capacity.insert("nvidia.com/gpu".into(), q(facts.gpus));
    }
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".into(),
        Quantity(format!(
            "{}Ki",
            facts.memory_bytes.saturating_sub(MEMORY_RESERVE) / 1024
        )),
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available = host::meminfo_field(&meminfo, "MemAvailable:");
    let memory_pressure = available > 0 && available < MEMORY_RESERVE;
    let disk_pressure = host::disk_free(&id.data_dir)
        .is_some_and(|(free, inodes)| free < DISK_PRESSURE_BYTES || inodes < 0.05);
    let pid_pressure = pid_pressure();
    let now = Time(jiff_now());
    let condition = |kind: &str, on: bool, reason: &str, message: &str| {
        let status = if on { "True" } else { "False" }.to_string();
        let transition = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: kind.to_string(),
            status,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(transition),
        }
    };
    let ready_message = match &id.runtime_warning {
        Some(w) => format!("nuage agent is posting ready status; {w}"),
        None => "nuage agent is posting ready status".to_string(),
    };
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.address.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.hostname.clone(),
            },
        ]),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                memory_pressure,
                if memory_pressure {
                    "KubeletHasInsufficientMemory"
                } else {
                    "KubeletHasSufficientMemory"
                },
                if memory_pressure {
                    "node has memory pressure"
                } else {
                    "node has sufficient memory available"
                },
            ),
            condition(
                "DiskPressure",
                disk_pressure,
                if disk_pressure {
                    "KubeletHasDiskPressure"
                } else {
                    "KubeletHasNoDiskPressure"
                },
                if disk_pressure {
                    "node has disk pressure"
                } else {
                    "node has no disk pressure"
                },
            ),
            condition(
                "PIDPressure",
                pid_pressure,
                if pid_pressure {
                    "KubeletHasInsufficientPID"
                } else {
                    "KubeletHasSufficientPID"
                },
                if pid_pressure {
                    "node has PID pressure"
                } else {
                    "node has sufficient PID available"
                },
            ),
            condition("Ready", true, "KubeletReady", &ready_message),
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: id.port as i32,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: facts.arch.to_string(),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: id.runtime_version.clone(),
            kernel_version: facts.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: "v1.32.0-nuage".into(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.machine_id.clone(),
        }),
        ..NodeStatus::default()
    }
}

/// More than 90% of `pid_max` in use.
fn pid_pressure() -> bool {
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u64
        })
        .unwrap_or(0);
    max > 0 && running * 10 > max * 9
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    crate::now()
}

/// Writes the node's status through the status subresource.
async fn update_status(
    client: &Client,
    id: &NodeIdentity,
    facts: &HostFacts,
    previous: Option<&NodeStatus>,
) -> anyhow::Result<NodeStatus> {
    let status = status(id, facts, previous);
    let patch = serde_json::json!({ "status": status });
    client
        .merge_patch::<Node>(None, &id.name, "/status", &patch)
        .await?;
    Ok(status)
}

/// Renews the Lease every [`HEARTBEAT`] and refreshes the Node's status
/// when its conditions change (and at least every minute), until `stop`.
pub async fn heartbeat(
    client: Client,
    id: NodeIdentity,
    node_uid: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<NodeStatus> = None;
    let mut last_full = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = renew_lease(&client, &id.name, &node_uid).await {
            tracing::warn!(node = %id.name, error = %e, "lease renewal failed");
        }
        let facts = HostFacts::read(&id.data_dir);
        let fresh = status(&id, &facts, last.as_ref());
        let changed = last
            .as_ref()
            .is_none_or(|l| condition_states(l) != condition_states(&fresh));
        if changed || last_full.elapsed() >= Duration::from_secs(60) {
            match update_status(&client, &id, &facts, last.as_ref()).await {
                Ok(s) => {
                    last = Some(s);
                    last_full = std::time::Instant::now();
                }
                Err(e) => tracing::warn!(node = %id.name, error = %e, "node status update failed"),
            }
        }
    }
}

fn condition_states(s: &NodeStatus) -> Vec<(String, String)> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect()
}

/// Creates or renews `kube-node-lease/<node>`.
pub async fn renew_lease(client: &Client, node: &str, node_uid: &str) -> anyhow::Result<()> {
    const NS: &str = "kube-node-lease";
    let now = MicroTime(jiff_now());
    match client.get::<Lease>(Some(NS), node).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(node.to_string());
            spec.lease_duration_seconds = Some(LEASE_SECONDS);
            spec.renew_time = Some(now);
            client.replace(Some(NS), &lease).await?;
        }
        None => {
            let lease = nuage_client::node_lease(node, node_uid, now, LEASE_SECONDS);
            client.create(Some(NS), &lease).await?;
        }
    }
    Ok(())
}
