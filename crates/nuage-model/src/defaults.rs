//! Defaulting: the fields Kubernetes fills in when a client leaves them out.
//!
//! Follows `pkg/apis/*/v1/defaults.go` for the fields clients read back
//! (`kubectl describe` prints them). Cluster IP allocation is not here: it
//! needs the store, so nuage-api does it.

use serde_json::{json, Map, Value};

/// Fills in defaults for an object of `kind` (in place).
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
        }
        "ReplicationController" => {
            let labels = template_labels(obj);
            let spec = object_at(obj, "spec");
            spec.entry("replicas").or_insert(json!(1));
            if let Some(labels) = labels {
                // An RC without a selector selects its template's labels, and
                // a template without labels... stays invalid (validation says so).
                let sel = spec.entry("selector").or_insert_with(|| Value::Null);
                if sel.is_null() || sel.as_object().is_some_and(Map::is_empty) {
                    *sel = labels.clone();
                }
                let meta_labels = obj
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .is_some_and(|l| l.as_object().is_some_and(|m| !m.is_empty()));
                if !meta_labels {
                    crate::meta::metadata_mut(obj).insert("labels".into(), labels);
                }
            }
            template_spec(obj);
        }
        "ReplicaSet" => {
            object_at(obj, "spec").entry("replicas").or_insert(json!(1));
            template_spec(obj);
        }
        "Deployment" => {
            let spec = object_at(obj, "spec");
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
            let strategy = spec
                .entry("strategy")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            if let Some(strategy) = strategy {
                let ty = strategy
                    .entry("type")
                    .or_insert(json!("RollingUpdate"))
                    .clone();
                if ty == "RollingUpdate" {
                    let ru = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        ru.entry("maxUnavailable").or_insert(json!("25%"));
                        ru.entry("maxSurge").or_insert(json!("25%"));
                    }
                }
            }
            template_spec(obj);
        }
        "Service" => service(obj),
        "Namespace" => {
            object_at(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            object_at(obj, "status")
                .entry("phase")
                .or_insert(json!("Active"));
        }
        "Secret" => {
            if let Some(o) = obj.as_object_mut() {
                o.entry("type").or_insert(json!("Opaque"));
            }
        }
        _ => {}
    }
}

/// `obj[field]` as an object, created (or replaced, if not an object).
fn object_at<'a>(obj: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let root = obj.as_object_mut().expect("made an object above");
    let v = root.entry(field).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

fn template_labels(obj: &Value) -> Option<Value> {
    obj.pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned()
}

fn template_spec(obj: &mut Value) {
    if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
        pod_spec(spec);
    }
}

/// Pod spec defaults (`pkg/apis/core/v1/defaults.go` `SetDefaults_PodSpec`).
pub fn pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    s.entry("restartPolicy").or_insert(json!("Always"));
    s.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    s.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    s.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    s.entry("securityContext").or_insert(json!({}));
    s.entry("enableServiceLinks").or_insert(json!(true));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    let Some(c) = c.as_object_mut() else {
        return;
    };
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    c.entry("resources").or_insert(json!({}));
    let policy = pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
    c.entry("imagePullPolicy").or_insert(json!(policy));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    let ty = spec
        .entry("type")
        .or_insert(json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if ty != "ExternalName" {
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        spec.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.entry("status").or_insert(json!({"loadBalancer": {}}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults_match_kubernetes() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["imagePullPolicy"], "Always");
    }

    #[test]
    fn pull_policy_depends_on_the_tag() {
        assert_eq!(pull_policy("img/serv:0.5.0"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/serv"), "Always");
        assert_eq!(pull_policy("serv:latest"), "Always");
    }

    #[test]
    fn service_target_port_defaults_to_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        apply("Service", &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn rc_selector_defaults_to_template_labels() {
        let mut rc = json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "i:1"}]}}}});
        apply("ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
    }
}
