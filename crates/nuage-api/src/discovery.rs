//! Discovery documents: `/version`, legacy discovery (`/api`, `/apis`,
//! `/api/v1`, `/apis/G/V`) and aggregated discovery
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`).
//!
//! Everything is derived from [`nuage_model::registry::RESOURCES`], so a
//! resource added there shows up in every document. The documents are built
//! per request: they are small, and building them keeps no memory when idle.

use base64::Engine as _;
use nuage_model::registry::{group_versions, resources_of, ResourceType, RESOURCES};
use serde_json::{json, Value};

/// `Content-Type` of an aggregated discovery reply (v2). kubectl drops the
/// body as legacy discovery when the reply is labelled `application/json`.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `Content-Type` of an aggregated discovery reply in the older v2beta1 form.
pub const AGGREGATED_V2BETA1_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The metrics API group, served only once monitoring is on.
const METRICS_GROUP: &str = "metrics.k8s.io";
/// The one version of the metrics API group.
const METRICS_VERSION: &str = "v1beta1";

/// Verbs of a writable top-level resource.
const WRITABLE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of a read-only top-level resource.
const READ_ONLY_VERBS: &[&str] = &["get", "list"];

/// `GET /version`: a `version.Info`. The minor version must be 32: the
/// Cloud SDK's kubectl dispatcher runs the bundled kubectl of that minor.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-nuage",
        "gitCommit": concat!("nuage-", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "go1.23 (nuage)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// `GET /api` (legacy): an `APIVersions` naming the core group's versions.
/// `server_address` is the `host:port` clients reach the API server at.
pub fn core_versions(server_address: &str) -> Value {
    let versions: Vec<&str> = group_versions()
        .into_iter()
        .filter(|(group, _)| group.is_empty())
        .map(|(_, version)| version)
        .collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// `GET /apis` (legacy): an `APIGroupList` of every named group. The
/// preferred version of a group is the first one listed for it in
/// `RESOURCES`. `with_metrics` adds `metrics.k8s.io`.
pub fn group_list(with_metrics: bool) -> Value {
    let groups: Vec<Value> = named_groups(with_metrics)
        .into_iter()
        .map(|(group, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            let preferred = entries.first().cloned().unwrap_or(Value::Null);
            json!({"name": group, "versions": entries, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `GET /apis/G/V` (legacy): the `APIResourceList` of one
/// group-version, with one entry per subresource (`pods/status`, ...), or
/// `None` when the group-version is not served.
pub fn resource_list(group: &str, version: &str, with_metrics: bool) -> Option<Value> {
    let mut resources = Vec::new();
    if with_metrics && group == METRICS_GROUP && version == METRICS_VERSION {
        for m in METRICS {
            resources.push(json!({
                "name": m.plural,
                "singularName": "",
                "namespaced": m.namespaced,
                "kind": m.kind,
                "verbs": READ_ONLY_VERBS,
            }));
        }
    }
    for r in resources_of(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": main_verbs(r),
            "storageVersionHash": storage_version_hash(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let Some(info) = subresource(r, sub) else {
                continue;
            };
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": info.kind,
                "verbs": info.verbs,
            });
            // Legacy discovery names group and version only when they differ
            // from the list's own (`deployments/scale` is autoscaling/v1).
            if info.group != r.group || info.version != r.version {
                entry["group"] = json!(info.group);
                entry["version"] = json!(info.version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// Which aggregated discovery format a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2`, what kubectl 1.32 asks for first.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`, same shape, older clients.
    V2Beta1,
}

impl AggregatedVersion {
    /// The `apiVersion` of the list.
    pub fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }

    /// The `Content-Type` the reply must carry.
    pub fn content_type(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => AGGREGATED_CONTENT_TYPE,
            AggregatedVersion::V2Beta1 => AGGREGATED_V2BETA1_CONTENT_TYPE,
        }
    }
}

/// The aggregated discovery format `accept` asks for, if any: the first
/// JSON media range with `g=apidiscovery.k8s.io`, `as=APIGroupDiscoveryList`
/// and `v=v2` or `v=v2beta1`. Protobuf ranges are skipped (nuage answers JSON).
pub fn negotiate_aggregated(accept: &str) -> Option<AggregatedVersion> {
    accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next()?;
        if !media.eq_ignore_ascii_case("application/json") {
            return None;
        }
        let (mut group, mut as_kind, mut version) = (None, None, None);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            match key.trim() {
                "g" => group = Some(value.trim()),
                "as" => as_kind = Some(value.trim()),
                "v" => version = Some(value.trim()),
                _ => {}
            }
        }
        if group != Some("apidiscovery.k8s.io") || as_kind != Some("APIGroupDiscoveryList") {
            return None;
        }
        match version {
            Some("v2") => Some(AggregatedVersion::V2),
            Some("v2beta1") => Some(AggregatedVersion::V2Beta1),
            _ => None,
        }
    })
}

/// Whether `accept` asks for aggregated discovery (v2 or v2beta1); see
/// [`negotiate_aggregated`] for which one.
pub fn wants_aggregated(accept: &str) -> bool {
    negotiate_aggregated(accept).is_some()
}

/// `GET /api` (`core`) or `GET /apis` as an `apidiscovery.k8s.io/v2`
/// `APIGroupDiscoveryList`. `with_metrics` adds `metrics.k8s.io` to `/apis`.
pub fn aggregated(core: bool, with_metrics: bool) -> Value {
    aggregated_as(AggregatedVersion::V2, core, with_metrics)
}

/// [`aggregated`] in the format `version`; v2beta1 differs only in its
/// `apiVersion`.
pub fn aggregated_as(version: AggregatedVersion, core: bool, with_metrics: bool) -> Value {
    let items: Vec<Value> = if core {
        let versions = group_versions()
            .into_iter()
            .filter(|(group, _)| group.is_empty())
            .map(|(_, v)| aggregated_version("", v))
            .collect::<Vec<_>>();
        vec![json!({"metadata": {"name": ""}, "versions": versions})]
    } else {
        named_groups(with_metrics)
            .into_iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = if group == METRICS_GROUP {
                    vec![metrics_version()]
                } else {
                    versions
                        .iter()
                        .map(|v| aggregated_version(group, v))
                        .collect()
                };
                json!({"metadata": {"name": group}, "versions": versions})
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": version.api_version(),
        "metadata": {},
        "items": items,
    })
}

/// One `APIVersionDiscovery` of a served group-version.
fn aggregated_version(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = resources_of(group, version)
        .map(|r| {
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": scope(r.namespaced),
                "singularResource": r.singular,
                "verbs": main_verbs(r),
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            let subresources: Vec<Value> = r
                .subresources
                .iter()
                .filter_map(|sub| {
                    let info = subresource(r, sub)?;
                    Some(json!({
                        "subresource": sub,
                        "responseKind": {
                            "group": info.group,
                            "version": info.version,
                            "kind": info.kind,
                        },
                        "verbs": info.verbs,
                    }))
                })
                .collect();
            if !subresources.is_empty() {
                entry["subresources"] = Value::Array(subresources);
            }
            entry
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// The `APIVersionDiscovery` of `metrics.k8s.io/v1beta1`.
fn metrics_version() -> Value {
    let resources: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            json!({
                "resource": m.plural,
                "responseKind": {"group": METRICS_GROUP, "version": METRICS_VERSION, "kind": m.kind},
                "scope": scope(m.namespaced),
                // Empty like metrics-server's: a singular `pod` here would
                // compete with the core group's for `kubectl get pod`.
                "singularResource": "",
                "verbs": READ_ONLY_VERBS,
            })
        })
        .collect();
    json!({"version": METRICS_VERSION, "resources": resources, "freshness": "Current"})
}

/// A resource of the metrics API.
struct MetricsResource {
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

/// The resources of `metrics.k8s.io/v1beta1`.
const METRICS: &[MetricsResource] = &[
    MetricsResource {
        plural: "nodes",
        kind: "NodeMetrics",
        namespaced: false,
    },
    MetricsResource {
        plural: "pods",
        kind: "PodMetrics",
        namespaced: true,
    },
];

/// The named groups with their versions, preferred first, in `RESOURCES`
/// order; `metrics.k8s.io` last when asked for.
fn named_groups(with_metrics: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (group, version) in group_versions() {
        if group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => groups.push((group, vec![version])),
        }
    }
    if with_metrics {
        groups.push((METRICS_GROUP, vec![METRICS_VERSION]));
    }
    groups
}

/// `Namespaced` or `Cluster`, as aggregated discovery spells the scope.
fn scope(namespaced: bool) -> &'static str {
    if namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// The verbs of a top-level resource.
fn main_verbs(r: &ResourceType) -> &'static [&'static str] {
    if r.writable {
        WRITABLE_VERBS
    } else {
        READ_ONLY_VERBS
    }
}

/// What discovery says about one subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceInfo {
    /// Group of the kind the subresource takes and returns.
    pub group: &'static str,
    /// Version of that kind.
    pub version: &'static str,
    /// The kind (`Scale` for `*/scale`).
    pub kind: &'static str,
    /// The verbs the subresource answers.
    pub verbs: &'static [&'static str],
}

/// The kind and verbs of subresource `sub` of `r`, as the Kubernetes API
/// server reports them; `None` for a subresource nuage does not know.
pub fn subresource(r: &ResourceType, sub: &str) -> Option<SubresourceInfo> {
    const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
    let core = |kind, verbs| SubresourceInfo {
        group: "",
        version: "v1",
        kind,
        verbs,
    };
    Some(match sub {
        "status" => SubresourceInfo {
            group: r.group,
            version: r.version,
            kind: r.kind,
            verbs: GET_PATCH_UPDATE,
        },
        "scale" => SubresourceInfo {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: GET_PATCH_UPDATE,
        },
        "log" => core("Pod", &["get"]),
        "exec" => core("PodExecOptions", &["create", "get"]),
        "attach" => core("PodAttachOptions", &["create", "get"]),
        "portforward" => core("PodPortForwardOptions", &["create", "get"]),
        "binding" => core("Binding", &["create"]),
        "eviction" => SubresourceInfo {
            group: "policy",
            version: "v1",
            kind: "Eviction",
            verbs: &["create"],
        },
        "finalize" => core("Namespace", &["update"]),
        _ => return None,
    })
}

/// A stable, opaque `storageVersionHash`: the same for every version of a
/// resource, since they share storage (as in Kubernetes).
fn storage_version_hash(r: &ResourceType) -> String {
    let hash = stable_hash(r.storage.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hash.to_be_bytes())
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher,
/// so hashes that clients cache stay valid across restarts.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `RESOURCES` or the metrics API serves `group/version`.
pub fn is_served(group: &str, version: &str, with_metrics: bool) -> bool {
    (with_metrics && group == METRICS_GROUP && version == METRICS_VERSION)
        || RESOURCES
            .iter()
            .any(|r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn find<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e[key] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn version_reports_minor_32() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32."));
    }

    #[test]
    fn core_versions_name_v1_and_the_address() {
        let v = core_versions("127.0.0.1:6443");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "127.0.0.1:6443"
        );
    }

    #[test]
    fn group_list_prefers_the_first_version_listed() {
        let list = group_list(false);
        let autoscaling = find(&list["groups"], "name", "autoscaling");
        assert_eq!(
            autoscaling["preferredVersion"]["groupVersion"],
            "autoscaling/v2"
        );
        assert_eq!(autoscaling["versions"].as_array().unwrap().len(), 2);
        assert!(list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["name"] != METRICS_GROUP && g["name"] != ""));
        let with = group_list(true);
        find(&with["groups"], "name", METRICS_GROUP);
    }

    #[test]
    fn legacy_resource_list_has_subresources_with_their_kinds() {
        let list = resource_list("", "v1", false).unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let resources = &list["resources"];
        let pods = find(resources, "name", "pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["verbs"].as_array().unwrap().len(), 8);
        assert!(pods["storageVersionHash"].as_str().unwrap().len() >= 8);
        assert_eq!(find(resources, "name", "pods/status")["kind"], "Pod");
        assert_eq!(find(resources, "name", "pods/log")["verbs"], json!(["get"]));
        assert_eq!(
            find(resources, "name", "pods/exec")["kind"],
            "PodExecOptions"
        );
        assert_eq!(find(resources, "name", "pods/binding")["kind"], "Binding");
        let eviction = find(resources, "name", "pods/eviction");
        assert_eq!(eviction["group"], "policy");
        let scale = find(resources, "name", "replicationcontrollers/scale");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(
            find(resources, "name", "namespaces/finalize")["kind"],
            "Namespace"
        );
        let deploy = resource_list("apps", "v1", false).unwrap();
        assert_eq!(
            find(&deploy["resources"], "name", "deployments/scale")["kind"],
            "Scale"
        );
        assert!(resource_list("apps", "v2", false).is_none());
    }

    #[test]
    fn metrics_only_when_enabled() {
        assert!(resource_list(METRICS_GROUP, METRICS_VERSION, false).is_none());
        let list = resource_list(METRICS_GROUP, METRICS_VERSION, true).unwrap();
        assert_eq!(
            find(&list["resources"], "name", "pods")["kind"],
            "PodMetrics"
        );
        assert_eq!(
            find(&list["resources"], "name", "nodes")["namespaced"],
            false
        );
        assert!(is_served(METRICS_GROUP, METRICS_VERSION, true));
        assert!(!is_served(METRICS_GROUP, METRICS_VERSION, false));
    }

    #[test]
    fn aggregated_core_group_is_unnamed() {
        let list = aggregated(true, false);
        assert_eq!(list["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(list["kind"], "APIGroupDiscoveryList");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = find(&v1["resources"], "resource", "pods");
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        let exec = find(&pods["subresources"], "subresource", "exec");
        assert_eq!(exec["responseKind"]["kind"], "PodExecOptions");
        assert_eq!(exec["verbs"], json!(["create", "get"]));
        let nodes = find(&v1["resources"], "resource", "nodes");
        assert_eq!(nodes["scope"], "Cluster");
    }

    #[test]
    fn aggregated_named_groups_order_versions_preferred_first() {
        let list = aggregated(false, false);
        let items = &list["items"];
        assert!(items
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["metadata"]["name"] != "" && g["metadata"]["name"] != METRICS_GROUP));
        let autoscaling = items
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
        assert_eq!(autoscaling["versions"][1]["version"], "v1");
        let apps = items
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = find(&apps["versions"][0]["resources"], "resource", "deployments");
        let scale = find(&deploy["subresources"], "subresource", "scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        // Every resource and subresource carries a responseKind: client-go
        // drops entries without one.
        for group in items.as_array().unwrap() {
            for version in group["versions"].as_array().unwrap() {
                for r in version["resources"].as_array().unwrap() {
                    assert!(r["responseKind"]["kind"].is_string());
                    for s in r["subresources"].as_array().into_iter().flatten() {
                        assert!(s["responseKind"]["kind"].is_string());
                    }
                }
            }
        }
    }

    #[test]
    fn aggregated_metrics_group_when_enabled() {
        let list = aggregated(false, true);
        let metrics = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == METRICS_GROUP)
            .unwrap();
        let pods = find(&metrics["versions"][0]["resources"], "resource", "pods");
        assert_eq!(pods["responseKind"]["kind"], "PodMetrics");
        assert_eq!(pods["verbs"], json!(["get", "list"]));
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        assert_eq!(
            negotiate_aggregated(KUBECTL_ACCEPT),
            Some(AggregatedVersion::V2)
        );
        assert!(wants_aggregated(KUBECTL_ACCEPT));
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_aggregated(beta), Some(AggregatedVersion::V2Beta1));
        assert_eq!(
            aggregated_as(AggregatedVersion::V2Beta1, true, false)["apiVersion"],
            "apidiscovery.k8s.io/v2beta1"
        );
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(!wants_aggregated(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"
        ));
        assert_eq!(
            AggregatedVersion::V2.content_type(),
            AGGREGATED_CONTENT_TYPE
        );
    }

    #[test]
    fn storage_hash_is_shared_by_versions() {
        let v1 = resource_list("autoscaling", "v1", false).unwrap();
        let v2 = resource_list("autoscaling", "v2", false).unwrap();
        assert_eq!(
            v1["resources"][0]["storageVersionHash"],
            v2["resources"][0]["storageVersionHash"]
        );
    }
}
