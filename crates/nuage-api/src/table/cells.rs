//! The cells of one row, per kind: ports of the printer functions of
//! kubernetes `pkg/printers/internalversion/printers.go` (v1.32), reading
//! the JSON object instead of the typed one.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::human_duration;

/// The cells of `obj`'s row in a `kind` table, wide (priority 1) cells
/// included, in [`super::column_definitions`] order.
pub fn row_cells(kind: &str, obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let name = json!(text(obj, "/metadata/name"));
    let age = json!(age(obj, now));
    match kind {
        "Pod" => super::pod::cells(obj, now),
        "Service" => service(obj, name, age),
        "ReplicationController" => {
            replicas(obj, name, age, label_map(obj.pointer("/spec/selector")))
        }
        "ReplicaSet" => replicas(
            obj,
            name,
            age,
            format_label_selector(obj.pointer("/spec/selector")),
        ),
        "Deployment" => deployment(obj, name, age),
        "Node" => node(obj, name, age),
        "Namespace" => vec![name, json!(text(obj, "/status/phase")), age],
        "ConfigMap" => {
            let count = len(obj, "/data") + len(obj, "/binaryData");
            vec![name, json!(count), age]
        }
        "Secret" => vec![
            name,
            json!(text(obj, "/type")),
            json!(len(obj, "/data")),
            age,
        ],
        "Event" => event(obj, name, now),
        "ServiceAccount" => vec![name, json!(len(obj, "/secrets")), age],
        "Endpoints" => vec![name, json!(endpoints(obj)), age],
        "EndpointSlice" => vec![
            name,
            json!(text(obj, "/addressType")),
            json!(slice_ports(obj)),
            json!(slice_endpoints(obj)),
            age,
        ],
        "HorizontalPodAutoscaler" => super::hpa::cells(obj, name, age),
        "Lease" => vec![name, json!(text(obj, "/spec/holderIdentity")), age],
        _ => vec![name, age],
    }
}

/// The string at `pointer`, or `""`.
pub(super) fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `pointer`, or 0.
pub(super) fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at `pointer`, or an empty one.
pub(super) fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The number of entries of the map or list at `pointer`.
pub(super) fn len(obj: &Value, pointer: &str) -> usize {
    match obj.pointer(pointer) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(list)) => list.len(),
        _ => 0,
    }
}

/// Parses an RFC 3339 timestamp (`Time` or `MicroTime`).
pub(super) fn timestamp(value: Option<&Value>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value?.as_str()?, &Rfc3339).ok()
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` if unset.
pub(super) fn since(value: Option<&Value>, now: OffsetDateTime) -> String {
    match timestamp(value) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// The object's age.
pub(super) fn age(obj: &Value, now: OffsetDateTime) -> String {
    since(obj.pointer("/metadata/creationTimestamp"), now)
}

/// `labels.FormatLabels`: `k=v,k2=v2` in key order, `<none>` when empty.
fn label_map(map: Option<&Value>) -> Value {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        json!("<none>")
    } else {
        json!(pairs.join(","))
    }
}

/// A `LabelSelector` as a selector string (`app=web,tier in (a,b)`), or
/// `None` when an operator is unknown.
fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or("")),
            ));
        }
    }
    for expr in items(selector, "/matchExpressions") {
        let key = text(expr, "/key");
        let mut values: Vec<&str> = items(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let requirement = match text(expr, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), requirement));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let parts: Vec<String> = requirements.into_iter().map(|(_, r)| r).collect();
    Some(parts.join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` if invalid.
