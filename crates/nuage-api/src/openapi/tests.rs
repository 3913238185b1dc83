use std::collections::BTreeSet;

use nuage_model::registry::RESOURCES;
use serde_json::{json, Value};

use super::schemas::{has_schema, REF_PREFIX};
use super::*;

fn doc(path: &str) -> Value {
    v3_group_version(path).unwrap_or_else(|| panic!("no document at {path}"))
}

/// Every `$ref` under `value`.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Follows a `$ref` (possibly behind a one-element `allOf`) to its schema.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let reference = schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str())
        .expect("a reference");
    &document["components"]["schemas"][reference.trim_start_matches(REF_PREFIX)]
}

/// What cli-runtime's `supportsQueryParamV3` does, for every PATCH
/// operation of `gvk` rather than the first found.
fn patch_operations_take_field_validation(document: &Value, gvk: &Value) -> bool {
    let patches: Vec<&Value> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|item| item.get("patch"))
        .filter(|op| op["x-kubernetes-group-version-kind"] == *gvk)
        .collect();
    !patches.is_empty()
        && patches.iter().all(|op| {
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        })
}

#[test]
fn index_lists_every_document_with_its_hash() {
    let index = v3_index();
    let paths = index["paths"].as_object().unwrap();
    for expected in [
        "api",
        "apis",
        "api/v1",
        "apis/apps/v1",
        "apis/autoscaling/v1",
        "apis/autoscaling/v2",
        "apis/coordination.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
    ] {
        let url = paths[expected]["serverRelativeURL"].as_str().unwrap();
        let hash = v3_hash(expected).unwrap();
        assert_eq!(url, format!("/openapi/v3/{expected}?hash={hash}"));
    }
    assert_eq!(paths.len(), 8);
    assert_eq!(v3_index(), index);
    assert!(v3_hash("apis/apps/v9").is_none());
}

#[test]
fn hashes_follow_the_documents() {
    let hash = stable_hash(doc("api/v1").to_string().as_bytes());
    assert_eq!(v3_hash("api/v1"), Some(format!("{hash:016X}").as_str()));
    assert_ne!(v3_hash("api/v1"), v3_hash("apis/apps/v1"));
}

#[test]
fn unknown_documents_are_none() {
    for path in [
        "",
        "api/v2",
        "apis/apps/v2",
        "apis/apps",
        "apis/nope/v1",
        "apis/apps/v1/x",
        "api/v1/pods",
    ] {
        assert!(v3_group_version(path).is_none(), "{path}");
    }
    assert!(v3_group_version("/api/v1").is_some());
}

#[test]
fn every_kind_has_a_patch_operation_taking_field_validation() {
    for r in RESOURCES {
        let path = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        assert!(
            patch_operations_take_field_validation(&doc(&path), &gvk),
            "{}",
            r.kind
        );
    }
}

#[test]
fn pod_paths_carry_actions_and_gvk() {
    let d = doc("api/v1");
    let pod = json!({"group": "", "version": "v1", "kind": "Pod"});
    let item = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
    for (method, action) in [
        ("get", "get"),
        ("put", "put"),
        ("patch", "patch"),
        ("delete", "delete"),
    ] {
        assert_eq!(item[method]["x-kubernetes-action"], action);
        assert_eq!(item[method]["x-kubernetes-group-version-kind"], pod);
    }
    let collection = &d["paths"]["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(collection["post"]["x-kubernetes-action"], "post");
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert_eq!(
        collection["delete"]["x-kubernetes-action"],
        "deletecollection"
    );
    assert_eq!(
        d["paths"]["/api/v1/pods"]["get"]["x-kubernetes-group-version-kind"],
        pod
    );
    let exec = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
    assert_eq!(exec["get"]["x-kubernetes-action"], "connect");
    assert_eq!(
        exec["post"]["x-kubernetes-group-version-kind"]["kind"],
        "PodExecOptions"
    );
    assert!(d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"].is_object());
    assert!(d["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    let for_post = collection["post"]["parameters"].as_array().unwrap();
    assert!(for_post.iter().any(|p| p["name"] == "fieldValidation"));
}

#[test]
fn patch_operations_do_not_offer_strategic_merge() {
    for (path, _) in document_hashes() {
        let d = doc(path);
        for item in d["paths"].as_object().unwrap().values() {
            if let Some(patch) = item.get("patch") {
                let content = patch["requestBody"]["content"].as_object().unwrap();
                assert!(!content.contains_key("application/strategic-merge-patch+json"));
                assert!(content.contains_key("application/merge-patch+json"));
            }
        }
    }
}

#[test]
fn schemas_are_complete_and_tagged() {
    for (path, _) in document_hashes() {
        let d = doc(path);
        let schemas = d["components"]["schemas"].as_object().unwrap();
        let mut all = BTreeSet::new();
        refs(&d, &mut all);
        for r in &all {
            let name = r.strip_prefix(REF_PREFIX).unwrap_or_else(|| panic!("{r}"));
            assert!(schemas.contains_key(name), "{path}: {r} dangles");
        }
        let mut ids = BTreeSet::new();
        for item in d["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                if let Some(id) = op.get("operationId") {
                    assert!(
                        ids.insert(id.as_str().unwrap().to_string()),
                        "{path}: {id} twice"
                    );
                }
            }
        }
    }
    let core = doc("api/v1");
    let schemas = &core["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "version": "v1", "kind": "Pod"}])
    );
    assert_eq!(
        schemas["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "PodList"
    );
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    let apps = doc("apis/apps/v1");
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"]
            ["x-kubernetes-group-version-kind"],
        json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}])
    );
    assert_eq!(
        apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
            ["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    let hpa1 = doc("apis/autoscaling/v1");
    assert!(
        hpa1["components"]["schemas"]["io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"]
            ["x-kubernetes-group-version-kind"]
            .is_array()
    );
    assert!(
        hpa1["components"]["schemas"]["io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"]
            .is_null()
    );
}

#[test]
fn explain_can_walk_pods_spec_containers() {
    let d = doc("api/v1");
    let pod = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert!(pod["description"]
        .as_str()
        .unwrap()
        .starts_with("Pod is a collection"));
    let spec_field = &pod["properties"]["spec"];
    // The field keeps its own description next to an allOf reference.
    assert!(spec_field["description"].is_string());
    assert!(spec_field.get("$ref").is_none());
    let spec = resolve(&d, spec_field);
    assert!(spec["description"].as_str().unwrap().starts_with("PodSpec"));
    let containers = &spec["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    let container = resolve(&d, &containers["items"]);
    assert!(container["properties"]["image"]["description"].is_string());
    assert!(container["required"]
        .as_array()
        .unwrap()
        .contains(&json!("name")));
    let metadata = resolve(&d, &pod["properties"]["metadata"]);
    assert!(metadata["properties"]["labels"].is_object());
}

#[test]
fn every_registered_kind_has_a_schema() {
    for r in RESOURCES {
        assert!(
            has_schema(&r.api_version(), r.kind),
            "{} {}",
            r.api_version(),
            r.kind
        );
    }
}

#[test]
fn root_documents_describe_discovery() {
    let api = doc("api");
    assert_eq!(
        api["paths"]["/api/"]["get"]["operationId"],
        "getCoreAPIVersions"
    );
    assert!(
        api["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions"]
            .is_object()
    );
    let apis = doc("apis");
    assert!(
        apis["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList"]
            .is_object()
    );
}
