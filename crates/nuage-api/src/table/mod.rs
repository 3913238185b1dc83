//! Server-side printing: `meta.k8s.io/v1` `Table` replies for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, which
//! `kubectl get` asks for (a plain list degrades to `NAME AGE`).
//!
//! Columns and cells follow kubernetes `pkg/printers/internalversion/printers.go`
//! (v1.32). As in the API server, every row carries the wide (`-o wide`,
//! priority 1) cells too; kubectl hides them unless asked.

mod cells;
mod hpa;
mod pod;

use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

pub use cells::row_cells;

/// What each row's `object` holds, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object`.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default;
    /// feeds `--show-labels`).
    #[default]
    Metadata,
    /// The whole object (`--sort-by`, custom columns).
    Object,
}

impl IncludeObject {
    /// Parses `includeObject`: `None`, `Metadata` or `Object`; anything else,
    /// or nothing, is `Metadata`.
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The `Table` of `objects`, all of kind `kind`. `resource_version` and
/// `continue_token` go to the table's `metadata` (an empty version is left
/// out); `now` dates the `Age` cells.
pub fn table(
    kind: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: OffsetDateTime,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), json!(token));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(row_cells(kind, obj, now)));
            if let Some(conditions) = row_conditions(kind, obj) {
                row.insert("conditions".into(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                        }),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), obj.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(kind),
        "rows": rows,
    })
}

/// Row conditions: finished pods are marked `Completed`, as the printer does.
fn row_conditions(kind: &str, obj: &Value) -> Option<Value> {
    if kind != "Pod" {
        return None;
    }
    let (reason, message) = match obj.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => ("Succeeded", "The pod has completed successfully."),
        Some("Failed") => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// One column: name, type, priority (1: only with `-o wide`), description.
type Column = (&'static str, &'static str, u8, &'static str);

const NAME: Column = (
    "Name",
    "string",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE: Column = (
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
);
const CONTAINERS: Column = (
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = (
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = (
    "Selector",
    "string",
    1,
    "A label query over pods that should match the replica count.",
);

const POD: &[Column] = &[
    NAME,
    ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
    ("Status", "string", 0, "The aggregate status of the containers in this pod."),
    ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    ("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    ("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
    ("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
    ("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
];
const SERVICE: &[Column] = &[
    NAME,
    ("Type", "string", 0, "type determines how the Service is exposed. Defaults to ClusterIP."),
    ("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
    ("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    ("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
    AGE,
    ("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
];
const REPLICAS: &[Column] = &[
    NAME,
    (
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired replicas.",
    ),
    (
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    ("Ready", "string", 0, "Number of the pod with ready state"),
    ("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    ("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    ("Selector", "string", 1, "Label selector for pods."),
];
const NODE: &[Column] = &[
    NAME,
    ("Status", "string", 0, "The status of the node"),
    ("Roles", "string", 0, "The roles of the node"),
    AGE,
    ("Version", "string", 0, "Kubelet Version reported by the node."),
    ("Internal-IP", "string", 1, "List of addresses reachable to the node."),
    ("External-IP", "string", 1, "List of addresses reachable to the node."),
    ("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    ("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    ("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];
const NAMESPACE: &[Column] = &[
    NAME,
    ("Status", "string", 0, "The status of the namespace"),
    AGE,
];
const CONFIG_MAP: &[Column] = &[
    NAME,
    ("Data", "string", 0, "Data contains the configuration data."),
    AGE,
];
const SECRET: &[Column] = &[
    NAME,
    (
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    ("Data", "string", 0, "Data contains the secret data."),
    AGE,
];
const EVENT: &[Column] = &[
    ("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
    ("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
    ("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    ("Object", "string", 0, "The object that this event is about."),
    ("Subobject", "string", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    ("Source", "string", 1, "The component reporting this event."),
    ("Message", "string", 0, "A human-readable description of the status of this operation."),
    ("First Seen", "string", 1, "The time at which the event was first recorded."),
    ("Count", "string", 1, "The number of times this event has occurred."),
    ("Name", "string", 1, NAME.3),
];
const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    ("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];
const ENDPOINTS: &[Column] = &[
    NAME,
    (
        "Endpoints",
        "string",
        0,
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];
const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    (
        "AddressType",
        "string",
        0,
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    (
        "Ports",
        "string",
        0,
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    (
        "Endpoints",
        "string",
        0,
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];
const HPA: &[Column] = &[
    NAME,
    ("Reference", "string", 0, "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource."),
    ("Targets", "string", 0, "metrics contains the specifications for which to use to calculate the desired replica count."),
    ("MinPods", "string", 0, "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
    ("MaxPods", "string", 0, "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
    ("Replicas", "string", 0, "currentReplicas is current number of replicas of pods managed by this autoscaler."),
    AGE,
];
const LEASE: &[Column] = &[
    NAME,
    (
        "Holder",
        "string",
        0,
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];
const DEFAULT: &[Column] = &[NAME, AGE];

/// The columns of `kind` (every kind nuage serves; others get `Name`,
/// `Age`).
fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Pod" => POD,
        "Service" => SERVICE,
        "ReplicationController" | "ReplicaSet" => REPLICAS,
        "Deployment" => DEPLOYMENT,
        "Node" => NODE,
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Event" => EVENT,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINT_SLICE,
        "HorizontalPodAutoscaler" => HPA,
        "Lease" => LEASE,
        _ => DEFAULT,
    }
}

/// The `columnDefinitions` of a `kind` table.
pub fn column_definitions(kind: &str) -> Vec<Value> {
    columns(kind)
        .iter()
        .map(|(name, kind, priority, description)| {
            json!({
                "name": name,
                "type": kind,
                "format": if *name == "Name" { "name" } else { "" },
                "description": description,
                "priority": priority,
            })
        })
        .collect()
}

/// A duration the way Kubernetes prints ages (`duration.HumanDuration`):
/// about two significant units, e.g. `45s`, `3m4s`, `15m`, `5h6m`, `2d3h`,
/// `400d`, `2y10d`.
pub fn human_duration(d: Duration) -> String {
    // Up to 2 seconds in the future still counts as "now" (clock skew).
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.whole_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.whole_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests;
