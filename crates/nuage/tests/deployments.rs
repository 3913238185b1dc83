//! The Deployment controller end to end (issue 5): the real `nuage server`
//! with its agent (the ReplicaSet controller makes the pods, the scheduler
//! binds them, the agent runs them and probes their readiness), driven by
//! the real `kubectl rollout status|history|undo|pause|resume|restart`.

use std::io::BufReader;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nuage_testkit::server::{isolated_node_flags, wait_for, wait_until, NuageServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
/// Rollouts on a loaded 2-core machine: generous but bounded.
const ROLLOUT: Duration = Duration::from_secs(180);

/// Imports a seed image into the node whose data dir is `dir` (while its
/// server runs, too: the agent reads the store at each pod start).
fn import(dir: &Path, archive: &str) {
    nuage_testkit::seed::import(BIN, dir, archive);
}

/// A server with its agent and both seed images. The data dir is returned
/// first so that it is dropped after the server (which resets the node).
fn node() -> (tempfile::TempDir, NuageServer) {
    let dir = tempfile::Builder::new()
        .prefix("nuage-deploy-test-")
        .tempdir()
        .expect("temp dir");
    import(dir.path(), "busybox.tar");
    import(dir.path(), "serv.tar");
    let flags = isolated_node_flags();
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = NuageServer::start_in(BIN, dir.path(), &args);
    wait_for("the node to register", Duration::from_secs(30), || {
        server
            .kubectl(&["get", "node", &node])
            .status
            .success()
            .then_some(())
    });
    (dir, server)
}

/// A Deployment of `replicas` pods labelled `app: NAME` running `sleep`,
/// ready by an exec probe, stopping within a second.
fn deployment(name: &str, replicas: u32, strategy: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
{extra_spec}  selector:
    matchLabels:
      app: {name}
  strategy:
{strategy}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        command: [\"sleep\", \"3600\"]
        readinessProbe:
          exec:
            command: [\"true\"]
          periodSeconds: 1
"
    )
}

fn apply(s: &NuageServer, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rollout_ok(s: &NuageServer, name: &str) -> String {
    s.kubectl_ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=180s",
    ])
}

fn json(s: &NuageServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&args)).expect("kubectl json")
}

/// The Deployment's ReplicaSets, by revision.
fn replica_sets(s: &NuageServer, app: &str) -> Vec<Value> {
    let list = json(s, &["get", "rs", "-l", &format!("app={app}")]);
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(revision);
    items
}

fn revision(rs: &Value) -> u64 {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The template as a Deployment would carry it (no hash label), without
/// the null and empty fields a client may add or leave out.
fn template_without_hash(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    pruned(t)
}

fn pruned(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| !v.is_null() && v != &Value::Object(Default::default()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(pruned).collect()),
        other => other,
    }
}

/// Pods as a `kubectl get pods -w --output-watch-events` stream shows
/// them, with a check run on every change.
struct PodWatch {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    /// Live pods by name.
    pods: std::collections::BTreeMap<String, Value>,
    /// The first violation the check reported, with the pods then.
    violation: Option<String>,
    /// Events seen.
    events: usize,
}

