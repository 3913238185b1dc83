//! Simulated nodes (issue 5): `nuage sim nodes` registers Nodes that the
//! server keeps alive without an agent — Leases renewed, Ready, pods bound
//! to them Running and their deletion finalized — until told to stop
//! heartbeating, or removed with `--delete`.

use std::process::Command;
use std::time::Duration;

use nuage_testkit::server::{wait_until, NuageServer};

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
/// A Lease is renewed every 10 s: two renewals fit in 25 s.
const RENEWAL: Duration = Duration::from_secs(25);

/// Runs `nuage sim nodes ARGS --data-dir DIR`, asserting success.
fn sim_nodes(s: &NuageServer, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["sim", "nodes"])
        .args(args)
        .arg("--data-dir")
        .arg(&s.dir)
        .output()
        .expect("run nuage sim nodes");
    assert!(
        out.status.success(),
        "nuage sim nodes {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &NuageServer, args: &[&str]) -> serde_json::Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&full)).expect("kubectl JSON")
}

fn renew_time(s: &NuageServer, node: &str) -> Option<String> {
    let out = s.kubectl(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        node,
        "-o",
        "jsonpath={.spec.renewTime}",
    ]);
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !t.is_empty()).then_some(t)
}

/// Waits until `node`'s Lease is renewed after `after` (or exists, if
/// `None`); returns the new renew time.
fn wait_renewed(s: &NuageServer, node: &str, after: Option<&str>) -> String {
    wait_until(
        &format!("lease {node} renewed"),
        RENEWAL,
        || match renew_time(s, node) {
            Some(t) if Some(t.as_str()) != after => Ok(t),
            seen => Err(format!("renewTime {seen:?}")),
        },
    )
}

fn pod_yaml(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         containers:\n  - name: web\n    image: nginx:1\n  - name: side\n    image: busybox\n"
    )
}

fn phase(s: &NuageServer, pod: &str) -> String {
    s.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"])
}

fn wait_running(s: &NuageServer, pod: &str) -> serde_json::Value {
    wait_until(
        &format!("pod {pod} Running"),
        Duration::from_secs(20),
        || {
            let p = json(s, &["get", "pod", pod]);
            let st = &p["status"];
            let ready = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if st["phase"] == "Running" && ready && st["podIP"].is_string() {
                Ok(p)
            } else {
                Err(st.to_string())
            }
        },
    )
}

#[test]
fn simulated_nodes_are_ready_renew_leases_and_run_pods_until_deleted() {
    let s = NuageServer::start(BIN);
    let out = sim_nodes(&s, &["--count", "3", "--zones", "3"]);
    assert!(out.contains("3 simulated nodes"), "{out}");

    let nodes = json(&s, &["get", "nodes", "-l", "nuage.io/simulated=true"]);
    let items = nodes["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    let mut zones: Vec<&str> = items
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            assert!(ready, "not Ready: {n}");
            assert_eq!(n["status"]["allocatable"]["pods"], "110");
            assert_eq!(n["status"]["capacity"]["cpu"], "32");
            let name = n["metadata"]["name"].as_str().unwrap();
            assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], name);
            n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                .as_str()
                .expect("zone label")
        })
        .collect();
    zones.sort();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
    // `kubectl get nodes` shows them Ready.
    let table = s.kubectl_ok(&["get", "nodes"]);
    assert_eq!(table.matches(" Ready ").count(), 3, "{table}");

    // Every Lease exists, then is renewed.
    for node in ["sim-0", "sim-1", "sim-2"] {
        let first = wait_renewed(&s, node, None);
        let lease = json(&s, &["get", "lease", "-n", "kube-node-lease", node]);
        assert_eq!(lease["spec"]["holderIdentity"], node);
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        if node == "sim-0" {
            wait_renewed(&s, node, Some(&first));
        }
    }

    // A pod bound to a simulated node runs there, with an address from
    // the node's range and the node's address as hostIP.
    s.kubectl_stdin(&["create", "-f", "-"], &pod_yaml("web", "sim-1"));
    let pod = wait_running(&s, "web");
    let node = json(&s, &["get", "node", "sim-1"]);
    let cidr = node["spec"]["podCIDR"].as_str().unwrap();
    let prefix = cidr.rsplit_once('.').unwrap().0;
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with(prefix), "{ip} not in {cidr}");
    assert_eq!(
        pod["status"]["hostIP"],
        node["status"]["addresses"][0]["address"]
    );
    let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 2);
    assert!(statuses
        .iter()
        .all(|c| c["ready"] == true && c["state"]["running"].is_object()));
    let row = s.kubectl_ok(&["get", "pod", "web"]);
    assert!(row.contains("2/2") && row.contains("Running"), "{row}");

    // A graceful delete completes: the node confirms it.
    s.kubectl_ok(&["delete", "pod", "web", "--timeout=20s"]);
    let left = s.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");

    // --delete removes the nodes, their pods and their Leases.
    s.kubectl_stdin(&["create", "-f", "-"], &pod_yaml("stays", "sim-2"));
    wait_running(&s, "stays");
    let out = sim_nodes(&s, &["--delete"]);
    assert!(out.contains("deleted 3 simulated node(s)"), "{out}");
    assert!(out.contains("1 pod(s)"), "{out}");
    wait_until("simulated nodes gone", Duration::from_secs(10), || {
        let nodes = s.kubectl_ok(&["get", "nodes", "-o", "name"]);
        let leases = s.kubectl_ok(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]);
        let pods = s.kubectl_ok(&["get", "pods", "-o", "name"]);
        if nodes.trim().is_empty() && leases.trim().is_empty() && pods.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("nodes: {nodes}\nleases: {leases}\npods: {pods}"))
        }
    });
}

#[test]
fn a_simulated_node_told_to_stop_heartbeating_stops_renewing_and_running_pods() {
    let s = NuageServer::start(BIN);
    sim_nodes(&s, &["--count", "2", "--zones", "1", "--prefix", "hb-"]);
    let r0 = wait_renewed(&s, "hb-0", None);
    wait_renewed(&s, "hb-1", None);

    s.kubectl_ok(&[
        "annotate",
        "node",
        "hb-1",
        "nuage.io/simulated-heartbeat=false",
    ]);
    // A renewal of hb-0 after the annotation: from then on, hb-1's Lease
    // must stay as it is.
    let r0 = wait_renewed(&s, "hb-0", Some(&r0));
    let stopped = renew_time(&s, "hb-1").expect("hb-1 lease");
    s.kubectl_stdin(&["create", "-f", "-"], &pod_yaml("orphan", "hb-1"));
    // A full renewal period of hb-0 later, hb-1 has not been renewed and
    // its pod has not started.
    wait_renewed(&s, "hb-0", Some(&r0));
    assert_eq!(renew_time(&s, "hb-1").as_deref(), Some(stopped.as_str()));
    assert_eq!(phase(&s, "orphan"), "Pending");

    // Back to life: renewed again, and its pod runs.
    s.kubectl_ok(&["annotate", "node", "hb-1", "nuage.io/simulated-heartbeat-"]);
    wait_renewed(&s, "hb-1", Some(&stopped));
    wait_running(&s, "orphan");
    sim_nodes(&s, &["--delete", "--prefix", "hb-"]);
}
