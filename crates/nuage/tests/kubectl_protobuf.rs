//! The kubectl commands that send protobuf bodies, against the real server:
//! `create namespace|configmap|secret|deployment|service` and `autoscale`.
//!
//! One server for the whole file; each test works in a namespace of its own,
//! created with `kubectl create namespace` (itself a protobuf body).

use std::sync::OnceLock;

use nuage_testkit::server::NuageServer;
use serde_json::Value;

fn server() -> &'static NuageServer {
    static SERVER: OnceLock<NuageServer> = OnceLock::new();
    SERVER.get_or_init(|| NuageServer::start(env!("CARGO_BIN_EXE_nuage")))
}

/// Runs a kubectl command that must succeed and must have sent its body as
/// protobuf (so a kubectl that switched to JSON cannot pass these tests
/// without exercising the decoder). Returns stdout.
fn kubectl_protobuf(args: &[&str]) -> String {
    // -v=7 logs request headers; it goes first, since args may end in `-- cmd`.
    let out = server()
        .kubectl_cmd()
        .arg("-v=7")
        .args(args)
        .output()
        .expect("run kubectl");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('I')).collect();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        errors.join("\n")
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("Content-Type: application/vnd.kubernetes.protobuf")),
        "kubectl {args:?} sent no protobuf body"
    );
    stdout
}

fn namespace(name: &str) {
    let out = kubectl_protobuf(&["create", "namespace", name]);
    assert!(out.contains(&format!("namespace/{name} created")), "{out}");
}

fn get_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&server().kubectl_ok(&all)).expect("kubectl -o json")
}

#[test]
fn create_namespace() {
    namespace("pb-ns");
    let ns = get_json(&["get", "namespace", "pb-ns"]);
    assert_eq!(ns["metadata"]["name"], "pb-ns");
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(ns["metadata"]["uid"].is_string(), "{ns}");
    assert!(ns["metadata"]["creationTimestamp"].is_string(), "{ns}");
}

#[test]
fn create_configmap_from_literals() {
    namespace("pb-cm");
    let out = kubectl_protobuf(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "pb-cm",
        "--from-literal=a=b",
        "--from-literal=empty=",
    ]);
    assert!(out.contains("configmap/settings created"), "{out}");
    let cm = get_json(&["get", "configmap", "settings", "-n", "pb-cm"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "b", "empty": ""}));
    assert_eq!(cm["metadata"]["namespace"], "pb-cm");
}

#[test]
fn create_secret_generic_from_literal() {
    namespace("pb-secret");
    let out = kubectl_protobuf(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "pb-secret",
        "--from-literal=a=b",
    ]);
    assert!(out.contains("secret/creds created"), "{out}");
    let secret = get_json(&["get", "secret", "creds", "-n", "pb-secret"]);
    assert_eq!(secret["data"]["a"], "Yg==", "{secret}");
    assert_eq!(secret["type"], "Opaque");
}

#[test]
fn create_deployment() {
    namespace("pb-deploy");
    let out = kubectl_protobuf(&[
        "create",
        "deployment",
        "web",
        "-n",
        "pb-deploy",
        "--image=nginx",
    ]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let d = get_json(&["get", "deployment", "web", "-n", "pb-deploy"]);
    assert_eq!(d["metadata"]["labels"]["app"], "web");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "web");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");
    assert_eq!(d["metadata"]["generation"], 1);
}

#[test]
fn create_deployment_keeps_explicit_zero_replicas_command_and_port() {
    namespace("pb-deploy0");
    kubectl_protobuf(&[
        "create",
        "deployment",
        "idle",
        "-n",
        "pb-deploy0",
        "--image=busybox",
        "--replicas=0",
        "--port=8080",
        "--",
        "sleep",
        "3600",
    ]);
    let d = get_json(&["get", "deployment", "idle", "-n", "pb-deploy0"]);
    // replicas is a pointer in Go: an explicit 0 must not become the default 1.
    assert_eq!(d["spec"]["replicas"], 0, "{d}");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["sleep", "3600"]));
    assert_eq!(container["ports"][0]["containerPort"], 8080);
}

#[test]
fn create_service_clusterip() {
    namespace("pb-svc");
    let out = kubectl_protobuf(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "pb-svc",
        "--tcp=80:8080",
    ]);
    assert!(out.contains("service/web created"), "{out}");
    let svc = get_json(&["get", "service", "web", "-n", "pb-svc"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "80-8080");
    assert_eq!(port["port"], 80);
    assert_eq!(port["targetPort"], 8080, "targetPort is an IntOrString int");
    assert_eq!(port["protocol"], "TCP");
    assert!(svc["spec"]["clusterIP"].is_string(), "{svc}");
}

#[test]
fn create_service_nodeport_with_named_target_port() {
    namespace("pb-np");
    kubectl_protobuf(&[
        "create",
        "service",
        "nodeport",
        "web",
        "-n",
        "pb-np",
        "--tcp=80:http",
        "--node-port=30080",
    ]);
    let svc = get_json(&["get", "service", "web", "-n", "pb-np"]);
    assert_eq!(svc["spec"]["type"], "NodePort");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        port["targetPort"], "http",
        "targetPort is an IntOrString string"
    );
    assert_eq!(port["nodePort"], 30080);
}

#[test]
fn autoscale_deployment_creates_an_autoscaling_v1_hpa() {
    namespace("pb-hpa");
    kubectl_protobuf(&[
        "create",
        "deployment",
        "web",
        "-n",
        "pb-hpa",
        "--image=nginx",
    ]);
    let out = kubectl_protobuf(&[
        "autoscale",
        "deployment",
        "web",
        "-n",
        "pb-hpa",
        "--max=5",
        "--cpu-percent=50",
    ]);
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web autoscaled"),
        "{out}"
    );
    // Read back as v2, whose shape carries the v1 CPU target as a metric.
    let hpa = get_json(&["get", "hpa.v2.autoscaling", "web", "-n", "pb-hpa"]);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["apiVersion"], "apps/v1");
    let metric = &hpa["spec"]["metrics"][0]["resource"];
    assert_eq!(metric["name"], "cpu", "{hpa}");
    assert_eq!(metric["target"]["averageUtilization"], 50, "{hpa}");
}
