//! What a Service's endpoints should be, from its selector and the pods it
//! selects: pure functions, no I/O.
//!
//! Follows the Kubernetes endpoints and EndpointSlice controllers: terminal
//! pods and pods without an IP are left out; a named `targetPort` is looked
//! up per pod among its containers' ports (same name and protocol) and a
//! pod without it is left out of that port; readiness is the pod's `Ready`
//! condition unless the Service publishes not-ready addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One selected pod as an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEndpoint {
    /// The pod's IP.
    pub ip: String,
    /// The node it runs on.
    pub node_name: Option<String>,
    /// The node's `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// `spec.hostname`, when the pod's subdomain is the Service.
    pub hostname: Option<String>,
    /// `Pod` namespace/name/uid.
    pub target: ObjectReference,
    /// Receives new traffic: serving and not terminating (or published
    /// anyway).
    pub ready: bool,
    /// The pod's Ready condition (or published anyway).
    pub serving: bool,
    /// The pod is being deleted.
    pub terminating: bool,
}

/// A Service port resolved for one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedPort {
    /// The Service port's name (`""` when unnamed).
    pub name: String,
    /// The pod's port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
}

/// Every endpoint of a Service, each with the ports it serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// In IP order.
    pub endpoints: Vec<(PodEndpoint, Vec<ResolvedPort>)>,
}

/// The Service's selector, if it has a non-empty one (services without a
/// selector have user-managed endpoints).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether `pod` carries every label of `selector`.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn protocol(p: Option<&String>) -> String {
    p.cloned().unwrap_or_else(|| "TCP".into())
}

/// The pod's port for `svc_port` (Kubernetes' `FindPort`): a number as
/// is; a name looked up among the containers' ports with the same
/// protocol (sidecar init containers included).
pub fn find_port(pod: &Pod, svc_port: &ServicePort) -> Option<i32> {
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let proto = protocol(svc_port.protocol.as_ref());
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol(p.protocol.as_ref()) == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The endpoints of `svc` among `pods` (already selected), with each
/// pod's node zone from `zone_of`.
pub fn desired(svc: &Service, pods: &[&Pod], zone_of: impl Fn(&str) -> Option<String>) -> Desired {
    let publish = publish_not_ready(svc);
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut endpoints = Vec::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod) else { continue };
        if terminal(pod) {
            continue;
        }
        let spec = pod.spec.as_ref();
        let serving = publish || pod_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let node_name = spec.and_then(|s| s.node_name.clone());
        let hostname = spec
            .filter(|s| s.subdomain.as_deref() == Some(svc_name))
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty());
        let ep = PodEndpoint {
            ip: ip.to_string(),
            zone: node_name.as_deref().and_then(&zone_of),
            node_name,
            hostname,
            target: ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            },
            ready: publish || (serving && !terminating),
            serving,
            terminating,
        };
        let resolved: Vec<ResolvedPort> = ports
            .iter()
            .filter_map(|sp| {
                Some(ResolvedPort {
                    name: sp.name.clone().unwrap_or_default(),
                    port: find_port(pod, sp)?,
                    protocol: protocol(sp.protocol.as_ref()),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        endpoints.push((ep, resolved));
    }
    endpoints.sort_by(|(a, _), (b, _)| (&a.ip, &a.target.uid).cmp(&(&b.ip, &b.target.uid)));
    Desired { endpoints }
}

/// The `subsets` of the Service's Endpoints object: addresses serving the
/// same ports grouped together. Terminating pods are left out unless the
/// Service publishes not-ready addresses; a pod with none of the ports is
/// left out, except for a headless Service without ports.
pub fn subsets(svc: &Service, d: &Desired) -> Vec<EndpointSubset> {
    let publish = publish_not_ready(svc);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    // Ports → (ready, not ready), in a deterministic order.
    let mut groups: BTreeMap<Vec<ResolvedPort>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for (ep, ports) in &d.endpoints {
        if ep.terminating && !publish {
            continue;
        }
        if has_ports && ports.is_empty() {
            continue;
        }
        if !has_ports && !headless(svc) {
            continue;
        }
        let mut key = ports.clone();
        key.sort();
        key.dedup();
        let addr = EndpointAddress {
            ip: ep.ip.clone(),
            hostname: ep.hostname.clone(),
            node_name: ep.node_name.clone(),
            target_ref: Some(ep.target.clone()),
        };
        let (ready, not_ready) = groups.entry(key).or_default();
        if ep.ready {
            ready.push(addr);
        } else {
            not_ready.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|p| EndpointPort {
                        name: (!p.name.is_empty()).then_some(p.name),
                        port: p.port,
                        protocol: Some(p.protocol),
                        app_protocol: p.app_protocol,
                    })
                    .collect()
            }),
        })
        .collect()
}

/// The most endpoints one EndpointSlice holds (the controller's default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// One EndpointSlice's worth: its ports and endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceContent {
    /// The ports every endpoint of the slice serves.
    pub ports: Vec<discovery::EndpointPort>,
    /// At most [`MAX_ENDPOINTS_PER_SLICE`], in IP order.
    pub endpoints: Vec<discovery::Endpoint>,
}

