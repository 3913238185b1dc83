//! The ReplicationController and ReplicaSet controllers end to end (issue
//! 5): the real `nuage server` and the real kubectl. The course's example
//! runs on a server with its real agent and the seed images; ownership,
//! status and scale-down order are checked on servers without an agent,
//! where pod readiness is set through the status subresource as a kubelet
//! would.

use std::path::Path;
use std::time::Duration;

use nuage_testkit::server::{isolated_node_flags, wait_for, wait_until, NuageServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
const RC_YAML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/rc.yaml");

/// Imports a seed image into the node whose data dir is `dir` (while its
/// server runs, too: the agent reads the store at each pod start).
fn import(dir: &Path, archive: &str) {
    nuage_testkit::seed::import(BIN, dir, archive);
}

/// A server with its real agent and `img/serv` imported. The data dir is
/// returned first so that it is dropped after the server (which resets the
/// node as it stops).
fn node() -> (tempfile::TempDir, NuageServer, String) {
    let dir = tempfile::Builder::new()
        .prefix("nuage-replicas-test-")
        .tempdir()
        .expect("temp dir");
    import(dir.path(), "serv.tar");
    let flags = isolated_node_flags();
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = NuageServer::start_in(BIN, dir.path(), &args);
    wait_for("the node to register", Duration::from_secs(30), || {
        let out = server.kubectl(&["get", "node", &node, "-o", "json"]);
        out.status.success().then_some(())
    });
    (dir, server, node)
}

fn json(s: &NuageServer, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = s.kubectl(&a);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The pods (JSON) selected by `selector`.
fn pods(s: &NuageServer, selector: &str) -> Vec<Value> {
    json(s, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn names(pods: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = pods.iter().map(name).collect();
    n.sort();
    n
}

fn running_and_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn not_terminating(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

/// Waits for exactly `n` pods matching `selector`, all Running and Ready
/// (and none being deleted); returns them.
fn wait_running(s: &NuageServer, selector: &str, n: usize, secs: u64) -> Vec<Value> {
    wait_until(
        &format!("{n} running pods -l {selector}"),
        Duration::from_secs(secs),
        || {
            let all = pods(s, selector);
            if all.len() == n
                && all
                    .iter()
                    .all(|p| running_and_ready(p) && not_terminating(p))
            {
                Ok(all)
            } else {
                Err(format!(
                    "{}\n{}\nserver log tail:\n{}",
                    s.kubectl_ok(&["get", "pods", "-o", "wide"]),
                    s.kubectl_ok(&["get", "rc,rs"]),
                    tail(&s.log(), 20)
                ))
            }
        },
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `kubectl get rc NAME`'s READY column.
fn ready_column(s: &NuageServer, kind: &str, name: &str) -> String {
    let out = s.kubectl_ok(&["get", kind, name, "--no-headers"]);
    let cols: Vec<&str> = out.split_whitespace().collect();
    // NAME DESIRED CURRENT READY AGE
    cols.get(3).copied().unwrap_or_default().to_string()
}

fn wait_ready_column(s: &NuageServer, kind: &str, name: &str, want: &str) {
    wait_until(
        &format!("{kind} {name} READY {want}"),
        Duration::from_secs(30),
        || {
            let got = ready_column(s, kind, name);
            if got == want {
                Ok(())
            } else {
                Err(s.kubectl_ok(&["get", kind, name]))
            }
        },
    );
}

fn events(s: &NuageServer, object: &str) -> Vec<Value> {
    json(
        s,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={object}"),
        ],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn has_event(s: &NuageServer, object: &str, reason: &str, component: &str) -> bool {
    events(s, object)
        .iter()
        .any(|e| e["reason"] == reason && e["source"]["component"] == component)
}

/// The course's example with `nodeName` in the template (no scheduler
/// needed): 2 Running pods, `kubectl scale` to 4, a deleted pod replaced,
/// the extra pods removed when scaling down, `kubectl delete rc` removes
/// the rest. Status and Events as kubectl shows them.
#[test]
fn the_course_rc_runs_scales_replaces_and_deletes_its_pods() {
    let (_dir, s, node) = node();
    let rc = std::fs::read_to_string(RC_YAML)
        .expect("read rc.yaml")
        .replace(
            "    spec:\n",
            &format!("    spec:\n      nodeName: {node}\n"),
        );
    assert!(rc.contains("nodeName"), "{rc}");
    let out = s.kubectl_stdin(&["create", "-f", "-"], &rc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = wait_running(&s, "app=sise", 2, 90);
    for p in &first {
        assert!(name(p).starts_with("rcsise-"), "{}", name(p));
        let r = &p["metadata"]["ownerReferences"][0];
        assert_eq!(r["kind"], "ReplicationController");
        assert_eq!(r["name"], "rcsise");
        assert_eq!(r["controller"], true);
        assert_eq!(r["blockOwnerDeletion"], true);
    }
    wait_ready_column(&s, "rc", "rcsise", "2");
    let rc = json(&s, &["get", "rc", "rcsise"]);
    assert_eq!(rc["status"]["replicas"], 2, "{rc}");
    assert_eq!(rc["status"]["fullyLabeledReplicas"], 2, "{rc}");
    assert_eq!(rc["status"]["availableReplicas"], 2, "{rc}");
    assert_eq!(rc["status"]["observedGeneration"], 1, "{rc}");

    s.kubectl_ok(&["scale", "rc", "rcsise", "--replicas=4"]);
    let four = wait_running(&s, "app=sise", 4, 90);
    wait_ready_column(&s, "rc", "rcsise", "4");
    assert_eq!(
        json(&s, &["get", "rc", "rcsise"])["status"]["observedGeneration"],
        2
    );

    let victim = name(&four[0]);
    s.kubectl_ok(&["delete", "pod", &victim, "--wait=false"]);
    let after = wait_running(&s, "app=sise", 4, 90);
    assert!(!names(&after).contains(&victim), "{victim} replaced");

    s.kubectl_ok(&["scale", "rc", "rcsise", "--replicas=1"]);
    wait_running(&s, "app=sise", 1, 60);
    wait_ready_column(&s, "rc", "rcsise", "1");

    let describe = s.kubectl_ok(&["describe", "rc", "rcsise"]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
    assert!(describe.contains("SuccessfulDelete"), "{describe}");
    assert!(has_event(
        &s,
        "rcsise",
        "SuccessfulCreate",
        "replication-controller"
    ));

    s.kubectl_ok(&["delete", "rc", "rcsise"]);
    wait_until("the rc's pods to go", Duration::from_secs(60), || {
        let left = pods(&s, "app=sise");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", names(&left)))
        }
    });
}

/// `kubectl create -f examples/seed/rc.yaml`, verbatim: the scheduler
/// places the pods on the node, and they run.
#[test]
fn the_course_rc_example_runs_through_the_scheduler() {
    let (_dir, s, node) = node();
    s.kubectl_ok(&["create", "-f", RC_YAML]);
    let running = wait_running(&s, "app=sise", 2, 120);
    for p in &running {
        assert_eq!(p["spec"]["nodeName"], node.as_str());
    }
    s.kubectl_ok(&["scale", "rc", "rcsise", "--replicas=4"]);
    wait_running(&s, "app=sise", 4, 90);
    wait_ready_column(&s, "rc", "rcsise", "4");
    s.kubectl_ok(&["delete", "rc", "rcsise"]);
    wait_for("the rc's pods to go", Duration::from_secs(60), || {
        pods(&s, "app=sise").is_empty().then_some(())
    });
}

/// A pod (unscheduled: a server without agent or nodes) with `labels`.
fn orphan(s: &NuageServer, name: &str, labels: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  containers:\n  - name: c\n    image: img/serv:0.5.0\n"
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn controller_uid(p: &Value) -> Option<String> {
    p["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

/// Waits until exactly `n` pods match `selector`, all controlled by `uid`.
fn wait_owned(s: &NuageServer, selector: &str, uid: &str, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} pods -l {selector} owned by {uid}"),
        Duration::from_secs(30),
        || {
            let all = pods(s, selector);
            if all.len() == n
                && all
                    .iter()
                    .all(|p| controller_uid(p).as_deref() == Some(uid))
            {
                Ok(all)
            } else {
                Err(serde_json::to_string_pretty(
                    &all.iter()
                        .map(|p| (name(p), p["metadata"]["ownerReferences"].clone()))
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_default())
            }
        },
    )
}

/// An RC adopts a matching orphan instead of creating a pod for it, and
/// releases a pod whose labels stop matching (then replaces it); a pod
/// another controller owns is left alone.
#[test]
fn adoption_and_release_follow_labels() {
    let s = NuageServer::start(BIN);
    orphan(&s, "stray", "{app: adopt, extra: 'y'}");
    let rc = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: keeper\nspec:\n  replicas: 2\n  selector:\n    app: adopt\n  template:\n    metadata:\n      labels:\n        app: adopt\n    spec:\n      containers:\n      - name: c\n        image: img/serv:0.5.0\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], rc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid = json(&s, &["get", "rc", "keeper"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let owned = wait_owned(&s, "app=adopt", &uid, 2);
    assert!(
        names(&owned).contains(&"stray".to_string()),
        "{:?}",
        names(&owned)
    );
    let stray = pods(&s, "app=adopt")
        .into_iter()
        .find(|p| name(p) == "stray")
        .unwrap();
    let r = &stray["metadata"]["ownerReferences"][0];
    assert_eq!(
        (r["kind"].as_str(), r["controller"].as_bool()),
        (Some("ReplicationController"), Some(true))
    );

    // Relabelled: released, and replaced by a new pod.
    s.kubectl_ok(&["label", "pod", "stray", "app=gone", "--overwrite"]);
    let owned = wait_owned(&s, "app=adopt", &uid, 2);
    assert!(!names(&owned).contains(&"stray".to_string()));
    wait_for("stray released", Duration::from_secs(30), || {
        let p = json(&s, &["get", "pod", "stray"]);
        controller_uid(&p).is_none().then_some(())
    });
    let status = wait_until("status.replicas 2", Duration::from_secs(30), || {
        let rc = json(&s, &["get", "rc", "keeper"]);
        if rc["status"]["replicas"] == 2 {
            Ok(rc)
        } else {
            Err(rc["status"].to_string())
        }
    });
    assert_eq!(status["status"]["readyReplicas"].as_i64().unwrap_or(0), 0);

    // Relabelled back: adopted again, and the RC now has one too many.
    s.kubectl_ok(&["label", "pod", "stray", "app=adopt", "--overwrite"]);
    wait_owned(&s, "app=adopt", &uid, 2);
}

/// Marks a pod Ready (as its kubelet would) through the status subresource.
fn set_ready(s: &NuageServer, pod: &str, since: &str) {
    let patch = format!(
        r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{since}"}}]}}}}"#
    );
    s.kubectl_ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// A ReplicaSet with matchExpressions: its pods, its status
/// (fullyLabeled, ready, available with minReadySeconds), and scaling down
/// removes the not-ready pods first.
#[test]
fn a_replicaset_with_match_expressions_counts_and_scales_down_least_useful_first() {
    let s = NuageServer::start(BIN);
    let rs = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: front
spec:
  replicas: 3
  minReadySeconds: 3600
  selector:
    matchLabels:
      app: front
    matchExpressions:
    - key: tier
      operator: In
      values: [web, edge]
    - key: legacy
      operator: DoesNotExist
  template:
    metadata:
      labels:
        app: front
        tier: web
    spec:
      containers:
      - name: c
        image: img/serv:0.5.0
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], rs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid = json(&s, &["get", "rs", "front"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let three = wait_owned(&s, "app=front", &uid, 3);
    let (a, b) = (name(&three[0]), name(&three[1]));
    assert!(a.starts_with("front-"));
    // A pod with `legacy` is not selected, nor adopted.
    orphan(&s, "legacy", "{app: front, tier: web, legacy: 'yes'}");

    // Ready long ago (available despite minReadySeconds), and ready now
    // (not yet available).
    set_ready(&s, &a, "2020-01-01T00:00:00Z");
    let now = json(&s, &["get", "rs", "front"])["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    set_ready(&s, &b, &now);
    let rs = wait_until("rs status", Duration::from_secs(30), || {
        let rs = json(&s, &["get", "rs", "front"]);
        let st = &rs["status"];
        if st["replicas"] == 3 && st["readyReplicas"] == 2 && st["availableReplicas"] == 1 {
            Ok(rs)
        } else {
            Err(st.to_string())
        }
    });
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 3);
    assert_eq!(rs["status"]["observedGeneration"], 1);
    assert!(rs["status"]["conditions"].is_null(), "{}", rs["status"]);
    assert_eq!(ready_column(&s, "rs", "front"), "2");
    assert!(controller_uid(&json(&s, &["get", "pod", "legacy"])).is_none());

    // Scale to 2: the not-ready pod goes first.
    s.kubectl_ok(&["scale", "rs", "front", "--replicas=2"]);
    let left = wait_owned(&s, "app=front,!legacy", &uid, 2);
    assert_eq!(names(&left), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    // Scale to 1: of two ready pods, the one ready for less time goes.
    s.kubectl_ok(&["scale", "rs", "front", "--replicas=1"]);
    let left = wait_owned(&s, "app=front,!legacy", &uid, 1);
    assert_eq!(names(&left), vec![a.clone()]);
    wait_for("SuccessfulDelete events", Duration::from_secs(30), || {
        has_event(&s, "front", "SuccessfulDelete", "replicaset-controller").then_some(())
    });
    let rs = wait_until("rs status after scale", Duration::from_secs(30), || {
        let rs = json(&s, &["get", "rs", "front"]);
        if rs["status"]["replicas"] == 1 && rs["status"]["observedGeneration"] == 3 {
            Ok(rs)
        } else {
            Err(rs["status"].to_string())
        }
    });
    assert_eq!(rs["status"]["availableReplicas"], 1);
}

/// Pods the API refuses: `ReplicaFailure` with the API's message and a
/// FailedCreate Event; fixing the template clears the condition. (The
/// template's annotation key is invalid for a pod; the API does not check
/// template annotations when the ReplicaSet is written.)
#[test]
fn refused_creates_set_replica_failure_until_fixed() {
    let s = NuageServer::start(BIN);
    let rs = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: broken
spec:
  replicas: 2
  selector:
    matchLabels:
      app: broken
  template:
    metadata:
      labels:
        app: broken
      annotations:
        "not a key!": "x"
    spec:
      containers:
      - name: c
        image: img/serv:0.5.0
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], rs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cond = wait_until("ReplicaFailure", Duration::from_secs(30), || {
        let rs = json(&s, &["get", "rs", "broken"]);
        rs["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure").cloned())
            .ok_or_else(|| rs["status"].to_string())
    });
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "FailedCreate");
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("not a key!"), "{msg}");
    wait_for("a FailedCreate event", Duration::from_secs(30), || {
        events(&s, "broken")
            .iter()
            .find(|e| e["reason"] == "FailedCreate" && e["type"] == "Warning")
            .map(|e| {
                assert!(e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Error creating: "))
            })
    });
    assert!(pods(&s, "app=broken").is_empty());

    s.kubectl_ok(&[
        "patch",
        "rs",
        "broken",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/template/metadata/annotations"}]"#,
    ]);
    wait_until(
        "the condition cleared and 2 pods",
        Duration::from_secs(60),
        || {
            let rs = json(&s, &["get", "rs", "broken"]);
            if rs["status"]["conditions"].is_null() && rs["status"]["replicas"] == 2 {
                Ok(())
            } else {
                Err(rs["status"].to_string())
            }
        },
    );
}

/// Many replicas are created in a few reconciles (slow start, bounded
/// concurrency), exactly as many as asked, and go with their owner.
#[test]
fn a_large_replicaset_is_created_exactly_and_quickly() {
    let s = NuageServer::start(BIN);
    let rs = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: many
spec:
  replicas: 1000
  selector:
    matchLabels:
      app: many
  template:
    metadata:
      labels:
        app: many
    spec:
      containers:
      - name: c
        image: img/serv:0.5.0
"#;
    let t = std::time::Instant::now();
    let out = s.kubectl_stdin(&["create", "-f", "-"], rs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("1000 replicas", Duration::from_secs(120), || {
        let rs = json(&s, &["get", "rs", "many"]);
        if rs["status"]["replicas"] == 1000 {
            Ok(())
        } else {
            Err(rs["status"].to_string())
        }
    });
    let took = t.elapsed();
    assert_eq!(pods(&s, "app=many").len(), 1000);
    eprintln!("1000 pods created in {took:?}");
    s.kubectl_ok(&["scale", "rs", "many", "--replicas=10"]);
    wait_for("scaled down to 10", Duration::from_secs(120), || {
        (pods(&s, "app=many").len() == 10).then_some(())
    });
    s.kubectl_ok(&["delete", "rs", "many"]);
    wait_for("its pods gone", Duration::from_secs(60), || {
        pods(&s, "app=many").is_empty().then_some(())
    });
}