fn ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn hash(p: &Value) -> String {
    p["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl PodWatch {
    /// Watches the pods labelled `app=APP`; `check` sees every state and
    /// returns an error to report.
    fn start(
        s: &NuageServer,
        app: &str,
        check: impl Fn(&std::collections::BTreeMap<String, Value>) -> Result<(), String>
            + Send
            + 'static,
    ) -> Self {
        let mut child = s
            .kubectl_cmd()
            .args([
                "get",
                "pods",
                "-l",
                &format!("app={app}"),
                "-w",
                "--output-watch-events",
                "-o",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let stdout = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            let stream =
                serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>();
            for event in stream {
                let Ok(event) = event else { break };
                let mut seen = shared.lock().unwrap();
                let name = event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if event["type"] == "DELETED" {
                    seen.pods.remove(&name);
                } else {
                    seen.pods.insert(name, event["object"].clone());
                }
                seen.events += 1;
                if seen.violation.is_none() {
                    if let Err(e) = check(&seen.pods) {
                        let states: Vec<String> = seen
                            .pods
                            .iter()
                            .map(|(n, p)| {
                                format!(
                                    "{n} hash={} ready={} deleting={}",
                                    hash(p),
                                    ready(p),
                                    !p["metadata"]["deletionTimestamp"].is_null()
                                )
                            })
                            .collect();
                        seen.violation = Some(format!("{e}\n{}", states.join("\n")));
                    }
                }
            }
        });
        Self {
            child,
            reader: Some(reader),
            seen,
        }
    }

    fn events(&self) -> usize {
        self.seen.lock().unwrap().events
    }

    /// Stops the watch; the first violation, if any.
    fn finish(mut self) -> Option<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.seen.lock().unwrap().violation.take()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events_of(s: &NuageServer, name: &str) -> String {
    s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name},involvedObject.kind=Deployment"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

/// A rolling update from busybox to img/serv never has fewer than
/// `replicas - maxUnavailable` ready pods; history lists both revisions;
/// undo brings revision 1's template back as revision 3; pause holds a
/// template change until resume; restart rolls a new ReplicaSet.
#[test]
fn rolling_update_history_undo_pause_and_restart() {
    let (_dir, s) = node();
    let strategy =
        "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 1\n";
    apply(&s, &deployment("web", 3, strategy, ""));
    let out = rollout_ok(&s, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = json(&s, &["get", "deploy", "web"]);
    assert_eq!(d["status"]["readyReplicas"], 3, "{d}");
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
    let conds = d["status"]["conditions"].to_string();
    assert!(
        conds.contains("NewReplicaSetAvailable") && conds.contains("MinimumReplicasAvailable"),
        "{conds}"
    );
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 1);
    let first = rss[0].clone();
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    let first_hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first_name, format!("web-{first_hash}"));
    assert_eq!(
        first["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        first_hash.as_str()
    );
    assert_eq!(revision(&first), 1);

    // Never fewer than 3 - 1 ready pods once all 3 were ready.
    let watch = PodWatch::start(&s, "web", {
        let armed = Mutex::new(false);
        move |pods| {
            let n = pods.values().filter(|p| ready(p)).count();
            let mut armed = armed.lock().unwrap();
            if n >= 3 {
                *armed = true;
            }
            if *armed && n < 2 {
                return Err(format!("only {n} ready pods"));
            }
            Ok(())
        }
    });
    wait_for(
        "the watch to list the pods",
        Duration::from_secs(30),
        || (watch.events() >= 3).then_some(()),
    );
    s.kubectl_ok(&["set", "image", "deployment/web", "main=img/serv:0.5.0"]);
    rollout_ok(&s, "web");
    let violation = watch.finish();
    assert!(violation.is_none(), "{}", violation.unwrap_or_default());
    let events = events_of(&s, "web");
    assert!(
        events.contains(&format!("Scaled up replica set {first_name} from 0 to 3")),
        "{events}"
    );
    assert!(
        events.contains(&format!("Scaled down replica set {first_name}")),
        "{events}"
    );
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 2);
    assert_eq!(
        rss[1]["spec"]["template"]["spec"]["containers"][0]["image"],
        "img/serv:0.5.0"
    );
    assert_eq!(rss[0]["spec"]["replicas"], 0);
    let pods = json(&s, &["get", "pods", "-l", "app=web"]);
    let images: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap())
        .collect();
    assert!(images.iter().all(|i| *i == "img/serv:0.5.0"), "{images:?}");

    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("REVISION"), "{history}");
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let rev1 = s.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(rev1.contains("busybox:latest"), "{rev1}");

    // Undo: revision 1's template, as revision 3, on the same ReplicaSet.
    s.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    rollout_ok(&s, "web");
    let d = json(&s, &["get", "deploy", "web"]);
    assert_eq!(
        pruned(d["spec"]["template"].clone()),
        template_without_hash(&first),
        "{d}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 2);
    let back = rss
        .iter()
        .find(|r| r["metadata"]["name"] == first_name.as_str())
        .unwrap();
    assert_eq!(revision(back), 3);
    assert_eq!(
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(back["spec"]["replicas"], 3);

    // Paused: a template change is observed but not rolled out.
    s.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    s.kubectl_ok(&["set", "env", "deployment/web", "MODE=paused"]);
    wait_until("the paused change to be observed", ROLLOUT, || {
        let d = json(&s, &["get", "deploy", "web"]);
        let conds = d["status"]["conditions"].to_string();
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && conds.contains("DeploymentPaused"))
        .then_some(())
        .ok_or(d.to_string())
    });
    assert_eq!(replica_sets(&s, "web").len(), 2, "no rollout while paused");
    s.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    rollout_ok(&s, "web");
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 3);
    assert_eq!(revision(&rss[2]), 4);
    assert!(rss[2]["spec"]["template"].to_string().contains("MODE"));

    // Restart: a template annotation, hence a new ReplicaSet.
    s.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    rollout_ok(&s, "web");
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 4);
    assert!(rss[3]["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_string());
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('5'), "{history}");
}

/// Recreate: every old pod is gone before the first new one exists; old
/// ReplicaSets past revisionHistoryLimit are deleted.
#[test]
fn recreate_replaces_all_pods_and_keeps_the_history_limit() {
    let (_dir, s) = node();
    apply(
        &s,
        &deployment(
            "rec",
            2,
            "    type: Recreate\n",
            "  revisionHistoryLimit: 1\n",
        ),
    );
    rollout_ok(&s, "rec");
    let watch = PodWatch::start(&s, "rec", |pods| {
        let mut hashes: Vec<String> = pods.values().map(hash).collect();
        hashes.sort();
        hashes.dedup();
        if hashes.len() > 1 {
            return Err(format!("pods of two templates at once: {hashes:?}"));
        }
        Ok(())
    });
    wait_for(
        "the watch to list the pods",
        Duration::from_secs(30),
        || (watch.events() >= 2).then_some(()),
    );
    s.kubectl_ok(&["set", "image", "deployment/rec", "main=img/serv:0.5.0"]);
    rollout_ok(&s, "rec");
    s.kubectl_ok(&["set", "env", "deployment/rec", "STEP=3"]);
    rollout_ok(&s, "rec");
    let violation = watch.finish();
    assert!(violation.is_none(), "{}", violation.unwrap_or_default());
    wait_until("old replica sets past the limit to go", ROLLOUT, || {
        let rss = replica_sets(&s, "rec");
        let revs: Vec<u64> = rss.iter().map(revision).collect();
        (revs == [2, 3]).then_some(()).ok_or(format!("{revs:?}"))
    });
    let d = json(&s, &["get", "deploy", "rec"]);
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
}

/// A rollout that cannot progress (its image does not exist) fails
/// `kubectl rollout status` once progressDeadlineSeconds pass.
#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let (_dir, s) = node();
    s.kubectl_ok(&["create", "deployment", "stuck", "--image=img/missing:1.0"]);
    s.kubectl_ok(&[
        "patch",
        "deployment",
        "stuck",
        "--type=merge",
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":5}}"#,
    ]);
    let out = s.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=120s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    let d = json(&s, &["get", "deploy", "stuck"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["status"], "False", "{d}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded", "{d}");
}
