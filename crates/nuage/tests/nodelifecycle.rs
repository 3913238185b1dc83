//! The node lifecycle controller end to end (issue 5): a server without an
//! agent, a Node and its Lease made and renewed by the test (as an agent
//! would), pods bound to it. When the renewals stop the node goes Unknown
//! and is tainted unreachable; its pods leave as their tolerations run
//! out; renewing (and reporting Ready) removes the taints.

use std::process::Command;
use std::time::{Duration, Instant};

use nuage_testkit::server::{wait_until, NuageServer};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
const NODE: &str = "lifecycle-node";

/// Now as a Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`).
fn micro_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn get_json(s: &NuageServer, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = s.kubectl(&all);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn exists(s: &NuageServer, kind: &str, name: &str) -> bool {
    !get_json(s, &[kind, name]).is_null()
}

fn taints(node: &Value) -> Vec<(String, String)> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_string(),
                        t["effect"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// Reports the node Ready (or not), as its agent would.
fn post_ready(s: &NuageServer, status: &str) {
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "test agent",
         "lastHeartbeatTime": micro_now().split('.').next().unwrap().to_string() + "Z",
         "lastTransitionTime": micro_now().split('.').next().unwrap().to_string() + "Z"},
    ]}});
    s.kubectl_ok(&[
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// Renews the node's Lease every 300 ms on a thread until dropped.
struct Heartbeat {
    /// Dropping it ends the thread at once.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(s: &NuageServer) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let mut kubectl = s.kubectl_cmd();
        kubectl.args([
            "-n",
            "kube-node-lease",
            "patch",
            "lease",
            NODE,
            "--type=merge",
            "-p",
        ]);
        let base: Vec<String> = kubectl
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let envs: Vec<(String, String)> = kubectl
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let thread = std::thread::spawn(move || {
            loop {
                let patch = json!({"spec": {"renewTime": micro_now()}}).to_string();
                let _ = Command::new("kubectl")
                    .args(&base)
                    .arg(&patch)
                    .envs(envs.iter().map(|(k, v)| (k, v)))
                    .output();
                // The renewal period of this fake agent; the channel
                // closing (drop) ends it.
                match stopped.recv_timeout(Duration::from_millis(300)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pod_yaml(name: &str, tolerations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {NODE}\n  containers:\n  - name: main\n    image: busybox:latest\n{tolerations}"
    )
}

#[test]
fn a_silent_node_is_tainted_and_its_pods_leave_as_their_tolerations_run_out() {
    let dir = tempfile::Builder::new()
        .prefix("nuage-nodelifecycle-")
        .tempdir()
        .unwrap();
    let s = NuageServer::start_in(
        BIN,
        dir.path(),
        &[
            "--no-agent",
            "--node-monitor-grace-period",
            "3",
            "--default-toleration-seconds",
            "2",
        ],
    );
    s.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n"),
    );
    post_ready(&s, "True");
    s.kubectl_stdin(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {NODE}\n  namespace: kube-node-lease\nspec:\n  holderIdentity: {NODE}\n  leaseDurationSeconds: 3\n  renewTime: \"{}\"\n",
            micro_now()
        ),
    );
    let heartbeat = Heartbeat::start(&s);

    for (name, tolerations) in [
        ("plain", ""),
        ("patient", "  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n    tolerationSeconds: 10\n"),
        ("forever", "  tolerations:\n  - operator: Exists\n    effect: NoExecute\n"),
    ] {
        let out = s.kubectl_stdin(&["create", "-f", "-"], &pod_yaml(name, tolerations));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // As if the agent had started it: Ready, to be marked not Ready.
    s.kubectl_ok(&[
        "patch",
        "pod",
        "patient",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);

    // Heartbeating: more than twice the grace passes without a taint.
    let watch_until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < watch_until {
        let node = get_json(&s, &["node", NODE]);
        assert!(
            taints(&node).is_empty(),
            "tainted while heartbeating: {node}"
        );
        assert_eq!(condition(&node, "Ready")["status"], "True", "{node}");
    }

    drop(heartbeat);
    let silent_since = Instant::now();
    let node = wait_until(
        "the node to go Unknown and be tainted",
        Duration::from_secs(20),
        || {
            let node = get_json(&s, &["node", NODE]);
            let t = taints(&node);
            let tainted = t
                .contains(&("node.kubernetes.io/unreachable".into(), "NoExecute".into()))
                && t.contains(&("node.kubernetes.io/unreachable".into(), "NoSchedule".into()));
            if tainted && condition(&node, "Ready")["status"] == "Unknown" {
                Ok(node)
            } else {
                Err(node.to_string())
            }
        },
    );
    let noticed = silent_since.elapsed();
    assert!(
        noticed >= Duration::from_secs(2),
        "tainted after only {noticed:?}"
    );
    let ready = condition(&node, "Ready");
    assert_eq!(ready["reason"], "NodeStatusUnknown", "{node}");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let tainted_at = Instant::now();
    let describe = s.kubectl_ok(&["describe", "node", NODE]);
    assert!(
        describe.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{describe}"
    );

    // The pods of an unreachable node are not Ready.
    wait_until(
        "patient to be marked not Ready",
        Duration::from_secs(10),
        || {
            let p = get_json(&s, &["pod", "patient"]);
            (condition(&p, "Ready")["status"] == "False")
                .then_some(())
                .ok_or_else(|| p["status"].to_string())
        },
    );
    // No toleration: out after the default (2 s).
    wait_until("plain to be evicted", Duration::from_secs(15), || {
        if exists(&s, "pod", "plain") {
            Err("plain still there".to_string())
        } else {
            Ok(())
        }
    });
    assert!(
        exists(&s, "pod", "patient"),
        "patient tolerates 10 s and was evicted after {:?}",
        tainted_at.elapsed()
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
    ]);
    assert!(
        events.contains("Marking for deletion Pod default/plain"),
        "{events}"
    );

    // tolerationSeconds: 10 (from the taint's timeAdded, to the second).
    wait_until("patient to be evicted", Duration::from_secs(25), || {
        if exists(&s, "pod", "patient") {
            Err("patient still there".to_string())
        } else {
            Ok(())
        }
    });
    let took = tainted_at.elapsed();
    assert!(
        took >= Duration::from_secs(7),
        "patient left after {took:?}"
    );
    assert!(
        exists(&s, "pod", "forever"),
        "a pod tolerating forever stays"
    );

    // The agent is back: the Lease renewed and Ready posted.
    let heartbeat = Heartbeat::start(&s);
    post_ready(&s, "True");
    wait_until("the taints to go", Duration::from_secs(15), || {
        let node = get_json(&s, &["node", NODE]);
        taints(&node)
            .is_empty()
            .then_some(())
            .ok_or_else(|| node.to_string())
    });

    // Ready False (agent alive, node unwell): the not-ready taints.
    post_ready(&s, "False");
    wait_until("the not-ready taints", Duration::from_secs(15), || {
        let node = get_json(&s, &["node", NODE]);
        let t = taints(&node);
        (t.contains(&("node.kubernetes.io/not-ready".into(), "NoExecute".into()))
            && t.contains(&("node.kubernetes.io/not-ready".into(), "NoSchedule".into())))
        .then_some(())
        .ok_or_else(|| node.to_string())
    });
    post_ready(&s, "True");
    wait_until(
        "the not-ready taints to go",
        Duration::from_secs(15),
        || {
            let node = get_json(&s, &["node", NODE]);
            taints(&node)
                .is_empty()
                .then_some(())
                .ok_or_else(|| node.to_string())
        },
    );
    assert!(exists(&s, "pod", "forever"));
    drop(heartbeat);
}
