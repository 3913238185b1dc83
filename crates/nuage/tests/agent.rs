//! The node agent end to end (issue 4): the real `nuage server` with its
//! in-process agent, real runc/crun, real kubectl, images made by
//! `examples/seed/build-images` and imported with `nuage image import`.
//!
//! Pods name their node (`spec.nodeName`): the scheduler is not part of
//! this issue.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nuage_testkit::server::{isolated_node_flags, wait_for, wait_until, NuageServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");

/// The seed images (built once, shared by every test).
fn images() -> PathBuf {
    nuage_testkit::seed::images()
}

/// A node's data dir that, when dropped (after its server, which resets
/// the node as it stops), checks that nothing the node made is left: no
/// shim, no mount, no network namespace, no bridge.
struct NodeDir {
    dir: tempfile::TempDir,
    bridge: String,
}

impl NodeDir {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let path = self.dir.path().to_string_lossy().into_owned();
        let shims: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!("shim\0{path}")))
            })
            .collect();
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&path))
            .map(str::to_string)
            .collect();
        let netns: Vec<String> = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .lines()
        .filter(|l| l.starts_with(&format!("{}-", self.bridge)))
        .map(str::to_string)
        .collect();
        let bridge = Command::new("ip")
            .args(["link", "show", &self.bridge])
            .output()
            .unwrap()
            .status
            .success();
        assert!(
            shims.is_empty() && mounts.is_empty() && netns.is_empty() && !bridge,
            "the node left: shims {shims:?}, mounts {mounts:?}, netns {netns:?}, bridge {bridge}"
        );
    }
}

/// Imports a seed image into the node whose data dir is `dir` (while its
/// server runs, too: the agent reads the store at each pod start).
fn import(dir: &Path, archive: &str) {
    nuage_testkit::seed::import(BIN, dir, archive);
}

/// A server with an agent using `runtime`, the busybox image imported
/// (tests that need `img/serv` import it while the server runs).
/// The data dir comes first: bound first, it is dropped last, after the
/// server has stopped and its node has been reset (then it checks that
/// nothing is left).
fn node(runtime: &str) -> (NodeDir, NuageServer, String) {
    let (dir, s, node, _) = node_with_flags(runtime);
    (dir, s, node)
}

/// [`node`], also returning the server's flags (to start it again).
fn node_with_flags(runtime: &str) -> (NodeDir, NuageServer, String, Vec<String>) {
    let dir = tempfile::Builder::new()
        .prefix("nuage-agent-test-")
        .tempdir()
        .expect("temp dir");
    import(dir.path(), "busybox.tar");
    let mut flags = isolated_node_flags();
    flags.extend(["--runtime".to_string(), runtime.to_string()]);
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = NuageServer::start_in(BIN, dir.path(), &args);
    wait_for("the node to register", Duration::from_secs(30), || {
        let out = server.kubectl(&["get", "node", &node, "-o", "json"]);
        out.status.success().then_some(())
    });
    let dir = NodeDir {
        dir,
        bridge: flags[1].clone(),
    };
    (dir, server, node, flags)
}

