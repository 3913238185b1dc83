//! What survives a stop, a restart and a crash (issue 3): every object, and
//! every acknowledged write even under `kill -9` in the middle of a burst.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nuage_testkit::http::ApiClient;
use nuage_testkit::server::{wait_for, NuageServer};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
const SEED_SVC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/svc.yaml");
const SEED_RC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/rc.yaml");

#[test]
fn sigterm_exits_cleanly_and_a_restart_keeps_every_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = NuageServer::start_in(BIN, dir.path(), &["--no-agent"]);
    s.kubectl_ok(&["create", "-f", SEED_SVC, "-f", SEED_RC]);
    let before = s.kubectl_ok(&["get", "svc,rc", "-o", "jsonpath={.items[*].metadata.uid}"]);
    let cluster_ip = s.kubectl_ok(&[
        "get",
        "svc",
        "simpleservice",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let (status, took) = s.stop();
    assert_eq!(status, "exit 0");
    assert!(took < Duration::from_secs(10), "stop took {took:?}");

    let s = NuageServer::start_in(BIN, dir.path(), &["--no-agent"]);
    let after = s.kubectl_ok(&["get", "svc,rc", "-o", "jsonpath={.items[*].metadata.uid}"]);
    assert_eq!(before, after);
    let ip_after = s.kubectl_ok(&[
        "get",
        "svc",
        "simpleservice",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(cluster_ip, ip_after);
    // New writes continue from the stored revision.
    s.kubectl_ok(&["scale", "rc", "rcsise", "--replicas=3"]);
    let (status, _) = s.stop();
    assert_eq!(status, "exit 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_of_creates_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = NuageServer::start_in(BIN, dir.path(), &["--no-agent"]);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..16 {
        let api = s.api.clone();
        let dir = dir.path().to_path_buf();
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            let Ok(mut c) = ApiClient::connect(&api, &dir).await else {
                return;
            };
            // Bounded: at most 2,000 creates per writer.
            for i in 0..2000 {
                let name = format!("cm-{w}-{i}");
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"i": i.to_string()}});
                match c.post("/api/v1/namespaces/default/configmaps", &body).await {
                    Ok(r) if r.status == 201 => {
                        acked.lock().unwrap().insert(name);
                    }
                    _ => return,
                }
            }
        }));
    }
    let acked_ref = Arc::clone(&acked);
    wait_for("300 acknowledged creates", Duration::from_secs(60), || {
        (acked_ref.lock().unwrap().len() >= 300).then_some(())
    });
    s.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let s = NuageServer::start_in(BIN, dir.path(), &["--no-agent"]);
    let mut c = ApiClient::connect(&s.api, dir.path()).await.unwrap();
    let list = c
        .get("/api/v1/namespaces/default/configmaps")
        .await
        .unwrap()
        .json();
    let stored: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