fn format_label_selector(selector: Option<&Value>) -> Value {
    match label_selector_string(selector) {
        Some(s) if s.is_empty() => json!("<none>"),
        Some(s) => json!(s),
        None => json!("<error>"),
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn containers(obj: &Value, pointer: &str) -> (Value, Value) {
    let list = items(obj, pointer);
    let names: Vec<&str> = list.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| text(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// `s`, or `<none>` when empty.
pub(super) fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

/// `printService`.
fn service(svc: &Value, name: Value, age: Value) -> Vec<Value> {
    // Defaulting always sets the type; read a missing one as the default.
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = items(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(svc, "/spec/clusterIP"));
    let external_ips: Vec<&str> = items(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match kind {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = items(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            let mut all: Vec<&str> = ingress.into_iter().collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = items(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name,
        json!(kind),
        json!(or_none(cluster_ip)),
        json!(external),
        json!(ports),
        age,
        label_map(svc.pointer("/spec/selector")),
    ]
}

/// `printReplicationController` and `printReplicaSet`.
fn replicas(obj: &Value, name: Value, age: Value, selector: Value) -> Vec<Value> {
    let (names, images) = containers(obj, "/spec/template/spec/containers");
    vec![
        name,
        json!(desired_replicas(obj)),
        json!(int(obj, "/status/replicas")),
        json!(int(obj, "/status/readyReplicas")),
        age,
        names,
        images,
        selector,
    ]
}

/// `spec.replicas`, which defaulting sets to 1 when absent.
fn desired_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// `printDeployment`.
fn deployment(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let (names, images) = containers(obj, "/spec/template/spec/containers");
    let selector =
        label_selector_string(obj.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".into());
    vec![
        name,
        json!(format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            desired_replicas(obj)
        )),
        json!(int(obj, "/status/updatedReplicas")),
        json!(int(obj, "/status/availableReplicas")),
        age,
        names,
        images,
        json!(selector),
    ]
}

/// `printNode`.
fn node(node: &Value, name: Value, age: Value) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = items(node, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(if text(ready, "/status") == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) if !role.is_empty() => Some(role),
                Some(_) => None,
                None if key == "kubernetes.io/role" => value.as_str().filter(|v| !v.is_empty()),
                None => None,
            },
        )
        .collect();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        items(node, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map(|a| text(a, "/address"))
            .unwrap_or("<none>")
    };
    let info = |field: &str| match text(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name,
        json!(status.join(",")),
        json!(roles),
        age,
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// `printEvent`, wide.
fn event(ev: &Value, name: Value, now: OffsetDateTime) -> Vec<Value> {
    let first = match ev.pointer("/firstTimestamp").filter(|t| !t.is_null()) {
        Some(t) => since(Some(t), now),
        None => since(ev.pointer("/eventTime"), now),
    };
    let mut last = match ev.pointer("/lastTimestamp").filter(|t| !t.is_null()) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, "/count");
    if let Some(series) = ev.get("series").filter(|s| s.is_object()) {
        last = since(series.get("lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        // Singleton events of the events.k8s.io API carry no count.
        count = 1;
    }
    let kind = text(ev, "/involvedObject/kind").to_lowercase();
    let target = match text(ev, "/involvedObject/name") {
        "" => kind,
        object => format!("{kind}/{object}"),
    };
    let component = match text(ev, "/source/component") {
        "" => text(ev, "/reportingComponent"),
        c => c,
    };
    let instance = match text(ev, "/source/host") {
        "" => text(ev, "/reportingInstance"),
        h => h,
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(text(ev, "/type")),
        json!(text(ev, "/reason")),
        json!(target),
        json!(text(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(ev, "/message").trim()),
        json!(first),
        json!(count),
        name,
    ]
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = items(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = items(subset, "/addresses");
        let ports = items(subset, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(text(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(host_port(text(address, "/ip"), int(port, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// `net.JoinHostPort`: IPv6 addresses get brackets.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatDiscoveryPorts`.
fn slice_ports(slice: &Value) -> String {
    let ports: Vec<String> = items(slice, "/ports")
        .iter()
        .map(|p| {
            match (
                p.get("port").and_then(Value::as_i64),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    list_with_more(ports)
}

/// `formatDiscoveryEndpoints`.
fn slice_endpoints(slice: &Value) -> String {
    let addresses: Vec<String> = items(slice, "/endpoints")
        .iter()
        .flat_map(|e| items(e, "/addresses"))
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    list_with_more(addresses)
}

/// `listWithMoreString`: three entries, `+ N more...`, `<unset>` if none.
fn list_with_more(all: Vec<String>) -> String {
    const MAX: usize = 3;
    match all.len() {
        0 => "<unset>".into(),
        n if n > MAX => format!("{} + {} more...", all[..MAX].join(","), n - MAX),
        _ => all.join(","),
    }
}
