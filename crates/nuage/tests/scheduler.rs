//! The scheduler end to end (issue 5): the real `nuage server` without an
//! agent and Node objects made with kubectl (capacity, conditions, labels,
//! zones, taints), real kubectl creating pods without a node; and one
//! server with its real agent, where such a pod ends up Running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nuage_testkit::server::{isolated_node_flags, wait_for, wait_until, NuageServer};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_nuage");

/// A server without an agent whose hand-made nodes never go NotReady for
/// lack of a Lease while a test runs. The data dir is returned first so it
/// is dropped after the server.
fn server() -> (tempfile::TempDir, NuageServer) {
    let dir = tempfile::Builder::new()
        .prefix("nuage-sched-test-")
        .tempdir()
        .expect("temp dir");
    let s = NuageServer::start_in(
        BIN,
        dir.path(),
        &["--no-agent", "--node-monitor-grace-period", "3600"],
    );
    (dir, s)
}

/// Registers a Ready node with `allocatable` (cpu, memory, …), `labels`
/// (plus its hostname) and `taints`.
fn add_node(s: &NuageServer, name: &str, allocatable: Value, labels: Value, taints: Value) {
    let mut l = json!({"kubernetes.io/hostname": name});
    l.as_object_mut()
        .unwrap()
        .extend(labels.as_object().cloned().unwrap_or_default());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": {"taints": taints},
    });
    let out = s.kubectl_stdin(&["create", "-f", "-"], &node.to_string());
    assert!(
        out.status.success(),
        "create node {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alloc = json!({"pods": "110"});
    alloc
        .as_object_mut()
        .unwrap()
        .extend(allocatable.as_object().cloned().unwrap_or_default());
    let status = json!({"status": {
        "capacity": alloc, "allocatable": alloc,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
    }});
    s.kubectl_ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// Creates a pod (no node) named `name` with `spec` merged over one
/// container, and `meta` merged into its metadata.
fn add_pod(s: &NuageServer, name: &str, meta: Value, spec: Value) {
    let mut m = json!({"name": name, "labels": {"test": "sched"}});
    m.as_object_mut()
        .unwrap()
        .extend(meta.as_object().cloned().unwrap_or_default());
    let mut sp = json!({"containers": [{"name": "c", "image": "busybox"}]});
    sp.as_object_mut()
        .unwrap()
        .extend(spec.as_object().cloned().unwrap_or_default());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": sp});
    let out = s.kubectl_stdin(&["create", "-f", "-"], &pod.to_string());
    assert!(
        out.status.success(),
        "create pod {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Returns once the scheduler has seen every node change made so far:
/// labels `node` anew and waits for a pod selecting that label to be bound
/// (node events arrive in order, so the earlier ones were seen too).
fn sync_nodes(s: &NuageServer, node: &str, tag: &str) {
    s.kubectl_ok(&[
        "label",
        "node",
        node,
        &format!("nuage-test-sync={tag}"),
        "--overwrite",
    ]);
    let name = format!("sync-{tag}");
    add_pod(
        s,
        &name,
        json!({}),
        json!({"nodeSelector": {"nuage-test-sync": tag}}),
    );
    assert_eq!(node_of(s, &name), node);
    s.kubectl_ok(&[
        "delete",
        "pod",
        &name,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
}

fn requests(r: Value) -> Value {
    json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": r}}]})
}

fn pod_json(s: &NuageServer, name: &str) -> Value {
    let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Waits until pod `name` is bound; returns its node.
fn node_of(s: &NuageServer, name: &str) -> String {
    wait_until(
        &format!("pod {name} bound"),
        Duration::from_secs(30),
        || {
            let p = pod_json(s, name);
            match p["spec"]["nodeName"].as_str() {
                Some(n) if !n.is_empty() => Ok(n.to_string()),
                _ => Err(format!("{:#}\n{}", p["status"], tail(&s.log(), 20))),
            }
        },
    )
}

/// Waits until pod `name` is reported unschedulable; returns the message.
fn unschedulable(s: &NuageServer, name: &str) -> String {
    wait_until(
        &format!("pod {name} unschedulable"),
        Duration::from_secs(30),
        || {
            let p = pod_json(s, name);
            let c = p["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
                .unwrap_or_default();
            if c["status"] == "False" && c["reason"] == "Unschedulable" {
                assert!(
                    p["spec"]["nodeName"].is_null(),
                    "unschedulable yet bound: {p:#}"
                );
                Ok(c["message"].as_str().unwrap_or_default().to_string())
            } else {
                Err(format!("{p:#}"))
            }
        },
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Requests, nodeSelector, required and preferred node affinity (labels
/// and `metadata.name`), taints and tolerations, and the GPU count each
/// send the pod to the one node that suits it.
#[test]
fn pods_go_to_the_nodes_that_fit_them() {
    let (_dir, s) = server();
    add_node(
        &s,
        "small",
        json!({"cpu": "1", "memory": "1Gi"}),
        json!({"disk": "hdd", "topology.kubernetes.io/zone": "za"}),
        json!([]),
    );
    add_node(
        &s,
        "big",
        json!({"cpu": "8", "memory": "16Gi"}),
        json!({"disk": "ssd", "topology.kubernetes.io/zone": "zb", "cores": "8"}),
        json!([]),
    );
    add_node(
        &s,
        "gpu",
        json!({"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"}),
        json!({"disk": "ssd", "topology.kubernetes.io/zone": "zc", "cores": "4"}),
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
    );
    sync_nodes(&s, "small", "1");
    add_pod(
        &s,
        "needs-memory",
        json!({}),
        requests(json!({"memory": "12Gi"})),
    );
    add_pod(
        &s,
        "on-hdd",
        json!({}),
        json!({"nodeSelector": {"disk": "hdd"}}),
    );
    let required = |expr: Value| {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [expr]}}}})
    };
    add_pod(
        &s,
        "in-zone-b",
        json!({}),
        required(json!({"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zb", "zc"]}]})),
    );
    add_pod(
        &s,
        "named",
        json!({}),
        required(json!({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["small"]}]})),
    );
    add_pod(
        &s,
        "many-cores",
        json!({}),
        required(json!({"matchExpressions": [
        {"key": "cores", "operator": "Gt", "values": ["4"]}]})),
    );
    let gpu_spec = json!({
        "containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    });
    add_pod(&s, "gpu-1", json!({}), gpu_spec.clone());
    add_pod(&s, "gpu-2", json!({}), gpu_spec.clone());
    add_pod(
        &s,
        "prefers-gpu-node",
        json!({}),
        json!({
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zc"]}]}}]}},
        }),
    );
    assert_eq!(node_of(&s, "needs-memory"), "big");
    assert_eq!(node_of(&s, "on-hdd"), "small");
    assert_eq!(
        node_of(&s, "in-zone-b"),
        "big",
        "the gpu node's taint is not tolerated"
    );
    assert_eq!(node_of(&s, "named"), "small");
    assert_eq!(node_of(&s, "many-cores"), "big");
    assert_eq!(node_of(&s, "gpu-1"), "gpu");
    assert_eq!(node_of(&s, "gpu-2"), "gpu");
    assert_eq!(node_of(&s, "prefers-gpu-node"), "gpu");
    // Both GPUs are taken now.
    add_pod(&s, "gpu-3", json!({}), gpu_spec);
    assert_eq!(
        unschedulable(&s, "gpu-3"),
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

/// A cordoned node and a node with a NoExecute taint take no pods; host
/// ports are taken once per node.
#[test]
fn cordon_taints_and_host_ports() {
    let (_dir, s) = server();
    for n in ["n1", "n2", "n3"] {
        add_node(
            &s,
            n,
            json!({"cpu": "4", "memory": "8Gi"}),
            json!({}),
            json!([]),
        );
    }
    s.kubectl_ok(&["cordon", "n1"]);
    s.kubectl_ok(&["taint", "node", "n2", "dedicated=db:NoExecute"]);
    sync_nodes(&s, "n3", "1");
    for i in 0..3 {
        add_pod(&s, &format!("p{i}"), json!({}), json!({}));
    }
    for i in 0..3 {
        assert_eq!(node_of(&s, &format!("p{i}")), "n3");
    }
    s.kubectl_ok(&["uncordon", "n1"]);
    sync_nodes(&s, "n3", "2");
    let with_port = json!({"containers": [{"name": "c", "image": "busybox",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    let mut nodes = Vec::new();
    for name in ["web-a", "web-b"] {
        add_pod(&s, name, json!({}), with_port.clone());
        nodes.push(node_of(&s, name));
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n3"], "one pod per free host port");
    add_pod(&s, "web-c", json!({}), with_port);
    let msg = unschedulable(&s, "web-c");
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
         2 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

/// Required anti-affinity by hostname puts one pod per node and by zone
/// one per zone; six pods of one controller spread 2/2/2 over three zones.
#[test]
fn anti_affinity_and_spread_over_zones() {
    let (_dir, s) = server();
    for (n, z) in [("a1", "za"), ("b1", "zb"), ("c1", "zc")] {
        add_node(
            &s,
            n,
            json!({"cpu": "8", "memory": "16Gi"}),
            json!({"topology.kubernetes.io/zone": z}),
            json!([]),
        );
    }
    sync_nodes(&s, "c1", "1");
    // A controller-owned group: the owner is a ConfigMap so that no
    // controller manages (or deletes) these pods; the default spread only
    // looks at the owner's uid.
    let owner: Value =
        serde_json::from_str(&s.kubectl_ok(&["create", "configmap", "group", "-o", "json"]))
            .unwrap();
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "group",
        "uid": owner["metadata"]["uid"], "controller": true}]);
    for i in 0..6 {
        add_pod(
            &s,
            &format!("spread-{i}"),
            json!({"ownerReferences": owner_ref, "labels": {"app": "spread"}}),
            requests(json!({"cpu": "100m", "memory": "64Mi"})),
        );
    }
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        *per_zone
            .entry(node_of(&s, &format!("spread-{i}")))
            .or_default() += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{per_zone:?}"
    );

    let anti = |key: &str| {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": key}]}}})
    };
    let mut hosts = Vec::new();
    for i in 0..3 {
        let name = format!("solo-{i}");
        add_pod(
            &s,
            &name,
            json!({"labels": {"app": "solo"}}),
            anti("kubernetes.io/hostname"),
        );
        hosts.push(node_of(&s, &name));
    }
    hosts.sort();
    assert_eq!(hosts, ["a1", "b1", "c1"]);
    add_pod(
        &s,
        "solo-3",
        json!({"labels": {"app": "solo"}}),
        anti("kubernetes.io/hostname"),
    );
    assert_eq!(
        unschedulable(&s, "solo-3"),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    // Zone anti-affinity: a second node in zone za does not help.
    add_node(
        &s,
        "a2",
        json!({"cpu": "8", "memory": "16Gi"}),
        json!({"topology.kubernetes.io/zone": "za"}),
        json!([]),
    );
    add_pod(&s, "zonal", json!({"labels": {"app": "zonal"}}), json!({}));
    let first = node_of(&s, "zonal");
    let zone_of = |n: &str| match n {
        "a1" | "a2" => "za",
        "b1" => "zb",
        _ => "zc",
    };
    add_pod(
        &s,
        "zonal-apart",
        json!({}),
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "zonal"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}),
    );
    assert_ne!(zone_of(&node_of(&s, "zonal-apart")), zone_of(&first));
    // solo-3 fits on the new node a2 once it exists.
    assert_eq!(node_of(&s, "solo-3"), "a2");
}

/// A pod that fits nowhere says why in `kubectl describe pod` (condition
/// and FailedScheduling event) and is bound once a node that fits appears.
#[test]
fn an_unschedulable_pod_says_why_and_waits_for_room() {
    let (_dir, s) = server();
    add_node(
        &s,
        "small",
        json!({"cpu": "1", "memory": "1Gi"}),
        json!({}),
        json!([]),
    );
    sync_nodes(&s, "small", "1");
    add_pod(
        &s,
        "hungry",
        json!({}),
        requests(json!({"cpu": "500m", "memory": "4Gi"})),
    );
    let expected = "0/1 nodes are available: 1 Insufficient memory. \
                    preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    assert_eq!(unschedulable(&s, "hungry"), expected);
    let describe = wait_until(
        "describe shows FailedScheduling",
        Duration::from_secs(30),
        || {
            let d = s.kubectl_ok(&["describe", "pod", "hungry"]);
            if d.contains("FailedScheduling") && d.contains(expected) {
                Ok(d)
            } else {
                Err(d)
            }
        },
    );
    assert!(describe.contains("PodScheduled"), "{describe}");
    assert!(describe.contains("Warning  FailedScheduling"), "{describe}");
    let pending = s.kubectl_ok(&["get", "pod", "hungry", "-o", "jsonpath={.status.phase}"]);
    assert!(pending.is_empty() || pending == "Pending", "{pending}");
    add_node(
        &s,
        "roomy",
        json!({"cpu": "4", "memory": "8Gi"}),
        json!({}),
        json!([]),
    );
    assert_eq!(node_of(&s, "hungry"), "roomy");
    let events = wait_until("the Scheduled event", Duration::from_secs(30), || {
        let e = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hungry",
        ]);
        if e.contains("Successfully assigned default/hungry to roomy") {
            Ok(e)
        } else {
            Err(e)
        }
    });
    assert!(events.contains("Scheduled"), "{events}");
    wait_until("PodScheduled True", Duration::from_secs(30), || {
        let p = pod_json(&s, "hungry");
        let ok = p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
        });
        if ok {
            Ok(())
        } else {
            Err(format!("{:#}", p["status"]))
        }
    });
}

/// The seed images (built once, shared by every test).
fn images() -> PathBuf {
    nuage_testkit::seed::images()
}

/// With the real agent, a pod created without a node is bound to the local
/// node and runs.
#[test]
fn a_pod_without_a_node_runs_on_the_local_agent() {
    let dir = tempfile::Builder::new()
        .prefix("nuage-sched-agent-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new(BIN)
        .args(["image", "import"])
        .arg(images().join("busybox.tar"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("nuage image import");
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flags = isolated_node_flags();
    flags.extend(["--runtime".to_string(), "runc".to_string()]);
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = NuageServer::start_in(BIN, dir.path(), &args);
    wait_for("the node to register", Duration::from_secs(30), || {
        s.kubectl(&["get", "node", &node])
            .status
            .success()
            .then_some(())
    });
    add_pod(
        &s,
        "sleeper",
        json!({}),
        json!({"containers": [{"name": "main", "image": "busybox:latest", "command": ["sleep", "3600"]}]}),
    );
    assert_eq!(node_of(&s, "sleeper"), node);
    wait_until("pod sleeper Running", Duration::from_secs(60), || {
        let p = pod_json(&s, "sleeper");
        if p["status"]["phase"] == "Running" {
            Ok(())
        } else {
            Err(format!("{:#}\n{}", p["status"], tail(&s.log(), 20)))
        }
    });
    s.kubectl_ok(&[
        "delete",
        "pod",
        "sleeper",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
}
