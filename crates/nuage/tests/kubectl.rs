//! The real kubectl against the real `nuage server` (issue 3).
//!
//! One server for the whole file; each test works in a namespace of its own.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use nuage_testkit::server::{wait_for, NuageServer};

fn server() -> &'static NuageServer {
    static SERVER: OnceLock<NuageServer> = OnceLock::new();
    SERVER.get_or_init(|| NuageServer::start(env!("CARGO_BIN_EXE_nuage")))
}

const SEED_SVC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/svc.yaml");
const SEED_RC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/rc.yaml");

/// Creates namespace `name` (through `create -f`, which sends JSON).
fn namespace(name: &str) {
    let s = server();
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_reports_kubernetes_1_32() {
    let out = server().kubectl_ok(&["version"]);
    assert!(out.contains("Server Version: v1.32."), "{out}");
}

#[test]
fn api_resources_lists_every_served_kind() {
    let out = server().kubectl_ok(&["api-resources"]);
    for (name, short) in [
        ("pods", "po"),
        ("services", "svc"),
        ("replicationcontrollers", "rc"),
        ("namespaces", "ns"),
        ("deployments", "deploy"),
        ("replicasets", "rs"),
        ("horizontalpodautoscalers", "hpa"),
        ("configmaps", "cm"),
        ("serviceaccounts", "sa"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{out}"));
        assert!(line.split_whitespace().any(|w| w == short), "{line}");
    }
    for name in [
        "leases",
        "endpointslices",
        "secrets",
        "events",
        "nodes",
        "endpoints",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{out}"
        );
    }
}

#[test]
fn seed_manifests_create_get_describe_and_get_all() {
    let s = server();
    namespace("seed");
    let out = s.kubectl_ok(&["create", "-n", "seed", "-f", SEED_SVC, "-f", SEED_RC]);
    assert!(out.contains("service/simpleservice created"), "{out}");
    assert!(
        out.contains("replicationcontroller/rcsise created"),
        "{out}"
    );

    let svc = s.kubectl_ok(&["get", "svc", "-n", "seed"]);
    let header: Vec<&str> = svc.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(
        svc.contains("simpleservice") && svc.contains("ClusterIP") && svc.contains("80/TCP"),
        "{svc}"
    );

    let rc = s.kubectl_ok(&["get", "rc", "-n", "seed"]);
    let header: Vec<&str> = rc.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    let row: Vec<&str> = rc.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["rcsise", "2"]);

    let yaml = s.kubectl_ok(&["get", "rc", "rcsise", "-n", "seed", "-o", "yaml"]);
    for want in [
        "replicas: 2",
        "containerPort: 9876",
        "image: img/serv:0.5.0",
        "resourceVersion:",
        "uid:",
        "generation: 1",
    ] {
        assert!(yaml.contains(want), "{want} missing from:\n{yaml}");
    }

    let describe = s.kubectl_ok(&["describe", "svc", "simpleservice", "-n", "seed"]);
    assert!(describe.contains("9876/TCP"), "{describe}");
    assert!(describe.contains("app=sise"), "{describe}");
    assert!(describe.contains("ClusterIP"), "{describe}");

    let all = s.kubectl_ok(&["get", "all", "-n", "seed"]);
    assert!(all.contains("service/simpleservice"), "{all}");
    assert!(all.contains("replicationcontroller/rcsise"), "{all}");

    let multi = s.kubectl_ok(&["get", "po,svc,rc", "-n", "seed"]);
    assert!(
        multi.contains("service/simpleservice") && multi.contains("replicationcontroller/rcsise"),
        "{multi}"
    );

    let err = s.kubectl_err(&["create", "-n", "seed", "-f", SEED_SVC]);
    assert!(err.contains("(AlreadyExists)"), "{err}");
}