/// The slices the Service should have: endpoints grouped by the ports
/// they serve, at most [`MAX_ENDPOINTS_PER_SLICE`] a slice; with no
/// endpoint, one empty placeholder slice (as Kubernetes keeps).
pub fn slices(d: &Desired) -> Vec<SliceContent> {
    let mut groups: BTreeMap<Vec<ResolvedPort>, Vec<discovery::Endpoint>> = BTreeMap::new();
    for (ep, ports) in &d.endpoints {
        let mut key = ports.clone();
        key.sort();
        key.dedup();
        groups.entry(key).or_default().push(discovery::Endpoint {
            addresses: vec![ep.ip.clone()],
            conditions: Some(discovery::EndpointConditions {
                ready: Some(ep.ready),
                serving: Some(ep.serving),
                terminating: Some(ep.terminating),
            }),
            hostname: ep.hostname.clone(),
            node_name: ep.node_name.clone(),
            target_ref: Some(ep.target.clone()),
            zone: ep.zone.clone(),
            ..discovery::Endpoint::default()
        });
    }
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<discovery::EndpointPort> = ports
            .into_iter()
            .map(|p| discovery::EndpointPort {
                name: Some(p.name),
                port: Some(p.port),
                protocol: Some(p.protocol),
                app_protocol: p.app_protocol,
            })
            .collect();
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    if out.is_empty() {
        out.push(SliceContent {
            ports: Vec::new(),
            endpoints: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    fn web() -> Service {
        svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 9000, "targetPort": 9000, "protocol": "TCP"},
            ]},
        }))
    }

    #[test]
    fn named_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let a = pod(
            "a",
            "10.0.0.2",
            true,
            serde_json::json!([{"name": "http", "containerPort": 8080}]),
        );
        let b = pod(
            "b",
            "10.0.0.3",
            false,
            serde_json::json!([{"name": "http", "containerPort": 8081}]),
        );
        // No port named http: only in the admin port.
        let c = pod("c", "10.0.0.4", true, serde_json::json!([]));
        let s = web();
        let d = desired(&s, &[&c, &b, &a], |_| Some("z1".into()));
        assert_eq!(d.endpoints[0].0.ip, "10.0.0.2");
        let subsets = subsets(&s, &d);
        // Three distinct port sets: 8080+9000, 8081+9000, 9000.
        assert_eq!(subsets.len(), 3, "{subsets:?}");
        let with = |port: i32| {
            subsets
                .iter()
                .find(|ss| ss.ports.iter().flatten().any(|p| p.port == port))
                .unwrap()
        };
        assert_eq!(with(8080).addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert!(with(8081).addresses.is_none());
        assert_eq!(
            with(8081).not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.3"
        );
        let only_admin = subsets
            .iter()
            .find(|ss| ss.ports.as_ref().unwrap().len() == 1)
            .unwrap();
        assert_eq!(only_admin.addresses.as_ref().unwrap()[0].ip, "10.0.0.4");
        let slices = slices(&d);
        assert_eq!(slices.len(), 3);
        let ep = &slices
            .iter()
            .find(|s| s.ports.iter().any(|p| p.port == Some(8081)))
            .unwrap()
            .endpoints[0];
        let cond = ep.conditions.as_ref().unwrap();
        assert_eq!(
            (cond.ready, cond.serving, cond.terminating),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(ep.zone.as_deref(), Some("z1"));
        assert_eq!(ep.target_ref.as_ref().unwrap().name.as_deref(), Some("b"));
    }

    #[test]
    fn terminating_pods_are_only_in_slices_and_terminal_pods_nowhere() {
        let mut a = pod(
            "a",
            "10.0.0.2",
            true,
            serde_json::json!([{"name": "http", "containerPort": 8080}]),
        );
        a.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        let mut done = pod("done", "10.0.0.9", false, serde_json::json!([]));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let no_ip = pod("new", "", false, serde_json::json!([]));
        let s = web();
        let d = desired(&s, &[&a, &done, &no_ip], |_| None);
        assert_eq!(d.endpoints.len(), 1);
        assert!(subsets(&s, &d).is_empty());
        let slices = slices(&d);
        let c = slices[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn no_endpoint_gives_one_placeholder_slice_and_slices_split_at_100() {
        let s = web();
        let empty = desired(&s, &[], |_| None);
        assert_eq!(slices(&empty).len(), 1);
        assert!(slices(&empty)[0].endpoints.is_empty());
        let pods: Vec<Pod> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    serde_json::json!([{"name": "http", "containerPort": 8080}]),
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = desired(&s, &refs, |_| None);
        let sl = slices(&d);
        assert_eq!(sl.len(), 2);
        assert_eq!(sl[0].endpoints.len() + sl[1].endpoints.len(), 150);
    }

    #[test]
    fn a_named_port_needs_the_same_protocol() {
        let p = pod(
            "a",
            "10.0.0.2",
            true,
            serde_json::json!([{"name": "dns", "containerPort": 53, "protocol": "UDP"}]),
        );
        let mut sp = ServicePort {
            port: 53,
            target_port: Some(IntOrString::String("dns".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        };
        assert_eq!(find_port(&p, &sp), None);
        sp.protocol = Some("UDP".into());
        assert_eq!(find_port(&p, &sp), Some(53));
    }
}