fn run_pod(s: &NuageServer, node: &str, name: &str, spec: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  nodeName: {node}\n{spec}"
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &yaml);
    assert!(
        out.status.success(),
        "create pod {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod_json(s: &NuageServer, name: &str) -> Value {
    let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Waits until `check` accepts the pod's JSON; the panic shows the last state.
fn wait_pod(
    s: &NuageServer,
    name: &str,
    what: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(
        &format!("pod {name}: {what}"),
        Duration::from_secs(secs),
        || {
            let pod = pod_json(s, name);
            if check(&pod) {
                Ok(pod)
            } else {
                Err(format!(
                    "{}\nserver log tail:\n{}",
                    serde_json::to_string_pretty(&pod["status"]).unwrap_or_default(),
                    tail(&s.log(), 30)
                ))
            }
        },
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

fn container(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn running(p: &Value) -> bool {
    phase(p) == "Running" && container(p)["state"]["running"].is_object()
}

fn http_get(addr: &str) -> Option<String> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

const SERV: &str = "  containers:\n  - name: sise\n    image: img/serv:0.5.0\n    ports:\n    - containerPort: 9876\n";

/// The course's example pod runs, answers on podIP:9876 with a page that
/// names it, and `kubectl exec -- cat /etc/hostname` prints its name.
fn serves_the_course_example(runtime: &str) {
    let (dir, s, node) = node(runtime);
    import(dir.path(), "serv.tar");
    run_pod(&s, &node, "sise", SERV);
    let pod = wait_pod(&s, "sise", "Running and Ready", 60, |p| {
        running(p) && container(p)["ready"] == true
    });
    let ip = pod["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with("10.2"), "pod IP {ip} from the node's CIDR");
    let conditions = pod["status"]["conditions"].as_array().unwrap();
    for kind in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True"),
            "{kind} in {conditions:?}"
        );
    }
    let page = wait_for(
        "the pod to answer on :9876",
        Duration::from_secs(20),
        || http_get(&format!("{ip}:9876")).filter(|b| b.contains("200")),
    );
    assert!(page.contains("sise"), "the page names the pod: {page}");
    let hostname = s.kubectl_ok(&["exec", "sise", "--", "cat", "/etc/hostname"]);
    assert_eq!(hostname.trim(), "sise");
    let out = s.kubectl(&["exec", "sise", "--", "sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.kubectl_stdin(&["exec", "-i", "sise", "--", "cat"], "hi from stdin\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from stdin\n");
    // The node reports the runtime it uses.
    let info = s.kubectl_ok(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
    ]);
    assert!(info.starts_with(&format!("{runtime}://")), "{info}");
    s.kubectl_ok(&[
        "delete",
        "pod",
        "sise",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
}

#[test]
fn runc_serves_the_course_example() {
    serves_the_course_example("runc");
}

#[test]
fn crun_serves_the_course_example() {
    serves_the_course_example("crun");
}

/// A container killed from outside comes back with restartCount 1; an
/// agent restart keeps the running container (same pid, same IP, same
/// count).
#[test]
fn runc_restarts_killed_containers_and_survives_agent_restarts() {
    restarts_killed_containers_and_survives_agent_restarts("runc");
}

#[test]
fn process_restarts_killed_containers_and_survives_agent_restarts() {
    restarts_killed_containers_and_survives_agent_restarts("process");
}

fn restarts_killed_containers_and_survives_agent_restarts(runtime: &str) {
    let (dir, s, node, flags) = node_with_flags(runtime);
    run_pod(
        &s,
        &node,
        "sleeper",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n",
    );
    wait_pod(&s, "sleeper", "Running", 60, running);
    let pid = container_pid(&s, dir.path(), "sleeper");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let pod = wait_pod(&s, "sleeper", "restartCount 1 and running again", 60, |p| {
        container(p)["restartCount"] == 1 && running(p)
    });
    assert_eq!(container(&pod)["lastState"]["terminated"]["exitCode"], 137);
    let ip = pod["status"]["podIP"].clone();
    let pid = container_pid(&s, dir.path(), "sleeper");

    // Stop the server (and its agent) without resetting the node, then
    // start a new one on the same data dir.
    let (status, _) = s.stop_without_reset();
    assert_eq!(status, "exit 0");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlived the agent"
    );
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = NuageServer::start_in(BIN, dir.path(), &args);
    let pod = wait_pod(&s, "sleeper", "the re-adopted pod", 30, running);
    assert_eq!(container(&pod)["restartCount"], 1, "no restart counted");
    assert_eq!(pod["status"]["podIP"], ip, "same address");
    assert_eq!(
        container_pid(&s, dir.path(), "sleeper"),
        pid,
        "the same process, not a new one"
    );
    // Still exactly one container process for it.
    s.kubectl_ok(&[
        "delete",
        "pod",
        "sleeper",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
        "deleted pod's process is gone"
    );
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// The host pid of the pod's `sleep` process: the child of the pod's
/// shim (`nuage shim DIR/agent/containers/<kind>/<uid12>-…`), which reaps
/// the container's init for every runtime.
fn container_pid(s: &NuageServer, dir: &Path, pod: &str) -> u32 {
    let uid = pod_json(s, pod)["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let shim_of_pod = format!("shim\0{}/agent/containers/", dir.display());
    // Running is reported once the runtime started the container; its
    // process may still be finishing its exec into `sleep`.
    wait_until(
        &format!("the sleep process of {pod}"),
        Duration::from_secs(10),
        || {
            let shims: Vec<u32> = std::fs::read_dir("/proc")
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains(&shim_of_pod) && c.contains(&format!("/{key}-"))
                    })
                })
                .collect();
            shims
                .iter()
                .flat_map(|shim| {
                    std::fs::read_to_string(format!("/proc/{shim}/task/{shim}/children"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok())
                        .collect::<Vec<_>>()
                })
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "sleep")
                })
                .ok_or(format!("shims of {uid}: {shims:?}"))
        },
    )
}

/// A memory hog over its limit is OOMKilled.
#[test]
fn a_memory_hog_is_oom_killed() {
    let (_dir, s, node) = node("runc");
    run_pod(
        &s,
        &node,
        "hog",
        "  restartPolicy: Never\n  containers:\n  - name: hog\n    image: busybox:latest\n    command: [\"dd\", \"if=/dev/zero\", \"of=/dev/null\", \"bs=128M\", \"count=4\"]\n    resources:\n      limits:\n        memory: 32Mi\n",
    );
    let pod = wait_pod(&s, "hog", "terminated", 60, |p| {
        container(p)["state"]["terminated"].is_object()
    });
    let t = &container(&pod)["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(phase(&pod), "Failed");
}

/// Liveness failures restart the container; readiness drives Ready.
#[test]
fn runc_probes_restart_and_gate_readiness() {
    probes_restart_and_gate_readiness("runc");
}

#[test]
fn process_probes_restart_and_gate_readiness() {
    probes_restart_and_gate_readiness("process");
}

fn probes_restart_and_gate_readiness(runtime: &str) {
    let (_dir, s, node) = node(runtime);
    // The process runtime shares the host's files: the marker files carry
    // the node's unique name (inside a container they are private anyway).
    let alive = format!("/tmp/{node}-alive");
    let ready = format!("/tmp/{node}-ready");
    struct Remove(Vec<String>);
    impl Drop for Remove {
        fn drop(&mut self) {
            for f in &self.0 {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    let _markers = Remove(vec![alive.clone(), ready.clone()]);
    run_pod(
        &s,
        &node,
        "probed",
        &format!("  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"touch {alive}; exec sleep 3600\"]\n    livenessProbe:\n      exec:\n        command: [\"cat\", \"{alive}\"]\n      periodSeconds: 1\n      failureThreshold: 1\n    readinessProbe:\n      exec:\n        command: [\"cat\", \"{ready}\"]\n      periodSeconds: 1\n"),
    );
    let pod = wait_pod(&s, "probed", "Running", 60, running);
    assert_eq!(
        container(&pod)["ready"],
        false,
        "not ready before /tmp/ready exists"
    );
    s.kubectl_ok(&["exec", "probed", "--", "touch", &ready]);
    wait_pod(&s, "probed", "Ready", 30, |p| {
        container(p)["ready"] == true
            && p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    });
    s.kubectl_ok(&["exec", "probed", "--", "rm", &alive]);
    wait_pod(&s, "probed", "a liveness restart", 60, |p| {
        container(p)["restartCount"].as_i64().unwrap_or(0) >= 1 && running(p)
    });
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(events.contains("Unhealthy"), "{events}");
}

/// `kubectl logs -f` streams lines as the container writes them;
/// `--tail` and `--previous` work.
#[test]
fn runc_logs_follow_streams() {
    logs_follow_streams("runc");
}

#[test]
fn process_logs_follow_streams() {
    logs_follow_streams("process");
}

fn logs_follow_streams(runtime: &str) {
    let (_dir, s, node) = node(runtime);
    run_pod(
        &s,
        &node,
        "talker",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"i=0; while [ $i -lt 600 ]; do echo line $i; i=$((i+1)); sleep 0.2; done\"]\n",
    );
    wait_pod(&s, "talker", "Running", 60, running);
    let mut child = s
        .kubectl_cmd()
        .args(["logs", "-f", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "line 0");
    // Lines written after the request started arrive on the open stream.
    for _ in 0..5 {
        let l = lines.next().unwrap().unwrap();
        assert!(l.starts_with("line "), "{l}");
    }
    let _ = child.kill();
    let _ = child.wait();
    let tail = s.kubectl_ok(&["logs", "talker", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
}

/// `kubectl exec -it` runs a shell on a terminal.
#[test]
fn exec_with_a_terminal() {
    let (_dir, s, node) = node("runc");
    run_pod(
        &s,
        &node,
        "shell",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n",
    );
    wait_pod(&s, "shell", "Running", 60, running);
    // `script` gives kubectl a terminal, as a user's would be.
    let kubectl = s.kubectl_cmd();
    let envs: Vec<(String, String)> = kubectl
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    let out = Command::new("script")
        .args([
            "-qec",
            "kubectl exec -it shell -- sh -c 'tty; echo answer=$((6*7))'",
            "/dev/null",
        ])
        .envs(envs)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("answer=42"), "{text}");
    // Nothing but the command's output: no echoed `^@` of a stray NUL.
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(
        text.contains("/dev/pts/") || text.contains("/dev/"),
        "a terminal inside: {text}"
    );
}

/// Pods that cannot run say why, and the agent serves the others.
#[test]
fn bad_pods_say_why() {
    let (dir, s, node) = node("runc");
    run_pod(
        &s,
        &node,
        "noimage",
        "  containers:\n  - name: main\n    image: nothere:1.0\n",
    );
    run_pod(
        &s,
        &node,
        "nocommand",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"/no/such/binary\"]\n",
    );
    run_pod(
        &s,
        &node,
        "novolume",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n    volumeMounts:\n    - name: cfg\n      mountPath: /cfg\n  volumes:\n  - name: cfg\n    configMap:\n      name: absent\n",
    );
    run_pod(
        &s,
        &node,
        "toobig",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n    resources:\n      requests:\n        memory: 100Ti\n",
    );
    run_pod(&s, &node, "fine", "  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n");
    let waiting = |reason: &'static str| {
        move |p: &Value| {
            let r = container(p)["state"]["waiting"]["reason"]
                .as_str()
                .unwrap_or_default();
            r == reason || (reason == "ErrImagePull" && r == "ImagePullBackOff")
        }
    };
    let pod = wait_pod(&s, "noimage", "ErrImagePull", 30, waiting("ErrImagePull"));
    assert!(container(&pod)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("nothere:1.0"));
    wait_pod(&s, "nocommand", "a start error", 30, |p| {
        let c = container(p);
        c["lastState"]["terminated"]["reason"] == "StartError"
            || c["state"]["terminated"]["reason"] == "StartError"
            || c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    wait_pod(&s, "novolume", "ContainerCreating", 30, |p| {
        container(p)["state"]["waiting"]["reason"] == "ContainerCreating"
    });
    let events = wait_for("a FailedMount event", Duration::from_secs(30), || {
        let e = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=novolume",
        ]);
        e.contains("FailedMount").then_some(e)
    });
    assert!(events.contains("absent"), "{events}");
    let pod = wait_pod(&s, "toobig", "rejected", 30, |p| phase(p) == "Failed");
    assert_eq!(pod["status"]["reason"], "OutOfmemory");
    wait_pod(&s, "fine", "Running", 60, running);
    let describe = s.kubectl_ok(&["describe", "pod", "noimage"]);
    assert!(describe.contains("nothere:1.0"), "{describe}");
    // A new image for a running container restarts it with that image.
    import(dir.path(), "serv.tar");
    s.kubectl_ok(&["set", "image", "pod/fine", "main=img/serv:0.5.0"]);
    wait_pod(&s, "fine", "the new image running", 60, |p| {
        container(p)["image"] == "img/serv:0.5.0" && running(p) && container(p)["restartCount"] == 1
    });
}

/// The process runtime runs the same lifecycle without isolation.
#[test]
fn the_process_runtime_runs_pods() {
    let (_dir, s, node) = node("process");
    run_pod(
        &s,
        &node,
        "plain",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"echo started; exec sleep 3600\"]\n",
    );
    let pod = wait_pod(&s, "plain", "Running", 60, running);
    assert!(pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .starts_with("127.77."));
    let logs = wait_for("the first log line", Duration::from_secs(20), || {
        let l = s.kubectl_ok(&["logs", "plain"]);
        l.contains("started").then_some(l)
    });
    assert_eq!(logs, "started\n");
    let out = s.kubectl(&["exec", "plain", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let conditions = s.kubectl_ok(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    assert!(conditions.contains("no isolation"), "{conditions}");
    run_pod(
        &s,
        &node,
        "once",
        "  restartPolicy: OnFailure\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"exit 1\"]\n",
    );
    wait_pod(&s, "once", "a restart", 60, |p| {
        container(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    s.kubectl_ok(&[
        "delete",
        "pod",
        "plain",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
}

/// A `nuage agent` process joins a control plane that runs no agent of its
/// own: the same client code over HTTPS, its own data dir and image store.
#[test]
fn a_separate_agent_joins_and_runs_pods() {
    struct Agent {
        child: std::process::Child,
        dir: tempfile::TempDir,
    }
    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
            let _ = Command::new(BIN)
                .args(["reset", "--data-dir"])
                .arg(self.dir.path())
                .status();
        }
    }
    let s = NuageServer::start(BIN);
    let dir = tempfile::Builder::new()
        .prefix("nuage-remote-agent-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new(BIN)
        .args(["image", "import"])
        .arg(images().join("busybox.tar"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let flags = isolated_node_flags();
    let node = flags[5].clone();
    let token = std::fs::read_to_string(s.dir.join("admin-token")).unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = Command::new(BIN)
        .args(["agent", "--server", &s.api, "--ca-file"])
        .arg(s.dir.join("ca.crt"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--runtime", "runc", "--port", "0", "--node-ip", "127.0.0.1"])
        .args(&flags)
        .env("NUAGE_TOKEN", token.trim())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start nuage agent");
    let agent = Agent { child, dir };
    let agent_log =
        || std::fs::read_to_string(agent.dir.path().join("agent.log")).unwrap_or_default();
    wait_until(
        "the agent's node to be Ready",
        Duration::from_secs(30),
        || {
            let out = s.kubectl(&[
                "get",
                "node",
                &node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            if String::from_utf8_lossy(&out.stdout) == "True" {
                Ok(())
            } else {
                Err(agent_log())
            }
        },
    );
    let lease = s.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        &node,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, node);
    run_pod(
        &s,
        &node,
        "remote",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"echo from afar; exec sleep 3600\"]\n",
    );
    wait_pod(&s, "remote", "Running", 60, running);
    let logs = wait_for("the log line", Duration::from_secs(20), || {
        let l = s.kubectl_ok(&["logs", "remote"]);
        l.contains("from afar").then_some(l)
    });
    assert_eq!(logs, "from afar\n");
    assert_eq!(
        s.kubectl_ok(&["exec", "remote", "--", "hostname"]).trim(),
        "remote"
    );
    s.kubectl_ok(&[
        "delete",
        "pod",
        "remote",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
    drop(agent);
}

/// Volumes of every kind reach the container; a preStop hook runs before
/// the stop; a host port forwards to the pod; `runtimeClassName` picks the
/// runtime per pod; `logs --previous` shows the attempt before a restart.
#[test]
fn volumes_hooks_host_ports_and_runtime_classes() {
    let (dir, s, node) = node("runc");
    import(dir.path(), "serv.tar");
    let host_dir = dir.path().join("hostdir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("greeting"), "from the host\n").unwrap();
    s.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=color=blue"]);
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "--from-literal=password=s3cret",
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!(
        r#"  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: img/serv:0.5.0
    ports:
    - containerPort: 9876
      hostPort: {port}
      hostIP: 127.0.0.1
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: COLOR
      valueFrom:
        configMapKeyRef:
          name: cfg
          key: color
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo stopped-cleanly > /host/prestop"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: pw, mountPath: /etc/pw}}
    - {{name: info, mountPath: /etc/info}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: pw, secret: {{secretName: pw}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
"#,
        host = host_dir.display()
    );
    run_pod(&s, &node, "vols", &spec);
    wait_pod(&s, "vols", "Running", 60, running);
    let sh = |cmd: &str| s.kubectl_ok(&["exec", "vols", "--", "sh", "-c", cmd]);
    assert_eq!(sh("cat /host/greeting"), "from the host\n");
    assert_eq!(sh("cat /etc/cfg/color"), "blue");
    assert_eq!(sh("cat /etc/pw/password"), "s3cret");
    assert_eq!(sh("cat /etc/info/name"), "vols");
    assert_eq!(sh("cat /etc/info/labels"), "app=\"vols\"");
    assert_eq!(sh("echo $POD_NAME $COLOR"), "vols blue\n");
    assert!(sh("grep ' /mem ' /proc/mounts").contains("tmpfs"));
    sh("echo kept > /scratch/f && cat /scratch/f");
    // The host port reaches the pod from the host.
    let page = wait_for("the host port", Duration::from_secs(20), || {
        http_get(&format!("127.0.0.1:{port}")).filter(|b| b.contains("200"))
    });
    assert!(page.contains("vols"), "{page}");
    // Deleting runs the preStop hook first.
    s.kubectl_ok(&["delete", "pod", "vols", "--wait=true", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(host_dir.join("prestop")).unwrap(),
        "stopped-cleanly\n"
    );
    assert!(
        http_get(&format!("127.0.0.1:{port}")).is_none(),
        "the host port closed with the pod"
    );

    // runtimeClassName: process on a runc node; --previous after a restart.
    // The process runtime shares the host's /tmp: a marker file unique to
    // this node tells the second attempt from the first.
    let marker = format!("/tmp/nuage-classy-{node}");
    run_pod(
        &s,
        &node,
        "classy",
        &format!("  runtimeClassName: process\n  restartPolicy: OnFailure\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"if [ -e {marker} ]; then echo second; exec sleep 3600; else touch {marker}; echo first; exit 1; fi\"]\n"),
    );
    let pod = wait_pod(&s, "classy", "restarted and running", 60, |p| {
        running(p) && container(p)["restartCount"] == 1
    });
    assert!(container(&pod)["containerID"]
        .as_str()
        .unwrap_or_default()
        .starts_with("process://"));
    let previous = s.kubectl_ok(&["logs", "classy", "--previous"]);
    assert_eq!(previous, "first\n");
    let current = wait_for("the second attempt's log", Duration::from_secs(20), || {
        let l = s.kubectl_ok(&["logs", "classy", "-c", "main"]);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(current, "second\n");
    let _ = std::fs::remove_file(&marker);
    s.kubectl_ok(&[
        "delete",
        "pod",
        "classy",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
}

/// Init containers run in order, each to completion, before the
/// containers; a pod whose containers all succeed is Succeeded; a failed
/// init container with `restartPolicy: Never` fails the pod.
#[test]
// The containers here live 0.2 s before they exit: one that exits within
// milliseconds of its start can lose its exit status in the runtime (a known
// race, reported as 255; see the issue note), which is not what this test is
// about.
fn init_containers_run_first_and_pods_complete() {
    let (_dir, s, node) = node("crun");
    run_pod(
        &s,
        &node,
        "staged",
        "  restartPolicy: Never\n  initContainers:\n  - name: one\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"sleep 0.2; echo one >> /work/order\"]\n    volumeMounts: [{name: work, mountPath: /work}]\n  - name: two\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"sleep 0.2; echo two >> /work/order\"]\n    volumeMounts: [{name: work, mountPath: /work}]\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"sleep 0.2; cat /work/order\"]\n    volumeMounts: [{name: work, mountPath: /work}]\n  volumes:\n  - {name: work, emptyDir: {}}\n",
    );
    let pod = wait_pod(&s, "staged", "Succeeded", 60, |p| phase(p) == "Succeeded");
    let inits = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    for i in inits {
        assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i}");
    }
    assert_eq!(
        container(&pod)["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(s.kubectl_ok(&["logs", "staged"]), "one\ntwo\n");
    assert_eq!(s.kubectl_ok(&["logs", "staged", "-c", "one"]), "");

    run_pod(
        &s,
        &node,
        "badinit",
        "  restartPolicy: Never\n  initContainers:\n  - name: fail\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"sleep 0.2; exit 1\"]\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"true\"]\n",
    );
    let pod = wait_pod(&s, "badinit", "Failed", 60, |p| phase(p) == "Failed");
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        1
    );
    assert!(
        container(&pod)["state"]["waiting"].is_object(),
        "the main container never ran: {}",
        container(&pod)
    );
}

/// Without root the agent still runs pods: as plain processes on the
/// host's network with a loopback address each, and the node says so.
#[test]
fn the_agent_runs_without_root() {
    const NOBODY: &str = "65534";
    // A wrapper that drops to nobody, used as the server binary (the test
    // harness also runs `reset` through it).
    let bin_dir = tempfile::tempdir().unwrap();
    let wrapper = bin_dir.path().join("nuage-as-nobody");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {BIN} \"$@\"\n"),
    )
    .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("nuage-agent-test-")
        .tempdir()
        .unwrap();
    let made = Command::new("chmod")
        .arg("755")
        .arg(&wrapper)
        .status()
        .unwrap()
        .success()
        && Command::new("chown")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
    assert!(made, "prepare the wrapper and the data dir");
    let out = Command::new(&wrapper)
        .args(["image", "import"])
        .arg(images().join("busybox.tar"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags = isolated_node_flags();
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = NuageServer::start_in(wrapper.to_str().unwrap(), dir.path(), &args);
    wait_until("the node to be Ready", Duration::from_secs(30), || {
        let out = s.kubectl(&[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("without root") {
            Ok(())
        } else {
            Err(format!("{text}\n{}", tail(&s.log(), 20)))
        }
    });
    run_pod(
        &s,
        &node,
        "unprivileged",
        "  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"echo hi; exec sleep 3600\"]\n",
    );
    let pod = wait_pod(&s, "unprivileged", "Running", 60, running);
    assert!(pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .starts_with("127.77."));
    assert_eq!(
        s.kubectl_ok(&["exec", "unprivileged", "--", "id", "-u"])
            .trim(),
        NOBODY,
        "the pod runs as the agent's user"
    );
    // A pod that needs what only root can make says so.
    run_pod(
        &s,
        &node,
        "isolated",
        "  runtimeClassName: runc\n  containers:\n  - name: main\n    image: busybox:latest\n",
    );
    let pod = wait_pod(&s, "isolated", "a clear refusal", 30, |p| {
        container(p)["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not available"))
    });
    assert_eq!(
        container(&pod)["state"]["waiting"]["reason"],
        "CreateContainerConfigError"
    );
    s.kubectl_ok(&[
        "delete",
        "pod",
        "unprivileged",
        "--grace-period=1",
        "--wait=true",
        "--timeout=60s",
    ]);
    drop(s);
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.path().to_string_lossy()))
        })
        .count();
    assert_eq!(left, 0, "no process of the node is left");
}
