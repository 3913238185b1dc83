use nuage_model::registry::RESOURCES;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const NOW: OffsetDateTime = datetime!(2025-01-10 12:00:00 UTC);

/// RFC 3339 for `NOW - ago`.
fn ago(ago: Duration) -> String {
    (NOW - ago)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn cells(kind: &str, obj: Value) -> Vec<Value> {
    let cells = row_cells(kind, &obj, NOW);
    assert_eq!(
        cells.len(),
        column_definitions(kind).len(),
        "{kind}: cells and columns disagree"
    );
    cells
}

#[test]
fn human_duration_matches_kubernetes() {
    let cases = [
        (Duration::seconds(-3), "<invalid>"),
        (Duration::seconds(-2), "<invalid>"),
        (Duration::milliseconds(-1500), "0s"),
        (Duration::seconds(-1), "0s"),
        (Duration::ZERO, "0s"),
        (Duration::seconds(5), "5s"),
        (Duration::seconds(119), "119s"),
        (Duration::seconds(120), "2m"),
        (Duration::seconds(184), "3m4s"),
        (Duration::minutes(10), "10m"),
        (Duration::minutes(179), "179m"),
        (Duration::minutes(180), "3h"),
        (Duration::minutes(5 * 60 + 6), "5h6m"),
        (Duration::hours(8), "8h"),
        (Duration::hours(47), "47h"),
        (Duration::hours(48), "2d"),
        (Duration::hours(51), "2d3h"),
        (Duration::days(8), "8d"),
        (Duration::days(400), "400d"),
        (Duration::days(730), "2y"),
        (Duration::days(740), "2y10d"),
        (Duration::days(365 * 8 + 3), "8y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d}");
    }
}

#[test]
fn include_object_parses_with_metadata_default() {
    assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
    assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
    assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
    assert_eq!(
        IncludeObject::parse(Some("Metadata")),
        IncludeObject::Metadata
    );
    assert_eq!(IncludeObject::parse(Some("bogus")), IncludeObject::Metadata);
}

#[test]
fn a_pod_without_status_is_pending() {
    let pod = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(Duration::seconds(30))},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
    });
    assert_eq!(
        cells("Pod", pod),
        json!(["web", "0/2", "Pending", "0", "30s", "<none>", "<none>", "<none>", "<none>"])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn a_running_pod_counts_ready_containers_and_restarts() {
    let pod = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(Duration::hours(4))},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1",
                 "readinessGates": [{"conditionType": "x/ready"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.1.0.5",
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "x/ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 3, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(Duration::minutes(5))}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}},
            ],
        },
    });
    let c = cells("Pod", pod);
    assert_eq!(c[1], "1/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "3 (5m ago)");
    assert_eq!(c[4], "4h");
    assert_eq!(c[5], "10.1.0.5");
    assert_eq!(c[6], "n1");
    assert_eq!(c[8], "1/1");
}

#[test]
fn pod_status_shows_container_reasons_and_termination() {
    let waiting = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    });
    let c = cells("Pod", waiting);
    assert_eq!(c[2], "CrashLoopBackOff");
    assert_eq!(c[3], "4");
    assert_eq!(c[4], "<unknown>");

    let exited = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 3}}}]},
    });
    assert_eq!(cells("Pod", exited.clone())[2], "ExitCode:3");
    let rows = table("Pod", &[exited], "", None, IncludeObject::None, NOW);
    assert_eq!(rows["rows"][0]["conditions"][0]["reason"], "Failed");

    let deleting = json!({
        "metadata": {"name": "p", "deletionTimestamp": ago(Duration::seconds(1))},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}}]},
    });
    assert_eq!(cells("Pod", deleting)[2], "Terminating");
}

#[test]
fn pod_init_containers_show_progress() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]},
    });
    assert_eq!(cells("Pod", pod)[2], "Init:1/2");
    let failing = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
    });
    assert_eq!(cells("Pod", failing)[2], "Init:ImagePullBackOff");
}

#[test]
fn services_print_type_ips_and_ports() {
    let svc = json!({
        "metadata": {"name": "sise", "creationTimestamp": ago(Duration::days(3))},
        "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "sise"}},
    });
    assert_eq!(
        cells("Service", svc),
        vec![
            json!("sise"),
            json!("NodePort"),
            json!("10.0.0.7"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("3d"),
            json!("app=sise")
        ]
    );
    let lb = json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    });
    let c = cells("Service", lb);
    assert_eq!(c[2], "<none>");
    assert_eq!(c[3], "<pending>");
    assert_eq!(c[4], "80/TCP");
    assert_eq!(c[6], "<none>");
}

#[test]
fn workloads_print_replicas_and_selectors() {
    let rc = json!({
        "metadata": {"name": "rc"},
        "spec": {"replicas": 2, "selector": {"app": "sise", "tier": "web"},
                 "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1},
    });
    let c = cells("ReplicationController", rc);
    assert_eq!(&c[1..4], &[json!(2), json!(2), json!(1)]);
    assert_eq!(
        &c[5..],
        &[
            json!("a,b"),
            json!("nginx,redis"),
            json!("app=sise,tier=web")
        ]
    );

    let deploy = json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"},
                 "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                 "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}},
    });
    let c = cells("Deployment", deploy);
    assert_eq!(&c[1..4], &[json!("0/2"), json!(0), json!(0)]);
    assert_eq!(c[7], "app=web,env in (dev,prod)");

    let rs = json!({"metadata": {"name": "rs"}, "spec": {"selector": {}}});
    let c = cells("ReplicaSet", rs);
    assert_eq!(c[1], 1);
    assert_eq!(c[7], "<none>");
}