#[test]
fn pods_table_has_kubernetes_columns() {
    let s = server();
    namespace("tables");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  containers:\n  - name: c\n    image: nginx:1\n";
    let out = s.kubectl_stdin(&["create", "-n", "tables", "-f", "-"], pod);
    assert!(out.status.success(), "{}", text(&out).1);
    let get = s.kubectl_ok(&["get", "pods", "-n", "tables"]);
    let header: Vec<&str> = get.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(get.contains("0/1") && get.contains("Pending"), "{get}");
    let wide = s.kubectl_ok(&["get", "pods", "-n", "tables", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("IP") && wide.contains("NODE"),
        "{wide}"
    );
    let labels = s.kubectl_ok(&["get", "pods", "-n", "tables", "--show-labels"]);
    assert!(labels.contains("app=web"), "{labels}");
    let jp = s.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "tables",
        "-o",
        "jsonpath={.items[0].spec.restartPolicy}",
    ]);
    assert_eq!(jp, "Always");
    let sel = s.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "tables",
        "-l",
        "app=other",
        "-o",
        "name",
    ]);
    assert_eq!(sel.trim(), "");
    let by_field = s.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "tables",
        "--field-selector",
        "metadata.name=web",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "pod/web");
}

#[test]
fn scale_updates_replicas_and_generation() {
    let s = server();
    namespace("scale");
    s.kubectl_ok(&["create", "-n", "scale", "-f", SEED_RC]);
    let out = s.kubectl_ok(&["scale", "rc", "rcsise", "-n", "scale", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    let got = s.kubectl_ok(&[
        "get",
        "rc",
        "rcsise",
        "-n",
        "scale",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ]);
    assert_eq!(got, "5 2");
    let err = s.kubectl_err(&[
        "scale",
        "rc",
        "rcsise",
        "-n",
        "scale",
        "--current-replicas=3",
        "--replicas=4",
    ]);
    assert!(
        err.to_lowercase().contains("expected replicas to be 3") || err.contains("(Conflict)"),
        "{err}"
    );
    let got = s.kubectl_ok(&[
        "get",
        "rc",
        "rcsise",
        "-n",
        "scale",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(got, "5");
}

#[test]
fn apply_creates_then_is_unchanged_then_configures() {
    let s = server();
    namespace("apply");
    let v1 = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: a\n        image: nginx:1\n        env:\n        - name: KEEP\n          value: \"1\"\n        - name: DROP\n          value: \"2\"\n";
    let apply = |doc: &str| s.kubectl_stdin(&["apply", "-n", "apply", "-f", "-"], doc);
    let (out, err) = text(&apply(v1));
    assert!(
        out.contains("replicationcontroller/web created"),
        "{out}{err}"
    );
    let (out, err) = text(&apply(v1));
    assert!(
        out.contains("replicationcontroller/web unchanged"),
        "{out}{err}"
    );
    let v2 = v1
        .replace("nginx:1", "nginx:2")
        .replace("        - name: DROP\n          value: \"2\"\n", "");
    let (out, err) = text(&apply(&v2));
    assert!(
        out.contains("replicationcontroller/web configured"),
        "{out}{err}"
    );
    let got = s.kubectl_ok(&["get", "rc", "web", "-n", "apply", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[*].name}"]);
    assert_eq!(got, "nginx:2 KEEP");

    let ssa = s.kubectl_stdin(
        &["apply", "--server-side", "-n", "apply", "-f", "-"],
        &v2.replace("name: web", "name: web-ssa")
            .replace("app: web", "app: ssa"),
    );
    let (out, err) = text(&ssa);
    assert!(
        ssa.status.success() && out.contains("serverside-applied"),
        "{out}{err}"
    );
    let ssa2 = s.kubectl_stdin(
        &["apply", "--server-side", "-n", "apply", "-f", "-"],
        &v2.replace("name: web", "name: web-ssa")
            .replace("app: web", "app: ssa")
            .replace("replicas: 1", "replicas: 3"),
    );
    assert!(ssa2.status.success(), "{}", text(&ssa2).1);
    let got = s.kubectl_ok(&[
        "get",
        "rc",
        "web-ssa",
        "-n",
        "apply",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(got, "3");
}

#[test]
fn patch_in_each_type_label_and_annotate() {
    let s = server();
    namespace("patch");
    s.kubectl_ok(&["create", "-n", "patch", "-f", SEED_RC]);
    let rc = ["-n", "patch", "rc", "rcsise"];
    let run = |extra: &[&str]| {
        let mut args = vec!["patch"];
        args.extend_from_slice(&rc[2..]);
        args.extend_from_slice(&rc[..2]);
        args.extend_from_slice(extra);
        s.kubectl_ok(&args)
    };
    run(&[
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ]);
    run(&[
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ]);
    run(&[
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sise","image":"img/serv:0.6.0"}]}}}}"#,
    ]);
    let got = s.kubectl_ok(&["get", "-n", "patch", "rc", "rcsise", "-o", "jsonpath={.metadata.labels.patched} {.spec.replicas} {.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(got, "merge 3 img/serv:0.6.0 9876");

    s.kubectl_ok(&["label", "-n", "patch", "rc", "rcsise", "tier=web"]);
    s.kubectl_ok(&["annotate", "-n", "patch", "rc", "rcsise", "note=hello"]);
    let got = s.kubectl_ok(&[
        "get",
        "-n",
        "patch",
        "rc",
        "rcsise",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}",
    ]);
    assert_eq!(got, "web hello");
    s.kubectl_ok(&["label", "-n", "patch", "rc", "rcsise", "tier-"]);
    let labels = s.kubectl_ok(&[
        "get",
        "-n",
        "patch",
        "rc",
        "rcsise",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(!labels.contains("tier"), "{labels}");
}

#[test]
fn delete_removes_the_object() {
    let s = server();
    namespace("delete");
    s.kubectl_ok(&["create", "-n", "delete", "-f", SEED_SVC]);
    let out = s.kubectl_ok(&["delete", "svc", "simpleservice", "-n", "delete"]);
    assert!(out.contains("service \"simpleservice\" deleted"), "{out}");
    let err = s.kubectl_err(&["get", "svc", "simpleservice", "-n", "delete"]);
    assert!(err.contains("(NotFound)"), "{err}");
}

#[test]
fn watch_sees_added_modified_deleted() {
    let s = server();
    namespace("watch");
    let mut child = s
        .kubectl_cmd()
        .args([
            "get",
            "configmaps",
            "-n",
            "watch",
            "-w",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let expect = |event: &str, seen: &mut Vec<String>| {
        wait_for(
            &format!("{event} in kubectl get -w"),
            Duration::from_secs(30),
            || {
                while let Ok(l) = rx.try_recv() {
                    seen.push(l);
                }
                seen.iter()
                    .any(|l| l.starts_with(event) && l.contains("cm1"))
                    .then_some(())
            },
        )
    };
    // The watch is established once kubectl printed the (empty) list; a
    // create before that would show up as ADDED from the list too.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  a: b\n";
    let out = s.kubectl_stdin(&["create", "-n", "watch", "-f", "-"], cm);
    assert!(out.status.success());
    expect("ADDED", &mut seen);
    s.kubectl_ok(&["label", "-n", "watch", "configmap", "cm1", "x=y"]);
    expect("MODIFIED", &mut seen);
    s.kubectl_ok(&["delete", "-n", "watch", "configmap", "cm1"]);
    expect("DELETED", &mut seen);
    let headers = seen.iter().filter(|l| l.starts_with("EVENT")).count();
    assert!(headers <= 1, "one header expected: {seen:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn explain_describes_fields() {
    let out = server().kubectl_ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(out.contains("image"), "{out}");
}

#[test]
fn stale_update_gets_conflict() {
    let s = server();
    namespace("stale");
    s.kubectl_ok(&["create", "-n", "stale", "-f", SEED_SVC]);
    let old = s.kubectl_ok(&["get", "svc", "simpleservice", "-n", "stale", "-o", "json"]);
    s.kubectl_ok(&["label", "-n", "stale", "svc", "simpleservice", "moved=on"]);
    let out = s.kubectl_stdin(&["replace", "-n", "stale", "-f", "-"], &old);
    let (_, err) = text(&out);
    assert!(!out.status.success(), "a stale replace must fail");
    assert!(
        err.contains("(Conflict)") && err.contains("the object has been modified"),
        "{err}"
    );
}

#[test]
fn bad_manifests_are_rejected_with_the_field_and_store_nothing() {
    let s = server();
    namespace("bad");
    let unknown = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  containers:\n  - name: c\n    image: i:1\n    bogusField: 1\n";
    let out = s.kubectl_stdin(&["create", "-n", "bad", "-f", "-"], unknown);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("strict decoding error") && err.contains("spec.containers[0].bogusField"),
        "{err}"
    );

    let warn = s.kubectl_stdin(
        &["create", "-n", "bad", "--validate=warn", "-f", "-"],
        &unknown.replace("p1", "p2"),
    );
    let (_, err) = text(&warn);
    assert!(warn.status.success(), "{err}");
    assert!(
        err.contains("unknown field \"spec.containers[0].bogusField\""),
        "{err}"
    );

    let no_image =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p3\nspec:\n  containers:\n  - name: c\n";
    let (_, err) = text(&s.kubectl_stdin(&["create", "-n", "bad", "-f", "-"], no_image));
    assert!(
        err.contains("The Pod \"p3\" is invalid: spec.containers[0].image: Required value"),
        "{err}"
    );

    let bad_label =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\n  labels:\n    \"bad key!\": v\n";
    let (_, err) = text(&s.kubectl_stdin(&["create", "-n", "bad", "-f", "-"], bad_label));
    assert!(
        err.contains("The ConfigMap \"c1\" is invalid: metadata.labels: Invalid value"),
        "{err}"
    );

    let wrong_type =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s1\nspec:\n  ports:\n  - port: eighty\n";
    let (_, err) = text(&s.kubectl_stdin(
        &["create", "-n", "bad", "--validate=false", "-f", "-"],
        wrong_type,
    ));
    assert!(
        err.contains("BadRequest") || err.contains("cannot be handled"),
        "{err}"
    );

    // Raw bodies reach the server as sent: malformed, wrong kind, too large.
    let dir = tempfile::tempdir().unwrap();
    let raw = |name: &str, body: &[u8]| {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        text(&s.kubectl(&[
            "create",
            "--raw",
            "/api/v1/namespaces/bad/pods",
            "-f",
            f.to_str().unwrap(),
        ]))
        .1
    };
    let err = raw("malformed.json", b"{\"kind\": \"Pod\", ");
    assert!(err.contains("not valid JSON"), "{err}");
    let err = raw(
        "widget.json",
        br#"{"apiVersion":"v1","kind":"Widget","metadata":{"name":"w"}}"#,
    );
    assert!(err.contains("does not match the expected kind"), "{err}");
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"big","annotations":{{"a":"{}"}}}}}}"#,
        "x".repeat(4 << 20)
    );
    let err = raw("big.json", big.as_bytes());
    assert!(err.contains("larger than"), "{err}");

    let f = dir.path().join("dup.json");
    std::fs::write(
        &f,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d1","name":"d2"}}"#,
    )
    .unwrap();
    let (_, err) = text(&s.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/bad/configmaps?fieldValidation=Strict",
        "-f",
        f.to_str().unwrap(),
    ]));
    assert!(
        err.contains(r#"duplicate field \"metadata.name\""#)
            || err.contains(r#"duplicate field "metadata.name""#),
        "{err}"
    );

    let pods = s.kubectl_ok(&["get", "pods", "-n", "bad", "-o", "name"]);
    assert_eq!(
        pods.trim(),
        "pod/p2",
        "only the warned-about pod was stored"
    );
    let cms = s.kubectl_ok(&["get", "configmaps", "-n", "bad", "-o", "name"]);
    assert_eq!(cms.trim(), "");
}

#[test]
fn unauthenticated_requests_get_401() {
    let s = server();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.dir.join("ca.crt"))
        .arg(format!("{}/api/v1/namespaces", s.api))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(s.dir.join("ca.crt"))
        .arg(format!("{}/readyz", s.api))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
}

#[test]
fn deleting_a_namespace_deletes_its_content() {
    let s = server();
    namespace("doomed");
    s.kubectl_ok(&["create", "-n", "doomed", "-f", SEED_SVC, "-f", SEED_RC]);
    let out = s.kubectl_ok(&["delete", "namespace", "doomed", "--timeout=30s"]);
    assert!(out.contains("namespace \"doomed\" deleted"), "{out}");
    let err = s.kubectl_err(&["get", "namespace", "doomed"]);
    assert!(err.contains("(NotFound)"), "{err}");
    let left = s.kubectl_ok(&[
        "get",
        "svc,rc",
        "-A",
        "-o",
        "name",
        "--field-selector",
        "metadata.namespace=doomed",
    ]);
    assert_eq!(left.trim(), "");
}

/// A pod owned by replication controller `rc` (its uid) in `ns`, but not
/// controlled by it (`controller: false`): the RC's controller leaves such
/// pods alone (it would release a controlled pod its selector does not
/// match), while the garbage collector follows every owner reference.
fn owned_pod(ns: &str, rc: &str, pod: &str) {
    let s = server();
    let uid = s.kubectl_ok(&["get", "rc", rc, "-n", ns, "-o", "jsonpath={.metadata.uid}"]);
    let doc = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ReplicationController\n    name: {rc}\n    uid: {uid}\n    controller: false\n    blockOwnerDeletion: true\nspec:\n  containers:\n  - name: c\n    image: i:1\n"
    );
    let out = s.kubectl_stdin(&["create", "-n", ns, "-f", "-"], &doc);
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn delete_cascades_by_propagation_policy() {
    let s = server();
    namespace("cascade");
    s.kubectl_ok(&["create", "-n", "cascade", "-f", SEED_RC]);
    owned_pod("cascade", "rcsise", "kept");
    s.kubectl_ok(&[
        "delete",
        "rc",
        "rcsise",
        "-n",
        "cascade",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    let refs = s.kubectl_ok(&[
        "get",
        "pod",
        "kept",
        "-n",
        "cascade",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "", "an orphaned pod keeps no owner reference");

    s.kubectl_ok(&["create", "-n", "cascade", "-f", SEED_RC]);
    owned_pod("cascade", "rcsise", "fg");
    s.kubectl_ok(&[
        "delete",
        "rc",
        "rcsise",
        "-n",
        "cascade",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    let err = s.kubectl_err(&["get", "pod", "fg", "-n", "cascade"]);
    assert!(err.contains("(NotFound)"), "{err}");

    s.kubectl_ok(&["create", "-n", "cascade", "-f", SEED_RC]);
    owned_pod("cascade", "rcsise", "bg");
    s.kubectl_ok(&["delete", "rc", "rcsise", "-n", "cascade", "--timeout=30s"]);
    wait_for(
        "the background cascade to delete pod bg",
        Duration::from_secs(30),
        || {
            let out = s.kubectl(&["get", "pod", "bg", "-n", "cascade"]);
            (!out.status.success()).then_some(())
        },
    );
    // A pod the RC's controller made as the RC went is collected by the
    // garbage collector's sweep shortly after.
    wait_for(
        "only the orphaned pod to remain",
        Duration::from_secs(30),
        || {
            let left = s.kubectl_ok(&["get", "pods", "-n", "cascade", "-o", "name"]);
            (left.trim() == "pod/kept").then_some(())
        },
    );
}
