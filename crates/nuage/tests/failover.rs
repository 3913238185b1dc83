//! Issue 5's cluster scenario on simulated nodes: a ReplicaSet's pods
//! spread evenly over three zones, and a node that stops heartbeating loses
//! its pods to the others within its toleration plus 10 s.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use nuage_testkit::server::{wait_until, NuageServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
/// Node monitor grace and default toleration for this test (seconds).
const GRACE: u64 = 3;
const TOLERATION: u64 = 2;

fn json(s: &NuageServer, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&full)).expect("kubectl JSON")
}

/// Running pods of the ReplicaSet, by node.
fn running_by_node(s: &NuageServer) -> BTreeMap<String, usize> {
    let pods = json(s, &["get", "pods", "-l", "app=spread"]);
    let mut by_node = BTreeMap::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let deleting = p["metadata"]["deletionTimestamp"].is_string();
        if p["status"]["phase"] == "Running" && !deleting {
            let node = p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            *by_node.entry(node).or_insert(0) += 1;
        }
    }
    by_node
}

#[test]
fn replicas_spread_over_zones_and_leave_a_dead_node() {
    let dir = tempfile::Builder::new()
        .prefix("nuage-failover-")
        .tempdir()
        .unwrap();
    let grace = GRACE.to_string();
    let toleration = TOLERATION.to_string();
    let s = NuageServer::start_in(
        BIN,
        dir.path(),
        &[
            "--no-agent",
            "--node-monitor-grace-period",
            &grace,
            "--default-toleration-seconds",
            &toleration,
        ],
    );
    let out = Command::new(BIN)
        .args([
            "sim", "nodes", "--count", "3", "--zones", "3", "--prefix", "fo-",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zones: BTreeMap<String, String> = json(&s, &["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        zones
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: spread\nspec:\n  replicas: 6\n  selector:\n    matchLabels:\n      app: spread\n  template:\n    metadata:\n      labels:\n        app: spread\n    spec:\n      containers:\n      - name: c\n        image: busybox:latest\n",
    );
    let placed = wait_until("6 Running pods", Duration::from_secs(60), || {
        let by_node = running_by_node(&s);
        if by_node.values().sum::<usize>() == 6 {
            Ok(by_node)
        } else {
            Err(format!("{by_node:?}"))
        }
    });
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for (node, n) in &placed {
        *per_zone.entry(zones[node].as_str()).or_insert(0) += n;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "spread over zones: {per_zone:?}"
    );

    // One node's agent dies: no more heartbeats.
    let dead = placed.keys().next().unwrap().clone();
    let stopped = Instant::now();
    s.kubectl_ok(&[
        "annotate",
        "node",
        &dead,
        "nuage.io/simulated-heartbeat=false",
    ]);
    let deadline = Duration::from_secs(GRACE + TOLERATION + 10);
    let moved = wait_until(
        "the dead node's pods to run elsewhere",
        deadline + Duration::from_secs(20),
        || {
            let by_node = running_by_node(&s);
            if by_node.values().sum::<usize>() == 6 && !by_node.contains_key(&dead) {
                Ok(by_node)
            } else {
                Err(format!("{by_node:?}"))
            }
        },
    );
    let took = stopped.elapsed();
    assert!(
        took <= deadline,
        "pods left the dead node in {took:?} (allowed: the node's grace {GRACE} s, the toleration {TOLERATION} s, plus 10 s)"
    );
    assert_eq!(moved.len(), 2, "on the two live nodes: {moved:?}");
    let taints = s.kubectl_ok(&["get", "node", &dead, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    s.kubectl_ok(&["delete", "rs", "spread"]);
}
