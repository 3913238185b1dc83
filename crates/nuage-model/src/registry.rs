//! The resource types nuage serves, with everything discovery, routing,
//! storage and decoding need to know about each.

use serde_json::Value;

use crate::decode::{check_typed, Checked};

/// One served resource of one group-version.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind of a single object.
    pub kind: &'static str,
    /// URL segment of the collection (`pods`).
    pub plural: &'static str,
    /// Lower-case singular name (`pod`).
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served under each object (`status`, `scale`, ...).
    pub subresources: &'static [&'static str],
    /// Whether clients may write (false: read-only, e.g. metrics).
    pub writable: bool,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Storage segment shared by every version of this resource.
    pub storage: &'static str,
    /// Decodes a JSON object as the typed Kubernetes struct, reporting unknown
    /// fields and the first type error with its path.
    pub check: fn(&Value) -> Checked,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of this resource's list.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `sub` is served under each object.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store key prefix holding every object of this resource, or those
    /// of one namespace. Always ends with `/`, so `default/` never matches
    /// `default2/`.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{}/", self.storage, ns),
            _ => format!("/registry/{}/", self.storage),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.key_prefix(namespace), name)
    }

    /// Whether objects of this resource are stored as served (no version
    /// conversion on the way in or out).
    pub fn is_storage_version(&self) -> bool {
        storage_version(self.storage).is_none_or(|sv| sv.version == self.version)
    }

    /// Whether a field selector on `field` is supported for this resource.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (field == "metadata.namespace" && self.namespaced)
            || self.field_selectors.contains(&field)
    }
}

macro_rules! resource {
    (
        $group:expr, $version:expr, $ty:ty, $plural:expr, $singular:expr, $namespaced:expr,
        short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*],
        fields: [$($field:expr),*], storage: $storage:expr
    ) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            writable: true,
            field_selectors: &[$($field),*],
            storage: $storage,
            check: check_typed::<$ty>,
        }
    };
}

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery};

/// Every resource nuage serves, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    resource!("", "v1", core::v1::Pod, "pods", "pod", true,
        short: ["po"], cat: ["all"], sub: ["status", "binding", "log", "exec", "attach", "eviction"],
        fields: ["spec.nodeName", "status.phase", "status.podIP", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.nominatedNodeName"],
        storage: "pods"),
    resource!("", "v1", core::v1::Service, "services", "service", true,
        short: ["svc"], cat: ["all"], sub: ["status"], fields: ["spec.clusterIP", "spec.type"],
        storage: "services"),
    resource!("", "v1", core::v1::Endpoints, "endpoints", "endpoints", true,
        short: ["ep"], cat: [], sub: [], fields: [], storage: "endpoints"),
    resource!("", "v1", core::v1::ReplicationController, "replicationcontrollers", "replicationcontroller", true,
        short: ["rc"], cat: ["all"], sub: ["status", "scale"], fields: ["status.replicas"],
        storage: "replicationcontrollers"),
    resource!("", "v1", core::v1::Node, "nodes", "node", false,
        short: ["no"], cat: [], sub: ["status"], fields: ["spec.unschedulable"], storage: "nodes"),
    resource!("", "v1", core::v1::Namespace, "namespaces", "namespace", false,
        short: ["ns"], cat: [], sub: ["status", "finalize"], fields: ["status.phase"],
        storage: "namespaces"),
    resource!("", "v1", core::v1::ConfigMap, "configmaps", "configmap", true,
        short: ["cm"], cat: [], sub: [], fields: [], storage: "configmaps"),
    resource!("", "v1", core::v1::Secret, "secrets", "secret", true,
        short: [], cat: [], sub: [], fields: ["type"], storage: "secrets"),
    resource!("", "v1", core::v1::Event, "events", "event", true,
        short: ["ev"], cat: [], sub: [],
        fields: ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"],
        storage: "events"),
    resource!("", "v1", core::v1::ServiceAccount, "serviceaccounts", "serviceaccount", true,
        short: ["sa"], cat: [], sub: [], fields: [], storage: "serviceaccounts"),
    resource!("apps", "v1", apps::v1::Deployment, "deployments", "deployment", true,
        short: ["deploy"], cat: ["all"], sub: ["status", "scale"], fields: [],
        storage: "deployments.apps"),
    resource!("apps", "v1", apps::v1::ReplicaSet, "replicasets", "replicaset", true,
        short: ["rs"], cat: ["all"], sub: ["status", "scale"], fields: ["status.replicas"],
        storage: "replicasets.apps"),
    resource!("autoscaling", "v2", autoscaling::v2::HorizontalPodAutoscaler, "horizontalpodautoscalers", "horizontalpodautoscaler", true,
        short: ["hpa"], cat: ["all"], sub: ["status"], fields: [],
        storage: "horizontalpodautoscalers.autoscaling"),
    resource!("autoscaling", "v1", autoscaling::v1::HorizontalPodAutoscaler, "horizontalpodautoscalers", "horizontalpodautoscaler", true,
        short: ["hpa"], cat: ["all"], sub: ["status"], fields: [],
        storage: "horizontalpodautoscalers.autoscaling"),
    resource!("coordination.k8s.io", "v1", coordination::v1::Lease, "leases", "lease", true,
        short: [], cat: [], sub: [], fields: [], storage: "leases.coordination.k8s.io"),
    resource!("discovery.k8s.io", "v1", discovery::v1::EndpointSlice, "endpointslices", "endpointslice", true,
        short: [], cat: [], sub: [], fields: ["addressType"], storage: "endpointslices.discovery.k8s.io"),
];

/// The group-versions served, each with its preferred flag, in discovery
/// order: the first version listed for a group is its preferred one.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resource served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resources of one group-version.
pub fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Every namespaced resource once per storage, in its storage version (the
/// resources to visit to find everything in a namespace).
pub fn namespaced_storages() -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.is_storage_version())
}

/// The storage (preferred) version of the resource stored under `storage`.
pub fn storage_version(storage: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.storage == storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_found_by_its_path() {
        for r in RESOURCES {
            assert!(std::ptr::eq(
                lookup(r.group, r.version, r.plural).unwrap(),
                r
            ));
        }
    }

    #[test]
    fn key_prefixes_do_not_overlap_between_namespaces() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "x"), "/registry/pods/default/x");
        assert!(!pods
            .key(Some("default2"), "x")
            .starts_with(&pods.key_prefix(Some("default"))));
    }

    #[test]
    fn namespaced_storages_visit_hpa_once() {
        let hpas = namespaced_storages()
            .filter(|r| r.kind == "HorizontalPodAutoscaler")
            .count();
        assert_eq!(hpas, 1);
        assert!(!lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap()
            .is_storage_version());
    }

    #[test]
    fn storage_version_is_the_first_listed() {
        let hpa = storage_version("horizontalpodautoscalers.autoscaling").unwrap();
        assert_eq!(hpa.version, "v2");
    }
}