#[test]
fn nodes_print_status_roles_and_addresses() {
    let node = json!({
        "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0-nuage", "osImage": "Debian"},
        },
    });
    let c = cells("Node", node);
    assert_eq!(c[1], "Ready,SchedulingDisabled");
    assert_eq!(c[2], "control-plane,worker");
    assert_eq!(c[4], "v1.32.0-nuage");
    assert_eq!(
        &c[5..],
        &[
            json!("192.168.1.2"),
            json!("<none>"),
            json!("Debian"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    let bare = cells("Node", json!({"metadata": {"name": "n2"}}));
    assert_eq!(bare[1], "Unknown");
    assert_eq!(bare[2], "<none>");
    let not_ready = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(cells("Node", not_ready)[1], "NotReady");
}

#[test]
fn events_print_object_and_source() {
    let ev = json!({
        "metadata": {"name": "web.17a"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
        "reason": "Pulled", "type": "Normal", "message": " pulled \n",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(Duration::minutes(20)), "lastTimestamp": ago(Duration::seconds(40)),
        "count": 2,
    });
    assert_eq!(
        cells("Event", ev),
        vec![
            json!("40s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web"),
            json!("spec.containers{a}"),
            json!("kubelet, n1"),
            json!("pulled"),
            json!("20m"),
            json!(2),
            json!("web.17a")
        ]
    );
    let new_style = json!({
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Node"},
        "eventTime": "2025-01-10T11:59:00.000000Z",
        "reportingComponent": "nuage-control",
    });
    let c = cells("Event", new_style);
    assert_eq!(c[0], "60s");
    assert_eq!(c[3], "node");
    assert_eq!(c[5], "nuage-control");
    assert_eq!(c[8], 1);
}

#[test]
fn endpoints_and_slices_list_addresses() {
    let ep = json!({
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}],
    });
    assert_eq!(
        cells("Endpoints", ep)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    );
    let v6 = json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("Endpoints", v6)[1], "[fd00::1]:80");
    assert_eq!(
        cells("Endpoints", json!({"metadata": {"name": "e"}}))[1],
        "<none>"
    );
    let slice = json!({
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "ports": [{"port": 80, "name": "http"}, {"name": "dns"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    });
    let c = cells("EndpointSlice", slice);
    assert_eq!(
        &c[1..4],
        &[json!("IPv4"), json!("80,dns,*"), json!("10.0.0.1,10.0.0.2")]
    );
    let empty = cells("EndpointSlice", json!({"metadata": {"name": "x"}}));
    assert_eq!(empty[2], "<unset>");
}

#[test]
fn hpas_print_targets_in_v2_and_v1() {
    let v2 = json!({
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
        "status": {"currentReplicas": 2},
    });
    assert_eq!(
        cells("HorizontalPodAutoscaler", v2),
        vec![
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: <unknown>/50%"),
            json!("1"),
            json!(5),
            json!(2),
            json!("<unknown>")
        ]
    );
    let v1 = json!({
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80},
        "status": {"currentCPUUtilizationPercentage": 12},
    });
    let c = cells("HorizontalPodAutoscaler", v1);
    assert_eq!(c[2], "cpu: 12%/80%");
    assert_eq!(c[3], "<unset>");
    let many = json!({
        "metadata": {"name": "m"},
        "spec": {"metrics": [
            {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"averageValue": "100Mi"}}},
            {"type": "External", "external": {"target": {"value": "3"}}}]},
    });
    assert_eq!(
        cells("HorizontalPodAutoscaler", many)[2],
        "<unknown>/1k, memory: <unknown>/100Mi + 1 more..."
    );
    assert_eq!(
        cells(
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "n"}})
        )[2],
        "<none>"
    );
}

#[test]
fn small_kinds_count_their_entries() {
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(cells("ConfigMap", cm)[1], 3);
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
    assert_eq!(&cells("Secret", secret)[1..3], &[json!("Opaque"), json!(1)]);
    let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
    assert_eq!(cells("ServiceAccount", sa)[1], 1);
    let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
    assert_eq!(cells("Namespace", ns)[1], "Active");
    let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "nuage-1"}});
    assert_eq!(cells("Lease", lease)[1], "nuage-1");
    assert_eq!(cells("Widget", json!({"metadata": {"name": "w"}})).len(), 2);
}

#[test]
fn every_served_kind_has_matching_columns_and_cells() {
    for r in RESOURCES {
        let columns = column_definitions(r.kind);
        assert_eq!(
            columns[0]["name"],
            if r.kind == "Event" {
                "Last Seen"
            } else {
                "Name"
            }
        );
        assert!(columns
            .iter()
            .all(|c| c["description"].as_str().is_some_and(|d| !d.is_empty())));
        assert!(columns.iter().any(|c| c["format"] == "name"));
        cells(r.kind, json!({"metadata": {"name": "x"}}));
    }
}

#[test]
fn tables_carry_metadata_and_row_objects() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "resourceVersion": "7"},
        "spec": {"containers": [{"name": "a"}]},
    });
    let t = table(
        "Pod",
        std::slice::from_ref(&pod),
        "42",
        Some("next"),
        IncludeObject::default(),
        NOW,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "continue": "next"})
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    let object = &t["rows"][0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["labels"]["app"], "web");
    assert!(t["rows"][0].get("conditions").is_none());

    let full = table(
        "Pod",
        std::slice::from_ref(&pod),
        "",
        None,
        IncludeObject::Object,
        NOW,
    );
    assert_eq!(full["rows"][0]["object"], pod);
    assert_eq!(full["metadata"], json!({}));
    let bare = table("Pod", &[pod], "1", None, IncludeObject::None, NOW);
    assert!(bare["rows"][0].get("object").is_none());
    assert_eq!(
        table("Pod", &[], "1", None, IncludeObject::None, NOW)["rows"],
        json!([])
    );
}
