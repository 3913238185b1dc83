//! How strategic merge patch and apply treat each list field, from the
//! `patchStrategy`/`patchMergeKey` tags of kubernetes/api v0.32.4
//! (`core/v1/types.go`, `apps/v1/types.go`). Without Go struct tags, a list
//! is recognised by its field name and, where the name is ambiguous
//! (`ports`, `addresses`, `finalizers`), by its parent path.

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch list replaces the live list (`atomic`, the default).
    Replace,
    /// Objects are matched and merged by the named key (`patchStrategy:"merge"`).
    MergeByKey(&'static str),
    /// Scalars are merged as a set (`metadata.finalizers`).
    MergePrimitives,
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The strategy of the list at `path`, the field names from the object root
/// with list indexes left out (`["spec", "template", "spec", "containers"]`).
pub fn list_strategy(path: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergePrimitives, Replace};
    let Some((last, parent)) = path.split_last() else {
        return Replace;
    };
    match (*last, parent) {
        (
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "imagePullSecrets"
            | "volumes"
            | "schedulingGates"
            | "resourceClaims",
            _,
        ) => MergeByKey("name"),
        // ServiceAccount.secrets.
        ("secrets", []) => MergeByKey("name"),
        ("ports", [.., list]) if CONTAINER_LISTS.contains(list) => MergeByKey("containerPort"),
        // Only a Service has `ports` directly under `spec`.
        ("ports", ["spec"]) => MergeByKey("port"),
        ("volumeMounts", _) => MergeByKey("mountPath"),
        ("volumeDevices", _) => MergeByKey("devicePath"),
        ("hostAliases" | "podIPs" | "hostIPs", _) => MergeByKey("ip"),
        ("topologySpreadConstraints", _) => MergeByKey("topologyKey"),
        ("conditions", _) => MergeByKey("type"),
        // Node status; EndpointSlice and Endpoints addresses are atomic.
        ("addresses", ["status"]) => MergeByKey("type"),
        ("ownerReferences", ["metadata"]) => MergeByKey("uid"),
        ("finalizers", ["metadata"]) => MergePrimitives,
        // Node spec.podCIDRs.
        ("podCIDRs", ["spec"]) => MergePrimitives,
        _ => Replace,
    }
}

/// The merge key of the list at `path`, if its items merge by key.
pub fn merge_key(path: &[&str]) -> Option<&'static str> {
    match list_strategy(path) {
        ListStrategy::MergeByKey(key) => Some(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_fields() {
        let pod = ["spec", "containers"];
        assert_eq!(merge_key(&pod), Some("name"));
        assert_eq!(
            merge_key(&["spec", "template", "spec", "initContainers"]),
            Some("name")
        );
        assert_eq!(merge_key(&["spec", "containers", "env"]), Some("name"));
        assert_eq!(
            merge_key(&["spec", "containers", "ports"]),
            Some("containerPort")
        );
        assert_eq!(
            merge_key(&[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "ephemeralContainers",
                "ports"
            ]),
            Some("containerPort")
        );
        assert_eq!(
            merge_key(&["spec", "containers", "volumeMounts"]),
            Some("mountPath")
        );
        assert_eq!(
            merge_key(&["spec", "containers", "volumeDevices"]),
            Some("devicePath")
        );
        assert_eq!(merge_key(&["spec", "containers", "args"]), None);
    }

    #[test]
    fn ambiguous_names_use_the_parent() {
        assert_eq!(merge_key(&["spec", "ports"]), Some("port"));
        assert_eq!(
            merge_key(&["ports"]),
            None,
            "EndpointSlice ports are atomic"
        );
        assert_eq!(merge_key(&["subsets", "ports"]), None);
        assert_eq!(merge_key(&["status", "addresses"]), Some("type"));
        assert_eq!(merge_key(&["endpoints", "addresses"]), None);
        assert_eq!(merge_key(&["metadata", "ownerReferences"]), Some("uid"));
        assert_eq!(
            list_strategy(&["metadata", "finalizers"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(
            list_strategy(&["spec", "finalizers"]),
            ListStrategy::Replace,
            "Namespace spec.finalizers"
        );
        assert_eq!(merge_key(&["secrets"]), Some("name"));
        assert_eq!(merge_key(&["spec", "secrets"]), None);
    }

    #[test]
    fn other_lists_are_replaced() {
        assert_eq!(list_strategy(&[]), ListStrategy::Replace);
        assert_eq!(
            list_strategy(&["spec", "tolerations"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy(&["spec", "template", "spec", "hostAliases"]),
            ListStrategy::MergeByKey("ip")
        );
        assert_eq!(merge_key(&["status", "conditions"]), Some("type"));
        assert_eq!(
            merge_key(&["spec", "topologySpreadConstraints"]),
            Some("topologyKey")
        );
    }
}
